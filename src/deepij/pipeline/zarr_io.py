"""Zarr and OME-Zarr images in and out, chunk by chunk: images bigger than memory.

- :func:`read_zarr`: an OME-Zarr image (0.4 or 0.5: its first, full-resolution level; axes, pixel sizes and
  units from its ``multiscales`` metadata) or a plain Zarr array (dims from ``dimension_names`` or xarray's
  ``_ARRAY_DIMENSIONS``, else ``axes=``) as a lazy, dask-backed DataArray with letter dims. Nothing is read
  but metadata until it is computed.
- :func:`write_ome_zarr`: a (lazy) image as an OME-Zarr 0.5 image through ``ome-zarr``, one Zarr chunk per
  chunk of the dask array (computed and written one by one, never the whole image at once), axes, pixel
  sizes and units kept. It is written under a hidden temporary name of its process and renamed into place:
  the store is there complete or not at all. It never deletes what deepij did not write: an existing path
  is replaced only when it is an empty folder or a store deepij wrote (its metadata carries a ``deepij``
  attribute, :func:`written_by_deepij`); anything else is refused (:func:`check_output_store`).

Examples
--------
>>> import tempfile
>>> import tifffile
>>> import xarray as xr
>>> nuclei = xr.DataArray(tifffile.imread("examples/nuclei_bundle/sample_input.tif"), dims=("y", "x"),
...                       attrs={"pixel_size": {"y": 0.5, "x": 0.5}})
>>> folder = tempfile.mkdtemp()
>>> write_ome_zarr(nuclei.chunk(128), f"{folder}/nuclei.ome.zarr").name
'nuclei.ome.zarr'
>>> image = read_zarr(f"{folder}/nuclei.ome.zarr")
>>> image.dims, image.attrs["pixel_size"], image.data.chunksize
(('y', 'x'), {'y': 0.5, 'x': 0.5}, (128, 128))
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from deepij.errors import ArgumentError, InputError
from deepij.files import remove_orphaned_temporaries, temporary_name, writable_folder

if TYPE_CHECKING:
    from deepij.bundle.description import TensorSpec

ZARR_SUFFIXES = (".zarr", ".ome.zarr")
"""Names that are Zarr stores (folders)."""
_OME_ORDER = "tczyx"
_MARK = "deepij"
"""The group attribute that says deepij wrote a store (so a later run may replace it)."""
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def is_zarr(path: Any) -> bool:
    """Whether ``path`` names a Zarr store: a ``.zarr`` folder or one holding Zarr metadata.

    Examples
    --------
    >>> is_zarr("images/big.ome.zarr"), is_zarr("cells.tif"), is_zarr(42)
    (True, False, False)
    """
    if not isinstance(path, (str, os.PathLike)):
        return False
    folder = Path(path)
    if folder.name.lower().endswith(ZARR_SUFFIXES):
        return True
    return folder.is_dir() and any((folder / m).is_file() for m in ("zarr.json", ".zarray", ".zgroup"))


def read_zarr(
    path: str | os.PathLike[str],
    *,
    axes: str | None = None,
    spec: TensorSpec | None = None,
    argument: str = "image",
) -> xr.DataArray:
    """A Zarr / OME-Zarr image as a lazy DataArray with letter dims (module notes).

    Parameters
    ----------
    path : path
        The store (an OME-Zarr image group, or a Zarr array).
    axes : str, optional
        Letters naming the dims of a plain array without dim names (e.g. ``"zyx"``).
    spec : TensorSpec, optional
        The model input the image is for: a plain array without dim names is then named as a numpy array
        is (:func:`zarr_array_image`).
    argument : str
        What errors call the image (``"image['raw']"``); they add the path.

    Raises
    ------
    InputError
        Not a Zarr store, or its dims cannot be named.
    """
    import zarr

    source = Path(path).expanduser()
    where = f"{argument} {str(source)!r}"
    try:
        node = zarr.open(str(source), mode="r")
    except Exception as error:  # zarr raises several kinds for a missing or broken store
        raise InputError(f"{where}: not a readable Zarr store ({error})") from error
    if not isinstance(node, zarr.Group):
        return zarr_array_image(node, axes=axes, spec=spec, name=source.name, argument=where)
    multiscales = _multiscales(node.attrs, source)
    names = [str(a["name"] if isinstance(a, Mapping) else a) for a in multiscales.get("axes", [])]
    level = multiscales["datasets"][0]
    array: Any = node[str(level["path"])]
    scale = _scale(level, multiscales, len(names))
    units = {str(a["name"]): a.get("unit") for a in multiscales["axes"] if isinstance(a, Mapping)}
    pixel_size = {n: s for n, s in zip(names, scale, strict=False) if n in "zyx" and s is not None}
    unit = next((units[n] for n in ("x", "y", "z") if units.get(n)), None)
    image = _named(array, list(axes) if axes else names, source.name, where)
    if pixel_size:
        image.attrs = {"pixel_size": pixel_size, "unit": unit or "pixel"}
    return image


def zarr_array_image(
    array: Any,
    *,
    axes: str | None = None,
    spec: TensorSpec | None = None,
    name: str | None = None,
    argument: str = "image",
) -> xr.DataArray:
    """A plain Zarr array as a lazy DataArray with letter dims: named by ``axes``, else by the array's own
    dim names (Zarr v3 ``dimension_names``, xarray's ``_ARRAY_DIMENSIONS``), else, for the model input
    ``spec``, by the rule for numpy arrays (:func:`deepij.pipeline.axis_matching.name_array`: the input's own
    axis order, batch optional, else a 2-D ``(y, x)`` / 3-D ``(y, x, c)`` image), with its errors.
    ``name`` becomes the DataArray's name; ``argument`` is what errors call the image.

    Examples
    --------
    >>> import zarr
    >>> from deepij.bundle.description import AxisSpec, TensorSpec
    >>> spec = TensorSpec("raw", tuple(AxisSpec(a) for a in "bcyx"))
    >>> zarr_array_image(zarr.zeros((1, 1, 64, 48)), spec=spec).dims
    ('b', 'c', 'y', 'x')
    >>> zarr_array_image(zarr.zeros((5, 64, 48)), axes="zyx", spec=spec).dims
    ('z', 'y', 'x')
    """
    from deepij.pipeline.axis_matching import name_array

    dims = list(axes) if axes else _array_dims(array)
    if spec is not None and (axes or not dims):
        # the numpy rule on a zero-byte stand-in (the image itself is not read), with its checks and errors
        stand_in = np.broadcast_to(np.zeros((), dtype=array.dtype), tuple(array.shape))
        dims = [str(d) for d in name_array(stand_in, spec, axes, argument=argument).dims]
    return _named(array, dims, name, argument)


def _named(array: Any, dims: list[str], name: str | None, argument: str) -> xr.DataArray:
    import dask.array as da

    if len(dims) != array.ndim or not dims:
        raise InputError(
            f"{argument}: an array of shape {tuple(array.shape)} whose dims are not named (found "
            f"{dims or 'none'}); expected OME-Zarr axes, Zarr dimension names, or axes= (e.g. 'zyx')"
        )
    return xr.DataArray(da.from_zarr(array), dims=tuple(dims), name=name)


def _multiscales(attrs: Mapping[str, Any], source: Path) -> dict[str, Any]:
    ome = attrs.get("ome", attrs)  # 0.5 keeps its metadata under "ome", 0.4 at the top
    found = ome.get("multiscales") if isinstance(ome, Mapping) else None
    if not found:
        raise InputError(
            f"image: {str(source)!r} is a Zarr group without OME-Zarr 'multiscales' metadata; expected an "
            "OME-Zarr image (or give the path of one of its arrays)"
        )
    return dict(found[0])


def _scale(level: Mapping[str, Any], multiscales: Mapping[str, Any], ndim: int) -> list[float | None]:
    """The level's pixel size per axis (its scale, times the multiscale's own when it has one)."""
    scale: list[float | None] = [1.0] * ndim
    for transforms in (level.get("coordinateTransformations"), multiscales.get("coordinateTransformations")):
        for transform in transforms or []:
            if transform.get("type") == "scale" and len(transform.get("scale", [])) == ndim:
                scale = [float(a or 1.0) * float(b) for a, b in zip(scale, transform["scale"], strict=True)]
    return scale


def _array_dims(array: Any) -> list[str]:
    names = getattr(array.metadata, "dimension_names", None)
    if names and all(names):
        return [str(n) for n in names]
    return [str(n) for n in array.attrs.get("_ARRAY_DIMENSIONS", [])]


def write_ome_zarr(image: xr.DataArray, path: str | os.PathLike[str]) -> Path:
    """Write a (lazy) image as an OME-Zarr 0.5 image, chunk by chunk (module notes).

    Parameters
    ----------
    image : xarray.DataArray
        Letter dims among ``t, c, z, y, x`` (a batch of one is dropped); ``attrs["pixel_size"]`` and
        ``attrs["unit"]`` become the axes' scale and unit.
    path : path
        The store to make: a new path, an empty folder, or a store deepij wrote (replaced).

    Raises
    ------
    ArgumentError
        Dims OME-Zarr cannot hold (a batch of several images, table axes), or a path that holds something
        deepij did not write, or whose folder cannot be written.
    """
    import dask.array as da
    import zarr
    from ome_zarr.writer import write_image

    from deepij import __version__

    laid_out = _ome_layout(image)
    target = Path(path).expanduser()
    check_output_store(target)
    writable_folder(target.parent, "output")
    remove_orphaned_temporaries(target.parent, prefix=f".{target.name}.")
    data = laid_out.data if isinstance(laid_out.data, da.Array) else da.from_array(laid_out.data)
    regular = tuple(max(c[0], 1) for c in data.chunks)
    data = data.rechunk(regular)  # Zarr chunks are regular: a chunk is written by one task only
    sizes = image.attrs.get("pixel_size") or {}
    unit = str(image.attrs.get("unit") or "")
    dims = [str(d) for d in laid_out.dims]
    scale = {d: float(sizes.get(d, 1.0)) for d in dims}
    units = {d: _ome_unit(unit) for d in dims if d in sizes and _ome_unit(unit)}
    partial = temporary_name(target)
    try:
        group = zarr.open_group(str(partial), mode="w")
        write_image(
            data,
            group,
            scale_factors=[],
            axes="".join(dims),
            scale=scale,
            axes_units=units or None,
            storage_options={"chunks": regular},
            name=str(image.name or "image"),
        )
        group.attrs[_MARK] = {"written by": "deepij", "deepij version": __version__}
        _replace_folder(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def written_by_deepij(store: Path) -> bool:
    """Whether ``store`` is an OME-Zarr store :func:`write_ome_zarr` wrote (its group metadata says so).

    Examples
    --------
    >>> written_by_deepij(Path("no such store"))
    False
    """
    try:
        metadata = json.loads((store / "zarr.json").read_text(encoding="utf-8"))
        mark = metadata["attributes"][_MARK]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(mark, Mapping) and mark.get("written by") == "deepij"


def check_output_store(target: Path, *, source: Path | None = None, argument: str = "output") -> None:
    """Refuse an output store path that would destroy what deepij did not write, or the input.

    Raises
    ------
    ArgumentError
        ``target`` is ``source``, lies inside it or holds it; or it exists and is a file, a link, or a
        folder with files in it that is not a store deepij wrote (the message says what is there).
    """
    if source is not None:
        _check_apart(target, source, argument)
    if not os.path.lexists(target):
        return
    what = "a link" if target.is_symlink() else "a file" if not target.is_dir() else None
    if what is None:
        entries = sorted(p.name for p in target.iterdir())
        if not entries or written_by_deepij(target):
            return
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        what = f"a folder deepij did not write (it holds {shown})"
    raise ArgumentError(
        f"{argument}: {str(target)!r} exists and is {what}; expected a new path, an empty folder or an "
        "OME-Zarr store an earlier deepij run wrote (deepij replaces nothing else): choose another path"
    )


def _check_apart(target: Path, source: Path, argument: str) -> None:
    here, there = target.resolve(), source.expanduser().resolve()
    if here == there:
        relation = "is the input itself"
    elif here.is_relative_to(there):
        relation = "lies inside the input"
    elif there.is_relative_to(here):
        relation = "holds the input"
    else:
        return
    raise ArgumentError(
        f"{argument}: {str(target)!r} {relation} ({str(source)!r}); expected an output path apart from the "
        "input, which is read while the output is written"
    )


def _ome_layout(image: xr.DataArray) -> xr.DataArray:
    """The image with OME-Zarr's dims only, in its order (t, c, z, y, x)."""
    dims = [str(d) for d in image.dims]
    if "b" in dims:
        if image.sizes["b"] != 1:
            raise ArgumentError(
                f"image: a batch of {image.sizes['b']} images cannot be one OME-Zarr image (dims {dims}); "
                "expected a batch of one, or save each image (image.isel(b=k)) apart"
            )
        image = image.isel(b=0)
        dims.remove("b")
    unknown = [d for d in dims if d not in _OME_ORDER]
    if unknown:
        raise ArgumentError(
            f"image: dims {unknown} cannot be OME-Zarr axes (dims {dims}); expected letters of "
            f"{_OME_ORDER!r}"
        )
    return image.transpose(*(d for d in _OME_ORDER if d in dims))


