"""Statistics of whole tensors for the spec ops, read chunk by chunk so that they cost little memory.

Means and standard deviations are exact two-pass sums in float64 over chunks of the tensor (never a float64
copy of the whole image); percentiles need every value at once and take one copy of the reduced group
(numpy partitions that copy in place). A source can carry the steps of a chain before the op (``before``):
their element-wise formulas are applied to each chunk on the way, so a statistic of step ``k`` is taken on
the tensor as steps ``0 .. k-1`` left it, as if those steps had run on the whole image first.

Examples
--------
>>> import numpy as np, xarray as xr
>>> source = StatsSource(xr.DataArray(np.arange(8.0).reshape(2, 4), dims=("c", "x")))
>>> mean, std = source.mean_std(("x",))
>>> mean.values.tolist(), std.values.round(4).tolist()
([1.5, 5.5], [1.118, 1.118])
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence

import numpy as np
import xarray as xr

CHUNK_ELEMENTS = 1 << 22
"""Elements per chunk when statistics are read chunk by chunk (32 MB of float64 temporaries)."""


class StatsSource:
    """A tensor to take statistics of, chunk by chunk.

    Parameters
    ----------
    data : xarray.DataArray
        The tensor (dims named by axis letters and looped dims).
    before : callable, optional
        Element-wise steps to apply to each chunk first (the chain's earlier steps).
    ignore_nan : bool
        Leave NaN and infinite values out of every statistic.
    avoid : collection of str
        Dims not to cut chunks along (the earlier steps' values vary along them).
    """

    def __init__(
        self,
        data: xr.DataArray,
        before: Callable[[xr.DataArray], xr.DataArray] | None = None,
        *,
        ignore_nan: bool = False,
        avoid: Collection[str] = (),
    ) -> None:
        self.data = data
        self.before = before
        self.ignore_nan = ignore_nan
        self.avoid = frozenset(avoid)

    def like(self, data: xr.DataArray) -> StatsSource:
        """Another tensor (a reference tensor), read the same way but without earlier steps."""
        return StatsSource(data, ignore_nan=self.ignore_nan)

    # --- reading --------------------------------------------------------------------------------------------

    def _chunks(self, dims: Sequence[str]) -> Iterator[np.ndarray]:
        """Chunks as float-or-int arrays laid out (kept dims..., reduced dims flattened)."""
        kept = [str(d) for d in self.data.dims if d not in dims]
        along = self._chunk_dim(dims)
        if along is None:
            yield self._layout(self.data, kept, dims)
            return
        size = self.data.sizes[along]
        per_row = max(1, self.data.size // max(size, 1))
        rows = max(1, CHUNK_ELEMENTS // per_row)
        for start in range(0, size, rows):
            yield self._layout(self.data.isel({along: slice(start, start + rows)}), kept, dims)

    def _chunk_dim(self, dims: Sequence[str]) -> str | None:
        if self.data.size <= CHUNK_ELEMENTS:
            return None
        candidates = [d for d in dims if d not in self.avoid and self.data.sizes[d] > 1]
        return max(candidates, key=lambda d: self.data.sizes[d]) if candidates else None

    def _layout(self, chunk: xr.DataArray, kept: list[str], dims: Sequence[str]) -> np.ndarray:
        if self.before is not None:
            chunk = self.before(chunk)
        values = np.asarray(chunk.transpose(*kept, *dims).values)
        values = values.reshape((*values.shape[: len(kept)], -1))
        if self.ignore_nan and values.dtype.kind == "f":
            values = np.where(np.isfinite(values), values, np.nan)
        return values

    def _kept(self, dims: Sequence[str]) -> list[str]:
        return [str(d) for d in self.data.dims if d not in dims]

    # --- statistics -----------------------------------------------------------------------------------------

    def mean_std(self, dims: Sequence[str]) -> tuple[xr.DataArray, xr.DataArray]:
        """Mean and population standard deviation over ``dims`` (float64), one per kept index."""
        kept = self._kept(dims)
        total: np.ndarray | float = 0.0
        count: np.ndarray | float = 0.0
        for values in self._chunks(dims):
            total = total + self._sum(values)
            count = count + self._count(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.asarray(total / count, dtype=np.float64)
        squares: np.ndarray | float = 0.0
        for values in self._chunks(dims):
            with np.errstate(invalid="ignore"):  # inf - inf: a NaN deviation, as numpy's std gives
                deviation = values - mean[..., None]
            squares = squares + self._sum(deviation * deviation)
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.sqrt(np.asarray(squares / count, dtype=np.float64))
        return xr.DataArray(mean, dims=kept), xr.DataArray(std, dims=kept)

    def _sum(self, values: np.ndarray) -> np.ndarray:
        if self.ignore_nan:
            return np.asarray(np.nansum(values, axis=-1, dtype=np.float64))
        return np.asarray(np.sum(values, axis=-1, dtype=np.float64))

    def _count(self, values: np.ndarray) -> np.ndarray | float:
        if self.ignore_nan and values.dtype.kind == "f":
            return np.count_nonzero(~np.isnan(values), axis=-1).astype(np.float64)
        return float(values.shape[-1])

    def percentiles(self, dims: Sequence[str], qs: Sequence[float]) -> list[xr.DataArray]:
        """Linear-interpolated percentiles ``qs`` (0..100) over ``dims``, one per kept index."""
        kept = self._kept(dims)
        chunks = list(self._chunks(dims))
        group = chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=-1)
        del chunks
        # Partition in place when ``group`` is already a copy; the caller's image is never reordered.
        own_copy = not np.may_share_memory(group, self.data.values)
        if self.ignore_nan and group.dtype.kind == "f":
            found = np.nanpercentile(group, list(qs), axis=-1, overwrite_input=own_copy)
        else:
            found = np.percentile(group, list(qs), axis=-1, overwrite_input=own_copy)
        return [xr.DataArray(np.asarray(q, dtype=np.float64), dims=kept) for q in found]
