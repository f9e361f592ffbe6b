"""Macros in the style of the ones labs and deepImageJ bundles ship, for the stress test and the benchmark.

Each entry is ``(name, code, make_image, check)``: ``make_image(rng)`` gives the input, ``check(result,
image)`` asserts what the macro must have produced, computed by hand or with numpy/scipy (never by deepij).
The code copies the habits of real macros: deepImageJ's ``per_sample_scale_range`` (a histogram walk with
``getHistogram``), its binarize macro (a missing semicolon, ``getStatistics(_, _, min, max)``), Fiji
recorder output with ``run("Divide...", "value=...")``, batch mode switched on inside the macro, renamed
and duplicated images, masks, watershed and Analyze Particles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class LabMacro:
    name: str
    code: str
    make_image: Callable[[np.random.Generator], np.ndarray | None]
    check: Callable[[Any, np.ndarray | None], None]
    answers: dict[str, Any] | None = None


PER_SAMPLE_SCALE_RANGE = """
// per_sample_scale_range, as deepImageJ bundles ship it: percentiles from a cumulative histogram
min_percentile = MINP;
max_percentile = MAXP;
nBins = 256; // the larger the more accurate
getDimensions(width, height, channels, slices, frames);
function percentile_normalization(min_percentile, max_percentile, nBins){
\tcumHist = newArray(nBins);
\tgetDimensions(width, height, channels, slices, frames);
\tfor (s = 1; s < slices+1; s++) {
\t\tsetSlice(s);
\t\tgetHistogram(values, counts, nBins);
\t\tfor (i = 0; i < nBins; i++) {
\t\t\tcumHist[i] = cumHist[i] + counts[i];
\t\t}
\t}
\tfor (i = 1; i < nBins; i++) {
\t\tcumHist[i] = cumHist[i] + cumHist[i-1];
\t}
\tnormCumHist = newArray(nBins);
\tfor (i = 0; i < nBins; i++){  normCumHist[i] = cumHist[i]/cumHist[nBins - 1]; }
\ttarget = min_percentile;
\ti = 0;
\tdo {
\t\ti = i + 1;
\t} while (normCumHist[i] < target)
\tmi = values[i];
\ttarget = max_percentile;
\tdo {
\t\ti = i + 1;
\t} while (normCumHist[i] < target)
\tma = values[i];
\tdiff = ma-mi+1e-20; // add epsilon to avoid 0-divisions
\trun("32-bit");
\trun("Subtract...", "value="+mi+" stack");
\trun("Divide...", "value="+diff+" stack");
\tprint("percentiles " + mi + " " + ma);
}

// EXECUTE THE FUNCTION TO THE WHOLE IMAGE
percentile_normalization(min_percentile, max_percentile, nBins);
"""

BINARIZE = """
// clip the range of values to the [0,1] range (no semicolons after two lines, as in the original)
getStatistics(_, _, min, max, _, _);
run("Subtract...", "value=" + min);
diff = max - min + 1e-20
run("Divide...", "value=" + diff);
run("Multiply...", "value=" + 255);
setMinAndMax(0, 255);
run("8-bit");
optimalThreshold = THRESHOLD
setThreshold(0, optimalThreshold);
run("Convert to Mask");
"""

SEGMENT = """
setBatchMode(true);
original = getTitle();
run("Duplicate...", "title=smoothed");
run("Gaussian Blur...", "sigma=1.5");
setAutoThreshold("Default dark");
setOption("BlackBackground", true);
run("Convert to Mask");
run("Watershed");
rename("mask");
run("Set Measurements...", "area mean redirect=None decimal=3");
run("Analyze Particles...", "size=10-Infinity pixel display clear");
return "" + nResults;
"""

MEAN_NORMALIZATION = """
run("32-bit");
getStatistics(area, mean, min, max, std);
run("Subtract...", "value=" + mean);
run("Divide...", "value=" + std);
rename("normalized");
"""

ASKING = """
// a workshop macro: asks for its parameter, tells the user when it is done
setBatchMode(true);
sigma = getNumber("Sigma of the blur:", 1);
run("32-bit");
run("Gaussian Blur...", "sigma=" + sigma);
run("Subtract...", "value=10");
showMessage("Done", "blurred with sigma " + sigma);
"""

NEW_IMAGE_ARITHMETIC = """
setBatchMode(true);
newImage("canvas", "32-bit black", WIDTH, HEIGHT, 1);
run("Add...", "value=ADD");
run("Divide...", "value=2");
run("Multiply...", "value=3");
getStatistics(area, mean);
return d2s(mean, 6);
"""


def _blobs(rng: np.random.Generator, count: int = 9, size: int = 96) -> np.ndarray:
    image = rng.normal(10, 2, (size, size)).astype("float32")
    yy, xx = np.mgrid[:size, :size]
    for index in range(count):
        cy, cx = 16 + 30 * (index // 3), 16 + 30 * (index % 3)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 7**2] += 100
    return image


def _histogram_percentiles(image: np.ndarray, low: float, high: float, bins: int = 256
                           ) -> tuple[float, float]:
    """ImageJ's histogram walk of per_sample_scale_range, redone with numpy (bins over [min, max])."""
    lo, hi = float(image.min()), float(image.max())
    counts, _ = np.histogram(image, bins=bins, range=(lo, hi))
    values = lo + np.arange(bins) * (hi - lo) / bins
    normalized = np.cumsum(counts) / counts.sum()
    i = 1
    while normalized[i] < low:
        i += 1
    mi = values[i]
    i += 1
    while normalized[i] < high:
        i += 1
    return float(mi), float(values[i])


