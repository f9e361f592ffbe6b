"""Memory sizes: one parser and one meaning for every ``max_memory=`` deepij takes.

The units are read as the people who write them mean them:

- ``kB``, ``MB``, ``GB``, ``TB`` (with a ``B``) are decimal, powers of 1000, as disk and RAM vendors and
  bioimageio write them;
- ``KiB``, ``MiB``, ``GiB``, ``TiB`` and the bare Java letters ``k``, ``m``, ``g``, ``t`` (``-Xmx8g``) are
  binary, powers of 1024, as the JVM reads them. ``"8g"`` is the same amount everywhere, for ImageJ's JVM and
  for a model's planning budget.
"""

from __future__ import annotations

import math
import numbers
import re

from deepij.errors import ArgumentError, ArgumentTypeError

_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(
    r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(?:([kmgt])(i?)(b?))?\s*(b?)\s*$", re.IGNORECASE
)


def parse_memory_size(value: int | float | str, *, argument: str = "max_memory") -> int:
    """Bytes from a size such as ``"2GB"``, ``"512 MiB"``, ``"8g"``, ``"1e9"`` or a number of bytes.

    Parameters
    ----------
    value : int, float or str
        The size. With a ``B``, ``kB``/``MB``/``GB``/``TB`` are powers of 1000 and ``KiB``... powers of 1024;
        the bare letters ``k``, ``m``, ``g``, ``t`` are powers of 1024, as in Java's ``-Xmx8g``.
    argument : str
        The argument's name, for the error message.

    Returns
    -------
    int
        The size in bytes.

    Raises
    ------
    ArgumentTypeError
        For a value that is neither a number nor text (``True`` included).
    ArgumentError
        For text that is not a size, or a size that is not positive.

    Examples
    --------
    >>> parse_memory_size("2GB"), parse_memory_size("512 MiB"), parse_memory_size("8g")
    (2000000000, 536870912, 8589934592)
    >>> parse_memory_size(1024), parse_memory_size("1.5 kB")
    (1024, 1500)
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise ArgumentTypeError(
            f"{argument}: expected a size such as '2GB', '8g' or a number of bytes, not {value!r} "
            f"({type(value).__name__})"
        )
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match or (match.group(4) and match.group(5)):
            raise ArgumentError(
                f"{argument}: cannot read {value!r} as a memory size; expected a number and a unit "
                "(B, kB, MB, GB, TB; KiB, MiB, GiB, TiB; or Java's k, m, g, t), e.g. '2GB', '512 MiB' or '8g'"
            )
        number, letter, binary, byte = float(match.group(1)), match.group(2), match.group(3), match.group(4)
        if letter:
            table = _BINARY if (binary or not byte) else _DECIMAL
            number *= table[letter.lower()]
    else:
        number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ArgumentError(f"{argument}: expected a positive memory size, not {value!r}")
    return int(number)


def format_bytes(size: float, *, up: bool = False) -> str:
    """Decimal ``1.5 GB``-style text for messages; ``up`` rounds up (a minimum to ask for).

    Examples
    --------
    >>> format_bytes(512), format_bytes(1.5e9), format_bytes(1.5234e9, up=True)
    ('512 B', '1.5 GB', '1.6 GB')
    """
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            if unit == "B":
                return f"{math.ceil(size) if up else size:.0f} {unit}"
            return f"{math.ceil(size * 10) / 10 if up else size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
