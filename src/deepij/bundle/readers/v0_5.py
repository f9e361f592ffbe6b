"""Tensors of descriptor 0.5: axis objects, sizes as int / ``{min, step}`` / ``{tensor_id, axis_id, offset}``.

0.5 axis ids are names (``batch``, ``channel``, ``x``, ...); deepij's axes are letters, so space axes must
be called ``x``, ``y`` or ``z``. A size reference means
``size = ref_size * ref_axis.scale / axis.scale + offset``; the ratio of scales is folded into
:attr:`ReferenceSize.scale`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from deepij.bundle.description import (
    MAX_AXIS_SIZE,
    AxisSpec,
    FixedSize,
    ParameterizedSize,
    ReferenceSize,
    SizeRule,
    TensorSpec,
)
from deepij.bundle.readers._node import Node
from deepij.bundle.readers.common import check_dtype, check_size_bound, file_reference, read_processing

_TYPE_LETTERS = {"batch": "b", "channel": "c", "index": "i", "time": "t"}
_ID_TYPES = {"b": "batch", "batch": "batch", "c": "channel", "channel": "channel", "i": "index"}
_ID_TYPES.update({"index": "index", "t": "time", "time": "time", "x": "space", "y": "space", "z": "space"})
_DEFAULT_IDS = {"b": "batch", "c": "channel", "i": "index", "t": "time"}
_TENSOR_KEYS = {
    "id",
    "name",
    "axes",
    "data",
    "description",
    "test_tensor",
    "sample_tensor",
    "preprocessing",
    "postprocessing",
}


@dataclass
class _RawAxis:
    """An axis read in the first pass: sizes wait until every tensor's axis ids are known."""

    letter: str
    node: Node
    scale: float
    unit: str | None
    channel_names: tuple[str, ...] = ()
    halo: int = 0
    description: str = ""


@dataclass
class _RawTensor:
    name: str
    node: Node
    axes: list[_RawAxis] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)  # axis id as written -> letter


def read_v0_5_tensors(doc: Node) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """``inputs`` and ``outputs`` of a 0.5 descriptor."""
    raw_inputs = _first_pass(doc, "inputs", "input")
    raw_outputs = _first_pass(doc, "outputs", "output")
    tensors: dict[str, _RawTensor] = {}
    for raw in (*raw_inputs, *raw_outputs):
        if raw.name in tensors:
            raise raw.node.get("id").error(
                "tensor name used twice", found=raw.name, expected="ids unique across inputs and outputs"
            )
        tensors[raw.name] = raw
    inputs = tuple(_tensor(t, tensors, is_output=False) for t in raw_inputs)
    outputs = tuple(_tensor(t, tensors, is_output=True) for t in raw_outputs)
    return inputs, outputs


def _first_pass(doc: Node, key: str, default_name: str) -> list[_RawTensor]:
    nodes = doc.required(key, f"a list of {key}").elements()
    if not nodes:
        raise doc.get(key).error(f"no {key}", expected=f"at least one {default_name}")
    out = []
    for node in nodes:
        node.mapping()
        name = node.first_of("id", "name").text(default_name if len(nodes) == 1 else None)
        if name is None:
            raise node.error(
                "missing required field", expected=f"the tensor's id (field 'id' of {node.path})"
            )
        tensor = _RawTensor(name=name, node=node)
        axes_node = node.required("axes", "a list of axis objects")
        if isinstance(axes_node.value, str):
            raise axes_node.error(
                "0.5 axes are objects, not letters (is format_version right?)",
                found=axes_node.value,
                expected="a list of {type: batch|channel|index|time|space, ...}",
            )
        for axis_node in axes_node.elements():
            axis = _first_pass_axis(axis_node, key == "outputs")
            if axis.letter in tensor.ids.values():
                raise axis_node.error(
                    "an axis appears twice", found=axis_node.value, expected="each axis once"
                )
            tensor.axes.append(axis)
            axis_id = axis_node.get("id").text() or _DEFAULT_IDS.get(axis.letter, axis.letter)
            tensor.ids[axis_id.lower()] = axis.letter
            tensor.ids[axis.letter] = axis.letter
        if not tensor.axes:
            raise node.get("axes").error("no axes", expected="at least one axis object")
        out.append(tensor)
    return out


