"""Tensors of descriptors 0.3 (deepImageJ 2.x ``model.yaml``) and 0.4 (``rdf.yaml``).

Both write axes as a letter string and shapes per axis: a fixed list, ``{min, step}`` for inputs, and
``{reference_tensor (0.4) | reference_input (0.3), scale, offset}`` for outputs, where ``offset`` is per side
(the reader doubles it). Test and sample files are top-level lists matched to tensors by position.
"""

from __future__ import annotations

import math
from typing import Any

from deepij.bundle.description import (
    AxisSpec,
    FixedSize,
    ParameterizedSize,
    ReferenceSize,
    SizeRule,
    TensorSpec,
)
from deepij.bundle.readers._node import Node
from deepij.bundle.readers.common import (
    check_axes_letters,
    check_dtype,
    check_size_bound,
    clean_path,
    letters_map,
    read_processing,
)

LEGACY_FILE_LISTS = ("test_inputs", "test_outputs", "sample_inputs", "sample_outputs")
_TENSOR_KEYS = {
    "name",
    "axes",
    "data_type",
    "data_range",
    "shape",
    "halo",
    "preprocessing",
    "postprocessing",
    "description",
}


def read_legacy_tensors(doc: Node) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], dict[str, Any]]:
    """``inputs`` and ``outputs`` of a 0.3/0.4 descriptor.

    Returns
    -------
    inputs, outputs : tuple of TensorSpec
    surplus : dict
        The top-level test/sample lists that have more entries than there are tensors (deepImageJ lists a
        post-processing results table there too), kept whole for :attr:`ModelDescription.extra`.
    """
    written = {
        key: tuple(e.text() for e in doc.get(key).elements(allow_scalar=True)) for key in LEGACY_FILE_LISTS
    }
    files = {key: _file_entries(texts) for key, texts in written.items()}
    input_nodes = doc.required("inputs", "a list of input tensors").elements()
    if not input_nodes:
        raise doc.get("inputs").error("no input tensors", expected="at least one input")
    inputs = tuple(
        _read_tensor(node, None, files["test_inputs"], files["sample_inputs"], i)
        for i, node in enumerate(input_nodes)
    )
    output_nodes = doc.required("outputs", "a list of output tensors").elements()
    if not output_nodes:
        raise doc.get("outputs").error("no output tensors", expected="at least one output")
    by_name = {t.name: t for t in inputs}
    outputs = tuple(
        _read_tensor(node, by_name, files["test_outputs"], files["sample_outputs"], i)
        for i, node in enumerate(output_nodes)
    )
    counts = {"test_inputs": len(inputs), "sample_inputs": len(inputs)}
    counts.update(test_outputs=len(outputs), sample_outputs=len(outputs))
    surplus = {k: list(v) for k, v in written.items() if len(v) > counts[k]}  # as written
    return inputs, outputs, surplus


def _file_entries(texts: tuple[str | None, ...]) -> tuple[str | None, ...]:
    """The paths of a top-level test/sample list, entry by entry: the n-th entry belongs to the n-th tensor,
    so a null or empty entry (``""``, ``./``) stays in its place as None (no file for that tensor), never
    shifting the others, and never becomes an empty path (a 0.5 writer would write ``source: ''``, which no
    reader takes).

    Examples
    --------
    >>> _file_entries((None, "./b.npy", "./"))
    (None, 'b.npy', None)
    """
    return tuple(None if text is None else clean_path(text) or None for text in texts)


def _read_tensor(
    node: Node,
    inputs: dict[str, TensorSpec] | None,
    tests: tuple[str | None, ...],
    samples: tuple[str | None, ...],
    index: int,
) -> TensorSpec:
    """One tensor; ``inputs`` is None while reading inputs, the inputs by name while reading outputs."""
    node.mapping()
    is_output = inputs is not None
    name = node.required("name", "the tensor's name").required_text()
    shape = node.get("shape")
    axes = _read_axes(node.get("axes"), shape, is_output)
    sizes = _read_shape(shape, axes, inputs)
    halos = _read_halo(node.get("halo"), axes) if is_output else [0] * len(axes)
    processing_key = "postprocessing" if is_output else "preprocessing"
    return TensorSpec(
        name=name,
        axes=tuple(AxisSpec(id=a, size=s, halo=h) for a, s, h in zip(axes, sizes, halos, strict=True)),
        data_type=check_dtype(node.get("data_type")),
        data_range=read_data_range(node.get("data_range")),
        processing=read_processing(node.get(processing_key), "name", letters_map(axes)),
        description=node.get("description").text("") or "",
        test_tensor=tests[index] if index < len(tests) else None,
        sample_tensor=samples[index] if index < len(samples) else None,
        extra={k: v for k, v in node.mapping().items() if k not in _TENSOR_KEYS},
    )


