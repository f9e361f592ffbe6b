"""Running ImageJ macros: one at a time, watched, from a clean state, never hanging the caller.

Each run goes like this (on the session's macro thread, while the calling thread watches):

1. ImageJ is reset to a clean state (no images, tables, ROIs, log; settings as at start-up);
2. the input images are opened in batch mode, the last one current, then the run's tables (``Results``
   and named tables);
3. the macro runs in ImageJ's own interpreter (``ij.macro.Interpreter``);
4. everything it left open is converted (images -> xarray, tables -> DataFrame, the log, its return value);
5. ImageJ is reset again.

Meanwhile the caller answers the windows nobody could click (see :mod:`deepij.imagej.dialogs`; questions the
run's ``answers`` cover: :mod:`deepij.imagej.answers`) and enforces the time limit. A macro that fails,
waits for a user or runs too long is stopped: its interpreter is told to
finish, its dialogs are cancelled, and if its thread still does not return, the thread is stopped or given up.
Python code a command handler runs for the macro is stopped too (:mod:`deepij.imagej.worker`). The Log can be
followed while the macro runs (``on_log``, :mod:`deepij.imagej.log_stream`).

A run's state and the small operations on it are in :mod:`deepij.imagej.macro_run`; its errors are made in
:mod:`deepij.imagej.macro_errors`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Protocol

from deepij.errors import (
    ArgumentError,
    ArgumentTypeError,
    HeadlessError,
    ImageJError,
    MacroError,
    MacroTimeoutError,
)
from deepij.imagej import answers as questions
from deepij.imagej import dialogs, results, state
from deepij.imagej._java import jc, jstr
from deepij.imagej.commands import format_options, handler_failure
from deepij.imagej.log_stream import LogStream
from deepij.imagej.macro_errors import (
    cause,
    code_of,
    current_line,
    error_line,
    is_cancel,
    java_failure,
    macro_error,
    stopped_error,
)
from deepij.imagej.macro_run import (
    Frame,
    LogCapture,
    Outcome,
    Run,
    check_timeout,
    completed,
    interpreter_ended,
    interpreters,
    interrupt,
    log_text,
    raise_nested_error,
    raise_stop_flag,
    read_macro,
)
from deepij.imagej.worker import RunStopped, Worker, withdraw_stop

#: How long a stopped macro gets to wind down before its thread is stopped, then given up.
STOP_GRACE_S = 5.0
#: How long after answering a dialog a macro thread may still wait in it before it is woken up.
_WAKE_AFTER_S = 0.3
#: The name of the Java thread macros run on. ImageJ reads a command's options only on threads whose name
#: starts with "Run$_" (IJ.run renames the thread on its first command; naming it so from the start keeps
#: that from depending on which command comes first).
MACRO_THREAD_NAME = "Run$_deepij-macro"


class MacroHost(Protocol):
    """What runs need of a session (:class:`deepij.imagej.session.Session` is one).

    Naming only this keeps this module free of the session module, which builds on it.
    """

    headless: bool

    def prepare_inputs(self, image: Any) -> list[Any]: ...
    def open_inputs(self, imps: list[Any], *, reset_batch: bool = True) -> None: ...
    def prepare_tables(self, tables: Any) -> list[tuple[str, Any]]: ...
    def open_tables(self, prepared: list[tuple[str, Any]]) -> None: ...
    def log_capture(self) -> contextlib.AbstractContextManager[LogCapture]: ...


class MacroRunner:
    """Runs macros for one session (see the module docstring)."""

    def __init__(self, session: MacroHost) -> None:
        self._session = session
        self._lock = threading.RLock()
        self._worker: Worker | None = None
        self._active: Run | None = None
        self.settings: state.Settings | None = None
        self._handler_depth: dict[int, int] = {}  # thread -> command handlers running on it (nested)
        self._depth_lock = threading.Lock()

    # ----------------------------------------------------------------------------------------- public
    def run(self, macro: str | Path, image: Any = None, args: Any = None, timeout: float | None = None,
            answers: Any = None, tables: Any = None,
            on_log: Callable[[str], object] | None = None) -> results.MacroResult:
        """See :meth:`deepij.imagej.session.Session.run_macro`."""
        code, source = read_macro(macro)
        argument = format_options(args, argument="args")
        check_timeout(timeout)
        if on_log is not None and not callable(on_log):
            raise ArgumentTypeError(f"on_log: expected a callable taking a line (str), found {on_log!r}")
        given_answers = questions.normalize_answers(answers)
        if self._worker is not None and self._worker.is_current() and self._active is not None:
            # its Log lines are the calling run's: that run's on_log hands them out
            return self._run_nested(code, source, image, argument, given_answers, tables)
        with self._lock:
            inputs = self._session.prepare_inputs(image)
            given_tables = self._session.prepare_tables(tables)
            run = Run(earlier_windows={dialogs.window_key(w) for w in jc.Window.getWindows()},
                       answers=given_answers, code_lines=code.splitlines())
            stream = None if on_log is None else LogStream(on_log, lambda: log_text(run))
            self._active = run
            try:
                future = self._current_worker().submit(
                    lambda: self._execute(run, code, inputs, given_tables, argument)
                )
                outcome = self._watch(run, future, timeout, stream)
            finally:
                self._active = None
            if stream is not None:
                stream.finish(outcome.log_text)
            return self._conclude(run, outcome, source)

    def fail_current(self, error: BaseException) -> bool:
        """Stop the running macro because of ``error`` (a command failed). False when none runs.

        The run then raises a MacroError at the line it stopped at (a HeadlessError stays one); any other
        exception becomes a MacroError whose ``__cause__`` it is.
        """
        run = self._active
        if run is None:
            return False
        if not isinstance(error, MacroError | HeadlessError):
            error = handler_failure(None, error)
        self._stop(run, error)
        return True

    @property
    def in_macro_thread(self) -> bool:
        """True on the thread macros run on (in a command handler called by a running macro)."""
        return self._worker is not None and self._worker.is_current()

    @contextlib.contextmanager
    def handler_section(self) -> Iterator[None]:
        """Mark a command handler's Python code: a run stopped while it runs stops it too.

        Neither ImageJ's stop flag nor a Java interrupt reaches Python code; :meth:`_wind_down` raises
        :class:`~deepij.imagej.worker.RunStopped` in it instead (at its next bytecode), and a stop it has not
        met yet is withdrawn when the outermost handler returns.
        """
        ident = threading.get_ident()
        with self._depth_lock:
            self._handler_depth[ident] = self._handler_depth.get(ident, 0) + 1
        try:
            yield
        finally:
            with self._depth_lock:
                depth = self._handler_depth.pop(ident, 1) - 1
                if depth > 0:
                    self._handler_depth[ident] = depth
                else:
                    withdraw_stop()

    @property
    def handler_running(self) -> bool:
        """True while some command handler runs (on any thread), e.g. one a stopped run left behind."""
        with self._depth_lock:
            return bool(self._handler_depth)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Hold ImageJ for Java work that must not overlap a macro run (see ``Session.exclusive``).

        Yields False with the lock every run takes held, or True without taking it when called on the macro
        thread: the running macro holds it already (its caller waits for it), and its watcher answers the
        windows the work opens.
        """
        if self.in_macro_thread:
            yield True
            return
        with self._lock:
            yield False

    # ----------------------------------------------------------------------------------------- the run
    def _current_worker(self) -> Worker:
        if self._worker is None or not self._worker.alive:
            self._worker = Worker()
        return self._worker

    def _execute(self, run: Run, code: str, inputs: list[Any], given_tables: list[tuple[str, Any]],
                 argument: str) -> Outcome:
        """On the macro thread: clean, open inputs and tables, run, collect, clean."""
        run.java_thread = jc.Thread.currentThread()
        if jstr(run.java_thread.getName()) != MACRO_THREAD_NAME:
            run.java_thread.setName(MACRO_THREAD_NAME)
        headless = self._session.headless
        state.reset(self.settings)
        try:
            self._session.open_inputs(inputs)
            self._session.open_tables(given_tables)
            run.interp = jc.Interpreter()
            outcome = Outcome()
            with self._session.log_capture() as log:
                run.log = log  # followed by the watcher while the macro runs (run(on_log=...))
                run.interpreting = True
                try:
                    outcome.value = jstr(run.interp.run(code, argument))
                except Exception as error:  # Java exceptions arrive as Python exceptions (JException)
                    outcome.failure = error
                finally:
                    interpreter_ended(run)
            outcome.log_text = log.text()
            outcome.error_message = jstr(run.interp.getErrorMessage())
            outcome.error_line = error_line(run.interp)
            if completed(run, outcome):
                outcome.result = results.build_result(outcome.value, outcome.log_text, run.messages,
                                                      headless, answered=run.answered)
            return outcome
        finally:
            state.reset(self.settings)
            jc.Thread.interrupted()  # clears an interrupt sent while stopping the run (see _wind_down)

    def _watch(self, run: Run, future: Future[Outcome], timeout: float | None,
               stream: LogStream | None) -> Outcome:
        """On the caller's thread: answer dialogs, enforce the time limit, give up on a stuck thread; hand
        out the Log's new lines."""
        started = time.monotonic()
        poll = 0.002
        while True:
            try:
                return future.result(timeout=poll)
            except FutureTimeout:
                poll = min(poll * 2, 0.05)
            except RunStopped:  # met after its handler returned, while the run ended
                return Outcome(failure=run.stop_error)
            if stream is not None:
                stream.poll(time.monotonic())
            self._answer_dialogs(run)
            if timeout is not None and time.monotonic() - started > timeout:
                self._stop(run, MacroTimeoutError(f"the macro ran past its time limit of {timeout:g} s"))
            if run.stop_error is not None:
                return self._wind_down(run, future)

    def _wind_down(self, run: Run, future: Future[Outcome]) -> Outcome:
        """Wait for a stopped macro to end; wake its thread if it sleeps, stop it if it does not return."""
        started = time.monotonic()
        next_wake = started + 0.1
        while time.monotonic() - started < STOP_GRACE_S:
            self._answer_dialogs(run)
            try:
                return future.result(timeout=0.02)
            except FutureTimeout:
                pass
            except RunStopped:
                return Outcome(failure=run.stop_error)
            # The interpreter rewrites its stop flag on every token it reads, so one write can be lost:
            # ImageJ's own abort writes it repeatedly too.
            raise_stop_flag(*interpreters(run))
            if time.monotonic() >= next_wake:
                # A macro asleep in Java (wait(ms), a dialog's wait() whose wake-up raced with its own start)
                # never sees the stop flag: an interrupt wakes it. Its thread clears the flag afterwards.
                interrupt(run)
                self._stop_handler_code()
                next_wake = time.monotonic() + 0.5
        if run.java_thread is not None:
            # Last resort for Java code that ignores both (Thread.stop still works on Java 17).
            run.java_thread.stop()
            try:
                return future.result(timeout=2.0)
            except FutureTimeout:
                pass
            except RunStopped:
                return Outcome(failure=run.stop_error)
            except Exception as error:  # the thread came back (with the ThreadDeath): keep using it
                return Outcome(failure=error)
        # The thread is lost: leave it asleep, clean ImageJ from here, use a fresh thread next time.
        self._worker = None
        state.reset(self.settings)
        return Outcome(failure=run.stop_error)

    def _stop_handler_code(self) -> None:
        """Stop the Python code of a command handler the stopped macro is in (see :meth:`handler_section`)."""
        worker = self._worker
        if worker is None or worker.ident is None:
            return
        with self._depth_lock:
            if self._handler_depth.get(worker.ident, 0) > 0:
                worker.stop_python()

    def _answer_dialogs(self, run: Run) -> None:
        self._wake_from_vanished_dialog(run)
        for dialog in dialogs.pending_dialogs(run.java_thread):
            run.answered_at = time.monotonic()
            key = dialogs.window_key(dialog.window)
            if key in run.earlier_windows:
                # left over from an earlier run (AWT can bring a closed dialog back): not this macro's doing
                dialogs.dismiss(dialog)
                continue
            if dialog.kind == dialogs.ERROR:
                self._record_error_box(run, dialog)
                dialogs.answer_ok(dialog)
            elif dialog.kind == dialogs.MESSAGE:
                if key not in run.message_windows:  # a box answered twice is one message
                    run.message_windows.add(key)
                    run.messages.append(dialog.text)
                dialogs.answer_ok(dialog)
            elif dialog.kind == dialogs.EXCEPTION:
                trace = dialog.text.strip()
                self._stop(run, MacroError(f"an ImageJ command threw a Java exception:\n{trace}"))
                dialogs.cancel(dialog)
            elif self._waits_for_user(run, dialog, key):
                self._answer_question(run, dialog)

    def _waits_for_user(self, run: Run, dialog: dialogs.OpenDialog, key: int) -> bool:
        """True for an input dialog the macro waits in, or one that has stayed up a while (see dialogs)."""
        first_seen = run.first_seen.setdefault(key, time.monotonic())
        return dialog.waited_on or time.monotonic() - first_seen > dialogs.INPUT_GRACE_S

    def _answer_question(self, run: Run, dialog: dialogs.OpenDialog) -> None:
        try:
            if questions.answer(dialog, run.answers, run.answered):
                return
            error: BaseException = questions.unanswered_error(dialog)
        except ArgumentError as bad_answer:
            error = bad_answer
        self._stop(run, error)
        dialogs.cancel(dialog)

    def _record_error_box(self, run: Run, dialog: dialogs.OpenDialog) -> None:
        """Keep the first error box's text and line, and make its macro stop after its current statement.

        The box belongs to the innermost macro running (one a command runs inside the run's macro, a
        bundle's step, has its own file and lines). The interpreter's own error box ends the macro by
        itself; an ``IJ.error`` box (``File not found``) would let it go on, as ImageJ does on a thread it
        does not know as a macro thread.
        """
        message, line, code = dialog.error_parts()
        with run.lock:
            frame = run.nested[-1] if run.nested else run
            if line is None:
                line = current_line(frame.interp)
                code = code_of(frame.code_lines, line)
            if frame.dialog_error is None:
                frame.dialog_error = (message, line, code)
        raise_stop_flag(frame.interp)

    def _wake_from_vanished_dialog(self, run: Run) -> None:
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
            interrupt(run)
            run.answered_at = time.monotonic()

    def _stop(self, run: Run, error: BaseException) -> None:
        """Tell the interpreter to finish after the current statement; the first reason wins."""
        with run.lock:
            if run.stop_error is not None:
                return
            run.stop_error = error
            run.stop_line = current_line(run.interp)
        raise_stop_flag(*interpreters(run))

    def _conclude(self, run: Run, outcome: Outcome, source: str | None) -> results.MacroResult:
        """The result, or the error that explains why there is none."""
        line = outcome.error_line
        if run.stop_error is not None:
            error = stopped_error(run.stop_error, run.stop_line, source, run.code_lines)
            raise error from cause(run.stop_error)
        if run.dialog_error is not None:
            message, dialog_line, code = run.dialog_error
            text = f"{message}: {code}" if code else message
            raise macro_error(text, line=dialog_line if dialog_line is not None else line, source=source)
        if outcome.error_message is not None:
            raise macro_error(outcome.error_message, line=line, source=source)
        if outcome.failure is not None and not is_cancel(outcome.failure):
            raise java_failure(outcome.failure, line, source) from outcome.failure
        if outcome.result is None:  # pragma: no cover - every other path above raised
            raise ImageJError("the macro ended without a result")
        return outcome.result

    # ----------------------------------------------------------------------------------------- nested
    def _run_nested(self, code: str, source: str | None, image: Any, argument: str,
                    answers: questions.Answers, tables: Any) -> results.MacroResult:
        """A macro run from a command handler inside a running macro: inline, without cleaning anything.

        The outer run's watcher answers its dialogs, with the outer run's answers and these. Its tables open
        among the outer macro's (replacing its Results when ``"Results"`` is given), as a command it runs
        would open them.
        """
        before = set(state.open_image_ids())
        inputs = self._session.prepare_inputs(image)
        given_tables = self._session.prepare_tables(tables)
        self._session.open_inputs(inputs, reset_batch=False)
        self._session.open_tables(given_tables)
        active = self._active
        assert active is not None  # run() comes here only while a run is active
        frame = Frame(jc.Interpreter(), code.splitlines())
        outer_answers = dict(active.answers)
        with active.lock:
            active.answers = {**outer_answers, **answers}
            active.nested.append(frame)  # its error boxes are its own (see _record_error_box)
        failure: BaseException | None = None
        try:
            value = jstr(frame.interp.run(code, argument))
        except Exception as error:
            value, failure = None, error
        finally:
            with active.lock:
                active.nested.remove(frame)
                active.answers = outer_answers
        raise_nested_error(frame, failure, source)
        new_ids = set(state.open_image_ids()) - before
        current = jc.WindowManager.getCurrentImage()
        if current is not None:
            new_ids.add(int(current.getID()))
        return results.build_result(value, "", [], self._session.headless, only_ids=new_ids)
