"""A private virtual X display (Xvfb) for a non-headless JVM on machines without a screen.

ImageJ 1.x needs AWT to run most ``run("...")`` commands faithfully: in a headless JVM its dialogs cannot be
built and commands silently fall back to default parameters. Under Xvfb every command honours its options and
nothing is visible to anyone.

Examples
--------
>>> display = VirtualDisplay.start()
>>> display.wait_ready() == display.name, display.name.startswith(":")  # ":1", ":7"... whichever was free
(True, True)
>>> display.stop()
>>> display.running
False
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO

from deepij.errors import ImageJError

#: Screen geometry of the virtual display; ImageJ sizes windows from it (nobody sees them).
SCREEN = "1600x1200x24"

# Xvfb runs under a small guard process that holds a pipe from this process on its stdin: when this
# process ends in any way (even SIGKILL) the pipe closes and the guard stops Xvfb, so no display outlives
# us. The guard hands the readiness fd to Xvfb and closes its own copy: an Xvfb that dies early shows as EOF.
_GUARD = """
import os, signal, subprocess, sys
fd = int(sys.argv[1])
xvfb = subprocess.Popen(sys.argv[2:], pass_fds=(fd,), stdin=subprocess.DEVNULL)
os.close(fd)
signal.signal(signal.SIGTERM, lambda *_: (xvfb.terminate(), sys.exit(0)))
try:
    sys.stdin.buffer.read()
finally:
    xvfb.terminate()
    try:
        xvfb.wait(5)
    except subprocess.TimeoutExpired:
        xvfb.kill()
"""


class VirtualDisplay:
    """One Xvfb process owned by this Python process.

    Xvfb picks a free display number itself (``-displayfd``), so two sessions on one machine never collide.
    """

    def __init__(self, process: subprocess.Popen[bytes], ready_fd: int, errors: IO[bytes]) -> None:
        self._process = process
        self._ready_fd = ready_fd
        self._errors = errors
        self.name: str | None = None
        # The guard's pipe as a bare descriptor: Python closes file objects while it shuts down, which would
        # stop Xvfb under a JVM that is still tearing down (AWT then crashes); a bare descriptor stays open
        # until the process is really gone, and the kernel closes it then.
        assert process.stdin is not None
        self._guard_fd: int | None = os.dup(process.stdin.fileno())
        process.stdin.close()

    @classmethod
    def start(cls, screen: str = SCREEN) -> VirtualDisplay:
        """Launch Xvfb without waiting for it (call :meth:`wait_ready` before AWT starts).

        Raises
        ------
        ImageJError
            When Xvfb is not installed.
        """
        xvfb = shutil.which("Xvfb")
        if xvfb is None:
            raise ImageJError(
                "there is no display (DISPLAY is not set) and Xvfb is not installed: install it "
                "(`apt-get install xvfb`) so ImageJ commands run faithfully, or pass headless=True to accept "
                "a headless ImageJ that refuses the commands it cannot run"
            )
        read_fd, write_fd = os.pipe()
        # A file, not a pipe: Xvfb writes warnings for its whole life and nobody would drain a pipe.
        errors = tempfile.TemporaryFile(prefix="deepij-xvfb-")  # noqa: SIM115 (lives as long as Xvfb)
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _GUARD, str(write_fd), xvfb, "-displayfd", str(write_fd),
                 "-screen", "0", screen, "-nolisten", "tcp", "-noreset"],
                pass_fds=(write_fd,),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                # Its own process group: a Ctrl-C in the terminal must not kill the display under a live JVM.
                start_new_session=True,
            )
        except OSError as error:
            os.close(read_fd)
            errors.close()
            raise ImageJError(f"could not start Xvfb ({xvfb}): {error}") from error
        finally:
            os.close(write_fd)
        return cls(process, read_fd, errors)

    def wait_ready(self, timeout: float = 20.0) -> str:
        """Wait until Xvfb accepts connections; return the display name (``":N"``)."""
        if self.name is not None:
            return self.name
        deadline = time.monotonic() + timeout
        received = b""
        try:
            while not received.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ImageJError(f"Xvfb did not become ready within {timeout:.0f} s")
                ready, _, _ = select.select([self._ready_fd], [], [], remaining)
                if not ready:
                    continue
                chunk = os.read(self._ready_fd, 64)
                if not chunk:
                    raise ImageJError(f"Xvfb exited before it was ready: {self._stderr_text()}")
                received += chunk
        except ImageJError:
            self.stop()
            raise
        finally:
            with contextlib.suppress(OSError):
                os.close(self._ready_fd)
        self.name = ":" + received.decode().strip()
        return self.name

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    @property
    def guard_pid(self) -> int:
        """Process id of the guard (Xvfb is its only child)."""
        return self._process.pid

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate Xvfb (idempotent)."""
        if self._guard_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._guard_fd)  # the guard sees the pipe close, stops Xvfb and exits
            self._guard_fd = None
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)  # the guard and Xvfb: their own group
            self._process.wait(timeout)
        self._errors.close()

    def _stderr_text(self) -> str:
        self._errors.seek(0)
        return self._errors.read().decode(errors="replace").strip()[-500:] or "(no message)"

    def __repr__(self) -> str:
        return f"VirtualDisplay({self.name!r}, running={self.running})"
