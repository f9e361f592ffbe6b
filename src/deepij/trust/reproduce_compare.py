"""How ``deepij test`` compares what a bundle gives with what it ships: the tolerance the bundle states (or
the zoo's default), and the figures a report gives for one output: largest absolute and relative error,
mismatched elements per million, and where the worst pixels are.

The rule is the zoo's (bioimage.io ``test_model``): an element is mismatched when
``|got - expected| > atol + rtol * |expected|``; an output passes when at most ``mismatched_per_million``
elements per million are. The relative error of an element is ``|got - expected| / (|expected| + 1e-6)``.
Two NaN at the same place agree; a NaN against a number does not.

Tolerances (FORMATS.md section 2): 0.3 and 0.4 descriptors ``rtol = atol = 1e-3``, no mismatch allowed;
0.5 descriptors the first entry of ``config.bioimageio.reproducibility_tolerance`` whose ``output_ids`` and
``weights_formats`` include the output and the weights (empty lists include all), its missing fields
``rtol 1e-3``, ``atol 1e-3``, ``100`` mismatched elements per million; the same defaults without an entry.

Examples
--------
>>> import numpy as np
>>> rule = Tolerance(relative=1e-3, absolute=1e-3, mismatched_per_million=0, source="example")
>>> found = compare_arrays(np.array([1.0, 2.0, 3.5]), np.array([1.0, 2.0, 3.0]), ("x",), rule,
...                        case="test tensors", output="out", expected_file="out.npy")
>>> found.passed, found.mismatched, round(found.max_abs_error, 3), found.worst[0].position
(False, 1, 0.5, {'x': 2})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.errors import BundleError

if TYPE_CHECKING:
    import pandas as pd

    from deepij.bundle.description import ModelDescription

DEFAULT_RELATIVE = 1e-3
DEFAULT_ABSOLUTE = 1e-3
DEFAULT_MISMATCHED_PER_MILLION = 100.0
"""The zoo's defaults for 0.5 descriptors (``ReproducibilityTolerance``)."""
WORST_PIXELS = 5
"""How many of the worst elements a comparison lists."""
_RELATIVE_FLOOR = 1e-6  # the zoo's denominator guard: |d| / (|expected| + 1e-6)


@dataclass(frozen=True)
class Tolerance:
    """How close an output must come to the one the bundle ships.

    ``source`` says where the numbers come from (the descriptor field, or the default that applied).
    """

    relative: float
    absolute: float
    mismatched_per_million: float
    source: str

    def looser(self, factor: float, source: str) -> Tolerance:
        """The same rule with ``factor`` times the relative and absolute tolerance (tiled vs whole)."""
        return replace(self, relative=self.relative * factor, absolute=self.absolute * factor, source=source)

    def describe(self) -> str:
        return (
            f"rtol {self.relative:.0e}, atol {self.absolute:.0e}, "
            f"<= {self.mismatched_per_million:g} per million ({self.source})"
        )


@dataclass(frozen=True)
class Pixel:
    """One element of an output: where it is (by dim; table columns by name), the two values, the error."""

    position: dict[str, int | str]
    got: float
    expected: float
    abs_error: float


@dataclass(frozen=True)
class Comparison:
    """One output compared with the file the bundle ships for it.

    Attributes
    ----------
    case : str
        ``"test tensors"`` or ``"deepImageJ example"``.
    output : str
        The output (or, for deepImageJ examples, the image or table the run gave) that was compared.
    expected_file : str
        The bundle-relative file holding the expected values.
    passed : bool
        Within the tolerance (and the shapes agreed).
    elements, mismatched : int
        Elements compared; those outside ``atol + rtol * |expected|``.
    mismatched_per_million, max_abs_error, max_rel_error : float
        The figures the tolerance is judged on.
    tolerance : Tolerance
        The rule that applied.
    worst : list of Pixel
        The worst mismatched elements (largest error beyond the relative tolerance), worst first.
    problem : str or None
        Why nothing could be compared element by element (a shape, a missing output or column).
    convention : str
        How the output was made: ``"zoo"`` (the image as it is, one unpadded pass) or ``"deepImageJ"``
        (deepImageJ's default tile, mirror-padded); empty for comparisons made outside ``deepij test``.
    """

    case: str
    output: str
    expected_file: str
    passed: bool
    elements: int
    mismatched: int
    mismatched_per_million: float
    max_abs_error: float
    max_rel_error: float
    tolerance: Tolerance
    worst: list[Pixel] = field(default_factory=list)
    problem: str | None = None
    convention: str = ""


