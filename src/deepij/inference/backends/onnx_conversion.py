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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepij.bundle.description import (
    FixedSize,
    ModelDescription,
    TensorSpec,
    WeightsEntry,
)
from deepij.errors import BackendError, OutputShapeError
from deepij.inference.backends import graph_cache
from deepij.inference.backends.graph import add_batch_axis, as_dtype
from deepij.inference.backends.onnx_runtime import OnnxRuntimeBackend
from deepij.inference.backends.probes import outputs_agree, probe_inputs
from deepij.inference.backends.shapes import check_output_shapes
from deepij.inference.backends.torch_runner import TorchModuleBackend

OPSET = 17
CONVERSION = "torch-to-onnx-v1"


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


def _frozen(module: Any) -> Any:
    """A frozen, list-free copy of a TorchScript module: the exporter cannot type lists built by append, and
    frozen attributes turn ``if self.option`` branches into constants."""
    import torch

    frozen = torch.jit.freeze(module.eval())
    graph = frozen.graph
    torch._C._jit_pass_inline(graph)
    torch._C._jit_pass_remove_mutation(graph)
    torch._C._jit_pass_peephole_list_idioms(graph, refine_list_len=True)  # type: ignore[attr-defined]
    torch._C._jit_pass_constant_propagation(graph)
    torch._C._jit_pass_dce(graph)
    return frozen


ROUTES = ("frozen TorchScript graph", "module as loaded")
"""How a TorchScript module is handed to the exporter, in the order tried. Zoo files need either: a scripted
U-Net with padding and cropping on the input size exports only frozen (the exporter cannot type the branches
otherwise), one calling ``F.interpolate(scale_factor=...)`` only as loaded (freezing inlines interpolate's
own TorchScript, whose scale list the exporter cannot read). Traced modules take the first. An eager module
(a state dict's network) is exported as it is."""


def _routes(module: Any) -> list[tuple[str, Any]]:
    import torch

    if not isinstance(module, torch.jit.ScriptModule):
        return [("eager module", lambda: module)]
    return [(ROUTES[0], lambda: _frozen(module)), (ROUTES[1], lambda: module)]


def export_onnx(backend: TorchModuleBackend, route: str = ROUTES[0]) -> bytes:
    """The backend's torch module as serialized ONNX, with input and output names and its free axes
    exported as dynamic, handed to the exporter by ``route`` (one of :data:`ROUTES`)."""
    import torch

    prepare = dict(_routes(backend.module)).get(route)
    if prepare is None:
        raise BackendError(f"route={route!r} does not apply to this module (expected one of {ROUTES})")
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
            prepare(),
            tuple(example),
            buffer,  # type: ignore[arg-type]  # a file object works, the annotation says paths only
            dynamo=False,
            opset_version=OPSET,
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=dynamic,
        )
    return buffer.getvalue()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _verified(backend: TorchModuleBackend, model: bytes, threads: int | None) -> OnnxRuntimeBackend:
    """An onnxruntime backend on ``model``, once it reproduces torch on a probe of another size than the
    export example (so sizes baked into the export are caught) and its outputs have the declared sizes."""
    converted = OnnxRuntimeBackend(backend.description, backend.weights, model, "cpu", threads, quiet=True)
    probe = probe_inputs(backend.description, larger=True, seed=1)
    try:
        reference = backend.predict(probe)
        check_output_shapes(backend.description, probe, reference, backend.label)
        agree = outputs_agree(reference, converted.predict(probe))
    except BackendError as error:
        converted.close()
        if isinstance(error, OutputShapeError):
            raise
        raise BackendError(f"the converted graph does not run: {_first_line(error)}") from error
    if not agree:
        converted.close()
        raise BackendError("the converted graph gives other outputs than torch")
    return converted


def conversion_key(
    description: ModelDescription, weights: WeightsEntry, source: Path | None
) -> str | None:
    """The graph-cache key of a torch entry's conversion: its weights' (and architecture file's) sha256, the
    versions of deepij, torch, onnx and onnxruntime (read without importing them) and the descriptor's
    tensors (the export example and the dynamic axes come from them); None without a source file."""
    if source is None:
        return None
    import deepij

    try:
        parts = [weights.sha256 or graph_cache.file_sha256(source)]
        architecture = weights.architecture
        if architecture is not None:
            parts.append(repr((architecture.source, architecture.callable, dict(architecture.kwargs))))
            if architecture.source.endswith(".py"):
                parts.append(graph_cache.file_sha256(description.path(architecture.source)))
    except OSError:
        return None
    return graph_cache.cache_key(
        *parts,
        CONVERSION,
        f"deepij {deepij.__version__}",
        *graph_cache.versions("torch", "onnx", "onnxruntime"),
        weights.format,
        graph_cache.tensors_text(description),
    )


def cached_conversion(
    description: ModelDescription, weights: WeightsEntry, source: Path | None, threads: int | None = None
) -> OnnxRuntimeBackend | None:
    """The converted graph of a torch entry from the graph cache, run with onnxruntime on the CPU; None when
    it is not there. Needs neither torch nor onnx: a warm start loads no torch at all."""
    key = conversion_key(description, weights, source)
    cached = graph_cache.load(key) if key else None
    if cached is None:
        return None
    converted = OnnxRuntimeBackend(description, weights, cached.model, "cpu", threads)
    converted.notes.append(
        f"{weights.format} weights converted to ONNX ({cached.meta.get('route', '?')}; from the graph cache) "
        "and run with onnxruntime (runtime='native' keeps torch)"
    )
    return converted


def convert_to_onnxruntime(
    backend: TorchModuleBackend, threads: int | None = None, source: Path | None = None
) -> OnnxRuntimeBackend:
    """An onnxruntime backend running ``backend``'s network, checked against torch on a probe input.

    Each of :data:`ROUTES` is tried until one exports a graph that passes the check; the note names it.
    With ``source`` (the weights file) the converted graph is kept in the graph cache, and a later process
    loads it from there without exporting or checking again.

    Raises
    ------
    BackendError
        When no route gives a graph that reproduces torch's outputs (the message lists each route's failure).
    OutputShapeError
        When torch's own outputs on the probe contradict the descriptor.
    """
    fmt = backend.weights.format
    cached = cached_conversion(backend.description, backend.weights, source, threads)
    if cached is not None:
        return cached
    key = conversion_key(backend.description, backend.weights, source)
    failures = []
    for route, _ in _routes(backend.module):
        try:
            model = export_onnx(backend, route)
        except Exception as error:  # the exporter raises many kinds; each is a reason to try the next
            failures.append(f"{route}: export failed: {_first_line(error)}")
            continue
        try:
            converted = _verified(backend, model, threads)
        except OutputShapeError:
            raise
        except BackendError as error:
            failures.append(f"{route}: {error}")
            continue
        tried = f"; before it {'; '.join(failures)}" if failures else ""
        converted.notes.append(
            f"{fmt} weights converted to ONNX ({route}{tried}), checked against torch, run with onnxruntime "
            "(runtime='native' keeps torch)"
        )
        if key:
            graph_cache.store(key, model, {"route": route, "format": fmt})
        return converted
    raise BackendError(f"{backend.label}: torch could not export it to ONNX: " + "; ".join(failures))
