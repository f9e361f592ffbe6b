"""Java pre- and post-processing steps of deepImageJ bundles, run inside the session's ImageJ.

A bundle may carry its processing as Java code: a jar (or a ``.class`` file, or a folder of them) with a
class implementing ``deepimagej.processing.PreProcessingInterface`` or ``PostProcessingInterface``. Its
descriptor names it ``{spec: "File.jar Class::method"}``. :func:`run_java_step` runs one such step the way
deepImageJ does: a new instance of the class gets the absolute paths of the config files
(``setConfigFiles``), then the map from tensor name to ``ImagePlus`` / ``ResultsTable`` (its stage's method),
then is asked for an error message (``error()``).

Class loading
-------------
deepij ships the two interfaces itself (``jars/src``, built into ``jars/build/deepij-processing.jar`` by
``scripts/setup.sh``, or here with ``javac`` on first need; see :func:`processing_jar`). They carry
deepImageJ's package, names and signatures, so a jar compiled against deepImageJ links against them.
Each bundle's code gets its own ``java.net.URLClassLoader`` whose parent is ImageJ's class loader (or, when
ImageJ's class path lacks the interfaces, a loader holding deepij's jar above ImageJ's): the interfaces and
the ``ij`` classes are the ones ImageJ uses, even when a bundle's jar packs copies of them. The loader is
kept per file and modification time, so running a step again does not load its classes again (their static
state survives), while a rebuilt jar is loaded afresh.

Threads
-------
A step never overlaps a macro: it takes the lock macro runs hold and runs on a thread of its own while the
caller answers the windows nobody can click (messages are answered, an error box or a dialog waiting for
input fails the step), as :mod:`deepij.imagej.macros` does for macros. Called from inside a running macro
(a command handler), it runs right there: that macro's watcher answers its windows.

Examples
--------
>>> out = run_java_step(session, "postprocessing.jar", None, "post", {"output": prediction})  # doctest: +SKIP
>>> session.to_dataframe(out["Results"])                                                   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import weakref
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from deepij.errors import ArgumentError, ArgumentTypeError, ImageJError, StepError
from deepij.imagej import dialogs, locate
from deepij.imagej._java import jc, jstr
from deepij.imagej.worker import Worker

if TYPE_CHECKING:
    from deepij.imagej.session import Session

_log = logging.getLogger("deepij.imagej")

#: deepij's copy of deepImageJ's processing interfaces: sources, and the jar built from them.
JAVA_SOURCES_DIR = locate.REPO_JARS_DIR / "src"
PROCESSING_JAR = locate.REPO_JARS_DIR / "build" / "deepij-processing.jar"
#: Next to the jar: the sha256 of the sources it was built from (scripts/setup.sh writes the same).
_STAMP = PROCESSING_JAR.with_name(PROCESSING_JAR.name + ".sha256")
#: How long a step stopped for a dialog or a time limit gets to return before its thread is given up.
STOP_GRACE_S = 5.0
#: Stack frames of a Java exception quoted in the StepError.
_TRACE_FRAMES = 8
#: Frames from here on are the call into the step (JPype, reflection), not the step's own code.
_CALLER_FRAMES = ("org.jpype.", "jdk.internal.reflect.", "java.lang.reflect.", "sun.reflect.")


@dataclass(frozen=True)
class _Stage:
    interface: str
    method: str
    label: str


_STAGES = {
    "pre": _Stage("deepimagej.processing.PreProcessingInterface", "deepimagejPreprocessing",
                  "pre-processing"),
    "post": _Stage("deepimagej.processing.PostProcessingInterface", "deepimagejPostprocessing",
                   "post-processing"),
}


# =========================================================================================== public API
def run_java_step(
    session: Session,
    jar: str | os.PathLike[str],
    class_name: str | None,
    stage: Literal["pre", "post"],
    tensors: Mapping[str, Any],
    config_files: Sequence[str | os.PathLike[str]] = (),
    method: str | None = None,
    *,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run a bundle's Java pre- or post-processing step on ImageJ images and tables.

    Parameters
    ----------
    session : Session
        The ImageJ session (``deepij.imagej()``).
    jar : path
        The step's code: a ``.jar``, a ``.class`` file, or a folder of ``.class`` files (a class path root).
    class_name : str or None
        The class to run (``"my.pkg.Normalize"``; a name without package is matched against the jar's
        classes). None: the one class in ``jar`` implementing the stage's interface.
    stage : {"pre", "post"}
        ``"pre"``: ``deepimagej.processing.PreProcessingInterface``; ``"post"``: ``PostProcessingInterface``.
    tensors : mapping of str to value
        Tensor name to ``ij.ImagePlus`` / ``ij.measure.ResultsTable``, or to a numpy array / xarray
        (copied into an ImagePlus titled by the name) / DataFrame (copied into a ResultsTable).
    config_files : sequence of paths
        The files handed to ``setConfigFiles`` (a bundle's ``weights.*.attachments.files``), made absolute.
        Jars among them are also on the step's class path (libraries the step uses), as in deepImageJ.
    method : str, optional
        The method the descriptor names after ``::``. None or the interface's method
        (``deepimagejPreprocessing`` / ``deepimagejPostprocessing``) runs it through the interface; another
        name runs that public method of the class, which must take the map as its one argument.
    timeout : float, optional
        Seconds after which the step is given up (its thread is interrupted, then abandoned).

    Returns
    -------
    dict of str to Java object
        The map the step returned: names to ``ImagePlus`` / ``ResultsTable`` objects (convert them with
        ``session.to_xarray`` / ``session.to_dataframe``).

    Raises
    ------
    StepError
        The code cannot be loaded (missing file, not a zip, no or several implementing classes, a class that
        does not implement the interface), the step threw (message and top of the Java stack trace), its
        ``error()`` returned a message, it opened an error box or waited for input, or it ran past
        ``timeout``. The message names the file and the class.
    ArgumentError, ArgumentTypeError
        A bad ``stage``, ``tensors`` or ``config_files`` argument.
    ImageJError
        The session is closed, or deepij's interfaces jar is missing and cannot be built.

    Examples
    --------
    >>> out = run_java_step(session, "pre.jar", "Scale", "pre", {"input": image},   # doctest: +SKIP
    ...                     config_files=["scale.txt"])
    >>> session.to_xarray(out["input"])                                             # doctest: +SKIP
    """
    if session.closed:
        raise ImageJError("this ImageJ session was shut down (a JVM cannot restart within one process)")
    spec = _stage(stage)
    code_path = _code_path(jar)
    configs = _config_paths(config_files)
    if class_name is not None and (not isinstance(class_name, str) or not class_name.strip()):
        raise ArgumentTypeError(f"class_name: expected a class name (str) or None, found {class_name!r}")
    if method is not None and (not isinstance(method, str) or not method.strip()):
        raise ArgumentTypeError(f"method: expected a method name (str) or None, found {method!r}")
    if timeout is not None and not timeout > 0:
        raise ArgumentError(f"timeout: expected a number of seconds > 0 or None, found {timeout!r}")
    with _exclusive(session) as inline:
        libraries = tuple(Path(f) for f in configs if f.lower().endswith(".jar"))
        step_class = _loaded_code(code_path, libraries).step_class(class_name, spec)
        where = f"{code_path}: {step_class.getName()}"
        inputs = _input_map(session, tensors)
        job = _StepCall(step_class, spec, method, configs, inputs, where)
        if inline:
            return job.run()
        return _Watch(session, job, timeout).result()


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


