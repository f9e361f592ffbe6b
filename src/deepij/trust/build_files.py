"""The files of a built bundle besides weights and descriptor: ImageJ TIFFs, the cover, the README, the zip.

Examples
--------
>>> import numpy as np, tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_imagej_tiff(np.zeros((1, 1, 8, 8), np.float32), "bcyx", folder / "a.tif").name
'a.tif'
>>> write_cover([np.zeros((8, 8)), np.ones((8, 16))], folder / "cover.png").name
'cover.png'
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepij.files import atomic_path

IMAGEJ_ORDER = "tzcyx"
"""The order of ImageJ hyperstack dims (TZCYX), which ImageJ TIFFs are written in."""
_IMAGEJ_TYPES = (np.uint8, np.uint16, np.float32)
COVER_SIDE = 320
"""Each panel of the cover is a 320 x 320 square: the cover is 640 x 320, the 2:1 the zoo asks of covers."""


def imagej_layout(array: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    """The array without its batch axis (first sample) in ImageJ's dim order, and those dims' letters.

    Examples
    --------
    >>> data, letters = imagej_layout(np.zeros((1, 5, 6, 2)), "byxc")
    >>> data.shape, letters
    ((2, 5, 6), 'cyx')
    """
    import xarray as xr

    image = xr.DataArray(np.asarray(array), dims=list(axes))
    if "b" in image.dims:
        image = image.isel(b=0)
    letters = "".join(a for a in IMAGEJ_ORDER if a in image.dims)
    return image.transpose(*letters).values, letters


def write_imagej_tiff(array: np.ndarray, axes: str, path: Path) -> Path:
    """``array`` (dims ``axes``) as an ImageJ TIFF: first sample, TZCYX order, 8-bit, 16-bit or 32-bit."""
    import tifffile

    data, letters = imagej_layout(array, axes)
    if data.dtype.type not in _IMAGEJ_TYPES:
        data = data.astype(np.float32)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": letters.upper()})
    return path


def image_size_text(array: np.ndarray, axes: str) -> str:
    """The size deepImageJ's ``test_information`` writes: ``"W x H x C x Z"``.

    Examples
    --------
    >>> image_size_text(np.zeros((1, 2, 30, 40)), "bcyx")
    '40 x 30 x 2 x 1'
    """
    sizes = dict(zip(axes, np.shape(array), strict=True))
    return " x ".join(str(sizes.get(a, 1)) for a in "xycz")


def _panel(array: np.ndarray) -> np.ndarray:
    """A 2-D image as 8-bit grey, stretched between its 0.5 % and 99.5 % percentiles."""
    plane = np.asarray(array, dtype=np.float64)
    while plane.ndim > 2:
        plane = plane[plane.shape[0] // 2]
    finite = plane[np.isfinite(plane)]
    low, high = np.percentile(finite, (0.5, 99.5)) if finite.size else (0.0, 1.0)
    scaled = (np.nan_to_num(plane, nan=low) - low) / (high - low if high > low else 1.0)
    return np.clip(scaled * 255.0, 0, 255).astype(np.uint8)


def write_cover(images: Sequence[np.ndarray], path: Path) -> Path:
    """A PNG of the images side by side, each fitted into a 320 x 320 square (2-D planes; the middle plane
    of higher-dimensional ones): the example input and the result, as the zoo shows covers."""
    from PIL import Image

    canvas = Image.new("L", (COVER_SIDE * len(images), COVER_SIDE), color=0)
    for k, array in enumerate(images):
        panel = Image.fromarray(_panel(array))
        factor = COVER_SIDE / max(panel.size)
        size = (max(1, round(panel.size[0] * factor)), max(1, round(panel.size[1] * factor)))
        panel = panel.resize(size, Image.Resampling.NEAREST)
        left = k * COVER_SIDE + (COVER_SIDE - size[0]) // 2
        canvas.paste(panel, (left, (COVER_SIDE - size[1]) // 2))
    canvas.save(path, format="PNG")
    return path


def zip_folder(folder: Path, target: Path) -> Path:
    """The folder's files at the root of a zip (how the zoo and deepImageJ ship bundles), written
    atomically."""
    with atomic_path(target) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(folder).as_posix())
    return target


__all__ = ["image_size_text", "imagej_layout", "write_cover", "write_imagej_tiff", "zip_folder"]
