"""The private Xvfb: starts on a free display, stops, and never outlives its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from deepij.errors import ImageJError
from deepij.imagej.display import VirtualDisplay

pytestmark = pytest.mark.skipif(not Path("/usr/bin/Xvfb").exists(), reason="Xvfb is not installed")


def _xvfb_of(guard_pid: int) -> psutil.Process:
    (xvfb,) = psutil.Process(guard_pid).children()
    assert "Xvfb" in xvfb.name()
    return xvfb


def _gone(process: psutil.Process, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def test_start_and_stop():
    display = VirtualDisplay.start()
    name = display.wait_ready()
    assert name.startswith(":") and display.running
    assert display.wait_ready() == name  # idempotent
    xvfb = _xvfb_of(display.guard_pid)
    assert f":{xvfb.cmdline()[xvfb.cmdline().index('-displayfd') + 1]}" != name  # -displayfd is an fd number
    display.stop()
    assert not display.running and _gone(xvfb)
    display.stop()  # idempotent


def test_two_displays_do_not_collide():
    first, second = VirtualDisplay.start(), VirtualDisplay.start()
    try:
        assert first.wait_ready() != second.wait_ready()
    finally:
        first.stop()
        second.stop()


def test_display_dies_with_its_process_even_on_sigkill():
    code = (
        "from deepij.imagej.display import VirtualDisplay\n"
        "d = VirtualDisplay.start(); d.wait_ready(); print(d.guard_pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        xvfb = _xvfb_of(int(child.stdout.readline()))
        assert xvfb.is_running()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert _gone(xvfb), "Xvfb outlived the process that started it"
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()


def test_missing_xvfb_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ImageJError, match=r"Xvfb is not installed.*apt-get install xvfb.*headless=True"):
        VirtualDisplay.start()
