"""How far a network really looks: its receptive field, measured with impulses through the loaded backend.

A declared halo smaller than the receptive field makes tiled outputs differ from the whole-image output at
the tile seams (up to 2.8 on real zoo models), and nothing in a descriptor says so. The receptive field is
measured, not read: a large impulse (+-100 or +-30) on one input pixel of a random tile changes exactly the
output pixels that see that pixel; their extent, mapped back to input pixels, is the receptive radius per
tiled axis. A tile too small to hold the whole response is doubled (up to :data:`MAX_SIDES`); a response
still reaching the tile's border gives a lower bound (``at_least``).

One impulse shows only part of the field: max pooling and ReLUs pass its change on only where it wins or
stays positive, and a U-Net's field depends on where in a pooling window the pixel falls (a single +4
impulse at the centre found 13 of a 2-pooling U-Net's 23 pixels). How hard the probe looks is an
:class:`Effort`:

- :data:`THOROUGH` puts the impulse at every position of the pooling grid (``step`` positions) on
  :data:`BACKGROUNDS` random backgrounds of two amplitudes, with impulses of both signs and two sizes, and
  takes the union. It finds the field of convnets and 2-pooling U-Nets exactly (checked against the
  support of the linearised network) and is what ``deepij build`` declares halos from. Deeper networks'
  fields are found as far as float32 outputs show them: the last 14 of a 3-pooling U-Net's 51 pixels
  change its output by less than 3e-8 for an impulse of 100 (in float64), below float32's resolution and
  below anything a tile seam could show; the probe finds 36 to 38.
- :data:`QUICK` (the seam check of :meth:`deepij.pipeline.Model.predict`) uses the same impulses at every
  grid position on a quarter of the backgrounds: a lower bound, which found the same radii as the
  thorough probe on the demo bundle's and 2-pooling U-Nets (within a pixel on 3-pooling ones) at a
  quarter of the cost (``benchmarks/bench_receptive.py`` measures both).

One background's forward pass serves every grid position, so a measurement costs
``backgrounds * (1 + positions)`` forward passes per probe tile size.

Examples
--------
>>> from deepij.bundle import open_bundle
>>> from deepij.inference.backends import load_backend
>>> from deepij.inference.tiling import analyse_tiling
>>> description = open_bundle("examples/nuclei_bundle")
>>> backend = load_backend(description, "onnx", "cpu")
>>> field = measure_receptive_field(backend, analyse_tiling(description), {"input": {"c": 1}}, effort=QUICK)
>>> field.radius, analyse_tiling(description).pads  # what it sees, what the bundle declares
({'y': 23, 'x': 23}, {'y': 24, 'x': 24})
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from deepij.bundle.description import FixedSize, ParameterizedSize, TensorSpec
from deepij.inference.backends.base import Backend
from deepij.inference.plan import OutputAxisMap
from deepij.inference.tiling import ModelTiling

MAX_SIDES = {1: 8192, 2: 1024, 3: 128}
"""Largest probe tile side per number of tiled axes."""
FIRST_SIDES = {1: 256, 2: 64, 3: 24}
"""First probe tile side per number of tiled axes (at least 4 declared paddings + 1)."""
UNKNOWN_GRID = 8
"""Impulse positions along an axis of fixed size, whose pooling grid its size rule cannot show: grids up
to 8 (3 poolings) are covered."""

_AMPLITUDES = (1.0, 0.3)
_BUMPS = (100.0, -100.0, 30.0, -30.0)
"""Per background (in turn): its amplitude and the impulse added. An impulse far above the background, of
both signs, wins the max-poolings and ReLUs its change meets: small ones (+8 on unit noise) showed 20 of a
U-Net's 23 pixels."""
BACKGROUNDS = 2 * len(_AMPLITUDES) * len(_BUMPS)
"""Random backgrounds of the thorough probe: every amplitude with every impulse, twice."""


@dataclass(frozen=True)
class Effort:
    """How hard the probe looks: random ``backgrounds`` per impulse position."""

    backgrounds: int

    def passes(self, positions: int) -> int:
        """Forward passes per probe tile with ``positions`` impulse positions."""
        return self.backgrounds * (1 + positions)


