"""OpenVINO as a CPU engine for ONNX graphs (the bundle's own, or torch weights converted or relaxed).

Optional (``pip install deepij[openvino]``). OpenVINO compiles a graph for one input shape; tiles of a run
all have the same shape, so each new shape is compiled once (about 0.1-0.3 s) and kept (the last
:data:`KEEP` shapes). It runs with the ``THROUGHPUT`` performance hint (measured faster than ``LATENCY`` for
one request at a time on these CPUs, see benchmarks/bench_fast_path.py) and FP32 inference precision, so its
outputs match onnxruntime's to float rounding: OpenVINO would otherwise run bf16 on CPUs that have it.
Whether it or onnxruntime runs a model is measured per model at load (:mod:`.runtime_choice`).

NaN and infinity: OpenVINO's CPU kernels do not carry NaN through every op (its ``Relu`` gives 0 for NaN,
where IEEE arithmetic, torch and onnxruntime give NaN; measured with OpenVINO 2026.4), so a pass whose inputs
hold a NaN or an infinite value would come out finite and wrong (``predict(non_finite="propagate")``). Such a
pass runs with onnxruntime on the same graph instead (loaded on first need); passes of finite values are
unaffected.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepij.bundle.description import ModelDescription, WeightsEntry
from deepij.errors import BackendError
from deepij.inference.backends.base import Backend
from deepij.inference.backends.graph import GraphBackend, GraphTensor

log = logging.getLogger("deepij.inference.backends")

KEEP = 4
"""Compiled input shapes kept per model."""
HINT = "THROUGHPUT"

_OV_DTYPES = {
    "f32": np.float32,
    "f64": np.float64,
    "f16": np.float16,
    "i64": np.int64,
    "i32": np.int32,
    "u8": np.uint8,
    "i8": np.int8,
    "u16": np.uint16,
    "i16": np.int16,
    "boolean": np.bool_,
}


def _graph_tensor(port: Any) -> GraphTensor:
    shape = port.get_partial_shape()
    dims = None
    if shape.rank.is_static:
        dims = tuple(int(d.get_length()) if d.is_static else None for d in shape)
    dtype = _OV_DTYPES.get(port.get_element_type().get_type_name())
    names = tuple(sorted(port.get_names())) or (port.get_any_name(),)
    return GraphTensor(
        names, None if dims is None else len(dims), None if dtype is None else np.dtype(dtype), dims
    )


class OpenVinoBackend(GraphBackend):
    """An ONNX graph compiled by OpenVINO for the CPU, one compiled model per input shape.

    Parameters
    ----------
    model : Path or bytes
        The ``.onnx`` file, or a serialized ONNX model.
    threads : int, optional
        Inference threads; None lets OpenVINO use every core.
    inference_precision : {"f32", "bf16"}
        OpenVINO's ``INFERENCE_PRECISION_HINT``: ``f32`` (the default, outputs as onnxruntime's) or ``bf16``
        (``precision="bfloat16"``, :mod:`.cpu_precision`; CPUs without bfloat16 arithmetic run f32
        regardless, see :meth:`compiled_precision`).
    """

    runtime = "openvino"

    def __init__(
        self,
        description: ModelDescription,
        weights: WeightsEntry,
        model: Path | bytes,
        threads: int | None = None,
        inference_precision: str = "f32",
    ) -> None:
        import openvino

        super().__init__(description, weights, "cpu")
        self.model_source = model
        self.threads = threads
        self._exact: Backend | None = None
        """onnxruntime on the same graph, for passes with NaN or infinite inputs (module notes)."""
        self._core = openvino.Core()
        try:
            self._model = self._core.read_model(model if isinstance(model, bytes) else str(model))
        except Exception as error:
            where = "converted model" if isinstance(model, bytes) else str(model)
            raise BackendError(f"{where}: OpenVINO {openvino.__version__} cannot read it: {error}") from error
        self.inference_precision = inference_precision
        self._config: dict[str, Any] = {
            "PERFORMANCE_HINT": HINT,
            "INFERENCE_PRECISION_HINT": inference_precision,
        }
        if threads is not None:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        inputs = [_graph_tensor(p) for p in self._model.inputs]
        outputs = [_graph_tensor(p) for p in self._model.outputs]
        self._bind(inputs, outputs)
        self._compiled: OrderedDict[tuple[tuple[int, ...], ...], Any] = OrderedDict()

    def _request(self, shapes: tuple[tuple[int, ...], ...]) -> Any:
        """An infer request of the model compiled for these input shapes (compiled on first use)."""
        if shapes in self._compiled:
            self._compiled.move_to_end(shapes)
            return self._compiled[shapes]
        model = self._model.clone()
        model.reshape({port: list(shape) for port, shape in zip(model.inputs, shapes, strict=True)})
        compiled = self._core.compile_model(model, "CPU", self._config)
        request = compiled.create_infer_request()
        self._compiled[shapes] = request
        while len(self._compiled) > KEEP:
            self._compiled.popitem(last=False)
        return request

    def compiled_precision(self) -> str | None:
        """The inference precision OpenVINO compiled the last used shape in (``"f32"``, ``"bf16"``): it
        falls back to f32 where the CPU lacks what was asked; None before the first pass."""
        if not self._compiled:
            return None
        compiled = next(reversed(self._compiled.values())).get_compiled_model()
        return str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())

    def predict(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not self.closed and not all(_finite(np.asarray(a)) for a in inputs):
            return self._exactly().predict(inputs)
        return super().predict(inputs)

    def _run(self, graph_inputs: list[np.ndarray]) -> list[np.ndarray]:
        shapes = tuple(tuple(a.shape) for a in graph_inputs)
        try:
            request = self._request(shapes)
            request.infer(dict(enumerate(graph_inputs)))
            return [np.array(request.get_output_tensor(i).data) for i in range(len(self._model.outputs))]
        except Exception as error:
            raise BackendError(
                f"{self.label}: OpenVINO failed on inputs of shape {[list(s) for s in shapes]}: {error}"
            ) from error

    def _exactly(self) -> Backend:
        """onnxruntime on this graph, for passes with NaN or infinite inputs (module notes)."""
        if self._exact is None:
            from deepij.inference.backends.onnx_runtime import OnnxRuntimeBackend

            log.info(
                "%s: a pass with NaN or infinite inputs runs with onnxruntime (OpenVINO's Relu turns NaN "
                "into 0)",
                self.label,
            )
            self._exact = OnnxRuntimeBackend(
                self.description, self.weights, self.model_source, "cpu", self.threads
            )
        return self._exact

    def close(self) -> None:
        if self._exact is not None:
            self._exact.close()
            self._exact = None
        self._compiled.clear()
        self._model = None
        super().close()


def _finite(array: np.ndarray) -> bool:
    """Whether every value is finite (integers always are)."""
    return array.dtype.kind != "f" or bool(np.isfinite(array).all())
