"""HTTP downloads with progress, resume (HTTP ``Range``), size caps and completeness checks.

A download goes to ``<destination>.part`` and is renamed into place only when it is known to be complete:
its length matches the server's ``Content-Length`` (or ``Content-Range`` total), or its sha256 matches the
one expected, or, when the server gave no length and no digest is known, the caller's ``is_complete`` check
passes (a zip must open: a connection cut short without a length otherwise looks like a finished file).

A transfer that breaks (the connection drops, the server goes away or cannot be reached, it answers an
error such as 503) keeps its ``.part`` file and, beside it, what resuming safely needs
(:mod:`deepij.bundle.resume`: the URL, the length, the ``ETag`` / ``Last-Modified``). The next attempt, in
the same call (up to ``retries`` times) or a later one, asks for the missing bytes only (``Range`` with
``If-Range``) and appends them only after checking the server's ``206`` and ``Content-Range``; a server that
ignores the range, or whose file changed, gives the whole file again, from the start. What is proven wrong
is deleted: a sha256 mismatch, a body past the size cap, an incomplete file without a length, a file the
server no longer has (404, 410). Bodies are capped at ``max_bytes`` (default 16 GiB, or
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
from typing import IO, Any, BinaryIO
from urllib.parse import unquote, urlsplit

from deepij.bundle.resume import ResumeRecord, discard, read_record, record_path, write_record
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
        Further attempts after a dropped connection (or a server out of reach while resuming), each
        resuming where the last stopped.
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
        Unreachable server, HTTP error, too large, incomplete after the retries (the ``.part`` file and its
        record stay when the server gave a length, so running again resumes), or a file that cannot be
        written.
    ChecksumError
        The download does not match ``sha256`` (it is deleted).

    Examples
    --------
    A local server stands in for a web site here:

    >>> import functools, http.server, tempfile, threading
    >>> serve = functools.partial(http.server.SimpleHTTPRequestHandler, directory="examples/nuclei_bundle")
    >>> server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), serve)
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()
    >>> url = f"http://127.0.0.1:{server.server_port}/weights.onnx"
    >>> digest = "b062c984c44102b4168751e11ef08eb5db50e60591d67ce3528ce5cf9c5a1d61"
    >>> download(url, Path(tempfile.mkdtemp()) / "weights.onnx", sha256=digest).stat().st_size
    122113
    >>> server.shutdown(); server.server_close()
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
                raise _gave_up(url, partial, exc) from None
            time.sleep(min(0.2 * attempt, 2.0))
    try:
        os.replace(partial, destination)
    except OSError as exc:
        discard(partial)
        raise DownloadError(
            f"cannot put the download in place: {exc.strerror or exc}", file=destination, found=url
        ) from None
    record_path(partial).unlink(missing_ok=True)
    return destination


class _Interrupted(Exception):
    """The transfer stopped early; what arrived stays when its record lets a later attempt resume it."""


def _gave_up(url: str, partial: Path, exc: _Interrupted) -> DownloadError:
    """The error after the last attempt: a partial download that can be resumed stays, with its record."""
    got = partial.stat().st_size if partial.exists() else 0
    if read_record(partial, url) is None:
        discard(partial)
        return DownloadError(f"download interrupted after {got} bytes ({exc})", file=url)
    return DownloadError(
        f"download interrupted after {got} bytes ({exc}); the partial download is kept as {partial.name}: "
        "run again to resume",
        file=url,
    )


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
            discard(partial)
            raise ChecksumError(
                "downloaded file does not match its sha256", file=url, found=actual, expected=sha256.lower()
            )
        return
    if total is not None:
        return
    if size == 0:
        discard(partial)
        raise _Interrupted("the server sent an empty body and no length")
    check = is_complete or (zip_opens if destination.suffix.lower() == ".zip" else None)
    if check is not None and not check(partial):
        discard(partial)  # no length to resume against: start over
        raise _Interrupted(
            f"the server sent no length and the {size} bytes that arrived are not a complete file"
        )


class _StartOver(Exception):
    """The server's answer cannot continue the partial download (it ignored If-Range for a changed file,
    refused the range, or answered another one): fetch the whole file again, at once."""


def _fetch_into(url: str, partial: Path, progress: Progress | None, timeout: float, limit: int) -> int | None:
    """Fetch (the rest of) ``url`` into ``partial``; the file's total size when the server tells it."""
    try:
        return _fetch_once(url, partial, progress, timeout, limit)
    except _StartOver:
        discard(partial)
        return _fetch_once(url, partial, progress, timeout, limit)