def forget_loaded_steps() -> None:
    """Drop every cached class loader: the next step loads its code afresh (and closes the old jars)."""
    with _cache_lock:
        loaded = list(_cache.values())
        _cache.clear()
    for code in loaded:
        with contextlib.suppress(Exception):
            code.loader.close()


# ======================================================================================= the interfaces jar
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
    >>> write_jar(tmp_path / "step.jar", tmp_path / "classes")  # doctest: +SKIP
    """
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nCreated-By: deepij\r\n\r\n")
        for path in sorted(classes.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(classes).as_posix())
    return target


# ======================================================================================= arguments
def _stage(stage: Any) -> _Stage:
    if stage not in _STAGES:
        raise ArgumentError(f"stage: expected 'pre' or 'post', found {stage!r}")
    return _STAGES[stage]


def _code_path(jar: Any) -> Path:
    if not isinstance(jar, str | os.PathLike):
        raise ArgumentTypeError(f"jar: expected the path of a .jar, a .class file or a folder, found "
                                f"{type(jar).__name__}")
    path = Path(jar).expanduser()
    if not path.exists():
        raise StepError(f"Java step {str(path)!r} does not exist (expected a .jar, a .class file or a folder "
                        "of .class files)")
    return path.resolve()


def _config_paths(config_files: Any) -> list[str]:
    if isinstance(config_files, str | os.PathLike) or not isinstance(config_files, Sequence):
        raise ArgumentTypeError(f"config_files: expected a list of paths, found {config_files!r}")
    absolute = []
    for index, item in enumerate(config_files):
        if not isinstance(item, str | os.PathLike):
            raise ArgumentTypeError(f"config_files[{index}]: expected a path, found {type(item).__name__}")
        path = Path(item).expanduser().resolve()
        if not path.exists():
            raise StepError(f"config file {str(path)!r} of the Java step does not exist "
                            f"(config_files[{index}]; expected an existing file)")
        absolute.append(str(path))
    return absolute


def _input_map(session: Session, tensors: Any) -> Any:
    """A java.util.HashMap of the tensors, arrays and DataFrames copied into ImagePlus / ResultsTable."""
    import jpype

    if not isinstance(tensors, Mapping):
        raise ArgumentTypeError(f"tensors: expected a mapping of tensor name to image or table, found "
                                f"{type(tensors).__name__}")
    inputs = jpype.JClass("java.util.HashMap")()
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise ArgumentTypeError(f"tensors: keys are tensor names (non-empty str), found {name!r}")
        inputs.put(name, _java_value(session, name, value))
    return inputs


def _java_value(session: Session, name: str, value: Any) -> Any:
    import jpype

    if isinstance(value, jpype.JObject):  # ImagePlus, ResultsTable, or whatever Java object a step takes
        return value
    if isinstance(value, np.ndarray | xr.DataArray):
        try:
            return session.to_imageplus(value, title=name)
        except ValueError as error:
            raise ArgumentError(f"tensors[{name!r}]: {error}") from error
    if isinstance(value, pd.DataFrame):
        return session.to_resultstable(value)
    raise ArgumentTypeError(f"tensors[{name!r}]: expected an ij.ImagePlus, ij.measure.ResultsTable, numpy "
                            f"array, xarray.DataArray or pandas.DataFrame, found {type(value).__name__}")


# ======================================================================================= class loading
@dataclass
class _LoadedCode:
    """One step's code, loaded: its class loader and the class names it holds."""

    path: Path
    stamp: tuple[tuple[int, int], ...]
    loader: Any
    class_names: tuple[str, ...]
    chosen: dict[tuple[str | None, str], Any] = field(default_factory=dict)

    def step_class(self, class_name: str | None, stage: _Stage) -> Any:
        """The java.lang.Class to run (found once per name and stage)."""
        key = (class_name, stage.interface)
        if key not in self.chosen:
            interface = _class_for(stage.interface, self.loader)
            if class_name is None:
                self.chosen[key] = self._only_implementation(interface, stage)
            else:
                self.chosen[key] = self._named_class(class_name, interface, stage)
        return self.chosen[key]

    def _named_class(self, class_name: str, interface: Any, stage: _Stage) -> Any:
        qualified = class_name.strip()
        if "." not in qualified and qualified not in self.class_names:
            same_simple = [n for n in self.class_names if n.rsplit(".", 1)[-1] == qualified]
            if len(same_simple) == 1:  # descriptors often leave out the package
                qualified = same_simple[0]
        try:
            cls = _class_for(qualified, self.loader)
        except Exception as error:
            raise StepError(f"{self.path}: cannot load class {class_name!r} ({_java_summary(error)}; "
                            f"classes in it: {_listing(self.class_names)})") from error
        if not bool(interface.isAssignableFrom(cls)):
            raise StepError(
                f"{self.path}: class {jstr(cls.getName())} does not implement {stage.interface} (it "
                f"implements {_listing(_interface_names(cls)) or 'no interface'}; expected a {stage.label} "
                f"step)"
            )
        return cls

    def _only_implementation(self, interface: Any, stage: _Stage) -> Any:
        found, unloadable = [], []
        for name in self.class_names:
            try:
                cls = _class_for(name, self.loader)
            except Exception as error:  # a class whose dependencies are missing cannot be the step
                unloadable.append(f"{name} ({_java_summary(error)})")
                continue
            if bool(interface.isAssignableFrom(cls)) and _instantiable(cls):
                found.append(cls)
        names = [jstr(c.getName()) or "" for c in found]
        if len(found) == 1:
            return found[0]
        if not found:
            detail = f"; could not load: {_listing(unloadable)}" if unloadable else ""
            raise StepError(f"{self.path}: no class implements {stage.interface} (expected one "
                            f"{stage.label} class; classes in it: {_listing(self.class_names)}{detail})")
        raise StepError(f"{self.path}: several classes implement {stage.interface}: {_listing(names)} "
                        "(expected one; name the class in the descriptor: 'File.jar Class::method')")


