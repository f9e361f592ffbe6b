"""Images bigger than memory: a :class:`~deepij.inference.plan.TilePlan` run as a Dask task graph.

The plan becomes the graph (:func:`lazy_tiled`):

- one task per block of tiles. The tiles are grouped by the cell of a grid (``block``, in input pixels,
  usually whole chunks of the input store) their write region starts in, so that a task reads one window:
  the cell's tiles plus their halo, as one dask slice of the input (a Zarr-backed input is read chunk by
  chunk from storage, each chunk once however many tiles need it). The task runs its tiles through
  :class:`~deepij.inference.runner.TiledRun` (the same cutting, mirroring, per-tile processing, batches,
  casts and output checks as the in-memory run) and hands back each tile's valid region. Samples whose
  tiles all fit in one cell share a task, so that their tiles can share forward passes as in memory;
- one task per output chunk, the chunks regular (the input store's chunking, mapped to the output) so
  that a store is written one chunk per task: each takes the pieces of the block tasks that cover it,
  placed as :meth:`~deepij.inference.runner.TiledRun.write` places them (added in the run's tile order
  with blending).

The result equals the in-memory tiled run with the same tiles exactly: the same windows go through the same
code. The network is found through ``backend``, a callable that gives the loaded
:class:`~deepij.inference.backends.base.Backend` in whatever process runs the task (so the graph never
carries a loaded network; a Dask worker loads it once and keeps it). Forward passes of one backend never
overlap inside a process (a lock around the network alone): Dask's other threads read, cut and finish
tiles and write chunks meanwhile, instead of multiplying the network's memory.

Statistics of spec ops (:mod:`deepij.processing`) on such an image are taken with Dask over the whole
image before tiling (:mod:`deepij.inference.lazy_statistics`).

No JVM here: a bundle whose processing runs in ImageJ needs the whole image in one JVM (the pipeline says so).

Examples
--------
The demo bundle's network over a 1024x1024 dask image, in 256x256 tiles:

>>> import dask.array as da
>>> import deepij
>>> model = deepij.load("examples/nuclei_bundle")
>>> backend = model.backend()
>>> plan = model.tiling.plan({"input": {"c": 1, "y": 1024, "x": 1024}}, {"y": 256, "x": 256}, "unpadded")
>>> big = da.zeros((1, 1, 1024, 1024), "float32", chunks=(1, 1, 512, 512))
>>> outputs = lazy_tiled(lambda: backend, plan, {"input": xr.DataArray(big, dims=("b", "c", "y", "x"))})
>>> outputs["probability"].data  # a dask array, computed chunk by chunk  # doctest: +ELLIPSIS
dask.array<deepij-output-probability, shape=(1, 1, 1024, 1024), dtype=float32, chunksize=(1, 1, 512, 512), ...
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import xarray as xr

from deepij.inference.grid import mirror_indices
from deepij.inference.lazy_chunks import output_array
from deepij.inference.lazy_windows import Layout, Piece, WindowedRun
from deepij.inference.plan import Tile, TilePlan
from deepij.inference.runner import TiledRun, TileTransform, WorkItem

if TYPE_CHECKING:
    from deepij.inference.backends.base import Backend

BackendSource = Callable[[], "Backend"]
"""Gives the loaded network in the process that calls it (picklable when the graph goes to other
processes)."""

_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def lazy_tiled(
    backend: BackendSource,
    plan: TilePlan,
    inputs: Mapping[str, xr.DataArray],
    *,
    batch_size: int = 1,
    prepare: Mapping[str, TileTransform] | None = None,
    finish: Mapping[str, TileTransform] | None = None,
    block: Mapping[str, int] | None = None,
    chunks: Mapping[str, int] | None = None,
) -> dict[str, xr.DataArray]:
    """Run ``plan`` over every sample of ``inputs`` as a Dask graph; the outputs are lazy.

    Parameters
    ----------
    backend : callable
        ``backend()`` gives the loaded network (module notes). It is called once here, on the first batch,
        to learn the outputs' shapes and types; that batch's results are kept in the graph.
    plan, batch_size, prepare, finish
        As for :func:`deepij.inference.runner.run_tiled`.
    inputs : mapping of str to xarray.DataArray
        Per model input, the image (dask-backed or numpy) with named dims, as :class:`TiledRun` takes it.
    block : mapping of str to int, optional
        The cells that group tiles into one task (module notes, :func:`block_work`): per tiled axis a
        length in input pixels, per looped dim a number of samples. None: a task per forward pass.
    chunks : mapping of str to int, optional
        Per tiled axis, the outputs' chunk length in input pixels (scaled as each output axis follows the
        input's). None: the primary input's own chunks along the axes it is cut along, else ``block``,
        else a tile's valid region.

    Returns
    -------
    dict of str to xarray.DataArray
        Per output, a dask-backed DataArray with the dims :func:`~deepij.inference.runner.run_tiled` gives.
    """
    import functools

    import dask

    layout: dict[str, tuple[tuple[str, ...], tuple[int, ...], str]] = {
        name: (tuple(map(str, data.dims)), tuple(int(n) for n in data.shape), data.dtype.str)
        for name, data in inputs.items()
    }
    spec = _RunSpec(backend, plan, layout, batch_size, dict(prepare or {}), dict(finish or {}))
    probe = spec.run(backend(), {})
    arranged = {name: _arranged(probe, name, inputs[name]) for name in inputs}
    token = uuid.uuid4().hex[:12]
    blocks = block_work(probe, block)
    opening = blocks[0][: probe.batch_size]
    first = _run_block(spec, opening, dask.compute(_reads(probe, arranged, opening))[0])
    # Constants enter the graph behind a function, so Dask never walks through their arrays.
    spec_node = dask.delayed(functools.partial(_constant, spec), pure=False)(
        dask_key_name=f"deepij-run-{token}"
    )
    done = dask.delayed(functools.partial(_constant, first), pure=False)(dask_key_name=f"deepij-done-{token}")
    tasks = []
    for index, items in enumerate(blocks):
        rest = items[len(opening) :] if index == 0 else items  # the first batch's tiles are read already
        tasks.append(
            dask.delayed(_run_block, pure=False)(
                spec_node,
                items,
                _reads(probe, arranged, rest) if rest else None,
                done if index == 0 else None,
                dask_key_name=f"deepij-tiles-{token}-{index}",
            )
        )
    sizes = _chunk_sizes(probe, arranged, block, chunks)
    return {
        out.name: output_array(probe, out.name, first, blocks, tasks, token, sizes)
        for out in probe.description.outputs
    }


def _constant(value: Any) -> Any:
    return value


@dataclass
class _RunSpec:
    """What every block task needs besides its windows; one graph node, shipped once per worker."""

    backend: BackendSource
    plan: TilePlan
    layout: Layout
    batch_size: int
    prepare: dict[str, TileTransform]
    finish: dict[str, TileTransform]

    def run(self, backend: Backend, windows: Mapping[str, Any]) -> WindowedRun:
        return WindowedRun(
            backend, self.plan, self.layout, windows, self.batch_size, self.prepare, self.finish
        )


# --- blocks of tiles ------------------------------------------------------------------------------------


def block_work(run: TiledRun, block: Mapping[str, int] | None) -> list[list[WorkItem]]:
    """The items of every task, in the run's order: grouped by the cell of ``block`` their tile's write
    region starts in (per tiled axis a length in input pixels; per looped dim a number of samples, 1 when
    absent), cells in the order of their first item; a task per forward pass when ``block`` is None."""
    if block is None:
        return run.batches()
    items = run.items()
    groups: dict[tuple[int, ...], list[WorkItem]] = {}
    for item in items:
        samples = (k // max(1, block.get(d, 1)) for d, k in zip(run.loop_dims, item.key, strict=True))
        grids = enumerate(run.plan.grids)
        tiles = (item.tile.write[i][0] // max(1, block.get(g.axis, g.size)) for i, g in grids)
        groups.setdefault((*samples, *tiles), []).append(item)
    return list(groups.values())


def _chunk_sizes(
    run: WindowedRun,
    arranged: Mapping[str, Any],
    block: Mapping[str, int] | None,
    chunks: Mapping[str, int] | None,
) -> dict[str, int]:
    """Per tiled axis, the outputs' chunk length in input pixels (see :func:`lazy_tiled`)."""
    primary = run.description.input(run.plan.input)
    axes = [a for a in primary.axes_str if a != "b"]
    looped = len(run.loop_dims) if run.looped(primary.name) else 0
    stored = arranged[primary.name].chunks
    sizes = {}
    for grid in run.plan.grids:
        along = stored[looped + axes.index(grid.axis)]
        if chunks and grid.axis in chunks:
            sizes[grid.axis] = int(chunks[grid.axis])
        elif len(along) > 1:
            sizes[grid.axis] = int(along[0])
        elif block and grid.axis in block:
            sizes[grid.axis] = int(block[grid.axis])
        else:
            sizes[grid.axis] = grid.tile - 2 * grid.pad
    return {a: max(1, n) for a, n in sizes.items()}


