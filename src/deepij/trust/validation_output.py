"""Where and how :func:`deepij.validate` results are written: the output folder, checked, and the rows as
JSON-ready records (NaN ``None``, infinities ``"inf"``/``"-inf"``).

Examples
--------
>>> import pandas as pd
>>> records(pd.DataFrame({"test": ["a.tif"], "SNR": [float("inf")], "BCE": [float("nan")]}))
[{'test': 'a.tif', 'SNR': 'inf', 'BCE': None}]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepij.errors import ArgumentError, ArgumentTypeError


def output_folder(path: Any, argument: str) -> Path:
    """``path`` as a folder to write into, made when missing (ArgumentError naming ``argument`` when it
    is a file, or cannot be made)."""
    folder = check_output_folder(path, argument)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ArgumentError(
            f"{argument}: cannot make the folder {str(folder)!r} ({error.strerror or error}; expected a "
            "folder that can be written)"
        ) from None
    return folder


def check_output_folder(path: Any, argument: str) -> Path:
    """``path`` as a folder to write into later, without making it: ArgumentError naming ``argument`` when
    it, or a folder above it, is a file.

    Examples
    --------
    >>> check_output_folder(__file__, "--output")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    deepij.errors.ArgumentError: --output: '...validation_output.py' is a file (expected a folder...)
    """
    if not isinstance(path, (str, Path)) or not str(path):
        raise ArgumentTypeError(f"{argument}: expected a folder path, found {type(path).__name__}")
    folder = Path(path).expanduser()
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "" if candidate == folder else f" (in the way of {str(folder)!r})"
                raise ArgumentError(
                    f"{argument}: {str(candidate)!r} is a file{where} (expected a folder to write into)"
                )
            break
    return folder


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


__all__ = ["check_output_folder", "json_value", "output_folder", "records"]
