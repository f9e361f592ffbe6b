"""Probe inputs and output agreement: what checks a converted, relaxed, quantised or faster engine's graph
against the one it stands for.

Probes are random inputs of sizes the descriptor allows (:func:`probe_inputs`); two engines agree when their
outputs have the same shapes and values within float32 rounding of a deep network (:func:`outputs_agree`).

Examples
--------
>>> import numpy as np
>>> a = np.linspace(0, 1, 10, dtype=np.float32)
>>> outputs_agree([a], [a + 5e-5]), outputs_agree([a], [a + 1e-2])
(True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepij.bundle.description import FixedSize, ModelDescription, ParameterizedSize, ReferenceSize

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


def probe_inputs(
    description: ModelDescription, *, larger: bool = False, seed: int = 0, side: int | None = None
) -> list[np.ndarray]:
    """Random inputs of valid sizes in the descriptor's axes: small ones, or (``larger``) one step up on every
    free axis and two samples on a free batch axis. ``side`` sets the target size of free spatial axes
    (the smallest valid size at least that large; default 32, 16 with three spatial axes).

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> description = open_bundle("examples/nuclei_bundle")
    >>> [a.shape for a in probe_inputs(description)]  # its smallest size is 64
    [(1, 1, 64, 64)]
    >>> [a.shape for a in probe_inputs(description, larger=True)]  # two samples on its free batch axis
    [(2, 1, 64, 64)]
    """
    rng = np.random.default_rng(seed)
    sizes: dict[tuple[str, str], int] = {}
    arrays = []
    for spec in description.inputs:
        target = side or (16 if sum(a.id in "zyx" for a in spec.axes) == 3 else PROBE_SIDE)
        shape = []
        for axis in spec.axes:
            if axis.id == "b":
                size = (
                    2 if larger and not isinstance(axis.size, FixedSize) else _axis_size(axis.size, 1, sizes)
                )
            else:
                size = _axis_size(axis.size, target + 1 if larger else target, sizes)
            sizes[(spec.name, axis.id)] = size
            shape.append(size)
        arrays.append(
            rng.standard_normal(shape).astype(
                np.dtype(spec.data_type) if spec.data_type.startswith("float") else np.float32
            )
        )
    return arrays


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
