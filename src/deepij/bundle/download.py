"""HTTP downloads with progress, resume (HTTP ``Range``) and sha256 checks.

A download goes to ``<destination>.part`` and is renamed into place only when complete (and verified): an
interrupted download leaves the ``.part`` file, and the next attempt (in the same call, up to ``retries``
times, or a later call) asks the server for the missing bytes only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO

from deepij.errors import BundleError, ChecksumError

Progress = Callable[[int, "int | None"], None]
"""Called as ``progress(bytes_done, bytes_total_or_None)`` while downloading."""

_CHUNK = 1 << 18
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _user_agent() -> str:
    from deepij import __version__

    return f"deepij/{__version__} (+python urllib)"


def download(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    progress: Progress | None = None,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``destination``, resuming a previous partial download.

    Parameters
    ----------
    url : str
        An ``http://`` or ``https://`` URL.
    destination : Path
        The final file; its folder is created.
    sha256 : str, optional
        Expected digest; a mismatch deletes the download and raises :class:`ChecksumError`.
    progress : callable, optional
        ``progress(done, total)`` after each chunk.
    retries : int
        Further attempts after a dropped connection, each resuming where the last stopped.
    timeout : float
        Seconds to wait for the server at each step.

    Returns
    -------
    Path
        ``destination``.

    Raises
    ------
    BundleError
        Unreachable server, HTTP error, or still incomplete after the retries (the ``.part`` file stays, so
        running again resumes).

    Examples
    --------
    >>> download("http://127.0.0.1:8000/m.zip", Path("m.zip"), progress=print_progress())  # doctest: +SKIP
    PosixPath('m.zip')
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    attempt = 0
    while True:
        try:
            _fetch_into(url, partial, progress, timeout)
            break
        except _Interrupted as exc:
            attempt += 1
            if attempt > retries:
                raise BundleError(
                    f"download interrupted after {partial.stat().st_size if partial.exists() else 0} bytes "
                    f"({exc}); run again to resume",
                    file=url,
                ) from None
            time.sleep(min(0.2 * attempt, 2.0))
    if sha256 is not None:
        actual = file_sha256(partial)
        if actual != sha256.lower():
            partial.unlink(missing_ok=True)
            raise ChecksumError(
                "downloaded file does not match its sha256", file=url, found=actual, expected=sha256.lower()
            )
    os.replace(partial, destination)
    return destination


class _Interrupted(Exception):
    """The connection dropped mid-way; what arrived is kept in the .part file."""


def _fetch_into(url: str, partial: Path, progress: Progress | None, timeout: float) -> None:
    import http.client  # network modules are imported when a download happens, not with deepij
    import urllib.error
    import urllib.request

    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # our .part is no prefix the server recognizes: start over
            partial.unlink(missing_ok=True)
            raise _Interrupted("server refused the resume range; restarting") from None
        raise BundleError(f"download failed: HTTP {exc.code} {exc.reason}", file=url) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise BundleError(f"cannot download: {reason}", file=url) from None
    with response:
        start, total = _range_of(response, offset)
        mode = "ab" if start else "wb"
        with open(partial, mode) as sink:
            if start == 0:
                sink.truncate(0)
            _copy(response, sink, start, total, progress)


def _range_of(response: object, offset: int) -> tuple[int, int | None]:
    """Where the body starts in the file, and the file's total size when the server says it."""
    status = getattr(response, "status", 200)
    headers = response.headers  # type: ignore[attr-defined]
    length = headers.get("Content-Length")
    if status == 206 and offset:
        match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            total = None if match.group(3) == "*" else int(match.group(3))
            return offset, total
        raise _Interrupted("server answered a different range than asked")
    return 0, int(length) if length and length.isdigit() else None


def _copy(source: BinaryIO, sink: IO[bytes], done: int, total: int | None, progress: Progress | None) -> None:
    import http.client

    if progress:
        progress(done, total)
    while True:
        try:
            chunk = source.read(_CHUNK)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # IncompleteRead, timeouts, resets
            sink.flush()
            raise _Interrupted(str(exc) or type(exc).__name__) from None
        if not chunk:
            break
        sink.write(chunk)
        done += len(chunk)
        if progress:
            progress(done, total)
    sink.flush()
    if total is not None and done < total:
        raise _Interrupted(f"got {done} of {total} bytes")


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def print_progress(prefix: str = "downloading") -> Progress:
    """A progress callback writing one self-updating line to stderr.

    Examples
    --------
    >>> download(url, Path("x.zip"), progress=print_progress())  # doctest: +SKIP
    """
    last = [0.0]

    def report(done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if now - last[0] < 0.2 and not finished:
            return
        last[0] = now
        size = f"{done / 1e6:.1f}" + (f" / {total / 1e6:.1f} MB" if total else " MB")
        percent = f" ({100 * done / total:.0f} %)" if total else ""
        with contextlib.suppress(OSError):
            sys.stderr.write(f"\r{prefix}: {size}{percent}" + ("\n" if finished else ""))
            sys.stderr.flush()

    return report
