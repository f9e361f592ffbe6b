"""Reading a model's input from a file: TIFF (ImageJ hyperstacks, OME-TIFF, plain) through tifffile with
its calibration, ``.npy`` through numpy, every other format through ImageJ's own opener.

A file that cannot be read raises :class:`~deepij.errors.InputError` naming the file, what was found there
(its size and what its first bytes are: "0 bytes", "a PNG file", "text", a truncated TIFF...) and what was
expected; never a reader's own exception (tifffile's IndexError, zlib's error, numpy's EOFError).

Examples
--------
>>> import tempfile
>>> read_image_file(Path("examples/nuclei_bundle/exampleImage.tif")).dims
('row', 'col')
>>> empty = Path(tempfile.mkdtemp()) / "empty.tif"
>>> empty.touch()
>>> read_image_file(empty)  # doctest: +ELLIPSIS
Traceback (most recent call last):
deepij.errors.InputError: image: file '.../empty.tif': found an empty file (0 bytes); expected a TIFF image
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from deepij.errors import InputError
from deepij.files import describe_content

if TYPE_CHECKING:
    from deepij.imagej.session import Session

SessionProvider = Callable[[], "Session"]

TIFF_SUFFIXES = (".tif", ".tiff")
#: tifffile's axis codes -> ImageJ dims. Q (unknown) and I (image sequence) are a plain multi-page TIFF's
#: pages, which ImageJ opens as slices.
_TIFF_AXES = {"T": "t", "Z": "pln", "C": "ch", "S": "ch", "Y": "row", "X": "col", "Q": "pln", "I": "pln"}
_OME_UNITS = {"µm": "micron", "um": "micron", "nm": "nm", "mm": "mm", "cm": "cm", "m": "m"}
_RESOLUTION_UNITS = {2: "inch", 3: "cm"}
#: What a file's first bytes say it is (for the messages about files that cannot be read).


def read_image_file(path: Path, session: SessionProvider | None = None) -> xr.DataArray:
    """An image file as an xarray: ImageJ dims (``t, pln, row, col, ch``) and calibration for images, the
    raw array for ``.npy``. The DataArray's name is the file name.

    Raises
    ------
    InputError
        The path does not exist or is a folder, or the file cannot be read as what its name says (the message
        names the file, what is in it and what was expected): the refusals of :func:`check_image_file`.

    Examples
    --------
    >>> image = read_image_file(Path("examples/nuclei_bundle/exampleImage.tif"))
    >>> image.name, image.dims, str(image.dtype)
    ('exampleImage.tif', ('row', 'col'), 'uint16')
    >>> read_image_file(Path("examples/nuclei_bundle/test_input.npy")).shape  # as numpy has it
    (1, 1, 256, 256)
    """
    _check_path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return read_npy(path)
    if suffix in TIFF_SUFFIXES:
        return read_tiff(path)
    return _open_with_imagej(path, session)


def check_image_file(path: Path) -> None:
    """Refuse a file that deepij would not read as an image, before anything opens it.

    The checks :func:`read_image_file` makes (what ``deepij run`` and ``Model.predict`` do), for the doors
    that let ImageJ open the file itself (``deepij macro --input``, ``run("DeepImageJ Run",
    "input_path=...")``): ImageJ opens a truncated or damaged TIFF without an error, the missing rows filled
    with zeros. A missing path, a folder, an empty file; a ``.npy`` that is not one or is cut short; a TIFF
    whose pages or pixel data end past the end of the file, whose ImageJ header counts more images than it
    holds, or whose compressed data cannot be decoded. Other formats are only checked for being a non-empty
    file here: ImageJ's own opener decides (see :func:`cannot_read` for its refusal).

    Raises
    ------
    InputError
        Naming the file, what is in it and what was expected.
    """
    _check_path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        _load_npy(path, mmap_mode="r")  # the header and the file's length, without reading the data
    elif suffix in TIFF_SUFFIXES:
        with _checked_tiff(path) as tif:
            if any(page.compression != 1 for page in tif.pages):  # 1: none; only decoding shows damage
                tif.series[0].asarray()


def cannot_read(path: Path, problem: str) -> InputError:
    """The InputError for a file that cannot be read as what its name says (``problem`` says why).

    Examples
    --------
    >>> print(cannot_read(Path("missing.png"), "ImageJ could not open it"))  # doctest: +ELLIPSIS
    image: file 'missing.png': found ..., which cannot be read as an image file ImageJ opens (.png): ImageJ...
    """
    return _unreadable(path, path.suffix.lower(), problem)


def _check_path(path: Path) -> None:
    """A file that exists and is not empty (a folder or a missing path is refused, naming it)."""
    if path.is_dir():
        raise InputError(
            f"image: {str(path)!r} is a folder; expected an image file (a folder of images is run with "
            "deepij.run_batch or `deepij run --input FOLDER`)"
        )
    if not path.is_file():
        raise InputError(
            f"image: file {str(path)!r} does not exist (expected an image file, array or ImagePlus)"
        )
    if path.stat().st_size == 0:
        raise InputError(
            f"image: file {str(path)!r}: found an empty file (0 bytes); expected {_kind(path.suffix.lower())}"
        )


def read_npy(path: Path) -> xr.DataArray:
    """A ``.npy`` file as a DataArray without dim names (they are named later, by the numpy rule).

    Examples
    --------
    >>> array = read_npy(Path("examples/nuclei_bundle/test_input.npy"))
    >>> array.shape, array.dims
    ((1, 1, 256, 256), ('dim_0', 'dim_1', 'dim_2', 'dim_3'))
    """
    return xr.DataArray(_load_npy(path), name=path.name)


def _load_npy(path: Path, mmap_mode: Literal["r"] | None = None) -> np.ndarray:
    with open(path, "rb") as stream:
        magic = stream.read(6)
    if magic != b"\x93NUMPY":
        raise _unreadable(path, ".npy", "it does not start with the .npy header (\\x93NUMPY)")
    try:
        values: np.ndarray = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except ValueError as error:
        raise _unreadable(path, ".npy", f"{error}") from None
    except Exception as error:  # numpy's EOFError, OSError... on a truncated or foreign file
        raise _unreadable(path, ".npy", f"{type(error).__name__}: {error}") from None
    return values


def read_tiff(path: Path) -> xr.DataArray:
    """A TIFF (ImageJ hyperstack, OME-TIFF, plain) as an xarray with ImageJ dims and calibration attrs.

    Raises
    ------
    InputError
        Not a TIFF, or a damaged one: its pages or their pixel data end past the end of the file, its ImageJ
        header counts more images than it holds, or its compressed data cannot be decoded.

    Examples
    --------
    >>> import tempfile, tifffile
    >>> path = Path(tempfile.mkdtemp()) / "stack.tif"  # 3 slices 1.5 um apart, 0.5 um pixels
    >>> tifffile.imwrite(path, np.zeros((3, 64, 64), np.uint16), imagej=True, resolution=(2.0, 2.0),
    ...                  metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"})
    >>> stack = read_tiff(path)
    >>> stack.dims, stack.attrs["pixel_size"], stack.attrs["unit"]
    (('pln', 'row', 'col'), {'col': 0.5, 'row': 0.5, 'pln': 1.5}, 'micron')
    """
    with _checked_tiff(path) as tif:
        series = tif.series[0]
        values = series.asarray()
        codes = series.axes
        attrs = _tiff_calibration(tif)
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


# ------------------------------------------------------------------------------------------------- helpers
def _kind(suffix: str) -> str:
    if suffix in TIFF_SUFFIXES:
        return "a TIFF image"
    if suffix == ".npy":
        return "a numpy .npy array"
    return f"an image file ImageJ opens ({suffix or 'no extension'})"


def _unreadable(path: Path, suffix: str, problem: str) -> InputError:
    return InputError(
        f"image: file {str(path)!r}: found {describe_content(path)}, which cannot be read as "
        f"{_kind(suffix)}: {problem}"
    )


def _damage(error: BaseException, warnings: list[str]) -> str:
    name = type(error).__name__
    text = str(error) if name == "TiffFileError" else f"{name}: {error}"
    if warnings:
        text += f" (tifffile: {'; '.join(dict.fromkeys(warnings))})"
    return f"the file is damaged or truncated ({text})"


@contextmanager
def _tifffile_warnings(found: list[str]) -> Iterator[None]:
    """What tifffile logs while reading (it logs, rather than raises, about many damaged structures)."""
    logger = logging.getLogger("tifffile")

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(record.getMessage().split("> ", 1)[-1])

    handler = _Collect(logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False  # collected here, reported in the InputError
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@contextmanager
def _checked_tiff(path: Path) -> Iterator[Any]:
    """The open ``tifffile.TiffFile`` of a TIFF that has an image and is complete; whatever goes wrong in
    the block (reading it, decoding it) is an InputError naming the file and the damage."""
    import tifffile

    warnings: list[str] = []
    try:
        with _tifffile_warnings(warnings), tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise _unreadable(path, ".tif", "a TIFF file without any image")
            _check_complete(tif, path, warnings)
            yield tif
    except InputError:
        raise
    except Exception as error:  # tifffile raises many kinds (IndexError, struct.error, zlib.error...)
        raise _unreadable(path, ".tif", _damage(error, warnings)) from None


def _check_complete(tif: Any, path: Path, warnings: list[str]) -> None:
    """Refuse a truncated TIFF that tifffile would read in part: pixel data past the end of the file, or an
    ImageJ header counting more images than the file holds."""
    size = path.stat().st_size
    for page in tif.pages:
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False) if n]
        if ends and max(ends) > size:
            raise _unreadable(
                path,
                ".tif",
                f"truncated: the pixel data of page {page.index} end at byte {max(ends)}, past the end of "
                "the file",
            )
    declared = (tif.imagej_metadata or {}).get("images") if tif.is_imagej else None
    if declared:
        series = tif.series[0]
        planes = math.prod(n for a, n in zip(series.axes, series.shape, strict=True) if a not in "YXS")
        if planes < int(declared):
            note = f" (tifffile: {'; '.join(dict.fromkeys(warnings))})" if warnings else ""
            raise _unreadable(
                path,
                ".tif",
                f"truncated: its ImageJ header counts {declared} images, the file holds {planes}{note}",
            )


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
        problem = f"ImageJ could not open it ({error.macro_message})"
        raise _unreadable(path, path.suffix.lower(), problem) from None
    if result.image is None:
        raise _unreadable(path, path.suffix.lower(), "ImageJ opened no image from it")
    return result.image.rename(path.name)
