"""Framework adapters, one file per weights format, imported only when a bundle needs them.

:func:`load_backend` picks a bundle's weights (priority and skip rules in
:mod:`deepij.inference.backends.selection`) and returns a loaded :class:`Backend` to call many times.
"""

from deepij.inference.backends.base import Backend
from deepij.inference.backends.selection import CPU_PRIORITY, GPU_PRIORITY, canonical_format, load_backend

__all__ = ["CPU_PRIORITY", "GPU_PRIORITY", "Backend", "canonical_format", "load_backend"]
