"""The Keras-style losses of deepImageJ's *DeepImageJ Validate* (formulas in :mod:`deepij.trust.metrics`):
BCE, KLD, MAPE, MSLE, the hinges, log-cosh and Poisson. Metrics with a domain (BCE, KLD, Categorical_Hinge:
values in [0, 1]; MSLE: above -1; Poisson: test values at least 0) raise
:class:`~deepij.errors.InputError` outside it.

Examples
--------
>>> round(bce([[0.0, 1.0]], [[0.1, 0.9]]), 4), float(hinge([[0.0, 1.0]], [[-1.0, 1.0]]))
(0.1054, 0.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepij.errors import InputError
from deepij.trust.metric_inputs import EPSILON, check_range, image_pair


def bce(reference: Any, test: Any) -> float:
    """Binary cross-entropy ``-mean(s log g + (1 - s) log(1 - g))``, values in [0, 1].

    ``g`` is clipped to ``[1e-7, 1 - 1e-7]`` as Keras does, so a confident wrong pixel costs about 16, not
    infinity.

    Examples
    --------
    >>> round(bce([[1.0, 0.0]], [[0.9, 0.2]]), 6)
    0.164252
    """
    s, g = image_pair(reference, test)
    check_range(s, g, "BCE", 0.0, 1.0)
    g = np.clip(g, EPSILON, 1.0 - EPSILON)
    return float(-(s * np.log(g) + (1.0 - s) * np.log1p(-g)).mean())


def kld(reference: Any, test: Any) -> float:
    """Kullback-Leibler divergence ``sum s log(s / g)``, values in [0, 1], both clipped to [1e-7, 1].

    Examples
    --------
    >>> round(kld([[0.5, 0.5]], [[0.25, 0.75]]), 6)
    0.143841
    """
    s, g = image_pair(reference, test)
    check_range(s, g, "KLD", 0.0, 1.0)
    s, g = np.clip(s, EPSILON, 1.0), np.clip(g, EPSILON, 1.0)
    return float((s * np.log(s / g)).sum())


def mape(reference: Any, test: Any) -> float:
    """Mean absolute percentage error ``100 mean |g - s| / |s|``.

    A pixel where the reference is 0 counts 0 % when the test is 0 too, else 100 % (deepImageJ's rule: a
    background pixel would otherwise weigh as much as all the others together).

    Examples
    --------
    >>> mape([[2.0, 4.0, 0.0, 0.0]], [[3.0, 4.0, 0.0, 7.0]])
    37.5
    """
    s, g = image_pair(reference, test)
    zero = s == 0
    ratio = np.abs(g - s) / np.where(zero, 1.0, np.abs(s))
    ratio = np.where(zero, (g != 0).astype(np.float64), ratio)
    return float(100.0 * ratio.mean())


def msle(reference: Any, test: Any) -> float:
    """Mean squared logarithmic error ``mean (log(1 + g) - log(1 + s))^2``, values above -1.

    Examples
    --------
    >>> round(msle([[0.0, 1.0]], [[1.0, 1.0]]), 6)
    0.240227
    """
    s, g = image_pair(reference, test)
    if min(float(s.min()), float(g.min())) <= -1.0:
        raise InputError(f"MSLE: values must be above -1 (log(1 + x)), found {min(s.min(), g.min()):g}")
    return float(np.square(np.log1p(g) - np.log1p(s)).mean())


def _hinge_labels(s: np.ndarray) -> np.ndarray:
    return 2.0 * s - 1.0 if bool(np.isin(s, (0.0, 1.0)).all()) else s


def hinge(reference: Any, test: Any) -> float:
    """``mean max(1 - s g, 0)``; a reference of 0s and 1s is read as labels -1 and +1 (Keras's rule).

    Examples
    --------
    >>> hinge([[1.0, 0.0]], [[0.6, 0.2]])
    0.8
    """
    s, g = image_pair(reference, test)
    return float(np.maximum(1.0 - _hinge_labels(s) * g, 0.0).mean())


def square_hinge(reference: Any, test: Any) -> float:
    """``mean max(1 - s g, 0)^2``, with :func:`hinge`'s labels.

    Examples
    --------
    >>> round(square_hinge([[1.0, 0.0]], [[0.6, 0.2]]), 6)
    0.8
    """
    s, g = image_pair(reference, test)
    return float(np.square(np.maximum(1.0 - _hinge_labels(s) * g, 0.0)).mean())


def categorical_hinge(reference: Any, test: Any) -> float:
    """``max(max((1 - s) g) - mean(s g) + 1, 0)``, values in [0, 1] (deepImageJ's form for an image).

    The image is one sample whose pixels are the classes; the true score is the mean over the reference's
    pixels (Keras sums a one-hot vector's single class).

    Examples
    --------
    >>> categorical_hinge([[1.0, 0.0], [1.0, 0.0]], [[0.8, 0.3], [0.6, 0.1]])
    0.95
    """
    s, g = image_pair(reference, test)
    check_range(s, g, "Categorical_Hinge", 0.0, 1.0)
    positive = float((s * g).mean())
    negative = float(((1.0 - s) * g).max())
    return max(negative - positive + 1.0, 0.0)


def log_cosh(reference: Any, test: Any) -> float:
    """``mean log(cosh(g - s))``, computed without overflow for large differences.

    Examples
    --------
    >>> round(log_cosh([[0.0, 0.0]], [[1.0, 1000.0]]), 4)
    499.8703
    """
    s, g = image_pair(reference, test)
    x = g - s
    return float((np.logaddexp(x, -x) - math.log(2.0)).mean())


def poisson(reference: Any, test: Any) -> float:
    """Poisson loss ``mean(g - s log(g + 1e-7))`` (test values are rates: at least 0).

    Examples
    --------
    >>> round(poisson([[2.0, 0.0]], [[2.0, 1.0]]), 6)
    0.806853
    """
    s, g = image_pair(reference, test)
    check_range(s, g, "Poisson", 0.0, None, arrays=("test",))
    return float((g - s * np.log(g + EPSILON)).mean())


__all__ = [
    "bce",
    "categorical_hinge",
    "hinge",
    "kld",
    "log_cosh",
    "mape",
    "msle",
    "poisson",
    "square_hinge",
]
