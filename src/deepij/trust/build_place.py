"""Where ``deepij build`` writes, and what it may replace.

A bundle is built in a hidden staging folder next to ``output`` (its zip too), then renamed into place:
a failed build leaves nothing, and an old bundle goes only once the new one is there.

``overwrite`` replaces only what :func:`deepij.build` wrote: a folder whose ``rdf.yaml`` says
``config.deepij.built_by: deepij build``, and a zip holding such an ``rdf.yaml``. Any other folder (a
project with the model and notes in it) or zip is refused, with or without ``overwrite``; so is a folder
that holds the model, the example or a macro the build reads. Without ``overwrite`` an existing folder,
or a zip where the bundle's goes, is refused before anything is built.

Examples
--------
>>> zip_of(Path("/data/my_bundle"))
PosixPath('/data/my_bundle.zip')
"""

from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepij.errors import ArgumentError, ArgumentTypeError
from deepij.trust.build_types import DESCRIPTOR, is_deepij_built

STAGING_PREFIX = ".deepij-build-"
_ONLY_BUILT = "overwrite replaces only a bundle deepij build wrote; choose another output"


def zip_of(target: Path) -> Path:
    """The zip that goes next to the bundle folder ``target``."""
    return target.with_name(target.name + ".zip")


def check_target(output: Any, overwrite: Any, zip: Any, sources: Mapping[str, Any]) -> Path:
    """The bundle folder to write, once it is clear that writing it (and its zip) replaces nothing but a
    bundle deepij built (module notes). ``sources``: argument name -> what the build reads (paths among
    them must not lie inside the folder)."""
    if not isinstance(output, (str, Path)) or not str(output):
        raise ArgumentTypeError(f"output: found {type(output).__name__}; expected a folder path")
    for argument, value in (("overwrite", overwrite), ("zip", zip)):
        if not isinstance(value, bool):
            raise ArgumentTypeError(f"{argument}: found {type(value).__name__}; expected True or False")
    target = Path(output).absolute()
    if target.exists() or target.is_symlink():
        _check_folder(target, overwrite)
        _check_sources(target, sources)
    bundle_zip = zip_of(target)
    if zip and (bundle_zip.exists() or bundle_zip.is_symlink()):
        _check_zip(bundle_zip, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _check_folder(target: Path, overwrite: bool) -> None:
    if target.is_symlink() or not target.is_dir():
        raise ArgumentError(f"output: {target} is a file (expected a folder to write the bundle into)")
    if not overwrite:
        raise ArgumentError(f"output: {target} exists already (expected a new folder, or overwrite=True)")
    descriptor = target / DESCRIPTOR
    if not descriptor.is_file():
        raise ArgumentError(
            f"output: {target} is not a bundle deepij built (found no {DESCRIPTOR} in it): {_ONLY_BUILT}"
        )
    if not is_deepij_built(_read_yaml(descriptor.read_bytes())):
        raise ArgumentError(
            f"output: {target} is not a bundle deepij built (its {DESCRIPTOR} has no config.deepij.built_by: "
            f"deepij build): {_ONLY_BUILT}"
        )


def _check_sources(target: Path, sources: Mapping[str, Any]) -> None:
    """Refuse to replace a folder that holds a file the build reads (the model a user keeps there)."""
    for argument, value in sources.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(item, (str, Path)):
                continue
            path = Path(item).absolute()
            if path == target or target in path.parents:
                raise ArgumentError(
                    f"{argument}: {path} lies inside the output folder {target}, which the build replaces "
                    "(expected it elsewhere, or another output)"
                )


def _check_zip(bundle_zip: Path, overwrite: bool) -> None:
    if not overwrite:
        raise ArgumentError(
            f"output: {bundle_zip} exists already, where the bundle's zip goes (expected no file there, "
            "overwrite=True for a zip deepij built, or zip=False)"
        )
    if not zip_is_deepij_built(bundle_zip):
        raise ArgumentError(
            f"output: {bundle_zip} is not the zip of a bundle deepij built (no {DESCRIPTOR} with "
            f"config.deepij.built_by in it): {_ONLY_BUILT}, or zip=False"
        )


def zip_is_deepij_built(path: Path) -> bool:
    """Whether ``path`` is a zip whose root ``rdf.yaml`` :func:`deepij.build` wrote."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return is_deepij_built(_read_yaml(archive.read(DESCRIPTOR)))
    except (zipfile.BadZipFile, KeyError, OSError):
        return False


def _read_yaml(data: bytes) -> Any:
    import yaml

    try:
        return yaml.safe_load(data)
    except yaml.YAMLError:
        return None


def move_into_place(staging: Path, target: Path, overwrite: bool, zip: bool) -> Path | None:
    """Rename the finished folder (and its zip, made in staging first) into place; the zip's path."""
    from deepij.bundle.staging import make_readable
    from deepij.trust.build_files import zip_folder

    make_readable(staging)
    staged_zip = zip_folder(staging, staging.with_name(staging.name + ".zip")) if zip else None
    try:
        if target.exists() or target.is_symlink():
            _check_folder(target, overwrite)  # again: it may have appeared or changed while building
            trash = staging.with_name(staging.name + ".old")
            os.replace(target, trash)
            os.replace(staging, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        if staged_zip is not None:
            staged_zip.unlink(missing_ok=True)
        raise
    return _place_zip(staged_zip, zip_of(target), overwrite)


def _place_zip(staged_zip: Path | None, bundle_zip: Path, overwrite: bool) -> Path | None:
    """The new zip into place; without one, an old zip of the bundle goes (it is not the new bundle's)."""
    if staged_zip is None:
        if overwrite and zip_is_deepij_built(bundle_zip):
            bundle_zip.unlink()
        return None
    if bundle_zip.exists() or bundle_zip.is_symlink():
        try:
            _check_zip(bundle_zip, overwrite)
        except ArgumentError:
            staged_zip.unlink(missing_ok=True)
            raise
    os.replace(staged_zip, bundle_zip)
    return bundle_zip


def remove_staging(staging: Path) -> None:
    """Remove a staging folder and its zip (a failed build leaves nothing)."""
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.with_name(staging.name + ".zip").unlink()


__all__ = ["STAGING_PREFIX", "check_target", "move_into_place", "remove_staging", "zip_is_deepij_built"]
