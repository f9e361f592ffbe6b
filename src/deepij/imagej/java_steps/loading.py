"""Loading a step's code with its own class loader, kept per file and modification time.

Each bundle's code gets its own ``java.net.URLClassLoader`` whose parent is ImageJ's class loader (or, when
ImageJ's class path lacks deepImageJ's interfaces, a loader holding deepij's jar above ImageJ's): the
interfaces and the ``ij`` classes are the ones ImageJ uses, even when a bundle's jar packs copies of them.
The loader is kept per file and modification time, so running a step again does not load its classes again
(their static state survives), while a rebuilt jar is loaded afresh.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepij.errors import StepError
from deepij.imagej._java import java_summary, jc, jstr
from deepij.imagej.java_steps.interfaces_jar import processing_jar
from deepij.imagej.java_steps.stages import STAGES, Stage


@dataclass
class LoadedCode:
    """One step's code, loaded: its class loader and the class names it holds."""

    path: Path
    stamp: tuple[tuple[int, int], ...]
    loader: Any
    class_names: tuple[str, ...]
    chosen: dict[tuple[str | None, str], Any] = field(default_factory=dict)

    def step_class(self, class_name: str | None, stage: Stage) -> Any:
        """The java.lang.Class to run (found once per name and stage)."""
        key = (class_name, stage.interface)
        if key not in self.chosen:
            interface = class_for(stage.interface, self.loader)
            if class_name is None:
                self.chosen[key] = self._only_implementation(interface, stage)
            else:
                self.chosen[key] = self._named_class(class_name, interface, stage)
        return self.chosen[key]

    def _named_class(self, class_name: str, interface: Any, stage: Stage) -> Any:
        qualified = class_name.strip()
        if "." not in qualified and qualified not in self.class_names:
            same_simple = [n for n in self.class_names if n.rsplit(".", 1)[-1] == qualified]
            if len(same_simple) == 1:  # descriptors often leave out the package
                qualified = same_simple[0]
        try:
            cls = class_for(qualified, self.loader)
        except Exception as error:
            raise StepError(f"{self.path}: cannot load class {class_name!r} ({java_summary(error)}; "
                            f"classes in it: {_listing(self.class_names)})") from error
        if not bool(interface.isAssignableFrom(cls)):
            raise StepError(
                f"{self.path}: class {jstr(cls.getName())} does not implement {stage.interface} (it "
                f"implements {_listing(_interface_names(cls)) or 'no interface'}; expected a {stage.label} "
                f"step)"
            )
        return cls

    def _only_implementation(self, interface: Any, stage: Stage) -> Any:
        found, unloadable = [], []
        for name in self.class_names:
            try:
                cls = class_for(name, self.loader)
            except Exception as error:  # a class whose dependencies are missing cannot be the step
                unloadable.append(f"{name} ({java_summary(error)})")
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


_cache: dict[tuple[Path, tuple[Path, ...]], LoadedCode] = {}
_cache_lock = threading.Lock()
_interfaces_loader: Any = None


def loaded_code(path: Path, libraries: tuple[Path, ...] = ()) -> LoadedCode:
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
    code = LoadedCode(path, stamp, _new_loader([root, *libraries]), class_names)
    with _cache_lock:
        old = _cache.get(key)
        _cache[key] = code
    if old is not None:
        with contextlib.suppress(Exception):
            old.loader.close()  # classes already loaded from it keep working
    return code


def forget_loaded_steps() -> None:
    """Drop every cached class loader: the next step loads its code afresh (and closes the old jars)."""
    with _cache_lock:
        loaded = list(_cache.values())
        _cache.clear()
    for code in loaded:
        with contextlib.suppress(Exception):
            code.loader.close()


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
    >>> with zipfile.ZipFile(processing_jar()) as jar:
    ...     data = jar.read("deepimagej/processing/PreProcessingInterface.class")
    >>> class_file_name(data)
    'deepimagej.processing.PreProcessingInterface'
    >>> class_file_name(b"PK\\x03\\x04")
    Traceback (most recent call last):
    ValueError: no Java class file signature (0xCAFEBABE)
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
                class_for(STAGES["pre"].interface, imagej_loader)
                _interfaces_loader = imagej_loader
            except Exception:
                _interfaces_loader = _url_class_loader([processing_jar()], imagej_loader)
        return _interfaces_loader


def java_class(name: str) -> Any:
    """A java.lang.Class of the JVM's own class path."""
    import jpype

    return jpype.JClass(name).class_


def class_for(name: str, loader: Any) -> Any:
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
