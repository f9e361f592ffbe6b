"""The 0.4 parts of the descriptor writer: letter axes, per-axis shape lists, per-side offsets."""

from __future__ import annotations

import math
from typing import Any

from deepij.bundle.description import (
    ArchitectureSpec,
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ProcessingOp,
    ReferenceSize,
    TensorSpec,
)
from deepij.errors import BundleError


def legacy_tensors(d: ModelDescription) -> dict[str, Any]:
    """``inputs``, ``outputs`` and the top-level test/sample lists of a 0.4 descriptor."""
    out: dict[str, Any] = {
        "inputs": [_tensor(t, d, index, is_output=False) for index, t in enumerate(d.inputs)],
        "outputs": [_tensor(t, d, index, is_output=True) for index, t in enumerate(d.outputs)],
    }
    for key, tensors, attribute in (
        ("test_inputs", d.inputs, "test_tensor"),
        ("test_outputs", d.outputs, "test_tensor"),
        ("sample_inputs", d.inputs, "sample_tensor"),
        ("sample_outputs", d.outputs, "sample_tensor"),
    ):
        files = [getattr(t, attribute) for t in tensors]
        present = [f for f in files if f is not None]
        if present and len(present) == len(files):
            out[key] = present
        elif present:
            raise _unwritable(f"{key}: some tensors have a file and others not", d)
    return out


def legacy_weights_extra(arch: ArchitectureSpec) -> dict[str, Any]:
    """0.4 writes the architecture as ``file.py:Class`` (or ``module.Class``) beside ``kwargs``."""
    separator = ":" if arch.source.endswith(".py") else "."
    out: dict[str, Any] = {"architecture": f"{arch.source}{separator}{arch.callable}"}
    if arch.sha256 is not None:
        out["architecture_sha256"] = arch.sha256
    out["kwargs"] = dict(arch.kwargs)
    return out


def _unwritable(reason: str, d: ModelDescription) -> BundleError:
    return BundleError(f"cannot be written as a 0.4 descriptor: {reason}", file=d.descriptor)


def _tensor(t: TensorSpec, d: ModelDescription, index: int, is_output: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name}
    if t.description:
        out["description"] = t.description
    out["axes"] = t.axes_str
    out["data_type"] = t.data_type
    if t.data_range is not None:
        out["data_range"] = list(t.data_range)
    out["shape"] = _output_shape(t, d) if is_output else _input_shape(t, d)
    if is_output and any(a.halo for a in t.axes):
        out["halo"] = [a.halo for a in t.axes]
    if t.processing:
        out["postprocessing" if is_output else "preprocessing"] = [_op(op) for op in t.processing]
    # 0.4 has no place for channel names, units, physical scales or axis descriptions: they are dropped.
    out.update({k: v for k, v in t.extra.items() if k not in out})
    return out


def _input_shape(t: TensorSpec, d: ModelDescription) -> Any:
    rules = [a.size for a in t.axes]
    if any(isinstance(r, ReferenceSize) for r in rules):
        raise _unwritable(f"input {t.name!r} is sized by a reference to another tensor", d)
    if not any(isinstance(r, ParameterizedSize) for r in rules):
        return [r.value if isinstance(r, FixedSize) else -1 for r in rules]
    mins, steps = [], []
    for r in rules:
        if isinstance(r, ParameterizedSize):
            mins.append(r.min)
            steps.append(r.step)
        elif isinstance(r, FixedSize):
            mins.append(r.value)
            steps.append(0)
        else:  # any size: the closest 0.4 says is "from 1 in steps of 1"
            mins.append(1)
            steps.append(1)
    return {"min": mins, "step": steps}


def _output_shape(t: TensorSpec, d: ModelDescription) -> Any:
    rules = [a.size for a in t.axes]
    references = {r.tensor for r in rules if isinstance(r, ReferenceSize) and r.scale != 0}
    if not references:
        if any(isinstance(r, ParameterizedSize) for r in rules):
            raise _unwritable(f"output {t.name!r} has a min/step size", d)
        return [r.value if isinstance(r, FixedSize) else -1 for r in rules]
    if len(references) > 1:
        raise _unwritable(f"output {t.name!r} refers to several tensors {sorted(references)}", d)
    (reference,) = references
    if reference not in {i.name for i in d.inputs}:
        raise _unwritable(f"output {t.name!r} refers to {reference!r}, which is not an input", d)
    scales, offsets = [], []
    for a in t.axes:
        r = a.size
        if isinstance(r, ReferenceSize) and r.scale != 0:
            if r.axis != a.id:
                raise _unwritable(f"axis {a.id!r} of {t.name!r} refers to a different axis {r.axis!r}", d)
            scales.append(r.scale)
            offsets.append(r.offset / 2)
        elif isinstance(r, (FixedSize, ReferenceSize)):
            scales.append(0.0)
            offsets.append((r.value if isinstance(r, FixedSize) else r.offset) / 2)
        elif r is None and a.id == "b":
            scales.append(0.0)
            offsets.append(0.0)
        else:
            raise _unwritable(f"axis {a.id!r} of {t.name!r} has a rule 0.4 cannot state beside references", d)
    return {"reference_tensor": reference, "scale": scales, "offset": [_number(o) for o in offsets]}


def _number(value: float) -> float | int:
    return int(value) if math.isfinite(value) and float(value).is_integer() else value


def _op(op: ProcessingOp) -> dict[str, Any]:
    out: dict[str, Any] = {"name": op.name}
    if op.kwargs:
        out["kwargs"] = dict(op.kwargs)
    return out