_cache: dict[tuple[Path, tuple[Path, ...]], _LoadedCode] = {}
_cache_lock = threading.Lock()
_interfaces_loader: Any = None


def _loaded_code(path: Path, libraries: tuple[Path, ...] = ()) -> _LoadedCode:
    """The cached loader of ``path`` (with the jars it needs), or a new one when a file is new or changed.

    Jars among a step's config files are on its class path too, as deepImageJ puts the weights'
    attachments there: steps ship the libraries they use that way.
    """
    key = (path, libraries)
    stamp = tuple(_file_stamp(p) for p in (path, *libraries))
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached.stamp == stamp:
            return cached
    class_names, root = _inspect_code(path)
    for library in libraries:
        _inspect_code(library)  # a library that is not a jar is named now, not as a missing class later
    code = _LoadedCode(path, stamp, _new_loader([root, *libraries]), class_names)
    with _cache_lock:
        old = _cache.get(key)
        _cache[key] = code
    if old is not None:
        with contextlib.suppress(Exception):
            old.loader.close()  # classes already loaded from it keep working
    return code


def _file_stamp(path: Path) -> tuple[int, int]:
    if path.is_dir():
        files = [p.stat() for p in path.rglob("*") if p.is_file()]
        return max((s.st_mtime_ns for s in files), default=0), sum(s.st_size for s in files)
    status = path.stat()
    return status.st_mtime_ns, status.st_size


