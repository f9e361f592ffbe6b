"""Images bigger than memory: a :class:`~deepij.inference.plan.TilePlan` run as a Dask task graph.

The plan becomes the graph (:func:`lazy_tiled`):

- one task per forward pass (a batch of tiles). It receives only the windows its tiles read (tile plus
  halo, as dask slices of the input, so a Zarr-backed input is read chunk by chunk from storage), runs them
  through :class:`~deepij.inference.runner.TiledRun` (the same cutting, mirroring, per-tile processing, casts
  and output checks as the in-memory run) and hands back only each tile's valid region;
- one task per output chunk. The chunks are the tiles' write regions (deepImageJ's grid: one tile per
  chunk, the last one smaller), so a chunk is the piece one tile gave, placed as
  :meth:`~deepij.inference.runner.TiledRun.write` places it. With blending, chunks are cut at every seam and
  sum the weighted pieces that cover them.

The result equals the in-memory tiled run exactly: the same windows go through the same code. The network is
found through ``backend``, a callable that gives the loaded :class:`~deepij.inference.backends.base.Backend`
in whatever process runs the task (so the graph never carries a loaded network; a Dask worker loads it once
and keeps it). Forward passes of one backend never overlap inside a process (a lock): Dask's threads overlap
reading and writing with them instead of multiplying the network's memory.

Statistics of spec ops (:mod:`deepij.processing`) on such an image are taken with Dask over the whole
image before tiling (:mod:`deepij.inference.lazy_statistics`).

No JVM here: a bundle whose processing runs in ImageJ needs the whole image in one JVM (the pipeline says so).

Examples
--------
>>> outputs = lazy_tiled(lambda: backend, plan, {"raw": xr.DataArray(big, dims=("b", "c", "y", "x"))})
... # doctest: +SKIP
>>> outputs["out"].data  # a dask array, computed chunk by chunk  # doctest: +SKIP
dask.array<deepij-output, shape=(1, 1, 8192, 8192), chunksize=(1, 1, 240, 240)>
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from deepij.inference.grid import mirror_indices
from deepij.inference.plan import Tile, TilePlan
from deepij.inference.runner import TiledRun, TileTransform, WorkItem

if TYPE_CHECKING:
    from deepij.inference.backends.base import Backend

BackendSource = Callable[[], "Backend"]
"""Gives the loaded network in the process that calls it (picklable when the graph goes to other
processes)."""
Layout = Mapping[str, tuple[tuple[str, ...], tuple[int, ...], str]]
"""Per input name: (dims, shape, dtype) of the whole image."""
Piece = tuple[tuple[Any, ...], np.ndarray]
"""Where a tile's valid region goes in the whole output (index), and its values."""

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
    batches = probe.batches()
    reads = [_reads(probe, arranged, items) for items in batches]
    first = _forward(spec, batches[0], dask.compute(reads[0])[0])
    # Constants enter the graph behind a function, so Dask never walks through their arrays.
    spec_node = dask.delayed(functools.partial(_constant, spec), pure=False)(
        dask_key_name=f"deepij-run-{token}"
    )
    tasks = [
        dask.delayed(functools.partial(_constant, first), pure=False)(dask_key_name=f"deepij-tiles-{token}-0")
    ]
    for index in range(1, len(batches)):
        tasks.append(
            dask.delayed(_forward, pure=False)(
                spec_node, batches[index], reads[index], dask_key_name=f"deepij-tiles-{token}-{index}"
            )
        )
    return {
        out.name: _output_array(probe, out.name, first, batches, tasks, token)
        for out in probe.description.outputs
    }


def _constant(value: Any) -> Any:
    return value


@dataclass
class _RunSpec:
    """What every forward task needs besides its windows; one graph node, shipped once per worker."""

    backend: BackendSource
    plan: TilePlan
    layout: Layout
    batch_size: int
    prepare: dict[str, TileTransform]
    finish: dict[str, TileTransform]

    def run(self, backend: Backend, windows: Mapping[str, Any]) -> _WindowedRun:
        return _WindowedRun(
            backend, self.plan, self.layout, windows, self.batch_size, self.prepare, self.finish
        )


