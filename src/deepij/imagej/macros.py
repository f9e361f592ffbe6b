"""Running ImageJ macros: one at a time, watched, from a clean state, never hanging the caller.

Each run goes like this (on the session's macro thread, while the calling thread watches):

1. ImageJ is reset to a clean state (no images, tables, ROIs, log; settings as at start-up);
2. the input images are opened in batch mode, the last one current;
3. the macro runs in ImageJ's own interpreter (``ij.macro.Interpreter``);
4. everything it left open is converted (images -> xarray, tables -> DataFrame, the log, its return value);
5. ImageJ is reset again.

Meanwhile the caller answers the windows nobody could click (see :mod:`deepij.imagej.dialogs`) and enforces
the time limit. A macro that fails, waits for a user or runs too long is stopped: its interpreter is told to
finish, its dialogs are cancelled, and if its thread still does not return, the thread is stopped or given up.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import DeepijError, HeadlessError, ImageJError, MacroError, MacroTimeoutError
from deepij.imagej import dialogs, results, state
from deepij.imagej._java import jc, jstr, private_field
from deepij.imagej.commands import format_options
from deepij.imagej.worker import Worker

if TYPE_CHECKING:
    from deepij.imagej.session import Session

#: How long a stopped macro gets to wind down before its thread is stopped, then given up.
STOP_GRACE_S = 5.0
#: How long after answering a dialog a macro thread may still wait in it before it is woken up.
_WAKE_AFTER_S = 0.3
_MACRO_SUFFIXES = (".ijm", ".txt", ".mac", ".ijm.txt")


@dataclass
class _Run:
    """State one run shares between its macro thread and the watching caller."""

    interp: Any = None
    java_thread: Any = None
    stop_error: BaseException | None = None
    stop_line: int | None = None
    dialog_error: tuple[str, int | None, str | None] | None = None
    messages: list[str] = field(default_factory=list)
    message_windows: set[int] = field(default_factory=set)
    answered_at: float | None = None
    earlier_windows: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Outcome:
    """What the macro thread reports back."""

    value: str | None = None
    failure: BaseException | None = None
    error_message: str | None = None
    error_line: int | None = None
    result: results.MacroResult | None = None


class MacroRunner:
    """Runs macros for one session (see the module docstring)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._lock = threading.RLock()
        self._worker: Worker | None = None
        self._active: _Run | None = None
        self.settings: state.Settings | None = None

    # ----------------------------------------------------------------------------------------- public
    def run(self, macro: str | Path, image: Any = None, args: Any = None, timeout: float | None = None
            ) -> results.MacroResult:
        """See :meth:`deepij.imagej.session.Session.run_macro`."""
        code, source = read_macro(macro)
        argument = format_options(args)
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout: expected a number of seconds > 0 or None, found {timeout!r}")
        if self._worker is not None and self._worker.is_current() and self._active is not None:
            return self._run_nested(code, source, image, argument)
        with self._lock:
            inputs = self._session.prepare_inputs(image)
            run = _Run(earlier_windows={dialogs.window_key(w) for w in jc.Window.getWindows()})
            self._active = run
            try:
                future = self._current_worker().submit(lambda: self._execute(run, code, inputs, argument))
                outcome = self._watch(run, future, timeout)
            finally:
                self._active = None
            return self._conclude(run, outcome, source)

    def fail_current(self, error: BaseException) -> bool:
        """Stop the running macro because of ``error`` (a command handler failed). False when none runs."""
        run = self._active
        if run is None:
            return False
        self._stop(run, error)
        return True

    @property
    def in_macro_thread(self) -> bool:
        return self._worker is not None and self._worker.is_current()

    # ----------------------------------------------------------------------------------------- the run
    def _current_worker(self) -> Worker:
        if self._worker is None or not self._worker.alive:
            self._worker = Worker()
        return self._worker

    def _execute(self, run: _Run, code: str, inputs: list[Any], argument: str) -> _Outcome:
        """On the macro thread: clean, open inputs, run, collect, clean."""
        run.java_thread = jc.Thread.currentThread()
        headless = self._session.headless
        state.reset(self.settings)
        try:
            self._session.open_inputs(inputs)
            run.interp = jc.Interpreter()
            outcome = _Outcome()
            with self._session.log_capture() as log:
                try:
                    outcome.value = jstr(run.interp.run(code, argument))
                except Exception as error:  # Java exceptions arrive as Python exceptions (JException)
                    outcome.failure = error
            outcome.error_message = jstr(run.interp.getErrorMessage())
            outcome.error_line = _error_line(run.interp)
            if _completed(run, outcome):
                outcome.result = results.build_result(outcome.value, log.text(), run.messages, headless)
            return outcome
        finally:
            state.reset(self.settings)
            jc.Thread.interrupted()  # clears an interrupt sent while stopping the run (see _wind_down)

    def _watch(self, run: _Run, future: Future[_Outcome], timeout: float | None) -> _Outcome:
        """On the caller's thread: answer dialogs, enforce the time limit, give up on a stuck thread."""
        started = time.monotonic()
        poll = 0.002
        while True:
            try:
                return future.result(timeout=poll)
            except FutureTimeout:
                poll = min(poll * 2, 0.05)
            self._answer_dialogs(run)
            if timeout is not None and time.monotonic() - started > timeout:
                self._stop(run, MacroTimeoutError(f"the macro ran past its time limit of {timeout:g} s"))
            if run.stop_error is not None:
                return self._wind_down(run, future)

    def _wind_down(self, run: _Run, future: Future[_Outcome]) -> _Outcome:
        """Wait for a stopped macro to end; wake its thread if it sleeps, stop it if it does not return."""
        started = time.monotonic()
        next_wake = started + 0.1
        while time.monotonic() - started < STOP_GRACE_S:
            self._answer_dialogs(run)
            try:
                return future.result(timeout=0.02)
            except FutureTimeout:
                pass
            # The interpreter rewrites its stop flag on every token it reads, so one write can be lost:
            # ImageJ's own abort writes it repeatedly too.
            _raise_stop_flag(run.interp)
            if run.java_thread is not None and time.monotonic() >= next_wake:
                # A macro asleep in Java (wait(ms), a dialog's wait() whose wake-up raced with its own start)
                # never sees the stop flag: an interrupt wakes it. Its thread clears the flag afterwards.
                run.java_thread.interrupt()
                next_wake = time.monotonic() + 0.5
        if run.java_thread is not None:
            # Last resort for Java code that ignores both (Thread.stop still works on Java 17).
            run.java_thread.stop()
            try:
                return future.result(timeout=2.0)
            except FutureTimeout:
                pass
            except Exception as error:  # the thread came back (with the ThreadDeath): keep using it
                return _Outcome(failure=error)
        # The thread is lost: leave it asleep, clean ImageJ from here, use a fresh thread next time.
        self._worker = None
        state.reset(self.settings)
        return _Outcome(failure=run.stop_error)

    def _answer_dialogs(self, run: _Run) -> None:
        self._wake_from_vanished_dialog(run)
        for dialog in dialogs.pending_dialogs():
            run.answered_at = time.monotonic()
            if dialogs.window_key(dialog.window) in run.earlier_windows:
                # left over from an earlier run (AWT can bring a closed dialog back): not this macro's doing
                dialogs.dismiss(dialog)
                continue
            if dialog.kind == dialogs.ERROR:
                with run.lock:
                    if run.dialog_error is None:
                        run.dialog_error = dialog.error_parts()
                dialogs.answer_ok(dialog)
            elif dialog.kind == dialogs.MESSAGE:
                key = dialogs.window_key(dialog.window)
                if key not in run.message_windows:  # a box answered twice is one message
                    run.message_windows.add(key)
                    run.messages.append(dialog.text)
                dialogs.answer_ok(dialog)
            elif dialog.kind == dialogs.EXCEPTION:
                trace = dialog.text.strip()
                self._stop(run, MacroError(f"an ImageJ command threw a Java exception:\n{trace}"))
                dialogs.cancel(dialog)
            else:
                detail = f": {dialog.text.strip()!r}" if dialog.text.strip() else ""
                kind = jstr(dialog.window.getClass().getSimpleName())
                self._stop(run, MacroTimeoutError(
                    f"the macro waits for user input that will never come: {kind} {dialog.title!r}{detail}; "
                    "deepij cancelled it (macros run unattended: pass values as arguments instead)"
                ))
                dialogs.cancel(dialog)

    def _wake_from_vanished_dialog(self, run: _Run) -> None:
        """Wake a macro thread left waiting in a dialog that is already gone.

        AWT loses the wake-up of a modal dialog closed right after it appeared (its show() then waits for
        ever), and waitForUser can miss its notify the same way. An interrupt ends such a wait; it is sent
        only when nothing is on screen any more and the thread still waits in a dialog's show().
        """
        if run.java_thread is None or run.answered_at is None:
            return
        if time.monotonic() - run.answered_at < _WAKE_AFTER_S or dialogs.any_showing():
            return
        if dialogs.blocked_in_dialog(run.java_thread):
            run.java_thread.interrupt()
            run.answered_at = time.monotonic()

    def _stop(self, run: _Run, error: BaseException) -> None:
        """Tell the interpreter to finish after the current statement; the first reason wins."""
        with run.lock:
            if run.stop_error is not None:
                return
            run.stop_error = error
            run.stop_line = _current_line(run.interp)
        _raise_stop_flag(run.interp)

    def _conclude(self, run: _Run, outcome: _Outcome, source: str | None) -> results.MacroResult:
        """The result, or the error that explains why there is none."""
        line = outcome.error_line
        if run.stop_error is not None:
            raise _with_line(run.stop_error, run.stop_line, source) from _cause(run.stop_error)
        if run.dialog_error is not None:
            message, dialog_line, code = run.dialog_error
            text = f"{message}: {code}" if code else message
            raise MacroError(text, line=dialog_line if dialog_line is not None else line, source=source)
        if outcome.error_message is not None:
            raise MacroError(outcome.error_message, line=line, source=source)
        if outcome.failure is not None and not _is_cancel(outcome.failure):
            raise _java_failure(outcome.failure, line, source) from outcome.failure
        if outcome.result is None:  # pragma: no cover - every other path above raised
            raise ImageJError("the macro ended without a result")
        return outcome.result

    # ----------------------------------------------------------------------------------------- nested
    def _run_nested(self, code: str, source: str | None, image: Any, argument: str) -> results.MacroResult:
        """A macro run from a command handler inside a running macro: inline, without cleaning anything."""
        before = set(state.open_image_ids())
        self._session.open_inputs(self._session.prepare_inputs(image), reset_batch=False)
        interp = jc.Interpreter()
        try:
            value = jstr(interp.run(code, argument))
        except Exception as error:
            message = jstr(interp.getErrorMessage())
            if message is None and _is_cancel(error):
                value = None
            else:
                raise MacroError(message or str(error), line=_error_line(interp), source=source) from error
        new_ids = set(state.open_image_ids()) - before
        current = jc.WindowManager.getCurrentImage()
        if current is not None:
            new_ids.add(int(current.getID()))
        return results.build_result(value, "", [], self._session.headless, only_ids=new_ids)


