"""Windows ImageJ opens while a macro runs: error boxes, messages, and dialogs waiting for a user.

Under a (virtual) display nobody can click these, so deepij reads and answers them itself:

- error boxes: the interpreter's ``Macro Error`` / ``No Image``, and every box ImageJ shows through
  ``IJ.error`` (``File not found``, ``No window with the title``, an Opener or reader failure) or a command
  shows with an error title: the macro failed, the box's text becomes a MacroError;
- message boxes the macro's author asked for (``showMessage``, ``exit("...")``, whatever their title):
  answered with OK, their text kept in the result's ``messages``;
- the ``Exception`` window ImageJ opens when a command throws: the run fails with the stack trace;
- anything that waits for input (``getString``, ``Dialog.show``, ``getDirectory``, ``File.openDialog``,
  ``getBoolean``, ``waitForUser``): answered from the run's ``answers`` when they cover it
  (:mod:`deepij.imagej.answers`), otherwise the macro is stopped and the dialog cancelled.

Who opened a box decides what it is, not its title: the macro thread's stack shows whether it waits in the
box because of ``IJ.error`` or because of the macro's own ``showMessage``. A dialog counts as waiting for a
user only when the macro thread waits in it (or it stays up for :data:`INPUT_GRACE_S`): a dialog that a
command builds while it runs WITH options is never shown (ImageJ reads the options instead), and a window
caught half-built or half-closed is never blamed on the macro.

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

#: How long a dialog that the macro thread does not (yet) wait in must stay up before it counts as waiting
#: for a user (one opened by another thread that the macro waits on).
INPUT_GRACE_S = 1.0

_ERROR_TITLES = {"Macro Error", "No Image"}
_MESSAGE_CLASSES = {"ij.gui.MessageDialog", "ij.gui.HTMLDialog"}
_ERROR_HEAD = re.compile(r" in line \d+[ \t]*(\n|$)")
_LINE = re.compile(r"(?P<message>.*?) in line (?P<line>\d+)[^\n]*(?P<rest>.*)", re.DOTALL)
#: Frames that say who asked for a message box: ImageJ's error path, or the macro's author.
_ERROR_CALL = ("ij.IJ", "error")
_AUTHOR_CALLS = {("ij.macro.Functions", "showMessage"), ("ij.macro.Functions", "exit")}
#: Frames of a thread that waits in a dialog (a modal loop, a chooser run on the event thread...).
_WAITING_CALLS = {
    ("java.awt.Dialog", "show"), ("java.awt.EventQueue", "invokeAndWait"),
    ("ij.gui.WaitForUserDialog", "show"), ("ij.gui.NonBlockingGenericDialog", "showDialog"),
}

Frame = tuple[str, str]


@dataclass(frozen=True)
class OpenDialog:
    """A window that needs an answer: its kind (:data:`ERROR`, :data:`MESSAGE`...), title, text, window.

    ``waited_on`` is True when the macro thread waits in this window.
    """

    kind: str
    title: str
    text: str
    window: Any
    waited_on: bool = False

    def error_parts(self) -> tuple[str, int | None, str | None]:
        """(message, line, code of the line) of an error box.

        The interpreter writes ``"<message> in line <n>\n(called from ...)\n \n<code with the token
        marked>"``; the message itself may span lines. Other error boxes are just the message.
        """
        match = _LINE.match(self.text)
        if match is None:
            return " ".join(self.text.split()), None, None
        rest = [part.strip() for part in match["rest"].split("\n")]
        code = next((part for part in reversed(rest) if part and not part.startswith("(called from")), None)
        return " ".join(match["message"].split()), int(match["line"]), code


def pending_dialogs(macro_thread: Any = None) -> list[OpenDialog]:
    """Every visible window that needs an answer, classified. Image, table and log windows are left out.

    ``macro_thread`` (the Java thread running the macro) tells message boxes the macro's author asked for
    from error boxes, and dialogs the macro waits in from windows that merely exist.
    """
    found = []
    _forget_closed()
    frames: list[Frame] | None = None
    for window in jc.Window.getWindows():
        if not window.isShowing() or _is_answered(window):
            continue
        if frames is None:
            frames = stack_frames(macro_thread)
        kind = _classify(window, frames)
        if kind is not None:
            found.append(OpenDialog(kind, jstr(_title(window)) or "", window_text(window), window,
                                    waited_on=kind == INPUT and _waits_in(window, frames)))
    return found


def any_showing() -> bool:
    """True while some window that needs an answer is on screen (answered or not)."""
    return any(w.isShowing() and _classify(w, []) is not None for w in jc.Window.getWindows())


def stack_frames(thread: Any, depth: int = 40) -> list[Frame]:
    """(class, method) of the innermost ``depth`` frames of a Java thread ([] for None)."""
    if thread is None:
        return []
    return [(jstr(f.getClassName()) or "", jstr(f.getMethodName()) or "")
            for f in list(thread.getStackTrace())[:depth]]


def blocked_in_dialog(thread: Any) -> bool:
    """True when ``thread`` waits inside a dialog's show(): a modal loop, or waitForUser's wait."""
    for where in stack_frames(thread, 16):
        if where in (("java.awt.WaitDispatchSupport", "enter"), ("ij.gui.WaitForUserDialog", "show")):
            return True
    return False


def _classify(window: Any, frames: list[Frame]) -> str | None:
    class_name = jstr(window.getClass().getName()) or ""
    title = jstr(_title(window)) or ""
    if isinstance(window, jc.TextWindow):
        return EXCEPTION if title == "Exception" else None
    if not isinstance(window, jc.Dialog):
        return None
    if class_name in _MESSAGE_CLASSES:
        return _box_kind(class_name, title, window, frames)
    if isinstance(window, jc.GenericDialog):
        if title in _ERROR_TITLES or _is_error_text(window):
            # The title alone is not enough: another thread can still read it as null for a moment (it is
            # set without a lock), while the text, added under AWT's tree lock, is there once it shows.
            return ERROR
        if bool(private_field("ij.gui.GenericDialog", "macro").getBoolean(window)):
            return None  # built by a command running with options: ImageJ reads them, nobody is asked
    # GenericDialog covers the non-blocking kind (Dialog.createNonBlocking), which is not modal but waits too
    if isinstance(window, jc.WaitForUserDialog | jc.GenericDialog) or window.isModal():
        return INPUT
    return None


def _box_kind(class_name: str, title: str, window: Any, frames: list[Frame]) -> str:
    """ERROR or MESSAGE for a message box, from who asked for it."""
    if (class_name, "<init>") in frames:  # the macro thread shows this box: its stack says why
        for where in frames:
            if where == _ERROR_CALL:
                return ERROR
            if where in _AUTHOR_CALLS:
                return MESSAGE
        return ERROR if "error" in title.lower() else MESSAGE  # a command's own box
    # Shown by another thread: IJ.error keeps the text it shows; otherwise only the title can tell.
    last_error = jstr(private_field("ij.IJ", "lastErrorMessage").get(None))
    if last_error is not None and " ".join(last_error.split()) == " ".join(window_text(window).split()):
        return ERROR
    return ERROR if "error" in title.lower() else MESSAGE


def _waits_in(window: Any, frames: list[Frame]) -> bool:
    """True when the macro thread (``frames``) waits in a dialog, and in this one where that can be told."""
    if not any(where in _WAITING_CALLS for where in frames):
        return False
    if isinstance(window, jc.NonBlockingGenericDialog):
        return ("ij.gui.NonBlockingGenericDialog", "showDialog") in frames
    if isinstance(window, jc.GenericDialog):
        # showDialog holds its thread only in a modal dialog: a non-modal one up meanwhile (a command's own
        # window) is not the one the thread waits in, even while a command's dialog reads its options
        return bool(window.isModal()) and any(
            where[1] == "showDialog" and where[0].startswith("ij.gui.") for where in frames
        )
    if isinstance(window, jc.WaitForUserDialog):
        return ("ij.gui.WaitForUserDialog", "show") in frames
    class_name = jstr(window.getClass().getName()) or ""
    if class_name.startswith("ij."):
        return (class_name, "<init>") in frames or any(where[0] == class_name for where in frames)
    return True  # a Swing or AWT chooser: run on the event thread while the macro thread waits for it


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
        parts.append("\n".join(jstr(line) or "" for line in lines) if lines is not None else "")
    elif isinstance(component, jc.TextWindow):
        parts.append(jstr(component.getTextPanel().getText()) or "")
    elif isinstance(component, jc.Label | jc.TextComponent | jc.JLabel | jc.JTextComponent):
        parts.append(jstr(component.getText()) or "")
    elif isinstance(component, jc.Container):
        for child in component.getComponents():
            _collect_text(child, parts)


def answer_ok(dialog: OpenDialog) -> None:
    """Close a message or error box as its OK button would."""
    act(dialog, _dispose)


def cancel(dialog: OpenDialog) -> None:
    """Cancel a dialog the way its Cancel button (or the window's close box) would."""
    act(dialog, _cancel_now)


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


def act(dialog: OpenDialog, action: Callable[[Any], None]) -> None:
    """Run ``action(window)`` on the AWT event thread, once per window (again if it is still up later)."""
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
