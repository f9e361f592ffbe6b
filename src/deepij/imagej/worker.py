"""The thread macros run on.

Macros run on one long-lived daemon thread rather than on the caller's, so the caller can watch them (answer
dialogs, enforce time limits) and give up on one that never returns. A daemon thread never holds up the
interpreter's exit; a stuck one is abandoned and a new worker takes over.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


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

    def close(self) -> None:
        """Let the thread end after its current job (an abandoned, stuck thread just stays asleep)."""
        self._jobs.put(None)

    def _loop(self) -> None:
        while True:
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
