"""Checks of a whole description that no single field shows: names, references, halos, weights.

Readers call :func:`check_description` last; :func:`minimum_size` is also useful to tiling code.
"""

from __future__ import annotations

import re

from deepij.bundle.description import (
    MAX_AXIS_SIZE,
    MAX_SMALLEST_TENSOR_BYTES,
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ReferenceSize,
    SizeRule,
    TensorSpec,
)
from deepij.bundle.paths import inside_bundle, is_url
from deepij.errors import BundleError

_MAX_REFERENCE_DEPTH = 8
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_description(description: ModelDescription) -> None:
    """Raise a :class:`BundleError` for the first inconsistency found.

    Examples
    --------
    >>> import dataclasses
    >>> from deepij.bundle import open_bundle
    >>> description = open_bundle("examples/nuclei_bundle")  # opening checks it too
    >>> check_description(description)
    >>> check_description(dataclasses.replace(description, weights={}))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    deepij.errors.BundleError: examples/nuclei_bundle/rdf.yaml: weights: no weights formats given ...
    """
    _check_weights(description)
    _check_paths(description)
    check_file_sha256(description)
    _check_names(description)
    for kind, tensors in (("inputs", description.inputs), ("outputs", description.outputs)):
        for index, tensor in enumerate(tensors):
            _check_references(description, kind, index, tensor)
            _check_processing_references(description, kind, index, tensor)
            _check_extent(description, kind, index, tensor)
    for index, tensor in enumerate(description.outputs):
        _check_halo(description, index, tensor)
        _check_output_batch(description, index, tensor)


def minimum_size(description: ModelDescription, rule: SizeRule, _depth: int = 0) -> int | None:
    """The smallest size an axis with this rule can have; None when any size goes (no lower bound).

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> description = open_bundle("examples/nuclei_bundle")
    >>> minimum_size(description, ParameterizedSize(64, 16))
    64
    >>> description.outputs[0].axis("y").size  # the input's size, so the input's minimum
    ReferenceSize(tensor='input', axis='y', scale=1.0, offset=0.0)
    >>> minimum_size(description, description.outputs[0].axis("y").size)
    64
    """
    if isinstance(rule, FixedSize):
        return rule.value
    if isinstance(rule, ParameterizedSize):
        return rule.min
    if isinstance(rule, ReferenceSize) and _depth < _MAX_REFERENCE_DEPTH:
        target = _find_tensor(description, rule.tensor)
        axis = next((a for a in target.axes if a.id == rule.axis), None) if target else None
        if axis is None:
            return None
        reference = minimum_size(description, axis.size, _depth + 1)
        return None if reference is None else rule.size_for(reference)
    return None


def _find_tensor(description: ModelDescription, name: str) -> TensorSpec | None:
    return next((t for t in (*description.inputs, *description.outputs) if t.name == name), None)


def _legacy(description: ModelDescription) -> bool:
    return not description.format_version.startswith("0.5")


def _axis_field(description: ModelDescription, kind: str, index: int, axis_index: int, key: str) -> str:
    if _legacy(description):
        return f"{kind}[{index}].{'halo' if key == 'halo' else 'shape'}"
    return f"{kind}[{index}].axes[{axis_index}].{key}"


def _check_weights(description: ModelDescription) -> None:
    if not description.weights:
        raise BundleError(
            "no weights formats given",
            file=description.descriptor,
            field="weights",
            expected="at least one of torchscript, tensorflow_saved_model_bundle, onnx, ...",
        )


