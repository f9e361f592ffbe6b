"""Windows ImageJ opens while a macro runs: error boxes, messages, and dialogs waiting for a user.

Under a (virtual) display nobody can click these, so deepij reads and answers them itself:

- ``Macro Error`` / ``No Image`` boxes: the macro failed; the text (message, line) becomes a MacroError.
- message boxes (``showMessage``, ``exit("...")``, errors of commands): answered with OK, as ImageJ does
  when it runs headless; their text is kept in the result's ``messages``.
- the ``Exception`` window ImageJ opens when a command throws: the run fails with the stack trace.
- anything that waits for input (``waitForUser``, ``Dialog.show``, ``getString``, file choosers, yes/no
  questions): the macro is stopped and the dialog cancelled, so the caller gets an error instead of a hang.

This module only inspects and answers windows; :mod:`deepij.imagej.macros` decides what to do.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deepij.imagej._java import jc, jstr, private_field

_log = logging.getLogger("deepij.imagej")

ERROR = "error"
MESSAGE = "message"
EXCEPTION = "exception"
INPUT = "input"

_ERROR_TITLES = {"Macro Error", "No Image"}
_MESSAGE_CLASSES = {"ij.gui.MessageDialog", "ij.gui.HTMLDialog"}
_ERROR_HEAD = re.compile(r" in line \d+[ \t]*(\n|$)")
_LINE = re.compile(r"(?P<message>.*?) in line (?P<line>\d+)[^\n]*(?P<rest>.*)", re.DOTALL)


@dataclass(frozen=True)
class OpenDialog:
    """A window that needs an answer: its kind (:data:`ERROR`, :data:`MESSAGE`...), title, text, window."""

    kind: str
    title: str
    text: str
    window: Any

    def error_parts(self) -> tuple[str, int | None, str | None]:
        """(message, line, code of the line) of a ``Macro Error`` box.

        ImageJ writes ``"<message> in line <n>\n(called from ...)\n \n<code with the token marked>"``; the
        message itself may span lines.
        """
        match = _LINE.match(self.text)
        if match is None:
            return self.text.strip(), None, None
        rest = [part.strip() for part in match["rest"].split("\n")]
        code = next((part for part in reversed(rest) if part and not part.startswith("(called from")), None)
        return " ".join(match["message"].split()), int(match["line"]), code


def pending_dialogs() -> list[OpenDialog]:
    """Every visible window that needs an answer, classified. Image, table and log windows are left out."""
    found = []
    _forget_closed()
    for window in jc.Window.getWindows():
        if not window.isShowing() or _is_answered(window):
            continue
        kind = _classify(window)
        if kind is not None:
            found.append(OpenDialog(kind, jstr(_title(window)) or "", window_text(window), window))
    return found


def any_showing() -> bool:
    """True while some window that needs an answer is on screen (answered or not)."""
    return any(w.isShowing() and _classify(w) is not None for w in jc.Window.getWindows())


def blocked_in_dialog(thread: Any) -> bool:
    """True when ``thread`` waits inside a dialog's show(): a modal loop, or waitForUser's wait."""
    for frame in list(thread.getStackTrace())[:16]:
        where = (jstr(frame.getClassName()), jstr(frame.getMethodName()))
        if where in (("java.awt.WaitDispatchSupport", "enter"), ("ij.gui.WaitForUserDialog", "show")):
            return True
    return False


def _classify(window: Any) -> str | None:
    class_name = jstr(window.getClass().getName())
    title = jstr(_title(window)) or ""
    if isinstance(window, jc.TextWindow):
        return EXCEPTION if title == "Exception" else None
    if not isinstance(window, jc.Dialog):
        return None
    if class_name in _MESSAGE_CLASSES:
        return MESSAGE
    if isinstance(window, jc.GenericDialog) and (title in _ERROR_TITLES or _is_error_text(window)):
        # The title alone is not enough: another thread can still read it as null for a moment (it is set
        # without a lock), while the text, added under AWT's tree lock, is always there once it shows.
        return ERROR
    # GenericDialog covers the non-blocking kind (Dialog.createNonBlocking), which is not modal but waits too
    if isinstance(window, jc.WaitForUserDialog | jc.GenericDialog) or window.isModal():
        return INPUT
    return None


def _is_error_text(window: Any) -> bool:
    """ImageJ's error box says "<message> in line <n>" (see :meth:`OpenDialog.error_parts`)."""
    return _ERROR_HEAD.search(window_text(window)) is not None


