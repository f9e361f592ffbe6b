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

import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from deepij.axes import IMAGEJ_TO_BIOIMAGE
from deepij.bundle.description import FixedSize, ModelDescription, ParameterizedSize, TensorSpec
from deepij.errors import ArgumentTypeError, InputError

if TYPE_CHECKING:
    from deepij.imagej.session import Session

SessionProvider = Callable[[], "Session"]

TIFF_SUFFIXES = (".tif", ".tiff")
#: Long dim names xarray users write, as letters.
_WORD_DIMS = {"batch": "b", "channel": "c", "index": "i", "time": "t"}
#: tifffile's axis codes -> ImageJ dims. Q (unknown) and I (image sequence) are a plain multi-page TIFF's
#: pages, which ImageJ opens as slices.
_TIFF_AXES = {"T": "t", "Z": "pln", "C": "ch", "S": "ch", "Y": "row", "X": "col", "Q": "pln", "I": "pln"}
_OME_UNITS = {"µm": "micron", "um": "micron", "nm": "nm", "mm": "mm", "cm": "cm", "m": "m"}
_RESOLUTION_UNITS = {2: "inch", 3: "cm"}
_SPACE = ("x", "y", "z")


@dataclass(frozen=True)
class Calibration:
    """Physical size of an image's pixels, by axis letter.

    Attributes
    ----------
    pixel_size : mapping of str to float
        ``{"x": 0.3, "y": 0.3, "z": 1.5}``: size of one pixel along each calibrated spatial axis.
    unit : str or None
        Their unit (``"micron"``, ...).
    origin : mapping of str to float
        The origin, in pixels, per axis (ImageJ's ``xOrigin`` ...); 0 when absent.
    frame_interval, time_unit : float or None, str or None
        Time between frames.

    Examples
    --------
    >>> image = xr.DataArray(np.zeros((4, 5)), dims=("row", "col"), attrs={"unit": "micron",
    ...                      "pixel_size": {"col": 0.5, "row": 0.5, "pln": 1.0}})
    >>> Calibration.of(image).pixel_size
    {'y': 0.5, 'x': 0.5}
    """

    pixel_size: Mapping[str, float] = field(default_factory=dict)
    unit: str | None = None
    origin: Mapping[str, float] = field(default_factory=dict)
    frame_interval: float | None = None
    time_unit: str | None = None

    @property
    def empty(self) -> bool:
        return not self.pixel_size and not self.frame_interval

    @classmethod
    def of(cls, image: xr.DataArray) -> Calibration:
        """The calibration an image carries, whether its dims are letters or ImageJ's."""
        letters = {str(d): _letter(str(d)) for d in image.dims}
        attrs = image.attrs
        declared = {_letter(str(k)): float(v) for k, v in (attrs.get("pixel_size") or {}).items()}
        sizes: dict[str, float] = {}
        origin: dict[str, float] = {}
        for dim, letter in letters.items():
            if letter not in _SPACE:
                continue
            coords = image.coords[dim].values if dim in image.coords else None
            if coords is not None and coords.size > 1 and np.issubdtype(coords.dtype, np.number):
                step = float(coords[1] - coords[0])
                if step > 0:
                    sizes[letter] = step
                    origin[letter] = -float(coords[0]) / step
                    continue
            if letter in declared:
                sizes[letter] = declared[letter]
        unit = attrs.get("unit")
        if not sizes and unit in (None, "pixel", "pixels"):
            unit = None
        interval = attrs.get("frame_interval")
        return cls(
            pixel_size=sizes,
            unit=str(unit) if unit else None,
            origin={k: v for k, v in origin.items() if v},
            frame_interval=float(interval) if interval else None,
            time_unit=attrs.get("time_unit"),
        )

    def scaled(self, factors: Mapping[str, float]) -> Calibration:
        """The calibration of an output whose axes are ``factors`` times the input's (0 or absent: not
        calibrated along that axis any more)."""
        sizes = {a: s / factors[a] for a, s in self.pixel_size.items() if factors.get(a)}
        return Calibration(sizes, self.unit if sizes else None, {}, self.frame_interval, self.time_unit)

    def apply(self, image: xr.DataArray) -> xr.DataArray:
        """``image`` (letter dims) with this calibration as coordinates and ``attrs``."""
        sizes = {a: s for a, s in self.pixel_size.items() if a in image.dims}
        coords = {a: (np.arange(image.sizes[a]) - self.origin.get(a, 0.0)) * s for a, s in sizes.items()}
        if self.frame_interval and "t" in image.dims:
            coords["t"] = np.arange(image.sizes["t"]) * self.frame_interval
        result = image.assign_coords(coords) if coords else image
        attrs = {k: v for k, v in image.attrs.items() if k not in ("pixel_size", "unit")}
        if sizes:
            attrs["pixel_size"] = sizes
            attrs["unit"] = self.unit or "pixel"
        if self.frame_interval:
            attrs["frame_interval"] = self.frame_interval
            if self.time_unit:
                attrs["time_unit"] = self.time_unit
        result.attrs = attrs
        return result


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
    >>> source = read_source("cells.ome.tif", model.description)  # doctest: +SKIP
    >>> source.title, source.images["input"].dims, source.calibration.pixel_size  # doctest: +SKIP
    ('cells.ome.tif', ('z', 'y', 'x'), {'x': 0.3, 'y': 0.3, 'z': 1.5})
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


