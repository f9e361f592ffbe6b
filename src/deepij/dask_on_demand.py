"""xarray without dask until dask is used: a process that never makes a dask array never imports it.

xarray asks "is this a dask array?" on every DataArray it makes, and answers it by importing ``dask.array``
when dask is installed: a second or more on the first call of a process (1 s on a loaded 2-core machine,
more than the network's pass on a 512x512 image), for runs that hold only numpy arrays. A dask array cannot
exist before ``dask.array`` is imported (its type lives there), so until then the answer is "no" without
importing anything; from then on xarray's own answer is used. deepij imports dask where it makes dask
arrays (lazy images, :mod:`deepij.inference.lazy`), so those runs are unchanged.

The stand-in sits in xarray's private record of optional array modules; an xarray whose internals differ
is left as it is (dask then loads as before: slower, never wrong).
"""

from __future__ import annotations

import sys
from typing import Any

_installed = False


class _DaskWhenImported:
    """xarray's record of dask: no array type while ``dask.array`` is not imported, the real record once
    it is (then it replaces itself in xarray's table)."""

    def __init__(self, table: dict[str, Any], record: type) -> None:
        self._table = table
        self._record = record

    def _real(self) -> Any:
        real = self._record("dask")
        self._table["dask"] = real
        return real

    @property
    def type(self) -> tuple[type, ...]:
        if "dask.array" not in sys.modules:
            return ()
        return self._real().type

    def __getattr__(self, name: str) -> Any:  # version, module, available: asked only around dask arrays
        return getattr(self._real(), name)


def keep_dask_unloaded() -> bool:
    """Make xarray leave dask unimported until something imports ``dask.array``; True when the stand-in is
    in place (now or from an earlier call).

    Examples
    --------
    >>> keep_dask_unloaded()
    True
    >>> import numpy as np, xarray as xr
    >>> xr.DataArray(np.zeros(3)).sum().item()
    0.0
    """
    global _installed
    if _installed:
        return True
    try:
        from xarray.namedarray import pycompat
    except ImportError:
        return False
    table = getattr(pycompat, "_cached_duck_array_modules", None)
    record = getattr(pycompat, "DuckArrayModule", None)
    if not isinstance(table, dict) or record is None:
        return False
    if "dask" not in table and "dask.array" not in sys.modules:
        table["dask"] = _DaskWhenImported(table, record)
    _installed = True
    return True
