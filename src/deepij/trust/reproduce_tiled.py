"""Tiled against whole in ``deepij test``: does tiling change the output away from the image border?

The first case runs tiled as deepImageJ lays tiles (mirror-padded, ``tiling="deepimagej"``), at its
default tile and at a small tile (about a third of the image's valid region per tile; ``tile=`` chooses
it), and each output is compared with the same case run whole under the zoo's convention (a mirror-padded
pass for a network with valid convolutions, whose unpadded outputs are smaller) by
:func:`~deepij.trust.reproduce_seams.tiled_difference`.

The cost is bounded whatever the image and the tile: a seam shows within the receptive radius of where two
tiles meet, so a few tiles prove it. When a tile would cut the image into more tiles along an axis than a
window of ``2 * border + 2 * R`` pixels holds (``R`` the tile's valid region, ``border`` the receptive
radius), both runs take that window from the middle of the input instead: at least two seams lie inside
it, at least ``border`` pixels from its edges, with ``ceil(2 * border / R) + 2`` tiles along the axis. The
report gives the window (``crop``), the tiles that ran and the seconds the comparison took.

Examples
--------
>>> window_length(region=5, border=4)  # 2 * 4 + 2 * 5 = 18, rounded up to whole tiles: 4 tiles of 5
20
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.errors import DeepijError
from deepij.trust.reproduce_cases import ZOO
from deepij.trust.reproduce_compare import reproduction_tolerance
from deepij.trust.reproduce_report import TiledComparison
from deepij.trust.reproduce_run import CaseRun, Options, predict, run_case
from deepij.trust.reproduce_seams import tiled_difference

if TYPE_CHECKING:
    from deepij.inference.backends.base import Backend
    from deepij.inference.tiling import ModelTiling
    from deepij.pipeline import Model, Prediction
    from deepij.trust.reproduce_cases import Case
    from deepij.trust.reproduce_report import FormatReport

TILED_LOOSENESS = 10.0
"""Tiled outputs are compared with the whole-image ones at this many times the reproduction tolerance."""
MAX_UNCROPPED_TILES = 64
"""Tiles a comparison may run on the whole input when it cannot be cropped (several inputs)."""
_IMAGEJ_DIMS = {"y": "row", "x": "col", "z": "pln"}


def window_length(region: int, border: int) -> int:
    """Pixels along an axis that hold two seams at least ``border`` from the edges: ``2 * border + 2 *
    region`` rounded up to whole valid regions."""
    return region * math.ceil((2 * border + 2 * region) / region)


def compare_tiled(
    model: Model,
    backend: Backend,
    first: tuple[Case, Any, CaseRun],
    fmt: str,
    options: Options,
    report: FormatReport,
) -> None:
    """Add the tiled comparisons of the first case to ``report`` (module notes)."""
    from deepij.inference.receptive import measure_receptive_field

    tiling = model.tiling
    if not tiling.tileable:
        report.notes.append(f"not tiled: the model runs in one pass ({tiling.reason})")
        return
    started = time.perf_counter()
    case, image, run = first
    whole = _reference(model, image, case, fmt, options, run)
    shape = {g.axis: g.size for g in whole.plan.grids}
    report.declared_padding = dict(tiling.pads)
    field = measure_receptive_field(backend, tiling, whole.plan.tile_shapes)
    report.receptive_radius = dict(field.radius) if field is not None else None
    report.receptive_passes = getattr(field, "passes", None)
    border = {a: field.radius[a] if field is not None else tiling.pads[a] for a in tiling.axes}
    for label, tile in _tile_settings(tiling, shape, options.tile):
        try:
            report.tiled += _one_setting(model, (case, image, whole), fmt, options, label, tile, border)
        except DeepijError as exc:
            report.tiled.append(_failed(model, fmt, label, tile, border, str(exc)))
    report.tiled_seconds = time.perf_counter() - started


def _reference(model: Model, image: Any, case: Case, fmt: str, options: Options, run: CaseRun) -> Prediction:
    """The whole-image run tiles are compared with: the case's zoo run when it covers the image."""
    whole = run if run.convention == ZOO else run_case(model, image, case, fmt, options, ZOO)
    if _unpadded(whole.prediction):
        # the image as it is gave outputs smaller than it (valid convolutions); tiles cover the image, as
        # the mirror-padded whole pass does
        return predict(model, image, case, fmt, options, "whole")
    return whole.prediction


def _unpadded(prediction: Prediction) -> bool:
    return any(m.unpadded for out in prediction.plan.outputs.values() for m in out.maps.values())


