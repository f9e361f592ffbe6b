"""Following ImageJ's Log while a macro runs: its new lines, as ``ImageJ -batch`` prints them.

The Log is read as a whole text (the Log window's, or what a headless ImageJ printed); :class:`LogFollower`
hands out the lines that were not handed out yet. A macro may rewrite the Log (``print("\\\\Update:...")``
replaces its last line, ``print("\\\\Clear")`` empties it): lines that changed are handed out again, as a
terminal shows each update on a line of its own.

Examples
--------
>>> follower = LogFollower()
>>> follower.feed("a\\nb\\n"), follower.feed("a\\nb\\nc"), follower.feed("a\\nb\\nc\\n")
(['a', 'b'], [], ['c'])
>>> follower.feed("a\\nB\\n")  # the last line was updated
['B']
>>> follower.feed("x"), follower.finish("x")  # cleared; then the run ended without a newline
([], ['x'])
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from deepij.imagej._java import jc, jstr

_log = logging.getLogger("deepij.imagej")

#: How often a running macro's Log is read for new lines (seconds).
LOG_POLL_S = 0.1


class LogFollower:
    """The lines of a growing (or rewritten) text that were not handed out yet (see the module notes)."""

    def __init__(self) -> None:
        self._lines: list[str] = []  # the complete lines handed out, as they are in the text now

    def feed(self, text: str) -> list[str]:
        """The complete lines (ended by a newline) of ``text`` that are new or changed."""
        return self._new(text.split("\n")[:-1])

    def finish(self, text: str) -> list[str]:
        """Like :meth:`feed`, the last line counting as complete (the text is final)."""
        lines = text.split("\n")
        return self._new(lines[:-1] if lines[-1] == "" else lines)

    def _new(self, lines: list[str]) -> list[str]:
        same = 0
        for old, now in zip(self._lines, lines, strict=False):
            if old != now:
                break
            same += 1
        self._lines = lines
        return lines[same:]


class LogStream:
    """Hands a running macro's new Log lines to ``on_line`` (on the thread that calls :meth:`poll`).

    ``read`` gives the Log's text so far (None before the macro's capture started). An ``on_line`` that
    raises is dropped with a warning: a reader that went away (a closed pipe) never stops the macro.
    """

    def __init__(self, on_line: Callable[[str], object], read: Callable[[], str | None]) -> None:
        self._on_line: Callable[[str], object] | None = on_line
        self._read = read
        self._follower = LogFollower()
        self._next_read = 0.0

    def poll(self, now: float) -> None:
        """Hand out the new lines, at most every :data:`LOG_POLL_S`."""
        if self._on_line is None or now < self._next_read:
            return
        self._next_read = now + LOG_POLL_S
        try:
            text = self._read()
        except Exception:  # the Log changed while it was read: its lines come at the next poll
            return
        if text is not None:
            self._hand_out(self._follower.feed(text))

    def finish(self, text: str | None) -> None:
        """Hand out what the final Log text adds (the run ended)."""
        if self._on_line is not None and text is not None:
            self._hand_out(self._follower.finish(text))

    def _hand_out(self, lines: list[str]) -> None:
        for line in lines:
            try:
                assert self._on_line is not None
                self._on_line(line)
            except Exception as error:
                _log.warning("the macro's Log is no longer passed on: on_log failed (%s)", error)
                self._on_line = None
                return


class LogText:
    """What ImageJ logs while a run's capture is on: the Log window's text, or, in a headless ImageJ (no Log
    window: ``IJ.log`` prints to ``System.out``), what it printed (``Session.log_capture``)."""

    def __init__(self, headless: bool) -> None:
        self._headless = headless
        self._buffer: Any = None
        self._original: Any = None
        self._text = ""

    def start(self) -> None:
        if self._headless:
            # A headless ImageJ has no Log window: IJ.log() prints to System.out, captured here.
            self._buffer = jc.ByteArrayOutputStream()
            self._original = jc.System.out
            jc.System.setOut(jc.PrintStream(self._buffer, True, "UTF-8"))

    def stop(self) -> None:
        if self._headless and self._original is not None:
            jc.System.out.flush()
            jc.System.setOut(self._original)
            self._text = str(self._buffer.toString("UTF-8"))
            self._original = None

    def text(self) -> str:
        if self._headless:
            if self._original is not None:
                jc.System.out.flush()
                return str(self._buffer.toString("UTF-8"))
            return self._text
        return jstr(jc.IJ.getLog()) or ""
