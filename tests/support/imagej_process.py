"""A real, separate ImageJ 1.x (``java -jar ij.jar``, its own JVM) with deepij's plugin installed, as a Fiji
user has it: for the tests of :mod:`deepij.frontdoors.serve` and the plugin (``jars/src/deepij/plugin``).

:func:`make_imagej` lays out an ImageJ folder (``ij.jar``, ``plugins/`` with the plugin installed by
``deepij plugin install`` and the test probe ``GuiProbe``, ``models/``); :class:`ImageJProcess` runs it on a
display (``-batch`` for a macro without ImageJ's window, ``-macro`` with it) and finds its deepij worker (a
child process). ``GuiProbe`` (``support/java_gui``) is test code that a macro calls to note dialogs, click
their buttons with java.awt.Robot, press Esc and take screenshots.

Usage in a test (``tmp_path`` is pytest's fixture)::

    imagej = make_imagej(tmp_path / "ImageJ")
    run = ImageJProcess(imagej, "print(1+1);", display=":1").finish()
    run.stdout  # -> '2\\n'
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

IJ_JAR = Path("/usr/share/java/ij.jar")
_PROBE_SOURCE = Path(__file__).parent / "java_gui" / "GuiProbe.java"


def make_imagej(folder: Path) -> Path:
    """An ImageJ folder: ``ij.jar`` (a link to Debian's), ``plugins/`` with deepij's plugin (installed the way
    a user installs it) and ``GuiProbe.class``, an empty ``models/``."""
    from deepij.frontdoors.plugin_install import install

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ij.jar").symlink_to(IJ_JAR)
    (folder / "models").mkdir()
    install(folder)
    classes = folder / "probe-classes"
    subprocess.run(["javac", "-nowarn", "--release", "8", "-cp", str(IJ_JAR), "-d", str(classes),
                    str(_PROBE_SOURCE)], check=True, capture_output=True)
    for compiled in classes.glob("GuiProbe*.class"):  # with its inner classes
        shutil.copy(compiled, folder / "plugins" / compiled.name)
    return folder


@dataclass
class Finished:
    """What a finished ImageJ printed (``-batch``: its Log goes to standard output) and its exit status."""

    returncode: int
    stdout: str
    stderr: str


class ImageJProcess:
    """``java -jar ij.jar`` in ``imagej`` running ``macro`` (code, written to a file next to it).

    Parameters
    ----------
    imagej : Path
        The ImageJ folder (:func:`make_imagej`).
    macro : str
        The macro's code.
    display : str
        The X display (a virtual one in the tests).
    gui : bool
        With ImageJ's window (``-macro``) instead of ``-batch``.
    env : dict, optional
        More environment variables (the deepij worker inherits them).
    """

    def __init__(self, imagej: Path, macro: str, *, display: str, gui: bool = False,
                 env: dict[str, str] | None = None, name: str = "macro") -> None:
        self.imagej = imagej
        path = imagej / f"{name}.ijm"
        path.write_text(macro, encoding="utf-8")
        home = imagej / "home"  # ImageJ's preferences stay in the test's folder
        home.mkdir(exist_ok=True)
        command = ["java", f"-Duser.home={home}", f"-Dplugins.dir={imagej}", "-jar", str(imagej / "ij.jar"),
                   "-macro" if gui else "-batch", str(path)]
        environment = {**os.environ, "DISPLAY": display, **(env or {})}
        environment.pop("JAVA_TOOL_OPTIONS", None)
        self.process = subprocess.Popen(command, cwd=imagej, env=environment, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """The deepij workers this ImageJ started (its child processes running ``deepij serve``)."""
        return [pid for pid in _children(self.pid) if b"serve" in _cmdline(pid)]

    def finish(self, timeout: float = 600) -> Finished:
        """Wait for ImageJ to end (a macro that never ends fails the test after ``timeout`` seconds)."""
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
            raise AssertionError(f"ImageJ did not end within {timeout} s:\n{out}\n{err}") from None
        return Finished(self.process.returncode, out, err)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def wait_for_file(path: Path, process: ImageJProcess, timeout: float = 600) -> None:
    """Wait until a macro writes ``path`` (a handshake); fails when ImageJ ends first."""
    end = time.monotonic() + timeout
    while not path.exists():
        if process.process.poll() is not None:
            out, err = process.process.communicate()
            raise AssertionError(f"ImageJ ended before writing {path}:\n{out}\n{err}")
        if time.monotonic() > end:
            raise AssertionError(f"no {path} within {timeout} s")
        time.sleep(0.05)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def macro_string(text: str | Path) -> str:
    """A path or text as an ImageJ macro string literal."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'
