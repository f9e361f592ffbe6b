"""The adapter for ``onnx`` weights: the graph in an onnxruntime session, fitted to its descriptor.

A graph with fixed spatial dims is relaxed where it may be, and refused where the descriptor allows sizes it
cannot take (:mod:`deepij.inference.backends.onnx_relax`); the session itself is
:class:`~deepij.inference.backends.onnx_runtime.OnnxRuntimeBackend`.
"""

from __future__ import annotations

from deepij.inference.backends.base import OpenRequest
from deepij.inference.backends.onnx_relax import fit_to_descriptor, fitted_from_cache
from deepij.inference.backends.onnx_runtime import OnnxRuntimeBackend


def open_backend(request: OpenRequest) -> OnnxRuntimeBackend:
    """Open ``request.path`` in an onnxruntime session on the chosen device, fitted to the descriptor (by an
    earlier process: the relaxed graph, or the refusal, comes from the graph cache before the original graph
    is opened)."""
    fitted = fitted_from_cache(request)
    if fitted is not None:
        return fitted
    backend = OnnxRuntimeBackend(
        request.description, request.weights, request.path, request.device, request.threads
    )
    try:
        return fit_to_descriptor(backend, request)
    except BaseException:
        backend.close()
        raise
