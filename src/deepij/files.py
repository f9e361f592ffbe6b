"""Files written whole or not at all: every output, descriptor, marker and cache entry deepij writes goes
through :func:`atomic_path` (a hidden temporary file next to the target, renamed into place).

The temporary is named ``.<name>.<random>.partial``, so a run killed before its rename leaves only files that
:data:`PARTIAL_SUFFIX` identifies (``deepij run --resume`` removes them). Files get the usual modes: 0666
less the umask, as ``open()`` would give them (``tempfile.mkstemp`` alone makes them private, which a shared
results or models folder cannot use).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

PARTIAL_SUFFIX = ".partial"
"""How the temporary files of an unfinished write end."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "notes.txt") as partial:
    ...     _ = partial.write_text("done")
    >>> (folder / "notes.txt").read_text(), [p.name for p in folder.iterdir()]
    ('done', ['notes.txt'])
    """
    target = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX, dir=target.parent)
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
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "table.csv"
    >>> write_atomically(target, "a,b\\n1,2\\n").read_text()
    'a,b\\n1,2\\n'
    """
    with atomic_path(path, sync=sync) as partial:
        partial.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)
