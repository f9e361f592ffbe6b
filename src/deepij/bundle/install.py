"""Install a bundle (zip, URL or folder) into a models folder, completely or not at all."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from deepij.bundle._yaml import load_yaml_file
from deepij.bundle.archive import ArchiveLimits, extract_zip, limits_or_default
from deepij.bundle.download import Progress, download, url_file_name
from deepij.bundle.locations import (
    cache_dir,
    check_path_argument,
    descriptor_in_unpacked,
    find_descriptor,
    is_url,
    models_dir_from,
)
from deepij.bundle.opening import verify_present_files, verify_present_weights
from deepij.bundle.readers import read_description
from deepij.bundle.staging import (
    error_naming_source,
    make_readable,
    make_staging,
    remove_stale,
    terminate_as_interrupt,
)
from deepij.errors import ArgumentTypeError, BundleError

_STAGING = ".deepij-install-"


def install(
    zip_or_url: str | Path,
    models_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    verify: bool = True,
    progress: Progress | None = None,
    limits: ArchiveLimits | None = None,
) -> Path:
    """Put a bundle into a models folder.

    The archive is checked (no path escaping the target, no links, size, ratio and file-count limits),
    unpacked into a hidden folder inside ``models_dir``, its descriptor read and its weights checked against
    their sha256, and only then renamed into place: after a failure nothing is left behind.

    Parameters
    ----------
    zip_or_url : str or Path
        A bundle zip, an ``http(s)://`` URL of one (downloaded with resume), or a bundle folder (copied).
    models_dir : str or Path, optional
        Default ``$DEEPIJ_MODELS_DIR`` or ``~/.deepij/models``; an ImageJ/Fiji folder means its ``models/``.
    overwrite : bool
        Replace an installed bundle of the same folder name (otherwise that is an error).
    verify : bool
        Check weights, and the other files the descriptor gives a sha256 (test tensors, attachments...),
        against it before installing.
    progress : callable, optional
        Download progress, ``progress(done, total)``.
    limits : ArchiveLimits, optional
        Unpacking limits; default :meth:`ArchiveLimits.from_environment` (``DEEPIJ_ARCHIVE_*`` variables).

    Returns
    -------
    Path
        The installed bundle folder (named after the zip, or the folder).

    Raises
    ------
    BundleError
        Unreadable or invalid bundle, download failure, target exists, a models folder that is a file or
        cannot be written; :class:`~deepij.errors.ArchiveError` for unsafe archives.
    ArgumentError, ArgumentTypeError
        An argument of the wrong type or value (named in the message).

    Examples
    --------
    >>> import tempfile
    >>> models = Path(tempfile.mkdtemp())  # a Fiji.app's models/ folder, say
    >>> installed = install("examples/nuclei_bundle", models_dir=models)
    >>> installed == models / "nuclei_bundle", (installed / "rdf.yaml").is_file()
    (True, True)
    """
    check_path_argument(zip_or_url, "zip_or_url")
    if models_dir is not None:
        check_path_argument(models_dir, "models_dir")
    for name, value in (("overwrite", overwrite), ("verify", verify)):
        if not isinstance(value, bool):
            raise ArgumentTypeError(f"{name}: expected True or False, not {value!r}")
    if progress is not None and not callable(progress):
        raise ArgumentTypeError(f"progress: expected a callable progress(done, total), not {progress!r}")
    limits = limits_or_default(limits)
    target_dir = _usable_models_dir(models_dir_from(models_dir))
    downloaded = None
    source: Path
    if is_url(zip_or_url):
        downloaded = _download_to_cache(str(zip_or_url), progress)
        source = downloaded
    else:
        source = Path(zip_or_url).expanduser()
        if not source.exists():
            raise BundleError("no such file or folder", file=source, expected="a bundle zip, URL or folder")
    with terminate_as_interrupt():
        staging = make_staging(target_dir, _STAGING)
        try:
            descriptor = _stage(source, staging, limits)
            bundle = descriptor.parent
            description = read_description(load_yaml_file(descriptor), descriptor)
            if verify:
                verify_present_weights(description)
                verify_present_files(description)
            destination = target_dir / _folder_name(source, description.name)
            make_readable(bundle)
            _move_into_place(bundle, destination, overwrite)
        except BundleError as exc:
            raise error_naming_source(exc, staging, source, str(zip_or_url) if downloaded else None) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if downloaded is not None:  # installed or refused, the download has served
                downloaded.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    downloaded.parent.rmdir()
    return destination


def _usable_models_dir(folder: Path) -> Path:
    """The models folder, created; a clear error when it is a file or cannot be made."""
    if folder.exists() and not folder.is_dir():
        raise BundleError("the models folder is a file", file=folder, expected="a folder (or a new path)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(
            f"cannot create the models folder: {exc.strerror or exc}",
            file=folder,
            expected="a writable folder",
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BundleError("cannot write into the models folder", file=folder, expected="a writable folder")
    remove_stale(folder, _STAGING)
    return folder


def _download_to_cache(url: str, progress: Progress | None) -> Path:
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return download(url, cache_dir() / "downloads" / key / url_file_name(url), progress=progress)


def _stage(source: Path, staging: Path, limits: ArchiveLimits) -> Path:
    """Unpack or copy the bundle into ``staging``; its descriptor."""
    if source.is_dir():
        copy = staging / "bundle"
        try:
            shutil.copytree(source, copy, symlinks=True)
        except (OSError, shutil.Error) as exc:
            raise BundleError(f"cannot copy the bundle folder: {exc}", file=source) from None
        if any(p.is_symlink() for p in copy.rglob("*")):
            raise BundleError(
                "the bundle folder holds links", file=source, expected="plain files and folders"
            )
        return find_descriptor(copy)
    unpacked = extract_zip(source, staging / "bundle", limits=limits)
    return descriptor_in_unpacked(unpacked, source)


_GENERIC_NAMES = ("", "rdf", "model", "bundle", "download", "content", "file")
"""Archive names that say nothing (zenodo serves files as ``.../model.zip/content``): use the model's name."""


def _folder_name(source: Path, model_name: str) -> str:
    stem = source.name if source.is_dir() else source.stem
    if stem.lower() in _GENERIC_NAMES:
        stem = model_name
    safe = "".join(c if c.isalnum() or c in "-_.() " else "_" for c in stem).strip(" .")
    return safe[:120] or "model"


def _move_into_place(bundle: Path, destination: Path, overwrite: bool) -> None:
    if destination.exists() and not overwrite:
        raise BundleError(
            "a model is already installed there",
            file=destination,
            expected="another models folder, or overwrite=True (deepij install --force)",
        )
    old = None
    if destination.exists():
        old = make_staging(destination.parent, f".{destination.name}.replaced-")
        os.rename(destination, old / "bundle")
    try:
        os.rename(bundle, destination)
    except OSError as exc:
        if old is not None:
            os.rename(old / "bundle", destination)
            old.rmdir()
        raise BundleError(f"cannot install: {exc.strerror or exc}", file=destination) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
