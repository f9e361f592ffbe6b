"""``open_bundle``: a folder, a descriptor file, a zip or a URL -> :class:`ModelDescription`."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from deepij.bundle._yaml import load_yaml_file
from deepij.bundle.archive import extract_zip
from deepij.bundle.checks import files_with_sha256
from deepij.bundle.description import ModelDescription
from deepij.bundle.download import download, file_sha256, url_file_name
from deepij.bundle.locations import (
    cache_dir,
    check_path_argument,
    descriptor_in_unpacked,
    find_descriptor,
    is_url,
)
from deepij.bundle.readers import read_description
from deepij.bundle.staging import error_naming_source, make_staging, terminate_as_interrupt
from deepij.bundle.weights import TF_FORMAT, check_sha256, local_path
from deepij.errors import ArgumentTypeError, BundleError


def open_bundle(
    source: str | Path, *, verify: bool = True, check: Callable[[ModelDescription], object] | None = None
) -> ModelDescription:
    """Read a bundle into its normalized description.

    Parameters
    ----------
    source : str or Path
        A bundle folder, a descriptor file (``rdf.yaml``, ``model.yaml``, ``bioimageio.yaml``,
        ``*.bioimageio.yaml``), a bundle zip, or an ``http(s)://`` URL of a bundle zip. A zip is unpacked
        (safely) into deepij's cache once and read from there.
    verify : bool
        Check every weights file present in the bundle against its sha256 now (default), as deepImageJ
        does, and every other file the descriptor gives a sha256 (test and sample tensors, attachments,
        documentation, covers); ``False`` skips the checks (then also pass ``verify=False`` to
        :func:`resolve_weights`).
    check : callable, optional
        A further check of the caller's, called with the description (``deepij.load`` makes the model
        with it): for a zip it runs before the unpacked copy is kept, so a bundle it refuses leaves nothing
        in the cache.

    Returns
    -------
    ModelDescription

    Raises
    ------
    ArgumentError, ArgumentTypeError
        ``source`` that is not a path or URL (e.g. None), ``verify`` that is not a bool.
    BundleError
        Missing or unreadable descriptor, invalid fields (the message names file, field, what was found
        and what was expected); :class:`~deepij.errors.ChecksumError` for a file that does not match its
        sha256 (naming the file and the field);
        :class:`~deepij.errors.ArchiveError` for an unsafe or broken zip.

    Examples
    --------
    >>> description = open_bundle("examples/nuclei_bundle")
    >>> description.name, description.inputs[0].axes_str, list(description.weights)
    ('deepij demo nuclei U-Net', 'bcyx', ['torchscript', 'onnx'])
    """
    check_path_argument(source, "source")
    if not isinstance(verify, bool):
        raise ArgumentTypeError(f"verify: expected True or False, not {verify!r}")
    if is_url(source):
        return _open_url(str(source), verify, check)
    path = Path(source).expanduser()
    if path.is_file() and _is_zip(path):
        return _open_zip(path, verify, check=check)
    return _read(_descriptor_of(path), verify, check)


def _read(
    descriptor: Path, verify: bool, check: Callable[[ModelDescription], object] | None = None
) -> ModelDescription:
    description = read_description(load_yaml_file(descriptor), descriptor)
    if verify:
        verify_present_weights(description)
        verify_present_files(description)
    if check is not None:
        check(description)
    return description


def verify_present_weights(description: ModelDescription) -> None:
    """Check each local weights file that is present against its sha256 (missing ones are left to
    :func:`resolve_weights`, which says so when that format is asked for)."""
    for fmt, entry in description.weights.items():
        if entry.sha256 is None or entry.is_url:
            continue
        path = local_path(description, entry.source, f"weights.{fmt}.source")
        if path.is_file():
            check_sha256(path, entry.sha256, field=f"weights.{fmt}.sha256")
        elif fmt != TF_FORMAT and path.exists():
            raise BundleError("weights path is not a file", file=path, field=f"weights.{fmt}.source")


def verify_present_files(description: ModelDescription) -> None:
    """Check each bundle file present that the descriptor gives a sha256 (test and sample tensors,
    attachments, documentation, covers) against it; missing ones are for ``deepij info`` to list."""
    for field, relative, digest in files_with_sha256(description):
        path = local_path(description, relative, field)
        if path.is_file():
            check_sha256(path, digest, field=field)


def _descriptor_of(path: Path) -> Path:
    """The descriptor of a bundle folder, or the descriptor file itself."""
    if path.is_dir():
        return find_descriptor(path)
    if path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            return path
        raise BundleError(
            "not a bundle",
            file=path,
            expected="a bundle folder, a descriptor (.yaml) or a bundle zip",
        )
    raise BundleError("no such file or folder", file=path, expected="a bundle folder, descriptor or zip")


_OPENING = ".deepij-opening-"


def _is_zip(path: Path) -> bool:
    """A bundle zip (by name, or by content when the name says nothing), not a descriptor."""
    suffix = path.suffix.lower()
    return suffix == ".zip" or (suffix not in (".yaml", ".yml") and zipfile.is_zipfile(path))


def _open_zip(
    archive: Path,
    verify: bool,
    url: str | None = None,
    check: Callable[[ModelDescription], object] | None = None,
) -> ModelDescription:
    """Read a bundle zip from its unpacked copy in the cache (keyed by the zip's content).

    The first time, the zip is unpacked into a staging folder, read and verified there, and only then
    renamed into place: a zip whose descriptor, checksums or members are refused leaves nothing in the
    cache (errors name the zip, or ``url``). A copy in place was read before: it is read again (and
    verified when asked), never removed, as another process may be using it.
    """
    digest = file_sha256(archive)
    target = cache_dir() / "bundles" / f"{_safe_stem(archive.name)}-{digest[:16]}"
    if target.is_dir():
        return _read(descriptor_in_unpacked(target, archive), verify, check)
    with terminate_as_interrupt():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = make_staging(target.parent, _OPENING)
        except OSError as exc:
            raise BundleError(
                f"cannot unpack into the cache: {exc.strerror or exc}", file=target.parent, found=str(archive)
            ) from None
        try:
            unpacked = extract_zip(archive, staging / "bundle")
            _read(descriptor_in_unpacked(unpacked, archive), verify, check)
            _rename_into_place(unpacked, target)
        except BundleError as exc:
            raise error_naming_source(exc, staging, archive, url) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _read(descriptor_in_unpacked(target, archive), verify=False)  # verified in staging


def _rename_into_place(unpacked: Path, target: Path) -> None:
    """Rename; when another process put the same content there first, keep that copy."""
    try:
        os.rename(unpacked, target)
    except OSError as exc:
        if not target.is_dir():
            raise BundleError(
                f"cannot put the unpacked bundle in the cache: {exc.strerror or exc}", file=target
            ) from None


def _open_url(
    url: str, verify: bool, check: Callable[[ModelDescription], object] | None = None
) -> ModelDescription:
    """Download (once) and open; a download that cannot be opened (not a zip, a refused descriptor, a
    checksum that does not match) is removed from the cache, so the next attempt fetches it again instead
    of failing on the same bytes forever."""
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    target = cache_dir() / "downloads" / key / url_file_name(url)
    if not target.is_file():
        download(url, target)
    try:
        if _is_zip(target):
            return _open_zip(target, verify, url, check)
        return _read(_descriptor_of(target), verify, check)
    except BundleError:
        target.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            target.parent.rmdir()
        raise


def _safe_stem(name: str) -> str:
    stem = PurePosixPath(name).stem
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:64] or "bundle"