# --- reading windows ------------------------------------------------------------------------------------


class _Window:
    """One sample of one input as a task sees it: the part its tiles read (``values``, starting at
    ``origin`` per axis), addressed in the sample's own coordinates (what
    :func:`~deepij.inference.runner.cut_tile` asks of a whole sample)."""

    def __init__(self, values: np.ndarray, origin: Sequence[int]):
        self.values = values
        self.origin = tuple(origin)
        self.ndim = values.ndim
        self.dtype = values.dtype

    def __getitem__(self, index: tuple[slice, ...]) -> np.ndarray:
        shifted = tuple(
            s if s.start is None else slice(s.start - o, s.stop - o)
            for s, o in zip(index, self.origin, strict=True)
        )
        return self.values[shifted]


class _InputWindows:
    """An input with looped dims: the per-sample windows of one task, by sample position."""

    def __init__(self, samples: Mapping[tuple[int, ...], Any], dtype: Any):
        self.samples = samples
        self.dtype = np.dtype(dtype)

    def __getitem__(self, key: tuple[int, ...]) -> Any:
        return self.samples[key]


def tile_window(plan: TilePlan, axes: str, ndim: int, tile: Tile) -> tuple[slice, ...]:
    """The part of a sample a tile reads before mirroring (what :func:`cut_tile` slices), in the sample's
    axes ``axes``: its window clipped to the image, and the mirrored pixels' sources.

    Examples
    --------
    >>> import deepij
    >>> tiling = deepij.load("examples/nuclei_bundle").tiling
    >>> plan = tiling.plan({"input": {"c": 1, "y": 1024, "x": 1024}}, {"y": 256, "x": 256}, "unpadded")
    >>> tile_window(plan, "cyx", 3, next(plan.tiles()))
    (slice(None, None, None), slice(0, 256, None), slice(0, 256, None))
    """
    index: list[slice] = [slice(None)] * ndim
    for k, grid in enumerate(plan.grids):
        start = tile.starts[k]
        if start >= 0 and start + grid.tile <= grid.size:
            index[axes.index(grid.axis)] = slice(start, start + grid.tile)
        else:
            rows = mirror_indices(start, grid.tile, grid.size)
            index[axes.index(grid.axis)] = slice(int(rows.min()), int(rows.max()) + 1)
    return tuple(index)


