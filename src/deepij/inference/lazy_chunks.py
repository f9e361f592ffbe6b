"""The outputs of a lazy tiled run (:mod:`deepij.inference.lazy`) as dask arrays of regular chunks.

Each chunk is a task that takes the pieces (a tile's valid region, and where it goes) of the block tasks
that cover it and places them as :meth:`~deepij.inference.runner.TiledRun.write` places them: the last one
wins, or with blending they add, in the run's tile order (so that the sums are the in-memory run's, to the
last bit). The chunks are regular along the axes that follow the tiled input axes (a Zarr store is written
one chunk per task), one per sample along looped dims and a batch axis, whole along the others.

Examples
--------
>>> chunk_bounds(10, 4)
[0, 4, 8, 10]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from deepij.inference.runner import WorkItem

if TYPE_CHECKING:
    from deepij.inference.lazy_windows import Piece, WindowedRun


def chunk_bounds(size: int, step: int) -> list[int]:
    """Regular chunk boundaries of ``step`` along an axis of ``size`` (the last chunk smaller)."""
    return [*range(0, size, max(1, step)), size]


def output_array(
    probe: WindowedRun,
    name: str,
    first: list[dict[str, Piece]],
    blocks: Sequence[Sequence[WorkItem]],
    tasks: Sequence[Any],
    token: str,
    sizes: Mapping[str, int],
) -> xr.DataArray:
    """One output as a dask array: a task per chunk, taking the pieces of the block tasks that cover it.
    ``sizes``: per tiled input axis, the chunk length in input pixels."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    dims, shape, dtype = _output_layout(probe, name, first)
    bounds = _bounds(probe, name, shape, dims, sizes)
    where = {item: (b, i) for b, items in enumerate(blocks) for i, item in enumerate(items)}
    # in the run's order: blended pieces add as the in-memory run adds them
    located = [(probe.target(i, name), tasks[where[i][0]].key, where[i][1]) for i in probe.items()]
    per_axis = [
        _covering(bounds[axis], [at[axis] for at, _, _ in located], shape[axis]) for axis in range(len(dims))
    ]
    key = f"deepij-output-{name}-{token}"
    layer: dict[Any, Any] = {}
    blend = probe.plan.mode == "blend"
    for index in np.ndindex(*(len(b) - 1 for b in bounds)):
        region = tuple(slice(bounds[a][k], bounds[a][k + 1]) for a, k in enumerate(index))
        covering = sorted(set.intersection(*(per_axis[a][k] for a, k in enumerate(index))))
        # The block tasks' keys go in a list of their own: Dask finds a task's dependencies in its
        # arguments and in lists, not inside tuples (a culled graph dropped keys nested in tuples, and the
        # chunk task then got the key's text instead of the block's result).
        passes = [located[j][1] for j in covering]
        positions = [located[j][2] for j in covering]
        layer[(key, *index)] = (_assemble, region, dtype, blend, name, passes, positions)
    chunks = tuple(tuple(int(n) for n in np.diff(b)) for b in bounds)
    graph = HighLevelGraph.from_collections(key, layer, dependencies=list(tasks))
    return xr.DataArray(da.Array(graph, key, chunks, dtype), dims=dims)


def _output_layout(
    probe: WindowedRun, name: str, first: list[dict[str, Piece]]
) -> tuple[tuple[str, ...], tuple[int, ...], str]:
    """(dims, shape, dtype) of a whole output, as :meth:`TiledRun._allocate` makes it (without making it),
    from the first batch's pieces (already finished: their type is the output's)."""
    _, piece = first[0][name]
    dims, shape, dtype = probe.output_layout(probe.description.output(name), piece.shape, piece.dtype)
    return dims, shape, dtype.str


def _bounds(
    probe: WindowedRun, name: str, shape: Sequence[int], dims: Sequence[str], sizes: Mapping[str, int]
) -> list[list[int]]:
    """Per output dim, the chunk boundaries (module notes)."""
    out_plan = probe.plan.outputs[name]
    lead = len(dims) - len(out_plan.axes)
    bounds = []
    for position, (dim, size) in enumerate(zip(dims, shape, strict=True)):
        m = out_plan.maps.get(dim)
        if m is not None and position >= lead:
            bounds.append(chunk_bounds(size, round(sizes[m.input_axis] * m.scale)))
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


def _assemble(
    region: tuple[slice, ...],
    dtype: str,
    blend: bool,
    name: str,
    blocks: Sequence[list[dict[str, Piece]]],
    positions: Sequence[int],
) -> np.ndarray:
    """One output chunk from the pieces that cover it (the last one wins unless blending: then they add):
    piece ``positions[k]`` of block task ``blocks[k]``."""
    shape = tuple(s.stop - s.start for s in region)
    chunk: np.ndarray | None = None
    for block, i in zip(blocks, positions, strict=True):
        target, piece = block[i][name]
        local = _overlap(region, target, piece.shape)
        if local is None:
            continue
        in_chunk, in_piece = local
        values = piece[in_piece]
        if chunk is None and not blend and values.size == int(np.prod(shape)):
            chunk = np.asarray(values, dtype=dtype).reshape(shape)  # the usual case: one piece, one chunk
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
