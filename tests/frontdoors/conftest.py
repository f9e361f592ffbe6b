"""Fixtures of the front-door tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def session(imagej_session):
    """The shared ImageJ session (see tests/conftest.py)."""
    return imagej_session


@pytest.fixture(scope="module")
def display():
    """A virtual X display of its own for the separate ImageJ processes of a test module."""
    from deepij.imagej.display import VirtualDisplay

    screen = VirtualDisplay.start()
    screen.wait_ready()
    yield screen.name
    screen.stop()