def block_window(plan: TilePlan, axes: str, ndim: int, tiles: Sequence[Tile]) -> tuple[slice, ...]:
    """The part of a sample the tiles ``tiles`` read together: the union of their :func:`tile_window`."""
    windows = [tile_window(plan, axes, ndim, t) for t in tiles]
    return tuple(
        slice(None) if p[0].start is None else slice(min(s.start for s in p), max(s.stop for s in p))
        for p in zip(*windows, strict=True)
    )


def _arranged(probe: WindowedRun, name: str, data: xr.DataArray) -> Any:
    """The input as a dask array laid out as the runner lays it (looped dims first, then the model's axes)."""
    import dask.array as da

    spec = probe.description.input(name)
    axes = [a for a in spec.axes_str if a != "b"]
    looped = probe.loop_dims if probe.looped(name) else ()
    arranged = data.transpose(*looped, *axes).data
    return arranged if isinstance(arranged, da.Array) else da.from_array(arranged, chunks=-1)


def _reads(probe: WindowedRun, arranged: Mapping[str, Any], items: Sequence[WorkItem]) -> dict[str, Any]:
    """Per input, the dask slices one task reads: ``{sample key: (window, origin)}`` for looped inputs,
    ``(window, origin)`` otherwise (the whole sample, at 0, for inputs given whole)."""
    reads: dict[str, Any] = {}
    by_key: dict[tuple[int, ...], list[Tile]] = {}
    for item in items:
        by_key.setdefault(item.key, []).append(item.tile)
    for spec in probe.description.inputs:
        array = arranged[spec.name]
        looped = probe.looped(spec.name)
        axes = "".join(a for a in spec.axes_str if a != "b")
        per_key: dict[tuple[int, ...], Any] = {}
        for key, tiles in (by_key if looped else {(): [item.tile for item in items]}).items():
            sample = array[key] if looped else array
            if spec.name not in probe.plan.windowed:
                per_key[key] = (sample, (0,) * sample.ndim)
                continue
            index = block_window(probe.plan, axes, sample.ndim, tiles)
            per_key[key] = (sample[index], tuple(0 if s.start is None else s.start for s in index))
        reads[spec.name] = per_key if looped else per_key[()]
    return reads


