"""Hidden staging folders for unpacking and installing: named after their process, cleaned when it is gone.

Work that must appear all at once (an unpacked zip, a bundle zip opened into the cache, an installed
bundle) is done in a hidden folder beside its target, checked there, and renamed into place at the end;
errors about files in it name what the user gave instead (:func:`error_naming_source`). A process stopped
by ``SIGTERM`` cleans up as after Ctrl-C (:func:`terminate_as_interrupt`); one killed with ``kill -9``
cannot, so every staging folder carries the host and the process id that made it, and the next run removes
those whose process is gone (:func:`remove_stale`). Finished folders get the modes a shared ``models/``
folder needs (:func:`make_readable`): 0755 folders and 0644 files, less what the umask takes away.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from deepij.errors import BundleError
from deepij.files import host_name as _host
from deepij.files import process_alive as _alive
from deepij.files import remove_entries


def make_staging(parent: Path, prefix: str) -> Path:
    """A new hidden folder ``<prefix><pid>-<host>-<random>`` in ``parent`` (stale ones there removed first).

    Examples
    --------
    >>> models = Path(tempfile.mkdtemp())
    >>> staging = make_staging(models, ".deepij-install-")  # .deepij-install-4242-myhost-k2j4l1x0
    >>> staging.parent == models, staging.name.startswith(f".deepij-install-{os.getpid()}-")
    (True, True)
    """
    remove_stale(parent, prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-{_host()}-", dir=parent))


def owner_pid(name: str, prefix: str) -> int | None:
    """The process id a staging folder name records when it was made on this host, else None.

    Examples
    --------
    >>> import socket; name = f".x.unpacking-123-{_host()}-abc"
    >>> owner_pid(name, ".x.unpacking-"), owner_pid(".x.unpacking-123-otherhost-abc", ".x.unpacking-")
    (123, None)
    """
    if not name.startswith(prefix):
        return None
    pid_text, _, rest = name[len(prefix) :].partition("-")
    host, _, _random = rest.rpartition("-")
    if not pid_text.isdigit() or host != _host():
        return None
    return int(pid_text)


def remove_stale(parent: Path, prefix: str) -> list[Path]:
    """Remove the staging folders in ``parent`` whose process (on this host) is gone; the removed ones."""

    def stale(name: str) -> bool:
        pid = owner_pid(name, prefix)
        return pid is not None and not _alive(pid)

    return remove_entries(parent, stale)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when ``SIGTERM`` arrives during staged work (a KeyboardInterrupt, so it
    unwinds through the same clean-up as Ctrl-C)."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, ``SIGTERM`` raises :class:`Terminated` in the main thread, so staging is cleaned.

    Only when the process has no SIGTERM handler of its own (the default), and only in the main thread
    (where Python runs signal handlers); elsewhere nothing changes. After the block, the default returns
    and a SIGTERM that arrived is re-raised as :class:`Terminated` already, never lost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        yield
        return
    if previous is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def current_umask() -> int:
    """The process umask, read without changing it where the system tells it (Linux), else by setting and
    restoring it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_readable(folder: Path) -> None:
    """Give ``folder``, its folders and files the modes 0755 / 0644, less the umask (owner keeps rwx/rw).

    ``mkdtemp`` makes 0700 folders: without this, other users of a shared Fiji ``models/`` folder could
    not read an installed bundle.
    """
    mask = current_umask() & 0o077  # never take the owner's own rights away
    dir_mode, file_mode = 0o755 & ~mask, 0o644 & ~mask
    os.chmod(folder, dir_mode)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, dir_mode)
        for name in files:
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, file_mode)


def error_naming_source(
    error: BundleError, staging: Path, source: Path, url: str | None = None
) -> BundleError:
    """The same error naming the bundle the user gave (``model.zip: rdf.yaml``, or its URL), not the
    staging folder (whose bundle is in ``staging/bundle``) or the downloaded file, which are removed as the
    error leaves."""
    shown_source = url or str(source)
    if error.file is not None and error.file == str(source) and url is not None:
        shown = url
    elif error.file is not None and error.file.startswith(str(staging)):
        parts = Path(error.file).relative_to(staging).parts
        parts = parts[1:] if parts[:1] == ("bundle",) else parts
        shown = str(source.joinpath(*parts)) if source.is_dir() else f"{shown_source}: {'/'.join(parts)}"
    else:
        return error
    if error.found is None:
        return type(error)(_message_of(error), file=shown, field=error.field, expected=error.expected)
    return type(error)(
        _message_of(error), file=shown, field=error.field, found=error.found, expected=error.expected
    )


def _message_of(error: BundleError) -> str:
    """The message a BundleError was made with (its text without the place and the found/expected part)."""
    text = str(error)
    where = ": ".join(p for p in (error.file, error.field) if p)
    if where and text.startswith(where + ": "):
        text = text[len(where) + 2 :]
    detail = []
    if error.found is not None:
        detail.append(f"found {error.found!r}")
    if error.expected is not None:
        detail.append(f"expected {error.expected}")
    suffix = f" ({', '.join(detail)})" if detail else ""
    return text[: -len(suffix)] if suffix and text.endswith(suffix) else text
