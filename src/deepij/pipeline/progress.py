"""How a run tells what it is doing: a progress callback, a bar on a terminal, the "deepij" logger.

A run has three stages: ``"preprocessing"`` (one event per step), ``"inference"`` (one per forward pass,
i.e. per batch of tiles) and ``"postprocessing"`` (one per step). The callback given as ``progress=``
receives a :class:`ProgressEvent` after each of them; on a terminal (stderr is a TTY) a tqdm bar shows the
same, unless ``logging="mute"``. ``logging`` sets the level of the ``"deepij"`` logger for the run:
``"mute"`` -> ERROR, ``"normal"`` -> INFO, ``"debug"`` -> DEBUG (the level before the run comes back after
it). deepij adds no handler: configure one (``logging.basicConfig()``) to see the messages.

Examples
--------
>>> events = []
>>> with Reporter("my model", events.append, "mute") as report:
...     report.advance("inference", 1, 2)
...     report.advance("inference", 2, 2)
>>> [(e.stage, e.done, e.total) for e in events]
[('inference', 1, 2), ('inference', 2, 2)]
"""

from __future__ import annotations

import logging as pylogging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from deepij.errors import ArgumentError

LOGGING_LEVELS = {"mute": pylogging.ERROR, "normal": pylogging.INFO, "debug": pylogging.DEBUG}
STAGES = ("preprocessing", "inference", "postprocessing")
_log = pylogging.getLogger("deepij.pipeline")
_levels = threading.Lock()
_active: list[Reporter] = []
_before = {"level": 0}
"""The Reporters inside their run now, in the order they began (nested runs, or images of a folder run side
by side, :mod:`deepij.pipeline.batch_overlap`), and the ``"deepij"`` level before the first: when one ends,
the level of the latest still running applies, and the one before them all when none is."""


@dataclass(frozen=True)
class ProgressEvent:
    """One finished piece of a run.

    Attributes
    ----------
    stage : str
        ``"preprocessing"``, ``"inference"`` or ``"postprocessing"``.
    done, total : int
        Pieces of this stage finished so far, and in all (steps, or forward passes).
    label : str
        What finished: the step (``"macro preprocessing.ijm"``), or ``"tiles"``.
    """

    stage: str
    done: int
    total: int
    label: str = ""


ProgressCallback = Callable[[ProgressEvent], Any]


def logging_level(mode: str) -> int:
    """The logging level of a ``logging=`` value (case does not matter, as in deepImageJ's macros).

    Examples
    --------
    >>> logging_level("Normal") == pylogging.INFO
    True
    """
    if not isinstance(mode, str) or mode.lower() not in LOGGING_LEVELS:
        raise ArgumentError(f"logging: expected one of {sorted(LOGGING_LEVELS)}, found {mode!r}")
    return LOGGING_LEVELS[mode.lower()]


class Reporter:
    """Progress and log level for one run (a context manager: the bar closes and the level comes back
    however the run ends).

    Parameters
    ----------
    name : str
        The model's name, shown on the bar.
    callback : callable, optional
        Called with a :class:`ProgressEvent` after each piece.
    logging : {"mute", "normal", "debug"}
        Level of the ``"deepij"`` logger during the run; ``"mute"`` also hides the bar.
    bar : bool, optional
        Show a tqdm bar; default: when stderr is a terminal.
    """

    def __init__(
        self,
        name: str,
        callback: ProgressCallback | None = None,
        logging: str = "normal",
        bar: bool | None = None,
    ) -> None:
        if callback is not None and not callable(callback):
            raise ArgumentError(f"progress: expected a callable or None, found {type(callback).__name__}")
        self.name = name
        self.level = logging_level(logging)
        self._callback = callback
        self._show_bar = (_is_terminal() if bar is None else bar) and self.level <= pylogging.INFO
        self._bar: Any = None
        self._bar_stage: str | None = None
        self._logger = pylogging.getLogger("deepij")

    def __enter__(self) -> Reporter:
        with _levels:
            if not _active:
                _before["level"] = self._logger.level
            _active.append(self)
            self._logger.setLevel(self.level)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._close_bar()
        with _levels:
            if self in _active:
                _active.remove(self)
                self._logger.setLevel(_active[-1].level if _active else _before["level"])

    def advance(self, stage: str, done: int, total: int, label: str = "") -> None:
        """Report that ``done`` of ``total`` pieces of ``stage`` are finished."""
        _log.debug("%s: %s %d/%d %s", self.name, stage, done, total, label)
        if self._show_bar:
            self._update_bar(stage, done, total)
        if self._callback is not None:
            self._callback(ProgressEvent(stage, done, total, label))

    def tiles(self, done: int, total: int) -> None:
        """The runner's ``progress(done, total)``, as ``"inference"`` events."""
        self.advance("inference", done, total, "tiles")

    def _update_bar(self, stage: str, done: int, total: int) -> None:
        if self._bar is None or self._bar_stage != stage:
            from tqdm.auto import tqdm

            self._close_bar()
            self._bar = tqdm(total=total, desc=f"{self.name}: {stage}", leave=False, file=sys.stderr)
            self._bar_stage = stage
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._bar_stage = None


def _is_terminal() -> bool:
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None)) and stream.isatty()