class _WindowedRun(TiledRun):
    """A :class:`TiledRun` that holds only the windows one batch reads (``windows``: per input, what
    ``_samples`` holds in a whole run), with zero-byte stand-ins for the whole images."""

    def __init__(
        self,
        backend: Backend,
        plan: TilePlan,
        layout: Layout,
        windows: Mapping[str, Any],
        batch_size: int,
        prepare: Mapping[str, TileTransform],
        finish: Mapping[str, TileTransform],
    ) -> None:
        stand_ins = {
            name: xr.DataArray(np.broadcast_to(np.zeros((), dtype=np.dtype(dtype)), shape), dims=dims)
            for name, (dims, shape, dtype) in layout.items()
        }
        super().__init__(backend, plan, stand_ins, batch_size, prepare=prepare, finish=finish)
        for name, window in windows.items():
            self._samples[name] = (window, self._samples[name][1])

    def looped(self, name: str) -> bool:
        return self._samples[name][1]

    def piece(self, item: WorkItem, name: str, result: np.ndarray) -> Piece:
        """One item's valid region of output ``name``, finished and weighted as :meth:`write` would."""
        target, piece, weights = self.valid_piece(item, self.description.output(name), result)
        if weights is not None:
            piece = piece * weights.astype(np.result_type(piece.dtype, np.float32))
        return target, piece

    def target(self, item: WorkItem, name: str) -> tuple[Any, ...]:
        dest, _ = self.plan.output_regions(item.tile, name)
        return self._target(self.description.output(name), item.key, dest)


# --- reading windows ------------------------------------------------------------------------------------


class _SampleWindows:
    """One sample of one input as a forward task sees it: only the windows its tiles read, addressed in
    the sample's own coordinates (what :func:`~deepij.inference.runner.cut_tile` asks of a whole sample)."""

    def __init__(self, windows: Mapping[tuple[tuple[int, int, int], ...], np.ndarray], ndim: int, dtype: Any):
        self.windows = windows
        self.ndim = ndim
        self.dtype = np.dtype(dtype)

    def __getitem__(self, index: tuple[slice, ...]) -> np.ndarray:
        return self.windows[_window_key(index)]


class _InputWindows:
    """An input with looped dims: the per-sample windows of one batch, by sample position."""

    def __init__(self, samples: Mapping[tuple[int, ...], Any], dtype: Any):
        self.samples = samples
        self.dtype = np.dtype(dtype)

    def __getitem__(self, key: tuple[int, ...]) -> Any:
        return self.samples[key]


def _window_key(index: Sequence[slice]) -> tuple[tuple[int, int, int], ...]:
    return tuple((p, int(s.start), int(s.stop)) for p, s in enumerate(index) if s.start is not None)


