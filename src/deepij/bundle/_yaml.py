"""Safe YAML for descriptors: plain data only, with clear errors, scalars read as YAML 1.2 reads them.

Descriptors come from strangers' bundles, so only the YAML core types are built (no ``!!python/...`` or
custom tags), the size of the data once aliases are expanded is bounded (a few anchors referring to each
other stand for an exponentially large tree, the "billion laughs"), and timestamps stay strings so a
description round-trips unchanged.

Plain scalars follow the YAML 1.2 core schema whatever the file declares: 0.5 descriptors are YAML 1.2
(``eps: 1e-06`` is a number there; PyYAML's 1.1 rules would keep it as text), and 0.3/0.4 files written by
PyYAML, ruamel or SnakeYAML never hold a 1.1-only number form unquoted. Only ``true``/``false`` are
booleans: ``yes``, ``no``, ``on``, ``off`` stay text (a channel called ``on``, a country code ``NO``), and
the readers accept them where a field is a flag (see ``Node.boolean``). ``0777`` is the decimal 777, octal
is ``0o777``; ``1_000`` and ``1:20`` are text.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, ClassVar

import yaml

from deepij.errors import BundleError

MAX_DESCRIPTOR_BYTES = 8 * 1024 * 1024
MAX_VALUES = 200_000
"""Most values (scalars, lists, mappings) a descriptor may hold once its aliases are expanded."""

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: 10x faster

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_MERGE = re.compile(r"^(?:<<)$")
_DIGITS = list("-+0123456789")
_CORE_RESOLVERS = (
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", _BOOL, list("tTfF")),
    ("tag:yaml.org,2002:int", _INT, _DIGITS),
    ("tag:yaml.org,2002:float", _FLOAT, [*_DIGITS, "."]),
    ("tag:yaml.org,2002:merge", _MERGE, ["<"]),
)


class _DescriptorLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader with YAML 1.2 scalars, keeping timestamps as text."""

    yaml_implicit_resolvers: ClassVar[dict[Any, list[Any]]] = {}  # none of PyYAML's 1.1 rules


for _tag, _pattern, _first in _CORE_RESOLVERS:
    _DescriptorLoader.add_implicit_resolver(_tag, _pattern, _first)


def _scalar_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        problem = f"expected a scalar, found a {type(node).__name__}"
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
    return str(node.value)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = _scalar_text(loader, node).strip()
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # "0777" is 777 in YAML 1.2; a bad explicit !!int is a ValueError (reported)


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = _scalar_text(loader, node).strip()
    lowered = text.lower().lstrip("+")
    if lowered in (".inf", "-.inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


def _construct_bool(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    text = _scalar_text(loader, node).strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"not a YAML 1.2 boolean: {text!r} (line {node.start_mark.line + 1})")
    return text == "true"


_DescriptorLoader.add_constructor("tag:yaml.org,2002:timestamp", _scalar_text)
_DescriptorLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_DescriptorLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_DescriptorLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


class _TooLarge(Exception):
    pass


def _plain_copy(value: Any, budget: list[int], depth: int = 0) -> Any:
    """A tree copy with text keys (``1:`` or ``null:`` keys would surprise every reader), counting values:
    aliases make a small file stand for an exponentially large tree ("billion laughs"), refused here."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if depth > 200:
        raise RecursionError("nesting deeper than 200 levels")
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str) else str(k)): _plain_copy(v, budget, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_plain_copy(v, budget, depth + 1) for v in value]
    return value


def load_yaml_text(text: str, file: str | Path) -> Any:
    """Parse descriptor text with the safe loader.

    Parameters
    ----------
    text : str
        The YAML text.
    file : str or Path
        Named in errors.

    Returns
    -------
    object
        Plain Python data (dict, list, str, int, float, bool, None).

    Raises
    ------
    BundleError
        Malformed YAML, custom tags, too large once aliases are expanded, too deep nesting.

    Examples
    --------
    >>> load_yaml_text("name: x\\ntimestamp: 2020-01-01T00:00:00Z", "rdf.yaml")
    {'name': 'x', 'timestamp': '2020-01-01T00:00:00Z'}
    """
    try:
        loader = _DescriptorLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
        return _plain_copy(data, [MAX_VALUES])
    except _TooLarge:
        raise BundleError(
            "descriptor too large once its YAML aliases are expanded",
            file=file,
            expected=f"at most {MAX_VALUES} values",
        ) from None
    except yaml.constructor.ConstructorError as exc:
        if "could not determine a constructor" not in str(exc.problem):  # e.g. a list used as a key
            raise BundleError(f"malformed YAML: {_one_line(exc)}", file=file) from None
        line_no = getattr(exc.problem_mark, "line", None)
        line = f" (line {line_no + 1})" if line_no is not None else ""
        raise BundleError(
            f"YAML tags that build objects are not allowed in descriptors{line}: {exc.problem}",
            file=file,
            expected="plain YAML (mappings, lists, strings, numbers, booleans, null)",
        ) from None
    except yaml.YAMLError as exc:
        raise BundleError(f"malformed YAML: {_one_line(exc)}", file=file) from None
    except RecursionError:
        raise BundleError("malformed YAML: nesting too deep", file=file) from None
    except (ValueError, TypeError) as exc:
        raise BundleError(f"malformed YAML: {exc}", file=file) from None


def load_yaml_file(path: Path) -> Any:
    """Read and parse a descriptor file (size-limited, UTF-8 with a BOM tolerated)."""
    try:
        size = path.stat().st_size
        if size > MAX_DESCRIPTOR_BYTES:
            raise BundleError(
                "descriptor file too large",
                file=path,
                found=f"{size} bytes",
                expected=f"at most {MAX_DESCRIPTOR_BYTES} bytes",
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read descriptor: {exc.strerror or exc}", file=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Old Windows-written model.yaml files are sometimes Latin-1 (author names with accents).
        text = raw.decode("latin-1")
    return load_yaml_text(text, path)


class _NoAliasDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Safe dumper that writes repeated values out instead of as anchors and aliases, and quotes text that
    YAML 1.1 or 1.2 would read as something else (``"1e-06"``, ``"yes"``), so any reader gets text back."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


for _tag, _pattern, _first in _CORE_RESOLVERS:
    _NoAliasDumper.add_implicit_resolver(_tag, _pattern, _first)


def dump_yaml(data: Any) -> str:
    """YAML text of plain data, keys in the given order, unicode kept, no anchors."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=110)


def _one_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(problem)
