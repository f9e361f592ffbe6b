"""The image metrics of deepImageJ's *DeepImageJ Validate*, on 2-D images and 3-D stacks.

``s`` is the reference (ground truth), ``g`` the test image (a network's output), ``N`` the number of pixels;
every metric is computed in float64 over all pixels of the image or stack:

========================  ==============================================================================
``NormL1``                ``sum |g - s|``
``NormL2``                ``sqrt(sum (g - s)^2)``
``RMSE`` / ``MAE``        ``sqrt(mean (g - s)^2)`` / ``mean |g - s|``
``SNR``                   ``10 log10(sum s^2 / sum (g - s)^2)`` (dB)
``PSNR``                  ``10 log10(peak^2 / mean (g - s)^2)``, peak ``max(s)`` or ``data_range`` (dB)
``RegressSNR``            the SNR of ``s`` against ``a g + b``, the least-squares fit of ``s`` by ``g``
``SSIM``                  Wang et al.'s structural similarity with a Gaussian window (sigma 1.5), as
                          scikit-image computes it (deepImageJ's own window-3 code is broken)
``LAP``                   distance of the difference-of-Gaussians pyramids (sigma 0.5, 1, 2, 4 against
                          sigma x sqrt 2): ``sum_levels sum |DoG(g) - DoG(s)|``
``BCE``                   ``-mean(s log g + (1 - s) log(1 - g))``, ``g`` clipped to [1e-7, 1 - 1e-7]
``KLD``                   ``sum s log(s / g)``, both clipped to [1e-7, 1]
``MAPE``                  ``100 mean |g - s| / |s|``; where ``s = 0`` a pixel counts 0 % if ``g = 0``, else
                          100 %, as deepImageJ counts it
``MSLE``                  ``mean (log(1 + g) - log(1 + s))^2``
``Hinge``                 ``mean max(1 - s g, 0)``; a 0/1 reference is read as -1/+1 labels
``Square_Hinge``          ``mean max(1 - s g, 0)^2``, the same labels
``Categorical_Hinge``     ``max(max((1 - s) g) - mean(s g) + 1, 0)``, deepImageJ's form for an image
``Log_Cosh``              ``mean log(cosh(g - s))``
``Poisson``               ``mean(g - s log(g + 1e-7))``
========================  ==============================================================================

The loss-like ones (BCE to Poisson) are Keras's definitions, which deepImageJ's Validate names and means;
where deepImageJ's Java differs it is a bug mended here (a ``log 0`` that gives -inf in BCE, a zero test
pixel KLD silently skipped, hinge labels 0 that ignore the background). Metrics with a domain (BCE, KLD,
Categorical_Hinge: values in [0, 1]; MSLE: above -1; Poisson: test values at least 0) raise
:class:`~deepij.errors.InputError` outside it; :func:`image_metrics` then reports NaN and says why.

Examples
--------
>>> s = np.array([[0.0, 1.0], [2.0, 3.0]])
>>> g = np.array([[0.0, 1.0], [2.0, 5.0]])
>>> float(norm_l1(s, g)), float(rmse(s, g)), round(psnr(s, g), 3)
(2.0, 1.0, 9.542)
>>> metrics, notes = image_metrics(s, g, ["MAE", "BCE"])
>>> metrics["MAE"], metrics["BCE"], notes
(0.5, nan, ['BCE: reference values must be in [0, 1], found 0 to 3; BCE is NaN'])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepij.errors import ArgumentError, ArgumentTypeError, InputError
from deepij.trust.loss_metrics import (
    bce,
    categorical_hinge,
    hinge,
    kld,
    log_cosh,
    mape,
    msle,
    poisson,
    square_hinge,
)
from deepij.trust.metric_inputs import image_pair

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
"""The Gaussian window of SSIM: sigma 1.5, truncated at 3.5 sigma, 11 pixels wide (scikit-image's)."""

LAP_SIGMAS = (0.5, 1.0, 2.0, 4.0)
"""The finer Gaussian of each level of LAP's difference-of-Gaussians pyramid (the coarser is x sqrt 2)."""


# --- distances ----------------------------------------------------------------------------------------------


def norm_l1(reference: Any, test: Any) -> float:
    """``sum |g - s|``.

    Examples
    --------
    >>> norm_l1([[1, 2], [3, 4]], [[1, 2], [3, 6]])
    2.0
    """
    s, g = image_pair(reference, test)
    return float(np.abs(g - s).sum())


def norm_l2(reference: Any, test: Any) -> float:
    """``sqrt(sum (g - s)^2)``.

    Examples
    --------
    >>> norm_l2([[0, 0]], [[3, 4]])
    5.0
    """
    s, g = image_pair(reference, test)
    return float(np.sqrt(np.square(g - s).sum()))


def rmse(reference: Any, test: Any) -> float:
    """``sqrt(mean (g - s)^2)``.

    Examples
    --------
    >>> rmse([[0, 0]], [[3, 4]])
    3.5355339059327378
    """
    s, g = image_pair(reference, test)
    return float(np.sqrt(np.square(g - s).mean()))


def mae(reference: Any, test: Any) -> float:
    """``mean |g - s|``.

    Examples
    --------
    >>> mae([[0, 0]], [[3, -4]])
    3.5
    """
    s, g = image_pair(reference, test)
    return float(np.abs(g - s).mean())


# --- signal to noise ----------------------------------------------------------------------------------------


def _decibels(signal: float, noise: float) -> float:
    if noise == 0:
        return math.inf if signal > 0 else math.nan
    if signal <= 0:
        return math.nan if signal < 0 else -math.inf
    return 10.0 * math.log10(signal / noise)


def snr(reference: Any, test: Any) -> float:
    """``10 log10(sum s^2 / sum (g - s)^2)`` in dB (inf when the images are equal).

    Examples
    --------
    >>> snr([[10, 10]], [[11, 9]])
    20.0
    """
    s, g = image_pair(reference, test)
    return _decibels(float(np.square(s).sum()), float(np.square(g - s).sum()))


def psnr(reference: Any, test: Any, data_range: float | None = None) -> float:
    """``10 log10(peak^2 / MSE)`` in dB; the peak is ``max(s)`` (deepImageJ's) unless ``data_range`` is given.

    Examples
    --------
    >>> psnr([[0, 10]], [[1, 10]])
    23.010299956639813
    >>> psnr([[0, 10]], [[1, 10]], data_range=255)
    51.141103565318915
    """
    s, g = image_pair(reference, test)
    peak = float(s.max()) if data_range is None else _data_range(data_range)
    return _decibels(peak * peak, float(np.square(g - s).mean()))


def regress_snr(reference: Any, test: Any) -> float:
    """The SNR of ``s`` against ``a g + b``, the least-squares fit of the reference by the test image.

    It forgives a test image that is right up to a gain and an offset (a network trained on other units).

    Examples
    --------
    >>> regress_snr([[1.0, 2.0, 3.0]], [[10.0, 20.0, 30.0]])  # exact up to a gain
    inf
    """
    s, g = image_pair(reference, test)
    design = np.stack([g.ravel(), np.ones(g.size)], axis=1)
    (gain, offset), *_ = np.linalg.lstsq(design, s.ravel(), rcond=None)
    residual = s - (gain * g + offset)
    noise = float(np.square(residual).mean())
    # an exact fit leaves rounding noise only: call it exact, as SNR does for equal images
    if noise <= 1e-24 * max(float(np.square(s).mean()), 1e-300):
        noise = 0.0
    return _decibels(float(np.square(s).mean()), noise)


# --- structure ----------------------------------------------------------------------------------------------


def ssim(reference: Any, test: Any, data_range: float | None = None) -> float:
    """Mean structural similarity with an 11-pixel Gaussian window (sigma 1.5), Wang et al. 2004.

    The same number as scikit-image's ``structural_similarity(reference, test, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=data_range)``. ``data_range`` defaults to the
    reference's ``max - min`` (1 for a constant reference). A 3-D stack with fewer than 11 planes gets each
    plane's 2-D SSIM, averaged.

    Raises
    ------
    InputError
        An image smaller than the window (11 pixels) along a spatial axis.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.random((32, 32))
    >>> ssim(s, s)
    1.0
    >>> round(ssim(s, s + rng.normal(0, 0.1, s.shape)), 2)
    0.93
    """
    from skimage.metrics import structural_similarity

    s, g = image_pair(reference, test)
    spread = float(s.max() - s.min())
    value_range = _data_range(data_range) if data_range is not None else (spread or 1.0)
    if s.ndim == 3 and s.shape[0] < SSIM_WINDOW:
        planes = [ssim(plane_s, plane_g, value_range) for plane_s, plane_g in zip(s, g, strict=True)]
        return float(np.mean(planes))
    if s.ndim not in (2, 3) or min(s.shape) < SSIM_WINDOW:
        raise InputError(
            f"SSIM: an image of shape {s.shape} (expected 2-D or 3-D, at least {SSIM_WINDOW} pixels along "
            "each axis for its Gaussian window)"
        )
    return float(structural_similarity(s, g, gaussian_weights=True, sigma=SSIM_SIGMA,
                                       use_sample_covariance=False, data_range=value_range))


def lap(reference: Any, test: Any) -> float:
    """Distance of the difference-of-Gaussians pyramids: ``sum_levels sum |DoG(g) - DoG(s)|``.

    Each level's DoG is ``G_sigma - G_(sigma sqrt 2)`` for sigma in :data:`LAP_SIGMAS`, isotropic over every
    axis of the image, edges extended (ImageJ's Gaussian Blur's edge rule). It weighs errors by scale: a
    shift of fine detail counts, a smooth offset does not.

    Examples
    --------
    >>> s = np.zeros((16, 16))
    >>> round(lap(s, s + 5.0), 9)  # a constant offset has no detail
    0.0
    """
    from scipy import ndimage

    s, g = image_pair(reference, test)
    difference = g - s  # DoG is linear: the pyramid of the difference is the difference of the pyramids
    total = 0.0
    for sigma in LAP_SIGMAS:
        fine = ndimage.gaussian_filter(difference, sigma, mode="nearest", truncate=4.0)
        coarse = ndimage.gaussian_filter(difference, sigma * math.sqrt(2.0), mode="nearest", truncate=4.0)
        total += float(np.abs(fine - coarse).sum())
    return total


# --- Keras-style losses -------------------------------------------------------------------------------------


# --- the set, by name ---------------------------------------------------------------------------------------


def _data_range(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ArgumentTypeError(f"data_range: expected a positive number, found {type(value).__name__}")
    if not math.isfinite(float(value)) or float(value) <= 0:
        raise ArgumentError(f"data_range: expected a positive finite number, found {value!r}")
    return float(value)


_Metric = Callable[[np.ndarray, np.ndarray, "float | None"], float]

IMAGE_METRICS: dict[str, _Metric] = {
    "NormL1": lambda s, g, r: norm_l1(s, g),
    "NormL2": lambda s, g, r: norm_l2(s, g),
    "RMSE": lambda s, g, r: rmse(s, g),
    "MAE": lambda s, g, r: mae(s, g),
    "SNR": lambda s, g, r: snr(s, g),
    "PSNR": psnr,
    "RegressSNR": lambda s, g, r: regress_snr(s, g),
    "SSIM": ssim,
    "LAP": lambda s, g, r: lap(s, g),
    "BCE": lambda s, g, r: bce(s, g),
    "KLD": lambda s, g, r: kld(s, g),
    "MAPE": lambda s, g, r: mape(s, g),
    "MSLE": lambda s, g, r: msle(s, g),
    "Hinge": lambda s, g, r: hinge(s, g),
    "Square_Hinge": lambda s, g, r: square_hinge(s, g),
    "Categorical_Hinge": lambda s, g, r: categorical_hinge(s, g),
    "Log_Cosh": lambda s, g, r: log_cosh(s, g),
    "Poisson": lambda s, g, r: poisson(s, g),
}
"""Every image metric by its column name, in deepImageJ's order (each ``(s, g, data_range) -> float``)."""


def image_metrics(reference: Any, test: Any, names: Sequence[str] | None = None,
                  data_range: float | None = None) -> tuple[dict[str, float], list[str]]:
    """The named metrics (default: all of :data:`IMAGE_METRICS`) of one image pair, and notes on NaNs.

    A metric whose domain the images leave (BCE on values above 1, SSIM on an image smaller than its
    window) is NaN, with a note saying why; the others are still computed.

    Parameters
    ----------
    reference, test : array-like
        Images of the same shape (2-D, 3-D or any other).
    names : sequence of str, optional
        Metric names as in :data:`IMAGE_METRICS` (case as given there).
    data_range : float, optional
        The value range for PSNR's peak and SSIM's constants (defaults: see :func:`psnr`, :func:`ssim`).

    Raises
    ------
    InputError
        Shapes that differ, or an empty image.
    ArgumentError
        An unknown metric name.
    """
    s, g = image_pair(reference, test)
    if data_range is not None:
        data_range = _data_range(data_range)
    chosen = list(IMAGE_METRICS) if names is None else list(names)
    unknown = [n for n in chosen if n not in IMAGE_METRICS]
    if unknown:
        raise ArgumentError(f"metrics: unknown image metric {', '.join(unknown)} "
                            f"(expected some of {', '.join(IMAGE_METRICS)})")
    values: dict[str, float] = {}
    notes: list[str] = []
    for name in chosen:
        try:
            values[name] = IMAGE_METRICS[name](s, g, data_range)
        except InputError as error:
            values[name] = math.nan
            notes.append(f"{error}; {name} is NaN")
    return values, notes