def tile_window(plan: TilePlan, axes: str, ndim: int, tile: Tile) -> tuple[slice, ...]:
    """The part of a sample a tile reads before mirroring (what :func:`cut_tile` slices), in the sample's
    axes ``axes``: its window clipped to the image, and the mirrored pixels' sources.

    Examples
    --------
    >>> tile_window(plan, "cyx", 3, next(plan.tiles()))  # doctest: +SKIP
    (slice(None, None, None), slice(0, 72, None), slice(0, 72, None))
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


def _arranged(probe: _WindowedRun, name: str, data: xr.DataArray) -> Any:
    """The input as a dask array laid out as the runner lays it (looped dims first, then the model's axes)."""
    import dask.array as da

    spec = probe.description.input(name)
    axes = [a for a in spec.axes_str if a != "b"]
    looped = probe.loop_dims if probe.looped(name) else ()
    arranged = data.transpose(*looped, *axes).data
    return arranged if isinstance(arranged, da.Array) else da.from_array(arranged, chunks=-1)


def _reads(probe: _WindowedRun, arranged: Mapping[str, Any], items: Sequence[WorkItem]) -> dict[str, Any]:
    """Per input, the dask slices one batch reads: ``{sample key: {window key: slice}}`` for looped inputs,
    ``{window key: slice}`` otherwise (the whole sample for inputs given whole)."""
    reads: dict[str, Any] = {}
    for spec in probe.description.inputs:
        array = arranged[spec.name]
        looped = probe.looped(spec.name)
        windowed = spec.name in probe.plan.windowed
        axes = "".join(a for a in spec.axes_str if a != "b")
        per_key: dict[tuple[int, ...], Any] = {}
        for item in items:
            sample = array[item.key] if looped else array
            if not windowed:
                per_key[item.key if looped else ()] = sample
                continue
            index = tile_window(probe.plan, axes, sample.ndim, item.tile)
            per_key.setdefault(item.key if looped else (), {})[_window_key(index)] = sample[index]
        reads[spec.name] = per_key if looped else per_key[()]
    return reads


def _windows(probe: _WindowedRun, layout: Layout, reads: Mapping[str, Any]) -> dict[str, Any]:
    """The read (now numpy) windows as the runner's samples."""
    windows: dict[str, Any] = {}
    for spec in probe.description.inputs:
        read = reads[spec.name]
        dtype = layout[spec.name][2]
        windowed = spec.name in probe.plan.windowed
        ndim = len([a for a in spec.axes_str if a != "b"])

        def sample(value: Any, ndim: int = ndim, dtype: Any = dtype, windowed: bool = windowed) -> Any:
            return _SampleWindows(value, ndim, dtype) if windowed else np.asarray(value)

        if probe.looped(spec.name):
            windows[spec.name] = _InputWindows({k: sample(v) for k, v in read.items()}, dtype)
        else:
            windows[spec.name] = sample(read)
    return windows


# --- the tasks ------------------------------------------------------------------------------------------


def _forward(spec: _RunSpec, items: Sequence[WorkItem], reads: Mapping[str, Any]) -> list[dict[str, Piece]]:
    """One forward pass: per item, each output's valid region and where it goes."""
    backend = spec.backend()
    run = spec.run(backend, {})
    run = spec.run(backend, _windows(run, spec.layout, reads))
    with _forward_lock(backend):
        results = run.run_batch(items)
    return [
        {name: run.piece(item, name, result[name]) for name in result}
        for item, result in zip(items, results, strict=False)
    ]


def _forward_lock(backend: Backend) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(id(backend), threading.Lock())


def _assemble(
    region: tuple[slice, ...],
    dtype: str,
    blend: bool,
    name: str,
    batches: Sequence[list[dict[str, Piece]]],
    positions: Sequence[int],
) -> np.ndarray:
    """One output chunk from the pieces that cover it (the last one wins unless blending: then they add):
    piece ``positions[k]`` of forward pass ``batches[k]``."""
    shape = tuple(s.stop - s.start for s in region)
    chunk: np.ndarray | None = None
    for batch, i in zip(batches, positions, strict=True):
        target, piece = batch[i][name]
        local = _overlap(region, target, piece.shape)
        if local is None:
            continue
        in_chunk, in_piece = local
        values = piece[in_piece]
        if chunk is None and not blend and values.size == int(np.prod(shape)):
            chunk = np.asarray(values, dtype=dtype).reshape(shape)  # the usual case: one tile, one chunk
            continue
        if chunk is None:
            chunk = np.zeros(shape, dtype=dtype)
        if blend:
            chunk[in_chunk] += values
        else:
            chunk[in_chunk] = values
    return chunk if chunk is not None else np.zeros(shape, dtype=dtype)


def _overlap(
    region: tuple[slice, ...], target: tuple[Any, ...], piece_shape: tuple[int, ...]
) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """(where in the chunk, what of the piece) for the part of a piece inside a chunk; None if apart.

    ``target`` indexes the whole output: integers along leading looped dims (the piece lacks those axes),
    slices along the output's own axes (``slice(None)``: the whole axis).
    """
    lead = len(target) - len(piece_shape)
    in_chunk, in_piece = [], []
    for axis, (window, where) in enumerate(zip(region, target, strict=True)):
        if axis < lead:
            if not window.start <= where < window.stop:
                return None
            in_chunk.append(slice(where - window.start, where - window.start + 1))
            continue
        start = 0 if where.start is None else where.start
        stop = start + piece_shape[axis - lead]
        low, high = max(start, window.start), min(stop, window.stop)
        if low >= high:
            return None
        in_chunk.append(slice(low - window.start, high - window.start))
        in_piece.append(slice(low - start, high - start))
    return tuple(in_chunk), tuple(in_piece)


# --- the outputs ----------------------------------------------------------------------------------------


def _output_array(
    probe: _WindowedRun,
    name: str,
    first: list[dict[str, Piece]],
    batches: Sequence[Sequence[WorkItem]],
    tasks: Sequence[Any],
    token: str,
) -> xr.DataArray:
    """One output as a dask array: a task per chunk, taking the pieces of the forward tasks that cover it."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    dims, shape, dtype = _output_layout(probe, name, first)
    bounds = _chunk_bounds(probe, name, shape, dims)
    located = [
        (probe.target(item, name), tasks[b].key, i)
        for b, items in enumerate(batches)
        for i, item in enumerate(items)
    ]
    per_axis = [
        _covering(bounds[axis], [where[axis] for where, _, _ in located], shape[axis])
        for axis in range(len(dims))
    ]
    key = f"deepij-output-{name}-{token}"
    layer: dict[Any, Any] = {}
    blend = probe.plan.mode == "blend"
    for index in np.ndindex(*(len(b) - 1 for b in bounds)):
        region = tuple(slice(bounds[a][k], bounds[a][k + 1]) for a, k in enumerate(index))
        covering = sorted(set.intersection(*(per_axis[a][k] for a, k in enumerate(index))))
        # The forward tasks' keys go in a list of their own: Dask finds a task's dependencies in its
        # arguments and in lists, not inside tuples (a culled graph dropped keys nested in tuples, and the
        # chunk task then got the key's text instead of the forward pass' result).
        passes = [located[j][1] for j in covering]
        positions = [located[j][2] for j in covering]
        layer[(key, *index)] = (_assemble, region, dtype, blend, name, passes, positions)
    chunks = tuple(tuple(int(n) for n in np.diff(b)) for b in bounds)
    graph = HighLevelGraph.from_collections(key, layer, dependencies=list(tasks))
    return xr.DataArray(da.Array(graph, key, chunks, dtype), dims=dims)


def _output_layout(
    probe: _WindowedRun, name: str, first: list[dict[str, Piece]]
) -> tuple[tuple[str, ...], tuple[int, ...], str]:
    """(dims, shape, dtype) of a whole output, as :meth:`TiledRun._allocate` makes it (without making it),
    from the first batch's pieces (already finished: their type is the output's)."""
    _, piece = first[0][name]
    dims, shape, dtype = probe.output_layout(probe.description.output(name), piece.shape, piece.dtype)
    return dims, shape, dtype.str


def _chunk_bounds(
    probe: _WindowedRun, name: str, shape: Sequence[int], dims: Sequence[str]
) -> list[list[int]]:
    """Per output dim, the chunk boundaries: every seam of the tiles' write regions along mapped axes, one
    per sample along looped dims and a batch axis, the whole axis otherwise."""
    out_plan = probe.plan.outputs[name]
    bounds = []
    for dim, size in zip(dims, shape, strict=True):
        m = out_plan.maps.get(dim)
        lead = len(dims) - len(out_plan.axes)
        if m is not None and list(dims).index(dim) >= lead:
            grid = probe.plan.grids[probe.plan.axes.index(m.input_axis)]
            edges = {0, size}
            for write, read in zip(grid.write, grid.read, strict=True):
                dest, _ = m.regions(write, read)
                edges.update((dest.start, dest.stop))
            bounds.append(sorted(e for e in edges if 0 <= e <= size))
        elif dim in probe.loop_dims or dim == "b":
            bounds.append(list(range(size + 1)))
        else:
            bounds.append([0, size])
    return bounds


def _covering(bounds: Sequence[int], targets: Sequence[Any], size: int) -> list[set[int]]:
    """Per chunk along one dim, the pieces (by position in ``targets``) that reach into it."""
    covering: list[set[int]] = [set() for _ in range(len(bounds) - 1)]
    starts = np.asarray(bounds[:-1])
    for j, where in enumerate(targets):
        if isinstance(where, slice):
            low = 0 if where.start is None else where.start
            high = size if where.stop is None else where.stop
        else:
            low, high = int(where), int(where) + 1
        first = int(np.searchsorted(starts, low, side="right")) - 1
        for k in range(max(first, 0), len(covering)):
            if bounds[k] >= high:
                break
            covering[k].add(j)
    return covering
