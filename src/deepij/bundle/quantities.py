"""Tolerant parsing of the free-text quantities in deepImageJ's ``test_information``.

Real files hold ``"11.5 s s"``, ``"1,60E-04 cm"``, ``"67.9 Mb"``, ``28.3`` or ``"n/a"``.
"""

from __future__ import annotations

import math
import re
from typing import Any

_LEADING_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?)\s*(.*)$")


def parse_quantity(value: Any) -> tuple[float, str] | None:
    """``(number, unit)`` from a quantity written as text or as a number; None when there is no number.

    The unit is the first word after the number (a repeated unit, as in ``"11.5 s s"``, is dropped).

    Examples
    --------
    >>> parse_quantity("11.5 s s"), parse_quantity("1,60E-04 cm"), parse_quantity(28.3), parse_quantity("n/a")
    ((11.5, 's'), (0.00016, 'cm'), (28.3, ''), None)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return (float(value), "") if math.isfinite(value) else None
    match = _LEADING_NUMBER.match(str(value))
    if not match:
        return None
    number = float(match.group(1).replace(",", "."))
    words = match.group(2).split()
    return number, words[0] if words else ""
