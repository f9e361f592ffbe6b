"""Safe unpacking of bundle zips (and of TF ``tensorflow_saved_model_bundle.zip``).

Archives come from strangers, so before anything is written every member is checked: no absolute paths, no
``..`` escaping the target, no links or device files, no encrypted members, no name that is both a file and
a folder (``x`` and ``x/y``) or given twice, at most ``max_files`` members, at most ``max_bytes`` unpacked,
no member that compresses better than ``max_ratio`` and, all members together, no better than
``max_total_ratio`` (zip bombs: many members just under the per-member floor still add up).

The limits are :class:`ArchiveLimits`; the defaults can be changed for a whole process with environment
variables (sizes as ``deepij.sizes.parse_memory_size`` reads them, e.g. ``40G``):

- ``DEEPIJ_ARCHIVE_MAX_BYTES`` (default 16 GiB; the largest zoo and deepImageJ bundles unpack to a few GB),
- ``DEEPIJ_ARCHIVE_MAX_FILES`` (default 20000),
- ``DEEPIJ_ARCHIVE_MAX_RATIO`` (per member, default 200) and ``DEEPIJ_ARCHIVE_MAX_TOTAL_RATIO`` (all members,
  default 100; weights compress by 1.1 or so, so real bundles stay far below).

Unpacking goes into a hidden staging folder beside the target that records the process making it, renamed
into place at the end: a failure, Ctrl-C or SIGTERM leaves nothing behind, folders left by a killed process
are removed by the next run (:mod:`deepij.bundle.staging`), and concurrent unpackers of the same archive end
with one complete copy. Unpacked folders are 0755 and files 0644 (less the umask).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from deepij.bundle.staging import make_readable, make_staging, terminate_as_interrupt
from deepij.errors import ArchiveError, ArgumentError, ArgumentTypeError

_CHUNK = 1 << 20
_ENVIRONMENT = {
    "max_bytes": "DEEPIJ_ARCHIVE_MAX_BYTES",
    "max_files": "DEEPIJ_ARCHIVE_MAX_FILES",
    "max_ratio": "DEEPIJ_ARCHIVE_MAX_RATIO",
    "max_total_ratio": "DEEPIJ_ARCHIVE_MAX_TOTAL_RATIO",
}


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
        Highest compression ratio of a member of at least ``ratio_floor`` bytes unpacked.
    ratio_floor : int
        Members smaller than this are not ratio-checked one by one (tiny files compress oddly well).
    max_total_ratio : float
        Highest compression ratio of all members together, once they unpack to ``total_ratio_floor`` bytes.
    total_ratio_floor : int
        Archives unpacking to less than this are not ratio-checked as a whole.

    Examples
    --------
    >>> ArchiveLimits(max_bytes=2 * 1024**3).max_bytes
    2147483648
    >>> ArchiveLimits.from_environment({"DEEPIJ_ARCHIVE_MAX_BYTES": "40G"}).max_bytes
    42949672960
    """

    max_files: int = 20_000
    max_bytes: int = 16 * 1024**3
    max_ratio: float = 200.0
    ratio_floor: int = 1 << 20
    max_total_ratio: float = 100.0
    total_ratio_floor: int = 64 << 20

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ArgumentTypeError(f"ArchiveLimits.{item.name}: expected a number, not {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ArgumentError(f"ArchiveLimits.{item.name}: expected a positive number, not {value!r}")

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> ArchiveLimits:
        """The default limits, with those the ``DEEPIJ_ARCHIVE_*`` environment variables set."""
        from deepij.sizes import parse_memory_size

        environ = dict(os.environ) if environ is None else environ
        changes: dict[str, float | int] = {}
        for name, variable in _ENVIRONMENT.items():
            text = environ.get(variable, "").strip()
            if not text:
                continue
            if name == "max_bytes":
                changes[name] = parse_memory_size(text, argument=variable)
                continue
            try:
                changes[name] = int(text) if name == "max_files" else float(text)
            except ValueError:
                raise ArgumentError(f"{variable}: expected a positive number, not {text!r}") from None
        try:
            return cls(**changes)  # type: ignore[arg-type]
        except ArgumentError as exc:
            raise ArgumentError(f"{exc} (from the environment: {sorted(changes)})") from None


DEFAULT_LIMITS = ArchiveLimits()
"""The built-in limits, without the environment (``limits=None`` means
:meth:`ArchiveLimits.from_environment`)."""


def limits_or_default(limits: ArchiveLimits | None) -> ArchiveLimits:
    """``limits``, or the defaults with the environment's changes when None."""
    if limits is None:
        return ArchiveLimits.from_environment()
    if not isinstance(limits, ArchiveLimits):
        raise ArgumentTypeError(
            f"limits: expected an ArchiveLimits, not {limits!r} ({type(limits).__name__})"
        )
    return limits


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a zip file, with an :class:`ArchiveError` naming it when it is not a readable zip."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise ArchiveError(f"not a readable zip archive: {exc}", file=path) from None


def check_members(archive: zipfile.ZipFile, file: Path, limits: ArchiveLimits | None = None) -> None:
    """Raise :class:`ArchiveError` for the first unsafe member (see the module notes).

    Examples
    --------
    >>> import tempfile
    >>> bad = Path(tempfile.mkdtemp()) / "bad.zip"
    >>> with zipfile.ZipFile(bad, "w") as archive:
    ...     archive.writestr("../outside.txt", "written beside the target folder")
    >>> with open_zip(bad) as archive:  # doctest: +ELLIPSIS
    ...     check_members(archive, bad)
    Traceback (most recent call last):
    deepij.errors.ArchiveError: .../bad.zip: path escaping the target folder ... (found '../outside.txt', ...)
    """
    limits = limits_or_default(limits)
    members = archive.infolist()
    if len(members) > limits.max_files:
        raise ArchiveError(
            "too many files in the archive",
            file=file,
            found=len(members),
            expected=f"at most {limits.max_files}",
        )
    total = packed = 0
    files: set[str] = set()
    folders: set[str] = set()
    for info in members:
        _check_name(info.filename, file)
        _check_kind(info, file)
        _check_place(info, file, files, folders)
        total += info.file_size
        packed += info.compress_size
        if total > limits.max_bytes:
            raise ArchiveError(
                "the archive unpacks to too many bytes",
                file=file,
                found=f"more than {total} bytes",
                expected=f"at most {limits.max_bytes} bytes (DEEPIJ_ARCHIVE_MAX_BYTES)",
            )
        if info.file_size >= limits.ratio_floor:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise ArchiveError(
                    "a member compresses suspiciously well (zip bomb?)",
                    file=file,
                    found=f"{info.filename}: ratio {ratio:.0f}",
                    expected=f"a compression ratio of at most {limits.max_ratio:g} "
                    "(DEEPIJ_ARCHIVE_MAX_RATIO)",
                )
    if total >= limits.total_ratio_floor and total / max(packed, 1) > limits.max_total_ratio:
        raise ArchiveError(
            "the archive compresses suspiciously well as a whole (zip bomb?)",
            file=file,
            found=f"{len(members)} members, {total} bytes from {packed}: ratio {total / max(packed, 1):.0f}",
            expected=f"a compression ratio of at most {limits.max_total_ratio:g} over all members "
            "(DEEPIJ_ARCHIVE_MAX_TOTAL_RATIO)",
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


def _check_kind(info: zipfile.ZipInfo, file: Path) -> None:
    # Unix file type bits (0 when the archiver recorded none, e.g. Python's writestr or Windows tools)
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError(
            "the archive holds a link or special file",
            file=file,
            found=info.filename,
            expected="plain files and folders only",
        )
    if info.flag_bits & 0x1:
        raise ArchiveError(
            "the archive holds an encrypted member",
            file=file,
            found=info.filename,
            expected="a zip without a password",
        )


def _check_place(info: zipfile.ZipInfo, file: Path, files: set[str], folders: set[str]) -> None:
    """A name may be a file or a folder, once: ``x`` and ``x/y`` cannot both be unpacked."""
    parts = PurePosixPath(info.filename).parts
    if not parts:
        return
    name = "/".join(parts)
    parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
    clash = next((p for p in parents if p in files), None)
    if info.is_dir():
        clash = clash or (name if name in files else None)
        folders.update([*parents, name])
    else:
        if name in files:
            raise ArchiveError(
                "a member appears twice in the archive", file=file, found=info.filename, expected="each once"
            )
        clash = clash or (name if name in folders else None)
        files.add(name)
        folders.update(parents)
    if clash is not None:
        raise ArchiveError(
            "the archive holds a file and a folder of the same name",
            file=file,
            found=f"{clash} and {info.filename}",
            expected="each name either a file or a folder",
        )


def extract_zip(
    path: Path, destination: Path, *, limits: ArchiveLimits | None = None, exist_ok: bool = False
) -> Path:
    """Unpack a zip into ``destination`` (created; must not exist) safely and atomically.

    Parameters
    ----------
    path : Path
        The zip file.
    destination : Path
        The folder to create.
    limits : ArchiveLimits, optional
        Size, count and ratio limits; default :meth:`ArchiveLimits.from_environment`.
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
        Unsafe or broken archive, a folder that cannot be written, or ``destination`` exists (without
        ``exist_ok``). The error names the zip (and the member), never the staging folder.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> bundle_zip = shutil.make_archive(str(folder / "nuclei"), "zip", "examples/nuclei_bundle")
    >>> unpacked = extract_zip(Path(bundle_zip), folder / "nuclei")
    >>> unpacked == folder / "nuclei", (unpacked / "rdf.yaml").is_file()
    (True, True)
    """
    path, destination = Path(path), Path(destination)
    limits = limits_or_default(limits)
    if destination.exists():
        if exist_ok:
            return destination
        raise ArchiveError("the target folder exists already", file=destination, expected="a new folder")
    with open_zip(path) as archive:
        check_members(archive, path, limits)
        with terminate_as_interrupt():
            temporary = _staging_beside(destination, path)
            try:
                _write_members(archive, path, temporary, limits)
                make_readable(temporary)
                return _rename_into_place(temporary, destination, exist_ok)
            except BaseException:
                shutil.rmtree(temporary, ignore_errors=True)
                raise


def _staging_beside(destination: Path, archive: Path) -> Path:
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        return make_staging(destination.parent, f".{destination.name}.unpacking-")
    except OSError as exc:
        raise ArchiveError(
            f"cannot unpack into {destination.parent}: {exc.strerror or exc}",
            file=archive,
            expected="a folder that can be written",
        ) from None


def _rename_into_place(temporary: Path, destination: Path, exist_ok: bool) -> Path:
    try:
        os.rename(temporary, destination)
    except OSError:
        if exist_ok and destination.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
            return destination
        raise ArchiveError(
            "the target folder exists already", file=destination, expected="a new folder"
        ) from None
    return destination


def _write_members(archive: zipfile.ZipFile, path: Path, target: Path, limits: ArchiveLimits) -> None:
    written = 0
    root = target.resolve()
    for info in archive.infolist():
        out = (target / info.filename).resolve()
        if root != out and root not in out.parents:  # belt and braces after _check_name
            raise ArchiveError("path escaping the target folder", file=path, found=info.filename)
        try:
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(out, "wb") as sink:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > limits.max_bytes:  # declared sizes can lie
                        raise ArchiveError(
                            "the archive unpacks to too many bytes",
                            file=path,
                            expected=f"at most {limits.max_bytes} bytes (DEEPIJ_ARCHIVE_MAX_BYTES)",
                        )
                    sink.write(chunk)
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            NotImplementedError,
            RuntimeError,
            ValueError,
        ) as exc:
            raise ArchiveError(f"broken archive member {info.filename!r}: {exc}", file=path) from None
        except OSError as exc:
            raise ArchiveError(
                f"cannot unpack member {info.filename!r}: {exc.strerror or type(exc).__name__}", file=path
            ) from None
