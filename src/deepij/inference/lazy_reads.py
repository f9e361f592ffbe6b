"""Reductions of a lazy image that share one read of it: a :class:`Rider` waits for the next statistics read
(:func:`compute`, what :mod:`deepij.inference.lazy_statistics` and :mod:`deepij.inference.lazy_percentiles`
compute with) and is computed in the same ``dask.compute``, so that Dask reads each chunk of the storage once
for both; when no statistics are read while it waits (:func:`riding`), it is computed on its own when asked.

A lazy ``predict`` counts the NaN/inf pixels of an image this way (``non_finite="raise"``): with spec ops that
take statistics, the count costs no read of its own.

Examples
--------
>>> import dask, dask.array as da
>>> image = da.arange(12.0, chunks=4)
>>> total = Rider(dask.delayed(sum)(image.to_delayed().ravel().tolist()))
>>> with riding([total]):
...     (largest,) = compute(image.max())
>>> float(largest), total.done
(11.0, True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any


class Rider:
    """A dask collection (a delayed reduction) computed with the next statistics read, or on its own."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.done = False
        self.value: Any = None

    def result(self) -> Any:
        """The value: computed with a statistics read already, else now."""
        if not self.done:
            import dask

            (self.value,) = dask.compute(self.collection)
            self.done = True
        return self.value


_WAITING: ContextVar[tuple[Rider, ...]] = ContextVar("deepij_lazy_riders", default=())


@contextlib.contextmanager
def riding(riders: Sequence[Rider]) -> Iterator[None]:
    """While inside, ``riders`` join the statistics reads (:func:`compute`)."""
    token = _WAITING.set(tuple(riders))
    try:
        yield
    finally:
        _WAITING.reset(token)


def compute(*collections: Any) -> tuple[Any, ...]:
    """``dask.compute(*collections)``, with the riders still waiting computed in the same call."""
    import dask

    riders = [r for r in _WAITING.get() if not r.done]
    found = dask.compute(*(r.collection for r in riders), *collections)
    for rider, value in zip(riders, found, strict=False):
        rider.value, rider.done = value, True
    return tuple(found[len(riders) :])
