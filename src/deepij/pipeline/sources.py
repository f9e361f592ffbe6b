"""Where a model's input comes from: a file, a numpy array, an xarray or an ImagePlus.

:func:`read_source` turns any of them into one image per model input, its dims named with bioimage.io
letters (``b, t, c, z, y, x``), plus the title ImageJ would give it and its calibration. The rules:

- **Files**: TIFF (ImageJ hyperstacks, OME-TIFF, plain multi-page and RGB TIFFs) through tifffile, with
  their calibration; ``.npy`` as a numpy array; every other format (PNG, JPEG, GIF, BMP...) through ImageJ's
  own opener in the session. The title is the file name, as ImageJ titles an image it opens.
- **numpy**: in the model input's own axis order when its number of dims is the input's (batch optional);
  otherwise a 2-D array is an ImageJ-style ``(y, x)`` image and a 3-D one ``(y, x, c)``.
- **xarray**: by dim names, bioimage.io letters or ImageJ's (``row, col, ch, pln, t``); calibration from the
  coordinates and ``attrs`` (``unit``, ``pixel_size``) as :mod:`deepij.imagej.images` writes them.
- **ImagePlus**: copied through the session (the caller's image is never changed).

Dims the model does not take (time, Z for a 2-D model) stay, to be looped over. :func:`check_inputs` says,
once the image reaches the network (after any pre-processing), whether it fits the model, and what to do
when it does not (an RGB image for a one-channel model, a 2-D image for a 3-D model).

The parts live in their own modules, re-exported here: :mod:`deepij.pipeline.image_files` (file readers),
:mod:`deepij.pipeline.axis_matching` (dim names, fitting the model), :mod:`deepij.pipeline.calibration`.

Examples
--------
>>> from deepij.bundle import open_bundle
>>> description = open_bundle("examples/nuclei_bundle")  # a 2-D model: bcyx
>>> source = read_source(np.zeros((3, 64, 64), np.float32), description, axes="zyx")
>>> source.title, source.images["input"].dims  # z stays, to be looped over
('image', ('z', 'y', 'x'))
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from deepij.bundle.description import ModelDescription, TensorSpec
from deepij.errors import ArgumentTypeError, InputError
from deepij.files import describe_content
from deepij.pipeline.axis_matching import check_inputs, check_one, letter_of, name_array, to_letters
from deepij.pipeline.calibration import Calibration, output_calibration
from deepij.pipeline.image_files import (
    TIFF_SUFFIXES,
    SessionProvider,
    read_image_file,
    read_npy,
    read_tiff,
)

__all__ = [
    "TIFF_SUFFIXES",
    "Calibration",
    "SessionProvider",
    "Source",
    "check_inputs",
    "check_one",
    "describe_content",
    "letter_of",
    "name_array",
    "output_calibration",
    "read_image_file",
    "read_npy",
    "read_source",
    "read_tiff",
    "strip_extension",
    "to_letters",
]


@dataclass
class Source:
    """A model's input as read: one image per input name, letter dims, with its title and calibration.

    Attributes
    ----------
    images : dict of str to xarray.DataArray
        Input name -> image (dims: bioimage.io letters; dims the model does not take are kept).
    title : str
        The title ImageJ gives the input (a file's name, the DataArray's name, the ImagePlus title).
    calibration : Calibration
        Of the (first) input.
    """

    images: dict[str, xr.DataArray]
    title: str
    calibration: Calibration = field(default_factory=Calibration)

    @property
    def title_stem(self) -> str:
        """The title without its extension (``cells.ome.tif`` -> ``cells``), as deepImageJ names outputs."""
        return strip_extension(self.title)


def strip_extension(title: str) -> str:
    """A title without its file extension.

    Examples
    --------
    >>> strip_extension("cells.ome.tif"), strip_extension("nuclei.png"), strip_extension("image")
    ('cells', 'nuclei', 'image')
    """
    stem = re.sub(r"\.ome\.tiff?$", "", title, flags=re.IGNORECASE)
    if stem != title:
        return stem
    return re.sub(r"\.[A-Za-z][A-Za-z0-9]{0,4}$", "", title) or title


# ----------------------------------------------------------------------------------------------- reading
def read_source(
    image: Any,
    description: ModelDescription,
    *,
    axes: str | Mapping[str, str] | None = None,
    input_title: str | None = None,
    session: SessionProvider | None = None,
) -> Source:
    """Read a model's input, whatever it is given as.

    Parameters
    ----------
    image : path, ndarray, xarray.DataArray, ImagePlus, or a mapping of them by input name
        See the module notes for the rules.
    description : ModelDescription
        The model whose inputs the image is for.
    axes : str or mapping, optional
        Letters naming a numpy array's dims (per input name for several inputs).
    input_title : str, optional
        The input's title (default: the file name, the DataArray's or ImagePlus' own, else ``"image"``).
    session : callable, optional
        Gives the ImageJ session, for ImagePlus inputs and files only ImageJ opens.

    Raises
    ------
    InputError
        A file that does not exist or cannot be read, or an array whose dims cannot be named.

    Examples
    --------
    >>> import tempfile, tifffile
    >>> from deepij.bundle import open_bundle
    >>> path = Path(tempfile.mkdtemp()) / "cells.tif"  # 3 slices 1.5 um apart, 0.5 um pixels
    >>> tifffile.imwrite(path, np.zeros((3, 64, 64), np.uint16), imagej=True, resolution=(2.0, 2.0),
    ...                  metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"})
    >>> source = read_source(path, open_bundle("examples/nuclei_bundle"))
    >>> source.title, source.images["input"].dims, source.calibration.pixel_size
    ('cells.tif', ('z', 'y', 'x'), {'z': 1.5, 'y': 0.5, 'x': 0.5})
    """
    specs = description.inputs
    if isinstance(image, Mapping):
        unknown = sorted(set(map(str, image)) - {s.name for s in specs})
        if unknown:
            raise InputError(
                f"image: unknown input names {unknown} (model {description.name!r} has inputs "
                f"{[s.name for s in specs]})"
            )
        given = {s.name: image[s.name] for s in specs if s.name in image}
    elif len(specs) == 1:
        given = {specs[0].name: image}
    else:
        raise InputError(
            f"image: model {description.name!r} has {len(specs)} inputs {[s.name for s in specs]}; "
            "expected a mapping from input name to image"
        )
    per_input = axes if isinstance(axes, Mapping) else {s.name: axes for s in specs}
    images: dict[str, xr.DataArray] = {}
    titles: list[str] = []
    for name, item in given.items():
        spec = description.input(name)
        named, title = _read_one(item, spec, per_input.get(name), session, f"image[{name!r}]")
        images[name] = named
        titles.append(title)
    title = input_title or (titles[0] if titles else "image")
    first = next(iter(images.values()), None)
    calibration = Calibration.of(first) if first is not None else Calibration()
    return Source(images, title, calibration)


def _read_one(
    item: Any, spec: TensorSpec, axes: str | None, session: SessionProvider | None, argument: str
) -> tuple[xr.DataArray, str]:
    if isinstance(item, str | Path):
        path = Path(item).expanduser()
        image = read_image_file(path, session)
        if path.suffix.lower() == ".npy":  # a bare array: named by the numpy rule
            return name_array(image.values, spec, axes, argument=argument), path.name
        return _letters(image, spec, axes, argument), path.name
    if _is_imageplus(item):
        if session is None:
            raise InputError(f"{argument}: an ImagePlus needs the ImageJ session it belongs to")
        image = session().to_xarray(item)
        return _letters(image, spec, axes, argument), str(image.name or "image")
    if isinstance(item, xr.DataArray | np.ndarray):
        title = str(item.name) if isinstance(item, xr.DataArray) and item.name is not None else "image"
        return _letters(item, spec, axes, argument), title
    raise ArgumentTypeError(
        f"{argument}: expected a file path, numpy array, xarray.DataArray or ij.ImagePlus, "
        f"found {type(item).__name__}"
    )


def _letters(
    image: np.ndarray | xr.DataArray, spec: TensorSpec, axes: str | None, argument: str
) -> xr.DataArray:
    if isinstance(image, np.ndarray) or axes is not None:
        return name_array(image, spec, axes, argument=argument)
    return to_letters(image, argument=argument)


def _is_imageplus(value: Any) -> bool:
    return hasattr(value, "getProcessor") and hasattr(value, "getStack") and hasattr(value, "getTitle")
