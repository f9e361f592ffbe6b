"""One request of ``deepij serve``'s protocol as its operations see it (:mod:`deepij.frontdoors.serve` has
the protocol and the server; :mod:`~deepij.frontdoors.serve_run`, :mod:`~deepij.frontdoors.serve_tools` and
:mod:`~deepij.frontdoors.serve_instances` the operations, which take a :class:`Served` and a
:class:`Request`).

Examples
--------
>>> sent = []
>>> request = Request({"id": 3, "op": "models", "imagej_dir": "/opt/ImageJ"}, sent.append)
>>> request.text("imagej_dir"), request.text("title", "none")
('/opt/ImageJ', 'none')
>>> request.progress("inference", 1, 4, "tiles")
>>> sent[0]["event"], sent[0]["done"], sent[0]["total"]
('progress', 1, 4)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from deepij.errors import ArgumentError, DeepijError

if TYPE_CHECKING:
    from deepij.frontdoors.deepimagej_run import DeepImageJRun
    from deepij.frontdoors.exchange import SharedFiles

Send = Callable[[dict[str, Any]], None]


class Served(Protocol):
    """What an operation uses of the server: the shared files the pixels cross through, and the models kept
    loaded between requests."""

    files: SharedFiles
    runs: DeepImageJRun


class Cancelled(DeepijError):
    """The plugin cancelled the request (Esc in ImageJ)."""


class Request:
    """One request being handled: its id, what it asked, and how it talks back (events, cancel)."""

    def __init__(self, message: dict[str, Any], send: Send) -> None:
        self.id = message.get("id")
        self.message = message
        self._send = send
        self.cancelled = threading.Event()

    def progress(self, stage: str, done: int, total: int, label: str = "") -> None:
        """Send a progress event; where a request stops when it was cancelled."""
        if self.cancelled.is_set():
            raise Cancelled("cancelled (Esc)")
        self._send({"id": self.id, "event": "progress", "stage": stage, "done": done, "total": total,
                    "label": label})

    def log(self, level: str, message: str) -> None:
        self._send({"id": self.id, "event": "log", "level": level, "message": message})

    def text(self, key: str, default: str | None = None) -> str | None:
        """A text field of the request (None or ``default`` when absent)."""
        value = self.message.get(key, default)
        if value is not None and not isinstance(value, str):
            raise ArgumentError(f"request {self.message.get('op')!r}: {key}={value!r} (expected text)")
        return value
