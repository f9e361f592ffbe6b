"""How far a network really looks: its receptive field, measured with an impulse through the loaded backend.

A declared halo smaller than the receptive field makes tiled outputs differ from the whole-image output at
the tile seams (up to 2.8 on real zoo models), and nothing in a descriptor says so. deepij measures it when a
run is about to be tiled: one forward pass on a random tile, one on the same tile with the centre pixel
raised; the output pixels that changed are those that see the centre. Their extent, mapped back to input
pixels, is the receptive radius per tiled axis. A tile too small to hold the whole response is doubled (up
to :data:`MAX_SIDES`); a response still reaching the tile's border gives a lower bound (``at_least``).

The measurement costs a few forward passes on small tiles; :class:`deepij.pipeline.Model` keeps it per
loaded backend.

Examples
--------
>>> field = measure_receptive_field(backend, tiling, {"raw": {"c": 1, "y": 512, "x": 512}})  # doctest: +SKIP
>>> field.radius  # doctest: +SKIP
{'y': 51, 'x': 51}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from deepij.bundle.description import FixedSize, ParameterizedSize
from deepij.inference.backends.base import Backend
from deepij.inference.plan import OutputAxisMap
from deepij.inference.tiling import ModelTiling

MAX_SIDES = {1: 8192, 2: 1024, 3: 128}
"""Largest probe tile side per number of tiled axes."""

_FIRST_SIDES = {1: 256, 2: 64, 3: 24}
_RELATIVE_THRESHOLD = 1e-5


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive radius per tiled axis, in input pixels.

    ``at_least`` marks axes where the response reached the largest probe's border (the radius is a lower
    bound); ``probe`` is the tile the radius was measured on.
    """

    radius: Mapping[str, int]
    at_least: Mapping[str, bool]
    probe: Mapping[str, int]

    def exceeds(self, pads: Mapping[str, int]) -> dict[str, int]:
        """Axes whose radius is larger than the padding a tile loses there: axis -> radius."""
        return {a: r for a, r in self.radius.items() if r > pads.get(a, 0)}

    def describe(self) -> str:
        return ", ".join(f"{a}: {'>= ' if self.at_least[a] else ''}{r}" for a, r in self.radius.items())


def measure_receptive_field(
    backend: Backend, tiling: ModelTiling, shapes: Mapping[str, Mapping[str, int]], *, seed: int = 0
) -> ReceptiveField | None:
    """Measure the network's receptive radius along the tiled axes (None when the impulse changes nothing,
    e.g. a network that thresholds its output).

    Parameters
    ----------
    backend : Backend
        The loaded network.
    tiling : ModelTiling
        The model's tiling rules (which axes, valid sizes).
    shapes : mapping
        Per input, axis -> size of one sample: the non-tiled sizes (channels) of the probe.
    """
    if not tiling.input or not tiling.axes:
        return None
    first = _FIRST_SIDES.get(len(tiling.axes), 24)
    limit = MAX_SIDES.get(len(tiling.axes), 128)
    tile = {a: _probe_size(tiling, a, max(first, 4 * tiling.pads[a] + 1)) for a in tiling.axes}
    while True:
        found = _measure(backend, tiling, shapes, tile, seed)
        if found is None:
            return None
        radius, at_border = found
        grow = {a: _probe_size(tiling, a, 2 * tile[a]) for a in tiling.axes if at_border[a]}
        grow = {a: q for a, q in grow.items() if q > tile[a] and q <= limit}
        if not grow:
            return ReceptiveField(radius, at_border, dict(tile))
        tile.update(grow)


def _probe_size(tiling: ModelTiling, axis: str, at_least: int) -> int:
    size = tiling.smallest_valid(axis, at_least)
    if size is None:  # a fixed axis smaller than asked: its one size
        size = tiling.largest_valid(axis) or at_least
    return size


def _measure(
    backend: Backend,
    tiling: ModelTiling,
    shapes: Mapping[str, Mapping[str, int]],
    tile: Mapping[str, int],
    seed: int,
) -> tuple[dict[str, int], dict[str, bool]] | None:
    rng = np.random.default_rng(seed)
    arrays, raised = [], []
    centre = {a: tile[a] // 2 for a in tiling.axes}
    for spec in tiling.description.inputs:
        sample = dict(shapes[spec.name])
        if spec.name in tiling.windowed:
            sample.update(tile)
        dims = [_batch_of_one(spec) if a == "b" else sample[a] for a in spec.axes_str]
        dtype = np.dtype(spec.data_type) if spec.data_type else np.dtype(np.float32)
        base = _background(rng, dims, dtype)
        arrays.append(base)
        bumped = base.copy()
        if spec.name == tiling.input:
            index = tuple(centre[a] if a in centre else slice(None) for a in spec.axes_str)
            bumped[index] = _bump(bumped[index], dtype)
        raised.append(bumped)
    before = backend.predict(arrays)
    after = backend.predict(raised)
    radius = {a: 0 for a in tiling.axes}
    at_border = {a: False for a in tiling.axes}
    seen = False
    for spec, out0, out1 in zip(tiling.description.outputs, before, after, strict=True):
        maps = tiling.output_maps[spec.name]
        if spec.is_table or not maps:
            continue
        a0, a1 = np.asarray(out0, dtype=np.float64), np.asarray(out1, dtype=np.float64)
        change = np.abs(a1 - a0)
        largest = float(np.nanmax(change)) if change.size else 0.0
        if not largest > 0:
            continue
        seen = True
        threshold = max(_RELATIVE_THRESHOLD * largest, 1e-6 * float(np.nanmax(np.abs(a0))))
        for position, letter in enumerate(spec.axes_str):
            m = maps.get(letter)
            if m is None:
                continue
            others = tuple(k for k in range(change.ndim) if k != position)
            profile = np.nanmax(change, axis=others) if others else change
            hits = np.flatnonzero(profile > threshold)
            a = m.input_axis
            _, first_high = _footprint(m, int(hits[0]))
            last_low, _ = _footprint(m, int(hits[-1]))
            radius[a] = max(radius[a], centre[a] - first_high, last_low - centre[a])
            if hits[0] == 0 or hits[-1] == profile.size - 1:
                at_border[a] = True
    return (radius, at_border) if seen else None


def _footprint(m: OutputAxisMap, j: int) -> tuple[int, int]:
    """The input pixels output pixel ``j`` of a tile stands for (``(j - floor(offset)) / scale`` onwards:
    one pixel, or two for a half-size output). The radius is how far outside its footprint a pixel that
    changes it lies."""
    shift = math.floor(m.offset)
    low = math.floor((j - shift) / m.scale)
    high = math.ceil((j + 1 - shift) / m.scale) - 1
    return low, max(low, high)


def _batch_of_one(spec: object) -> int:
    rule = spec.axis("b").size  # type: ignore[attr-defined]
    if isinstance(rule, (FixedSize, ParameterizedSize)):
        return rule.smallest_at_least(1) or 1
    return 1


def _background(rng: np.random.Generator, dims: list[int], dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "iu":
        high = min(np.iinfo(dtype).max, 200)
        return rng.integers(0, high, size=dims).astype(dtype)
    if dtype.kind == "b":
        return rng.random(dims) < 0.5
    return rng.standard_normal(dims).astype(dtype)


def _bump(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "iu":
        return np.where(values > 100, values - 100, values + 100).astype(dtype)
    if dtype.kind == "b":
        return ~values
    return (values + 4.0).astype(dtype)