def _one_setting(
    model: Model,
    whole_run: tuple[Case, Any, Prediction],
    fmt: str,
    options: Options,
    label: str,
    asked: Any,
    border: Mapping[str, int],
) -> list[TiledComparison]:
    case, image, whole = whole_run
    tiling = model.tiling
    shape = {g.axis: g.size for g in whole.plan.grids}
    tile = tiling.resolve_tile(asked, shape)
    window = _window(tiling, shape, tile, border)
    cropped = crop_input(model, image, window) if window else None
    if cropped is not None:
        image = cropped
        whole = _reference(model, image, case, fmt, options, run_case(model, image, case, fmt, options, ZOO))
    elif window:
        window = {}
        too_many = _too_many(tiling, shape, tile)
        if too_many:
            return [_failed(model, fmt, label, tile, border, too_many)]
    # deepImageJ's grid (mirror-padded, tiles meeting every R pixels): the window arithmetic below is its;
    # where the image's sizes are valid, predict's own default lays tiles inside it instead
    tiled = predict(model, image, case, fmt, options, tile, "deepimagej")
    found = []
    for spec in model.description.outputs:
        if spec.is_table or spec.name not in whole.images or spec.name not in tiled.images:
            continue
        tolerance = reproduction_tolerance(model.description, fmt, spec.name).looser(
            TILED_LOOSENESS, f"{TILED_LOOSENESS:g} x the reproduction tolerance"
        )
        compared = tiled_difference(
            label, spec.name, whole.images[spec.name], tiled.images[spec.name], tiled.plan, border, tolerance
        )
        found.append(replace(compared, crop={a: list(w) for a, w in window.items()} or None))
    return found


def _window(
    tiling: ModelTiling, shape: Mapping[str, int], tile: Mapping[str, int], border: Mapping[str, int]
) -> dict[str, tuple[int, int]]:
    """Per axis where the tile cuts more tiles than needed to show a seam, the part of the input to keep
    (``[start, stop)``, centred); empty when the whole input is compared."""
    window = {}
    for a in tiling.axes:
        region = tile[a] - 2 * tiling.pads[a]
        if region <= 0:
            continue  # the run refuses the tile, naming it
        length = window_length(region, border[a])
        if length < shape[a]:
            start = (shape[a] - length) // 2
            window[a] = (start, start + length)
    return window


def crop_input(model: Model, image: Any, window: Mapping[str, tuple[int, int]]) -> Any:
    """``image`` (an array in the tiled input's axes, or an image file) cut to ``window`` as an xarray
    ``predict`` takes; None when it cannot be cut (several inputs)."""
    import xarray as xr

    from deepij.pipeline.image_files import read_image_file

    if isinstance(image, np.ndarray) and model.tiling.input:
        letters = model.description.input(model.tiling.input).axes_str
        if image.ndim == len(letters) - 1 and "b" in letters:
            letters = letters.replace("b", "")
        if image.ndim != len(letters):
            return None
        array = xr.DataArray(image, dims=list(letters))
        return array.isel({a: slice(*w) for a, w in window.items()})
    if not isinstance(image, (str, bytes)) and hasattr(image, "is_file"):
        array = read_image_file(image)
        dims = {a: a if a in array.dims else _IMAGEJ_DIMS[a] for a in window}
        if not all(d in array.dims for d in dims.values()):
            return None
        return array.isel({dims[a]: slice(*w) for a, w in window.items()})
    return None


def _too_many(tiling: ModelTiling, shape: Mapping[str, int], tile: Mapping[str, int]) -> str | None:
    count = math.prod(math.ceil(shape[a] / (tile[a] - 2 * tiling.pads[a])) for a in tiling.axes)
    if count <= MAX_UNCROPPED_TILES:
        return None
    return (
        f"not run: {count} tiles on the whole input (more than {MAX_UNCROPPED_TILES}), and a model with "
        "several inputs is not cut to a window"
    )


def _failed(
    model: Model, fmt: str, label: str, tile: Any, border: Mapping[str, int], problem: str | None
) -> TiledComparison:
    tolerance = reproduction_tolerance(model.description, fmt, "")
    sizes = {str(a): int(q) for a, q in tile.items()} if isinstance(tile, Mapping) else {}
    nan = math.nan
    return TiledComparison(
        label, "-", sizes, 0, {}, dict(border), nan, nan, 0, False, tolerance, problem=problem
    )


def _tile_settings(tiling: ModelTiling, shape: Mapping[str, int], asked: Any) -> list[tuple[str, Any]]:
    """deepImageJ's default tile, and a small one (``asked``, else about a third of the image per tile)."""
    suggested = tiling.suggested_tile(shape)
    settings: list[tuple[str, Any]] = [("deepImageJ default tile", suggested)]
    if asked is not None:
        settings.append(("tile asked for", asked))
        return settings
    small = {}
    for a in tiling.axes:
        region = max(1, math.ceil(shape[a] / 3))
        small[a] = (
            tiling.smallest_valid(a, 2 * tiling.pads[a] + region) or tiling.largest_valid(a) or suggested[a]
        )
    if small != suggested:
        settings.append(("small tile", small))
    return settings