def named_files(description: ModelDescription) -> list[tuple[str, str]]:
    """Every local file the descriptor names, as ``(field, path)``: weights and their attachments,
    architecture files, attachments, documentation, covers, deepImageJ macros and jars, test and sample
    tensors. URLs and importable module names are left out.

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> for field, path in named_files(open_bundle("examples/nuclei_bundle"))[:3]:
    ...     print(field, path)
    weights.torchscript.source weights_torchscript.pt
    weights.onnx.source weights.onnx
    attachments per_sample_scale_range.ijm
    """
    legacy = _legacy(description)
    found: list[tuple[str, str]] = []
    for fmt, entry in description.weights.items():
        found.append((f"weights.{fmt}.source", entry.source))
        found += [(f"weights.{fmt}.attachments", a) for a in entry.attachments]
        arch = entry.architecture
        if arch is not None and (arch.source.endswith(".py") or "/" in arch.source):
            found.append((f"weights.{fmt}.architecture", arch.source))
    found += [("attachments", a) for a in description.attachments]
    if description.documentation is not None:
        found.append(("documentation", description.documentation))
    found += [("covers", c) for c in description.covers]
    found += _custom_op_files(description)
    dij = description.deepimagej
    for key, steps in (("preprocess", dij.preprocess), ("postprocess", dij.postprocess)):
        for step in steps:
            found += [(f"config.deepimagej.prediction.{key}", p) for p in (step.file, *step.config_files)]
    for kind, index, attribute, path in _tensor_files(description):
        legacy_list = f"{attribute.split('_')[0]}_{kind}"
        found.append((legacy_list if legacy else f"{kind}[{index}].{attribute}", path))
    return [(where, path) for where, path in found if path and not is_url(path)]


def _custom_op_files(description: ModelDescription) -> list[tuple[str, str]]:
    """The Python files of ``custom`` processing ops (0.5), by field."""
    found = []
    for kind, tensors in (("inputs", description.inputs), ("outputs", description.outputs)):
        stage = "postprocessing" if kind == "outputs" else "preprocessing"
        for t_index, tensor in enumerate(tensors):
            for o_index, op in enumerate(tensor.processing):
                if op.code is not None:
                    found.append((f"{kind}[{t_index}].{stage}[{o_index}].source", op.code.source))
    return found


def sha256_references(description: ModelDescription) -> list[tuple[str, str]]:
    """The file references whose sha256 :attr:`ModelDescription.file_sha256` holds, as ``(field, path)``,
    URLs included: attachments of the weights and of the bundle, documentation, covers, test and sample
    tensors (``field`` is where 0.5 writes the reference: ``attachments[0]``, ``outputs[0].test_tensor``).
    """
    found: list[tuple[str, str]] = []
    for fmt, entry in description.weights.items():
        found += [(f"weights.{fmt}.attachments[{i}]", a) for i, a in enumerate(entry.attachments)]
    found += [(f"attachments[{i}]", a) for i, a in enumerate(description.attachments)]
    if description.documentation is not None:
        found.append(("documentation", description.documentation))
    found += [(f"covers[{i}]", c) for i, c in enumerate(description.covers)]
    return found + tensor_file_references(description)


def tensor_file_references(description: ModelDescription) -> list[tuple[str, str]]:
    """The test and sample tensor files, as ``(field, path)``: ``field`` is where the descriptor names the
    file (0.5 ``inputs[0].test_tensor``; 0.3/0.4 ``test_inputs[0]``, its top-level lists)."""
    legacy = _legacy(description)
    found = []
    for kind, index, attribute, path in _tensor_files(description):
        legacy_list = f"{attribute.split('_')[0]}_{kind}"
        found.append((f"{legacy_list}[{index}]" if legacy else f"{kind}[{index}].{attribute}", path))
    return found


def files_with_sha256(description: ModelDescription) -> list[tuple[str, str, str]]:
    """The bundle files (URLs left out) the descriptor gives a sha256 of their own, each once, as
    ``(field, path, sha256)``; ``field`` names the sha256 (``outputs[0].test_tensor.sha256``).

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> files_with_sha256(open_bundle("examples/nuclei_bundle"))[0]  # doctest: +ELLIPSIS
    ('inputs[0].test_tensor.sha256', 'test_input.npy', '71dd0d6bd6e6...')
    """
    found, seen = [], set()
    for where, path in sha256_references(description):
        digest = description.file_sha256.get(path)
        if digest is None or path in seen or is_url(path):
            continue
        seen.add(path)
        found.append((f"{where}.sha256", path, digest))
    return found


def _tensor_files(description: ModelDescription) -> list[tuple[str, int, str, str]]:
    """``(kind, index, attribute, path)`` of each test and sample tensor file."""
    found = []
    for kind, tensors in (("inputs", description.inputs), ("outputs", description.outputs)):
        for index, tensor in enumerate(tensors):
            for attribute in ("test_tensor", "sample_tensor"):
                path = getattr(tensor, attribute)
                if path is not None:
                    found.append((kind, index, attribute, path))
    return found


