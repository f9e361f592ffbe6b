"""ONNX graphs with fixed spatial dims: relax them where the network does not need them, verified.

Many zoo ONNX files were exported with fixed dims (``1x1x512x512``), so only tiles of exactly that size
run, whatever the network could do. A fully convolutional network does not need them: the dims are made
symbolic (``dim_param``) on the graph's inputs and outputs, the stale shape annotations inside are dropped,
and the relaxed graph is trusted only when it passes three checks on random inputs:

1. at the fixed size it reproduces the original graph's outputs;
2. on the first half of that input (a smaller size) it runs, its outputs have the sizes the descriptor's rules
   give, and the part of them at least a quarter of the fixed size away from the cut edges equals the
   original graph's output there (a network that mixes the whole image, a Flatten/Linear or a Reshape to
   the fixed size, fails here); and the same with that input at the start of one half as large again (a
   graph that crops its output to the fixed size, as scripted nets exported at one size do, fails here);
3. where the descriptor itself pins the size, the smallest step the relaxed graph accepts is found by trying
   sizes one, two, four... pixels up from the half size; the relaxed descriptor allows multiples of it.

Failing any check keeps the original graph: it runs at its fixed size when the descriptor pins that size too,
and the entry is refused (and skipped with a note) when the descriptor allows sizes the graph cannot take.
A relaxed graph is kept in the graph cache (:mod:`deepij.inference.backends.graph_cache`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepij.bundle.description import (
    AxisSpec,
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ReferenceSize,
    TensorSpec,
)
from deepij.errors import BackendError
from deepij.inference.backends import graph_cache
from deepij.inference.backends.base import OpenRequest
from deepij.inference.backends.shapes import check_output_shapes, descriptor_dims, fixed_dim_conflicts

SPATIAL = "zyx"
OPERATION = "relax-fixed-spatial-dims-v1"


def fixed_spatial_axes(spec: TensorSpec, dims: Sequence[int | None] | None) -> dict[str, int]:
    """The spatial axes of ``spec`` the graph fixes, with their sizes."""
    if dims is None:
        return {}
    return {a: n for a, n in descriptor_dims(spec, tuple(dims)) if a in SPATIAL and n is not None}


def relaxed_model(model: bytes, description: ModelDescription, slots: Mapping[str, int]) -> bytes:
    """``model`` with the spatial dims of its inputs and outputs made symbolic.

    ``slots`` maps descriptor input names to their graph input index. Graph outputs are relaxed on every
    spatial axis of their described output (outputs are matched by order here, as the backend does when
    names differ).
    """
    import onnx

    proto = onnx.load_from_string(model)
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in initializers]
    for spec in description.inputs:
        _relax_value(real_inputs[slots[spec.name]], spec)
    for value, spec in zip(graph.output, description.outputs, strict=False):
        _relax_value(value, spec)
    del graph.value_info[:]  # inner shapes baked for the fixed size: shape inference redoes them
    return bytes(proto.SerializeToString())


def _relax_value(value: Any, spec: TensorSpec) -> None:
    dims = value.type.tensor_type.shape.dim
    sizes = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    for position, (letter, _) in enumerate(descriptor_dims(spec, sizes)):
        if letter in SPATIAL:
            dims[position].Clear()
            dims[position].dim_param = f"{spec.name}_{letter}"


def relaxed_description(
    description: ModelDescription, steps: Mapping[str, Mapping[str, int]], scales: Mapping[str, float]
) -> ModelDescription:
    """The descriptor with the relaxed input axes allowing multiples of their step (where it pinned a size)
    and output axes that pinned a size following the first input instead (``scales``: output/input size)."""
    first = description.inputs[0].name

    def relax_input(spec: TensorSpec) -> TensorSpec:
        axes = tuple(
            dataclasses.replace(a, size=ParameterizedSize(step, step))
            if (step := steps.get(spec.name, {}).get(a.id))
            else a
            for a in spec.axes
        )
        return dataclasses.replace(spec, axes=axes)

    def relax_output(spec: TensorSpec) -> TensorSpec:
        axes = tuple(
            dataclasses.replace(a, size=ReferenceSize(first, a.id, scales.get(f"{spec.name}/{a.id}", 1.0)))
            if a.id in SPATIAL and isinstance(a.size, FixedSize) and a.id in steps.get(first, {})
            else a
            for a in spec.axes
        )
        return dataclasses.replace(spec, axes=axes)

    return dataclasses.replace(
        description,
        inputs=tuple(relax_input(s) for s in description.inputs),
        outputs=tuple(relax_output(s) for s in description.outputs),
    )


def _pins(axis: AxisSpec) -> bool:
    rule = axis.size
    return isinstance(rule, FixedSize) or (isinstance(rule, ParameterizedSize) and rule.step == 0)


def _crop(array: np.ndarray, spec: TensorSpec, sizes: Mapping[str, int]) -> np.ndarray:
    index = tuple(slice(0, sizes[a]) if a in sizes else slice(None) for a in spec.axes_str)
    return np.ascontiguousarray(array[index])


class _Verifier:
    """The checks of the module notes, on one original and one relaxed backend (same inputs)."""

    def __init__(self, original: Any, relaxed: Any, fixed: Mapping[str, int], seed: int = 3) -> None:
        self.original, self.relaxed, self.fixed = original, relaxed, dict(fixed)
        spec = original.description.inputs[0]
        self.spec = spec
        rng = np.random.default_rng(seed)
        shape = []
        for letter, n in descriptor_dims(spec, tuple(original.graph_dims()[0][1] or ())):
            if letter in spec.axes_str:
                shape.append(n if n is not None else 1)
        dtype = np.dtype(spec.data_type) if spec.data_type.startswith("float") else np.float32
        self.image = rng.standard_normal(shape).astype(dtype)
        self.reference = original.predict([self.image])

    def same_at_fixed_size(self) -> None:
        from deepij.inference.backends.probes import outputs_agree

        if not outputs_agree(self.reference, self.relaxed.predict([self.image])):
            raise BackendError("at the fixed size the relaxed graph gives other outputs")

    def half_size(self, described: ModelDescription) -> dict[str, int]:
        sizes = {}
        for letter, n in self.fixed.items():
            rule = self.spec.axis(letter).size
            half = n // 2
            if isinstance(rule, ParameterizedSize) and rule.step > 0:
                half = rule.smallest_at_least(half) or half
            sizes[letter] = half
        return sizes

    def same_inside_a_crop(self, sizes: Mapping[str, int], described: ModelDescription) -> None:
        from deepij.inference.backends.probes import outputs_agree

        crop = _crop(self.image, self.spec, sizes)
        outputs = self.relaxed.predict([crop])
        check_output_shapes(described, [crop], outputs, "the relaxed graph")
        for out_spec, got, full in zip(described.outputs, outputs, self.reference, strict=True):
            inner = {}
            for letter in sizes:
                if letter not in out_spec.axes_str:
                    continue
                position = out_spec.axes_str.index(letter)
                scale = full.shape[position] / self.fixed[letter]
                inner[letter] = max(1, int((sizes[letter] - self.fixed[letter] // 4) * scale))
            if not outputs_agree([_crop(full, out_spec, inner)], [_crop(got, out_spec, inner)]):
                raise BackendError(
                    f"on a crop of {dict(sizes)} the relaxed graph's {out_spec.name!r} differs from the "
                    "original's away from the cut (the network mixes the whole image)"
                )

    def same_inside_a_larger_input(self, described: ModelDescription) -> None:
        """The fixed-size input at the start of one half as large again (new random content beyond it):
        outputs of the declared sizes, equal to the original's away from where the content changes (a
        graph that crops or reshapes to the fixed size fails here)."""
        from deepij.inference.backends.probes import outputs_agree

        spec = described.inputs[0]
        sizes = {}
        for letter, n in self.fixed.items():
            rule = spec.axis(letter).size
            target = n + n // 2
            valid = rule.smallest_at_least(target) if isinstance(rule, ParameterizedSize) else None
            sizes[letter] = valid or target
        shape = [sizes.get(a, n) for a, n in zip(self.spec.axes_str, self.image.shape, strict=True)]
        larger = np.random.default_rng(4).standard_normal(shape).astype(self.image.dtype)
        larger[tuple(slice(0, n) for n in self.image.shape)] = self.image
        outputs = self.relaxed.predict([larger])
        check_output_shapes(described, [larger], outputs, "the relaxed graph")
        for out_spec, got, full in zip(described.outputs, outputs, self.reference, strict=True):
            inner = {
                letter: max(1, int((n - n // 4) * full.shape[out_spec.axes_str.index(letter)] / n))
                for letter, n in self.fixed.items()
                if letter in out_spec.axes_str
            }
            if not outputs_agree([_crop(full, out_spec, inner)], [_crop(got, out_spec, inner)]):
                raise BackendError(
                    f"on a larger input {dict(sizes)} the relaxed graph's {out_spec.name!r} differs from the "
                    "original's where the content is the same"
                )

    def smallest_step(self, start: Mapping[str, int]) -> int:
        step = 1
        while step <= min(start.values()):
            sizes = {a: n + step for a, n in start.items()}
            try:
                crop = _crop(self.image, self.spec, sizes)
                outputs = self.relaxed.predict([crop])
                if all(
                    o.shape[spec.axes_str.index(a)]
                    == round(n * r.shape[spec.axes_str.index(a)] / self.fixed[a])
                    for spec, o, r in zip(
                        self.relaxed.description.outputs, outputs, self.reference, strict=True
                    )
                    for a, n in sizes.items()
                    if a in spec.axes_str
                ):
                    return step
            except BackendError:
                pass
            step *= 2
        raise BackendError(f"the relaxed graph takes no size between {dict(start)} and the fixed size")


def _steps_and_scales(
    verifier: _Verifier, sizes: Mapping[str, int]
) -> tuple[dict[str, int], dict[str, float]]:
    spec = verifier.spec
    pinned = [a for a in sizes if _pins(spec.axis(a))]
    step = verifier.smallest_step({a: sizes[a] for a in pinned}) if pinned else 0
    scales = {
        f"{out.name}/{a}": verifier.reference[i].shape[out.axes_str.index(a)] / verifier.fixed[a]
        for i, out in enumerate(verifier.original.description.outputs)
        for a in sizes
        if a in out.axes_str
    }
    return {a: step for a in pinned}, scales


@dataclasses.dataclass
class Relaxed:
    """A relaxed, verified graph: its backend, bytes, and the steps and output scales found."""

    backend: Any
    model: bytes
    steps: dict[str, int]
    scales: dict[str, float]


def _relax(backend: Any, request: OpenRequest, model: bytes, fixed: Mapping[str, int]) -> Relaxed:
    """The relaxed, verified graph (raises BackendError with the reason when the graph needs its dims)."""
    from deepij.inference.backends.onnx_runtime import OnnxRuntimeBackend

    description = backend.description
    if len(description.inputs) != 1:
        raise BackendError(f"relaxing handles one-input models (this one has {len(description.inputs)})")
    slots = {spec.name: slot for spec, slot in zip(description.inputs, backend._input_slots, strict=True)}
    relaxed_bytes = relaxed_model(model, description, slots)
    relaxed = OnnxRuntimeBackend(
        description, request.weights, relaxed_bytes, backend.device, request.threads, quiet=True
    )
    try:
        verifier = _Verifier(backend, relaxed, fixed)
        verifier.same_at_fixed_size()
        half = verifier.half_size(description)
        steps, scales = _steps_and_scales(verifier, half)
        widened = relaxed_description(description, {description.inputs[0].name: steps}, scales)
        relaxed.description = widened
        verifier.same_inside_a_crop(half, widened)
        verifier.same_inside_a_larger_input(widened)
    except BackendError:
        relaxed.close()
        raise
    return Relaxed(relaxed, relaxed_bytes, steps, scales)


def fit_to_descriptor(backend: Any, request: OpenRequest) -> Any:
    """``backend`` (an onnxruntime backend on ``request.path``) made to take the sizes its descriptor
    allows: unchanged when the graph fixes no spatial dim, relaxed when it does and may, else unchanged
    (the descriptor pins the size too) or refused (BackendError: the descriptor allows sizes it cannot take).
    """
    conflicts = []
    for spec, dims in backend.graph_dims():
        conflicts += fixed_dim_conflicts(spec, dims)
    unfixable = [c for c in conflicts if c.axis not in SPATIAL]
    if unfixable:
        raise BackendError("the graph contradicts the descriptor: " + "; ".join(map(str, unfixable)))
    fixed = {}
    for spec, dims in backend.graph_dims()[:1]:
        fixed = fixed_spatial_axes(spec, dims)
    if not fixed:
        return backend
    key = _cache_key(request)
    cached = graph_cache.load(key) if key else None
    if cached is not None and cached.meta.get("relaxed"):
        relaxed = _relaxed_from_cache(cached, request, backend.device)
        backend.close()
        return relaxed
    fixed_text = ", ".join(f"{a}={n}" for a, n in fixed.items())
    try:
        if cached is not None:  # a graph found to need its dims before: not tried again
            raise BackendError(str(cached.meta.get("reason", "found before")) + " (from the graph cache)")
        result = _relax(backend, request, Path(request.path).read_bytes(), fixed)
    except BackendError as error:
        reason = str(error).splitlines()[0].replace(f"{backend.label}: ", "")
        refusal = (
            "the graph contradicts the descriptor: " + "; ".join(map(str, conflicts))
            + f"; relaxing its fixed dims failed: {reason}"
        )
        if key and (cached is None or (conflicts and "refusal" not in cached.meta)):
            meta = {"relaxed": False, "reason": reason, **({"refusal": refusal} if conflicts else {})}
            graph_cache.store(key, b"", meta)
        if conflicts:
            raise BackendError(refusal) from error
        backend.notes.append(
            f"the ONNX graph fixes {fixed_text} and needs it ({reason}): it runs at that size"
        )
        return backend
    allowed = ", ".join(f"{a}: multiples of {s}" for a, s in result.steps.items()) or "the descriptor's sizes"
    note = f"the ONNX graph's fixed {fixed_text} relaxed and verified on a smaller crop ({allowed})"
    result.backend.notes.append(note)
    if key:
        meta = {"relaxed": True, "steps": result.steps, "scales": result.scales, "note": note}
        graph_cache.store(key, result.model, meta)
    backend.close()
    return result.backend


def fitted_from_cache(request: OpenRequest) -> Any | None:
    """What :func:`fit_to_descriptor` made of this graph in an earlier process, without opening the original
    graph first (an engine session less on a warm start): the relaxed graph, or the refusal (BackendError);
    None when the cache holds neither (the original is then opened and fitted)."""
    key = _cache_key(request)
    cached = graph_cache.load(key) if key else None
    if cached is None:
        return None
    if cached.meta.get("relaxed"):
        return _relaxed_from_cache(cached, request, request.device)
    if cached.meta.get("refusal"):
        raise BackendError(f"{cached.meta['refusal']} (from the graph cache)")
    return None  # it runs at its fixed size: the original graph it is


def _relaxed_from_cache(cached: graph_cache.CachedGraph, request: OpenRequest, device: str | None) -> Any:
    from deepij.inference.backends.onnx_runtime import OnnxRuntimeBackend

    description = request.description
    steps = {k: int(v) for k, v in cached.meta.get("steps", {}).items()}
    scales = {k: float(v) for k, v in cached.meta.get("scales", {}).items()}
    widened = relaxed_description(description, {description.inputs[0].name: steps}, scales)
    relaxed = OnnxRuntimeBackend(widened, request.weights, cached.model, device, request.threads)
    relaxed.notes.append(str(cached.meta.get("note", "")) + " (relaxed graph from the cache)")
    return relaxed


def _cache_key(request: OpenRequest) -> str | None:
    import deepij

    try:
        digest = request.weights.sha256 or graph_cache.file_sha256(Path(request.path))
    except OSError:
        return None
    return graph_cache.cache_key(
        digest,
        OPERATION,
        f"deepij {deepij.__version__}",
        *graph_cache.versions("onnx", "onnxruntime"),
        graph_cache.tensors_text(request.description),
    )