def _inspect_code(path: Path) -> tuple[tuple[str, ...], Path]:
    """(class names, class path entry) of a jar, a folder of classes or a .class file."""
    if path.is_dir():
        names = [_class_name_of_entry(p.relative_to(path).as_posix()) for p in sorted(path.rglob("*.class"))]
        return tuple(n for n in names if n), path
    if path.suffix.lower() == ".class":
        return _inspect_class_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise StepError(f"Java step {str(path)!r} is not a jar: {error} (expected a .jar, a zip of compiled "
                        "classes, a .class file or a folder of them)") from error
    return tuple(n for n in map(_class_name_of_entry, entries) if n), path


def _class_name_of_entry(entry: str) -> str | None:
    if not entry.endswith(".class") or entry.startswith("META-INF/") or entry.endswith("module-info.class"):
        return None
    return entry[: -len(".class")].replace("/", ".")


def _inspect_class_file(path: Path) -> tuple[tuple[str, ...], Path]:
    """A single .class file: its class name (read from the file) and the folder its package starts in."""
    try:
        name = class_file_name(path.read_bytes())
    except ValueError as error:
        raise StepError(f"{str(path)!r} is not a compiled Java class: {error}") from error
    parts = name.split(".")
    root = path.parent
    for package in reversed(parts[:-1]):
        if root.name != package:
            raise StepError(
                f"{str(path)!r} holds class {name}, which Java can load only from "
                f"<folder>/{'/'.join(parts)}.class (expected the file there, or a jar)"
            )
        root = root.parent
    if path.stem != parts[-1]:
        raise StepError(f"{str(path)!r} holds class {name} (expected the file to be named {parts[-1]}.class)")
    return (name,), root


