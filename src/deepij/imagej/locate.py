"""Finding what the ImageJ session needs on disk: ij.jar, a Java runtime, a Fiji.app. No JVM here.

Examples
--------
>>> from deepij.imagej.locate import find_java_home
>>> (find_java_home() / "bin" / "java").exists()
True
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from deepij.errors import ArgumentError, DeepijError, ImageJError

#: Where Debian's libij-java puts ImageJ 1.x.
SYSTEM_IJ_JAR = Path("/usr/share/java/ij.jar")

#: The repository's jars/ folder (a source checkout: src/deepij/imagej/locate.py -> repo root).
REPO_JARS_DIR = Path(__file__).resolve().parents[3] / "jars"

_IJ_JAR_NAME = re.compile(r"^ij(-\d+(\.\d+)*[a-z]?)?\.jar$")


def find_ij_jar(ij_jar: str | os.PathLike[str] | None = None) -> Path:
    """The ImageJ 1.x jar to start: the argument, ``DEEPIJ_IJ_JAR``, the repo's ``jars/``, then Debian's.

    Parameters
    ----------
    ij_jar : path, optional
        An explicit jar. It must exist: an explicit choice is never silently replaced by another jar.

    Raises
    ------
    ArgumentError
        When the ``ij_jar`` argument names no jar.
    ImageJError
        When ``DEEPIJ_IJ_JAR`` names no jar, or none is found anywhere (the message says how to get one).

    Examples
    --------
    >>> find_ij_jar().name.endswith(".jar")
    True
    """
    if ij_jar is not None:
        return _existing_jar(Path(ij_jar), "ij_jar argument")
    from_env = os.environ.get("DEEPIJ_IJ_JAR")
    if from_env:
        return _existing_jar(Path(from_env), "DEEPIJ_IJ_JAR")
    in_repo = _newest_ij_jar(REPO_JARS_DIR)
    if in_repo is not None:
        return in_repo
    if SYSTEM_IJ_JAR.is_file():
        return SYSTEM_IJ_JAR
    raise ImageJError(
        "no ImageJ 1.x jar found (looked at the ij_jar argument, DEEPIJ_IJ_JAR, "
        f"{REPO_JARS_DIR}/ij*.jar and {SYSTEM_IJ_JAR}); install one with `apt-get install libij-java`, "
        "or pass ij_jar='/path/to/ij.jar', or fiji='/path/to/Fiji.app'"
    )


def _existing_jar(path: Path, where: str) -> Path:
    error = _error_class(where)
    path = path.expanduser()
    if not path.is_file():
        raise error(f"{where}: ImageJ jar {str(path)!r} does not exist (expected the path of an ij.jar file)")
    if path.suffix.lower() != ".jar":
        raise error(f"{where}: {str(path)!r} is not a .jar file (expected the path of an ij.jar file)")
    # absolute, not resolved: a jar linked into a folder keeps that folder (its plugins/ are looked up there)
    return Path(os.path.abspath(path))


def _error_class(where: str) -> type[DeepijError]:
    """ArgumentError for what the caller passed, ImageJError for settings found elsewhere (environment)."""
    return ArgumentError if where.endswith("argument") else ImageJError


def _newest_ij_jar(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    jars = [p for p in folder.iterdir() if p.is_file() and _IJ_JAR_NAME.match(p.name)]
    if not jars:
        return None
    # absolute, not resolved: a link to Debian's ij.jar dropped here keeps jars/plugins/ as its plugins
    newest = max(jars, key=lambda p: _version_key(p.name))
    return Path(os.path.abspath(newest))


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", name))


def find_java_home() -> Path:
    """The Java home whose ``lib/server/libjvm.so`` JPype will load.

    ``JAVA_HOME`` when it holds a JVM; otherwise the real location of the ``java`` on ``PATH`` (Debian's
    ``/usr/bin/java`` is a chain of links into ``/usr/lib/jvm/...``). Giving JPype this path directly is
    what keeps start-up fast: without it JPype searches ``/usr`` for a libjvm (seconds).

    Raises
    ------
    ImageJError
        When no Java runtime is found.
    """
    env_home = os.environ.get("JAVA_HOME")
    if env_home and _libjvm(Path(env_home)) is not None:
        return Path(env_home).resolve()
    java = shutil.which("java")
    if java is not None:
        home = Path(java).resolve().parent.parent
        if _libjvm(home) is not None:
            return home
    raise ImageJError(
        "no Java runtime found (JAVA_HOME is "
        f"{env_home!r}, `java` on PATH is {java!r}); install one with `apt-get install openjdk-17-jre` "
        "or set JAVA_HOME to a JDK/JRE folder that has lib/server/libjvm.so"
    )


def find_libjvm(java_home: Path) -> Path:
    """The ``libjvm`` shared library inside a Java home."""
    found = _libjvm(java_home)
    if found is None:
        raise ImageJError(f"{java_home}: no lib/server/libjvm.so in this Java home")
    return found


def _libjvm(home: Path) -> Path | None:
    for relative in ("lib/server/libjvm.so", "jre/lib/amd64/server/libjvm.so", "lib/server/libjvm.dylib"):
        candidate = home / relative
        if candidate.is_file():
            return candidate
    return None


def check_fiji_dir(fiji: str | os.PathLike[str], *, where: str = "fiji argument") -> Path:
    """Check that a folder is a Fiji.app (ImageJ2 with the legacy layer) and return it, resolved.

    A Fiji.app has a ``jars/`` folder holding ImageJ 1.x (``ij-*.jar``), ImageJ2 (``imagej-2*.jar`` or
    ``imagej-<version>.jar``) and the legacy bridge (``imagej-legacy-*.jar``).

    Raises
    ------
    ArgumentError
        For the ``fiji`` argument: naming the folder and what is missing.
    ImageJError
        The same for a folder from elsewhere (``DEEPIJ_FIJI``): a setting, not an argument.
    """
    error = _error_class(where)
    path = Path(fiji).expanduser()
    expected = "a Fiji.app folder with jars/ij-*.jar, jars/imagej-<version>.jar and jars/imagej-legacy-*.jar"
    if not path.exists():
        raise error(f"{where}: {str(path)!r} does not exist (expected {expected})")
    if not path.is_dir():
        raise error(f"{where}: {str(path)!r} is a file, not a folder (expected {expected})")
    jars = path / "jars"
    if not jars.is_dir():
        raise error(
            f"{where}: {str(path)!r} is not a Fiji.app: it has no jars/ folder (expected {expected})"
        )
    names = [p.name for p in jars.iterdir()]
    wanted = {
        "jars/ij-*.jar": re.compile(r"^ij-\d.*\.jar$"),
        "jars/imagej-<version>.jar": re.compile(r"^imagej-\d.*\.jar$"),
        "jars/imagej-legacy-*.jar": re.compile(r"^imagej-legacy-.*\.jar$"),
    }
    missing = [label for label, pattern in wanted.items() if not any(pattern.match(n) for n in names)]
    if missing:
        raise error(
            f"{where}: {str(path)!r} is not a Fiji.app: missing {', '.join(missing)} (expected {expected})"
        )
    return path.resolve()


def find_fiji_dir(fiji: str | os.PathLike[str] | None) -> Path | None:
    """The Fiji.app to start: the argument, else ``DEEPIJ_FIJI``, else None (embedded ImageJ)."""
    if fiji is not None:
        return check_fiji_dir(fiji)
    from_env = os.environ.get("DEEPIJ_FIJI")
    if from_env:
        return check_fiji_dir(from_env, where="DEEPIJ_FIJI")
    return None


def fiji_classpath(fiji_dir: Path) -> list[Path]:
    """Every jar under a Fiji.app's ``jars/`` and ``plugins/`` (what its launcher puts on the class path).

    Platform-specific jars of other systems (``jars/win64``, ``jars/macosx``...) are left out.
    """
    other_platforms = {"win32", "win64", "macosx", "macos", "linux32", "linux-arm64", "macos-arm64"}
    found: list[Path] = []
    for top in ("jars", "plugins"):
        root = fiji_dir / top
        if not root.is_dir():
            continue
        for jar in sorted(root.rglob("*.jar")):
            if not other_platforms.intersection(jar.relative_to(root).parts[:-1]):
                found.append(jar)
    return found
