"""HTTP downloads with progress, resume (HTTP ``Range``), size caps and completeness checks.

A download goes to ``<destination>.part`` and is renamed into place only when it is known to be complete:
its length matches the server's ``Content-Length`` (or ``Content-Range`` total), or its sha256 matches the
one expected, or, when the server gave no length and no digest is known, the caller's ``is_complete`` check
passes (a zip must open: a connection cut short without a length otherwise looks like a finished file). An
interrupted download with a known length leaves its ``.part`` file, and the next attempt (in the same call,
up to ``retries`` times, or a later call) asks the server for the missing bytes only; anything that cannot
be resumed is deleted. Bodies are capped at ``max_bytes`` (default 16 GiB, or
``DEEPIJ_DOWNLOAD_MAX_BYTES``): an endless body stops there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO
from urllib.parse import unquote, urlsplit

from deepij.errors import ArgumentError, ArgumentTypeError, ChecksumError, DownloadError

Progress = Callable[[int, "int | None"], None]
"""Called as ``progress(bytes_done, bytes_total_or_None)`` while downloading."""

DEFAULT_MAX_BYTES = 16 * 1024**3
_CHUNK = 1 << 18
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _user_agent() -> str:
    from deepij import __version__

    return f"deepij/{__version__} (+python urllib)"


def max_download_bytes() -> int:
    """The cap on a download: ``$DEEPIJ_DOWNLOAD_MAX_BYTES`` (a size such as ``40G``), else 16 GiB."""
    from deepij.sizes import parse_memory_size

    text = os.environ.get("DEEPIJ_DOWNLOAD_MAX_BYTES", "").strip()
    return parse_memory_size(text, argument="DEEPIJ_DOWNLOAD_MAX_BYTES") if text else DEFAULT_MAX_BYTES


def url_file_name(url: str, default: str = "bundle.zip") -> str:
    """A safe local file name for what ``url`` names (its last path part, percent-decoded).

    Raises
    ------
    DownloadError
        The URL's path ends in ``.`` or ``..`` (it names a folder, not a file).

    Examples
    --------
    >>> url_file_name("https://zenodo.org/records/1/files/unet.zip?download=1")
    'unet.zip'
    >>> url_file_name("https://example.org/"), url_file_name("https://example.org/a b%2Fc.zip")
    ('bundle.zip', 'a b_c.zip')
    """
    path = urlsplit(url).path
    last = path.rstrip("/").rsplit("/", 1)[-1] if not path.endswith("/") else ""
    last = unquote(last)
    if last in (".", "..") or path.rstrip("/").endswith(("/..", "/.")):
        raise DownloadError(
            "the URL names a folder, not a file",
            file=url,
            found=last or path,
            expected="a URL ending in a file name",
        )
    safe = "".join(c if c.isalnum() or c in "-_.() " else "_" for c in last).strip(" ")
    safe = safe.lstrip(".")  # no hidden files, no '..'
    return safe[:120] or default


def zip_opens(path: Path) -> bool:
    """True when ``path`` is a zip whose central directory can be read (a cut-short zip has none)."""
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
        return True
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return False


def download(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    progress: Progress | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    max_bytes: int | None = None,
    is_complete: Callable[[Path], bool] | None = None,
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
    max_bytes : int, optional
        Most bytes to accept (default :func:`max_download_bytes`).
    is_complete : callable, optional
        ``is_complete(path) -> bool``, asked when the server gave no length and ``sha256`` is None.
        Default: a ``.zip`` destination must open as a zip (:func:`zip_opens`); other files are taken as
        they arrive.

    Returns
    -------
    Path
        ``destination``.

    Raises
    ------
    DownloadError
        Unreachable server, HTTP error, too large, incomplete after the retries (a resumable ``.part`` file
        stays, so running again resumes; anything else is deleted), or a file that cannot be written.
    ChecksumError
        The download does not match ``sha256`` (it is deleted).

    Examples
    --------
    >>> download("http://127.0.0.1:8000/m.zip", Path("m.zip"), progress=print_progress())  # doctest: +SKIP
    PosixPath('m.zip')
    """
    if not isinstance(url, str):
        raise ArgumentTypeError(f"url: expected a str, not {url!r} ({type(url).__name__})")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ArgumentError(f"retries: expected an integer >= 0, not {retries!r}")
    limit = max_download_bytes() if max_bytes is None else max_bytes
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ArgumentError(f"max_bytes: expected a positive integer, not {max_bytes!r}")
    destination = Path(destination)
    partial = destination.with_name(destination.name + ".part")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {destination.parent}: {exc.strerror or exc}", file=url) from None
    attempt = 0
    while True:
        try:
            total = _fetch_into(url, partial, progress, timeout, limit)
            _check_complete(url, partial, destination, total, sha256, is_complete)
            break
        except _Interrupted as exc:
            attempt += 1
            if attempt > retries:
                got = partial.stat().st_size if partial.exists() else 0
                resumable = exc.resumable and got > 0
                if not resumable:
                    partial.unlink(missing_ok=True)
                hint = "; run again to resume" if resumable else ""
                raise DownloadError(
                    f"download interrupted after {got} bytes ({exc}){hint}", file=url
                ) from None
            time.sleep(min(0.2 * attempt, 2.0))
        except DownloadError:
            partial.unlink(missing_ok=True)  # refused or too large: nothing worth resuming
            raise
    try:
        os.replace(partial, destination)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"cannot put the download in place: {exc.strerror or exc}", file=destination, found=url
        ) from None
    return destination