def _windows(probe: WindowedRun, layout: Layout, reads: Mapping[str, Any]) -> dict[str, Any]:
    """The read (now numpy) windows as the runner's samples."""
    windows: dict[str, Any] = {}
    for spec in probe.description.inputs:
        read = reads[spec.name]
        dtype = layout[spec.name][2]
        if probe.looped(spec.name):
            samples = {key: _Window(np.asarray(v), origin) for key, (v, origin) in read.items()}
            windows[spec.name] = _InputWindows(samples, dtype)
        else:
            values, origin = read
            windows[spec.name] = _Window(np.asarray(values), origin)
    return windows


# --- the tasks ------------------------------------------------------------------------------------------


def _run_block(
    spec: _RunSpec,
    items: Sequence[WorkItem],
    reads: Mapping[str, Any] | None,
    done: Sequence[dict[str, Piece]] | None = None,
) -> list[dict[str, Piece]]:
    """The tiles of one task, batch by batch: per item, each output's valid region and where it goes.
    ``done``: the pieces of the first items, computed already (``reads`` then covers the others)."""
    pieces = list(done or [])
    if len(pieces) == len(items):
        return pieces
    locked = cast("Backend", _Locked(spec.backend()))
    run = spec.run(locked, _windows(spec.run(locked, {}), spec.layout, reads or {}))
    for start in range(len(pieces), len(items), run.batch_size):
        batch = items[start : start + run.batch_size]
        results = run.run_batch(batch)
        pieces.extend(
            {name: run.piece(item, name, result[name]) for name in result}
            for item, result in zip(batch, results, strict=False)
        )
    return pieces


class _Locked:
    """A backend whose forward passes in this process run one at a time; the rest of a task (reading, cutting,
    per-tile processing, checks) runs beside other tasks' passes."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.description = backend.description

    def predict(self, arrays: Sequence[np.ndarray]) -> Any:
        with _forward_lock(self._backend):
            return self._backend.predict(list(arrays))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def _forward_lock(backend: Backend) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(id(backend), threading.Lock())
