"""Install a bundle (zip, URL or folder) into a models folder, completely or not at all."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from deepij.bundle._yaml import load_yaml_file
from deepij.bundle.archive import DEFAULT_LIMITS, ArchiveLimits, extract_zip
from deepij.bundle.download import Progress, download
from deepij.bundle.locations import bundle_root_in, cache_dir, find_descriptor, is_url, models_dir_from
from deepij.bundle.opening import verify_present_weights
from deepij.bundle.readers import read_description
from deepij.errors import BundleError


def install(
    zip_or_url: str | Path,
    models_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    verify: bool = True,
    progress: Progress | None = None,
    limits: ArchiveLimits = DEFAULT_LIMITS,
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
        Check weights against their sha256 before installing.
    progress : callable, optional
        Download progress, ``progress(done, total)``.
    limits : ArchiveLimits
        Unpacking limits.

    Returns
    -------
    Path
        The installed bundle folder (named after the zip, or the folder).

    Raises
    ------
    BundleError
        Unreadable or invalid bundle, download failure, target exists;
        :class:`~deepij.errors.ArchiveError` for unsafe archives.

    Examples
    --------
    >>> install("unet2d_nuclei_broad.zip", models_dir="~/Fiji.app/models")  # doctest: +SKIP
    PosixPath('/home/me/Fiji.app/models/unet2d_nuclei_broad')
    """
    target_dir = models_dir_from(models_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    downloaded = None
    source: Path
    if is_url(zip_or_url):
        downloaded = _download_to_cache(str(zip_or_url), progress)
        source = downloaded
    else:
        source = Path(zip_or_url).expanduser()
        if not source.exists():
            raise BundleError("no such file or folder", file=source, expected="a bundle zip, URL or folder")
    staging = Path(tempfile.mkdtemp(prefix=".deepij-install-", dir=target_dir))
    try:
        bundle = _stage(source, staging, limits)
        description = read_description(load_yaml_file(find_descriptor(bundle)), find_descriptor(bundle))
        if verify:
            verify_present_weights(description)
        destination = target_dir / _folder_name(source, description.name)
        _move_into_place(bundle, destination, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if downloaded is not None:
        downloaded.unlink(missing_ok=True)
    return destination


def _download_to_cache(url: str, progress: Progress | None) -> Path:
    name = PurePosixPath(url.split("?", 1)[0]).name or "bundle.zip"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return download(url, cache_dir() / "downloads" / key / name, progress=progress)


def _stage(source: Path, staging: Path, limits: ArchiveLimits) -> Path:
    """Unpack or copy the bundle into ``staging``; the folder holding its descriptor."""
    if source.is_dir():
        copy = staging / "bundle"
        shutil.copytree(source, copy, symlinks=True)
        if any(p.is_symlink() for p in copy.rglob("*")):
            raise BundleError(
                "the bundle folder holds links", file=source, expected="plain files and folders"
            )
        return copy
    unpacked = extract_zip(source, staging / "bundle", limits=limits)
    return bundle_root_in(unpacked)


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
        old = destination.with_name(f".{destination.name}.replaced-{os.getpid()}")
        os.rename(destination, old)
    try:
        os.rename(bundle, destination)
    except OSError as exc:
        if old is not None:
            os.rename(old, destination)
        raise BundleError(f"cannot install: {exc.strerror or exc}", file=destination) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
