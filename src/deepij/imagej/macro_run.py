"""One macro run's state, shared by the thread that runs it and the caller that watches it, and the small
operations on it: reading the macro and its time limit, the interpreters it runs (its own and the macros
run inside it by the commands it calls), stopping and interrupting them. :mod:`deepij.imagej.macros` runs
the macros with these.
"""

from __future__ import annotations

import math
import numbers
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from deepij.errors import ArgumentError, ArgumentTypeError
from deepij.imagej import answers as questions
from deepij.imagej import results
from deepij.imagej._java import jc, jstr, private_field
from deepij.imagej.macro_errors import error_line, is_cancel, macro_error

_MACRO_SUFFIXES = (".ijm", ".txt", ".mac", ".ijm.txt")


class LogCapture(Protocol):
    """What ImageJ logged so far (``Session.log_capture``)."""

    def text(self) -> str: ...


@dataclass
class Frame:
    """A macro running in ImageJ's interpreter: the run's own, or one a command it called runs inside it."""

    interp: Any = None
    code_lines: list[str] = field(default_factory=list)
    dialog_error: tuple[str, int | None, str | None] | None = None  # the first error box: text, line, code


@dataclass
class Run(Frame):
    """State one run shares between its macro thread and the watching caller."""

    java_thread: Any = None
    stop_error: BaseException | None = None
    stop_line: int | None = None
    nested: list[Frame] = field(default_factory=list)  # macros run inside this one, innermost last
    log: LogCapture | None = None
    messages: list[str] = field(default_factory=list)
    message_windows: set[int] = field(default_factory=set)
    answered_at: float | None = None
    earlier_windows: set[int] = field(default_factory=set)
    first_seen: dict[int, float] = field(default_factory=dict)
    answers: questions.Answers = field(default_factory=dict)
    answered: dict[str, str] = field(default_factory=dict)
    interpreting: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Outcome:
    """What the macro thread reports back."""

    value: str | None = None
    failure: BaseException | None = None
    error_message: str | None = None
    error_line: int | None = None
    result: results.MacroResult | None = None
    log_text: str | None = None


def check_timeout(timeout: Any, argument: str = "timeout") -> None:
    """A time limit is a number of seconds > 0, or None (ArgumentTypeError / ArgumentError otherwise, naming
    ``argument``).

    Examples
    --------
    >>> check_timeout(2.5), check_timeout(None)
    (None, None)
    >>> check_timeout(0, "step_timeout")
    Traceback (most recent call last):
    ...
    deepij.errors.ArgumentError: step_timeout: expected a number of seconds > 0 or None, found 0
    """
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise ArgumentTypeError(
            f"{argument}: expected a number of seconds > 0 or None, found {timeout!r} "
            f"({type(timeout).__name__})"
        )
    seconds = float(timeout)
    if math.isnan(seconds) or not seconds > 0:
        raise ArgumentError(f"{argument}: expected a number of seconds > 0 or None, found {timeout!r}")


def interrupt(run: Run) -> None:
    """Interrupt the macro thread while (and only while) the interpreter runs on it.

    Once the interpreter returned, an interrupt would hit ImageJ's cleaning instead (AWT prints the
    InterruptedException it gets there).
    """
    with run.lock:
        if run.interpreting and run.java_thread is not None:
            run.java_thread.interrupt()


def interpreter_ended(run: Run) -> None:
    """On the macro thread, when the interpreter returned: no interrupt is sent from now on, and the flag of
    one sent while stopping it is cleared."""
    with run.lock:
        run.interpreting = False
        jc.Thread.interrupted()


def raise_nested_error(frame: Frame, failure: BaseException | None, source: str | None) -> None:
    """The MacroError of a macro run inside another one, at its own line of its own file, if it failed: its
    first error box (an ``IJ.error`` box does not end the macro by itself), else the interpreter's error."""
    if frame.dialog_error is not None:
        text, line, code = frame.dialog_error
        raise macro_error(f"{text}: {code}" if code else text, line=line, source=source) from failure
    if failure is None:
        return
    message = jstr(frame.interp.getErrorMessage())
    if message is None and is_cancel(failure):
        return  # exit() or an answered cancel: the macro ended, as ImageJ ends it
    raise macro_error(message or str(failure), line=error_line(frame.interp), source=source) from failure


def log_text(run: Run) -> str | None:
    """The running macro's Log so far (None before its capture started)."""
    log = run.log
    return None if log is None else log.text()


def interpreters(run: Run) -> list[Any]:
    with run.lock:
        return [run.interp, *(frame.interp for frame in run.nested)]


def raise_stop_flag(*interps: Any) -> None:
    """Make the running interpreter(s) finish after the current statement, without error boxes."""
    interpreters = {id(i): i for i in (*interps, jc.Interpreter.getInstance()) if i is not None}
    for each in interpreters.values():
        each.setIgnoreErrors(True)  # no further error boxes from a macro being stopped
        # `done` is the interpreter's own stop flag (what its abort sets); it is package-private
        private_field("ij.macro.Interpreter", "done").setBoolean(each, True)


def read_macro(macro: str | Path) -> tuple[str, str | None]:
    """(code, source file or None) from macro code or a path to a .ijm/.txt file."""
    if isinstance(macro, Path) or (isinstance(macro, str) and _looks_like_path(macro)):
        path = Path(macro).expanduser()
        if not path.is_file():
            raise ArgumentError(
                f"macro: file {str(path)!r} does not exist (expected macro code or the path of a .ijm file)"
            )
        raw = path.read_bytes()
        try:
            return raw.decode("utf-8"), str(path)
        except UnicodeDecodeError:
            return raw.decode("latin-1"), str(path)  # ImageJ's own default for old macro files
    if not isinstance(macro, str):
        raise ArgumentTypeError(f"macro: expected macro code (str) or a path, found {type(macro).__name__}")
    return macro, None


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and ";" not in text and text.strip().lower().endswith(_MACRO_SUFFIXES)


def completed(run: Run, outcome: Outcome) -> bool:
    if run.stop_error is not None or run.dialog_error is not None or outcome.error_message is not None:
        return False
    return outcome.failure is None or is_cancel(outcome.failure)
