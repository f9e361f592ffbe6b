"""Safe unpacking of bundle zips (and of TF ``tensorflow_saved_model_bundle.zip``).

Archives come from strangers, so before anything is written every member is checked: no absolute paths, no
``..`` escaping the target, no links or device files, at most ``max_files`` members, at most ``max_bytes``
unpacked, and no member that compresses better than ``max_ratio`` (zip bombs). Unpacking goes into a hidden
temporary folder beside the target, renamed into place at the end: a failure leaves nothing behind, and
concurrent unpackers of the same archive end with one complete copy.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from deepij.errors import ArchiveError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits an archive must respect before it is unpacked.

    Attributes
    ----------
    max_files : int
        Most members (files and folders).
    max_bytes : int
        Most bytes unpacked, all members together.
    max_ratio : float
        Highest compression ratio of a member larger than ``ratio_floor`` bytes unpacked.
    ratio_floor : int
        Members smaller than this are not ratio-checked (tiny files compress oddly well).
    """

    max_files: int = 20_000
    max_bytes: int = 32 * 1024**3
    max_ratio: float = 200.0
    ratio_floor: int = 1 << 20


DEFAULT_LIMITS = ArchiveLimits()


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a zip file, with an :class:`ArchiveError` naming it when it is not a readable zip."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise ArchiveError(f"not a readable zip archive: {exc}", file=path) from None


def check_members(archive: zipfile.ZipFile, file: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> None:
    """Raise :class:`ArchiveError` for the first unsafe member (see the module notes).

    Examples
    --------
    >>> with open_zip(Path("bundle.zip")) as archive:  # doctest: +SKIP
    ...     check_members(archive, Path("bundle.zip"))
    """
    members = archive.infolist()
    if len(members) > limits.max_files:
        raise ArchiveError(
            "too many files in the archive",
            file=file,
            found=len(members),
            expected=f"at most {limits.max_files}",
        )
    total = 0
    for info in members:
        _check_name(info.filename, file)
        # Unix file type bits (0 when the archiver recorded none, e.g. Python's writestr or Windows tools)
        file_type = stat.S_IFMT(info.external_attr >> 16)
        if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveError(
                "the archive holds a link or special file",
                file=file,
                found=info.filename,
                expected="plain files and folders only",
            )
        total += info.file_size
        if total > limits.max_bytes:
            raise ArchiveError(
                "the archive unpacks to too many bytes",
                file=file,
                found=f"more than {total} bytes",
                expected=f"at most {limits.max_bytes} bytes",
            )
        if info.file_size > limits.ratio_floor:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise ArchiveError(
                    "a member compresses suspiciously well (zip bomb?)",
                    file=file,
                    found=f"{info.filename}: ratio {ratio:.0f}",
                    expected=f"a compression ratio of at most {limits.max_ratio:g}",
                )


def _check_name(name: str, file: Path) -> None:
    if "\x00" in name or "\\" in name:
        raise ArchiveError("invalid member name", file=file, found=name, expected="a relative POSIX path")
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise ArchiveError(
            "absolute path in the archive", file=file, found=name, expected="paths relative to the archive"
        )
    if ".." in path.parts:
        raise ArchiveError(
            "path escaping the target folder in the archive",
            file=file,
            found=name,
            expected="paths without '..'",
        )


def extract_zip(
    path: Path, destination: Path, *, limits: ArchiveLimits = DEFAULT_LIMITS, exist_ok: bool = False
) -> Path:
    """Unpack a zip into ``destination`` (created; must not exist) safely and atomically.

    Parameters
    ----------
    path : Path
        The zip file.
    destination : Path
        The folder to create.
    limits : ArchiveLimits
        Size, count and ratio limits.
    exist_ok : bool
        When ``destination`` appears while unpacking (another process unpacked the same archive), keep
        that one and return it instead of failing.

    Returns
    -------
    Path
        ``destination``.

    Raises
    ------
    ArchiveError
        Unsafe or broken archive, or ``destination`` exists (without ``exist_ok``).

    Examples
    --------
    >>> extract_zip(Path("weights.zip"), Path("weights"))  # doctest: +SKIP
    PosixPath('weights')
    """
    destination = Path(destination)
    if destination.exists():
        if exist_ok:
            return destination
        raise ArchiveError("the target folder exists already", file=destination, expected="a new folder")
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{destination.name}.unpacking-", dir=destination.parent))
    try:
        with open_zip(path) as archive:
            check_members(archive, path, limits)
            _write_members(archive, path, temporary, limits)
        try:
            os.rename(temporary, destination)
        except OSError:
            if exist_ok and destination.is_dir():
                shutil.rmtree(temporary, ignore_errors=True)
                return destination
            raise ArchiveError(
                "the target folder exists already", file=destination, expected="a new folder"
            ) from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return destination


def _write_members(archive: zipfile.ZipFile, path: Path, target: Path, limits: ArchiveLimits) -> None:
    written = 0
    root = target.resolve()
    for info in archive.infolist():
        out = (target / info.filename).resolve()
        if root != out and root not in out.parents:  # belt and braces after _check_name
            raise ArchiveError("path escaping the target folder", file=path, found=info.filename)
        if info.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            with archive.open(info) as source, open(out, "wb") as sink:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > limits.max_bytes:  # declared sizes can lie
                        raise ArchiveError(
                            "the archive unpacks to too many bytes",
                            file=path,
                            expected=f"at most {limits.max_bytes} bytes",
                        )
                    sink.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as exc:
            raise ArchiveError(f"broken archive member {info.filename!r}: {exc}", file=path) from None
        except OSError as exc:
            raise ArchiveError(f"cannot write {info.filename!r}: {exc.strerror or exc}", file=path) from None
