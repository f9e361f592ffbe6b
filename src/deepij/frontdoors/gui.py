"""``deepij gui``: ImageJ's own window started from Python, with Plugins > deepij served in this process.

The window is the in-process ImageJ of :func:`deepij.imagej` (ImageJ 1.x, or a local Fiji's with ``fiji=``),
shown on the user's display: every ImageJ command, the macro editor and the recorder are there, and
Plugins > deepij holds the commands of deepij's ImageJ plugin (DeepImageJ Run, DeepImageJ Validate, Install
Model, Test Model). They are the plugin's own classes (``jars/src/deepij/plugin``, on the JVM's class path),
so the dialog and the macro options are the ones a Fiji with the plugin installed has: one implementation.
Where the plugin in a user's ImageJ starts a ``deepij serve`` child process, here its worker is this
process: an :class:`InProcessWorker` runs :class:`deepij.frontdoors.serve.Server`'s operations on a thread,
so a model stays loaded between runs and pixels cross through the same shared files.

There is exactly one ``DeepImageJ Run`` in the window: the plugin's. The served command that deepij's own
macro runs use (:mod:`deepij.frontdoors.deepimagej_run`) is taken out of this session, so a macro from the
editor, the menu and the dialog all run the plugin's command, which stops a macro with deepij's message in
ImageJ's error box and records its macro line. The session's other served commands (``DeepImageJ StarDist``,
``DeepImageJ Cellpose``, ``glasbey``...) stay.

No virtual display: the window is for a person to see, so without ``DISPLAY`` it is an error.

Examples
--------
``deepij.gui()`` from Python, ``deepij gui`` (or ``deepij gui --fiji ~/Fiji.app``) from the shell.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from deepij.errors import ArgumentError, ImageJError

_log = logging.getLogger("deepij.gui")
#: How often the waiting thread looks whether the window was closed (s).
_POLL_S = 0.25


def gui(fiji: str | os.PathLike[str] | None = None, *, macro: str | os.PathLike[str] | None = None) -> int:
    """Show ImageJ's window with Plugins > deepij and return when it is closed (0).

    Parameters
    ----------
    fiji : path, optional
        A Fiji.app folder: its window (through pyimagej) instead of ImageJ 1.x's (default: ``DEEPIJ_FIJI``).
    macro : path, optional
        A macro file run in the window once it is up, as ImageJ's ``-macro`` runs one.

    Returns
    -------
    int
        0 once the window was closed (File > Quit, or its close box).

    Raises
    ------
    ImageJError
        No display (``DISPLAY`` not set), or an ImageJ already running in this process without one.
    ArgumentError
        ``macro`` is not a file.
    """
    script = _macro_file(macro)
    _require_display()
    session = _session(fiji)
    worker = InProcessWorker.start()
    try:
        window = _show_window(session)
        names = install_menu()
        _give_commands_to_plugin(session, names)
        if script is not None:
            import jpype

            jpype.JClass("ij.macro.MacroRunner")(jpype.JClass("java.io.File")(str(script)))
        _wait_closed(window)
    finally:
        worker.stop()
    return 0


# ------------------------------------------------------------------------------------------- starting
def _macro_file(macro: str | os.PathLike[str] | None) -> Path | None:
    if macro is None:
        return None
    path = Path(macro).expanduser()
    if not path.is_file():
        raise ArgumentError(f"macro={str(macro)!r}: no such file (expected an ImageJ macro file to run)")
    return path.resolve()


def _require_display() -> None:
    if not os.environ.get("DISPLAY"):
        raise ImageJError(
            "deepij gui shows ImageJ's window on your screen, but there is no display (DISPLAY is not set): "
            "run it in a desktop session, or over `ssh -X`. deepij starts no virtual display (Xvfb) for a "
            "window nobody could see; `deepij macro` and `deepij run` work without a display"
        )


def _session(fiji: str | os.PathLike[str] | None) -> Any:
    """The process's ImageJ on the real display (never a virtual one)."""
    from deepij.imagej import get_session

    session = get_session(fiji=fiji, virtual_display=False)
    if session.headless or session.virtual_display is not None:
        where = "headless" if session.headless else f"on a virtual display ({session.display})"
        raise ImageJError(
            f"deepij gui: ImageJ already runs in this process {where}; its window cannot be shown (a JVM "
            "cannot restart within one process): call deepij.gui() in a new Python process"
        )
    return session


