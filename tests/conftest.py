"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def imagej_session():
    """The process's one ImageJ session (real ImageJ 1.x, under a private Xvfb when there is no display).

    Started once per pytest process: a JVM cannot restart, so every test folder shares it. Each macro run
    starts from a clean ImageJ state, so tests do not leak into each other through it.
    """
    import deepij

    return deepij.imagej()
