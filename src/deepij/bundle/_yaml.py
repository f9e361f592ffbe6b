"""Safe YAML for descriptors: plain data only, with clear errors.

Descriptors come from strangers' bundles, so only the YAML core types are built (no ``!!python/...`` or
custom tags), the size of the data once aliases are expanded is bounded (a few anchors referring to each
other stand for an exponentially large tree, the "billion laughs"), and timestamps stay strings so a
description round-trips unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deepij.errors import BundleError

MAX_DESCRIPTOR_BYTES = 8 * 1024 * 1024
MAX_VALUES = 200_000
"""Most values (scalars, lists, mappings) a descriptor may hold once its aliases are expanded."""

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: 10x faster


class _DescriptorLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader, keeping timestamps as text."""


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)


_DescriptorLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


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
    """Safe dumper that writes repeated values out instead of as anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    """YAML text of plain data, keys in the given order, unicode kept, no anchors."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=110)


def _one_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(problem)