THOROUGH = Effort(BACKGROUNDS)
"""Every amplitude with every impulse, twice: the whole field of the convnets and U-Nets tested."""
QUICK = Effort(len(_AMPLITUDES) * 2)
"""Both amplitudes with +-100: a lower bound of the field (predict's seam check)."""


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive radius per tiled axis, in input pixels.

    ``at_least`` marks axes where the response reached the largest probe's border (the radius is a lower
    bound); ``probe`` is the tile the radius was measured on; ``effort`` how hard it was looked for
    (:data:`QUICK`: a lower bound everywhere); ``passes`` the forward passes it took.
    """

    radius: Mapping[str, int]
    at_least: Mapping[str, bool]
    probe: Mapping[str, int]
    effort: Effort = THOROUGH
    passes: int = 0

    def exceeds(self, pads: Mapping[str, int]) -> dict[str, int]:
        """Axes whose radius is larger than the padding a tile loses there: axis -> radius."""
        return {a: r for a, r in self.radius.items() if r > pads.get(a, 0)}

    def describe(self) -> str:
        return ", ".join(f"{a}: {'>= ' if self.at_least[a] else ''}{r}" for a, r in self.radius.items())


def measure_receptive_field(
    backend: Backend,
    tiling: ModelTiling,
    shapes: Mapping[str, Mapping[str, int]],
    *,
    effort: Effort = THOROUGH,
    seed: int = 0,
    largest: Mapping[str, int] | None = None,
    enough: Mapping[str, int] | None = None,
) -> ReceptiveField | None:
    """Measure the network's receptive radius along the tiled axes (None when no impulse changes anything,
    e.g. a network that thresholds its output far from the impulses' values).

    Parameters
    ----------
    backend : Backend
        The loaded network.
    tiling : ModelTiling
        The model's tiling rules (which axes, valid sizes, how outputs follow the input).
    shapes : mapping
        Per input, axis -> size of one sample: the non-tiled sizes (channels) of the probe.
    effort : Effort
        :data:`THOROUGH` (default) or :data:`QUICK` (fewer backgrounds: a lower bound).
    seed : int
        Seed of the random backgrounds.
    largest : mapping, optional
        Per axis, the largest probe tile (default :data:`MAX_SIDES`): a seam check needs to see no further
        than the run's own tiles, and larger probes cost more than such a run.
    enough : mapping, optional
        Per axis, a radius past which the answer does not matter to the caller (a halo it is compared
        with): the probe stops growing along an axis once the radius found reaches it.
    """
    if not tiling.input or not tiling.axes:
        return None
    first = FIRST_SIDES.get(len(tiling.axes), 24)
    limit = {a: MAX_SIDES.get(len(tiling.axes), 128) for a in tiling.axes}
    if largest:
        limit = {a: min(q, max(largest.get(a, q), 2 * tiling.pads[a] + 1)) for a, q in limit.items()}
    tile = {a: _probe_size(tiling, a, min(max(first, 4 * tiling.pads[a] + 1), limit[a])) for a in tiling.axes}
    grids = {a: _grid(tiling.rules[a]) for a in tiling.axes}
    rng = np.random.default_rng(seed)
    passes = 0
    while True:
        found = _measure(backend, tiling, shapes, tile, grids, effort, rng)
        passes += effort.passes(max(grids.values()))
        if found is None:
            return None
        radius, at_border = found
        wanted = [a for a in tiling.axes if at_border[a] and radius[a] < (enough or {}).get(a, math.inf)]
        grow = {a: _probe_size(tiling, a, 2 * tile[a]) for a in wanted}
        grow = {a: q for a, q in grow.items() if tile[a] < q <= limit[a]}
        if not grow:
            return ReceptiveField(radius, at_border, dict(tile), effort, passes)
        tile.update(grow)


def _probe_size(tiling: ModelTiling, axis: str, at_least: int) -> int:
    size = tiling.smallest_valid(axis, at_least)
    if size is None:  # a fixed axis smaller than asked: its one size
        size = tiling.largest_valid(axis) or at_least
    return size


def _grid(rule: FixedSize | ParameterizedSize) -> int:
    """The pooling grid an axis' size rule shows (its ``step``)."""
    if isinstance(rule, ParameterizedSize) and rule.step > 0:
        return rule.step
    return UNKNOWN_GRID


