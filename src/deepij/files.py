"""Files written whole or not at all, by several processes at once: every output, descriptor, marker and cache
entry deepij writes goes through :func:`atomic_path` (a hidden temporary file next to the target, renamed
into place).

The temporary is named ``.<name>.<pid>-<host>-<random>.partial``: it says which process made it, so a run
killed before its rename leaves only files that :func:`remove_orphaned_temporaries` can prove abandoned (made
on this host by a process that is gone) and remove, while the in-flight files of another live process, or of
a process on another host sharing the folder, are never touched. Files get the usual modes: 0666 less the
umask, as ``open()`` would give them (``tempfile.mkstemp`` alone makes them private, which a shared results or
models folder cannot use).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deepij.errors import ArgumentError, OutputBusyError

PARTIAL_SUFFIX = ".partial"
"""How the temporary files of an unfinished write end."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def host_name() -> str:
    """This machine's name as temporary files record it (letters, digits and ``_`` only, at most 40).

    Examples
    --------
    >>> set(host_name()) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
    True
    """
    return "".join(c if c.isalnum() and c.isascii() else "_" for c in socket.gethostname())[:40] or "host"


def owner_tag() -> str:
    """``<pid>-<host>``: what names this process in the temporary files it makes."""
    return f"{os.getpid()}-{host_name()}"


def temporary_name(target: Path) -> Path:
    """A new, owner-tagged temporary path beside ``target`` (nothing is made there).

    Examples
    --------
    >>> name = temporary_name(Path("out/cells.ome.zarr")).name
    >>> name.startswith(f".cells.ome.zarr.{owner_tag()}-")
    True
    >>> temporary_owner(name) == (os.getpid(), host_name())
    True
    """
    return target.with_name(f".{target.name}.{owner_tag()}-{os.urandom(5).hex()}{PARTIAL_SUFFIX}")