def _first_pass_axis(node: Node, is_output: bool) -> _RawAxis:
    if isinstance(node.value, str):
        raise node.error(
            "0.5 axes are objects, not letters",
            found=node.value,
            expected="{type: batch|channel|index|time|space, ...}",
        )
    node.mapping()
    axis_id = node.get("id").text()
    axis_type = node.get("type").text() or _ID_TYPES.get((axis_id or "").lower())
    if axis_type not in ("batch", "channel", "index", "time", "space"):
        raise node.get("type").error(
            "wrong axis type", found=node.get("type").value, expected="batch, channel, index, time or space"
        )
    if axis_type == "space":
        letter = (axis_id or "x").lower()
        if letter not in ("x", "y", "z"):
            raise node.get("id").error(
                "space axes must be called x, y or z", found=axis_id, expected="x, y or z"
            )
    else:
        letter = _TYPE_LETTERS[axis_type]
    scale = node.get("scale").number(1.0)  # absent or null: 1; a written 0 stays 0 and is refused
    if scale is None or not math.isfinite(scale) or scale <= 0:
        raise node.get("scale").error(
            "axis scale must be a finite number > 0", found=node.get("scale").value, expected="e.g. 1.0"
        )
    halo = node.get("halo").integer(0) or 0
    if halo < 0 or (halo and not is_output):
        raise node.get("halo").error(
            "halo must be >= 0 and only on outputs", found=halo, expected="an output axis halo >= 0"
        )
    check_size_bound(node.get("halo"), halo, "halo")
    names = node.get("channel_names").text_list() if axis_type == "channel" else ()
    return _RawAxis(
        letter=letter,
        node=node,
        scale=scale,
        unit=node.get("unit").text(),
        channel_names=names,
        halo=halo,
        description=node.get("description").text("") or "",
    )


def _tensor(raw: _RawTensor, tensors: dict[str, _RawTensor], is_output: bool) -> TensorSpec:
    node = raw.node
    axes = tuple(
        AxisSpec(
            id=a.letter,
            size=_size(a, raw, tensors, is_output),
            halo=a.halo,
            channel_names=a.channel_names,
            scale=a.scale,
            unit=a.unit,
            description=a.description,
        )
        for a in raw.axes
    )
    data_type, data_range, data_extra = _read_data(node.get("data"))
    extra = {k: v for k, v in node.mapping().items() if k not in _TENSOR_KEYS}
    if data_extra:
        extra["data"] = data_extra
    return TensorSpec(
        name=raw.name,
        axes=axes,
        data_type=data_type,
        data_range=data_range,
        processing=read_processing(
            node.get("postprocessing" if is_output else "preprocessing"), "id", raw.ids
        ),
        description=node.get("description").text("") or "",
        test_tensor=file_reference(node.get("test_tensor")),
        sample_tensor=file_reference(node.get("sample_tensor")),
        extra=extra,
    )


def _size(axis: _RawAxis, raw: _RawTensor, tensors: dict[str, _RawTensor], is_output: bool) -> SizeRule:
    size = axis.node.get("size")
    if axis.letter == "c" and axis.channel_names:
        if size.present and size.integer() != len(axis.channel_names):
            raise size.error(
                "contradictory shape rules: size differs from the number of channel names",
                found=size.value,
                expected=f"{len(axis.channel_names)} (len(channel_names))",
            )
        return FixedSize(len(axis.channel_names))
    if not size.present:
        if axis.letter in "bi":
            return None
        if axis.letter == "c":
            raise axis.node.error(
                "missing required field", expected="channel_names (or size) of a channel axis"
            )
        raise size.error("missing required field", expected="an int, {min, step} or {tensor_id, axis_id}")
    value = size.value
    if isinstance(value, dict):
        if "tensor_id" in value or "axis_id" in value:
            return _reference(size, axis, raw, tensors, is_output)
        if "max" in value and is_output:  # data-dependent size: known only after inference
            return None
        return _parameterized(size)
    fixed = size.integer()
    if fixed is None or fixed < 1:
        raise size.error("axis size must be positive", found=value, expected="an integer >= 1")
    check_size_bound(size, fixed, "axis size")
    return FixedSize(fixed)


