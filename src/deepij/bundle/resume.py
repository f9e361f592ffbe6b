"""What a partial download keeps so that it can be resumed safely.

The bytes that arrived are in ``<file>.part``; beside them ``<file>.part.json`` records the URL they came
from and what identified the file on the server then: its length and, when the server gave them, its
``ETag`` and ``Last-Modified``. A later attempt asks only for the missing bytes (``Range``), with
``If-Range`` so that a server whose file changed sends the whole new file instead; the answer is checked
(``206``, a ``Content-Range`` starting where the partial file ends, the same total length, the same
validators) before a byte is appended. A partial file without its record, or with a record of another
URL, is not resumed: nothing says its bytes belong to the file asked for.

Examples
--------
>>> record = ResumeRecord("https://x.org/m.zip", 1000, etag='"abc"', last_modified=None)
>>> record.if_range()
'"abc"'
>>> record.mismatch({"ETag": '"def"'}, 1000)
'its ETag changed from \\'"abc"\\' to \\'"def"\\''
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from deepij.files import write_atomically


@dataclass(frozen=True)
class ResumeRecord:
    """The file a ``.part`` file is the beginning of.

    Attributes
    ----------
    url : str
        Where the bytes came from.
    length : int
        The whole file's length, as the server gave it.
    etag, last_modified : str or None
        The server's validators of that file (``ETag``, ``Last-Modified`` headers), when it gave them.
    """

    url: str
    length: int
    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def of_response(cls, url: str, headers: Mapping[str, str], length: int) -> ResumeRecord:
        return cls(url, length, headers.get("ETag"), headers.get("Last-Modified"))

    def if_range(self) -> str | None:
        """The ``If-Range`` value: a strong ``ETag`` (a weak one may not be used there), else the date."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    def mismatch(self, headers: Mapping[str, str], total: int | None) -> str | None:
        """Why a ``206`` answer is not the rest of this file (None when it is): another total length, or a
        validator the server gives that differs from the recorded one."""
        if total != self.length:
            return f"its length changed from {self.length} to {total} bytes"
        etag, modified = headers.get("ETag"), headers.get("Last-Modified")
        if self.etag and etag and etag != self.etag:
            return f"its ETag changed from {self.etag!r} to {etag!r}"
        if self.last_modified and modified and modified != self.last_modified:
            return f"it was modified ({self.last_modified} -> {modified})"
        return None


def record_path(partial: Path) -> Path:
    """``m.zip.part`` -> ``m.zip.part.json``."""
    return partial.with_name(partial.name + ".json")


def read_record(partial: Path, url: str) -> ResumeRecord | None:
    """The record of ``partial`` when it can be resumed from ``url``: the partial file has bytes, fewer
    than the recorded length, and the record is readable and names this URL. Else None."""
    try:
        size = partial.stat().st_size
        data = json.loads(record_path(partial).read_text(encoding="utf-8"))
        record = ResumeRecord(**data)
    except (OSError, ValueError, TypeError):
        return None
    valid = isinstance(record.length, int) and isinstance(record.url, str)
    if not valid or record.url != url or not 0 < size < record.length:
        return None
    return record


def write_record(partial: Path, record: ResumeRecord) -> None:
    write_atomically(record_path(partial), json.dumps(asdict(record), indent=1))


def discard(partial: Path) -> None:
    """Remove a partial file and its record."""
    partial.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        record_path(partial).unlink(missing_ok=True)
