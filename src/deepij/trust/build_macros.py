"""The pre- and post-processing a built bundle carries: ImageJ macros for deepImageJ, spec ops for the zoo.

A developer names a normalisation (``"per_sample_scale_range"``, ``"zero_mean_unit_variance"``) or gives
macro files. A named normalisation becomes both a macro written here in the style of deepImageJ's own
(a commented header, the values to edit at the top, 32-bit arithmetic on the current image) and the
bioimage.io spec op with the same formula, so that deepImageJ runs the macro and the zoo's tools the op
(one of them, never both). A macro file given as such is copied; it has no spec op, so the bundle's test
input is then the example after the ImageJ pre-processing.

- ``zero_mean_unit_variance``: the macro is exact: ImageJ's standard deviation is the sample one
  (``n - 1``), the spec's the population one, and the macro converts.
- ``per_sample_scale_range``: the macro finds the percentiles in a 4096-bin histogram, linear within the
  bin, so they are within a bin width (1/4096 of the intensity range) of the exact ones the op computes;
  deepImageJ's own macro uses 256 bins without interpolation.

Examples
--------
>>> step = named_step("zero_mean_unit_variance", "cyx")
>>> step.file, step.op.name, step.op.kwargs["axes"]
('zero_mean_unit_variance.ijm', 'zero_mean_unit_variance', 'cyx')
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deepij.bundle.description import ProcessingOp
from deepij.errors import ArgumentError, ArgumentTypeError

NAMED = ("per_sample_scale_range", "zero_mean_unit_variance")
"""Normalisations :func:`deepij.build` writes itself (``scale_range`` is accepted for the first)."""
MACRO_SUFFIXES = (".ijm", ".txt")
EPS = 1e-6
HISTOGRAM_BINS = 4096


@dataclass(frozen=True)
class Step:
    """One processing step of a built bundle: the macro file (bundle-relative), its text when deepij
    writes it (None for a copied file), and the spec op with the same formula (None when there is none)."""

    file: str
    text: str | None = None
    source: Path | None = None
    op: ProcessingOp | None = None


def named_step(name: str, axes: str, percentiles: tuple[float, float] = (1.0, 99.8)) -> Step:
    """The macro and spec op of a named normalisation over ``axes`` (the input's axes but batch)."""
    if name in ("per_sample_scale_range", "scale_range"):
        low, high = (float(p) for p in percentiles)
        if not 0 <= low < high <= 100:
            raise ArgumentError(
                f"percentiles: found {percentiles!r}; expected (low, high) with 0 <= low < high <= 100"
            )
        op = ProcessingOp(
            "scale_range", {"axes": axes, "min_percentile": low, "max_percentile": high, "eps": EPS}
        )
        return Step("per_sample_scale_range.ijm", _scale_range_macro(low, high), op=op)
    if name == "zero_mean_unit_variance":
        op = ProcessingOp("zero_mean_unit_variance", {"axes": axes, "eps": EPS})
        return Step("zero_mean_unit_variance.ijm", _zero_mean_unit_variance_macro(), op=op)
    raise ArgumentError(
        f"preprocessing: no normalisation named {name!r}; expected one of {list(NAMED)} or a macro file "
        f"({', '.join(MACRO_SUFFIXES)})"
    )


def steps_from(value: object, argument: str, axes: str, percentiles: tuple[float, float]) -> list[Step]:
    """The steps ``preprocessing=`` / ``postprocessing=`` name: None, a name or a macro path, or a list of
    them (at most two: what deepImageJ 2.x's macro command takes). Post-processing takes only files."""
    if value is None:
        return []
    items = [value] if isinstance(value, (str, Path)) else value
    if not isinstance(items, Sequence) or not all(isinstance(v, (str, Path)) for v in items):
        raise ArgumentTypeError(
            f"{argument}: found {type(value).__name__}; expected a name, a macro file or a list of them"
        )
    if len(items) > 2:
        raise ArgumentError(f"{argument}: found {len(items)} steps; expected at most 2 (deepImageJ runs two)")
    steps = []
    for item in items:
        path = Path(item)
        if path.suffix.lower() in MACRO_SUFFIXES or path.is_file():
            steps.append(_file_step(path, argument))
        elif argument == "preprocessing":
            steps.append(named_step(str(item), axes, percentiles))
        else:
            raise ArgumentError(f"{argument}: {item!r} is not a macro file (expected a .ijm or .txt file)")
    names = [s.file for s in steps]
    if len(set(names)) != len(names):
        raise ArgumentError(f"{argument}: two steps would be written as the same file ({names})")
    return steps


def _file_step(path: Path, argument: str) -> Step:
    if not path.is_file():
        raise ArgumentError(f"{argument}: the macro file {path} does not exist")
    if path.suffix.lower() not in MACRO_SUFFIXES:
        raise ArgumentError(
            f"{argument}: {path.name} is not an ImageJ macro (expected {' or '.join(MACRO_SUFFIXES)})"
        )
    return Step(path.name, source=path)


def write_step(step: Step, folder: Path) -> None:
    """Write (or copy) the step's macro into the bundle folder."""
    target = folder / step.file
    if step.text is not None:
        target.write_text(step.text, encoding="utf-8")
    elif step.source is not None:
        shutil.copyfile(step.source, target)


_RULE = "// " + "-" * 94


def _scale_range_macro(low: float, high: float) -> str:
    return f"""{_RULE}
// Pre-processing written by deepij build.
// Operation: bioimage.io "scale_range", per sample, over every pixel of the image (all slices and
//            channels together): output = (input - p_low) / (p_high - p_low + eps), as a 32-bit
//            image, no clipping; p_low and p_high are the min_percentile and max_percentile of the
//            image's intensities.
// The percentiles come from a histogram of nBins bins over the image's range, interpolated
// linearly within the bin that holds them: within one bin width of the exact ones the zoo's
// tools compute (deepImageJ's own per_sample_scale_range.ijm takes 256 bins, not interpolated).
// Input: the current image, any bit depth. Output: the same image, normalised in place.
{_RULE}

// Edit these values as desired.
min_percentile = {low:g};
max_percentile = {high:g};
nBins = {HISTOGRAM_BINS};
eps = {EPS:g};

run("32-bit");
if (nSlices > 1)
	Stack.getStatistics(voxels, mean, stackMin, stackMax);
else
	getStatistics(voxels, mean, stackMin, stackMax);
counts = newArray(nBins);
for (s = 1; s <= nSlices; s++) {{
	setSlice(s);
	getHistogram(values, sliceCounts, nBins, stackMin, stackMax);
	for (i = 0; i < nBins; i++)
		counts[i] = counts[i] + sliceCounts[i];
}}
setSlice(1);
binWidth = (stackMax - stackMin) / nBins;
p_low = percentile(counts, voxels, min_percentile, stackMin, binWidth);
p_high = percentile(counts, voxels, max_percentile, stackMin, binWidth);
print("scale_range: " + min_percentile + " % = " + p_low + ", " + max_percentile + " % = " + p_high);

// d2s with a negative count writes scientific notation: no digits lost on small or large values
run("Subtract...", "value=" + d2s(p_low, -12) + " stack");
run("Divide...", "value=" + d2s(p_high - p_low + eps, -12) + " stack");

// The value of rank q/100 * (n - 1) among the sorted intensities (numpy's "linear" percentile), with the
// pixels of a bin taken as spread evenly over it.
function percentile(counts, total, q, start, width) {{
	rank = q / 100 * (total - 1);
	below = 0;
	for (i = 0; i < counts.length; i++) {{
		if (counts[i] > 0 && below + counts[i] > rank)
			return start + (i + (rank - below + 0.5) / counts[i]) * width;
		below = below + counts[i];
	}}
	return start + counts.length * width;
}}
"""


def _zero_mean_unit_variance_macro() -> str:
    return f"""{_RULE}
// Pre-processing written by deepij build.
// Operation: bioimage.io "zero_mean_unit_variance", per sample, over every pixel of the image (all
//            slices and channels together): output = (input - mean) / (std + eps), as a 32-bit image,
//            with std the population standard deviation.
// ImageJ's standard deviation is the sample one (divided by n - 1): it is converted.
// Input: the current image, any bit depth. Output: the same image, normalised in place.
{_RULE}

// Edit these values as desired.
eps = {EPS:g};

run("32-bit");
if (nSlices > 1)
	Stack.getStatistics(voxels, mean, min, max, std);
else
	getStatistics(voxels, mean, min, max, std);
std = std * sqrt((voxels - 1) / voxels);
print("zero_mean_unit_variance: mean = " + mean + ", std = " + std);

// d2s with a negative count writes scientific notation: no digits lost on small or large values
run("Subtract...", "value=" + d2s(mean, -12) + " stack");
run("Divide...", "value=" + d2s(std + eps, -12) + " stack");
"""


__all__ = ["NAMED", "Step", "named_step", "steps_from", "write_step"]