def _check_scale_range(low: float, high: float) -> Callable[[Any, np.ndarray | None], None]:
    def check(result: Any, image: np.ndarray | None) -> None:
        assert image is not None
        mi, ma = (float(v) for v in result.log.split("percentiles ", 1)[1].split()[:2])
        expected_mi, expected_ma = _histogram_percentiles(image, low, high)
        np.testing.assert_allclose([mi, ma], [expected_mi, expected_ma], rtol=1e-4, atol=1e-4)
        expected = (image - mi) / (ma - mi + 1e-20)
        np.testing.assert_allclose(result.image.values, expected, rtol=1e-5, atol=1e-5)
    return check


def _check_binarize(threshold: int) -> Callable[[Any, np.ndarray | None], None]:
    def check(result: Any, image: np.ndarray | None) -> None:
        assert image is not None
        scaled = (image - image.min()) / (image.max() - image.min() + 1e-20) * 255
        eight_bit = np.clip(np.floor(scaled + 0.5), 0, 255)
        mask = result.image.values
        assert set(np.unique(mask)) <= {0, 255}
        # ImageJ's mask of an 8-bit threshold; pixels within rounding of the threshold may go either way
        clear = np.abs(eight_bit - threshold) > 1
        np.testing.assert_array_equal((mask > 0)[clear], (eight_bit <= threshold)[clear])
    return check


def _check_segment(result: Any, image: np.ndarray | None) -> None:
    assert image is not None
    _, count = ndimage.label(image > (image.min() + image.max()) / 2)
    assert int(result.value) == count == len(result.tables["Results"])
    assert set(np.unique(result.images["mask"].values)) <= {0, 255}


def _check_mean_normalization(result: Any, image: np.ndarray | None) -> None:
    assert image is not None
    out = result.images["normalized"].values
    np.testing.assert_allclose(out, (image - image.mean()) / image.std(ddof=1), rtol=1e-4, atol=1e-4)


def _check_asking(sigma: float) -> Callable[[Any, np.ndarray | None], None]:
    def check(result: Any, image: np.ndarray | None) -> None:
        assert image is not None
        assert result.messages == [f"blurred with sigma {sigma:g}"]
        expected = ndimage.gaussian_filter(image.astype("float64"), sigma, mode="nearest", truncate=4.0) - 10
        np.testing.assert_allclose(result.image.values, expected, atol=0.05)
    return check


def _check_new_image(add: float) -> Callable[[Any, np.ndarray | None], None]:
    def check(result: Any, image: np.ndarray | None) -> None:
        assert abs(float(result.value) - add / 2 * 3) < 1e-5
    return check


def lab_macros() -> list[LabMacro]:
    """60 macros: every family above with several parameter sets."""
    macros = []
    for low, high in [(0.01, 0.998), (0.02, 0.99), (0.05, 0.95), (0.1, 0.9), (0.001, 0.999),
                      (0.03, 0.97), (0.2, 0.8), (0.15, 0.85), (0.25, 0.75), (0.04, 0.96), (0.3, 0.7)]:
        macros.append(LabMacro(
            f"per_sample_scale_range {low}-{high}",
            PER_SAMPLE_SCALE_RANGE.replace("MINP", str(low)).replace("MAXP", str(high)),
            lambda rng: rng.gamma(2.0, 30.0, (64, 72)).astype("float32"),
            _check_scale_range(low, high),
        ))
    for threshold in (40, 80, 100, 120, 140, 159, 170, 190, 210, 230, 60):
        macros.append(LabMacro(
            f"binarize {threshold}", BINARIZE.replace("THRESHOLD", str(threshold)),
            lambda rng: rng.random((48, 40)).astype("float32") * 1000, _check_binarize(threshold),
        ))
    for count in (1, 2, 3, 4, 5, 6, 7, 8, 9, 5, 3):
        macros.append(LabMacro(f"segment {count} blobs", SEGMENT,
                               lambda rng, n=count: _blobs(rng, n), _check_segment))
    for size in (16, 32, 48, 64, 80, 96, 24, 40, 56, 72, 88):
        macros.append(LabMacro(
            f"mean normalization {size}", MEAN_NORMALIZATION,
            lambda rng, s=size: rng.normal(50, 9, (s, s + 8)).astype("float32"), _check_mean_normalization,
        ))
    for add in (1, 2, 4, 6, 10, 12.5, 20, 64, 100, 3, 7):
        macros.append(LabMacro(
            f"new image +{add}",
            NEW_IMAGE_ARITHMETIC.replace("WIDTH", "32").replace("HEIGHT", "24").replace("ADD", str(add)),
            lambda rng: None, _check_new_image(add),
        ))
    for sigma in (1, 1.5, 2, 2.5, 3):
        macros.append(LabMacro(
            f"asking sigma {sigma}", ASKING, lambda rng: rng.random((40, 40)).astype("float32") * 50,
            _check_asking(sigma), answers={"Sigma of the blur": sigma},
        ))
    return macros
