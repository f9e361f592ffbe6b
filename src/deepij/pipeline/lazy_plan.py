"""How a lazy run (:mod:`deepij.pipeline.lazy_predict`) is cut: its tiles, the cells that group them into
tasks, and the batch size.

- Tiles: with no ``tile=``, as the in-memory run chooses them on this machine
  (:mod:`deepij.pipeline.planning`: the zoo's layout, tiles inside the image for an image of valid sizes; on
  a CPU the tile whose pass runs fastest, :data:`~deepij.inference.memory.CPU_TILE_BYTES`, within half of
  what a worker may use, the other half holding the tasks' windows and results; on a GPU the largest that
  fits). An image small enough to run in one pass runs in one pass, as in memory.
- Cells (:func:`~deepij.inference.lazy.lazy_tiled`'s ``block``): rows or blocks of the input's chunk grid,
  each holding as many tiles as the memory a task may hold allows (a worker's memory, less the network's
  pass, shared by its threads and one task waiting), and no more than gives every thread of every worker
  :data:`TASKS_PER_THREAD` tasks, so that reading, writing and the network overlap. Samples that are one
  cell each share a task while they fit (their tiles then share forward passes, as in memory).
- Workers: those of the active ``dask.distributed`` client (their memory limit, less what they hold now,
  and their threads), else this process on Dask's threads (the free memory). ``max_memory`` caps each.

Examples
--------
>>> cells({"y": 3072, "x": 3072}, {"y": 1024, "x": 1024}, {"y": 1000, "x": 1000}, 2.4e6)
{'y': 1024, 'x': 2048}
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

    from deepij.inference.backends.base import Backend
    from deepij.inference.memory import MemoryEstimate
    from deepij.inference.plan import TilePlan
    from deepij.inference.tiling import ModelTiling
    from deepij.pipeline.loaded_model import LoadedModel

TASKS_PER_THREAD = 2
"""Tasks each Dask thread gets at least (where the image allows): one runs while the next one's chunks
are read."""
BLOCK_PIXELS = 4096 * 4096
"""The most valid pixels one task covers."""
IN_COPIES = 3
"""Copies of a task's input window held at once: the storage chunks, the window cut from them, the tiles."""
OUT_COPIES = 2
"""Copies of a task's results held at once: its pieces, and the output chunks made from them."""


@dataclass(frozen=True)
class Workers:
    """Where the tasks run: bytes one worker process may plan with, its threads, and how many workers."""

    memory: float
    threads: int
    count: int


@dataclass(frozen=True)
class LazyPlan:
    """The tiles, the batch size, and the cells that group tiles into tasks (None: a task per pass)."""

    plan: TilePlan
    batch: int
    block: dict[str, int] | None


def plan_lazy(
    model: LoadedModel,
    backend: Backend,
    inputs: Mapping[str, xr.DataArray],
    options: Mapping[str, Any],
    mode: Any,
    notes: list[str],
) -> LazyPlan:
    """The tiles, batch size and cells of a lazy run (module notes); ``options`` are predict's, checked."""
    from deepij.inference.memory import needs_no_measuring
    from deepij.pipeline.planning import RunRequest, check_seams, image_runs_as_is, layout
    from deepij.pipeline.predict_parts import sample_shapes

    tiling = model.tiling_for(backend)
    shapes = sample_shapes(model.description, inputs)
    max_memory = options["max_memory"]
    request = RunRequest(options["tile"], mode, options["overlap"], options["batch_size"], max_memory)
    primary = shapes[tiling.input] if tiling.input else {}
    as_is = image_runs_as_is(tiling, shapes)
    workers = workers_here(max_memory)
    estimate, held = None, 0.0
    if tiling.input and tiling.tileable and not needs_no_measuring(tiling, primary):
        estimate, held = model.measurements.estimate(backend, tiling, shapes)
    pass_memory = _pass_memory(backend, workers.memory - held, max_memory)
    tile: Any = options["tile"]
    if tile is None and tiling.input and tiling.tileable:
        tile = _default_tile(tiling, primary, estimate, pass_memory, as_is, notes)
    plan = tiling.plan(shapes, tile, layout(request, as_is), options["overlap"])
    plan = check_seams(model, backend, tiling, plan, shapes, request, notes)
    batch = _batch(model, plan, inputs, options["batch_size"], estimate, pass_memory)
    on_host = 0.0
    if estimate is not None and not _on_gpu(backend):
        on_host = estimate.tile_bytes(math.prod(plan.tile.values()), batch)  # the network's pass
    room = workers.memory - held - on_host
    block = _block(plan, inputs[plan.input] if plan.input else None, estimate, workers, room)
    if block is not None:
        notes.append(f"lazy tasks: cells of {block} (tiles grouped by the cell their write region starts in)")
    return LazyPlan(plan, batch, block)


