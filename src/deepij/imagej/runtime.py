"""The process's one ImageJ session: start it (embedded or Fiji), adopt a pyimagej gateway, stop it."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepij.errors import ArgumentError, ArgumentTypeError, ImageJError
from deepij.imagej import fiji as fiji_mode
from deepij.imagej import java_steps, jvm, locate
from deepij.imagej.display import VirtualDisplay
from deepij.imagej.session import Session

_log = logging.getLogger("deepij.imagej")
_lock = threading.RLock()
_session: Session | None = None
_stopped = False


@dataclass(frozen=True)
class _Request:
    ij_jar: Path | None
    fiji_dir: Path | None
    headless: bool | None
    virtual_display: bool | None
    options: tuple[str, ...]
    explicit: bool


def get_session(
    ij_jar: str | os.PathLike[str] | None = None,
    *,
    fiji: str | os.PathLike[str] | None = None,
    headless: bool | None = None,
    virtual_display: bool | None = None,
    max_memory: str | int | None = None,
    jvm_options: Sequence[str] = (),
) -> Session:
    """The process's ImageJ session, started on first use. See :func:`deepij.imagej` for the parameters.

    ``max_memory`` is read by :func:`deepij.sizes.parse_memory_size`: ``"8g"`` = 8 GiB (Java's letters are
    powers of 1024), ``"2GB"`` = 2e9 bytes, an int = bytes.
    """
    request = _validate(ij_jar, fiji, headless, virtual_display, max_memory, jvm_options)
    global _session
    with _lock:
        if _session is not None and not _session.closed:
            _check_compatible(_session, request)
            return _session
        if _stopped or (_session is not None and _session.closed):
            raise ImageJError("ImageJ was shut down in this process and cannot start again "
                              "(a JVM cannot restart within one process); start a new Python process")
        if jvm.running():
            raise ImageJError(
                "a Java VM is already running in this process without a deepij session (started by another "
                "package); call deepij.imagej() before other Java users, or adopt a pyimagej gateway with "
                "deepij.attach(ij)"
            )
        _session = _start(request)
        return _session


def current_session() -> Session | None:
    """The running session, or None (never starts one)."""
    return _session if _session is not None and not _session.closed else None


def attach(gateway: Any) -> Session:
    """Adopt a pyimagej gateway (``imagej.init(...)``'s result) as this process's ImageJ session."""
    global _session
    with _lock:
        if _session is not None and not _session.closed:
            if _session.gateway is gateway:
                return _session
            raise ImageJError(
                f"attach: this process already has an ImageJ session ({_session.mode}); one JVM holds one "
                "ImageJ, so a second gateway cannot be adopted"
            )
        fiji_mode.check_gateway(gateway)
        from deepij.imagej._java import jc

        headless = bool(jc.GraphicsEnvironment.isHeadless())
        display = None if headless else os.environ.get("DISPLAY")
        session = Session(mode="attached", headless=headless, display=display, gateway=gateway)
        session.initialize()
        jvm.when_stopping(session.on_jvm_stop)
        _session = session
        return session


def shutdown() -> None:
    """Stop ImageJ and the JVM now (also done at interpreter exit). ImageJ cannot start again afterwards.

    Call it from the main thread (JPype shuts the JVM down only from there).
    """
    global _stopped
    with _lock:
        _stopped = True
        if _session is not None and not _session.closed:
            _session.on_jvm_stop()
        if jvm.running():
            jvm.shutdown()
        if _session is not None and _session.virtual_display is not None:
            _session.virtual_display.stop()


# --------------------------------------------------------------------------------------------- start
def _validate(ij_jar: Any, fiji: Any, headless: bool | None, virtual_display: bool | None,
              max_memory: Any, jvm_options: Sequence[str]) -> _Request:
    for name, value in (("headless", headless), ("virtual_display", virtual_display)):
        if value is not None and not isinstance(value, bool):
            raise ArgumentTypeError(
                f"{name}: expected True, False or None, found {value!r} ({type(value).__name__})"
            )
    for name, value in (("ij_jar", ij_jar), ("fiji", fiji)):
        if value is not None and not isinstance(value, str | os.PathLike):
            raise ArgumentTypeError(f"{name}: expected a path (str or os.PathLike) or None, found {value!r}")
    if headless and virtual_display:
        raise ArgumentError(
            "headless=True and virtual_display=True contradict each other (expected one of them)"
        )
    if isinstance(jvm_options, str | bytes) or not isinstance(jvm_options, Sequence) \
            or not all(isinstance(o, str) for o in jvm_options):
        raise ArgumentTypeError(
            f"jvm_options: expected a list of strings such as ['-Xss4m'], found {jvm_options!r}"
        )
    if ij_jar is not None and fiji is not None:
        raise ArgumentError("ij_jar and fiji were both given (expected one: an ij.jar, or a Fiji.app folder)")
    fiji_dir = locate.find_fiji_dir(fiji) if ij_jar is None else None
    jar = None
    if fiji_dir is None and (ij_jar is not None or _session is None):
        jar = locate.find_ij_jar(ij_jar)
    given = (ij_jar, fiji, headless, virtual_display, max_memory)
    explicit = any(v is not None for v in given) or bool(jvm_options)
    options = (*jvm.memory_option(max_memory), *jvm_options)
    return _Request(jar, fiji_dir, headless, virtual_display, options, explicit)


def _check_compatible(session: Session, request: _Request) -> None:
    if not request.explicit:
        return
    conflicts = []
    if request.headless is not None and request.headless != session.headless:
        conflicts.append(f"headless={request.headless} (running: headless={session.headless})")
    if request.fiji_dir is not None and request.fiji_dir != session.fiji_dir:
        conflicts.append(f"fiji={str(request.fiji_dir)!r} (running: {session.mode} ImageJ)")
    if request.ij_jar is not None and session.ij_jar is not None and request.ij_jar != session.ij_jar:
        conflicts.append(f"ij_jar={str(request.ij_jar)!r} (running: {session.ij_jar})")
    if request.options:
        conflicts.append(f"JVM options {list(request.options)} (the JVM is already running)")
    if conflicts:
        raise ImageJError(
            "ImageJ is already running in this process with other settings: " + "; ".join(conflicts)
            + ". A JVM cannot restart within one process: start a new Python process for other settings"
        )


def _start(request: _Request) -> Session:
    java_home = locate.find_java_home()
    if request.fiji_dir is not None:
        fiji_mode.require_pyimagej()
    headless, use_xvfb, display = _choose_display(request)
    # No atexit stop for Xvfb: AWT must never lose its display while the JVM lives; the display's guard
    # stops it when this process ends (see deepij.imagej.display).
    virtual = VirtualDisplay.start() if use_xvfb else None
    try:
        classpath, options = _classpath_and_options(request)
        seconds = jvm.start(classpath, java_home=java_home, headless=headless, options=options)
        if virtual is not None:
            display = virtual.wait_ready()
            os.environ["DISPLAY"] = display  # read by AWT when it first starts, which is later
            _log.info("no DISPLAY: started a private virtual display (Xvfb %s) so every ImageJ command "
                      "honours its options; nothing is shown on screen", display)
        gateway = fiji_mode.create_gateway(request.fiji_dir, headless=headless) if request.fiji_dir else None
        session = Session(mode="fiji" if request.fiji_dir else "embedded", headless=headless, display=display,
                          ij_jar=request.ij_jar, fiji_dir=request.fiji_dir, gateway=gateway,
                          virtual_display=virtual, startup_seconds=seconds)
        session.initialize()
    except BaseException:
        if virtual is not None:
            virtual.stop()
        raise
    jvm.when_stopping(session.on_jvm_stop)
    if headless:
        _log.info("ImageJ runs headless: commands that need a display are refused (HeadlessError)")
    return session


def _choose_display(request: _Request) -> tuple[bool, bool, str | None]:
    """(headless, start Xvfb, display name)."""
    if request.headless:
        return True, False, None
    current = os.environ.get("DISPLAY")
    if current and not request.virtual_display:
        return False, False, current
    if request.virtual_display is False:
        raise ImageJError(
            "virtual_display=False but there is no display (DISPLAY is not set): expected a display, "
            "virtual_display=True/None (deepij starts Xvfb), or headless=True"
        )
    return False, True, None


def _classpath_and_options(request: _Request) -> tuple[list[Path], list[str]]:
    if request.fiji_dir is not None:
        # deepij's jar after Fiji's own: Java steps and deepij's plugin classes (`deepij gui`) are there
        # even when the plugin is not installed; Fiji's copies of the same classes come first
        return ([*locate.fiji_classpath(request.fiji_dir), *java_steps.startup_classpath()],
                [*fiji_mode.jvm_options(request.fiji_dir), *request.options])
    assert request.ij_jar is not None
    # deepImageJ's processing interfaces, so bundle jars link against ImageJ's own class loader
    return ([request.ij_jar, *java_steps.startup_classpath(request.ij_jar)],
            [*_plugins_option(request.ij_jar, request.options), *request.options])


def _plugins_option(ij_jar: Path, options: Sequence[str]) -> list[str]:
    """``-Dplugins.dir`` so ImageJ loads the plugin jars in a ``plugins/`` folder next to its jar.

    That is where ImageJ 1.x looks for plugins beside its own jar (the repository's ``jars/plugins/``, the
    folder of ``DEEPIJ_IJ_JAR``); an explicit ``-Dplugins.dir`` in ``jvm_options`` wins.
    """
    if any(option.startswith("-Dplugins.dir=") for option in options):
        return []
    return [f"-Dplugins.dir={ij_jar.parent}"] if (ij_jar.parent / "plugins").is_dir() else []