def to_letters(image: xr.DataArray, *, argument: str = "image") -> xr.DataArray:
    """An image's dims renamed to bioimage.io letters (from ImageJ's names, letters or words like
    ``channel``); coordinates and attrs follow, pixel sizes keyed by letter.

    Examples
    --------
    >>> to_letters(xr.DataArray(np.zeros((2, 4, 5)), dims=("pln", "row", "col"))).dims
    ('z', 'y', 'x')
    """
    try:
        mapping = {d: _letter(str(d)) for d in image.dims}
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
        renamed.attrs = {**renamed.attrs, "pixel_size": {_letter(str(k)): v for k, v in sizes.items()}}
    return renamed


def _letter(dim: str) -> str:
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


# ----------------------------------------------------------------------------------------------- files
def read_image_file(path: Path, session: SessionProvider | None = None) -> xr.DataArray:
    """An image file as an xarray: ImageJ dims (``t, pln, row, col, ch``) and calibration for images, the
    raw array for ``.npy``. The DataArray's name is the file name.

    Raises
    ------
    InputError
        The file does not exist, or no reader can read it.

    Examples
    --------
    >>> read_image_file(Path("cells.tif")).dims  # doctest: +SKIP
    ('pln', 'row', 'col', 'ch')
    """
    if not path.is_file():
        raise InputError(
            f"image: file {str(path)!r} does not exist (expected an image file, array or ImagePlus)"
        )
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InputError(f"image: {path}: not a readable .npy array ({error})") from None
        return xr.DataArray(values, name=path.name)  # dims named later, by the numpy rule
    if suffix in TIFF_SUFFIXES:
        return read_tiff(path)
    return _open_with_imagej(path, session)