def _title(window: Any) -> Any:
    return window.getTitle() if hasattr(window, "getTitle") else None


def window_text(window: Any) -> str:
    """The text a window shows: labels, text fields and ImageJ's multi-line labels, top to bottom."""
    parts: list[str] = []
    _collect_text(window, parts)
    return "\n".join(p for p in parts if p)


def _collect_text(component: Any, parts: list[str]) -> None:
    if isinstance(component, jc.MultiLineLabel):
        # ImageJ keeps the lines in a package-private field and offers no getter
        lines = private_field("ij.gui.MultiLineLabel", "lines").get(component)
        parts.append("\n".join(jstr(line) for line in lines) if lines is not None else "")
    elif isinstance(component, jc.TextWindow):
        parts.append(jstr(component.getTextPanel().getText()) or "")
    elif isinstance(component, jc.Label | jc.TextComponent | jc.JLabel | jc.JTextComponent):
        parts.append(jstr(component.getText()) or "")
    elif isinstance(component, jc.Container):
        for child in component.getComponents():
            _collect_text(child, parts)


def answer_ok(dialog: OpenDialog) -> None:
    """Close a message or error box as its OK button would."""
    _answer(dialog, _dispose)


def cancel(dialog: OpenDialog) -> None:
    """Cancel a dialog the way its Cancel button (or the window's close box) would."""
    _answer(dialog, _cancel_now)


def dismiss(dialog: OpenDialog) -> None:
    """OK for a message or error box, Cancel for anything else."""
    if dialog.kind in (MESSAGE, ERROR):
        answer_ok(dialog)
    else:
        cancel(dialog)


def close_all(wait: float = 2.0) -> None:
    """Answer every dialog still open (used when cleaning up after a run) and wait until they are gone."""
    deadline = time.monotonic() + wait
    while True:
        for dialog in pending_dialogs():
            dismiss(dialog)
        if not _answered or time.monotonic() > deadline:
            return
        time.sleep(0.01)
        _forget_closed()


def window_key(window: Any) -> int:
    """A number that tells windows apart while they exist (Java's identity hash)."""
    return int(jc.System.identityHashCode(window))


# Answers run on the AWT event thread, one at a time: two threads disposing one window at once can leave one
# of them waiting forever (the second dispose's event is dropped with the window's events). A window that is
# still showing a while after its answer (its answer raced with its own showing) is answered again.
_answered: dict[int, float] = {}
_answered_lock = threading.Lock()
_ANSWER_AGAIN_AFTER_S = 0.3


def _answer(dialog: OpenDialog, action: Callable[[Any], None]) -> None:
    key = window_key(dialog.window)
    with _answered_lock:
        if time.monotonic() - _answered.get(key, -math.inf) < _ANSWER_AGAIN_AFTER_S:
            return
        _answered[key] = time.monotonic()
    window = dialog.window
    if bool(jc.EventQueue.isDispatchThread()):
        action(window)
    else:
        jc.EventQueue.invokeLater(_runnable(lambda: action(window)))


def _is_answered(window: Any) -> bool:
    answered = _answered.get(window_key(window))
    return answered is not None and time.monotonic() - answered < _ANSWER_AGAIN_AFTER_S


def _forget_closed() -> None:
    showing = {window_key(w) for w in jc.Window.getWindows() if w.isShowing()}
    with _answered_lock:
        for key in [k for k in _answered if k not in showing]:
            del _answered[key]


def _dispose(window: Any) -> None:
    window.dispose()


def _cancel_now(window: Any) -> None:
    if isinstance(window, jc.WaitForUserDialog):
        from jpype import JClass

        window.actionPerformed(JClass("java.awt.event.ActionEvent")(window, 1001, " Cancel "))
        return  # marks it cancelled, wakes the waiting macro and disposes it
    if isinstance(window, jc.TextWindow):
        window.close(False)
        return
    event = jc.WindowEvent(window, jc.WindowEvent.WINDOW_CLOSING)
    for listener in window.getWindowListeners():
        listener.windowClosing(event)  # GenericDialog/YesNoCancelDialog record a cancel here
    if window.isDisplayable():
        window.dispose()


def _runnable(action: Callable[[], None]) -> Any:
    from jpype import JImplements, JOverride

    @JImplements("java.lang.Runnable")
    class _Action:
        @JOverride
        def run(self) -> None:
            try:
                action()
            except Exception as error:  # on the event thread: report, never break AWT
                _log.warning("answering an ImageJ dialog failed: %s", error)

    return _Action()
