"""Usable local paths for weights and other bundle files: sha256 checks, downloads, TF zip unpacking.

:func:`resolve_weights` is what the inference backends call. A file is hashed once per process as long as
its size and modification time stay the same.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path, PurePosixPath

from deepij.bundle._arguments import require_bool, require_description, require_text
from deepij.bundle.archive import extract_zip
from deepij.bundle.description import ModelDescription, WeightsEntry
from deepij.bundle.download import download, file_sha256
from deepij.bundle.locations import cache_dir
from deepij.bundle.paths import inside_bundle
from deepij.bundle.readers.common import WEIGHTS_ALIASES
from deepij.errors import BundleError, ChecksumError

TF_FORMAT = "tensorflow_saved_model_bundle"
_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()


def resolve_weights(description: ModelDescription, weights_format: str, *, verify: bool = True) -> Path:
    """A local path the framework can load for one weights entry.

    Parameters
    ----------
    description : ModelDescription
        The bundle.
    weights_format : str
        A canonical format name (``torchscript``, ``tensorflow_saved_model_bundle``, ``onnx``, ...);
        ``pytorch_script`` is accepted for ``torchscript``.
    verify : bool
        Check the file against the descriptor's sha256 (default). ``False`` skips the check.

    Returns
    -------
    Path
        The weights file; for ``tensorflow_saved_model_bundle`` the folder holding ``saved_model.pb``
        (the bundle's zip is unpacked next to the descriptor on first use, once, atomically; an already
        unpacked ``saved_model.pb`` + ``variables/`` is used as it is).

    Raises
    ------
    BundleError
        No such entry, file missing, URL unreachable.
    ChecksumError
        The file's sha256 differs from the descriptor's.

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> description = open_bundle("examples/nuclei_bundle")
    >>> resolve_weights(description, "torchscript")
    PosixPath('examples/nuclei_bundle/weights_torchscript.pt')
    """
    require_description(description)
    require_text(weights_format, "weights_format")
    require_bool(verify, "verify")
    fmt = WEIGHTS_ALIASES.get(weights_format, weights_format)
    entry = description.weights.get(fmt)
    if entry is None:
        raise BundleError(
            "the bundle has no such weights format",
            file=description.descriptor,
            field="weights",
            found=weights_format,
            expected="one of " + (", ".join(description.weights) or "(none given)"),
        )
    if fmt == TF_FORMAT:
        return _saved_model_folder(description, entry, verify)
    return resolve_file(description, entry.source, entry.sha256, verify=verify, field=f"weights.{fmt}.source")


def resolve_file(
    description: ModelDescription,
    source: str,
    sha256: str | None = None,
    *,
    verify: bool = True,
    field: str | None = None,
) -> Path:
    """A local copy of a bundle file (relative path or URL), checked against ``sha256`` when given.

    URLs are downloaded once into the cache (``deepij.bundle.locations.cache_dir() / "files"``).
    Relative paths resolve against the bundle root and must stay inside it.

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> description = open_bundle("examples/nuclei_bundle")
    >>> resolve_file(description, "test_input.npy", description.file_sha256["test_input.npy"])
    PosixPath('examples/nuclei_bundle/test_input.npy')
    """
    require_description(description)
    require_text(source, "source")
    require_text(sha256, "sha256", optional=True)
    require_bool(verify, "verify")
    if source.startswith(("http://", "https://")):
        return _cached_download(description, source, sha256, verify, field)
    path = local_path(description, source, field)
    if not path.is_file():
        raise BundleError(
            "file missing from the bundle", file=path, field=field, expected="the file the descriptor names"
        )
    if verify and sha256:
        check_sha256(path, sha256, field=field)
    return path


def local_path(description: ModelDescription, source: str, field: str | None = None) -> Path:
    """``root / source``, refusing paths that lead out of the bundle folder (absolute, ``..``, links)."""
    return inside_bundle(description.root, source, descriptor=description.descriptor, field=field)


def check_sha256(path: Path, expected: str, *, field: str | None = None) -> None:
    """Raise :class:`ChecksumError` naming ``path`` when its sha256 is not ``expected``."""
    actual = cached_sha256(path)
    if actual != expected.lower():
        raise ChecksumError(
            "file does not match the sha256 its descriptor gives (corrupt or replaced; "
            "pass verify=False to use it anyway)",
            file=path,
            field=field,
            found=actual,
            expected=expected.lower(),
        )


def cached_sha256(path: Path) -> str:
    """sha256 of a file, remembered while its size and modification time are unchanged."""
    info = path.stat()
    key = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    with _digests_lock:
        known = _digests.get(key)
    if known is None:
        known = file_sha256(path)
        with _digests_lock:
            _digests[key] = known
    return known


def _cached_download(
    description: ModelDescription, url: str, sha256: str | None, verify: bool, field: str | None
) -> Path:
    name = PurePosixPath(url.split("?", 1)[0]).name or "download"
    key = sha256 or hashlib.sha256(url.encode()).hexdigest()
    target = cache_dir() / "files" / key[:32] / name
    if not target.is_file():
        try:
            download(url, target, sha256=sha256 if verify else None)
        except ChecksumError:
            raise
        except BundleError as exc:
            raise BundleError(
                f"weights not available: {exc}", file=description.descriptor, field=field, found=url
            ) from None
    elif verify and sha256:
        check_sha256(target, sha256, field=field)
    return target


def _saved_model_folder(description: ModelDescription, entry: WeightsEntry, verify: bool) -> Path:
    field = f"weights.{TF_FORMAT}.source"
    source = entry.source
    if not source.lower().endswith(".zip"):
        folder = holding_saved_model(local_path(description, source, field))
        if folder is None:
            raise BundleError(
                "no saved_model.pb in the SavedModel folder",
                file=local_path(description, source, field),
                field=field,
                expected="a folder with saved_model.pb and variables/",
            )
        return folder
    if source.startswith(("http://", "https://")):
        archive = _cached_download(description, source, entry.sha256, verify, field)
    else:
        archive = local_path(description, source, field)
    unpacked = description.root / PurePosixPath(archive.name).stem
    folder = holding_saved_model(unpacked)
    if folder is not None and not archive.is_file():
        return folder
    if not archive.is_file():
        already = holding_saved_model(description.root)  # deepImageJ unzips into the bundle folder itself
        if already is not None:
            return already
        raise BundleError(
            "file missing from the bundle",
            file=archive,
            field=field,
            expected="the SavedModel zip, or saved_model.pb + variables/ next to the descriptor",
        )
    if verify and entry.sha256:
        check_sha256(archive, entry.sha256, field=field)
    if folder is not None:
        return folder
    target = unpacked if _can_write_into(description.root) else _cache_target(archive, entry)
    extract_zip(archive, target, exist_ok=True)
    folder = holding_saved_model(target)
    if folder is None:
        raise BundleError(
            "the SavedModel zip holds no saved_model.pb", file=archive, field=field, expected="saved_model.pb"
        )
    return folder


def _can_write_into(folder: Path) -> bool:
    """Whether a folder can be made in ``folder``, tried for real (``os.access`` says yes to root for a
    read-only folder, and cannot tell a read-only mount or a path through a file)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".deepij-write-check-", dir=folder))
    except OSError:
        return False
    return True


def _cache_target(archive: Path, entry: WeightsEntry) -> Path:
    """Where to unpack when the bundle folder is read-only (a shared installation)."""
    key = entry.sha256 or cached_sha256(archive)
    return cache_dir() / "unpacked" / key[:32]


def holding_saved_model(folder: Path) -> Path | None:
    """``folder`` or the subfolder (two levels at most) that holds ``saved_model.pb``."""
    if not folder.is_dir():
        return None
    if (folder / "saved_model.pb").is_file():
        return folder
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (child / "saved_model.pb").is_file():
            return child
        for grandchild in sorted(p for p in child.iterdir() if p.is_dir()):
            if (grandchild / "saved_model.pb").is_file():
                return grandchild
    return None