def read_tiff(path: Path) -> xr.DataArray:
    """A TIFF (ImageJ hyperstack, OME-TIFF, plain) as an xarray with ImageJ dims and calibration attrs.

    Examples
    --------
    >>> read_tiff(Path("hyperstack.tif")).attrs["pixel_size"]  # doctest: +SKIP
    {'col': 0.5, 'row': 0.5, 'pln': 2.0}
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            values = series.asarray()
            codes = series.axes
            attrs = _tiff_calibration(tif)
    except (OSError, ValueError, tifffile.TiffFileError) as error:
        raise InputError(f"image: {path}: not a readable TIFF file ({error})") from None
    dims: list[str] = []
    keep: list[int] = []
    for index, code in enumerate(codes):
        dim = _TIFF_AXES.get(code)
        if dim is None or dim in dims:
            if values.shape[index] != 1:
                raise InputError(
                    f"image: {path}: TIFF axis {code!r} of size {values.shape[index]} (axes {codes!r}) has "
                    "no ImageJ counterpart (expected axes from T, Z, C, Y, X, S)"
                )
            continue
        dims.append(dim)
        keep.append(index)
    squeezed = values.reshape([values.shape[i] for i in keep])
    if "S" in codes and squeezed.dtype == np.uint8 and squeezed.shape[dims.index("ch")] == 3:
        attrs["rgb"] = True
    image = xr.DataArray(squeezed, dims=dims, attrs=attrs, name=path.name)
    order = [d for d in ("t", "pln", "row", "col", "ch") if d in dims]
    image = image.transpose(*order)
    single = [d for d in order if d not in ("row", "col") and image.sizes[d] == 1 and not attrs.get("rgb")]
    return image.squeeze(single, drop=True) if single else image


def _tiff_calibration(tif: Any) -> dict[str, Any]:
    """ImageJ-style calibration attrs (``unit``, ``pixel_size`` by ImageJ dim, ``frame_interval``)."""
    if tif.is_ome and tif.ome_metadata:
        return _ome_calibration(tif.ome_metadata)
    page = tif.pages[0]
    metadata = tif.imagej_metadata or {}
    attrs: dict[str, Any] = {}
    sizes: dict[str, float] = {}
    for dim, tag in (("col", "XResolution"), ("row", "YResolution")):
        value = page.tags.get(tag)
        if value is None:
            continue
        numerator, denominator = value.value
        if numerator > 0 and (numerator, denominator) != (1, 1):
            sizes[dim] = denominator / numerator  # the tag holds pixels per unit
    unit = metadata.get("unit")
    if unit is None and sizes:
        code = page.tags.get("ResolutionUnit")
        unit = _RESOLUTION_UNITS.get(int(code.value)) if code is not None else None
        if unit is None:
            sizes = {}  # resolution without a unit (ResolutionUnit NONE): not a physical size
    if "spacing" in metadata:
        sizes["pln"] = float(metadata["spacing"])
    if sizes:
        attrs["pixel_size"] = sizes
        attrs["unit"] = _unit_name(str(unit or "pixel"))
    if metadata.get("finterval"):
        attrs["frame_interval"] = float(metadata["finterval"])
        attrs["time_unit"] = "sec"
    return attrs


def _ome_calibration(xml: str) -> dict[str, Any]:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return {}
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return {}
    sizes: dict[str, float] = {}
    unit = None
    for dim, key in (("col", "X"), ("row", "Y"), ("pln", "Z")):
        value = pixels.get(f"PhysicalSize{key}")
        if value is not None and math.isfinite(float(value)) and float(value) > 0:
            sizes[dim] = float(value)
            unit = unit or pixels.get(f"PhysicalSize{key}Unit") or "µm"
    attrs: dict[str, Any] = {}
    if sizes:
        attrs["pixel_size"] = sizes
        attrs["unit"] = _unit_name(unit or "µm")
    interval = pixels.get("TimeIncrement")
    if interval is not None and float(interval) > 0:
        attrs["frame_interval"] = float(interval)
        attrs["time_unit"] = pixels.get("TimeIncrementUnit") or "s"
    return attrs


def _unit_name(unit: str) -> str:
    """ImageJ's spelling of a length unit (ImageJ writes ``micron``; ``\\u00B5m`` in files)."""
    cleaned = unit.strip().replace("\\u00B5", "µ")
    return _OME_UNITS.get(cleaned, cleaned)


def _open_with_imagej(path: Path, session: SessionProvider | None) -> xr.DataArray:
    from deepij.errors import MacroError

    if session is None:
        raise InputError(f"image: {path}: a {path.suffix} file is read with ImageJ, and no session was given")
    quoted = str(path.resolve()).replace("\\", "\\\\").replace('"', '\\"')
    try:
        result = session().run_macro(f'open("{quoted}");')
    except MacroError as error:
        raise InputError(f"image: {path}: ImageJ could not open it ({error.macro_message})") from None
    if result.image is None:
        raise InputError(f"image: {path}: ImageJ opened no image from it (expected an image file)")
    return result.image.rename(path.name)


def _is_imageplus(value: Any) -> bool:
    return hasattr(value, "getProcessor") and hasattr(value, "getStack") and hasattr(value, "getTitle")


# ----------------------------------------------------------------------------------------------- fitting
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


def output_calibration(
    description: ModelDescription, output: TensorSpec, calibration: Calibration
) -> Calibration:
    """The input's calibration carried onto an output, along the axes whose size follows the input's
    (``reference`` sizes: pixel size divided by their scale); other axes are not calibrated.

    Examples
    --------
    >>> Calibration({"x": 0.5, "y": 0.5}, "micron").scaled({"x": 2.0, "y": 2.0}).pixel_size
    {'x': 0.25, 'y': 0.25}
    """
    from deepij.bundle.description import ReferenceSize

    first = description.inputs[0].name if description.inputs else None
    factors = {
        axis.id: axis.size.scale
        for axis in output.axes
        if axis.id in _SPACE
        and isinstance(axis.size, ReferenceSize)
        and axis.size.tensor == first
        and axis.size.axis == axis.id
    }
    return calibration.scaled(factors)