def _on_gpu(backend: Backend) -> bool:
    from deepij.inference.meters import is_gpu_device

    return is_gpu_device(backend.device)


def _pass_memory(backend: Backend, memory: float, max_memory: int | str | None) -> float:
    """Bytes one forward pass may take: the GPU's (as in memory), or half of a worker's (the other half
    holds the tasks' windows and results)."""
    from deepij.inference.memory import plan_budget

    return plan_budget(backend.device, max_memory) if _on_gpu(backend) else memory / 2


def _default_tile(
    tiling: ModelTiling,
    primary: Mapping[str, int],
    estimate: MemoryEstimate | None,
    memory: float,
    as_is: bool,
    notes: list[str],
) -> Any:
    """The tile the in-memory run would take on this machine, its pass within ``memory``."""
    from deepij.inference.memory import CPU_TILE_BYTES, choose_tile
    from deepij.inference.meters import is_gpu_device

    if estimate is None:  # small enough to run in one pass, as in memory
        notes.append(f"one pass ({'the image as it is' if as_is else 'mirror-padded'})")
        return "image" if as_is else "whole"
    working = memory if is_gpu_device(estimate.device) else min(memory, estimate.fixed + CPU_TILE_BYTES)
    chosen, need = choose_tile(tiling, primary, estimate, working, inside=as_is)
    if as_is and all(chosen[a] >= primary[a] for a in tiling.axes):
        notes.append("one pass, unpadded (the image as it is fits a worker's memory and runs fast)")
        return "image"
    notes.append(f"tile {chosen}: the fastest pass within a worker's memory ({need / 1e6:.0f} MB)")
    return chosen


def _batch(
    model: LoadedModel,
    plan: TilePlan,
    inputs: Mapping[str, xr.DataArray],
    batch_size: int | str,
    estimate: MemoryEstimate | None,
    memory: float,
) -> int:
    """Tiles per forward pass: as asked, else as the in-memory run chooses them (1 for an image not
    measured)."""
    if batch_size != "auto":
        return int(batch_size)
    if estimate is None or not plan.input:
        return 1
    from deepij.inference.memory import choose_batch
    from deepij.pipeline.planning import batch_sizes

    spec = model.description.input(plan.input)
    sizes = {str(d): int(n) for d, n in inputs[plan.input].sizes.items()}
    samples = math.prod(n for d, n in sizes.items() if d not in spec.axes_str or d == "b")
    return choose_batch(estimate, plan, memory, samples, batch_sizes(spec))


