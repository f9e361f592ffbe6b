"""int8 graphs for ``precision="int8"``: an ONNX graph statically quantized by onnxruntime, kept on disk.

How (onnxruntime's ``quantize_static``):

- QDQ format: QuantizeLinear/DequantizeLinear pairs around each quantized op, so the result is a plain ONNX
  graph that onnxruntime and OpenVINO both run with int8 kernels (OpenVINO turns the pairs into its own
  quantized ops; its runtime graph reports u8 convolutions);
- unsigned 8-bit activations, signed 8-bit weights per output channel (u8s8), activation ranges by MinMax
  over the calibration inputs (:mod:`.calibration_inputs`). On x86 CPUs without VNNI (``avx512_vnni``,
  ``avx_vnni``, AMX) the weights get 7 bits (``reduce_range``), as onnxruntime advises: its u8s8 kernels
  there add pairs of products in 16 bits, which saturates (measured on this project's test convnet on an
  AVX2 EPYC: 427 of 1024 outputs off by more than 0.01, the worst by 0.056; with 7 bits, none and 0.0045).
  With VNNI the products add in 32 bits and all 8 bits are kept. Signed activations (s8s8) saturated the
  same way, and unsigned weights (u8u8) ran slower than float32;
- weights as initializers: graphs exported from frozen TorchScript carry them as ``Constant`` nodes, which
  the quantizer would treat as activations (:func:`constants_as_initializers`);
- the tail in float32: the ops from each graph output back to, and including, the last convolution or
  matrix product are not quantized. Quantizing a final sigmoid would leave 256 levels on a probability
  map (steps of ~0.004), more error than the whole rest of the network; the last convolution is usually
  a 1x1 and costs little.

The quantized graph is kept in the graph cache (:mod:`.graph_cache`), keyed by the float32 graph's sha256,
the weights' sha256, the descriptor's tensors, the calibration inputs' sha256, these settings and the
versions of deepij, onnx and onnxruntime: a second process loads it without calibrating again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepij.errors import BackendError
from deepij.inference.backends import graph_cache
from deepij.inference.backends.calibration_inputs import CalibrationInputs
from deepij.inference.backends.devices import cpu_flags
from deepij.inference.backends.graph import fixed_batches

log = logging.getLogger("deepij.inference.backends")

VNNI_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8")
"""x86 CPU features that multiply u8 by s8 and add into 32 bits in one instruction."""


def reduced_weights() -> bool:
    """Whether weights get 7 bits (``reduce_range``): on x86 CPUs without VNNI (module notes)."""
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")
    return x86 and not (set(VNNI_FEATURES) & cpu_flags())


def settings() -> str:
    """What the quantization does here, as it enters the cache key: other settings, another entry."""
    weights = "s8 weights per channel" + (" in 7 bits (no VNNI)" if reduced_weights() else "")
    return f"int8-v1 QDQ, constants as initializers, u8 activations (MinMax), {weights}, float32 tail"


HEAVY_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def float_tail(model: Any) -> list[str]:
    """Names of the nodes from each graph output back to, and including, the first convolution or matrix
    product met (module notes); nodes without a name cannot be excluded and are left out."""
    producer = {output: node for node in model.graph.node for output in node.output}
    tail: dict[int, Any] = {}
    pending = [output.name for output in model.graph.output]
    while pending:
        node = producer.get(pending.pop())
        if node is None or id(node) in tail:
            continue
        tail[id(node)] = node
        if node.op_type not in HEAVY_OPS:
            pending.extend(node.input)
    return sorted(node.name for node in tail.values() if node.name)


def constants_as_initializers(model: Any) -> Any:
    """``model`` with its top-level ``Constant`` tensors moved to initializers, in place. Graphs exported
    from frozen TorchScript carry their weights as ``Constant`` nodes, which the quantizer treats as
    activations (weights quantized per tensor at every run, biases left in float32); as initializers they
    are quantized once, per channel.
    """
    outputs = {value.name for value in model.graph.output}
    kept = []
    for node in model.graph.node:
        value = node.attribute[0] if len(node.attribute) == 1 else None
        if (
            node.op_type == "Constant"
            and value is not None
            and value.name == "value"
            and node.output[0] not in outputs
        ):
            tensor = model.graph.initializer.add()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def _graph_digest(source: Path | bytes) -> str:
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    return graph_cache.file_sha256(Path(source))


def quantized_key(backend: Any, calibration: CalibrationInputs) -> str | None:
    """The graph-cache key of ``backend``'s graph quantized on ``calibration`` (module notes); None when the
    graph's file cannot be read."""
    import deepij

    try:
        graph = _graph_digest(backend.model_source)
    except OSError:
        return None
    return graph_cache.cache_key(
        graph,
        graph_cache.weights_digest(backend.description, backend.weights),
        settings(),
        calibration.digest(),
        f"deepij {deepij.__version__}",
        *graph_cache.versions("onnx", "onnxruntime"),
        graph_cache.tensors_text(backend.description),
    )


