"""A graph's own tensor sizes against the descriptor's size rules: at load, and on probe passes.

Two checks, both in descriptor terms (tensor name, axis letter):

- :func:`fixed_dim_conflicts`: dims the graph fixes (an ONNX input of ``1x1x512x512``, a TF placeholder of
  ``[None, 256, 256, 1]``) that the descriptor's rule does not pin to that same size. Zoo bundles whose shape
  rule was relaxed after the weights were exported have such graphs; they fail on the first tile that is not
  exactly that size, so the adapter finds them at load instead (and relaxes or skips the entry).
- :func:`check_output_shapes`: the outputs a real forward pass gave against the sizes the descriptor's
  output rules give for those inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepij.bundle.description import (
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ReferenceSize,
    SizeRule,
    TensorSpec,
)
from deepij.errors import BackendError, OutputShapeError

Dims = tuple[int | None, ...]
"""A graph tensor's dims: an int where the graph fixes it, None where it is free (or symbolic)."""


@dataclass(frozen=True)
class DimConflict:
    """One fixed graph dim the descriptor's rule does not pin to that size."""

    tensor: str
    axis: str
    graph_size: int
    rule: SizeRule

    def __str__(self) -> str:
        return f"{self.tensor!r} axis {self.axis!r} is fixed to {self.graph_size} in the graph, " + (
            f"the descriptor allows {rule_text(self.rule)}"
        )


def rule_text(rule: SizeRule) -> str:
    """A size rule in words.

    Examples
    --------
    >>> rule_text(ParameterizedSize(16, 16)), rule_text(FixedSize(3)), rule_text(None)
    ('16 + k*16', 'exactly 3', 'any size')
    """
    if isinstance(rule, FixedSize):
        return f"exactly {rule.value}"
    if isinstance(rule, ParameterizedSize):
        return f"exactly {rule.min}" if rule.step == 0 else f"{rule.min} + k*{rule.step}"
    if isinstance(rule, ReferenceSize):
        return f"the size of {rule.tensor!r} axis {rule.axis!r} x {rule.scale:g} + {rule.offset:g}"
    return "any size"


def _pins(rule: SizeRule, size: int) -> bool:
    """Whether ``rule`` allows ``size`` and no other size."""
    if isinstance(rule, FixedSize):
        return rule.value == size
    if isinstance(rule, ParameterizedSize):
        return rule.step == 0 and rule.min == size
    return False


def descriptor_dims(spec: TensorSpec, graph_dims: Dims) -> list[tuple[str, int | None]]:
    """Pair the descriptor's axes with the graph's dims (a leading graph batch dim the descriptor omits is
    named ``b``)."""
    letters = spec.axes_str
    if len(graph_dims) == len(letters) + 1 and "b" not in letters:
        letters = "b" + letters
    return list(zip(letters, graph_dims, strict=False))


def fixed_dim_conflicts(
    spec: TensorSpec, graph_dims: Dims | None, *, batch: bool = False
) -> list[DimConflict]:
    """The graph's fixed dims of ``spec`` that its rules do not pin to that size.

    A batch dim is left out unless ``batch``: backends run a fixed batch in passes of that size, and a
    descriptor without a ``b`` axis gets a batch of 1 anyway. Axes sized from another tensor
    (:class:`ReferenceSize`) are left to the probe's output check.

    Examples
    --------
    >>> from deepij.bundle.description import AxisSpec
    >>> spec = TensorSpec("raw", (AxisSpec("b"), AxisSpec("c", FixedSize(1)),
    ...     AxisSpec("y", ParameterizedSize(16, 16)), AxisSpec("x", ParameterizedSize(16, 16))))
    >>> [str(c) for c in fixed_dim_conflicts(spec, (1, 1, 512, 512))][0]
    "'raw' axis 'y' is fixed to 512 in the graph, the descriptor allows 16 + k*16"
    >>> fixed_dim_conflicts(spec, (None, 1, None, None))
    []
    """
    if graph_dims is None:
        return []
    conflicts = []
    for letter, size in descriptor_dims(spec, graph_dims):
        if size is None or (letter == "b" and not batch) or letter not in spec.axes_str:
            continue
        rule = spec.axis(letter).size
        if isinstance(rule, ReferenceSize) or _pins(rule, size):
            continue
        conflicts.append(DimConflict(spec.name, letter, size, rule))
    return conflicts


def refuse_contradicting_graph(backend: Any) -> None:
    """Raise :class:`BackendError` when a loaded graph's fixed input dims contradict the descriptor (for
    engines that cannot relax them: TensorFlow, Keras); ``backend`` is a bound
    :class:`~deepij.inference.backends.graph.GraphBackend`."""
    conflicts = [c for spec, dims in backend.graph_dims() for c in fixed_dim_conflicts(spec, dims)]
    if conflicts:
        raise BackendError("the graph contradicts the descriptor: " + "; ".join(map(str, conflicts)))


def expected_size(rule: SizeRule, input_sizes: dict[tuple[str, str], int]) -> int | None:
    """The one size ``rule`` gives for these input sizes; None when it allows several."""
    if isinstance(rule, FixedSize):
        return rule.value
    if isinstance(rule, ParameterizedSize) and rule.step == 0:
        return rule.min
    if isinstance(rule, ReferenceSize) and (rule.tensor, rule.axis) in input_sizes:
        return rule.size_for(input_sizes[(rule.tensor, rule.axis)])
    return None


def check_output_shapes(
    description: ModelDescription,
    inputs: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
    source: str,
) -> None:
    """Raise :class:`OutputShapeError` when an output's size on some axis differs from what the descriptor's
    rules give for these inputs (inputs and outputs in the descriptor's axes).

    Examples
    --------
    >>> import numpy as np
    >>> from deepij.bundle import open_bundle
    >>> description = open_bundle("examples/nuclei_bundle")
    >>> image = np.zeros((1, 1, 128, 128), np.float32)
    >>> check_output_shapes(description, [image], [np.zeros((1, 1, 128, 128), np.float32)], "onnx")
    >>> check_output_shapes(description, [image], [np.zeros((1, 1, 120, 120), np.float32)], "onnx")
    Traceback (most recent call last):
    ...
    deepij.errors.OutputShapeError: ...
    """
    sizes = {
        (spec.name, letter): int(n)
        for spec, array in zip(description.inputs, inputs, strict=True)
        for letter, n in zip(spec.axes_str, np.shape(array), strict=True)
    }
    for spec, array in zip(description.outputs, outputs, strict=True):
        for letter, actual in zip(spec.axes_str, np.shape(array), strict=True):
            if letter == "b":
                continue
            rule = spec.axis(letter).size
            declared = expected_size(rule, sizes)
            valid = rule.is_valid(int(actual)) if isinstance(rule, ParameterizedSize) else True
            if (declared is not None and declared != actual) or not valid:
                raise OutputShapeError(
                    f"{source}: output {spec.name!r} axis {letter!r} came out with {actual} elements "
                    f"(the descriptor declares {declared if declared is not None else rule_text(rule)} for "
                    f"inputs of shape {[tuple(np.shape(a)) for a in inputs]})"
                )
