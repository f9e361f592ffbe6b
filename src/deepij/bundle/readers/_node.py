"""A descriptor value together with where it is, so every complaint names the file and the field.

Readers never index raw dicts: they walk :class:`Node` objects, whose accessors convert tolerantly (numbers
written as text, ``"-inf"``, decimal commas, ``"true"``) and raise :class:`~deepij.errors.BundleError` with
file, dotted field path, what was found and what was expected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepij.errors import BundleError

_MISSING = object()
_INFINITIES = {"inf": math.inf, "+inf": math.inf, ".inf": math.inf, "-inf": -math.inf, "-.inf": -math.inf}
_FLAGS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}
_NUMBER_TEXT = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


class Node:
    """One value of a descriptor.

    Parameters
    ----------
    value : object
        The parsed YAML value (``Node.missing`` when the key is absent).
    path : str
        Dotted field path (``inputs[0].shape.min``); ``""`` for the document.
    file : Path
        The descriptor file.
    """

    missing = _MISSING

    def __init__(self, value: Any, path: str, file: Path) -> None:
        self.value = value
        self.path = path
        self.file = file

    # --- navigation -------------------------------------------------------------------------------------

    def _child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Node:
        """The child ``key`` of a mapping (``Node.missing`` inside when absent, or when this is null)."""
        mapping = self.mapping(allow_missing=True)
        return Node(mapping.get(key, _MISSING), self._child_path(key), self.file)

    def required(self, key: str, expected: str) -> Node:
        """The child ``key``; a BundleError naming it when it is absent or null."""
        child = self.get(key)
        if child.value is _MISSING or child.value is None:
            raise BundleError("missing required field", file=self.file, field=child.path, expected=expected)
        return child

    def first_of(self, *keys: str) -> Node:
        """The first present child among ``keys`` (spelling variants), else a missing ``keys[0]``."""
        for key in keys:
            child = self.get(key)
            if child.present:
                return child
        return self.get(keys[0])

    @property
    def present(self) -> bool:
        """True when the key exists and is not null."""
        return self.value is not _MISSING and self.value is not None

    def mapping(self, *, allow_missing: bool = False) -> dict[str, Any]:
        if self.value is _MISSING or self.value is None:
            if allow_missing:
                return {}
            raise self.error("missing required field", expected="a mapping")
        if not isinstance(self.value, dict):
            raise self.error("wrong type", found=self.value, expected="a mapping (key: value)")
        return self.value

    def items(self) -> Iterator[tuple[str, Node]]:
        for key in self.mapping(allow_missing=True):
            yield key, self.get(key)

    def elements(self, *, allow_scalar: bool = False) -> list[Node]:
        """The elements of a list (empty when absent or null; a lone scalar as one element if allowed)."""
        if not self.present:
            return []
        if isinstance(self.value, list):
            return [Node(v, self._child_path(i), self.file) for i, v in enumerate(self.value)]
        if allow_scalar and not isinstance(self.value, dict):
            return [self]
        raise self.error("wrong type", found=self.value, expected="a list")

    # --- errors -----------------------------------------------------------------------------------------

    def error(self, message: str, *, found: Any = _MISSING, expected: str | None = None) -> BundleError:
        if found is _MISSING:
            return BundleError(message, file=self.file, field=self.path or None, expected=expected)
        return BundleError(message, file=self.file, field=self.path or None, found=found, expected=expected)

    # --- scalars ----------------------------------------------------------------------------------------

    def text(self, default: str | None = None) -> str | None:
        """A string; numbers are turned into text (``version: 0.1``). ``default`` when absent or null."""
        if not self.present:
            return default
        if isinstance(self.value, (bool, dict, list)):
            raise self.error("wrong type", found=self.value, expected="text")
        return str(self.value)

    def required_text(self, expected: str = "text") -> str:
        value = self.text()
        if value is None or not value.strip():
            raise self.error("missing required field", expected=expected)
        return value

    def number(self, default: float | None = None) -> float | None:
        """A float; accepts ``"inf"``, ``"-inf"``, ``".inf"``, ``"1,6E-04"`` and numbers written as text."""
        if not self.present:
            return default
        return to_float(self.value, self)

    def integer(self, default: int | None = None) -> int | None:
        """An int; accepts integral floats (``64.0``) and digits written as text."""
        if not self.present:
            return default
        number = to_float(self.value, self, expected="an integer")
        if not math.isfinite(number) or number != int(number):
            raise self.error("not an integer", found=self.value, expected="an integer")
        return int(number)

    def boolean(self, default: bool) -> bool:
        """A bool; accepts ``"true"``/``"false"`` text (deepImageJ 2.1 wrote them so) and the YAML 1.1
        flags ``yes``/``no``/``on``/``off`` (text in YAML 1.2, booleans to deepImageJ's SnakeYAML); null ->
        default."""
        if not self.present:
            return default
        if isinstance(self.value, bool):
            return self.value
        if isinstance(self.value, str) and self.value.strip().lower() in _FLAGS:
            return _FLAGS[self.value.strip().lower()]
        raise self.error("wrong type", found=self.value, expected="true or false")

    def text_list(self) -> tuple[str, ...]:
        """A list of strings (a lone string as a one-element list; null/absent as empty)."""
        out = []
        for element in self.elements(allow_scalar=True):
            value = element.text()
            if value is not None:
                out.append(value)
        return tuple(out)


def to_float(value: Any, where: Node, expected: str = "a number") -> float:
    if isinstance(value, bool):
        raise where.error("wrong type", found=value, expected=expected)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _INFINITIES:
            return _INFINITIES[text]
        if _NUMBER_TEXT.match(text):
            return float(text.replace(",", "."))
    raise where.error("wrong type", found=value, expected=expected)
