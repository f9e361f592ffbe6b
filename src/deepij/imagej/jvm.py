"""Starting the one JVM of this process with scyjava/JPype: offline, fast, and without exit hangs."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from deepij.errors import ImageJError

_log = logging.getLogger("deepij.imagej")

#: Options deepij always adds. ParallelGC: large pixel arrays (a 2048x2048 float image is one 16 MB array) are
#: allocated several times faster than with the default G1 collector, which makes them "humongous" objects.
BASE_OPTIONS = ("-XX:+UseParallelGC",)


def running() -> bool:
    """True when a JVM is running in this process (whoever started it)."""
    import jpype

    return bool(jpype.isJVMStarted())


def start(classpath: Sequence[Path], *, java_home: Path, headless: bool,
          options: Sequence[str] = ()) -> float:
    """Start the JVM; return the seconds it took.

    ``JAVA_HOME`` is set to ``java_home`` (JPype then loads its libjvm directly instead of searching
    ``/usr``), scyjava is told never to download a JDK, and any Maven endpoints other packages registered with
    scyjava (pyimagej's imports add some) are set aside for this start: they would need the network.
    """
    import scyjava

    os.environ["JAVA_HOME"] = str(java_home)
    scyjava.config.set_java_constraints(fetch="never")
    for entry in classpath:
        scyjava.config.add_classpath(str(entry))
    jvm_options = [
        *scyjava.config.get_options(),
        f"-Djava.awt.headless={'true' if headless else 'false'}",
        *BASE_OPTIONS,
        *options,
    ]
    endpoints = list(scyjava.config.endpoints)
    if endpoints:
        _log.warning("deepij starts Java offline: ignoring the Maven endpoints %s registered with scyjava",
                     endpoints)
    scyjava.config.endpoints.clear()
    _leave_crash_signals_to_the_jvm()
    started = time.perf_counter()
    try:
        scyjava.start_jvm(jvm_options)
    except Exception as error:
        raise ImageJError(f"the Java VM did not start (JAVA_HOME={java_home}): {error}") from error
    finally:
        scyjava.config.endpoints.extend(endpoints)
    return time.perf_counter() - started


def _leave_crash_signals_to_the_jvm() -> None:
    """Turn Python's faulthandler off before the JVM starts, when it is on (pytest turns it on).

    The JVM relies on SIGSEGV itself (implicit null checks, safepoints) and installs its handler over
    faulthandler's; a later ``faulthandler.disable()`` (pytest's, at its end) puts back the handler from
    before the JVM, and the next time the JVM relies on the signal the process dies (a segmentation fault at
    exit, seen after a full test run). Turned off first, it has nothing to put back."""
    import faulthandler

    if faulthandler.is_enabled():
        faulthandler.disable()
        _log.debug("faulthandler turned off: the JVM handles SIGSEGV itself")


def when_stopping(callback: Callable[[], None]) -> None:
    """Run ``callback`` just before the JVM shuts down (at interpreter exit or :func:`shutdown`)."""
    import scyjava

    scyjava.when_jvm_stops(callback)


def shutdown() -> None:
    """Shut the JVM down now (it cannot be started again in this process)."""
    import scyjava

    scyjava.shutdown_jvm()


def memory_option(max_memory: str | int | None) -> list[str]:
    """``-Xmx`` for a size read by :func:`deepij.sizes.parse_memory_size` (``"8g"``, ``"2GB"``, bytes);
    nothing for None.

    Examples
    --------
    >>> memory_option("8g"), memory_option("2GB"), memory_option(None)
    (['-Xmx8192m'], ['-Xmx1907m'], [])
    """
    from deepij.sizes import parse_memory_size

    if max_memory is None:
        return []
    return [f"-Xmx{max(1, parse_memory_size(max_memory) // 2**20)}m"]
