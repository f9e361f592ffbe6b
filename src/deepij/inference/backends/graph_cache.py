"""Converted and relaxed ONNX graphs kept on disk, so a second process skips conversion and verification.

An entry lives under ``<deepij cache>/graphs/`` (``$DEEPIJ_CACHE_DIR``, see
:func:`deepij.bundle.locations.cache_dir`), named by a key made of the weights' sha256, what was done to them
and the versions of deepij and of the engines involved: a new torch or onnxruntime gets a fresh entry.

One entry is one file: a JSON header line (what was done, the route that worked, figures, the payload's
length and sha256), then the ONNX bytes. It is written to a temporary file in the same folder and renamed
over the final name, so concurrent writers never leave a half-written entry (the last rename wins, and
every one is complete). A header that does not parse or a payload whose sha256 differs is a corrupt entry:
it is removed and reported as a miss, and the caller rebuilds it. A cache folder that cannot be written
costs only the time: the graph is used without being kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("deepij.inference.backends")

FOLDER = "graphs"
SUFFIX = ".onnxcache"


@dataclass(frozen=True)
class CachedGraph:
    """A cache entry: the ONNX bytes and what the header says about them."""

    model: bytes
    meta: Mapping[str, Any] = field(default_factory=dict)


def cache_folder() -> Path:
    """``<deepij cache>/graphs`` (not created here)."""
    from deepij.bundle.locations import cache_dir

    return cache_dir() / FOLDER


def file_sha256(path: Path) -> str:
    """sha256 of a file, or of every file below a folder (names included), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def weights_digest(description: Any, weights: Any) -> str | None:
    """The sha256 of a weights entry: the descriptor's, else computed from its file or folder; None when it
    has no file that can be read (a backend made in memory)."""
    if getattr(weights, "sha256", None):
        return str(weights.sha256)
    try:
        return file_sha256(description.path(weights.source))
    except (OSError, AttributeError, TypeError, ValueError):
        return None


def cache_key(*parts: object) -> str:
    """A file-name-safe key for these parts (weights sha256, the operation, versions, ...).

    Examples
    --------
    >>> cache_key("ab" * 32, "relax", "deepij 0.1.0") == cache_key("ab" * 32, "relax", "deepij 0.1.0")
    True
    >>> len(cache_key("x"))
    40
    """
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:40]


def tensors_text(description: Any) -> str:
    """Everything about a description's tensors that a converted, relaxed or timed graph depends on: per
    input and output, its name, data type and every axis with its size rule (channel counts, fixed sizes,
    references). Part of every cache key: the same weights file under another descriptor (three channels
    there, one here) is another graph.
    """
    return repr(
        [
            (s.name, s.data_type, [(a.id, a.size) for a in s.axes])
            for s in (*description.inputs, *description.outputs)
        ]
    )


def versions(*packages: str) -> tuple[str, ...]:
    """``"name version"`` of each installed package (``"name absent"`` when it is not), read from the
    installed metadata: a cache key is made without importing the frameworks (torch alone takes ~2 s),
    so a warm start never imports one it does not run.

    Examples
    --------
    >>> versions("numpy")[0].startswith("numpy ")
    True
    """
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in packages:
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} absent")
    return tuple(found)


def entry_path(key: str) -> Path:
    return cache_folder() / f"{key}{SUFFIX}"


def load(key: str) -> CachedGraph | None:
    """The entry for ``key``, or None when there is none or it was corrupt (then it is removed)."""
    path = entry_path(key)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header, _, payload = data.partition(b"\n")
    try:
        meta = json.loads(header)
        intact = (
            isinstance(meta, dict)
            and meta.get("length") == len(payload)
            and meta.get("sha256") == hashlib.sha256(payload).hexdigest()
        )
    except ValueError:
        intact = False
    if not intact:
        log.warning("graph cache entry %s is corrupt: removed, the graph is rebuilt", path)
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return CachedGraph(payload, meta)


def store(key: str, model: bytes, meta: Mapping[str, Any]) -> Path | None:
    """Write the entry atomically (temporary file + rename); None when the cache cannot be written."""
    folder = cache_folder()
    header = dict(meta, length=len(model), sha256=hashlib.sha256(model).hexdigest())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{key}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(json.dumps(header, sort_keys=True).encode() + b"\n")
                stream.write(model)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, entry_path(key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as error:
        log.info("graph cache %s not written (%s): the graph is used without being kept", folder, error)
        return None
    return entry_path(key)
