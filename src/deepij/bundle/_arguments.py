"""Checks of public bundle functions' arguments: wrong types and values raise
:class:`~deepij.errors.ArgumentTypeError` / :class:`~deepij.errors.ArgumentError` naming the argument."""

from __future__ import annotations

from typing import Any

from deepij.errors import ArgumentError, ArgumentTypeError


def require_description(value: Any, argument: str = "description") -> None:
    """A :class:`~deepij.bundle.description.ModelDescription`, as :func:`deepij.bundle.open_bundle` gives."""
    from deepij.bundle.description import ModelDescription

    if not isinstance(value, ModelDescription):
        raise ArgumentTypeError(
            f"{argument}: expected a ModelDescription (from deepij.bundle.open_bundle), not "
            f"{type(value).__name__}"
        )


def require_text(value: Any, argument: str, *, optional: bool = False) -> None:
    """A non-empty str (or None when ``optional``)."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{argument}: expected a str, not {value!r} ({type(value).__name__})")
    if not value.strip():
        raise ArgumentError(f"{argument}: expected a non-empty str, not {value!r}")


def require_bool(value: Any, argument: str) -> None:
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{argument}: expected True or False, not {value!r}")