def check_file_sha256(description: ModelDescription) -> None:
    """Raise a :class:`BundleError` unless each sha256 of :attr:`ModelDescription.file_sha256` belongs to a
    file reference a descriptor writes it beside (a writer would lose it otherwise) and is a sha256."""
    named = {path for _, path in sha256_references(description)}
    for path, digest in description.file_sha256.items():
        if path not in named:
            raise BundleError(
                "a sha256 is given for a file the descriptor does not name",
                file=description.descriptor,
                field="config.deepij.file_sha256",  # inline sha256 always sit beside a named file
                found=path,
                expected="the sha256 of a test or sample tensor, attachment, documentation or cover it names",
            )
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise BundleError(
                f"not a sha256 digest for the file {path!r}",
                file=description.descriptor,
                found=digest,
                expected="64 lowercase hexadecimal characters",
            )


def _check_paths(description: ModelDescription) -> None:
    for where, path in named_files(description):
        inside_bundle(description.root, path, descriptor=description.descriptor, field=where)


def _check_names(description: ModelDescription) -> None:
    seen: set[str] = set()
    for kind, tensors in (("inputs", description.inputs), ("outputs", description.outputs)):
        for index, tensor in enumerate(tensors):
            if tensor.name in seen:
                raise BundleError(
                    "tensor name used twice",
                    file=description.descriptor,
                    field=f"{kind}[{index}].{'name' if _legacy(description) else 'id'}",
                    found=tensor.name,
                    expected="names unique across inputs and outputs",
                )
            seen.add(tensor.name)


def _check_references(description: ModelDescription, kind: str, index: int, tensor: TensorSpec) -> None:
    for axis_index, axis in enumerate(tensor.axes):
        rule = axis.size
        if not isinstance(rule, ReferenceSize):
            continue
        field = _axis_field(description, kind, index, axis_index, "size")
        target = _find_tensor(description, rule.tensor)
        target_axis = next((a for a in target.axes if a.id == rule.axis), None) if target else None
        if target_axis is None:
            raise BundleError(
                "size refers to a missing tensor axis",
                file=description.descriptor,
                field=field,
                found=f"{rule.tensor}.{rule.axis}",
                expected="an axis of an existing tensor",
            )
        if isinstance(target_axis.size, ReferenceSize):
            raise BundleError(
                "contradictory shape rules: a size refers to an axis whose size is itself a reference",
                file=description.descriptor,
                field=field,
                found=f"{rule.tensor}.{rule.axis}",
                expected="a reference to an axis with a fixed or min/step size",
            )


def _check_processing_references(
    description: ModelDescription, kind: str, index: int, tensor: TensorSpec
) -> None:
    for op_index, op in enumerate(tensor.processing):
        reference = op.kwargs.get("reference_tensor")
        if reference is not None and _find_tensor(description, str(reference)) is None:
            step = "postprocessing" if kind == "outputs" else "preprocessing"
            raise BundleError(
                "processing refers to an unknown tensor",
                file=description.descriptor,
                field=f"{kind}[{index}].{step}[{op_index}].kwargs.reference_tensor",
                found=reference,
                expected="the name of an input or output",
            )


def can_grow(description: ModelDescription, rule: SizeRule, _depth: int = 0) -> bool:
    """True when the axis has valid sizes beyond its minimum (min/step with step > 0, or any size)."""
    if rule is None:
        return True
    if isinstance(rule, ParameterizedSize):
        return rule.step > 0
    if isinstance(rule, ReferenceSize) and _depth < _MAX_REFERENCE_DEPTH and rule.scale > 0:
        target = _find_tensor(description, rule.tensor)
        axis = next((a for a in target.axes if a.id == rule.axis), None) if target else None
        return axis is not None and can_grow(description, axis.size, _depth + 1)
    return False