class _Interrupted(Exception):
    """The transfer stopped early; ``resumable`` when what arrived in the .part file can be continued."""

    def __init__(self, message: str, *, resumable: bool = True) -> None:
        super().__init__(message)
        self.resumable = resumable


def _check_complete(
    url: str,
    partial: Path,
    destination: Path,
    total: int | None,
    sha256: str | None,
    is_complete: Callable[[Path], bool] | None,
) -> None:
    """Raise unless ``partial`` is known to be the whole file (see the module notes)."""
    size = partial.stat().st_size
    if total is not None and size != total:
        raise _Interrupted(f"got {size} of {total} bytes")
    if sha256 is not None:
        actual = file_sha256(partial)
        if actual != sha256.lower():
            partial.unlink(missing_ok=True)
            raise ChecksumError(
                "downloaded file does not match its sha256", file=url, found=actual, expected=sha256.lower()
            )
        return
    if total is not None:
        return
    if size == 0:
        partial.unlink(missing_ok=True)
        raise _Interrupted("the server sent an empty body and no length", resumable=False)
    check = is_complete or (zip_opens if destination.suffix.lower() == ".zip" else None)
    if check is not None and not check(partial):
        partial.unlink(missing_ok=True)  # no length to resume against: start over
        raise _Interrupted(
            f"the server sent no length and the {size} bytes that arrived are not a complete file",
            resumable=False,
        )


def _fetch_into(url: str, partial: Path, progress: Progress | None, timeout: float, limit: int) -> int | None:
    """Fetch (the rest of) ``url`` into ``partial``; the file's total size when the server tells it."""
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
        raise DownloadError(f"download failed: HTTP {exc.code} {exc.reason}", file=url) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download: {reason}", file=url) from None
    with response:
        start, total = _range_of(response, offset)
        if total is not None and total > limit:
            raise DownloadError(
                "the file is larger than the download limit",
                file=url,
                found=f"{total} bytes",
                expected=f"at most {limit} bytes (max_bytes, DEEPIJ_DOWNLOAD_MAX_BYTES)",
            )
        try:
            with open(partial, "ab" if start else "wb") as sink:
                _copy(response, sink, start, total, progress, limit, url)
        except OSError as exc:
            raise DownloadError(f"cannot write the download: {exc.strerror or exc}", file=partial) from None
    return total


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


def _copy(
    source: BinaryIO,
    sink: IO[bytes],
    done: int,
    total: int | None,
    progress: Progress | None,
    limit: int,
    url: str,
) -> None:
    import http.client

    if progress:
        progress(done, total)
    while True:
        try:
            chunk = source.read(_CHUNK)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # IncompleteRead, timeouts, resets
            sink.flush()
            raise _Interrupted(str(exc) or type(exc).__name__, resumable=total is not None) from None
        if not chunk:
            break
        done += len(chunk)
        if done > limit:
            raise DownloadError(
                "the download is larger than the limit (the server sent no length, or more than it said)",
                file=url,
                found=f"more than {limit} bytes",
                expected=f"at most {limit} bytes (max_bytes, DEEPIJ_DOWNLOAD_MAX_BYTES)",
            )
        sink.write(chunk)
        if progress:
            progress(done, total)
    sink.flush()


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
