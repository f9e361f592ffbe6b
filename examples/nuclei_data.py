"""Synthetic fluorescence images of nuclei, with the ground truth that made them.

The demo bundle's network (``examples/nuclei_bundle/``) is trained on these images, its example image is
one of them, and its tests recompute that image's ground truth from the seed. What an image holds:

- nuclei as ellipses (radii 6-12 px, any orientation) of varied brightness with some chromatin texture,
  about a fifth of them in touching pairs (two ellipses overlapping a little, so a neck joins them and
  only a watershed separates them);
- optics: a Gaussian blur (sigma 1.5 px);
- an uneven background (a tilt and a broad glow, 80 to 300 photons);
- camera: Poisson photon noise, read noise, an offset of 100, 16-bit.

Also here: the percentile normalisation the bundle's pre-processing macro computes, in numpy, so that the
network is trained on exactly what the macro will feed it.

Examples
--------
>>> nuclei = synthetic_nuclei(size=128, count=8, seed=3)
>>> nuclei.image.dtype, nuclei.image.shape, nuclei.count == len(np.unique(nuclei.labels)) - 1
(dtype('uint16'), (128, 128), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

EXAMPLE_SEED = 2024
"""Seed of the bundle's example image (``exampleImage.tif``)."""
EXAMPLE_SIZE = 512
EXAMPLE_COUNT = 70
"""Nuclei drawn in the example image (the generator may place fewer when space runs out: see ``count``)."""

CAMERA_OFFSET = 100.0
READ_NOISE = 4.0
BLUR_SIGMA = 1.5
RADII = (6.0, 12.0)
PAIR_FRACTION = 0.2
# centre distance of a touching pair, as a fraction of the sum of the two radii along the line joining them
PAIR_CONTACT = 0.9


@dataclass(frozen=True)
class SyntheticNuclei:
    """One synthetic image and its ground truth.

    Attributes
    ----------
    image : ndarray of uint16, (y, x)
        What the camera recorded.
    labels : ndarray of int32, (y, x)
        Ground-truth instance labels 1..count (0 = background); overlaps go to the nearer centre.
    count : int
        Nuclei in the image.
    pairs : int
        Touching pairs among them.
    """

    image: np.ndarray
    labels: np.ndarray
    count: int
    pairs: int

    @property
    def foreground(self) -> np.ndarray:
        """The training target: 1 inside nuclei, 0 outside (float32)."""
        return (self.labels > 0).astype(np.float32)


@dataclass(frozen=True)
class _Ellipse:
    cy: float
    cx: float
    a: float  # radius along the orientation
    b: float
    angle: float

    def radius_towards(self, theta: float) -> float:
        """The ellipse's radius in direction ``theta`` (radians, image coordinates)."""
        t = theta - self.angle
        return self.a * self.b / math.hypot(self.b * math.cos(t), self.a * math.sin(t))

    def distance(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        """Normalised distance from the centre: < 1 inside, 1 on the outline."""
        dy, dx = yy - self.cy, xx - self.cx
        c, s = math.cos(self.angle), math.sin(self.angle)
        along, across = dx * c + dy * s, -dx * s + dy * c
        return np.sqrt((along / self.a) ** 2 + (across / self.b) ** 2)


def synthetic_nuclei(size: int = EXAMPLE_SIZE, count: int = EXAMPLE_COUNT, seed: int = EXAMPLE_SEED,
                     *, height: int | None = None) -> SyntheticNuclei:
    """A synthetic nuclei image and its ground truth, the same for the same arguments.

    Parameters
    ----------
    size : int
        Width in pixels (and height, unless ``height`` is given).
    count : int
        Nuclei to draw (fewer when no free place is found for the rest).
    seed : int
        Seed of the random generator: everything in the image follows from it.
    height : int, optional
        Height in pixels when it differs from the width.

    Returns
    -------
    SyntheticNuclei

    Examples
    --------
    >>> a, b = synthetic_nuclei(96, 5, seed=1), synthetic_nuclei(96, 5, seed=1)
    >>> bool((a.image == b.image).all()), a.pairs <= a.count // 2
    (True, True)
    """
    rng = np.random.default_rng(seed)
    shape = (height or size, size)
    ellipses, pairs = _place(rng, shape, count)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    labels = np.zeros(shape, np.int32)
    nearest = np.full(shape, np.inf)
    signal = np.zeros(shape)
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, shape), 2.0)
    texture /= texture.std() or 1.0
    for label, ellipse in enumerate(ellipses, start=1):
        window = _window(ellipse, shape)
        distance = ellipse.distance(yy[window], xx[window])
        inside = distance <= 1.0
        closer = inside & (distance < nearest[window])
        labels[window][closer] = label
        nearest[window][closer] = distance[closer]
        brightness = rng.uniform(120.0, 650.0)
        # nuclei are a little brighter at the rim than inside (nuclear envelope), and textured
        profile = brightness * (0.85 + 0.15 * distance**2) * (1.0 + 0.12 * texture[window])
        signal[window] = np.maximum(signal[window], np.where(inside, profile, 0.0))
    photons = ndimage.gaussian_filter(signal, BLUR_SIGMA) + _background(rng, shape, yy, xx)
    recorded = rng.poisson(photons) + rng.normal(CAMERA_OFFSET, READ_NOISE, shape)
    image = np.clip(np.rint(recorded), 0, 65535).astype(np.uint16)
    return SyntheticNuclei(image=image, labels=labels, count=len(ellipses), pairs=pairs)


