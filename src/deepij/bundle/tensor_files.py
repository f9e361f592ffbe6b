"""Reading the tensors a bundle ships (test and sample inputs and outputs, example images, result tables).

One way in, :func:`read_tensor_file`: ``.npy`` arrays, TIFF images, PNG / JPEG / BMP / GIF images, ``.csv``
tables. A file that is not what its name says (random bytes, a truncated array, a ``.npy`` whose header
promises more data than the file holds, an HTML error page saved as ``.tif``) is a
:class:`~deepij.errors.BundleError` naming the file, the descriptor field that names it, what is in the
file and what was expected; never numpy's, tifffile's or Pillow's own exception, and never an allocation of
what a lying header says.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from deepij.bundle.checks import tensor_file_references
from deepij.bundle.description import MAX_SMALLEST_TENSOR_BYTES, ModelDescription
from deepij.bundle.weights import resolve_file
from deepij.errors import BundleError
from deepij.files import describe_content

NPY_SUFFIXES = (".npy",)
TIFF_SUFFIXES = (".tif", ".tiff")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TABLE_SUFFIXES = (".csv",)
MAX_TENSOR_FILE_BYTES = MAX_SMALLEST_TENSOR_BYTES
"""The most a tensor file may unpack to (4 GiB): test tensors are small, a header saying more is broken."""

_KINDS = {
    **dict.fromkeys(NPY_SUFFIXES, ("a .npy array", "a .npy file (numpy.save)")),
    **dict.fromkeys(TIFF_SUFFIXES, ("a TIFF image", "a TIFF file")),
    **dict.fromkeys(PICTURE_SUFFIXES, ("an image", "a PNG, JPEG, BMP or GIF file")),
    **dict.fromkeys(TABLE_SUFFIXES, ("a table", "a comma-separated table")),
}


def read_tensor_file(
    description: ModelDescription, relative: str, *, field: str | None = None, verify: bool = False
) -> Any:
    """A tensor file of the bundle as a numpy array (``.npy``, TIFF, PNG...) or a pandas DataFrame (``.csv``).

    Parameters
    ----------
    description : ModelDescription
        The bundle.
    relative : str
        The file as the descriptor names it (bundle-relative path or URL; URLs are downloaded once).
    field : str, optional
        The descriptor field that names the file, for the messages; default the field of the test or
        sample tensor with this path (``inputs[0].test_tensor``, 0.3/0.4 ``test_inputs[0]``), if any.
    verify : bool
        Check the file against the sha256 the descriptor gives it first (a
        :class:`~deepij.errors.ChecksumError` when it differs).

    Returns
    -------
    numpy.ndarray or pandas.DataFrame
        The array as stored (a TIFF's first series, a picture's pixels), or the table.

    Raises
    ------
    BundleError
        The file is missing, a folder, of a kind no tensor is stored as, or not what its name says; the
        message names the file, the descriptor field, what is in the file and what was expected.
    """
    if field is None:
        field = next((f for f, path in tensor_file_references(description) if path == relative), None)
    digest = description.file_sha256.get(relative)
    path = resolve_file(description, relative, digest, verify=verify and digest is not None, field=field)
    suffix = path.suffix.lower()
    if suffix not in _KINDS:
        raise BundleError(
            f"a kind of file no tensor is read from, as {description.descriptor.name} names it",
            file=path,
            field=field,
            found=suffix or path.name,
            expected="a .npy, .tif, .png, .jpg or .csv file",
        )
    kind, expected = _KINDS[suffix]
    try:
        return _read(path, suffix)
    except _Unreadable as problem:
        raise BundleError(
            f"cannot be read as {kind}, as {description.descriptor.name} names it",
            file=path,
            field=field,
            found=f"{describe_content(path)}: {problem}",
            expected=expected,
        ) from None


class _Unreadable(Exception):
    """Why a file cannot be read as what its name says."""


def _read(path: Path, suffix: str) -> Any:
    if path.stat().st_size == 0:
        raise _Unreadable("nothing to read")
    if suffix in NPY_SUFFIXES:
        return _read_npy(path)
    if suffix in TIFF_SUFFIXES:
        return _read_tiff(path)
    if suffix in PICTURE_SUFFIXES:
        return _read_picture(path)
    return _read_table(path)


def _read_npy(path: Path) -> Any:
    """A ``.npy`` file, its header checked against the file's size before any data is allocated."""
    import numpy as np

    with open(path, "rb") as stream:
        try:
            version = np.lib.format.read_magic(stream)
            header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = header(stream)
        except (ValueError, OSError, EOFError, SyntaxError) as exc:
            raise _Unreadable(f"no valid .npy header ({exc})") from None
        if dtype.hasobject:
            raise _Unreadable("an array of Python objects (only plain numbers are read, never pickles)")
        needed = math.prod(shape) * dtype.itemsize
        held = path.stat().st_size - stream.tell()
        if needed > held:
            raise _Unreadable(
                f"its header promises shape {shape} of {dtype} ({needed} bytes), the file holds {held}"
            )
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, EOFError, OSError... on a damaged file
        raise _Unreadable(f"{type(exc).__name__}: {exc}") from None


def _read_tiff(path: Path) -> Any:
    import numpy as np
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise _Unreadable("a TIFF file without any image")
            series = tif.series[0]
            size = math.prod(series.shape) * np.dtype(series.dtype).itemsize
            if size > MAX_TENSOR_FILE_BYTES:
                raise _Unreadable(f"its image of shape {series.shape} would take {size} bytes")
            return series.asarray()
    except _Unreadable:
        raise
    except Exception as exc:  # tifffile raises TiffFileError, IndexError, struct.error, zlib.error...
        raise _Unreadable(f"{type(exc).__name__}: {exc}") from None


def _read_picture(path: Path) -> Any:
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as picture:
            if picture.width * picture.height * len(picture.getbands()) > MAX_TENSOR_FILE_BYTES:
                raise _Unreadable(f"an image of {picture.width} x {picture.height} pixels")
            return np.asarray(picture)
    except _Unreadable:
        raise
    except Exception as exc:  # Pillow's UnidentifiedImageError, DecompressionBombError, OSError...
        raise _Unreadable(f"{type(exc).__name__}: {exc}") from None


def _read_table(path: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except Exception as exc:  # pandas' ParserError, EmptyDataError, UnicodeDecodeError...
        raise _Unreadable(f"{type(exc).__name__}: {exc}") from None