def _positions(tile: Mapping[str, int], grids: Mapping[str, int]) -> list[dict[str, int]]:
    """The impulse positions: near the tile's centre, at every phase of each axis' pooling grid."""
    positions = []
    for phase in range(max(grids.values())):
        centre = {a: (q // 2) // grids[a] * grids[a] + phase % grids[a] for a, q in tile.items()}
        positions.append({a: min(c, tile[a] - 1) for a, c in centre.items()})
    return positions


def _measure(
    backend: Backend,
    tiling: ModelTiling,
    shapes: Mapping[str, Mapping[str, int]],
    tile: Mapping[str, int],
    grids: Mapping[str, int],
    effort: Effort,
    rng: np.random.Generator,
) -> tuple[dict[str, int], dict[str, bool]] | None:
    radius = {a: 0 for a in tiling.axes}
    at_border = {a: False for a in tiling.axes}
    specs = tiling.description.inputs
    primary = next(k for k, s in enumerate(specs) if s.name == tiling.input)
    seen = False
    for trial in range(effort.backgrounds):
        amplitude = _AMPLITUDES[trial % len(_AMPLITUDES)]
        bump = _BUMPS[(trial // len(_AMPLITUDES)) % len(_BUMPS)]
        arrays = [_background(rng, _dims(s, tiling, shapes, tile), s, amplitude) for s in specs]
        before = backend.predict(arrays)
        for centre in _positions(tile, grids):
            raised = list(arrays)
            raised[primary] = _with_impulse(arrays[primary], specs[primary], centre, bump)
            after = backend.predict(raised)
            for spec, out0, out1 in zip(tiling.description.outputs, before, after, strict=True):
                maps = tiling.output_maps[spec.name]
                if spec.is_table or not maps:
                    continue
                change = np.abs(np.asarray(out1, np.float64) - np.asarray(out0, np.float64))
                noise = _noise(np.asarray(out0, np.float64))
                seen |= _spread(change, noise, spec.axes_str, maps, centre, radius, at_border)
    return (radius, at_border) if seen else None


def _dims(
    spec: TensorSpec, tiling: ModelTiling, shapes: Mapping[str, Mapping[str, int]], tile: Mapping[str, int]
) -> list[int]:
    sample = dict(shapes[spec.name])
    if spec.name in tiling.windowed:
        sample.update(tile)
    return [_batch_of_one(spec) if a == "b" else sample[a] for a in spec.axes_str]


def _noise(before: np.ndarray) -> float:
    """The change below which an output pixel counts as unchanged: float32 rounding of outputs of the
    background's size (outputs the impulse cannot reach are bitwise equal)."""
    return 1e-7 * max(1.0, float(np.nanmax(np.abs(before)))) if before.size else 0.0


def _spread(
    change: np.ndarray,
    noise: float,
    axes: str,
    maps: Mapping[str, OutputAxisMap],
    centre: Mapping[str, int],
    radius: dict[str, int],
    at_border: dict[str, bool],
) -> bool:
    """Widen ``radius`` by the output pixels the impulse changed by more than ``noise`` (mapped back to
    input pixels); whether any changed."""
    if not change.size or not np.nanmax(change) > noise:
        return False
    for position, letter in enumerate(axes):
        m = maps.get(letter)
        if m is None:
            continue
        others = tuple(k for k in range(change.ndim) if k != position)
        hits = np.flatnonzero(np.nanmax(change, axis=others) > noise if others else change > noise)
        a = m.input_axis
        _, first_high = _footprint(m, int(hits[0]))
        last_low, _ = _footprint(m, int(hits[-1]))
        radius[a] = max(radius[a], centre[a] - first_high, last_low - centre[a])
        if hits[0] == 0 or hits[-1] == change.shape[position] - 1:
            at_border[a] = True
    return True


def _footprint(m: OutputAxisMap, j: int) -> tuple[int, int]:
    """The input pixels output pixel ``j`` of a tile stands for (``(j - floor(offset)) / scale`` onwards:
    one pixel, or two for a half-size output). The radius is how far outside its footprint a pixel that
    changes it lies."""
    shift = math.floor(m.offset)
    low = math.floor((j - shift) / m.scale)
    high = math.ceil((j + 1 - shift) / m.scale) - 1
    return low, max(low, high)


def _batch_of_one(spec: TensorSpec) -> int:
    rule = spec.axis("b").size
    if isinstance(rule, (FixedSize, ParameterizedSize)):
        return rule.smallest_at_least(1) or 1
    return 1


def _dtype(spec: TensorSpec) -> np.dtype:
    return np.dtype(spec.data_type) if spec.data_type else np.dtype(np.float32)


def _background(
    rng: np.random.Generator, dims: Sequence[int], spec: TensorSpec, amplitude: float
) -> np.ndarray:
    """Random values of the input's type: normal noise of ``amplitude``, integers below 200 (scaled by
    ``amplitude``), or random booleans."""
    dtype = _dtype(spec)
    if dtype.kind in "iu":
        high = max(2, min(int(np.iinfo(dtype).max), int(200 * amplitude)))
        return rng.integers(0, high, size=dims).astype(dtype)
    if dtype.kind == "b":
        return rng.random(dims) < 0.5
    return (amplitude * rng.standard_normal(dims)).astype(dtype)


def _with_impulse(array: np.ndarray, spec: TensorSpec, centre: Mapping[str, int], bump: float) -> np.ndarray:
    """A copy of ``array`` with ``bump`` added at ``centre`` (every channel and batch entry); integer
    inputs move by it the way that stays in their range, booleans flip."""
    index = tuple(centre[a] if a in centre else slice(None) for a in spec.axes_str)
    raised = array.copy()
    values = raised[index]
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        step = int(abs(bump))
        wide = values.astype(np.int64)
        up = wide + step
        raised[index] = np.where(up <= info.max, up, np.maximum(wide - step, info.min)).astype(array.dtype)
    elif array.dtype.kind == "b":
        raised[index] = ~values
    else:
        raised[index] = (values + bump).astype(array.dtype)
    return raised


__all__ = ["QUICK", "THOROUGH", "Effort", "ReceptiveField", "measure_receptive_field"]