def reproduction_tolerance(description: ModelDescription, weights_format: str, output: str) -> Tolerance:
    """The tolerance for reproducing ``output`` with ``weights_format`` (module notes).

    Raises
    ------
    BundleError
        A ``reproducibility_tolerance`` entry that is not a mapping of numbers and lists.
    """
    if not description.format_version.startswith("0.5"):
        return Tolerance(
            DEFAULT_RELATIVE, DEFAULT_ABSOLUTE, 0.0, f"the zoo's default for {description.format_version}"
        )
    bioimageio = description.config.get("bioimageio")
    bioimageio = bioimageio if isinstance(bioimageio, Mapping) else {}
    found = Tolerance(DEFAULT_RELATIVE, DEFAULT_ABSOLUTE, DEFAULT_MISMATCHED_PER_MILLION, "the zoo's default")
    legacy = bioimageio.get("test_kwargs")
    if isinstance(legacy, Mapping) and isinstance(legacy.get(weights_format), Mapping):
        where = f"config.bioimageio.test_kwargs.{weights_format}"
        found = _entry(description, where, legacy[weights_format], found)
    entries = bioimageio.get("reproducibility_tolerance") or []
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise BundleError(
            "reproducibility tolerance is not a list",
            file=description.descriptor,
            field="config.bioimageio.reproducibility_tolerance",
            found=entries,
            expected="a list of {relative_tolerance, absolute_tolerance, mismatched_elements_per_million, "
            "output_ids, weights_formats}",
        )
    for index, entry in enumerate(entries):
        where = f"config.bioimageio.reproducibility_tolerance[{index}]"
        if not isinstance(entry, Mapping):
            raise BundleError(
                "reproducibility tolerance entry is not a mapping",
                file=description.descriptor,
                field=where,
                found=entry,
                expected="{relative_tolerance, absolute_tolerance, mismatched_elements_per_million, ...}",
            )
        outputs = _names(description, f"{where}.output_ids", entry.get("output_ids"))
        formats = _names(description, f"{where}.weights_formats", entry.get("weights_formats"))
        if (not outputs or output in outputs) and (not formats or weights_format in _canonical(formats)):
            defaults = Tolerance(DEFAULT_RELATIVE, DEFAULT_ABSOLUTE, DEFAULT_MISMATCHED_PER_MILLION, where)
            return _entry(description, where, entry, defaults)
    return found


def _entry(description: ModelDescription, where: str, entry: Mapping, defaults: Tolerance) -> Tolerance:
    values = {}
    for key, default in (
        ("relative_tolerance", defaults.relative),
        ("absolute_tolerance", defaults.absolute),
        ("mismatched_elements_per_million", defaults.mismatched_per_million),
    ):
        value = entry.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise BundleError(
                "tolerance is not a number >= 0",
                file=description.descriptor,
                field=f"{where}.{key}",
                found=value,
                expected="a number >= 0",
            )
        values[key] = float(value)
    return Tolerance(
        values["relative_tolerance"],
        values["absolute_tolerance"],
        values["mismatched_elements_per_million"],
        where,
    )