class _QuantizerChatter(logging.Filter):
    """onnxruntime's quantizer logs on the root logger: advice to run its pre-processing (its symbolic shape
    inference fails on zoo graphs with free sizes, and it changed nothing measured here) and one line per
    op it leaves alone. Kept at debug level in deepij's log instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if f"onnxruntime{os.sep}quantization" not in record.pathname:
            return True
        log.debug("onnxruntime quantizer: %s", record.getMessage())
        return False


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    root = logging.getLogger()
    chatter = _QuantizerChatter()
    root.addFilter(chatter)
    try:
        yield
    finally:
        root.removeFilter(chatter)


def _feeds(backend: Any, model: Any, calibration: CalibrationInputs) -> list[dict[str, Any]]:
    """The calibration inputs as onnxruntime feeds of the float32 graph (in the batch size it fixes)."""
    initializers = {init.name for init in model.graph.initializer}
    names = [value.name for value in model.graph.input if value.name not in initializers]
    graph_inputs = backend.graph_feed(calibration.inputs)
    if len(names) != len(graph_inputs):
        raise BackendError(f"the graph has {len(names)} inputs, the description {len(graph_inputs)}")
    return [
        dict(zip(names, chunk, strict=True)) for chunk, _ in fixed_batches(graph_inputs, backend._fixed_batch)
    ]


def quantize(backend: Any, calibration: CalibrationInputs) -> bytes:
    """``backend``'s ONNX graph (``backend.model_source``) quantized to int8 on ``calibration``.

    Raises
    ------
    BackendError
        When onnxruntime cannot quantize the graph (the message says why).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    source = backend.model_source
    model = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(str(source))
    feeds = _feeds(backend, model, calibration)
    constants_as_initializers(model)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = list(feeds)

        def get_next(self) -> dict[str, Any] | None:
            return self.left.pop(0) if self.left else None

    with tempfile.TemporaryDirectory(prefix="deepij-int8-") as folder, _quiet_quantizer():
        source_file, target = Path(folder) / "float32.onnx", Path(folder) / "int8.onnx"
        try:
            onnx.save(model, str(source_file))  # a file: older onnxruntime takes no ModelProto here
            quantize_static(
                source_file,
                target,
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                reduce_range=reduced_weights(),
                nodes_to_exclude=float_tail(model),
            )
        except Exception as error:  # the quantizer raises many kinds; each means "not this graph"
            text = str(error).strip().splitlines()
            raise BackendError(
                f"onnxruntime could not quantize the graph: {text[0] if text else type(error).__name__}"
            ) from error
        return target.read_bytes()


def quantized_graph(backend: Any, calibration: CalibrationInputs) -> tuple[bytes, bool]:
    """The int8 graph of ``backend`` from the graph cache, else quantized now and kept there; and whether
    it came from the cache."""
    key = quantized_key(backend, calibration)
    cached = graph_cache.load(key) if key else None
    if cached is not None:
        return cached.model, True
    model = quantize(backend, calibration)
    if key:
        graph_cache.store(
            key, model, {"operation": "int8", "settings": settings(), "calibration": calibration.source}
        )
    return model, False
