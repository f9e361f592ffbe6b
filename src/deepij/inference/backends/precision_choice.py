"""Which precision a loaded network runs in: the dispatch between the CPU's int8 and bfloat16
(:mod:`deepij.inference.backends.cpu_precision`) and the GPU's float16
(:func:`~deepij.inference.backends.precision.half_if_it_reproduces`), each kept only where it reproduces
float32 within the bundle's reproduction tolerance (:mod:`deepij.inference.backends.precision`).
"""

from __future__ import annotations

from deepij.inference.backends import cpu_precision
from deepij.inference.backends.base import Backend
from deepij.inference.backends.precision import check_precision, half_if_it_reproduces, refused


def apply_precision(backend: Backend, precision: str, runtime: str = "auto") -> Backend:
    """``backend`` running in ``precision`` where it may (module notes), else in float32 with a note.

    ``runtime`` is what :func:`~deepij.inference.backends.selection.load_backend` was asked for: it decides
    which CPU engine may run an int8 or bfloat16 graph.
    """
    check_precision(precision)
    if precision == "float32":
        return backend
    if precision in ("int8", "bfloat16"):
        if precision == "int8":
            return cpu_precision.int8_if_it_reproduces(backend, runtime)
        return cpu_precision.bfloat16_if_it_reproduces(backend, runtime)
    if not backend.device.startswith("cuda"):
        return refused(
            backend,
            precision,
            f"it applies to GPU runtimes only and this one runs on {backend.device} (on the CPU: "
            "precision='int8')",
        )
    if backend.runtime != "torch":
        return refused(backend, precision, f"{backend.runtime} is not offered it (only torch on CUDA)")
    return half_if_it_reproduces(backend)