def _check_halo(description: ModelDescription, index: int, tensor: TensorSpec) -> None:
    """A halo must leave something valid of the output. Growable axes are fine: deepImageJ picks tiles
    larger than twice the halo (real bundles declare min 1 with a halo of 10)."""
    for axis_index, axis in enumerate(tensor.axes):
        if axis.halo <= 0 or can_grow(description, axis.size):
            continue
        smallest = minimum_size(description, axis.size)
        if smallest is not None and smallest - 2 * axis.halo < 1:
            raise BundleError(
                f"halo too large for the shape of axis {axis.id!r}: nothing valid would remain "
                f"of its {smallest}-pixel output after cropping {axis.halo} on each side",
                file=description.descriptor,
                field=_axis_field(description, "outputs", index, axis_index, "halo"),
                found=axis.halo,
                expected=f"a halo below {smallest / 2:g} (half the smallest output size {smallest})",
            )


def _itemsize(data_type: str) -> int:
    """Bytes per element of a descriptor data type (``float32`` -> 4, ``bool`` -> 1)."""
    digits = "".join(c for c in data_type if c.isdigit())
    return int(digits) // 8 if digits else 1


def _check_extent(description: ModelDescription, kind: str, index: int, tensor: TensorSpec) -> None:
    """The smallest valid tensor must be one that can exist: no axis above :data:`MAX_AXIS_SIZE` (a
    reference can lead there from small numbers: 4096 * 512), at most :data:`MAX_SMALLEST_TENSOR_BYTES`."""
    elements = 1
    for axis_index, axis in enumerate(tensor.axes):
        smallest = minimum_size(description, axis.size)
        if smallest is not None and smallest > MAX_AXIS_SIZE:
            raise BundleError(
                f"the smallest size of axis {axis.id!r} is too large for a tensor axis",
                file=description.descriptor,
                field=_axis_field(description, kind, index, axis_index, "size"),
                found=smallest,
                expected=f"at most {MAX_AXIS_SIZE} (2**20): a descriptor states what one pass of the "
                "network takes",
            )
        elements *= max(smallest or 1, 1)
    size = elements * _itemsize(tensor.data_type)
    if size > MAX_SMALLEST_TENSOR_BYTES:
        shape = " x ".join(str(max(minimum_size(description, a.size) or 1, 1)) for a in tensor.axes)
        raise BundleError(
            f"the smallest valid {kind[:-1]} {tensor.name!r} is too large to allocate: "
            f"{shape} ({tensor.axes_str}) of {tensor.data_type}",
            file=description.descriptor,
            field=f"{kind}[{index}].{'shape' if _legacy(description) else 'axes'}",
            found=f"{size / 2**30:.1f} GiB",
            expected=f"at most {MAX_SMALLEST_TENSOR_BYTES // 2**30} GiB",
        )


def _check_output_batch(description: ModelDescription, index: int, tensor: TensorSpec) -> None:
    """An output holds one result per input sample: a batch fixed at ``n`` needs inputs fixed at ``n``
    (``n == 1`` also suits a free input batch: deepImageJ feeds one sample)."""
    rule = tensor.axis("b").size if "b" in tensor.axes_str else None
    if not isinstance(rule, FixedSize):
        return
    field = _axis_field(description, "outputs", index, tensor.axes_str.index("b"), "size")
    batched = [t for t in description.inputs if "b" in t.axes_str]
    if not batched and rule.value != 1:
        raise BundleError(
            f"output {tensor.name!r} has a batch fixed at {rule.value}, but no input has a batch axis "
            "(one sample goes in, one result comes out)",
            file=description.descriptor,
            field=field,
            found=rule.value,
            expected="a batch of 1, or none",
        )
    for source in batched:
        taken = source.axis("b").size
        if isinstance(taken, FixedSize) and taken.value == rule.value:
            continue
        can_be_one = not isinstance(taken, FixedSize) and (minimum_size(description, taken) or 1) == 1
        if rule.value == 1 and can_be_one:
            continue
        said = f"a batch of {taken.value}" if isinstance(taken, FixedSize) else "any batch"
        if isinstance(taken, ParameterizedSize):
            said = f"batches of {taken.min} + k * {taken.step}"
        raise BundleError(
            f"output {tensor.name!r} has a batch fixed at {rule.value}, but input {source.name!r} takes "
            f"{said}: an output holds one result per input sample",
            file=description.descriptor,
            field=field,
            found=rule.value,
            expected=f"the batch of input {source.name!r} ({said}), or no fixed size",
        )
