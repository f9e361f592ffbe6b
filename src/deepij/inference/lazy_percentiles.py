"""Exact percentiles of dask arrays in one read (8- and 16-bit images) or two (32-bit): histograms of the
values' sort keys, 16 bits at a time.

Every value has an unsigned integer key of its own width that sorts as the values do (:func:`sort_keys`:
floats by their bits with the sign folded, so that negative numbers come first; signed integers with the
sign bit flipped; NaN set apart). The order statistics a percentile needs are found digit by digit:

- the first read counts the values per leading 16 bits of their key (65536 bins), and the NaN. A value of an
  8- or 16-bit image is its key: that read finds it exactly;
- each further read counts, among the values whose key starts with the digits found so far, the next 16
  bits: a 32-bit value (float32, int32) is found exactly by the second read. When no more than
  ``EXACT_BELOW`` values share the digits found (a 64-bit image, usually after its second read), those
  values are read and sorted instead.

Every percentile of every group asked for at once shares the reads. The result is numpy's linear
interpolation between the two order statistics around the percentile's position, what ``np.percentile``
gives (NaN for a group holding NaN unless NaN is skipped, as ``np.nanpercentile`` skips it). Memory: per
block in flight its keys (in slices of ``SLICE`` values) and a 65536-bin histogram; at most ``EXACT_BELOW``
values gathered per order statistic.

Examples
--------
>>> import dask.array as da
>>> values = np.array([4.0, -1.5, 3.0, 2.0, 7.25], dtype=np.float32)
>>> exact_percentiles([da.from_array(values, chunks=2)], [0.0, 50.0, 90.0]).tolist() == [
...     np.percentile(values, [0.0, 50.0, 90.0]).tolist()]
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepij.inference.lazy_reads import compute

DIGIT = 16
"""Bits of the key counted per read."""
EXACT_BELOW = 1 << 20
"""Values few enough to be read and sorted once the digits found leave no more of them."""
SLICE = 1 << 22
"""Values of a block keyed at once (bounds the temporaries of a large block)."""
MERGE = 8
"""Block results merged per task (a tree, so that no task holds every block's histogram)."""


def sort_keys(values: np.ndarray) -> np.ndarray:
    """Unsigned integer keys, as wide as the values, that sort as the values do (NaN have keys too, but no
    meaningful order: callers leave them out).

    Examples
    --------
    >>> values = np.array([2.5, -np.inf, -0.0, 0.0, -3.0, np.inf, 0.125], dtype=np.float32)
    >>> values[np.argsort(sort_keys(values))].tolist()
    [-inf, -3.0, -0.0, 0.0, 0.125, 2.5, inf]
    >>> sort_keys(np.array([-128, -1, 0, 127], dtype=np.int8)).tolist()
    [0, 127, 128, 255]
    """
    kind, size = values.dtype.kind, values.dtype.itemsize
    if kind == "b":
        return values.view(np.uint8)
    if kind == "u":
        return values
    unsigned = np.dtype(f"u{size}")
    sign = unsigned.type(1 << (8 * size - 1))
    bits = values.view(unsigned)
    if kind == "i":
        return bits ^ sign
    # negative floats: every bit flipped; the others: the sign bit set (an arithmetic shift spreads the sign)
    spread = (values.view(np.dtype(f"i{size}")) >> (8 * size - 1)).view(unsigned)
    return bits ^ (spread | sign)


def key_value(key: int, dtype: np.dtype) -> float:
    """The value whose :func:`sort_keys` key is ``key``, as float64.

    Examples
    --------
    >>> values = np.array([-3.0, 0.5], dtype=np.float32)
    >>> [key_value(int(k), values.dtype) for k in sort_keys(values)]
    [-3.0, 0.5]
    """
    kind, size = dtype.kind, dtype.itemsize
    if kind in "bu":
        return float(key)
    unsigned = np.dtype(f"u{size}")
    sign = 1 << (8 * size - 1)
    folded = kind == "i" or key & sign  # signed integers, and floats that are not negative
    bits = key ^ sign if folded else ~key & ((1 << (8 * size)) - 1)
    as_dtype = dtype if kind == "f" else np.dtype(f"i{size}")
    return float(np.array([bits], dtype=unsigned).view(as_dtype)[0])


def _keyed(dtype: np.dtype) -> np.dtype:
    """The type whose keys a group's values get: its own when keys exist for it, else float64."""
    return dtype if dtype.kind in "buif" else np.dtype(np.float64)


# --- what one read asks of each block -------------------------------------------------------------------


@dataclass(frozen=True)
class _Ask:
    """Among the values whose key starts with ``known`` bits equal to ``prefix``: a histogram of the next
    ``bits`` bits, or (``bits == 0``) the keys themselves."""

    known: int
    prefix: int
    bits: int


def _block_answers(block: np.ndarray, width: int, asks: Sequence[_Ask]) -> tuple[int, list[np.ndarray]]:
    """(NaN count, one answer per ask) for one block: histograms (int64) or keys."""
    values = np.asarray(block).reshape(-1)
    keyed = _keyed(values.dtype)
    nans = 0
    answers: list[list[np.ndarray]] = [[] for _ in asks]
    for start in range(0, values.size, SLICE):
        part = values[start : start + SLICE].astype(keyed, copy=False)
        if part.dtype.kind == "f":
            missing = np.isnan(part)
            count = int(np.count_nonzero(missing))
            if count:
                nans += count
                part = part[~missing]
        keys = sort_keys(part)
        leading = {k: keys >> (width - k) for k in {a.known for a in asks if a.known}}  # once per length
        for ask, found in zip(asks, answers, strict=True):
            chosen = keys if ask.known == 0 else keys[leading[ask.known] == ask.prefix]
            if ask.bits == 0:
                found.append(chosen.copy() if chosen is keys else chosen)
                continue
            digits = (chosen >> (width - ask.known - ask.bits)) & ((1 << ask.bits) - 1)
            found.append(np.bincount(digits.astype(np.intp), minlength=1 << ask.bits))
    merged = [_merge_one(ask, found) for ask, found in zip(asks, answers, strict=True)]
    return nans, merged


def _merge_one(ask: _Ask, parts: Sequence[np.ndarray]) -> np.ndarray:
    if ask.bits == 0:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    if not parts:
        return np.zeros(1 << ask.bits, dtype=np.int64)
    return np.asarray(np.sum(parts, axis=0, dtype=np.int64))


def _merge_blocks(asks: Sequence[_Ask], parts: Sequence[tuple[int, list[np.ndarray]]]) -> tuple[int, list]:
    nans = sum(p[0] for p in parts)
    return nans, [_merge_one(ask, [p[1][k] for p in parts]) for k, ask in enumerate(asks)]


def _read(group: Any, asks: Sequence[_Ask]) -> Any:
    """A delayed (NaN count, answers) of one group: a task per block, merged as a tree."""
    import dask

    width = 8 * _keyed(np.dtype(group.dtype)).itemsize
    asks = tuple(asks)
    # unoptimised blocks: their keys are the image's own, so that Dask reads a chunk once for every
    # reduction computed with this one (lazy_reads)
    blocks = group.to_delayed(optimize_graph=False).ravel()
    level = [dask.delayed(_block_answers)(b, width, asks) for b in blocks]
    while len(level) > 1:
        level = [
            dask.delayed(_merge_blocks)(asks, level[i : i + MERGE]) for i in range(0, len(level), MERGE)
        ]
    return level[0]


# --- the search -----------------------------------------------------------------------------------------


class _Rank:
    """One order statistic of one group (0-based rank among its values that are not NaN): the leading
    ``known`` bits of its key (``prefix``), how many values have smaller keys, and how many share them."""

    def __init__(self, rank: int, count: int, width: int) -> None:
        self.rank, self.width = rank, width
        self.known, self.prefix, self.below, self.sharing = 0, 0, 0, count
        self.key: int | None = None

    def ask(self) -> _Ask:
        left = self.width - self.known
        if left > DIGIT and self.sharing <= EXACT_BELOW:
            return _Ask(self.known, self.prefix, 0)
        return _Ask(self.known, self.prefix, min(DIGIT, left))

    def learn(self, ask: _Ask, answer: np.ndarray) -> None:
        if ask.bits == 0:
            self.key = int(np.sort(answer)[self.rank - self.below])
            return
        cumulative = self.below + np.cumsum(answer)
        digit = int(np.searchsorted(cumulative, self.rank, side="right"))
        self.below = int(cumulative[digit - 1]) if digit > 0 else self.below
        self.sharing = int(answer[digit])
        self.known += ask.bits
        self.prefix = (self.prefix << ask.bits) | digit
        if self.known == self.width:
            self.key = self.prefix


def exact_percentiles(groups: Sequence[Any], qs: Sequence[float], *, skip_nan: bool = False) -> np.ndarray:
    """Per dask array of ``groups``, the percentiles ``qs`` (0..100) of its values as ``np.percentile``
    gives them: NaN for a group holding a NaN, as numpy gives (``skip_nan``: as ``np.nanpercentile`` gives
    them, NaN left out; a group holding only NaN gives NaN). Shape ``(len(groups), len(qs))``.

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
    widths = [8 * _keyed(np.dtype(g.dtype)).itemsize for g in groups]
    asks = [_Ask(0, 0, min(DIGIT, w)) for w in widths]
    first = compute(*[_read(g, [ask]) for g, ask in zip(groups, asks, strict=True)])
    found = np.full((len(groups), len(qs)), np.nan)
    ranks: dict[tuple[int, int], _Rank] = {}
    positions: dict[tuple[int, int], tuple[int, int, float]] = {}
    for g, (nans, (histogram,)) in enumerate(first):
        count = int(histogram.sum())
        if count == 0 or (nans and not skip_nan):
            continue
        for j, q in enumerate(qs):
            low, high, fraction = _position(count, float(q))
            positions[(g, j)] = (low, high, fraction)
            for r in (low, high):
                if (g, r) not in ranks:
                    ranks[(g, r)] = _Rank(r, count, widths[g])
                    ranks[(g, r)].learn(asks[g], histogram)
    _refine(groups, ranks)
    for (g, j), (low, high, fraction) in positions.items():
        dtype = _keyed(np.dtype(groups[g].dtype))
        a, b = (key_value(ranks[(g, r)].key or 0, dtype) for r in (low, high))
        found[g, j] = _lerp(a, b, fraction)
    return found


def _refine(groups: Sequence[Any], ranks: dict[tuple[int, int], _Rank]) -> None:
    """Read until every rank's key is known; each read asks every group everything it still needs."""
    while True:
        pending: dict[int, dict[_Ask, list[_Rank]]] = {}
        for (g, _), rank in ranks.items():
            if rank.key is None:
                pending.setdefault(g, {}).setdefault(rank.ask(), []).append(rank)
        if not pending:
            return
        order = list(pending)
        answers = compute(*[_read(groups[g], list(pending[g])) for g in order])
        for g, (_, per_ask) in zip(order, answers, strict=True):
            for ask, answer in zip(pending[g], per_ask, strict=True):
                for rank in pending[g][ask]:
                    rank.learn(ask, answer)


def _position(count: int, q: float) -> tuple[int, int, float]:
    """The two ranks numpy's linear method interpolates between for percentile ``q``, and the fraction."""
    position = (count - 1) * (q / 100.0)
    low = min(max(math.floor(position), 0), count - 1)
    return low, min(low + 1, count - 1), position - low


def _lerp(a: float, b: float, fraction: float) -> float:
    """numpy's ``_lerp`` in float64 (as it runs for a float64 ``q``), so that the figure is
    ``np.percentile``'s (NaN between two equal infinities, as numpy gives)."""
    x, y, t = np.float64(a), np.float64(b), np.float64(fraction)
    with np.errstate(invalid="ignore"):
        difference = y - x
        return float(y - difference * (1 - t) if t >= 0.5 else x + difference * t)
