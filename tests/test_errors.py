"""The error hierarchy users catch by: every error class is importable from ``deepij``."""

from __future__ import annotations

import inspect

import deepij
import deepij.errors as errors


def _error_classes() -> set[type]:
    return {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.DeepijError) and obj.__module__ == errors.__name__
    }


def test_every_error_class_is_importable_from_deepij():
    found = _error_classes()
    assert len(found) >= 15
    for cls in found:
        assert getattr(deepij, cls.__name__) is cls, cls.__name__


def test_argument_errors_are_value_and_type_errors():
    assert issubclass(deepij.ArgumentError, ValueError)
    assert issubclass(deepij.ArgumentTypeError, TypeError)
    assert issubclass(deepij.TilingError, ValueError)


def test_broken_files_are_not_value_errors():
    # code that catches ValueError from zipfile or yaml must never swallow deepij's own file errors
    for cls in (deepij.BundleError, deepij.ArchiveError, deepij.ChecksumError, deepij.DownloadError):
        assert not issubclass(cls, ValueError), cls.__name__
        assert issubclass(cls, deepij.DeepijError)