def _fetch_once(url: str, partial: Path, progress: Progress | None, timeout: float, limit: int) -> int | None:
    record = read_record(partial, url)
    if record is None:
        discard(partial)  # nothing says these bytes belong to this file: start over
    offset = partial.stat().st_size if record is not None else 0
    with _open(url, partial, offset, record, timeout) as response:
        start, total = _range_of(response, offset)
        if start and record is not None and record.mismatch(response.headers, total) is not None:
            raise _StartOver
        if total is not None and total > limit:
            discard(partial)
            raise DownloadError(
                "the file is larger than the download limit",
                file=url,
                found=f"{total} bytes",
                expected=f"at most {limit} bytes (max_bytes, DEEPIJ_DOWNLOAD_MAX_BYTES)",
            )
        if not start:  # the whole file from its first byte: record what identifies it, to resume it
            discard(partial)
            if total is not None:
                write_record(partial, ResumeRecord.of_response(url, response.headers, total))
        try:
            with open(partial, "ab" if start else "wb") as sink:
                _copy(response, sink, start, total, progress, limit, url, partial)
        except OSError as exc:
            raise DownloadError(f"cannot write the download: {exc.strerror or exc}", file=partial) from None
    return total


def _open(url: str, partial: Path, offset: int, record: ResumeRecord | None, timeout: float) -> Any:
    """The server's response to a request for ``url`` from byte ``offset``. A server out of reach, or
    answering an error, while a partial download waits is an interruption (the partial download stays);
    one that refuses the range means starting over; a file it no longer has (404, 410) ends the partial
    download."""
    import http.client  # network modules are imported when a download happens, not with deepij
    import urllib.error
    import urllib.request

    headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
    if offset and record is not None:
        headers["Range"] = f"bytes={offset}-"
        validator = record.if_range()
        if validator:
            headers["If-Range"] = validator
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # our .part is no prefix the server recognizes
            raise _StartOver from None
        if exc.code in (404, 410):
            discard(partial)
        elif offset:  # a server in trouble (503 from a proxy whose server went away...): keep what came
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"download failed: HTTP {exc.code} {exc.reason}", file=url) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if offset:
            raise _Interrupted(f"cannot reach the server: {reason}") from None
        raise DownloadError(f"cannot download: {reason}", file=url) from None


def _range_of(response: Any, offset: int) -> tuple[int, int | None]:
    """Where the body starts in the file (``offset`` for a ``206`` that continues it, else 0), and the
    file's total size when the server says it."""
    status = getattr(response, "status", 200)
    headers = response.headers
    length = headers.get("Content-Length")
    if status == 206 and offset:
        match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            total = None if match.group(3) == "*" else int(match.group(3))
            return offset, total
        raise _StartOver
    return 0, int(length) if length and length.isdigit() else None


def _copy(
    source: BinaryIO,
    sink: IO[bytes],
    done: int,
    total: int | None,
    progress: Progress | None,
    limit: int,
    url: str,
    partial: Path,
) -> None:
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
        done += len(chunk)
        if done > limit:
            discard(partial)
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
    >>> import io
    >>> progress, shown = print_progress("weights.onnx"), io.StringIO()
    >>> with contextlib.redirect_stderr(shown):
    ...     progress(5_000_000, 12_000_000)
    ...     progress(12_000_000, 12_000_000)
    >>> shown.getvalue()
    '\\rweights.onnx: 5.0 / 12.0 MB (42 %)\\rweights.onnx: 12.0 / 12.0 MB (100 %)\\n'
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