def _block(
    plan: TilePlan,
    primary: xr.DataArray | None,
    estimate: MemoryEstimate | None,
    workers: Workers,
    room: float,
) -> dict[str, int] | None:
    """The cells (module notes), their tasks sharing ``room`` bytes of a worker; None for a plan without
    tiled axes."""
    if primary is None or not plan.tiled or not plan.grids:
        return None
    valid = {g.axis: max(1, g.tile - 2 * g.pad) for g in plan.grids}
    sizes = {g.axis: g.size for g in plan.grids}
    chunks = dict(zip(map(str, primary.dims), primary.chunks or (), strict=False))
    units = {a: int(chunks[a][0]) if a in chunks and len(chunks[a]) > 1 else valid[a] for a in sizes}
    network = plan.tile_shapes[plan.input]  # the axes the network takes, batch aside
    looped = [str(d) for d in primary.dims if str(d) not in network]
    samples = math.prod(int(primary.sizes[d]) for d in looped)
    channels = math.prod(int(n) for a, n in network.items() if a not in sizes)
    per_pixel = _bytes_per_pixel(primary.dtype.itemsize * channels, estimate)
    spread = samples * math.prod(sizes.values()) / (TASKS_PER_THREAD * workers.count * workers.threads)
    pixels = min(max(room, 0) / (workers.threads + 1) / per_pixel, spread, BLOCK_PIXELS)
    block = cells(sizes, units, valid, max(pixels, math.prod(valid.values())))
    if all(block[a] >= sizes[a] for a in sizes):  # a sample is one cell: samples share tasks
        join = max(1, int(pixels // math.prod(sizes.values())))
        for dim in reversed(looped):
            block[dim] = min(int(primary.sizes[dim]), join)
            join = max(1, join // block[dim])
    return block


def _bytes_per_pixel(input_bytes: int, estimate: MemoryEstimate | None) -> float:
    """Bytes a task holds per valid pixel of its cell: its input (``input_bytes`` a pixel, all channels)
    and the outputs (float32 like the input when not measured)."""
    outputs = estimate.output_per_pixel if estimate is not None else 4.0 * max(1, input_bytes // 4)
    return IN_COPIES * input_bytes + OUT_COPIES * outputs


def cells(
    sizes: Mapping[str, int], units: Mapping[str, int], least: Mapping[str, int], pixels: float
) -> dict[str, int]:
    """Cell lengths per axis: whole ``units`` (the input's chunks, or tiles' valid regions), at least
    ``least`` (a tile's valid region) rounded up to whole units, then grown by whole units along the last
    axis first (rows), then the earlier ones, while a cell holds at most ``pixels``; never past the image.

    Examples
    --------
    >>> cells({"y": 6400, "x": 6400}, {"y": 1024, "x": 1024}, {"y": 504, "x": 504}, 1.5e6)
    {'y': 1024, 'x': 1024}
    >>> cells({"y": 16384, "x": 16384}, {"y": 1024, "x": 1024}, {"y": 1000, "x": 1000}, 16777216)
    {'y': 1024, 'x': 16384}
    """
    cell = {a: min(sizes[a], math.ceil(least[a] / units[a]) * units[a]) for a in sizes}
    for axis in reversed(list(sizes)):
        others = math.prod(cell[a] for a in sizes if a != axis)
        grown = int(pixels // others) // units[axis] * units[axis]
        cell[axis] = min(sizes[axis], max(cell[axis], grown))
    return cell


# --- the workers ----------------------------------------------------------------------------------------


def workers_here(max_memory: int | str | None) -> Workers:
    """The workers of the active ``dask.distributed`` client, else this process on Dask's threads (module
    notes)."""
    from deepij.inference.memory import SAFETY, plan_budget
    from deepij.inference.meters import available_memory
    from deepij.sizes import parse_memory_size

    client = active_client()
    if client is None:
        import dask

        threads = int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
        return Workers(plan_budget("cpu", max_memory), threads, 1)
    cap = parse_memory_size(max_memory) if max_memory is not None else math.inf
    found = client.scheduler_info(n_workers=-1).get("workers", {})
    if not found:
        return Workers(plan_budget("cpu", max_memory), 1, 1)
    rooms = []
    for worker in found.values():
        limit = min(float(worker.get("memory_limit") or available_memory("cpu")), cap)
        rooms.append(limit * SAFETY - float(worker.get("metrics", {}).get("memory", 0)))
    threads = max(int(w.get("nthreads", 1)) for w in found.values())
    return Workers(max(min(rooms), 0.0), threads, len(found))


def active_client() -> Any:
    """The ``dask.distributed`` client ``dask.compute`` would run on now, or None (Dask's threads, or a
    scheduler chosen in the configuration)."""
    import sys

    if "distributed" not in sys.modules:
        return None  # no client can exist
    from dask.base import get_scheduler

    scheduler = get_scheduler()
    client = getattr(scheduler, "__self__", None)
    return client if hasattr(client, "scheduler_info") else None
