"""Fixtures of the ImageJ tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def session(imagej_session):
    """The shared ImageJ session (see tests/conftest.py)."""
    return imagej_session


@pytest.fixture
def run_python():
    """Run Python code in a fresh interpreter: a JVM cannot restart, so other modes and exits need their own.

    Returns a function ``(code, *, timeout=120, env=None) -> subprocess.CompletedProcess``.
    """

    def run(code: str, *, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO)

    return run


@pytest.fixture
def handlers(session):
    """Register handlers for one test; afterwards each name gets back the handler it had (deepij's own
    commands, such as "Command From Macro", are served by session hooks that later tests rely on)."""
    before = {}

    def register(name, handler):
        before.setdefault(name, session.commands.handlers().get(name))
        session.commands.register(name, handler)

    yield register
    for name, handler in before.items():
        session.commands.unregister(name)
        if handler is not None:
            session.commands.register(name, handler)