def _show_window(session: Any) -> Any:
    """ImageJ's main window, shown (the session's is hidden; Fiji's comes from its user interface)."""
    import jpype

    if session.gateway is not None:
        session.gateway.ui().showUI()
    instance = jpype.JClass("ij.IJ").getInstance()
    if instance is None:
        raise ImageJError("deepij gui: ImageJ has no main window to show (IJ.getInstance() is null)")
    if not instance.isShowing():
        instance.pack()
        where = instance.getPreferredLocation()
        instance.setLocation(where.x, where.y)
        instance.setVisible(True)
    return instance


def install_menu() -> dict[str, str]:
    """Put the plugin's commands under Plugins > deepij (once); their menu names (with the plugin call each
    runs), as ``deepij plugin install`` names them: ``deepij Run`` when deepImageJ's own plugin has
    ``DeepImageJ Run``.

    Commands a ``deepij_.jar`` in ImageJ's plugins folder put there already are left as they are.
    """
    import jpype

    from deepij.frontdoors.plugin_install import menu_commands

    menus = jpype.JClass("ij.Menus")
    table = menus.getCommands()
    owner = table.get("DeepImageJ Run") if table is not None else None
    deepimagej = owner is not None and not str(owner).startswith("deepij.plugin.")
    names = {}
    for name, plugin in menu_commands(deepimagej_present=deepimagej):
        names[name] = plugin
        if table is None or table.get(name) is None:
            menus.add(f"Plugins>deepij>{name}", plugin)
    return names


def _give_commands_to_plugin(session: Any, names: dict[str, str]) -> None:
    """The plugin's commands run as the window's; deepij's served ones of the same name step aside, and
    closing the window quits (deepij's own sessions refuse Quit)."""
    session.commands.unregister("Quit")
    served = ("DeepImageJ Run", "DeepImageJ Validate", "DeepImageJ StarDist", "DeepImageJ Cellpose")
    for command in (*served, *names):
        session.commands.unregister(command)


def _wait_closed(window: Any) -> None:
    """Until ImageJ quit (its window disposed); a quit the user cancelled keeps waiting."""
    while window.isDisplayable():
        time.sleep(_POLL_S)


# ------------------------------------------------------------------------------------ the worker
class InProcessWorker:
    """The plugin's worker in this process: :class:`~deepij.frontdoors.serve.Server` on the requests of a
    ``deepij.plugin.InProcessLink`` (the plugin's ``Worker`` uses it instead of a child process).

    A thread takes the plugin's request lines from the link (polling, so no ImageJ thread ever calls into
    Python) and hands them to :func:`~deepij.frontdoors.serve.serve_lines`, as the stdio worker does with
    its standard input.
    """

    def __init__(self) -> None:
        import jpype

        from deepij.frontdoors.serve import Server

        self.server = Server(self._send)
        self.link = jpype.JClass("deepij.plugin.InProcessLink")(str(self.server.files.folder))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="deepij-gui-worker", daemon=True)

    @classmethod
    def start(cls) -> InProcessWorker:
        """A worker, serving, and given to the plugin (``Worker.use``)."""
        import jpype

        worker = cls()
        worker._thread.start()
        jpype.JClass("deepij.plugin.Worker").use(worker.link)
        return worker

    def _send(self, message: dict[str, Any]) -> None:
        self.link.answer(json.dumps(message, allow_nan=False, default=str))

    def _requests(self) -> Any:
        while not self._stopping.is_set():
            line = self.link.nextRequest(int(_POLL_S * 1000))
            if line is not None:
                yield str(line)

    def _serve(self) -> None:
        from deepij.frontdoors.serve import serve_lines

        try:
            serve_lines(self.server, self._requests())
        except Exception:  # the window goes on; the plugin's next call says the worker stopped
            _log.exception("deepij gui: the in-process worker stopped")
            self.link.end()

    def stop(self) -> None:
        """Stop serving, tell the plugin, release the models and the shared files."""
        self._stopping.set()
        self._thread.join(timeout=5 * _POLL_S)
        self.link.end()
        self.server.close()