def class_file_name(data: bytes) -> str:
    """The fully qualified name of the class a ``.class`` file defines (read from its constant pool).

    Examples
    --------
    >>> class_file_name((tmp_path / "Scale.class").read_bytes())  # doctest: +SKIP
    'my.steps.Scale'
    """
    if len(data) < 10 or data[:4] != b"\xca\xfe\xba\xbe":
        raise ValueError("no Java class file signature (0xCAFEBABE)")
    count = struct.unpack_from(">H", data, 8)[0]
    offset, index = 10, 1
    utf8: dict[int, str] = {}
    class_refs: dict[int, int] = {}
    # bytes after the tag of each fixed-size constant kind (JVM specification, section 4.4)
    fixed = {3: 4, 4: 4, 5: 8, 6: 8, 8: 2, 9: 4, 10: 4, 11: 4, 12: 4, 15: 3, 16: 2, 17: 4, 18: 4, 19: 2,
             20: 2}
    try:
        while index < count:
            tag = data[offset]
            if tag == 1:
                length = struct.unpack_from(">H", data, offset + 1)[0]
                utf8[index] = data[offset + 3: offset + 3 + length].decode("utf-8", "replace")
                offset += 3 + length
            elif tag == 7:
                class_refs[index] = struct.unpack_from(">H", data, offset + 1)[0]
                offset += 3
            elif tag in fixed:
                offset += 1 + fixed[tag]
            else:
                raise ValueError(f"unknown constant pool tag {tag}")
            index += 2 if tag in (5, 6) else 1  # a long or double takes two entries
        this_class = struct.unpack_from(">H", data, offset + 2)[0]
        return utf8[class_refs[this_class]].replace("/", ".")
    except (IndexError, KeyError, struct.error) as error:
        raise ValueError("a truncated or damaged class file") from error


def _new_loader(entries: Sequence[Path]) -> Any:
    return _url_class_loader(entries, _parent_loader())


def _url_class_loader(entries: Sequence[Path], parent: Any) -> Any:
    """A java.net.URLClassLoader over jars and class folders; it asks ``parent`` first (Java's rule)."""
    import jpype

    urls = [jpype.JClass("java.io.File")(str(entry)).toURI().toURL() for entry in entries]
    return jpype.JClass("java.net.URLClassLoader")(jpype.JArray(jpype.JClass("java.net.URL"))(urls), parent)


def _parent_loader() -> Any:
    """ImageJ's class loader when it sees the interfaces (deepij's jar at start-up, or deepImageJ in Fiji),
    else a loader over deepij's interfaces jar whose parent is ImageJ's."""
    global _interfaces_loader
    with _cache_lock:
        if _interfaces_loader is None:
            imagej_loader = jc.IJ.getClassLoader()
            try:
                _class_for(_STAGES["pre"].interface, imagej_loader)
                _interfaces_loader = imagej_loader
            except Exception:
                _interfaces_loader = _url_class_loader([processing_jar()], imagej_loader)
        return _interfaces_loader


