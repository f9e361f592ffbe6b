"""What the image metrics of :mod:`deepij.trust.metrics` and :mod:`deepij.trust.loss_metrics` take: two
real-valued images of one shape, in float64, and the value domains some metrics need.

Examples
--------
>>> s, g = image_pair([[0, 1]], [[1, 1]])
>>> s.dtype, g.shape
(dtype('float64'), (1, 2))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepij.errors import ArgumentTypeError, InputError

EPSILON = 1e-7
"""Keras's ``backend.epsilon()``: how far from 0 and 1 the logarithms of BCE, KLD and Poisson stay."""



def image_pair(reference: Any, test: Any) -> tuple[np.ndarray, np.ndarray]:
    s = as_float_array(reference, "reference")
    g = as_float_array(test, "test")
    if s.shape != g.shape:
        raise InputError(
            f"test: shape {g.shape} differs from the reference's {s.shape} (expected the same shape)"
        )
    if s.size == 0:
        raise InputError("reference: an empty image (expected at least one pixel)")
    return s, g


def as_float_array(image: Any, argument: str) -> np.ndarray:
    array = np.asarray(getattr(image, "values", image))
    if array.dtype == object or array.dtype.kind in "USVcM":
        raise ArgumentTypeError(f"{argument}: expected a real-valued image, found dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def check_range(s: np.ndarray, g: np.ndarray, metric: str, low: float, high: float | None,
                 arrays: Sequence[str] = ("reference", "test")) -> None:
    for name, array in zip(("reference", "test"), (s, g), strict=True):
        if name not in arrays:
            continue
        found_low, found_high = float(array.min()), float(array.max())
        if found_low < low or (high is not None and found_high > high):
            expected = f"in [{low:g}, {high:g}]" if high is not None else f"at least {low:g}"
            raise InputError(
                f"{metric}: {name} values must be {expected}, found {found_low:g} to {found_high:g}"
            )


__all__ = ["EPSILON", "as_float_array", "check_range", "image_pair"]
