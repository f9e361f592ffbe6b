"""Statistics of spec ops on images bigger than memory, taken with Dask over the whole image before tiling.

:func:`prepare_lazy_chain` prepares a processing chain (:mod:`deepij.processing.chain`) on a dask-backed
tensor: every statistic is computed from the whole image, block by block, and what is left is the same
element-wise chain the tiled run applies to each tile.

- Means and standard deviations: exact (float64 sums over the blocks, population ``ddof=0``), one read of the
  image for both. They equal the in-memory two-pass figures up to float64 rounding (the blocks are summed
  in another order).
- Percentiles: exact, with numpy's linear interpolation (what ``np.percentile`` gives on the whole image),
  found by histograms of the values' sort keys, 16 bits per read (:mod:`deepij.inference.lazy_percentiles`):
  one read for an 8- or 16-bit image, two for float32, every percentile of every group in the same reads.
- Reads are shared: a count of NaN/inf pixels waiting to be taken (``non_finite="raise"``) is computed in
  the first statistics read (:mod:`deepij.inference.lazy_reads`).

Examples
--------
>>> import dask.array as da, numpy as np, xarray as xr
>>> image = xr.DataArray(da.arange(1000.0, chunks=100).reshape(10, 100), dims=("y", "x"))
>>> low, high = DaskStats(image).percentiles(("y", "x"), (1.0, 99.8))
>>> float(low), float(high) == float(np.percentile(np.arange(1000.0), 99.8))
(9.99, True)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from deepij.bundle.description import ProcessingOp, TensorSpec
from deepij.inference.lazy_percentiles import exact_percentiles
from deepij.inference.lazy_reads import compute
from deepij.processing.chain import Chain, prepare_chain
from deepij.processing.statistics import StatsSource


def is_lazy(data: Any) -> bool:
    """Whether an array or DataArray is backed by a dask array."""
    values = data.data if isinstance(data, xr.DataArray) else data
    return type(values).__module__.startswith("dask.")


class DaskStats(StatsSource):
    """A dask-backed tensor to take statistics of (see the module notes); the same interface as
    :class:`~deepij.processing.statistics.StatsSource`."""

    def like(self, data: xr.DataArray) -> DaskStats:
        return DaskStats(data, ignore_nan=self.ignore_nan)

    def _prepared(self) -> xr.DataArray:
        """The tensor as the chain's earlier steps leave it (block by block), non-finite values as NaN
        when they are left out."""
        import dask.array as da

        data = self.data
        if not is_lazy(data):
            data = data.chunk()
        if self.before is not None:
            before = self.before
            whole = {str(d): -1 for d in data.dims if str(d) in self.avoid}  # values vary along them
            data = data.chunk(whole) if whole else data
            dims = tuple(map(str, data.dims))
            probe = data.isel({d: slice(0, 1) for d in dims if d not in whole}).compute()
            dtype = before(probe).dtype

            def apply(block: np.ndarray) -> np.ndarray:
                return np.asarray(before(xr.DataArray(block, dims=dims)).transpose(*dims).values)

            data = xr.DataArray(da.map_blocks(apply, data.data, dtype=dtype), dims=dims)
        if self.ignore_nan and data.dtype.kind == "f":
            data = data.where(np.isfinite(data))
        return data

    def mean_std(self, dims: Sequence[str]) -> tuple[xr.DataArray, xr.DataArray]:
        """Mean and population standard deviation over ``dims`` (float64), one read of the image."""
        data = self._prepared()
        skip = self.ignore_nan
        mean = data.mean(dim=list(dims), dtype=np.float64, skipna=skip)
        std = data.std(dim=list(dims), ddof=0, dtype=np.float64, skipna=skip)
        with warnings.catch_warnings():  # an infinite value: NaN deviations, as numpy's std gives
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            mean, std = compute(mean, std)
        kept = self._kept(dims)
        return (
            xr.DataArray(np.asarray(mean.transpose(*kept).values, dtype=np.float64), dims=kept),
            xr.DataArray(np.asarray(std.transpose(*kept).values, dtype=np.float64), dims=kept),
        )

    def percentiles(self, dims: Sequence[str], qs: Sequence[float]) -> list[xr.DataArray]:
        """Exact linear-interpolated percentiles ``qs`` (0..100) over ``dims``, one per kept index."""
        data = self._prepared()
        kept = self._kept(dims)
        sizes = [data.sizes[d] for d in kept]
        groups = [
            data.isel(dict(zip(kept, index, strict=True))).data for index in np.ndindex(*sizes)
        ]
        found = exact_percentiles(groups, qs, skip_nan=self.ignore_nan)
        return [
            xr.DataArray(np.asarray(found[:, j], dtype=np.float64).reshape(sizes), dims=kept)
            for j in range(len(qs))
        ]


def count_non_finite_lazily(data: Any) -> tuple[int, tuple[int, ...], Any]:
    """How many NaN/inf values a dask array holds, the index of the first (C order) and its value: one read,
    a task per block (what :func:`deepij.inference.arrays.count_non_finite` gives for a numpy array).

    Examples
    --------
    >>> import dask.array as da
    >>> values = np.ones((4, 6))
    >>> values[3, 1], values[2, 5] = np.inf, np.nan
    >>> count_non_finite_lazily(da.from_array(values, chunks=(2, 3)))
    (2, (2, 5), nan)
    """
    counting = non_finite_count(data)
    return (0, (), None) if counting is None else counting.compute()


def non_finite_count(data: Any) -> Any:
    """:func:`count_non_finite_lazily` as a delayed value, to compute later (with other reductions of the
    same image: :mod:`deepij.inference.lazy_reads`); None for an array that cannot hold NaN or inf."""
    import dask

    if data.dtype.kind != "f":
        return None
    starts = [np.cumsum((0, *sizes[:-1])) for sizes in data.chunks]
    blocks = data.to_delayed(optimize_graph=False).ravel()  # the image's own keys: shared reads (lazy_reads)
    parts = [
        dask.delayed(_block_non_finite)(block, tuple(int(starts[a][i]) for a, i in enumerate(index)))
        for index, block in zip(np.ndindex(*data.numblocks), blocks, strict=True)
    ]
    return dask.delayed(_merge_non_finite)(parts, tuple(data.shape))


def _merge_non_finite(
    parts: Sequence[tuple[int, tuple[int, ...], Any]], shape: tuple[int, ...]
) -> tuple[int, tuple[int, ...], Any]:
    found = [p for p in parts if p[0]]
    if not found:
        return 0, (), None
    first = min(found, key=lambda p: np.ravel_multi_index(p[1], shape))
    return sum(p[0] for p in found), first[1], first[2]


def _block_non_finite(block: np.ndarray, origin: tuple[int, ...]) -> tuple[int, tuple[int, ...], Any]:
    from deepij.inference.arrays import count_non_finite

    count, first = count_non_finite(np.asarray(block))
    if not count:
        return 0, (), None
    return count, tuple(o + i for o, i in zip(origin, first, strict=True)), block[first].item()


# --- chains ---------------------------------------------------------------------------------------------


def prepare_lazy_chain(
    data: xr.DataArray,
    ops: Sequence[ProcessingOp],
    tensor: TensorSpec,
    *,
    where: str,
    descriptor: Any = None,
    references: Mapping[str, xr.DataArray] | None = None,
    ignore_nan: bool = False,
) -> Chain:
    """:func:`deepij.processing.chain.prepare_chain` for a dask-backed tensor: the same checks and bound
    values, the statistics taken with Dask (module notes)."""
    return prepare_chain(
        data,
        ops,
        tensor,
        where=where,
        descriptor=descriptor,
        references=references,
        ignore_nan=ignore_nan,
        statistics=DaskStats,
    )
