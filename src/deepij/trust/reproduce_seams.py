"""How a tiled output differs from the whole-image one: apart at the image border (where mirrored pixels
replace the network's own padding, so the two differ whatever the halo) and inside, where any difference
beyond the tolerance is a seam: the declared halo is smaller than the network's receptive field.

Positions are in the compared image's pixels (a crop's, when the tiled comparison ran on a crop of the
input, :mod:`deepij.trust.reproduce_tiled`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from deepij.trust.reproduce_compare import Pixel, Tolerance
from deepij.trust.reproduce_report import TiledComparison

if TYPE_CHECKING:
    import xarray as xr

    from deepij.inference.plan import TilePlan


def tiled_difference(
    label: str,
    name: str,
    whole: xr.DataArray,
    tiled: xr.DataArray,
    plan: TilePlan,
    border: Mapping[str, int],
    tolerance: Tolerance,
) -> TiledComparison:
    """How a tiled output differs from the whole-image one, inside and at the image border.

    ``border`` is, per tiled input axis, how many input pixels from the edge count as the border; an output
    pixel maps to input pixel ``floor(j / scale)``. Seams are where one tile's valid region meets the next.
    """
    seams = {g.axis: [w[0] for w in g.write[1:]] for g in plan.grids}
    sizes = {g.axis: g.size for g in plan.grids}
    nan = math.nan
    unmeasured = TiledComparison(
        label, name, dict(plan.tile), plan.n_tiles, seams, dict(border), nan, nan, 0, False, tolerance
    )
    if whole.dims != tiled.dims or whole.shape != tiled.shape:
        return replace(unmeasured, problem=f"shape {dict(tiled.sizes)}, whole {dict(whole.sizes)}")
    got = np.asarray(tiled.values, dtype=np.float64)
    reference = np.asarray(whole.values, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(got - reference)
        agree = np.isnan(got) & np.isnan(reference)
        difference[agree] = 0.0
    inside, positions = _inside(whole, plan, name, border, sizes)
    with np.errstate(invalid="ignore"):
        allowed = tolerance.absolute + tolerance.relative * np.abs(reference)
        beyond = inside & ~agree & ~(difference <= allowed)
    inner = np.where(inside, np.nan_to_num(difference, nan=np.inf), -1.0)
    worst, distance = None, None
    if inside.any():
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(inner)), got.shape))
        worst = Pixel(
            {str(d): int(i) for d, i in zip(whole.dims, where, strict=True)},
            float(got[where]),
            float(reference[where]),
            float(difference[where]),
        )
        distance = _distance_to_seam(where, positions, seams)
    outside = np.where(inside, 0.0, difference)
    return replace(
        unmeasured,
        max_abs_inside=float(np.max(inner, initial=0.0)),
        max_abs_border=float(np.nanmax(outside, initial=0.0)) if outside.size else 0.0,
        mismatched_inside=int(beyond.sum()),
        seams_found=bool(beyond.any()),
        worst_inside=worst,
        worst_distance_to_seam=distance,
    )


def _inside(
    whole: xr.DataArray, plan: TilePlan, name: str, border: Mapping[str, int], sizes: Mapping[str, int]
) -> tuple[np.ndarray, dict[int, tuple[str, np.ndarray]]]:
    """Which output elements lie away from the border, and per tiled dim the input pixel of each index."""
    inside = np.ones(whole.shape, dtype=bool)
    positions: dict[int, tuple[str, np.ndarray]] = {}
    maps = plan.outputs[name].maps
    for k, dim in enumerate(whole.dims):
        m = maps.get(str(dim))
        if m is None:
            continue
        pixel = np.floor(np.arange(whole.shape[k]) / m.scale).astype(np.int64)
        radius = int(border.get(m.input_axis, 0))
        along = (pixel >= radius) & (pixel < sizes[m.input_axis] - radius)
        inside &= along.reshape([-1 if j == k else 1 for j in range(whole.ndim)])
        positions[k] = (m.input_axis, pixel)
    return inside, positions


def _distance_to_seam(
    where: tuple[int, ...], positions: Mapping[int, tuple[str, np.ndarray]], seams: Mapping[str, list[int]]
) -> int | None:
    """Input pixels from the pixel at ``where`` to the nearest seam (0: it touches one)."""
    distances = []
    for k, (axis, pixel) in positions.items():
        x = int(pixel[where[k]])
        distances += [int(abs(x + 0.5 - s)) for s in seams.get(axis, [])]
    return min(distances) if distances else None