def temporary_owner(name: str) -> tuple[int, str] | None:
    """(pid, host) of the process that made a temporary file or folder named ``name``; None when the name is
    not one deepij's atomic writes make (then nobody can tell whose it is).

    Examples
    --------
    >>> temporary_owner(".a_output.tif.4242-node07-k2j4l1x0.partial")
    (4242, 'node07')
    >>> temporary_owner(".a_output.tif.partial"), temporary_owner("a.tif.1-h-x.partial")
    (None, None)
    """
    if not (name.startswith(".") and name.endswith(PARTIAL_SUFFIX)):
        return None
    tag = name[: -len(PARTIAL_SUFFIX)].rpartition(".")[2]
    parts = tag.split("-")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1] or not parts[2]:
        return None
    return int(parts[0]), parts[1]


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host may still run (True when that cannot be told: someone else's)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process (EPERM), or we cannot tell: it may be alive
    return True


def remove_orphaned_temporaries(folder: Path, *, prefix: str = ".") -> list[Path]:
    """Remove the temporary files and folders in ``folder`` (names starting with ``prefix``) whose maker is
    provably gone: made on this host by a process that no longer runs. Returns the removed paths.

    A temporary of a live process, of a process on another host (a cluster sharing the folder), or without an
    owner in its name is left alone.
    """

    def dead_owner(name: str) -> bool:
        owner = temporary_owner(name) if name.startswith(prefix) else None
        return owner is not None and owner[1] == host_name() and not process_alive(owner[0])

    return remove_entries(folder, dead_owner)


def remove_entries(folder: Path, chosen: Callable[[str], bool]) -> list[Path]:
    """Remove the files and folders directly in ``folder`` whose name ``chosen`` picks (links are removed,
    never followed); the removed paths. A folder that cannot be listed removes nothing."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not chosen(entry.name):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, sync: bool = False) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; renamed to ``path`` when the block ends without an
    error, removed when it raises.

    Parameters
    ----------
    path : str or PathLike
        The file to write (its folder must exist).
    sync : bool
        fsync the file before the rename (for markers that must survive a power cut, e.g. resume records).

    Examples
    --------
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "notes.txt") as partial:
    ...     _ = partial.write_text("done")
    >>> (folder / "notes.txt").read_text(), [p.name for p in folder.iterdir()]
    ('done', ['notes.txt'])
    """
    target = Path(path)
    handle, name = tempfile.mkstemp(
        prefix=f".{target.name}.{owner_tag()}-", suffix=PARTIAL_SUFFIX, dir=target.parent
    )
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        os.chmod(partial, 0o666 & ~_umask())
        if sync:
            with open(partial, "rb+") as stream:
                os.fsync(stream.fileno())
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def write_atomically(path: str | os.PathLike[str], data: bytes | str, *, sync: bool = False) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` so that the file is there complete or not at all.

    Examples
    --------
    >>> target = Path(tempfile.mkdtemp()) / "table.csv"
    >>> write_atomically(target, "a,b\\n1,2\\n").read_text()
    'a,b\\n1,2\\n'
    """
    with atomic_path(path, sync=sync) as partial:
        partial.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's content, read in blocks.

    Examples
    --------
    >>> target = Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = target.write_bytes(b"abc")
    >>> sha256_file(target)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_sha256(path: str | os.PathLike[str]) -> str:
    """:func:`sha256_file`, remembered per file, size and modification time (a model's weights are read
    once per process)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return _cached_sha256(str(resolved), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def writable_folder(path: str | os.PathLike[str], argument: str) -> Path:
    """The folder ``path``, made if missing and checked to take new files (by making one and removing it).

    Raises
    ------
    ArgumentError
        Named after ``argument``: the path is a file, lies below a file, or the folder cannot be made or
        written (read-only or immutable, a system folder such as ``/proc``); the message says what was found.

    Examples
    --------
    >>> folder = writable_folder(Path(tempfile.mkdtemp()) / "out", "output")
    >>> folder.is_dir(), list(folder.iterdir())
    (True, [])
    """
    folder = Path(path).expanduser()
    expected = "expected a folder deepij can write into"
    if folder.exists() and not folder.is_dir():
        raise ArgumentError(f"{argument}: {str(folder)!r} is a file ({expected})")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(
            prefix=f".deepij-write-check.{owner_tag()}-", suffix=PARTIAL_SUFFIX, dir=folder
        )
    except OSError as error:
        why = _why_unwritable(folder, error)
        raise ArgumentError(f"{argument}: {str(folder)!r} {why} ({expected})") from None
    os.close(handle)
    os.unlink(probe)
    return folder


def _why_unwritable(folder: Path, error: OSError) -> str:
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return f"lies below {str(blocker)!r}, which is a file, not a folder"
    return f"cannot be made or written ({type(error).__name__}: {error.strerror or error})"


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str], about: str) -> Iterator[None]:
    """Hold the lock file ``path`` for the block: one holder at a time, across processes and hosts.

    An advisory lock (``flock``; on NFS the kernel maps it to a POSIX lock the server knows), so a holder
    that dies - even by ``kill -9`` - releases it with no stale lock left to clear. The holder writes its
    pid, host and start time into the file (for the message of whoever finds it held) and removes the file
    when the block ends.

    Raises
    ------
    OutputBusyError
        Another process holds it: the message says what (``about``), who (pid, host, since when) and the
        lock file.

    Examples
    --------
    >>> lock = Path(tempfile.mkdtemp()) / "a.lock"
    >>> with exclusive_lock(lock, "image a.tif"):
    ...     lock.is_file()
    True
    >>> lock.exists()
    False
    """
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no advisory locks (atomic renames still keep files whole)
        yield
        return
    target = Path(path)
    handle = _locked_handle(target, about, fcntl)
    try:
        if handle is not None:
            since = time.strftime("%Y-%m-%d %H:%M:%S")
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
            os.ftruncate(handle, 0)
            os.write(handle, json.dumps(holder).encode("utf-8"))
        yield
    finally:
        if handle is not None:
            with contextlib.suppress(OSError):
                target.unlink()  # while holding it: a process that opened it sees another file and retries
            os.close(handle)


def _locked_handle(target: Path, about: str, fcntl: Any) -> int | None:
    """An open handle of ``target`` holding its lock; None where the file system has no locks."""
    while True:
        handle = os.open(target, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not _still_there(handle, target):
                os.close(handle)  # held only while its holder removed it: try the file there now
                continue
            holder = _holder(handle)
            os.close(handle)
            raise OutputBusyError(
                f"{about}: another process is writing it now ({holder}; lock file {str(target)!r}); "
                "expected no other deepij run on the same outputs: run again (with --resume) when it is done"
            ) from None
        except OSError as error:
            os.close(handle)
            if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                return None  # a file system without locks: writes stay atomic, two writers are not kept apart
            raise
        if _still_there(handle, target):
            return handle
        os.close(handle)  # its holder removed it between our open and our lock: take the new file


def _still_there(handle: int, target: Path) -> bool:
    """Whether ``target`` is still the file ``handle`` has open (a holder removes its lock file)."""
    try:
        return os.path.samestat(os.fstat(handle), os.stat(target))
    except FileNotFoundError:
        return False


def remove_abandoned_lock(path: str | os.PathLike[str]) -> bool:
    """Remove the lock file ``path`` when nobody holds it (its holder died before removing it, e.g. by
    ``kill -9``); True when removed. A held lock is left alone."""
    try:
        import fcntl
    except ImportError:
        return False
    target = Path(path)
    try:
        handle = os.open(target, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not _still_there(handle, target):
            return False  # already replaced by a new holder's file
        target.unlink()  # while holding it, as its holder would have
        return True
    except OSError:
        return False  # held by a live process, or gone meanwhile
    finally:
        os.close(handle)


def _holder(handle: int) -> str:
    try:
        os.lseek(handle, 0, os.SEEK_SET)
        holder = json.loads(os.read(handle, 4096).decode("utf-8"))
        return f"pid {holder['pid']} on host {holder['host']}, since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said who it is yet"


FILE_SIGNATURES = (
    (b"II*\x00", "a TIFF file"),
    (b"MM\x00*", "a TIFF file"),
    (b"II+\x00", "a BigTIFF file"),
    (b"MM\x00+", "a BigTIFF file"),
    (b"\x89PNG\r\n\x1a\n", "a PNG file"),
    (b"\xff\xd8\xff", "a JPEG file"),
    (b"GIF8", "a GIF file"),
    (b"BM", "a BMP file"),
    (b"\x93NUMPY", "a .npy array file"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x89HDF", "an HDF5 file"),
)
"""First bytes of the file kinds a bundle or an image folder holds, and their names in messages."""


def describe_content(path: Path) -> str:
    """What a file holds, from its size and first bytes, for messages about files that cannot be read.

    Examples
    --------
    >>> describe_content(Path("examples/nuclei_bundle/cover.png"))
    'a PNG file (116598 bytes)'
    >>> describe_content(Path("examples/nuclei_bundle/rdf.yaml"))  # doctest: +ELLIPSIS
    'text (... bytes)'
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as stream:
            head = stream.read(512)
    except OSError as error:
        return f"a file that cannot be read ({error.strerror or error})"
    if size == 0:
        return "an empty file (0 bytes)"
    kind = next((name for magic, name in FILE_SIGNATURES if head.startswith(magic)), None)
    if kind is None and head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        kind = "an HTML page"  # what a server answers for a file it does not have
    if kind is None:
        printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
        kind = "text" if printable == len(head) else f"unknown data (first bytes {head[:8].hex(' ')})"
    return f"{kind} ({size} bytes)"
