"""Where bundles live: the models folder, the cache, and the descriptor inside a bundle folder."""

from __future__ import annotations

import os
from pathlib import Path

from deepij.errors import ArgumentError, ArgumentTypeError, BundleError

DESCRIPTOR_NAMES = ("rdf.yaml", "model.yaml", "bioimageio.yaml")
"""Descriptor file names, in the order they are looked for (deepImageJ reads rdf.yaml before model.yaml)."""
DESCRIPTOR_PATTERNS = ("*.bioimageio.yaml", "*.model.yaml")


def default_models_dir() -> Path:
    """The models folder: ``$DEEPIJ_MODELS_DIR``, else ``~/.deepij/models``.

    Examples
    --------
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"DEEPIJ_MODELS_DIR": "/data/models"}):
    ...     default_models_dir()
    PosixPath('/data/models')
    """
    configured = os.environ.get("DEEPIJ_MODELS_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".deepij" / "models"


def check_path_argument(value: object, argument: str) -> None:
    """An :class:`~deepij.errors.ArgumentTypeError` naming ``argument`` unless ``value`` is a str or a
    path (``os.PathLike``), and an :class:`~deepij.errors.ArgumentError` for an empty one.

    Examples
    --------
    >>> check_path_argument(3, "models_dir")
    Traceback (most recent call last):
    ...
    deepij.errors.ArgumentTypeError: models_dir: expected a path (str or pathlib.Path), not 3 (int)
    """
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"{argument}: expected a path (str or pathlib.Path), not {value!r} ({type(value).__name__})"
        )
    if not str(value).strip() or "\x00" in str(value):
        raise ArgumentError(f"{argument}: expected a path, not {str(value)!r}")


def models_dir_from(models_dir: str | Path | None) -> Path:
    """The folder holding bundle folders. An ImageJ/Fiji installation folder means its ``models/``."""
    if models_dir is not None:
        check_path_argument(models_dir, "models_dir")
    folder = default_models_dir() if models_dir is None else Path(models_dir).expanduser()
    looks_like_imagej = (folder / "plugins").is_dir() or (folder / "jars").is_dir()
    if looks_like_imagej and folder.name != "models":
        return folder / "models"
    return folder


def cache_dir() -> Path:
    """deepij's cache (downloads, unpacked zips): ``$DEEPIJ_CACHE_DIR``, else ``$XDG_CACHE_HOME/deepij``,
    else ``~/.cache/deepij``."""
    configured = os.environ.get("DEEPIJ_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "deepij"


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.strip().lower().startswith(("http://", "https://"))


def find_descriptor(folder: Path) -> Path:
    """The descriptor of a bundle folder.

    Looks for ``rdf.yaml``, ``model.yaml``, ``bioimageio.yaml``, then one ``*.bioimageio.yaml`` or
    ``*.model.yaml``.

    Raises
    ------
    BundleError
        No descriptor, or several candidates of the same kind.

    Examples
    --------
    >>> find_descriptor(Path("examples/nuclei_bundle"))
    PosixPath('examples/nuclei_bundle/rdf.yaml')
    """
    check_path_argument(folder, "folder")
    folder = Path(folder)
    for name in DESCRIPTOR_NAMES:
        if (folder / name).is_file():
            return folder / name
    for pattern in DESCRIPTOR_PATTERNS:
        candidates = sorted(p for p in folder.glob(pattern) if p.is_file())
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            raise BundleError(
                "several descriptors, cannot tell which one describes the bundle",
                file=folder,
                found=[p.name for p in candidates],
                expected="one descriptor (or an rdf.yaml)",
            )
    raise BundleError(
        "no model descriptor in the bundle folder",
        file=folder,
        expected="rdf.yaml, model.yaml, bioimageio.yaml or *.bioimageio.yaml",
    )


def bundle_root_in(folder: Path) -> Path:
    """The bundle folder inside an unpacked archive: the folder itself, or its single subfolder
    (archives made by zipping a folder wrap everything in it)."""
    if any((folder / n).is_file() for n in DESCRIPTOR_NAMES) or any(
        any(folder.glob(p)) for p in DESCRIPTOR_PATTERNS
    ):
        return folder
    children = [c for c in folder.iterdir() if c.name not in ("__MACOSX",) and not c.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return folder


def descriptor_in_unpacked(folder: Path, archive: Path) -> Path:
    """The descriptor of the bundle an archive unpacked into ``folder`` (at its top, or in its single top
    folder); errors name the archive.

    Raises
    ------
    BundleError
        No descriptor, or several (named, as paths inside the archive).
    """
    root = bundle_root_in(folder)
    try:
        return find_descriptor(root)
    except BundleError as exc:
        if exc.found is not None:  # several candidates in one folder
            raise BundleError(
                "several descriptors in the archive, cannot tell which one describes the bundle",
                file=archive,
                found=[(root / name).relative_to(folder).as_posix() for name in exc.found],
                expected="one descriptor (or an rdf.yaml)",
            ) from None
    nested = sorted(
        p.relative_to(folder).as_posix()
        for child in folder.iterdir()
        if child.is_dir()
        for p in _descriptor_candidates(child)
    )
    if len(nested) > 1:
        raise BundleError(
            "several descriptors in the archive, cannot tell which one describes the bundle",
            file=archive,
            found=nested,
            expected="one bundle per archive (a descriptor at its top, or in its single top folder)",
        )
    raise BundleError(
        "no model descriptor in the archive (at its top, or in its single top folder)",
        file=archive,
        expected="rdf.yaml, model.yaml, bioimageio.yaml or *.bioimageio.yaml",
    )


def _descriptor_candidates(folder: Path) -> list[Path]:
    named = [folder / n for n in DESCRIPTOR_NAMES if (folder / n).is_file()]
    return named[:1] or sorted(
        p for pattern in DESCRIPTOR_PATTERNS for p in folder.glob(pattern) if p.is_file()
    )