# --------------------------------------------------------------------------------------------- helpers
def _raise_stop_flag(interp: Any) -> None:
    """Make the running interpreter(s) finish after the current statement, without error boxes."""
    interpreters = {id(i): i for i in (interp, jc.Interpreter.getInstance()) if i is not None}
    for each in interpreters.values():
        each.setIgnoreErrors(True)  # no further error boxes from a macro being stopped
        # `done` is the interpreter's own stop flag (what its abort sets); it is package-private
        private_field("ij.macro.Interpreter", "done").setBoolean(each, True)


def read_macro(macro: str | Path) -> tuple[str, str | None]:
    """(code, source file or None) from macro code or a path to a .ijm/.txt file."""
    if isinstance(macro, Path) or (isinstance(macro, str) and _looks_like_path(macro)):
        path = Path(macro).expanduser()
        if not path.is_file():
            raise MacroError(f"macro file {str(path)!r} does not exist (expected macro code or a .ijm file)",
                             source=str(path))
        raw = path.read_bytes()
        try:
            return raw.decode("utf-8"), str(path)
        except UnicodeDecodeError:
            return raw.decode("latin-1"), str(path)  # ImageJ's own default for old macro files
    if not isinstance(macro, str):
        raise TypeError(f"macro: expected macro code (str) or a path, found {type(macro).__name__}")
    return macro, None


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and ";" not in text and text.strip().lower().endswith(_MACRO_SUFFIXES)