_UNITS = {
    "micron": "micrometer", "µm": "micrometer", "um": "micrometer", "nm": "nanometer", "mm": "millimeter"
}


def _ome_unit(unit: str) -> str:
    """A unit as OME-Zarr names it (ImageJ's ``micron`` -> ``micrometer``); empty for pixels."""
    if unit.lower() in ("", "pixel", "pixels"):
        return ""
    return _UNITS.get(unit, unit)


def _replace_folder(partial: Path, target: Path) -> None:
    """Put a finished store in place: the old one (if any, checked to be deepij's or empty) is moved aside
    under a temporary name of this process first, then removed."""
    old = None
    if target.exists():
        old = temporary_name(target)
        os.replace(target, old)
    os.replace(partial, target)
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)


def chunk_bytes(image: xr.DataArray) -> int:
    """Bytes of the largest chunk of a lazy image (what one task holds of it).

    Examples
    --------
    >>> import dask.array as da
    >>> chunk_bytes(xr.DataArray(da.zeros((100, 100), chunks=50, dtype="float32"), dims=("y", "x")))
    10000
    """
    chunks = getattr(image.data, "chunks", None)
    if chunks is None:
        return int(image.nbytes)
    return int(np.prod([max(c) for c in chunks])) * image.dtype.itemsize