def _place(rng: np.random.Generator, shape: tuple[int, int], count: int) -> tuple[list[_Ellipse], int]:
    """Ellipses that do not touch, except the touching pairs (drawn together)."""
    ellipses: list[_Ellipse] = []
    pairs = 0
    attempts = 0
    while len(ellipses) < count and attempts < 200 * count:
        attempts += 1
        first = _random_ellipse(rng, shape)
        group = [first]
        if len(ellipses) + 2 <= count and rng.random() < PAIR_FRACTION / (1 - PAIR_FRACTION / 2):
            group.append(_partner(rng, first))
        if all(_inside(e, shape) and not any(_near(e, o) for o in ellipses) for e in group):
            ellipses.extend(group)
            pairs += len(group) == 2
    return ellipses, pairs


def _random_ellipse(rng: np.random.Generator, shape: tuple[int, int]) -> _Ellipse:
    a = rng.uniform(*RADII)
    b = a * rng.uniform(0.65, 1.0)
    return _Ellipse(rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), a, b, rng.uniform(0, math.pi))


def _partner(rng: np.random.Generator, first: _Ellipse) -> _Ellipse:
    """A second ellipse just overlapping ``first``: the pair touches with a neck between them."""
    a = rng.uniform(*RADII)
    second = _Ellipse(0.0, 0.0, a, a * rng.uniform(0.65, 1.0), rng.uniform(0, math.pi))
    theta = rng.uniform(0, 2 * math.pi)
    reach = PAIR_CONTACT * (first.radius_towards(theta) + second.radius_towards(theta + math.pi))
    return _Ellipse(first.cy + reach * math.sin(theta), first.cx + reach * math.cos(theta), second.a,
                    second.b, second.angle)


def _inside(e: _Ellipse, shape: tuple[int, int]) -> bool:
    """Whole nuclei only, so the ground-truth count is what a segmentation can find."""
    margin = e.a + 2
    return margin <= e.cy <= shape[0] - margin and margin <= e.cx <= shape[1] - margin


def _near(e: _Ellipse, other: _Ellipse) -> bool:
    """Closer than a clear gap (4 px beyond both largest radii)."""
    return math.hypot(e.cy - other.cy, e.cx - other.cx) < e.a + other.a + 4


def _window(e: _Ellipse, shape: tuple[int, int]) -> tuple[slice, slice]:
    r = math.ceil(e.a) + 1
    cy, cx = int(e.cy), int(e.cx)
    return slice(max(cy - r, 0), min(cy + r + 1, shape[0])), slice(max(cx - r, 0), min(cx + r + 1, shape[1]))


