"""A case's run against the files the bundle ships for it: which output goes with which file, then
:mod:`deepij.trust.reproduce_compare`'s figures.

Test tensors name their output. A deepImageJ example's files do not: the expected image is the output or
step image of the same shape (dims of size 1 aside; the same pixel type first, then the closest values),
the table the one with its columns (or the only one).

Examples
--------
>>> squeezed((1, 1, 32, 1, 16))
(32, 16)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.errors import BundleError
from deepij.trust.reproduce_compare import (
    Comparison,
    Tolerance,
    compare_arrays,
    compare_tables,
    failed_comparison,
    reproduction_tolerance,
)

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from deepij.bundle.description import ModelDescription
    from deepij.pipeline import Prediction
    from deepij.trust.reproduce_cases import Case, Expected


def compare_case(
    description: ModelDescription, case: Case, prediction: Prediction, fmt: str, convention: str
) -> list[Comparison]:
    """One comparison per expected file of ``case``, marked with the ``convention`` the run used."""
    found = []
    for expected in case.expected:
        try:
            values = read_expected(description, expected.file)
        except (OSError, ValueError, BundleError) as exc:
            tolerance = reproduction_tolerance(description, fmt, expected.output or "")
            found.append(
                failed_comparison(
                    case.kind, expected.output or "?", expected.file, tolerance, f"cannot read it: {exc}"
                )
            )
            continue
        found.append(_compare_one(description, case, expected, values, prediction, fmt))
    return [replace(c, convention=convention) for c in found]


def read_expected(description: ModelDescription, file: str) -> Any:
    """A bundle's expected values: ``.npy`` and TIFF as arrays, ``.csv`` as a DataFrame
    (:func:`deepij.bundle.read_tensor_file`: a file that is not what its name says is a BundleError naming
    it and its descriptor field)."""
    from deepij.bundle import read_tensor_file

    return read_tensor_file(description, file)


def _compare_one(
    description: ModelDescription,
    case: Case,
    expected: Expected,
    values: Any,
    prediction: Prediction,
    fmt: str,
) -> Comparison:
    import pandas as pd

    if isinstance(values, pd.DataFrame):
        return _compare_table(description, case, expected, values, prediction, fmt)
    if expected.output is not None and description.output(expected.output).is_table:
        tolerance = reproduction_tolerance(description, fmt, expected.output)
        frame = prediction.tables.get(expected.output)
        if frame is None:
            return failed_comparison(
                case.kind, expected.output, expected.file, tolerance, "the run gave no such table"
            )
        return _compare_table_tensor(
            description, expected.output, frame, values, tolerance, case.kind, expected.file
        )
    if expected.output is not None:
        tolerance = reproduction_tolerance(description, fmt, expected.output)
        image = prediction.images.get(expected.output)
        if image is None:
            return failed_comparison(
                case.kind,
                expected.output,
                expected.file,
                tolerance,
                f"the run gave no such image (images: {sorted(prediction.images)})",
            )
        return _compare_image(image, values, tolerance, case.kind, expected.output, expected.file)
    name, image = _matching_image(values, prediction.images)
    tolerance = reproduction_tolerance(description, fmt, name or "")
    if image is None:
        shapes = {n: tuple(i.shape) for n, i in prediction.images.items()}
        return failed_comparison(
            case.kind,
            "?",
            expected.file,
            tolerance,
            f"no image of its shape {values.shape} among the outputs {shapes}",
        )
    return _compare_image(image, values, tolerance, case.kind, name or "?", expected.file)


def _compare_table(
    description: ModelDescription,
    case: Case,
    expected: Expected,
    values: pd.DataFrame,
    prediction: Prediction,
    fmt: str,
) -> Comparison:
    name, table = _named_or_matching_table(expected.output, values, prediction.tables)
    tolerance = reproduction_tolerance(description, fmt, name or "")
    if table is None:
        return failed_comparison(
            case.kind,
            expected.output or "?",
            expected.file,
            tolerance,
            f"no table output to compare with (tables: {sorted(prediction.tables)})",
        )
    return compare_tables(
        table, values, tolerance, case=case.kind, output=name or "?", expected_file=expected.file
    )


def _compare_image(
    image: xr.DataArray, values: np.ndarray, tolerance: Tolerance, kind: str, name: str, file: str
) -> Comparison:
    """Element by element; when shapes differ only by dims of size 1 (an ``.npy`` saved without batch, a
    TIFF's squeezed planes), on the squeezed arrays."""
    got = np.asarray(image.values)
    dims = [str(d) for d in image.dims]
    if got.shape != values.shape and squeezed(got.shape) == squeezed(values.shape):
        dims = [d for d, n in zip(dims, got.shape, strict=True) if n != 1]
        got, values = got.reshape(squeezed(got.shape)), values.reshape(squeezed(values.shape))
    return compare_arrays(got, values, dims, tolerance, case=kind, output=name, expected_file=file)


def _compare_table_tensor(
    description: ModelDescription,
    name: str,
    frame: pd.DataFrame,
    values: np.ndarray,
    tolerance: Tolerance,
    kind: str,
    file: str,
) -> Comparison:
    """A table output against its test tensor: the table's value columns against the tensor's rows (``i``)
    and channels, dims of size 1 left out."""
    import pandas as pd

    from deepij.bundle.description import AXIS_LETTERS

    columns = [c for c in frame.columns if str(c) not in AXIS_LETTERS]
    axes = description.output(name).axes_str
    kept = [a for a, n in zip(axes, values.shape, strict=False) if n != 1 or a in "ic"]
    rows = values.reshape([n for a, n in zip(axes, values.shape, strict=False) if n != 1 or a in "ic"])
    if kept[:2] == ["c", "i"]:
        rows = np.swapaxes(rows, 0, 1)
    rows = rows.reshape(rows.shape[0], -1) if rows.ndim else rows.reshape(1, 1)
    expected = pd.DataFrame(rows, columns=columns if rows.shape[1] == len(columns) else None)
    return compare_tables(frame, expected, tolerance, case=kind, output=name, expected_file=file)


def _named_or_matching_table(
    output: str | None, expected: pd.DataFrame, tables: Mapping[str, pd.DataFrame]
) -> tuple[str | None, pd.DataFrame | None]:
    if output is not None:
        return output, tables.get(output)
    if len(tables) == 1:
        return next(iter(tables.items()))
    columns = set(map(str, expected.columns))
    for name, table in tables.items():
        if columns <= set(map(str, table.columns)) and len(table) == len(expected):
            return name, table
    return None, None


def _matching_image(
    values: np.ndarray, images: Mapping[str, xr.DataArray]
) -> tuple[str | None, xr.DataArray | None]:
    """The image of the expected one's shape (dims of size 1 aside): the same pixel type first, then the
    closest values."""
    shape = squeezed(values.shape)
    candidates = [(n, i) for n, i in images.items() if squeezed(i.shape) == shape]
    if not candidates:
        return None, None

    def rank(item: tuple[str, xr.DataArray]) -> tuple[bool, bool, float]:
        data = np.asarray(item[1].values)
        with np.errstate(invalid="ignore", over="ignore"):
            distance = float(
                np.nanmax(np.abs(data.reshape(shape).astype(np.float64) - values.reshape(shape)))
            )
        return data.dtype != values.dtype, data.dtype.kind != values.dtype.kind, distance

    name, image = min(candidates, key=rank)
    return name, image


def squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without its dims of size 1."""
    return tuple(n for n in shape if n != 1)
