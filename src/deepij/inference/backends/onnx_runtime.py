"""ONNX weights run with onnxruntime; also the engine for torch weights converted to ONNX (see
:mod:`deepij.inference.backends.onnx_conversion`).

Speed on these CPUs comes from onnxruntime's full graph optimisation (conv + activation fusion, NCHWc
layouts) and its memory arena, which reuses buffers between tiles. The arena keeps what the largest forward
pass needed until the backend is closed.

The arena grows by doubling, so a pass of a large tile can hold up to twice what it uses: memory measured on
small probe tiles underestimates large ones (benchmarks/bench_memory_cap.py, 4096^2, onnxruntime forced:
``max_memory="200MB"`` peaked at 1.26x the cap). Under a cap the session is rebuilt on an arena that grows
by exactly what is asked (``kSameAsRequested``, :meth:`OnnxRuntimeBackend.hold_memory_exactly`): 0.81x of
200MB, 0.67x of 500MB. Without the arena (``enable_cpu_mem_arena=False``) memory is no more predictable
(1.02x of 200MB; glibc keeps freed blocks) and passes were about 2x slower (16 passes of 512^2 on the
benchmark U-Net: 3.5 s against 7.0 s), so the arena is never turned off. The exact arena showed no speed cost
through the noise of a loaded machine (best of 3, same passes: 5.5 s against 6.0 s); until a quiet
measurement says otherwise it is used only under a cap, and the default arena everywhere else.
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


_EXACT_ARENA: list[bool] = []
"""Whether the process-wide CPU arena that grows by what is asked was registered (once per process)."""


def _exact_arena(options: Any) -> None:
    """Point a session at a CPU arena that grows by exactly what each allocation asks (kSameAsRequested).

    onnxruntime sets that strategy only on an allocator registered with its environment (one per process,
    shared by the sessions that opt in); where that fails the session runs without an arena.
    """
    import onnxruntime

    if not _EXACT_ARENA:
        try:
            cpu = onnxruntime.OrtMemoryInfo(
                "Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, onnxruntime.OrtMemType.DEFAULT
            )
            same_as_requested = onnxruntime.OrtArenaCfg({"arena_extend_strategy": 1})
            onnxruntime.create_and_register_allocator(cpu, same_as_requested)
            _EXACT_ARENA.append(True)
        except Exception:  # an older onnxruntime, or an allocator registered by someone else
            _EXACT_ARENA.append(False)
    if _EXACT_ARENA[0]:
        options.add_session_config_entry("session.use_env_allocators", "1")
    else:
        options.enable_cpu_mem_arena = False


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
        resolved = choose_device(device, gpu_count(), "onnxruntime")
        super().__init__(description, weights, resolved)
        self.model_source: Path | bytes = model
        """The ONNX file or bytes this session runs (another engine can open the same graph)."""
        self.threads = threads
        self.quiet = quiet
        self.exact_memory = False
        """Whether the session's CPU arena grows by exactly what is asked (see the module notes)."""
        self.session: Any = self._session(device)
        inputs = [_graph_tensor(n) for n in self.session.get_inputs()]
        outputs = [_graph_tensor(n) for n in self.session.get_outputs()]
        self._bind(inputs, outputs)
        self._input_names = [g.names[0] for g in inputs]

    def _session(self, requested: str | None) -> Any:
        import onnxruntime

        model = self.model_source
        options = _session_options(self.threads, self.quiet)
        if self.exact_memory and self.device == "cpu":
            _exact_arena(options)
        source = model if isinstance(model, bytes) else str(model)
        try:
            session = onnxruntime.InferenceSession(source, options, providers=_providers(self.device))
        except Exception as error:
            where = "converted model" if isinstance(model, bytes) else str(model)
            raise BackendError(
                f"{where}: onnxruntime {onnxruntime.__version__} cannot load it: {error}"
            ) from error
        if self.device.startswith("cuda") and "CUDAExecutionProvider" not in session.get_providers():
            raise BackendError(
                f"device={requested!r}: onnxruntime could not start its CUDA provider on {self.device}"
            )
        return session

    def hold_memory_exactly(self, exact: bool) -> bool:
        """On the CPU, rebuild the session on an arena that grows by exactly what is asked (``exact``), or
        on the default doubling one; True when the session was rebuilt (memory measured before no longer
        holds). Predictable memory for ``max_memory``, see the module notes."""
        if self.closed or self.device != "cpu" or exact == self.exact_memory:
            return False
        self.exact_memory = exact
        self.session = self._session(self.device)
        return True

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
    from deepij.inference.backends.onnx_relax import fit_to_descriptor, fitted_from_cache

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
