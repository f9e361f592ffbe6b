"""ONNX weights run with onnxruntime; also the engine for torch weights converted to ONNX (see
:mod:`deepij.inference.backends.onnx_conversion`).

Speed on these CPUs comes from onnxruntime's full graph optimisation (conv + activation fusion, NCHWc
layouts) and its memory arena, which reuses buffers between tiles. The arena keeps what the largest forward
pass needed until the backend is closed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from deepij.bundle.description import ModelDescription, WeightsEntry
from deepij.errors import BackendError
from deepij.inference.backends.base import OpenRequest
from deepij.inference.backends.devices import choose_device
from deepij.inference.backends.graph import GraphBackend, GraphTensor

_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(bool)": np.bool_,
}


def gpu_count() -> int:
    """GPUs onnxruntime can use: none without its CUDA provider (the query tests replace)."""
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return 0
    torch = sys.modules.get("torch")  # counting needs CUDA itself; borrow torch's count when it is loaded
    return max(1, torch.cuda.device_count()) if torch is not None else 1


def _session_options(threads: int | None, quiet: bool = False) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # The memory pattern pre-plans one block for all intermediates: measured on the benchmark U-Net it needs
    # ~870 bytes per input pixel against ~540 without, for the same speed (best of interleaved runs).
    options.enable_mem_pattern = False
    # errors only: ORT warns about every unused initializer otherwise; a graph under test fails on purpose
    options.log_severity_level = 4 if quiet else 3
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    return options


def _providers(device: str) -> list[object]:
    if device.startswith("cuda"):
        return [("CUDAExecutionProvider", {"device_id": int(device.split(":")[1])}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _graph_tensor(node: Any) -> GraphTensor:
    """A session input/output: its dims are ints where fixed, strings or None where free."""
    shape = getattr(node, "shape", None)
    dtype = _ONNX_DTYPES.get(getattr(node, "type", ""))
    dims = None if shape is None else tuple(d if isinstance(d, int) and d > 0 else None for d in shape)
    return GraphTensor(
        (node.name,), None if dims is None else len(dims), None if dtype is None else np.dtype(dtype), dims
    )


class OnnxRuntimeBackend(GraphBackend):
    """An onnxruntime session over an ONNX file (or the bytes of a converted model).

    Parameters
    ----------
    model : Path or bytes
        The ``.onnx`` file, or a serialized ONNX model.
    threads : int, optional
        Intra-op threads; None lets onnxruntime use one per physical core.
    quiet : bool
        Do not log run failures (for graphs under test, which are expected to fail on some inputs).
    """

    runtime = "onnxruntime"

    def __init__(
        self,
        description: ModelDescription,
        weights: WeightsEntry,
        model: Path | bytes,
        device: str | None = None,
        threads: int | None = None,
        quiet: bool = False,
    ) -> None:
        import onnxruntime

        resolved = choose_device(device, gpu_count(), "onnxruntime")
        super().__init__(description, weights, resolved)
        self.model_source: Path | bytes = model
        """The ONNX file or bytes this session runs (another engine can open the same graph)."""
        self.threads = threads
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session: Any = onnxruntime.InferenceSession(
                source, _session_options(threads, quiet), providers=_providers(resolved)
            )
        except Exception as error:
            where = "converted model" if isinstance(model, bytes) else str(model)
            raise BackendError(
                f"{where}: onnxruntime {onnxruntime.__version__} cannot load it: {error}"
            ) from error
        if resolved.startswith("cuda") and "CUDAExecutionProvider" not in self.session.get_providers():
            raise BackendError(
                f"device={device!r}: onnxruntime could not start its CUDA provider on {resolved}"
            )
        inputs = [_graph_tensor(n) for n in self.session.get_inputs()]
        outputs = [_graph_tensor(n) for n in self.session.get_outputs()]
        self._bind(inputs, outputs)
        self._input_names = [g.names[0] for g in inputs]

    def _run(self, graph_inputs: list[np.ndarray]) -> list[np.ndarray]:
        feed = dict(zip(self._input_names, graph_inputs, strict=True))
        try:
            return self.session.run(None, feed)
        except Exception as error:
            raise BackendError(
                f"{self.label}: onnxruntime failed on inputs of shape "
                f"{[tuple(a.shape) for a in graph_inputs]}: {error}"
            ) from error

    def close(self) -> None:
        self.session = None
        super().close()


def open_backend(request: OpenRequest) -> OnnxRuntimeBackend:
    """Open ``request.path`` in an onnxruntime session on the chosen device; a graph with fixed spatial dims
    is relaxed where it may be, and refused where the descriptor allows sizes it cannot take (see
    :mod:`deepij.inference.backends.onnx_relax`)."""
    from deepij.inference.backends.onnx_relax import fit_to_descriptor

    backend = OnnxRuntimeBackend(
        request.description, request.weights, request.path, request.device, request.threads
    )
    try:
        return fit_to_descriptor(backend, request)
    except BaseException:
        backend.close()
        raise
