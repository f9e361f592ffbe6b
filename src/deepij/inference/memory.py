"""Memory-aware tile size: measure what a model needs per pixel, read what is free, pick the largest tile.

deepImageJ leaves the tile size to the user (its seed paper names automatic sizing as missing). deepij
measures the model instead: a warm-up forward pass, then two probe passes at small valid tile sizes, each
watched for its peak memory (on the CPU the process's resident memory, sampled in a thread and checked
against the kernel's high-water mark; on a GPU the framework's own peak counters). A straight line through
the two peaks gives a fixed cost and a cost per input pixel. The largest valid tile whose predicted need,
plus the outputs the run will allocate, fits in the budget is chosen: the memory really available (RAM, or
the GPU's free memory) with a safety margin, or less if the user caps it (``max_memory="2GB"``). An image
whose single-pass tile fits runs in one pass. On a CPU the tile's working memory is also kept under
:data:`CPU_TILE_BYTES`, because there huge passes are slower than moderate tiles (measured below).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from deepij.errors import TilingError
from deepij.inference.backends.base import Backend
from deepij.inference.meters import available_memory, forward_meter, is_gpu_device
from deepij.inference.plan import TilePlan
from deepij.inference.tiling import ModelTiling
from deepij.sizes import format_bytes, parse_memory_size

SAFETY = 0.8
"""Fraction of the free memory (or of ``max_memory``) a run may plan to use: the rest absorbs allocator and
memory-pool slack and noise (benchmarks/bench_memory_cap.py: an 8192^2 image with spec pre/post-processing
peaks at 0.82 of a 500MB cap above its baseline, 0.57 of 1GB)."""

PROBE_SIDES = {1: (4096, 16384), 2: (128, 256), 3: (32, 64)}
"""Target probe tile sides per number of tiled axes (rounded to valid sizes)."""

CPU_TILE_BYTES = 256e6
"""On a CPU, automatic tiles keep their working memory (per-pixel part) under this: larger passes are slower
there (benchmarks/bench_tiling_memory.py, 8192^2 image, 2 cores: 512^2 tiles 10.7 s, 2048^2 13.4 s, one
8192^2 pass 40 s and 5.6 GB). On a GPU the largest tile that fits is taken."""

CPU_BATCH_PIXELS = 512 * 512
"""On a CPU, tiles are batched only while a batch holds at most this many pixels."""

@dataclass(frozen=True)
class MemoryEstimate:
    """Predicted peak of one forward pass: ``fixed + per_pixel * tile_pixels * batch``.

    ``output_per_pixel`` is the bytes of all outputs per input pixel (for the run's output arrays).
    """

    fixed: float
    per_pixel: float
    output_per_pixel: float
    probes: tuple[tuple[int, int], ...] = ()
    device: str = "cpu"

    def tile_bytes(self, pixels: int, batch: int = 1) -> float:
        return self.fixed + self.per_pixel * pixels * batch


def _zeros_for(tiling: ModelTiling, shapes: Mapping[str, Mapping[str, int]], tile: Mapping[str, int]) -> list:
    arrays: list[np.ndarray] = []
    for spec in tiling.description.inputs:
        sample = dict(shapes[spec.name])
        if spec.name in tiling.windowed:
            sample.update(tile)
        dims = [1 if a == "b" else sample[a] for a in spec.axes_str]
        arrays.append(np.zeros(dims, dtype=np.dtype(spec.data_type) if spec.data_type else np.float32))
    return arrays


def needs_no_measuring(tiling: ModelTiling, shape: Mapping[str, int]) -> bool:
    """True for images whose single pass is no larger than the largest probe: they run in one pass."""
    sides = PROBE_SIDES.get(len(tiling.axes), PROBE_SIDES[3])
    whole = tiling.single_pass_tile(shape)
    return math.prod(whole.values()) <= sides[-1] ** len(tiling.axes)


def probe_tiles(
    tiling: ModelTiling, shapes: Mapping[str, Mapping[str, int]], growth: int = 1
) -> list[dict[str, int]]:
    """Two small valid tiles (or fewer when the image is smaller) to measure the model with; ``growth``
    multiplies their sides (for engines whose memory pool already holds what small tiles need)."""
    primary = shapes[tiling.input or ""]
    cap = tiling.single_pass_tile(primary)
    sides = PROBE_SIDES.get(len(tiling.axes), PROBE_SIDES[3])
    tiles = []
    for side in sides:
        tile = {}
        for a in tiling.axes:
            q = tiling.smallest_valid(a, max(side * growth, 2 * tiling.pads[a] + 1)) or cap[a]
            tile[a] = min(q, cap[a])
        if tile not in tiles:
            tiles.append(tile)
    return tiles


MAX_PROBE_GROWTH = 8
"""Probe tiles grow up to this factor per side while a pass shows no more memory than its floor."""


def estimate_memory(
    backend: Backend, tiling: ModelTiling, shapes: Mapping[str, Mapping[str, int]]
) -> MemoryEstimate:
    """Measure the backend at the probe tiles and fit ``fixed + per_pixel * pixels``.

    The per-pixel cost is never taken below twice the input and output bytes of a pixel (a floor for
    networks too cheap to measure above the noise). Engines with a memory pool (onnxruntime's arena) show
    nothing for tiles no larger than what the pool already holds, say after the passes made at loading:
    while the fit gives no more than the floor, the probes are measured again with sides twice as large
    (up to :data:`MAX_PROBE_GROWTH` times, never past the image).
    """
    growth = 1
    while True:
        probes = probe_tiles(tiling, shapes, growth)
        estimate = _fit(backend, tiling, shapes, probes)
        larger = probe_tiles(tiling, shapes, 2 * growth)
        if estimate.per_pixel > estimate.floor or growth >= MAX_PROBE_GROWTH or larger == probes:
            return estimate.result
        growth *= 2


@dataclass(frozen=True)
class _Fit:
    result: MemoryEstimate
    floor: float

    @property
    def per_pixel(self) -> float:
        return self.result.per_pixel


def _fit(
    backend: Backend,
    tiling: ModelTiling,
    shapes: Mapping[str, Mapping[str, int]],
    probes: list[dict[str, int]],
) -> _Fit:
    measure = forward_meter(backend)
    backend.predict(_zeros_for(tiling, shapes, probes[0]))  # warm-up: graph building, lazy weights
    measured = []
    output_per_pixel = 0.0
    for tile in probes:
        arrays = _zeros_for(tiling, shapes, tile)
        outputs: list[np.ndarray] = []

        def forward(arrays: list[np.ndarray] = arrays, outputs: list[np.ndarray] = outputs) -> None:
            outputs.extend(backend.predict(arrays))

        used = measure(forward)
        pixels = math.prod(tile.values())
        measured.append((pixels, used))
        output_per_pixel = sum(np.asarray(o).nbytes for o in outputs) / pixels
    input_per_pixel = sum(a.nbytes for a in _zeros_for(tiling, shapes, probes[-1])) / measured[-1][0]
    floor = 2 * (input_per_pixel + output_per_pixel)
    if len(measured) == 1:
        per_pixel = max(floor, measured[0][1] / measured[0][0])
        fixed = 0.0
    else:
        (p1, m1), (p2, m2) = measured[0], measured[-1]
        per_pixel = max(floor, (m2 - m1) / (p2 - p1), m2 / p2 if m1 <= 0 else 0.0)
        fixed = max(0.0, m2 - per_pixel * p2)
    estimate = MemoryEstimate(fixed, per_pixel, output_per_pixel, tuple(measured), backend.device)
    return _Fit(estimate, floor)


# --- choosing ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileChoice:
    """The tile picked for a run, and why.

    ``single_pass``: the tile holds the whole image with its padding. ``image_fits``: one pass on the image
    as it is fits the budget; ``image_fast``: it also stays within the working size that runs fastest (on a
    CPU, :data:`CPU_TILE_BYTES`).
    """

    tile: dict[str, int]
    batch_size: int
    budget: float
    predicted: float
    single_pass: bool
    note: str = ""
    image_fits: bool = False
    image_fast: bool = False


def _balanced(tiling: ModelTiling, axis: str, size: int, q: int) -> int:
    """The smallest valid tile giving the same number of tiles as ``q`` (less computation wasted)."""
    pad = tiling.pads[axis]
    count = math.ceil(size / (q - 2 * pad))
    smallest = tiling.smallest_valid(axis, math.ceil(size / count) + 2 * pad)
    return min(q, smallest) if smallest is not None else q


def choose_tile(
    tiling: ModelTiling,
    shape: Mapping[str, int],
    estimate: MemoryEstimate,
    budget: float,
    *,
    inside: bool = False,
) -> tuple[dict[str, int], float]:
    """The largest valid tile (close to square) whose predicted need fits ``budget``, and that need.

    ``inside``: tiles no larger than the image (unpadded tiles, the image's sizes being valid), else up to
    the one holding the image and its padding. Returns the smallest valid tile when nothing fits (the
    caller decides whether that is an error).
    """
    whole = dict(shape) if inside else tiling.single_pass_tile(shape)
    if estimate.tile_bytes(math.prod(whole.values())) <= budget:
        return whole, estimate.tile_bytes(math.prod(whole.values()))
    options = {a: tiling.candidates(a, whole[a]) for a in tiling.axes}
    position = {a: 0 for a in tiling.axes}
    current = {a: options[a][0] for a in tiling.axes}
    while True:
        growable = [a for a in tiling.axes if position[a] + 1 < len(options[a])]
        grown = False
        for a in sorted(growable, key=lambda a: current[a]):
            trial = dict(current, **{a: options[a][position[a] + 1]})
            if estimate.tile_bytes(math.prod(trial.values())) <= budget:
                current, position[a], grown = trial, position[a] + 1, True
                break
        if not grown:
            break
    balanced = {a: _balanced(tiling, a, shape[a], current[a]) for a in tiling.axes}
    return balanced, estimate.tile_bytes(math.prod(balanced.values()))


def plan_budget(device: str | None, max_memory: int | str | None) -> float:
    """Bytes a run may plan with: the free memory, or ``max_memory`` when it is less, times :data:`SAFETY`
    (the margin absorbs what a fit per pixel does not see: allocator and memory-pool slack)."""
    free = float(available_memory(device))
    if max_memory is not None:
        free = min(free, parse_memory_size(max_memory))
    return free * SAFETY


def auto_tile(
    backend: Backend,
    tiling: ModelTiling,
    shapes: Mapping[str, Mapping[str, int]],
    *,
    samples: int = 1,
    max_memory: int | str | None = None,
    estimate: MemoryEstimate | None = None,
    max_batch: int = 8,
    batch_sizes: Sequence[int] = (),
    reserved: float = 0.0,
    inside: bool = False,
) -> TileChoice:
    """Pick tile and batch size for a run of ``samples`` samples of ``shapes`` on ``backend``.

    Parameters
    ----------
    max_memory : int or str, optional
        Cap on what the run may use (outputs and forward passes), e.g. ``"2GB"``.
    estimate : MemoryEstimate, optional
        A previous :func:`estimate_memory` of this backend (measured when None).
    batch_sizes : sequence of int
        Batch sizes the model accepts above 1 (empty: no batching).
    reserved : float
        Bytes the run holds besides the outputs and the tiles while the network runs (whole processed
        inputs, masks): taken from the budget too.
    inside : bool
        Tiles no larger than the image (unpadded tiles: the image's sizes are valid as they are).

    Raises
    ------
    TilingError
        When ``max_memory`` cannot hold even the outputs and the smallest tile.
    """
    primary = shapes[tiling.input or ""]
    if not tiling.tileable:
        return TileChoice(tiling.single_pass_tile(primary), 1, math.inf, 0.0, True, "model cannot be tiled")
    estimate = estimate or estimate_memory(backend, tiling, shapes)
    image_pixels = math.prod(primary[a] for a in tiling.axes)
    outputs = estimate.output_per_pixel * image_pixels * samples
    held = outputs + reserved
    budget = plan_budget(backend.device, max_memory) - held
    smallest = {a: tiling.candidates(a, 0)[0] for a in tiling.axes}
    if budget < estimate.tile_bytes(math.prod(smallest.values())):
        need = held + estimate.tile_bytes(math.prod(smallest.values()))
        if max_memory is not None:
            also = f" and the processed inputs {format_bytes(reserved)}" if reserved else ""
            # a run plans with SAFETY of the cap: the cap it needs is the need over that fraction
            raise TilingError(
                f"max_memory={max_memory!r} cannot hold this run: the outputs take {format_bytes(outputs)}"
                f"{also} and the smallest tile {smallest} about {format_bytes(need - held)}, and a run "
                f"plans with {SAFETY:.0%} of the cap; expected at least "
                f"{format_bytes(need / SAFETY, up=True)}"
            )
        return TileChoice(smallest, 1, budget, need, False, "less memory free than the smallest tile needs")
    working = budget if is_gpu_device(backend.device) else min(budget, estimate.fixed + CPU_TILE_BYTES)
    tile, _ = choose_tile(tiling, primary, estimate, working, inside=inside)
    single = tiling.fits_one_tile(tile, primary)
    count = samples * math.prod(math.ceil(primary[a] / (tile[a] - 2 * tiling.pads[a])) for a in tiling.axes)
    batch = _largest_batch(estimate, math.prod(tile.values()), budget, count, batch_sizes, max_batch)
    image = estimate.tile_bytes(image_pixels)
    return TileChoice(
        tile,
        batch,
        budget,
        estimate.tile_bytes(math.prod(tile.values()), batch),
        single,
        image_fits=image <= budget,
        image_fast=image <= working,
    )


def _largest_batch(
    estimate: MemoryEstimate, pixels: int, budget: float, count: int, sizes: Sequence[int], max_batch: int
) -> int:
    # On a CPU a batch saves only the per-call overhead, which matters for small tiles alone, while its
    # memory grows with every tile: batch there only up to CPU_BATCH_PIXELS pixels per pass.
    limit = max_batch if is_gpu_device(estimate.device) else max(1, CPU_BATCH_PIXELS // max(pixels, 1))
    batch = 1
    for size in sorted(sizes):
        if size <= min(limit, count) and estimate.tile_bytes(pixels, size) <= budget:
            batch = size
    return batch


def choose_batch(
    estimate: MemoryEstimate,
    plan: TilePlan,
    budget: float,
    samples: int,
    sizes: Sequence[int],
    max_batch: int = 8,
) -> int:
    """The most tiles per forward pass (among ``sizes``) that fit ``budget``: at most ``max_batch`` on a GPU,
    at most :data:`CPU_BATCH_PIXELS` pixels per pass on a CPU.

    Examples
    --------
    >>> import dataclasses
    >>> from deepij.bundle import open_bundle
    >>> from deepij.inference.tiling import analyse_tiling
    >>> plan = analyse_tiling(open_bundle("examples/nuclei_bundle")).plan(
    ...     {"input": {"c": 1, "y": 512, "x": 512}}, tile=128)  # 49 tiles of 128 x 128
    >>> estimate = MemoryEstimate(fixed=50e6, per_pixel=2000.0, output_per_pixel=4.0)  # as measured
    >>> choose_batch(estimate, plan, budget=200e6, samples=1, sizes=range(1, 33))  # 4 tiles fit
    4
    >>> choose_batch(estimate, plan, budget=2e9, samples=1, sizes=range(1, 33))  # CPU_BATCH_PIXELS
    16
    >>> choose_batch(dataclasses.replace(estimate, device="cuda"), plan, budget=2e9, samples=1,
    ...              sizes=range(1, 33))  # max_batch
    8
    """
    return _largest_batch(
        estimate, math.prod(plan.tile.values()), budget, samples * plan.n_tiles, sizes, max_batch
    )
