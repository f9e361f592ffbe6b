"""The thread macros run on.

Macros run on one long-lived daemon thread rather than on the caller's, so the caller can watch them (answer
dialogs, enforce time limits) and give up on one that never returns. A daemon thread never holds up the
interpreter's exit; a stuck one is abandoned and a new worker takes over.

Python code on that thread (a command handler a macro called: ``run("DeepImageJ Run", ...)`` predicting
with the network) sees neither ImageJ's stop flag nor a Java interrupt. :meth:`Worker.stop_python` stops
it the way Python stops a thread from outside: a :class:`RunStopped` raised in it at its next bytecode
(after the C call it is in, a forward pass say, returns).
"""

from __future__ import annotations

import ctypes
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class RunStopped(BaseException):
    """Raised inside Python code on a macro thread whose run was stopped (time limit, failure).

    A BaseException, as KeyboardInterrupt is, so that ``except Exception`` in the code it unwinds does not
    swallow it; the command router turns it into the handler's failure, which the stopped run already has a
    reason for.
    """


class Worker:
    """A daemon thread executing submitted callables one at a time."""

    def __init__(self, name: str = "deepij-macro") -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((job, future))
        return future

    def is_current(self) -> bool:
        """True when called from this worker's thread (a command handler inside a running macro)."""
        return threading.current_thread() is self._thread

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def ident(self) -> int | None:
        """The thread's identifier (``threading.get_ident()`` on it)."""
        return self._thread.ident

    def close(self) -> None:
        """Let the thread end after its current job (an abandoned, stuck thread just stays asleep)."""
        self._jobs.put(None)

    def stop_python(self) -> None:
        """Raise :class:`RunStopped` in the thread's Python code, at its next bytecode."""
        ident = self._thread.ident
        if ident is not None and self._thread.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(RunStopped))

    def _loop(self) -> None:
        while True:
            try:
                item = self._jobs.get()
                if item is None:
                    return
                job, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(job())
                except BaseException as error:  # delivered to the waiting caller, never lost
                    future.set_exception(error)
            except RunStopped:  # a stop that arrived between jobs: the thread stays usable
                continue


def withdraw_stop() -> None:
    """Withdraw a :meth:`Worker.stop_python` the calling thread has not met yet (it left the code to stop).

    Examples
    --------
    >>> withdraw_stop()  # nothing pending: nothing happens
    """
    # NULL (None here) clears the calling thread's pending asynchronous exception
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.get_ident()), None)
