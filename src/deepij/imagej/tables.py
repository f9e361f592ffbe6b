"""ImageJ ResultsTable <-> pandas DataFrame.

Mapping
-------
- Numeric ImageJ columns become ``float64`` columns (ImageJ stores every number as a double).
- A column whose cells are text becomes an ``object`` column of ``str``; a column mixing numbers and text
  keeps both (floats and str). Empty numeric cells are NaN.
- ImageJ row labels (the ``Label`` column) become the DataFrame index, named after the label heading;
  a table without labels gets a default ``RangeIndex``. Going back, any index that is not ``0..n-1`` becomes
  the row labels.

Examples
--------
>>> import deepij
>>> session = deepij.imagej()
>>> rt = session.to_resultstable(pd.DataFrame({"Area": [1.0, 2.0], "Name": ["a", "b"]}))
>>> session.to_dataframe(rt)
   Area Name
0   1.0    a
1   2.0    b
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from deepij.errors import ArgumentError, ArgumentTypeError
from deepij.imagej._java import jc, jstr


def to_dataframe(table: Any) -> pd.DataFrame:
    """Copy an ``ij.measure.ResultsTable`` into a new DataFrame.

    Parameters
    ----------
    table : ij.measure.ResultsTable
        Any results table (the Results window's, a named table's, or one made in Python).
    """
    if table is None:
        raise ArgumentTypeError("table: expected an ij.measure.ResultsTable, found None")
    rows = int(table.size())
    columns: dict[str, Any] = {}
    for index in range(int(table.getLastColumn()) + 1):
        if not table.columnExists(index):
            continue
        heading = jstr(table.getColumnHeading(index)) or f"C{index + 1}"
        columns[heading] = _column_values(table, index, rows)
    frame = pd.DataFrame(columns, index=_row_labels(table, rows))
    return frame


def _column_values(table: Any, index: int, rows: int) -> np.ndarray:
    numbers = np.array(table.getColumnAsDoubles(index), dtype=np.float64) if rows else np.empty(0)
    missing = np.flatnonzero(np.isnan(numbers))
    if missing.size == 0:
        return numbers
    # NaN marks both empty numeric cells and text cells: ask ImageJ for the text of those rows only
    texts = {int(row): jstr(table.getStringValue(index, int(row))) for row in missing}
    text_rows = {row: text for row, text in texts.items() if text not in ("NaN", None)}
    if not text_rows:
        return numbers
    values = numbers.astype(object)
    for row, text in text_rows.items():
        values[row] = text
    if len(text_rows) == rows:
        return values.astype(str).astype(object)
    return values


def _row_labels(table: Any, rows: int) -> pd.Index:
    headings = [jstr(h) for h in table.getHeadings()]
    data_columns = sum(1 for index in range(int(table.getLastColumn()) + 1) if table.columnExists(index))
    # getHeadings() lists the label heading first, and only when the table has row labels
    if rows == 0 or len(headings) == data_columns:
        return pd.RangeIndex(rows)
    labels = [jstr(table.getLabel(row)) or "" for row in range(rows)]
    return pd.Index(labels, name=headings[0])


def to_resultstable(frame: pd.DataFrame) -> Any:
    """Copy a DataFrame into a new ``ij.measure.ResultsTable`` (not shown).

    Parameters
    ----------
    frame : pandas.DataFrame
        Numeric, boolean, text or mixed columns; column names become headings (as text).

    Raises
    ------
    ArgumentError
        For repeated column names or cells that are neither numbers nor text (a ValueError).
    ArgumentTypeError
        For anything but a DataFrame (a TypeError).
    """
    if not isinstance(frame, pd.DataFrame):
        raise ArgumentTypeError(f"frame: expected a pandas.DataFrame, found {type(frame).__name__}")
    headings = [str(c) for c in frame.columns]
    repeated = sorted({h for h in headings if headings.count(h) > 1})
    if repeated:
        raise ArgumentError(f"frame: repeated column names {repeated} (a ResultsTable needs unique headings)")
    rows = len(frame)
    from jpype import JObject

    table = jc.ResultsTable(JObject(rows, "java.lang.Integer")) if rows else jc.ResultsTable()
    for heading, column in zip(headings, frame.columns, strict=True):
        _write_column(table, heading, frame[column], rows)
    if rows and not _is_default_index(frame.index):
        _write_labels(table, frame.index)
    return table


def _write_column(table: Any, heading: str, series: pd.Series, rows: int) -> None:
    from jpype import JArray, JDouble

    if rows == 0:
        table.setValue(heading, 0, 0.0)  # creates the column, then the row is removed
        table.deleteRow(0)
        return
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        table.setValues(heading, JArray(JDouble)(values))
        return
    table.setValue(heading, 0, math.nan)
    column = int(table.getColumnIndex(heading))
    for row, cell in enumerate(series.tolist()):
        if cell is None or (isinstance(cell, float) and math.isnan(cell)) or cell is pd.NA:
            table.setValue(column, row, math.nan)
        elif isinstance(cell, bool | int | float | np.number):
            table.setValue(column, row, float(cell))
        elif isinstance(cell, str):
            table.setValue(column, row, cell)
        else:
            raise ArgumentError(
                f"frame[{heading!r}] row {row}: {type(cell).__name__} {cell!r} cannot go into a ResultsTable "
                "(expected numbers or text)"
            )


def _is_default_index(index: pd.Index) -> bool:
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None


def _write_labels(table: Any, index: pd.Index) -> None:
    labels = ["" if label is None else str(label) for label in index]
    for row, label in enumerate(labels):
        table.setLabel(label, row)
    if index.name not in (None, "Label"):
        # addLabel(heading, label) is the only public way to name the label column; it rewrites the last row
        table.addLabel(str(index.name), labels[-1])
