"""Axis names on both sides of the bridge: ImageJ images and model tensors.

ImageJ images arrive in Python as :class:`xarray.DataArray` objects whose dims are named the way pyimagej
names them. Models describe their tensors with bioimage.io axis letters. This module is the one mapping
between the two, and the functions that move an array from one naming to the other (transpose, rename,
add or drop singleton axes). It imports neither the JVM nor any framework.

The mapping
-----------
=========  ===============  =====================================================
ImageJ     bioimage.io      meaning
=========  ===============  =====================================================
``t``      ``t``            time (ImageJ frames)
``pln``    ``z``            space, planes (ImageJ slices)
``row``    ``y``            space, rows
``col``    ``x``            space, columns
``ch``     ``c``            channels (ImageJ channels, or R, G, B of an RGB image)
(none)     ``b``            batch: ImageJ has none; size 1 is dropped going to ImageJ
(none)     ``i``            index (tables): not an image axis
=========  ===============  =====================================================

An ImageJ image is always ordered ``(t, pln, row, col, ch)`` (:data:`IMAGEJ_DIMS`), with the dims of size 1
left out except ``row`` and ``col`` (and ``ch`` of an RGB image). A model tensor is ordered as its axes
string says, e.g. ``"byxc"`` or ``"bcyx"``.

Examples
--------
>>> import numpy as np, xarray as xr
>>> image = xr.DataArray(np.zeros((5, 64, 48), "float32"), dims=("pln", "row", "col"))
>>> tensor = to_bioimage_axes(image, "bczyx")
>>> tensor.dims, tensor.shape
(('b', 'c', 'z', 'y', 'x'), (1, 1, 5, 64, 48))
>>> back = to_imagej_dims(tensor)
>>> back.dims, back.shape
(('pln', 'row', 'col'), (5, 64, 48))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from deepij.dask_on_demand import keep_dask_unloaded
from deepij.errors import ArgumentError, ArgumentTypeError

keep_dask_unloaded()  # every DataArray deepij makes would import dask otherwise

#: ImageJ dims in the order deepij (like pyimagej) lays them out.
IMAGEJ_DIMS: tuple[str, ...] = ("t", "pln", "row", "col", "ch")

#: bioimage.io axis letter -> ImageJ dim name.
BIOIMAGE_TO_IMAGEJ: dict[str, str] = {"t": "t", "z": "pln", "y": "row", "x": "col", "c": "ch"}

#: ImageJ dim name -> bioimage.io axis letter.
IMAGEJ_TO_BIOIMAGE: dict[str, str] = {v: k for k, v in BIOIMAGE_TO_IMAGEJ.items()}

#: bioimage.io axis letters deepij understands.
BIOIMAGE_AXES = "bitczyx"


def bioimage_to_imagej_dim(letter: str) -> str:
    """The ImageJ dim name of a bioimage.io axis letter.

    Examples
    --------
    >>> bioimage_to_imagej_dim("z")
    'pln'
    """
    try:
        return BIOIMAGE_TO_IMAGEJ[letter]
    except KeyError:
        raise ArgumentError(
            f"axis {letter!r} has no ImageJ counterpart (expected one of {''.join(BIOIMAGE_TO_IMAGEJ)})"
        ) from None


def imagej_to_bioimage_dim(dim: str) -> str:
    """The bioimage.io axis letter of an ImageJ dim name.

    Examples
    --------
    >>> imagej_to_bioimage_dim("ch")
    'c'
    """
    try:
        return IMAGEJ_TO_BIOIMAGE[dim]
    except KeyError:
        raise ArgumentError(f"dim {dim!r} is not an ImageJ dim (expected one of {IMAGEJ_DIMS})") from None


def check_axes(axes: str, *, argument: str = "axes") -> str:
    """Validate a bioimage.io axes string (known letters, each once) and return it.

    Examples
    --------
    >>> check_axes("byxc")
    'byxc'
    """
    if not isinstance(axes, str) or not axes:
        raise ArgumentError(f"{argument}: expected a non-empty string of letters from {BIOIMAGE_AXES!r}, "
                         f"found {axes!r}")
    unknown = sorted(set(axes) - set(BIOIMAGE_AXES))
    if unknown:
        raise ArgumentError(f"{argument}: unknown axis letters {unknown} in {axes!r} "
                         f"(expected letters from {BIOIMAGE_AXES!r})")
    if len(set(axes)) != len(axes):
        raise ArgumentError(f"{argument}: repeated axis letters in {axes!r} (expected each letter once)")
    return axes


def as_bioimage_array(data: xr.DataArray | np.ndarray, axes: str | None = None) -> xr.DataArray:
    """Name a model-side array's dims with bioimage.io letters.

    Parameters
    ----------
    data : xarray.DataArray or numpy.ndarray
        A DataArray whose dims already are bioimage.io letters, or any array when ``axes`` is given.
    axes : str, optional
        The axes of ``data`` in memory order (``"byxc"``). Required for a numpy array; for a DataArray it
        overrides (renames) its dims.

    Examples
    --------
    >>> as_bioimage_array(np.zeros((1, 8, 8, 3)), "byxc").dims
    ('b', 'y', 'x', 'c')
    """
    if axes is not None:
        check_axes(axes)
        array = data.data if isinstance(data, xr.DataArray) else np.asarray(data)
        if array.ndim != len(axes):
            raise ArgumentError(f"axes: {axes!r} names {len(axes)} axes but the array has {array.ndim} "
                             f"(shape {array.shape})")
        if isinstance(data, xr.DataArray):
            return data.rename(dict(zip(data.dims, axes, strict=True)))
        return xr.DataArray(array, dims=tuple(axes))
    if not isinstance(data, xr.DataArray):
        raise ArgumentError("axes: a numpy array needs its axes, e.g. axes='byxc' (found None)")
    names = [str(d) for d in data.dims]
    long_names = [n for n in names if len(n) != 1]
    if long_names:
        raise ArgumentError(
            f"dims of the DataArray: unknown axis letters {long_names} in {tuple(names)} "
            f"(expected letters from {BIOIMAGE_AXES!r}; ImageJ dims go through to_bioimage_axes)"
        )
    check_axes("".join(names) or "?", argument="dims of the DataArray")
    return data


def to_bioimage_axes(image: xr.DataArray, axes: str) -> xr.DataArray:
    """Lay an ImageJ-named image out as a model tensor with the given bioimage.io axes.

    ImageJ dims are renamed to their letters (``row`` -> ``y``, ...), axes the image lacks are added with
    size 1 (``b``, a missing ``c``...), dims of size 1 that ``axes`` lacks are dropped, and the result is
    transposed to the order of ``axes``. Frames (``t``) become the batch when ``axes`` has ``b`` but no ``t``.
    Coordinates and attributes follow.

    Parameters
    ----------
    image : xarray.DataArray
        An image with ImageJ dims (any subset of ``t, pln, row, col, ch``, any order).
    axes : str
        The tensor's axes, e.g. ``"byxc"``.

    Raises
    ------
    ArgumentError
        When the image has an axis of size > 1 that ``axes`` cannot hold, or a dim that is not an ImageJ dim.

    Examples
    --------
    >>> rgb = xr.DataArray(np.zeros((32, 16, 3), "uint8"), dims=("row", "col", "ch"))
    >>> to_bioimage_axes(rgb, "bcyx").shape
    (1, 3, 32, 16)
    """
    check_axes(axes)
    if not isinstance(image, xr.DataArray):
        raise ArgumentTypeError(
            f"image: expected an xarray.DataArray with ImageJ dims, found {type(image).__name__}"
        )
    for dim in image.dims:
        imagej_to_bioimage_dim(str(dim))
    renamed = image.rename({dim: IMAGEJ_TO_BIOIMAGE[str(dim)] for dim in image.dims})
    if "t" in renamed.dims and "t" not in axes and "b" in axes and renamed.sizes["t"] > 1:
        # The inverse of to_imagej_dims: frames become the batch of a model that has no time axis.
        renamed = renamed.rename({"t": "b"})
    return _conform(renamed, axes, what="image")


def to_imagej_dims(tensor: xr.DataArray | np.ndarray, axes: str | None = None) -> xr.DataArray:
    """Lay a model tensor out as an ImageJ image: dims ``(t, pln, row, col, ch)`` minus missing ones.

    Letters are renamed to ImageJ dims (``y`` -> ``row``, ...). A batch axis of size 1 is dropped; a batch
    of several becomes time (``t``) when the tensor has no time axis of its own (or one of size 1). Axes of
    size 1 other than ``y``/``x`` are dropped (ImageJ does not keep them).

    Parameters
    ----------
    tensor : xarray.DataArray or numpy.ndarray
        The tensor, dims named by bioimage.io letters (or give ``axes``).
    axes : str, optional
        The tensor's axes when it is a numpy array (or to rename a DataArray's dims).

    Raises
    ------
    ArgumentError
        For an index axis ``i`` of size > 1, a batch that cannot become time, or missing ``y``/``x``.

    Examples
    --------
    >>> to_imagej_dims(np.zeros((1, 2, 32, 16)), "bcyx").dims
    ('row', 'col', 'ch')
    """
    named = as_bioimage_array(tensor, axes)
    if "y" not in named.dims or "x" not in named.dims:
        found = "".join(map(str, named.dims))
        raise ArgumentError(f"axes: an ImageJ image needs 'y' and 'x' axes, found {found!r}")
    if "b" in named.dims and named.sizes["b"] > 1:
        if "t" in named.dims and named.sizes["t"] > 1:
            raise ArgumentError(
                f"axes: a batch of {named.sizes['b']} and {named.sizes['t']} time points cannot both become "
                "ImageJ frames (expected a batch of 1, or no time axis); split the batch first"
            )
        if "t" in named.dims:
            named = named.squeeze("t", drop=True)
        named = named.rename({"b": "t"})
    for letter in ("b", "i"):
        if letter in named.dims:
            if named.sizes[letter] != 1:
                raise ArgumentError(f"axes: axis {letter!r} of size {named.sizes[letter]} has no ImageJ "
                                 "counterpart (expected size 1)")
            named = named.squeeze(letter, drop=True)
    squeezable = [d for d in named.dims if d not in ("y", "x") and named.sizes[d] == 1]
    named = named.squeeze(squeezable, drop=True) if squeezable else named
    order = [IMAGEJ_TO_BIOIMAGE[d] for d in IMAGEJ_DIMS if IMAGEJ_TO_BIOIMAGE[d] in named.dims]
    named = named.transpose(*order)
    return named.rename({letter: BIOIMAGE_TO_IMAGEJ[str(letter)] for letter in named.dims})


def imagej_order(dims: Sequence[str]) -> tuple[str, ...]:
    """The given ImageJ dims sorted into deepij's order ``(t, pln, row, col, ch)``.

    Examples
    --------
    >>> imagej_order(["ch", "row", "col"])
    ('row', 'col', 'ch')
    """
    for dim in dims:
        imagej_to_bioimage_dim(dim)
    return tuple(d for d in IMAGEJ_DIMS if d in dims)


def _conform(named: xr.DataArray, axes: str, *, what: str) -> xr.DataArray:
    """Add missing axes (size 1), drop singleton extras, transpose to ``axes``."""
    extra = [str(d) for d in named.dims if str(d) not in axes]
    too_big = [f"{d}={named.sizes[d]}" for d in extra if named.sizes[d] != 1]
    if too_big:
        raise ArgumentError(
            f"axes: the {what} has axes {', '.join(too_big)} that {axes!r} cannot hold "
            f"(found dims {tuple(map(str, named.dims))}; expected only size-1 axes outside {axes!r})"
        )
    if extra:
        named = named.squeeze(extra, drop=True)
    missing = [letter for letter in axes if letter not in named.dims]
    for letter in missing:
        named = named.expand_dims(letter)
    return named.transpose(*axes)