def _names(description: ModelDescription, where: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise BundleError(
            "not a list of names",
            file=description.descriptor,
            field=where,
            found=value,
            expected="a list of names (empty: all)",
        )
    return [str(v) for v in value]


def _canonical(formats: Sequence[str]) -> set[str]:
    from deepij.inference.backends import canonical_format

    return {canonical_format(f) for f in formats}


# --- element by element ---------------------------------------------------------------------------------


def compare_arrays(
    got: np.ndarray,
    expected: np.ndarray,
    dims: Sequence[str],
    tolerance: Tolerance,
    *,
    case: str,
    output: str,
    expected_file: str,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> Comparison:
    """Compare two arrays of the same shape (``dims`` names their axes) under ``tolerance``.

    ``labels`` names the positions along some dims (table columns) in the worst pixels.
    """
    got_values = np.asarray(got, dtype=np.float64)
    expected_values = np.asarray(expected, dtype=np.float64)
    if got_values.shape != expected_values.shape:
        return failed_comparison(
            case,
            output,
            expected_file,
            tolerance,
            f"shape {_shape_text(dims, got_values.shape)}, "
            f"expected {_shape_text(dims, expected_values.shape)}",
        )
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(got_values - expected_values)
        both_nan = np.isnan(got_values) & np.isnan(expected_values)
        same_infinity = np.isinf(expected_values) & (got_values == expected_values)
        agree = both_nan | same_infinity
        difference[agree] = 0.0
        allowed = tolerance.absolute + tolerance.relative * np.abs(expected_values)
        mismatched = ~(difference <= allowed) & ~agree  # NaN against a number is mismatched
        relative = difference / (np.abs(expected_values) + _RELATIVE_FLOOR)
    count = int(mismatched.sum())
    size = int(expected_values.size)
    per_million = count / size * 1e6 if size else 0.0
    return Comparison(
        case=case,
        output=output,
        expected_file=expected_file,
        passed=per_million <= tolerance.mismatched_per_million,
        elements=size,
        mismatched=count,
        mismatched_per_million=per_million,
        max_abs_error=_largest(difference),
        max_rel_error=_largest(relative),
        tolerance=tolerance,
        worst=_worst(
            difference,
            mismatched,
            tolerance.relative * np.abs(expected_values),
            got_values,
            expected_values,
            dims,
            labels or {},
        ),
    )


def compare_tables(
    got: pd.DataFrame,
    expected: pd.DataFrame,
    tolerance: Tolerance,
    *,
    case: str,
    output: str,
    expected_file: str,
) -> Comparison:
    """Compare a table with an expected one: every numeric column of ``expected`` (ImageJ's row-number column
    left out) must be in ``got``, with as many rows."""
    columns = [
        c
        for c in expected.columns
        if str(c).strip() and not str(c).startswith("Unnamed:") and expected[c].dtype.kind in "biuf"
    ]
    missing = [c for c in columns if c not in got.columns]
    if missing:
        return failed_comparison(
            case,
            output,
            expected_file,
            tolerance,
            f"columns {missing} missing (the table has {list(map(str, got.columns))})",
        )
    if len(got) != len(expected):
        return failed_comparison(
            case, output, expected_file, tolerance, f"{len(got)} rows, expected {len(expected)}"
        )
    try:
        values = got[columns].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        return failed_comparison(
            case, output, expected_file, tolerance, f"columns {columns} of the table are not all numbers"
        )
    return compare_arrays(
        values,
        expected[columns].to_numpy(dtype=np.float64),
        ("row", "column"),
        tolerance,
        case=case,
        output=output,
        expected_file=expected_file,
        labels={"column": [str(c) for c in columns]},
    )


def failed_comparison(
    case: str, output: str, expected_file: str, tolerance: Tolerance, problem: str
) -> Comparison:
    """A comparison that could not be made element by element: failed, with the reason."""
    nan = float("nan")
    return Comparison(case, output, expected_file, False, 0, 0, nan, nan, nan, tolerance, [], problem)


def _largest(values: np.ndarray) -> float:
    if not values.size:
        return 0.0
    finite = values[~np.isnan(values)]
    if finite.size < values.size:
        return float("nan")
    return float(finite.max())


def _worst(
    difference: np.ndarray,
    mismatched: np.ndarray,
    relative_allowance: np.ndarray,
    got: np.ndarray,
    expected: np.ndarray,
    dims: Sequence[str],
    labels: Mapping[str, Sequence[str]],
) -> list[Pixel]:
    """The mismatched elements with the largest error beyond the relative tolerance, worst first."""
    if not mismatched.any():
        return []
    excess = np.where(mismatched, np.nan_to_num(difference - relative_allowance, nan=np.inf), -np.inf)
    flat = excess.ravel()
    count = min(WORST_PIXELS, int(mismatched.sum()))
    picked = np.argpartition(-flat, count - 1)[:count]
    picked = picked[np.argsort(-flat[picked], kind="stable")]
    pixels = []
    coordinates = np.unravel_index(picked, excess.shape)
    for k in range(count):
        where = tuple(int(c[k]) for c in coordinates)
        position: dict[str, int | str] = {}
        for dim, i in zip(dims, where, strict=True):
            position[dim] = labels[dim][i] if dim in labels else i
        pixels.append(Pixel(position, float(got[where]), float(expected[where]), float(difference[where])))
    return pixels


def _shape_text(dims: Sequence[str], shape: tuple[int, ...]) -> str:
    if len(dims) == len(shape):
        return "(" + ", ".join(f"{d}={n}" for d, n in zip(dims, shape, strict=True)) + ")"
    return str(shape)