def _parameterized(size: Node) -> SizeRule:
    extra_keys = set(size.mapping()) - {"min", "step", "max"}
    if extra_keys:
        raise size.error(
            "contradictory shape rules: unexpected keys in a size",
            found=sorted(size.mapping()),
            expected="{min, step}, or {tensor_id, axis_id, offset}",
        )
    minimum = size.required("min", "the minimum size").integer()
    step = size.get("step").integer(0)
    if minimum is None or minimum < 1:
        raise size.get("min").error(
            "minimum size must be positive", found=minimum, expected="an integer >= 1"
        )
    if step is None or step < 0:
        raise size.get("step").error("step must not be negative", found=step, expected="an integer >= 0")
    check_size_bound(size.get("min"), minimum, "minimum size")
    check_size_bound(size.get("step"), step, "step")
    return FixedSize(minimum) if step == 0 else ParameterizedSize(minimum, step)


def _reference(
    size: Node, axis: _RawAxis, raw: _RawTensor, tensors: dict[str, _RawTensor], is_output: bool
) -> SizeRule:
    tensor_id = size.required("tensor_id", "the referenced tensor's id").required_text()
    axis_id = size.required("axis_id", "the referenced axis id").required_text()
    offset = size.get("offset").number(0.0) or 0.0
    target = tensors.get(tensor_id)
    if target is None:
        raise size.get("tensor_id").error(
            "size refers to an unknown tensor", found=tensor_id, expected="one of " + ", ".join(tensors)
        )
    if not is_output and target.node.path.startswith("outputs"):
        raise size.get("tensor_id").error(
            "an input's size cannot refer to an output", found=tensor_id, expected="an input tensor"
        )
    letter = target.ids.get(axis_id.lower())
    if letter is None:
        raise size.get("axis_id").error(
            f"tensor {tensor_id!r} has no such axis",
            found=axis_id,
            expected="one of " + ", ".join(sorted(set(target.ids))),
        )
    if target is raw and letter == axis.letter:
        raise size.error("an axis cannot refer to itself", found=size.value, expected="another axis")
    ref_axis = next(a for a in target.axes if a.letter == letter)
    if not math.isfinite(offset):
        raise size.get("offset").error("offset must be finite", found=offset, expected="an integer")
    check_size_bound(size.get("offset"), offset, "offset")
    scale = ref_axis.scale / axis.scale
    if scale > MAX_AXIS_SIZE:  # one element of the reference would make more than the largest axis
        raise axis.node.get("scale").error(
            f"axis scale too small beside the scale {ref_axis.scale:g} of {tensor_id}.{axis_id} its size "
            f"refers to (size = {tensor_id}.{axis_id} * {scale:g})",
            found=axis.node.get("scale").value,
            expected=f"at least {ref_axis.scale / MAX_AXIS_SIZE:g} ({tensor_id}.{axis_id}'s scale / 2**20)",
        )
    return ReferenceSize(tensor=tensor_id, axis=letter, scale=scale, offset=offset)


def _read_data(node: Node) -> tuple[str, tuple[float, float] | None, dict[str, Any]]:
    """``data`` (one description, or a list of per-channel ones) -> dtype, range, other keys."""
    if isinstance(node.value, list):
        elements = node.elements()
        if not elements:
            return "float32", None, {}
        node = elements[0]
    if not node.present:
        return "float32", None, {}
    mapping = node.mapping()
    dtype = check_dtype(node.get("type"))
    data_range = None
    if node.get("range").present:
        elements = node.get("range").elements()
        if len(elements) != 2:
            raise node.get("range").error(
                "range needs two values", found=mapping["range"], expected="[min, max]"
            )
        data_range = (elements[0].number(-math.inf), elements[1].number(math.inf))
    elif node.get("values").present:
        values = node.get("values").elements()
        if values and all(isinstance(v.value, (int, float)) for v in values):
            numbers = [float(v.value) for v in values]
            data_range = (min(numbers), max(numbers))
        elif values:
            data_range = (0.0, float(len(values) - 1))
    extra = {k: v for k, v in mapping.items() if k not in ("type", "range")}
    return dtype, data_range, extra  # type: ignore[return-value]