def _read_axes(node: Node, shape: Node, is_output: bool) -> str:
    if not node.present and is_output:
        # deepImageJ 2.x: an output without axes is a table (rows x columns)
        length = len(shape.value) if isinstance(shape.value, list) else 2
        if length not in (1, 2):
            raise node.error("missing required field", expected="the output's axes (e.g. 'byxc' or 'bi')")
        return "bi"[2 - length :]
    text = node.required_text("axes letters, e.g. 'byxc'")
    return check_axes_letters(node, text.strip().lower())


def _per_axis(node: Node, axes: str, what: str, *, fixed: bool = False) -> list[Node]:
    """The elements of a per-axis list. Real deepImageJ 0.3 files disagree with their axes about the batch:
    a ``min``/``step``/``scale``/``offset``/``halo`` list one shorter than ``axes`` lacks the batch entry
    (it gets None there); a list one longer than axes without ``b`` starts with a batch entry (dropped).

    A fixed ``shape`` list (``fixed=True``) one shorter is refused: ``[1, 2048, 2048]`` for ``byxc`` may lack
    the batch or the channel, and guessing would give a 2048-channel image. One longer is accepted only
    with a leading batch size of 1.
    """
    elements = node.elements()
    if len(elements) == len(axes):
        return elements
    missing_batch = "b" in axes and len(elements) == len(axes) - 1
    if missing_batch and not fixed:
        elements.insert(axes.index("b"), Node(None, node.path, node.file))
        return elements
    leading_batch = "b" not in axes and len(elements) == len(axes) + 1
    if leading_batch and (not fixed or elements[0].value in (1, -1, None)):
        return elements[1:]
    hint = " (a shorter list is ambiguous: which axis does it lack?)" if missing_batch else ""
    raise node.error(
        f"{what} has {len(elements)} entries for {len(axes)} axes {axes!r}",
        found=node.value,
        expected=f"{len(axes)} entries, one per axis of {axes!r}{hint}",
    )


def _read_shape(node: Node, axes: str, inputs: dict[str, TensorSpec] | None) -> list[SizeRule]:
    if not node.present:
        raise node.error("missing required field", expected="a list of sizes or {min, step}")
    if isinstance(node.value, list):
        return [_fixed(e) for e in _per_axis(node, axes, "shape", fixed=True)]
    if not isinstance(node.value, dict):
        raise node.error("wrong type", found=node.value, expected="a list of sizes, or a mapping")
    reference = node.first_of("reference_tensor", "reference_input")
    has_min = node.get("min").present or node.get("step").present
    if reference.present and has_min:
        raise node.error(
            "contradictory shape rules: both min/step and a reference tensor",
            found=sorted(node.value),
            expected="either {min, step} or {reference_tensor, scale, offset}",
        )
    if reference.present:
        if inputs is None:
            raise reference.error(
                "an input's shape cannot reference another tensor", expected="a list of sizes or {min, step}"
            )
        return _reference_sizes(node, reference, axes, inputs)
    if has_min:
        return _parameterized_sizes(node, axes)
    raise node.error(
        "shape mapping without min/step or reference",
        found=sorted(node.value),
        expected="{min, step} or {reference_tensor, scale, offset}",
    )


def _fixed(node: Node) -> SizeRule:
    size = node.integer()
    if size is None or size == -1:  # -1 (or null) marks an axis of any length, e.g. table rows
        return None
    if size < 1:
        raise node.error("axis size must be positive", found=size, expected="an integer >= 1, or -1 for any")
    check_size_bound(node, size, "axis size")
    return FixedSize(size)


