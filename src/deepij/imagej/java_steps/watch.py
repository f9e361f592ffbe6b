"""Running a step on a thread of its own while the caller answers its windows and keeps its time limit.

Messages are answered (and logged); an error box, an exception window or a dialog waiting for input fails
the step, as :mod:`deepij.imagej.macros` does for macros. A step stopped for that or for its time limit
gets :data:`STOP_GRACE_S` to return (its thread interrupted) before the thread is given up.
"""

from __future__ import annotations

import logging
import time
import weakref
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from deepij.errors import StepError
from deepij.imagej import dialogs
from deepij.imagej._java import jc, jstr
from deepij.imagej.java_steps.call import StepCall
from deepij.imagej.worker import Worker

if TYPE_CHECKING:
    from deepij.imagej.session import Session

_log = logging.getLogger("deepij.imagej")

#: How long a step stopped for a dialog or a time limit gets to return before its thread is given up.
STOP_GRACE_S = 5.0


_workers: weakref.WeakKeyDictionary[Any, Worker] = weakref.WeakKeyDictionary()


class Watch:
    """Run a step on the session's Java-step thread; answer its windows; enforce the time limit."""

    def __init__(self, session: Session, job: StepCall, timeout: float | None) -> None:
        self.session = session
        self.job = job
        self.timeout = timeout
        self.earlier = {dialogs.window_key(w) for w in jc.Window.getWindows()}
        self.messages: list[str] = []
        self.stop_reason: str | None = None

    def result(self) -> dict[str, Any]:
        future = self._worker().submit(self.job.run)
        started = time.monotonic()
        poll = 0.002
        while True:
            try:
                outputs = future.result(timeout=poll)
                break
            except FutureTimeout:
                poll = min(poll * 2, 0.05)
            except StepError as error:
                raise StepError(self._with_messages(str(error))) from error.__cause__
            self._answer_dialogs()
            if self.timeout is not None and time.monotonic() - started > self.timeout:
                self.stop_reason = f"it ran past its time limit of {self.timeout:g} s"
            if self.stop_reason is not None:
                self._wind_down(future)
                raise StepError(self._with_messages(f"{self.job.where}: the {self.job.stage.label} step was "
                                                    f"stopped: {self.stop_reason}"))
        for message in self.messages:
            _log.warning("%s: the step showed a message: %s", self.job.where, message)
        return outputs

    def _worker(self) -> Worker:
        worker = _workers.get(self.session)
        if worker is None or not worker.alive:
            worker = Worker(name="deepij-java-step")
            _workers[self.session] = worker
        return worker

    def _answer_dialogs(self) -> None:
        for dialog in dialogs.pending_dialogs():
            if dialogs.window_key(dialog.window) in self.earlier:
                dialogs.dismiss(dialog)  # left over from before this step: not its doing
                continue
            text = " ".join(dialog.text.split())
            if dialog.kind == dialogs.MESSAGE:
                if text not in self.messages:
                    self.messages.append(text)
                dialogs.answer_ok(dialog)
            elif dialog.kind == dialogs.ERROR:
                self.stop_reason = self.stop_reason or f"it ran into an ImageJ error: {text}"
                dialogs.answer_ok(dialog)
            elif dialog.kind == dialogs.EXCEPTION:
                self.stop_reason = self.stop_reason or f"an ImageJ command threw:\n{dialog.text.strip()}"
                dialogs.cancel(dialog)
            else:
                kind = jstr(dialog.window.getClass().getSimpleName())
                self.stop_reason = self.stop_reason or (
                    f"it waits for user input that will never come: {kind} {dialog.title!r}"
                    + (f": {text!r}" if text else "") + "; deepij cancelled it (steps run unattended)")
                dialogs.cancel(dialog)

    def _wind_down(self, future: Future[dict[str, Any]]) -> None:
        """Give the step STOP_GRACE_S to return (interrupting its thread); then abandon the thread."""
        deadline = time.monotonic() + STOP_GRACE_S
        next_interrupt = time.monotonic()
        while time.monotonic() < deadline:
            self._answer_dialogs()
            if self.job.java_thread is not None and time.monotonic() >= next_interrupt:
                self.job.java_thread.interrupt()  # wakes a step asleep in a wait or a dialog
                next_interrupt = time.monotonic() + 0.5
            try:
                future.result(timeout=0.05)
                return
            except FutureTimeout:
                continue
            except Exception:
                return
        _log.warning("%s: the step's thread did not return; it is left asleep and a new one takes over",
                     self.job.where)
        _workers.pop(self.session, None)

    def _with_messages(self, text: str) -> str:
        if not self.messages:
            return text
        return text + "\n  it showed: " + "; ".join(repr(m) for m in self.messages)
