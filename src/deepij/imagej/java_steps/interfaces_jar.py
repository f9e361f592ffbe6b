"""deepij's jar of deepImageJ's processing interfaces: built from ``jars/src`` with the JDK's ``javac``.

The interfaces carry deepImageJ's package, names and signatures, so a bundle's jar compiled against
deepImageJ links against them. ``scripts/setup.sh`` builds the jar; deepij builds it here on first need
when it is missing or older than its sources (a stamp next to it holds the sources' sha256, as setup.sh
writes it). The JVM start puts it on ImageJ's class path (:func:`startup_classpath`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path

from deepij.errors import ImageJError
from deepij.imagej import locate

_log = logging.getLogger("deepij.imagej")

#: deepij's copy of deepImageJ's processing interfaces: sources, and the jar built from them.
JAVA_SOURCES_DIR = locate.REPO_JARS_DIR / "src"
PROCESSING_JAR = locate.REPO_JARS_DIR / "build" / "deepij-processing.jar"
#: Next to the jar: the sha256 of the sources it was built from (scripts/setup.sh writes the same).
_STAMP = PROCESSING_JAR.with_name(PROCESSING_JAR.name + ".sha256")
_build_lock = threading.Lock()


def processing_jar(*, ij_jar: str | os.PathLike[str] | None = None, build: bool = True) -> Path:
    """deepij's jar of deepImageJ's processing interfaces, built with the JDK's ``javac`` when missing or
    older than its sources (``jars/src``).

    Parameters
    ----------
    ij_jar : path, optional
        The ImageJ jar to compile against (default: the one :func:`deepij.imagej.locate.find_ij_jar` finds).
    build : bool
        False: never build, only return an up-to-date jar.

    Raises
    ------
    ImageJError
        No up-to-date jar and it cannot be built (no sources, no ``javac``, a compiler error, a read-only
        folder); the message says how to get one.

    Examples
    --------
    >>> processing_jar().name
    'deepij-processing.jar'
    """
    with _build_lock:
        sources = _java_sources()
        digest = _sources_digest(sources)
        if PROCESSING_JAR.is_file() and _read_stamp() == digest:
            return PROCESSING_JAR
        if not build:
            raise ImageJError(f"{PROCESSING_JAR} is missing or older than {JAVA_SOURCES_DIR} "
                              "(expected it built: run scripts/setup.sh)")
        _build_processing_jar(sources, digest, ij_jar)
        return PROCESSING_JAR


def startup_classpath(ij_jar: str | os.PathLike[str] | None = None) -> list[Path]:
    """What the JVM start adds to ImageJ's class path for Java steps: deepij's interfaces jar (built if
    needed), or nothing when it cannot be built (logged; :func:`run_java_step` then says how to fix it).

    Examples
    --------
    >>> [p.name for p in startup_classpath()]
    ['deepij-processing.jar']
    """
    try:
        return [processing_jar(ij_jar=ij_jar)]
    except ImageJError as error:
        _log.warning("Java processing steps of bundles will not run: %s", error)
        return []


_build_lock = threading.Lock()


def _java_sources() -> list[Path]:
    sources = sorted(JAVA_SOURCES_DIR.rglob("*.java"), key=lambda p: p.as_posix())
    if not sources:
        raise ImageJError(
            f"no Java sources in {JAVA_SOURCES_DIR} (expected deepImageJ's processing interfaces, which come "
            "with a deepij source checkout): Java processing steps need them"
        )
    return sources


def _sources_digest(sources: Sequence[Path]) -> str:
    """sha256 of the sources, concatenated in byte order of their paths (as scripts/setup.sh computes it)."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _read_stamp() -> str | None:
    try:
        return _STAMP.read_text().strip()
    except OSError:
        return None


def _javac() -> Path:
    found = shutil.which("javac")
    if found is not None:
        return Path(found)
    candidate = locate.find_java_home() / "bin" / "javac"
    if candidate.is_file():
        return candidate
    raise ImageJError(
        f"{PROCESSING_JAR} is missing and there is no javac to build it (a Java runtime without the JDK): "
        "install one with `apt-get install openjdk-17-jdk` and run scripts/setup.sh"
    )


def _build_processing_jar(sources: Sequence[Path], digest: str,
                          ij_jar: str | os.PathLike[str] | None) -> None:
    javac = _javac()
    build_dir = PROCESSING_JAR.parent
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=build_dir))
    except OSError as error:
        raise ImageJError(f"{build_dir}: cannot write the interfaces jar there ({error}); run "
                          "scripts/setup.sh as a user who can write to it") from error
    try:
        classes = scratch / "classes"
        command = [str(javac), "-nowarn", "--release", "8", "-encoding", "UTF-8", "-d", str(classes)]
        with contextlib.suppress(ImageJError):
            command += ["-cp", str(locate.find_ij_jar(ij_jar))]  # the interfaces need only java.util
        _log.info("building %s with %s", PROCESSING_JAR, javac)
        done = subprocess.run([*command, *map(str, sources)], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise ImageJError(f"javac could not compile {JAVA_SOURCES_DIR} into {PROCESSING_JAR}:\n"
                              f"{(done.stderr or done.stdout).strip()}")
        partial = scratch / PROCESSING_JAR.name
        write_jar(partial, classes)
        stamp = scratch / _STAMP.name
        stamp.write_text(digest + "\n")
        # jar, then stamp: a reader never sees a stamp vouching for an older jar
        os.replace(partial, PROCESSING_JAR)
        os.replace(stamp, _STAMP)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_jar(target: Path, classes: Path) -> Path:
    """Pack a folder of compiled classes into a jar (a zip with a manifest first), as the ``jar`` tool does.

    Examples
    --------
    >>> import tempfile
    >>> classes = Path(tempfile.mkdtemp()) / "classes"
    >>> with zipfile.ZipFile(processing_jar()) as built:  # some compiled classes
    ...     built.extractall(classes, [name for name in built.namelist() if name.endswith(".class")])
    >>> packed = sorted(path.relative_to(classes).as_posix() for path in classes.rglob("*.class"))
    >>> with zipfile.ZipFile(write_jar(classes.with_name("again.jar"), classes)) as jar:
    ...     jar.namelist()[0], jar.namelist()[1:] == packed
    ('META-INF/MANIFEST.MF', True)
    >>> "deepimagej/processing/PreProcessingInterface.class" in packed
    True
    """
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nCreated-By: deepij\r\n\r\n")
        for path in sorted(classes.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(classes).as_posix())
    return target