def _completed(run: _Run, outcome: _Outcome) -> bool:
    if run.stop_error is not None or run.dialog_error is not None or outcome.error_message is not None:
        return False
    return outcome.failure is None or _is_cancel(outcome.failure)


def _is_cancel(error: BaseException) -> bool:
    """ImageJ ends a macro by exit() (or an answered cancel) with RuntimeException("Macro canceled")."""
    if _java_name(error) != "java.lang.RuntimeException":
        return False
    return jstr(error.getMessage()) == "Macro canceled"  # type: ignore[attr-defined]


def _java_name(error: BaseException) -> str:
    """The Java class name of an exception that came out of Java ("" for a Python exception)."""
    get_class = getattr(error, "getClass", None)
    if get_class is None:
        return ""
    return jstr(get_class().getName()) or ""


def _error_line(interp: Any) -> int | None:
    """The line ImageJ reported the error on (kept in a package-private field), else the line it was at."""
    try:
        line = int(private_field("ij.macro.Interpreter", "lineNumber").getInt(interp))
    except Exception:
        line = 0
    return line if line > 0 else _current_line(interp)


def _current_line(interp: Any) -> int | None:
    if interp is None:
        return None
    try:
        line = int(interp.getLineNumber())
    except Exception:  # before the program is tokenized there is no line yet
        return None
    return line if line > 0 else None


def _with_line(error: BaseException, line: int | None, source: str | None) -> BaseException:
    """The error to raise for a stopped run, naming the macro line it stopped at.

    MacroError (and its time-out kind) and HeadlessError keep their type; anything else a command handler
    raised becomes a MacroError whose cause is the original exception.
    """
    if isinstance(error, MacroError):
        if error.line is not None or line is None:
            return error
        return type(error)(error.macro_message, line=line, source=source or error.source)
    if isinstance(error, HeadlessError):
        return type(error)(f"{error} ({source or 'macro'}, line {line})") if line is not None else error
    text = str(error) if isinstance(error, DeepijError) else f"{type(error).__name__}: {error}"
    return MacroError(f"a command handler failed: {text}", line=line, source=source)


def _cause(error: BaseException) -> BaseException | None:
    return error.__cause__ if isinstance(error, MacroError | HeadlessError) else error


def _java_failure(failure: BaseException, line: int | None, source: str | None) -> DeepijError:
    name = _java_name(failure) or type(failure).__name__
    if "HeadlessException" in name:
        return HeadlessError(
            f"{source or 'macro'}, line {line}: the macro needs a window or dialog, which a headless ImageJ "
            "cannot show (start deepij without headless=True)"
        )
    return MacroError(f"{name}: {failure}", line=line, source=source)
