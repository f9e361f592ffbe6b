"""Naming an image's dims with bioimage.io letters, and saying when an image cannot be a model's input.

- :func:`to_letters`: an xarray's dims (ImageJ's ``row, col, ch, pln, t``, letters, or words such as
  ``channel``) as letters, calibration attrs following.
- :func:`name_array`: a numpy array's dims, by ``axes=``, else the model input's own order (batch optional),
  else as an ImageJ-style ``(y, x)`` / ``(y, x, c)`` image.
- :func:`check_inputs` / :func:`check_one`: whether an image (letter dims) fits the model's input, and what to
  do when it does not (an RGB image for a one-channel model, a 2-D image for a 3-D model).

Examples
--------
>>> import numpy as np
>>> from deepij.bundle.description import AxisSpec, FixedSize, TensorSpec
>>> spec = TensorSpec("input", (AxisSpec("b"), AxisSpec("c", FixedSize(1)), AxisSpec("y"), AxisSpec("x")))
>>> name_array(np.zeros((64, 48), "float32"), spec).dims
('y', 'x')
>>> name_array(np.zeros((1, 1, 64, 48), "float32"), spec).dims
('b', 'c', 'y', 'x')
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from deepij.axes import IMAGEJ_TO_BIOIMAGE
from deepij.bundle.description import FixedSize, ModelDescription, ParameterizedSize, TensorSpec
from deepij.errors import InputError

#: Long dim names xarray users write, as letters.
_WORD_DIMS = {"batch": "b", "channel": "c", "index": "i", "time": "t"}


def to_letters(image: xr.DataArray, *, argument: str = "image") -> xr.DataArray:
    """An image's dims renamed to bioimage.io letters (from ImageJ's names, letters or words like
    ``channel``); coordinates and attrs follow, pixel sizes keyed by letter.

    Examples
    --------
    >>> to_letters(xr.DataArray(np.zeros((2, 4, 5)), dims=("pln", "row", "col"))).dims
    ('z', 'y', 'x')
    """
    try:
        mapping = {d: letter_of(str(d)) for d in image.dims}
    except ValueError as error:
        raise InputError(
            f"{argument}: dims {tuple(map(str, image.dims))} are not image dims (expected bioimage.io "
            f"letters b, t, c, z, y, x or ImageJ's t, pln, row, col, ch): {error}"
        ) from None
    if len(set(mapping.values())) != len(mapping):
        raise InputError(f"{argument}: dims {tuple(map(str, image.dims))} name the same axis twice")
    renamed = image.rename(mapping)
    sizes = renamed.attrs.get("pixel_size")
    if isinstance(sizes, Mapping):
        renamed.attrs = {**renamed.attrs, "pixel_size": {letter_of(str(k)): v for k, v in sizes.items()}}
    return renamed


def letter_of(dim: str) -> str:
    """The bioimage.io letter of a dim name (a letter, ImageJ's name, or a word such as ``channel``).

    Raises
    ------
    ValueError
        Not an image dim.

    Examples
    --------
    >>> letter_of("pln"), letter_of("channel"), letter_of("x")
    ('z', 'c', 'x')
    """
    if dim in "bitczyx" and len(dim) == 1:
        return dim
    if dim in IMAGEJ_TO_BIOIMAGE:
        return IMAGEJ_TO_BIOIMAGE[dim]
    if dim in _WORD_DIMS:
        return _WORD_DIMS[dim]
    raise ValueError(f"unknown dim {dim!r}")


def name_array(
    image: np.ndarray | xr.DataArray, spec: TensorSpec, axes: str | None = None, *, argument: str = "image"
) -> xr.DataArray:
    """A numpy array's dims as letters: ``axes``, else the input's own order (batch optional), else an
    ImageJ-style ``(y, x)`` or ``(y, x, c)`` image.

    Examples
    --------
    >>> from deepij.bundle.description import AxisSpec, TensorSpec
    >>> spec = TensorSpec("raw", tuple(AxisSpec(a) for a in "bczyx"))
    >>> name_array(np.zeros((8, 8, 3)), spec).dims
    ('y', 'x', 'c')
    """
    values = image.data if isinstance(image, xr.DataArray) else np.asarray(image)
    if axes is not None:
        dims = tuple(axes)
    elif values.ndim == len(spec.axes):
        dims = tuple(spec.axes_str)
    elif "b" in spec.axes_str and values.ndim == len(spec.axes) - 1:
        dims = tuple(spec.axes_str.replace("b", ""))
    elif values.ndim in (2, 3):
        dims = ("y", "x", "c")[: values.ndim]
    else:
        without_b = spec.axes_str.replace("b", "")
        raise InputError(
            f"{argument}: an array of shape {values.shape} does not fit input {spec.name!r} with axes "
            f"{spec.axes_str!r} (expected {len(spec.axes)} dims {spec.axes_str!r}, {len(without_b)} "
            f"{without_b!r}, or a 2-D (y, x) / 3-D (y, x, c) image); pass axes= (e.g. axes='zyx') or an "
            "xarray with named dims"
        )
    if len(dims) != values.ndim or len(set(dims)) != len(dims) or not set(dims) <= set("bitczyx"):
        raise InputError(
            f"axes: {axes!r} must name each of the {values.ndim} dims of {argument} (shape {values.shape}) "
            "once, with letters from 'bitczyx'"
        )
    return xr.DataArray(values, dims=dims)


def check_inputs(images: Mapping[str, xr.DataArray], description: ModelDescription) -> None:
    """Say clearly when an image (letter dims) cannot be the model's input, and what to do about it.

    Raises
    ------
    InputError
        An input is missing, or an image lacks an axis the model needs or has the wrong channel count.

    Examples
    --------
    >>> from deepij.bundle.description import AxisSpec, FixedSize, TensorSpec
    >>> spec = TensorSpec("raw", (AxisSpec("b"), AxisSpec("c", FixedSize(1)), AxisSpec("y"), AxisSpec("x")))
    >>> rgb = xr.DataArray(np.zeros((8, 8, 3), "uint8"), dims=("y", "x", "c"), attrs={"rgb": True})
    >>> check_one(rgb, spec, "m")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    deepij.errors.InputError: image: found an RGB image (c=3); model 'm' input 'raw' takes 1 channel...
    """
    for spec in description.inputs:
        if spec.name not in images:
            raise InputError(
                f"image: model {description.name!r} needs input {spec.name!r} (found inputs "
                f"{sorted(images)}); give a mapping from input name to image"
            )
        check_one(images[spec.name], spec, description.name)


def check_one(image: xr.DataArray, spec: TensorSpec, model: str) -> None:
    """:func:`check_inputs` for one input."""
    found = ", ".join(f"{d}={n}" for d, n in image.sizes.items())
    where = f"model {model!r} input {spec.name!r}"
    space = [a for a in spec.axes_str if a in "zyx"]
    missing = [a for a in space if a not in image.dims]
    if missing:
        kind = f"{len([a for a in 'zyx' if a in image.dims])}-D"
        advice = (
            "give a Z stack (a 3-D TIFF, or an xarray with a 'z' dim)"
            if "z" in missing
            else "give an image with y and x dims"
        )
        raise InputError(
            f"image: found a {kind} image ({found}); {where} is {len(space)}-D (axes {spec.axes_str!r}) and "
            f"needs axis {missing[0]!r}: {advice}"
        )
    if "c" not in spec.axes_str:
        if "c" in image.dims and image.sizes["c"] > 1:
            raise InputError(
                f"image: found {image.sizes['c']} channels ({found}); {where} takes no channel axis (axes "
                f"{spec.axes_str!r}): pick one channel (image.isel(c=0)) or convert it (ImageJ's 8-bit)"
            )
        return
    rule = spec.axis("c").size
    channels = image.sizes.get("c", 1)
    if not isinstance(rule, FixedSize | ParameterizedSize) or rule.is_valid(channels):
        return
    wanted: int | str = rule.value if isinstance(rule, FixedSize) else f"{rule.min}+k*{rule.step}"
    if image.attrs.get("rgb") or (channels == 3 and wanted == 1):
        raise InputError(
            f"image: found an RGB image (c={channels}); {where} takes {wanted} channel(s) (axes "
            f"{spec.axes_str!r}): convert it to grey first (ImageJ's run(\"8-bit\"), or image.mean('c')), "
            "or pick one channel"
        )
    raise InputError(
        f"image: found {channels} channel(s) ({found}); {where} takes {wanted} (axes {spec.axes_str!r}): "
        "give an image with that many channels along 'c'"
    )