def _java_class(name: str) -> Any:
    """A java.lang.Class of the JVM's own class path."""
    import jpype

    return jpype.JClass(name).class_


def _class_for(name: str, loader: Any) -> Any:
    import jpype

    return jpype.JClass("java.lang.Class").forName(name, False, loader)


def _instantiable(cls: Any) -> bool:
    import jpype

    modifiers = jpype.JClass("java.lang.reflect.Modifier")
    return not bool(cls.isInterface()) and not bool(modifiers.isAbstract(cls.getModifiers()))


def _interface_names(cls: Any) -> list[str]:
    names: list[str] = []
    current = cls
    while current is not None:
        names += [jstr(i.getName()) or "" for i in current.getInterfaces()]
        current = current.getSuperclass()
    return names


def _listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ======================================================================================= the call
class _StepCall:
    """Instantiate, configure, run and question one step (on whichever thread runs it)."""

    def __init__(self, step_class: Any, stage: _Stage, method: str | None, configs: list[str], inputs: Any,
                 where: str) -> None:
        self.step_class = step_class
        self.stage = stage
        self.method = None if method in (None, stage.method) else method
        self.configs = configs
        self.inputs = inputs
        self.where = where
        self.java_thread: Any = None

    def run(self) -> dict[str, Any]:
        self.java_thread = jc.Thread.currentThread()
        try:
            return self._run()
        finally:
            jc.Thread.interrupted()  # clears an interrupt sent while stopping it: the thread is reused

    def _run(self) -> dict[str, Any]:
        import jpype

        interface = jpype.JClass(_class_for(self.stage.interface, self.step_class.getClassLoader()))
        instance = self._instantiate()
        step = jpype.JObject(instance, interface)
        self._configure(step, instance)
        call = f"{self.step_class.getSimpleName()}.{self.method or self.stage.method}"
        try:
            returned = self._invoke(step, instance)
        except jpype.JException as error:
            # the Java exception stays the cause: its whole stack trace is there for the step's author
            raise StepError(self._failure(f"{call} threw", error, _step_error(step))) from error
        message = _step_error(step)
        if message:
            raise StepError(f"{self.where}: the {self.stage.label} step reports an error: {message}")
        return self._outputs(returned, call)

    def _instantiate(self) -> Any:
        import jpype

        try:
            constructor = self.step_class.getDeclaredConstructor()
            constructor.setAccessible(True)  # deepImageJ steps are often package-private classes
            return constructor.newInstance()
        except jpype.JException as error:
            if _java_name(error) == "java.lang.NoSuchMethodException":
                raise StepError(f"{self.where}: the class has no constructor without arguments "
                                "(expected one, as deepImageJ creates steps with it)") from None
            raise StepError(self._failure("creating the step threw", _unwrap(error), None)) from None

    def _configure(self, step: Any, instance: Any) -> None:
        import jpype

        files = jpype.JClass("java.util.ArrayList")()
        for path in self.configs:
            files.add(path)
        try:
            step.setConfigFiles(files)
        except jpype.JException as error:
            if _java_name(error) != "java.lang.AbstractMethodError":
                raise StepError(self._failure("setConfigFiles threw", error, None)) from None
            self._configure_old_style(instance, error)

    def _configure_old_style(self, instance: Any, missing: Any) -> None:
        """Steps written for deepImageJ 2.0 have setConfigFile(String) instead: give it the first file."""
        import jpype

        try:
            old = self.step_class.getMethod("setConfigFile", jpype.JClass("java.lang.String"))
        except jpype.JException:
            raise StepError(self._failure("setConfigFiles is missing", missing, None)) from None
        try:
            old.invoke(instance, self.configs[0] if self.configs else "")
        except jpype.JException as error:
            raise StepError(self._failure("setConfigFile threw", _unwrap(error), None)) from None

    def _invoke(self, step: Any, instance: Any) -> Any:
        import jpype

        if self.method is None:
            return getattr(step, self.stage.method)(self.inputs)
        named = self._named_method()
        try:
            return named.invoke(instance, self.inputs)
        except jpype.JException as error:
            raise _unwrap(error) from None

    def _named_method(self) -> Any:
        wanted = [m for m in self.step_class.getMethods() if jstr(m.getName()) == self.method]
        takes_map = [m for m in wanted if len(m.getParameterTypes()) == 1
                     and bool(m.getParameterTypes()[0].isAssignableFrom(_java_class("java.util.HashMap")))]
        if not takes_map:
            found = ", ".join(jstr(m.toGenericString()) or "" for m in wanted) or "none"
            raise StepError(f"{self.where}: no public method {self.method}(HashMap) (found: {found}; "
                            f"expected {self.method} or {self.stage.method} taking the map of tensors)")
        return takes_map[0]

    def _outputs(self, returned: Any, call: str) -> dict[str, Any]:
        if returned is None:
            raise StepError(f"{self.where}: {call} returned null (expected a HashMap of images and tables)")
        if not bool(_java_class("java.util.Map").isInstance(returned)):
            raise StepError(f"{self.where}: {call} returned a {jstr(returned.getClass().getName())} "
                            "(expected a HashMap of images and tables)")
        return {str(entry.getKey()): entry.getValue() for entry in returned.entrySet()}

    def _failure(self, what: str, error: Any, reported: str | None) -> str:
        text = f"{self.where}: {what} {_java_summary(error)}"
        frames = _top_frames(error)
        if frames:
            text += "\n" + "\n".join(f"    at {frame}" for frame in frames)
        cause = error.getCause()
        while cause is not None and not cause.equals(error):
            text += f"\n  caused by {_java_summary(cause)}"
            error, cause = cause, cause.getCause()
        if reported:
            text += f"\n  the step's error(): {reported}"
        return text