def _background(rng: np.random.Generator, shape: tuple[int, int], yy: np.ndarray,
                xx: np.ndarray) -> np.ndarray:
    """Uneven illumination: a tilt plus a broad glow, between about 80 and 300 photons."""
    level = rng.uniform(80.0, 140.0)
    tilt = rng.uniform(-1, 1, 2) * level * 0.5
    glow_y, glow_x = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
    glow_width = 0.4 * max(shape)
    squared_distance = (yy - glow_y) ** 2 + (xx - glow_x) ** 2
    glow = rng.uniform(0.3, 1.0) * level * np.exp(-squared_distance / (2 * glow_width**2))
    ramp = tilt[0] * (yy / shape[0] - 0.5) + tilt[1] * (xx / shape[1] - 0.5)
    return level + ramp + glow


# --- the pre-processing macro's normalisation, in numpy -----------------------------------------------------

MIN_PERCENTILE = 0.01
MAX_PERCENTILE = 0.998
HISTOGRAM_BINS = 256


def histogram_percentiles(image: np.ndarray, low: float = MIN_PERCENTILE, high: float = MAX_PERCENTILE,
                          bins: int = HISTOGRAM_BINS) -> tuple[float, float]:
    """The percentiles as the pre-processing macro finds them: bin starts of a ``bins``-bin histogram.

    ImageJ's histogram of a 32-bit image spans [min, max] in ``bins`` equal bins (pixel ``v`` falls in bin
    ``int((v - min) * bins / (max - min))``, the maximum in the last bin). The lower value is the
    start of the first bin after bin 0 whose cumulative fraction reaches ``low``; the upper one the start of
    the first bin after that one whose cumulative fraction reaches ``high`` (deepImageJ's
    ``per_sample_scale_range.ijm`` searches this way; it is about 2e-3 of the range off the exact
    percentiles).

    Examples
    --------
    0..999 in bins of 999/256 = 3.90234375: bins 0-2 hold 0..11 (1.2 % reached at bin 2), bins 0-254 hold
    0..995 (99.6 %), so the upper value is bin 255's start (the exact percentiles are 9.99 and 997.0):

    >>> histogram_percentiles(np.arange(1000.0))  # 2 * 3.90234375, 255 * 3.90234375
    (7.8046875, 995.09765625)
    """
    values = np.asarray(image, np.float32).astype(np.float64).ravel()
    low_value, high_value = float(values.min()), float(values.max())
    width = (high_value - low_value) / bins
    if width == 0:
        return low_value, low_value
    index = np.minimum(((values - low_value) * (bins / (high_value - low_value))).astype(np.int64), bins - 1)
    cumulative = np.cumsum(np.bincount(index, minlength=bins)) / values.size
    lower = _first_reaching(cumulative, low, start=1)
    upper = _first_reaching(cumulative, high, start=lower + 1)
    return low_value + lower * width, low_value + upper * width


def _first_reaching(cumulative: np.ndarray, target: float, start: int) -> int:
    later = np.nonzero(cumulative[start:] >= target)[0]
    return start + int(later[0]) if later.size else len(cumulative) - 1


def scale_range(image: np.ndarray) -> np.ndarray:
    """``(x - p_low) / (p_high - p_low)`` with the macro's percentiles, as float32, rounded as ImageJ does.

    The macro passes both numbers to ImageJ as text with 9 decimals; ImageJ's Subtract works in float32
    and its Divide multiplies by the reciprocal in float32: the same here, step by step (checked against
    ImageJ by the bundle's tests).

    Examples
    --------
    With the percentiles of :func:`histogram_percentiles`' example, 0 becomes -7.8046875 / 987.29296875 and
    999 becomes 991.1953125 / 987.29296875:

    >>> scaled = scale_range(np.arange(1000.0))
    >>> round(float(scaled[0]), 6), round(float(scaled[-1]), 6)
    (-0.007905, 1.003953)
    """
    low, high = histogram_percentiles(image)
    low, spread = round(low, 9), round(high - low + 1e-20, 9)
    shifted = np.asarray(image, np.float32) - np.float32(low)
    return (shifted * np.float32(1.0 / spread)).astype(np.float32)
