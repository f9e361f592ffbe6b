"""Statistics of spec ops on images bigger than memory, taken with Dask over the whole image before tiling.

:func:`prepare_lazy_chain` prepares a processing chain (:mod:`deepij.processing.chain`) on a dask-backed
tensor: every statistic is computed from the whole image, block by block, and what is left is the same
element-wise chain the tiled run applies to each tile.

- Means and standard deviations: exact (float64 sums over the blocks, population ``ddof=0``), one read of the
  image for both. They equal the in-memory two-pass figures up to float64 rounding (the blocks are summed
  in another order).
- Percentiles: exact, with numpy's linear interpolation (what ``np.percentile`` gives on the whole image).
  The order statistics are found by refining histograms: one read for the range, then each read counts
  the values in 4096 bins of the interval holding the wanted rank and narrows it to that bin's values,
  until all values in it are equal or few enough (``EXACT_BELOW``) to be read and sorted. Memory stays at
  the blocks in flight and at most ``EXACT_BELOW`` values; an image takes three to four reads.

Examples
--------
>>> import dask.array as da, numpy as np, xarray as xr
>>> image = xr.DataArray(da.arange(1000.0, chunks=100).reshape(10, 100), dims=("y", "x"))
>>> low, high = DaskStats(image).percentiles(("y", "x"), (1.0, 99.8))
>>> float(low), float(high) == float(np.percentile(np.arange(1000.0), 99.8))
(9.99, True)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from deepij.bundle.description import ProcessingOp, TensorSpec
from deepij.processing.chain import Chain, prepare_chain
from deepij.processing.statistics import StatsSource

BINS = 4096
"""Bins per refining read of the percentile search."""
EXACT_BELOW = 1 << 20
"""Values few enough to be read and sorted to find a percentile exactly."""


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
        import dask

        data = self._prepared()
        skip = self.ignore_nan
        mean = data.mean(dim=list(dims), dtype=np.float64, skipna=skip)
        std = data.std(dim=list(dims), ddof=0, dtype=np.float64, skipna=skip)
        with warnings.catch_warnings():  # an infinite value: NaN deviations, as numpy's std gives
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            mean, std = dask.compute(mean, std)
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
    import dask

    if data.dtype.kind != "f":
        return 0, (), None
    starts = [np.cumsum((0, *sizes[:-1])) for sizes in data.chunks]
    parts = [
        dask.delayed(_block_non_finite)(block, tuple(int(starts[a][i]) for a, i in enumerate(index)))
        for index, block in zip(np.ndindex(*data.numblocks), data.to_delayed().ravel(), strict=True)
    ]
    found = [p for p in dask.compute(*parts) if p[0]]
    if not found:
        return 0, (), None
    first = min(found, key=lambda p: np.ravel_multi_index(p[1], data.shape))
    return sum(p[0] for p in found), first[1], first[2]


def _block_non_finite(block: np.ndarray, origin: tuple[int, ...]) -> tuple[int, tuple[int, ...], Any]:
    from deepij.inference.arrays import count_non_finite

    count, first = count_non_finite(np.asarray(block))
    if not count:
        return 0, (), None
    return count, tuple(o + i for o, i in zip(origin, first, strict=True)), block[first].item()


# --- exact percentiles ----------------------------------------------------------------------------------


def exact_percentiles(groups: Sequence[Any], qs: Sequence[float], *, skip_nan: bool = False) -> np.ndarray:
    """Per dask array of ``groups``, the percentiles ``qs`` of its values as ``np.percentile`` gives them: NaN
    for a group holding a NaN, as numpy gives (``skip_nan``: as ``np.nanpercentile`` gives them, NaN left
    out; a group holding only NaN gives NaN). Shape ``(len(groups), len(qs))``.

    Examples
    --------
    >>> import dask.array as da
    >>> exact_percentiles([da.from_array(np.array([4.0, 1.0, 3.0, 2.0]), chunks=2)], [50.0]).tolist()
    [[2.5]]
    >>> with_nan = da.from_array(np.array([4.0, np.nan, 3.0, 2.0]), chunks=2)
    >>> exact_percentiles([with_nan], [50.0]).tolist()
    [[nan]]
    >>> exact_percentiles([with_nan], [50.0], skip_nan=True).tolist()
    [[3.0]]
    """
    import dask

    overview = dask.compute(*[_overview(g) for g in groups])
    found = np.full((len(groups), len(qs)), np.nan)
    searches: list[_Search] = []
    for g, (count, nans, low, high) in enumerate(overview):
        if count == 0 or (nans and not skip_nan):
            continue
        for j, q in enumerate(qs):
            searches.append(_Search(g, j, count, float(q), low, high, groups[g].dtype))
    while any(not s.done for s in searches):
        pending = [s for s in searches if not s.done]
        wanted = [(s, r) for s in pending for r in s.open_ranks()]
        counted = dask.compute(*[_histogram(groups[s.group], *s.interval(r)) for s, r in wanted])
        for (s, r), result in zip(wanted, counted, strict=True):
            s.narrow(r, result)
        gather = [(s, r) for s in pending for r in s.ranks_to_gather()]
        values = dask.compute(*[_gather(groups[s.group], *s.interval(r)) for s, r in gather])
        for (s, r), picked in zip(gather, values, strict=True):
            s.settle(r, picked)
    for s in searches:
        found[s.group, s.index] = s.value()
    return found


class _Search:
    """The order statistics one percentile of one group needs (numpy's linear interpolation), each with the
    closed interval of values holding it and how many values lie below that interval."""

    def __init__(self, group: int, index: int, count: int, q: float, low: float, high: float, dtype: Any):
        self.group, self.index, self.dtype = group, index, np.dtype(dtype)
        position = (count - 1) * (q / 100.0)
        first = min(max(math.floor(position), 0), count - 1)
        self.fraction = position - first
        self.ranks = sorted({first, min(first + 1, count - 1)})
        self.first = first
        self.state: dict[int, list[Any]] = {r: [low, high, 0, count, None] for r in self.ranks}
        for r in self.ranks:
            if low == high:
                self.state[r][4] = low

    @property
    def done(self) -> bool:
        return all(entry[4] is not None for entry in self.state.values())

    def open_ranks(self) -> list[int]:
        return [r for r, e in self.state.items() if e[4] is None and e[3] > EXACT_BELOW]

    def ranks_to_gather(self) -> list[int]:
        return [r for r, e in self.state.items() if e[4] is None and e[3] <= EXACT_BELOW]

    def interval(self, rank: int) -> tuple[float, float]:
        low, high = self.state[rank][:2]
        return low, high

    def narrow(self, rank: int, result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """To the bin holding the rank: its values' closed range."""
        counts, lows, highs = result
        entry = self.state[rank]
        cumulative = entry[2] + np.cumsum(counts)
        j = int(np.searchsorted(cumulative, rank, side="right"))
        entry[2] = int(cumulative[j - 1]) if j > 0 else entry[2]
        entry[0], entry[1], entry[3] = float(lows[j]), float(highs[j]), int(counts[j])
        if entry[0] == entry[1]:
            entry[4] = entry[0]

    def settle(self, rank: int, values: np.ndarray) -> None:
        entry = self.state[rank]
        entry[4] = float(np.sort(values)[rank - entry[2]])

    def value(self) -> float:
        a = np.float64(self.state[self.first][4])
        b = np.float64(self.state[max(self.ranks)][4])
        t = np.float64(self.fraction)
        # numpy's _lerp (in float64, as it runs for a float64 q), so that the figure is np.percentile's
        # (NaN between two equal infinities, as numpy gives)
        with np.errstate(invalid="ignore"):
            difference = b - a
            return float(b - difference * (1 - t) if t >= 0.5 else a + difference * t)


def _overview(group: Any) -> Any:
    """(count of values that are not NaN, count of NaN, min, max) of a group, one task per block."""
    import dask

    parts = [dask.delayed(_block_overview)(block) for block in group.to_delayed().ravel()]
    return dask.delayed(_merge_overviews)(parts)


def _block_overview(block: np.ndarray) -> tuple[int, int, float, float]:
    values = block[~np.isnan(block)] if block.dtype.kind == "f" else block.ravel()
    nans = int(block.size - values.size)
    if values.size == 0:
        return 0, nans, math.inf, -math.inf
    return int(values.size), nans, float(values.min()), float(values.max())


def _merge_overviews(parts: Sequence[tuple[int, int, float, float]]) -> tuple[int, int, float, float]:
    return (
        sum(p[0] for p in parts),
        sum(p[1] for p in parts),
        min(p[2] for p in parts),
        max(p[3] for p in parts),
    )


def _histogram(group: Any, low: float, high: float) -> Any:
    import dask

    parts = [dask.delayed(_block_histogram)(block, low, high) for block in group.to_delayed().ravel()]
    return dask.delayed(_merge_histograms)(parts)


def _inside(block: np.ndarray, low: float, high: float) -> np.ndarray:
    values = block.ravel()
    return values[(values >= low) & (values <= high)].astype(np.float64)


def _block_histogram(block: np.ndarray, low: float, high: float) -> tuple[np.ndarray, ...]:
    """Counts, minima and maxima of the block's values in ``BINS`` equal bins of ``[low, high]``."""
    values = _inside(block, low, high)
    edges = np.linspace(low, high, BINS + 1)
    bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, BINS - 1)
    counts = np.bincount(bins, minlength=BINS)
    lows = np.full(BINS, np.inf)
    highs = np.full(BINS, -np.inf)
    np.minimum.at(lows, bins, values)
    np.maximum.at(highs, bins, values)
    return counts, lows, highs


def _merge_histograms(parts: Sequence[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    counts = np.sum([p[0] for p in parts], axis=0)
    lows = np.min([p[1] for p in parts], axis=0)
    highs = np.max([p[2] for p in parts], axis=0)
    return counts, lows, highs


def _gather(group: Any, low: float, high: float) -> Any:
    import dask

    parts = [dask.delayed(_inside)(block, low, high) for block in group.to_delayed().ravel()]
    return dask.delayed(np.concatenate)(parts)


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
