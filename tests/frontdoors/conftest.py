"""Fixtures of the front-door tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def session(imagej_session):
    """The shared ImageJ session (see tests/conftest.py)."""
    return imagej_session