def _parameterized_sizes(node: Node, axes: str) -> list[SizeRule]:
    mins = _per_axis(node.required("min", "a list of minimum sizes"), axes, "shape.min")
    steps = _per_axis(node.required("step", "a list of steps"), axes, "shape.step")
    rules: list[SizeRule] = []
    for min_node, step_node in zip(mins, steps, strict=True):
        minimum, step = min_node.integer(), step_node.integer()
        if minimum is None and step is None:  # batch entry absent from a too-short list
            rules.append(None)
            continue
        if minimum is None or minimum < 1:
            raise min_node.error(
                "minimum size must be positive", found=min_node.value, expected="an integer >= 1"
            )
        if step is None or step < 0:
            raise step_node.error(
                "step must not be negative", found=step_node.value, expected="an integer >= 0"
            )
        check_size_bound(min_node, minimum, "minimum size")
        check_size_bound(step_node, step, "step")
        rules.append(FixedSize(minimum) if step == 0 else ParameterizedSize(minimum, step))
    return rules


def _reference_sizes(node: Node, reference: Node, axes: str, inputs: dict[str, TensorSpec]) -> list[SizeRule]:
    name = reference.required_text("the name of an input tensor")
    if name not in inputs:
        raise reference.error(
            "shape refers to an unknown input",
            found=name,
            expected="one of " + ", ".join(repr(n) for n in inputs),
        )
    ref_axes = inputs[name].axes_str
    scales = _per_axis(node.required("scale", "a list of scales"), axes, "shape.scale")
    offset_node = node.get("offset")
    offsets = _per_axis(offset_node, axes, "shape.offset") if offset_node.present else None
    rules: list[SizeRule] = []
    for i, letter in enumerate(axes):
        scale = scales[i].number()
        offset = 0.0 if offsets is None else (offsets[i].number(0.0) or 0.0)
        if scale is None:  # batch entry absent from a too-short list
            rules.append(None)
            continue
        if offsets is not None:
            if not math.isfinite(offset):
                raise offsets[i].error("offset must be finite", found=offsets[i].value, expected="e.g. 0")
            check_size_bound(offsets[i], 2 * offset, "offset (twice it is added to the size)")
        rules.append(_reference_rule(scales[i], name, letter, ref_axes, scale, 2 * offset))
    return rules


def _reference_rule(
    where: Node, tensor: str, letter: str, ref_axes: str, scale: float, total_offset: float
) -> SizeRule:
    if not math.isfinite(scale) or scale < 0 or not math.isfinite(total_offset):
        raise where.error("scale must be a finite number >= 0", found=where.value, expected="e.g. 1.0")
    check_size_bound(where, scale, "scale (output elements per input element)")
    if scale == 0:
        # the old way of declaring an axis the input lacks: its size is the (doubled) offset alone
        if total_offset == 0 and letter == "b":
            return None
        if total_offset < 1 or total_offset != int(total_offset):
            raise where.error(
                "scale 0 needs an offset giving a whole positive size (size = 2 * offset)",
                found=total_offset / 2,
                expected="an offset of n/2 with n >= 1",
            )
        return FixedSize(int(total_offset))
    if letter == "b":
        # One output sample per input sample, whatever scale or offset is written there (deepImageJ 2.x
        # super-resolution and virtual-staining bundles carry entries on the batch that it never applies).
        # An input without a batch axis takes one sample: the output's batch is 1.
        return ReferenceSize(tensor=tensor, axis="b") if "b" in ref_axes else FixedSize(1)
    if letter not in ref_axes:
        raise where.error(
            f"output axis {letter!r} refers to input {tensor!r}, which has no such axis",
            found=ref_axes,
            expected=f"scale 0 for axes the input lacks, or an input with axis {letter!r}",
        )
    return ReferenceSize(tensor=tensor, axis=letter, scale=scale, offset=total_offset)


def _read_halo(node: Node, axes: str) -> list[int]:
    if not node.present:
        return [0] * len(axes)
    halos = []
    for element in _per_axis(node, axes, "halo"):
        value = element.integer(0) or 0
        if value < 0:
            raise element.error("halo must not be negative", found=value, expected="an integer >= 0")
        check_size_bound(element, value, "halo")
        halos.append(value)
    return halos


def read_data_range(node: Node) -> tuple[float, float] | None:
    if not node.present:
        return None
    elements = node.elements()
    if len(elements) != 2:
        raise node.error("data_range needs two values", found=node.value, expected="[minimum, maximum]")
    low = elements[0].number(-math.inf)
    high = elements[1].number(math.inf)
    assert low is not None and high is not None
    if low > high:
        raise node.error("data_range minimum above maximum", found=node.value, expected="[minimum, maximum]")
    return (low, high)
