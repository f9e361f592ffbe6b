"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest

ASSUMED_FREE_MEMORY = "8GiB"
"""What every test plans with as the machine's free RAM ($DEEPIJ_MEMORY_AVAILABLE, inherited by the
subprocesses tests start): tile plans must not depend on what this machine has free at the moment (one
expected a single 2048 pass and got 1040 tiles on a busy machine)."""


@pytest.fixture(autouse=True)
def assumed_free_memory(monkeypatch):
    monkeypatch.setenv("DEEPIJ_MEMORY_AVAILABLE", ASSUMED_FREE_MEMORY)
    return ASSUMED_FREE_MEMORY


@pytest.fixture(scope="session")
def imagej_session():
    """The process's one ImageJ session (real ImageJ 1.x, under a private Xvfb when there is no display).

    Started once per pytest process: a JVM cannot restart, so every test folder shares it. Each macro run
    starts from a clean ImageJ state, so tests do not leak into each other through it.
    """
    import deepij

    return deepij.imagej()
