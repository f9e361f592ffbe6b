"""Run torch weights with onnxruntime: convert the loaded module to ONNX in memory, check it, switch engines.

Why: on these CPUs onnxruntime runs the same network about 1.8x faster than torch (benchmarks/
bench_inference.py prints the figures), so for a bundle that ships only torch weights the fastest floor is
onnxruntime on a converted graph. The conversion is trusted only after the converted graph reproduces torch's
own outputs on a probe input of a size other than the one it was exported with (so shapes baked into the
export are caught); when export or check fails, torch keeps running the model and a note says why.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from deepij.bundle.description import (
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ReferenceSize,
    TensorSpec,
)
from deepij.errors import BackendError
from deepij.inference.backends.graph import add_batch_axis, as_dtype
from deepij.inference.backends.onnx_runtime import OnnxRuntimeBackend
from deepij.inference.backends.torch_runner import TorchModuleBackend

OPSET = 17
PROBE_SIDE = 32
"""Target size of each free axis of the export example (16 when a tensor has three spatial axes)."""


def _axis_size(rule: Any, target: int, sizes: dict[tuple[str, str], int]) -> int:
    if isinstance(rule, FixedSize):
        return rule.value
    if isinstance(rule, ParameterizedSize):
        return rule.smallest_at_least(target) or rule.min
    if isinstance(rule, ReferenceSize) and (rule.tensor, rule.axis) in sizes:
        return rule.size_for(sizes[(rule.tensor, rule.axis)])
    return target


def probe_inputs(description: ModelDescription, *, larger: bool = False, seed: int = 0) -> list[np.ndarray]:
    """Random inputs of valid sizes in the descriptor's axes: small ones, or (``larger``) one step up on every
    free axis and two samples on a free batch axis.

    Examples
    --------
    >>> [a.shape for a in probe_inputs(description)]  # doctest: +SKIP
    [(1, 1, 32, 32)]
    """
    rng = np.random.default_rng(seed)
    sizes: dict[tuple[str, str], int] = {}
    arrays = []
    for spec in description.inputs:
        side = 16 if sum(a.id in "zyx" for a in spec.axes) == 3 else PROBE_SIDE
        shape = []
        for axis in spec.axes:
            if axis.id == "b":
                size = (
                    2 if larger and not isinstance(axis.size, FixedSize) else _axis_size(axis.size, 1, sizes)
                )
            else:
                size = _axis_size(axis.size, side + 1 if larger else side, sizes)
            sizes[(spec.name, axis.id)] = size
            shape.append(size)
        arrays.append(
            rng.standard_normal(shape).astype(
                np.dtype(spec.data_type) if spec.data_type.startswith("float") else np.float32
            )
        )
    return arrays


def _dynamic_axes(spec: TensorSpec, batch_added: bool) -> dict[int, str]:
    shift = 1 if batch_added else 0
    dynamic = {0: "batch"} if batch_added else {}
    for i, axis in enumerate(spec.axes):
        if not isinstance(axis.size, FixedSize) and axis.id != "c":
            dynamic[i + shift] = f"{axis.id}_{i}"
    return dynamic


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The legacy exporter dumps the whole graph to stderr when it fails and warns on every call."""
    import torch

    log = torch._C._jit_onnx_log
    torch._C._jit_onnx_log = lambda *args: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch._C._jit_onnx_log = log


def _exportable(module: Any) -> Any:
    """A frozen, list-free copy of a TorchScript module (the exporter cannot type lists built by append);
    eager modules are exported as they are."""
    import torch

    if not isinstance(module, torch.jit.ScriptModule):
        return module
    frozen = torch.jit.freeze(module.eval())
    graph = frozen.graph
    torch._C._jit_pass_inline(graph)
    torch._C._jit_pass_remove_mutation(graph)
    torch._C._jit_pass_peephole_list_idioms(graph, refine_list_len=True)
    torch._C._jit_pass_constant_propagation(graph)
    torch._C._jit_pass_dce(graph)
    return frozen


def export_onnx(backend: TorchModuleBackend) -> bytes:
    """The backend's torch module as serialized ONNX, with free axes exported as dynamic."""
    import torch

    description = backend.description
    example = []
    for array, spec, wanted in zip(
        probe_inputs(description), description.inputs, backend._graph_inputs, strict=True
    ):
        graph_array = as_dtype(add_batch_axis(array, spec, None, torch_like=True), wanted.dtype)
        example.append(torch.from_numpy(graph_array))
    names_in = [f"in{i}_{s.name}" for i, s in enumerate(description.inputs)]
    names_out = [f"out{i}_{s.name}" for i, s in enumerate(description.outputs)]
    dynamic = {
        name: _dynamic_axes(spec, "b" not in spec.axes_str)
        for name, spec in (
            *zip(names_in, description.inputs, strict=True),
            *zip(names_out, description.outputs, strict=True),
        )
    }
    buffer = io.BytesIO()
    with _quiet_exporter(), torch.inference_mode():
        torch.onnx.export(
            _exportable(backend.module),
            tuple(example),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=dynamic,
        )
    return buffer.getvalue()


def outputs_agree(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> bool:
    """Same shapes, and values within float32 rounding of a deep network (rtol 1e-3, atol 1e-4 x scale)."""
    if len(reference) != len(candidate):
        return False
    for ref, got in zip(reference, candidate, strict=True):
        if ref.shape != got.shape:
            return False
        scale = max(1.0, float(np.nanmax(np.abs(ref)))) if ref.size else 1.0
        if not np.allclose(got, ref, rtol=1e-3, atol=1e-4 * scale, equal_nan=True):
            return False
    return True


def convert_to_onnxruntime(backend: TorchModuleBackend, threads: int | None = None) -> OnnxRuntimeBackend:
    """An onnxruntime backend running ``backend``'s network, checked against torch on a probe input.

    Raises
    ------
    BackendError
        When the export fails or the converted graph does not reproduce torch's outputs.
    """
    try:
        model = export_onnx(backend)
    except Exception as error:
        raise BackendError(
            f"{backend.label}: torch could not export it to ONNX: {str(error).splitlines()[0]}"
        ) from error
    converted = OnnxRuntimeBackend(backend.description, backend.weights, model, "cpu", threads)
    probe = probe_inputs(backend.description, larger=True, seed=1)
    try:
        agree = outputs_agree(backend.predict(probe), converted.predict(probe))
    except BackendError as error:
        converted.close()
        raise BackendError(f"{backend.label}: the ONNX conversion does not run: {error}") from error
    if not agree:
        converted.close()
        raise BackendError(f"{backend.label}: the ONNX conversion gives other outputs than torch")
    converted.runtime = "onnxruntime"
    converted.notes.append(
        f"{backend.weights.format} weights converted to ONNX and run with onnxruntime "
        "(checked against torch; runtime='native' keeps torch)"
    )
    return converted