def _step_error(step: Any) -> str | None:
    try:
        message = jstr(step.error())
    except Exception:  # a broken error() must not hide what happened before
        return None
    return message.strip() if message and message.strip() else None


def _unwrap(error: Any) -> Any:
    """The exception a reflective call's InvocationTargetException carries."""
    if _java_name(error) == "java.lang.reflect.InvocationTargetException" and error.getCause() is not None:
        return error.getCause()
    return error


def _java_name(error: Any) -> str:
    get_class = getattr(error, "getClass", None)
    return (jstr(get_class().getName()) or "") if get_class is not None else type(error).__name__


def _java_summary(error: Any) -> str:
    """``java.lang.IllegalStateException: its message`` (the class alone when there is no message)."""
    name = _java_name(error)
    message = jstr(error.getMessage()) if hasattr(error, "getMessage") else str(error)
    return f"{name}: {message}" if message else name


def _top_frames(error: Any) -> list[str]:
    frames = []
    for element in list(error.getStackTrace())[:64]:
        text = jstr(element.toString()) or ""
        if text.startswith(_CALLER_FRAMES):
            break
        frames.append(text)
        if len(frames) == _TRACE_FRAMES:
            break
    return frames


# ======================================================================================= threads
@contextlib.contextmanager
def _exclusive(session: Session) -> Any:
    """Hold the lock macro runs hold (yields False), or nothing inside a running macro (yields True)."""
    runner = session.runner
    if runner.in_macro_thread:
        yield True
        return
    # MacroRunner offers no public lock: its _lock is what serializes every macro run of the session
    with runner._lock:
        yield False


_workers: weakref.WeakKeyDictionary[Any, Worker] = weakref.WeakKeyDictionary()


class _Watch:
    """Run a step on the session's Java-step thread; answer its windows; enforce the time limit."""

    def __init__(self, session: Session, job: _StepCall, timeout: float | None) -> None:
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

