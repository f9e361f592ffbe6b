"""Pixels between a user's ImageJ and the deepij worker: two shared files in a private folder.

The worker (:mod:`deepij.frontdoors.serve`) makes a folder of its own (``mkdtemp``: mode 0700, in
``/dev/shm`` where there is one, so the files are shared memory) holding two files created 0600:
``to_worker`` (the plugin writes images there, the worker reads them) and ``from_worker`` (the other way).
Only this user can open them. Neither side ever shrinks a file (the other side may have it mapped). The plugin
maps them; this side reads and writes them with ``pread``/``pwrite`` (one copy, no page faults of a mapping
made anew each call: 2-3x faster than a mapping for a 16 MB image on these machines).

An image in a file is its planes one after the other in ImageJ's stack order (channel fastest, then slice,
then frame), each plane row after row, little-endian (the machine's order; both ends run on one machine):
``uint8``, ``uint16``, ``float32``, or ``rgb`` (ImageJ's packed ``int`` pixels, 0xAARRGGBB). The JSON
message carries what the image is::

    {"title": "cells.tif", "width": 512, "height": 256, "channels": 1, "slices": 1, "frames": 1,
     "type": "float32", "offset": 0,
     "calibration": {"scaled": true, "unit": "micron", "pixel_width": 0.5, "pixel_height": 0.5,
                     "pixel_depth": 1.0, "x_origin": 0.0, "y_origin": 0.0, "z_origin": 0.0,
                     "frame_interval": 0.0, "time_unit": "sec"},
     "display_range": [[0.0, 255.0]], "composite_mode": "composite"}

On this side an image is the :class:`xarray.DataArray` :func:`deepij.imagej.images.to_xarray` would make of
the same ImagePlus (ImageJ dims ``t, pln, row, col, ch``, size-1 dims left out, calibration as coordinates
and attrs), and an output goes back laid out as :meth:`Prediction.show <deepij.pipeline.Prediction.show>`
opens it in ImageJ.

Examples
--------
>>> planes = np.arange(24, dtype="float32").reshape(2, 3, 4)  # two channels of 3 x 4
>>> meta = {"title": "two", "width": 4, "height": 3, "channels": 2, "slices": 1, "frames": 1,
...         "type": "float32"}
>>> image = planes_to_xarray(planes, meta)
>>> image.dims, image.sizes["ch"]
(('row', 'col', 'ch'), 2)
>>> back, described = xarray_to_planes(image.rename({"row": "y", "col": "x", "ch": "c"}))
>>> bool((back == planes).all()), described["channels"], described["type"]
(True, 2, 'float32')
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from deepij.errors import ArgumentError

TO_WORKER = "to_worker"
FROM_WORKER = "from_worker"
TYPES: dict[str, np.dtype[Any]] = {
    "uint8": np.dtype("uint8"), "uint16": np.dtype("<u2"), "float32": np.dtype("<f4"), "rgb": np.dtype("<i4"),
}
_COMPOSITE_MODES = ("composite", "color", "grayscale")
_FLOAT32_EXACT_INT = 2**24


class SharedFiles:
    """The worker's private folder and its two files (see the module docstring).

    Parameters
    ----------
    parent : path, optional
        Where the folder is made (default ``/dev/shm`` when writable, else the system's temporary folder).
    """

    def __init__(self, parent: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="deepij-serve-", dir=parent or _shared_memory()))
        for name in (TO_WORKER, FROM_WORKER):
            flags = os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
            os.close(os.open(self.folder / name, flags, 0o600))

    @property
    def to_worker(self) -> Path:
        return self.folder / TO_WORKER

    @property
    def from_worker(self) -> Path:
        return self.folder / FROM_WORKER

    def read_images(self, described: Sequence[Mapping[str, Any]]) -> list[xr.DataArray]:
        """The images the plugin wrote into ``to_worker``, one per description."""
        descriptor = os.open(self.to_worker, os.O_RDONLY)
        try:
            size = os.fstat(descriptor).st_size
            if size == 0:
                raise ArgumentError(f"{self.to_worker}: empty (expected the images the request describes)")
            return [planes_to_xarray(_planes_at(descriptor, meta, size), meta) for meta in described]
        finally:
            os.close(descriptor)

    def write_images(self, images: Sequence[tuple[str, xr.DataArray]]) -> list[dict[str, Any]]:
        """Write ``(title, image)`` pairs into ``from_worker``; their descriptions with offsets."""
        laid_out = [(title, *xarray_to_planes(image)) for title, image in images]
        described, offset = [], 0
        for title, planes, meta in laid_out:
            described.append({**meta, "title": title, "offset": offset})
            offset += planes.nbytes
        if offset == 0:
            return described
        descriptor = os.open(self.from_worker, os.O_RDWR)
        try:
            if os.fstat(descriptor).st_size < offset:
                os.ftruncate(descriptor, offset)  # grows only: the plugin may hold a mapping of it
            for (_, planes, _), where in zip(laid_out, described, strict=True):
                little = np.ascontiguousarray(planes, planes.dtype.newbyteorder("<"))
                _write_all(descriptor, little.reshape(-1).data.cast("B"), where["offset"])
        finally:
            os.close(descriptor)
        return described

    def close(self) -> None:
        """Remove the folder and its files."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _shared_memory() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def _planes_at(descriptor: int, meta: Mapping[str, Any], size: int) -> np.ndarray:
    """One image's planes read from the open file, shape (planes, height, width)."""
    from deepij.imagej.images import new_array

    width, height = _positive(meta, "width"), _positive(meta, "height")
    count = _positive(meta, "channels") * _positive(meta, "slices") * _positive(meta, "frames")
    kind = meta.get("type")
    if kind not in TYPES:
        raise ArgumentError(f"image {meta.get('title')!r}: type {kind!r} (expected one of {sorted(TYPES)})")
    dtype: np.dtype[Any] = TYPES[str(kind)]
    offset = int(meta.get("offset", 0))
    nbytes = count * height * width * dtype.itemsize
    if offset < 0 or offset + nbytes > size:
        raise ArgumentError(
            f"image {meta.get('title')!r}: {nbytes} bytes at offset {offset} are beyond the {size} bytes of "
            "the shared file (expected the plugin to have written the image there)"
        )
    planes = new_array((count, height, width), dtype)
    view = planes.reshape(-1).data.cast("B")
    done = 0
    while done < nbytes:  # a read may return less than asked (more than 2 GiB)
        got = os.preadv(descriptor, [view[done:]], offset + done)
        if got == 0:
            raise ArgumentError(f"image {meta.get('title')!r}: the shared file ended at byte {offset + done}")
        done += got
    return planes.astype(dtype.newbyteorder("="), copy=False)


def _write_all(descriptor: int, data: memoryview, offset: int) -> None:
    done = 0
    while done < len(data):  # a write may take less than given (more than 2 GiB)
        done += os.pwrite(descriptor, data[done:], offset + done)


def _positive(meta: Mapping[str, Any], key: str) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"image {meta.get('title')!r}: {key}={value!r} (expected a whole number >= 1)")
    return value


# --------------------------------------------------------------------------------------------- ImageJ -> here
def planes_to_xarray(planes: np.ndarray, meta: Mapping[str, Any]) -> xr.DataArray:
    """An image's planes (ImageJ's stack order) as :func:`deepij.imagej.images.to_xarray` gives it."""
    width, height = int(meta["width"]), int(meta["height"])
    channels, slices, frames = (int(meta.get(k, 1)) for k in ("channels", "slices", "frames"))
    rgb = meta.get("type") == "rgb"
    if rgb:
        bytes_ = planes.astype("<i4", copy=False).view(np.uint8).reshape(frames, slices, height, width, 4)
        data = np.ascontiguousarray(bytes_[..., 2::-1])  # B, G, R, A bytes -> R, G, B
        dims = ["t", "pln", "row", "col", "ch"]
    else:
        data = np.moveaxis(planes.reshape(frames, slices, channels, height, width), 2, -1)
        dims = ["t", "pln", "row", "col", "ch"]
    kept = ("row", "col", "ch") if rgb else ("row", "col")
    drop = tuple(i for i, d in enumerate(dims) if data.shape[i] == 1 and d not in kept)
    data = data.squeeze(axis=drop)
    dims = [d for i, d in enumerate(dims) if i not in drop]
    sizes = dict(zip(dims, data.shape, strict=True))
    calibration = meta.get("calibration") or {}
    return xr.DataArray(data, dims=dims, coords=_coords(calibration, sizes),
                        attrs=_attrs(meta, calibration, rgb), name=str(meta.get("title", "image")))


def _is_calibrated(calibration: Mapping[str, Any]) -> bool:
    origins = (calibration.get(k, 0) for k in ("x_origin", "y_origin", "z_origin"))
    return bool(calibration.get("scaled")) or any(float(v or 0) != 0 for v in origins)


def _coords(calibration: Mapping[str, Any], sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    coords: dict[str, np.ndarray] = {}
    if _is_calibrated(calibration):
        for dim, size, origin in (("col", "pixel_width", "x_origin"), ("row", "pixel_height", "y_origin"),
                                  ("pln", "pixel_depth", "z_origin")):
            if dim in sizes:
                step = float(calibration.get(size, 1.0))
                coords[dim] = (np.arange(sizes[dim]) - float(calibration.get(origin, 0.0))) * step
    interval = float(calibration.get("frame_interval") or 0)
    if interval > 0 and "t" in sizes:
        coords["t"] = np.arange(sizes["t"]) * interval
    return coords


def _attrs(meta: Mapping[str, Any], calibration: Mapping[str, Any], rgb: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if rgb:
        attrs["rgb"] = True
    if _is_calibrated(calibration):
        attrs["unit"] = str(calibration.get("unit", "pixel"))
        attrs["pixel_size"] = {dim: float(calibration.get(key, 1.0)) for dim, key in
                               (("col", "pixel_width"), ("row", "pixel_height"), ("pln", "pixel_depth"))}
    if float(calibration.get("frame_interval") or 0) > 0:
        attrs["frame_interval"] = float(calibration["frame_interval"])
        attrs["time_unit"] = str(calibration.get("time_unit", "sec"))
    ranges = [tuple(float(v) for v in pair) for pair in meta.get("display_range") or ()]
    if meta.get("composite_mode") in _COMPOSITE_MODES:
        attrs["composite_mode"] = meta["composite_mode"]
        attrs["display_range"] = ranges
    elif ranges:
        attrs["display_range"] = ranges[0]
    return attrs


# --------------------------------------------------------------------------------------------- here -> ImageJ
def xarray_to_planes(image: xr.DataArray) -> tuple[np.ndarray, dict[str, Any]]:
    """An image as ImageJ's planes and their description (no title or offset): an output in letter dims (as
    a :class:`~deepij.pipeline.Prediction` holds it) laid out as ``Prediction.show`` opens it in ImageJ, or
    an image already in ImageJ's dims (``t, pln, row, col, ch``, as deepij reads files)."""
    from deepij.axes import BIOIMAGE_TO_IMAGEJ, to_imagej_dims

    imagej_dims = "row" in image.dims and "col" in image.dims
    as_imagej = image if imagej_dims else to_imagej_dims(image)
    attrs = dict(image.attrs)
    pixel_size = attrs.get("pixel_size")
    if isinstance(pixel_size, Mapping) and not imagej_dims:
        attrs["pixel_size"] = {BIOIMAGE_TO_IMAGEJ.get(str(k), str(k)): v for k, v in pixel_size.items()}
    for dim in ("t", "pln", "ch"):
        if dim not in as_imagej.dims:
            as_imagej = as_imagej.expand_dims(dim)
    full = as_imagej.transpose("t", "pln", "ch", "row", "col")
    frames, slices, channels, height, width = full.shape
    rgb = bool(attrs.get("rgb", False))
    values = _rgb_planes(full.values) if rgb else _imagej_pixels(full.values)
    meta: dict[str, Any] = {
        "width": int(width), "height": int(height), "channels": 1 if rgb else int(channels),
        "slices": int(slices), "frames": int(frames),
        "type": "rgb" if rgb else {1: "uint8", 2: "uint16", 4: "float32"}[values.dtype.itemsize],
        "calibration": _calibration(full, attrs),
    }
    if channels > 1 and not rgb:
        mode = attrs.get("composite_mode", "composite")
        meta["composite_mode"] = mode if mode in _COMPOSITE_MODES else "composite"
    shown = attrs.get("display_range")
    if shown is not None and not rgb:
        pairs = np.asarray(shown, dtype=float).reshape(-1, 2)
        meta["display_range"] = np.broadcast_to(pairs, (max(1, int(meta["channels"])), 2)).tolist()
    count = frames * slices * (1 if rgb else channels)
    return np.ascontiguousarray(values.reshape(count, height, width)), meta


def _imagej_pixels(values: np.ndarray) -> np.ndarray:
    """The pixels in a type ImageJ stores (as :func:`deepij.imagej.images.to_imageplus` converts them)."""
    if values.dtype in (np.uint8, np.uint16, np.float32):
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(values.dtype, np.integer):
        largest = max(abs(int(values.min())), abs(int(values.max()))) if values.size else 0
        if largest > _FLOAT32_EXACT_INT:
            raise ArgumentError(
                f"output: {values.dtype} values up to {largest} cannot be stored exactly in an ImageJ 32-bit "
                "image (expected |value| <= 2**24)"
            )
    return values.astype(np.float32)


def _rgb_planes(values: np.ndarray) -> np.ndarray:
    """(t, pln, ch=3, row, col) R, G, B -> ImageJ's packed int pixels (t, pln, row, col)."""
    frames, slices, channels, height, width = values.shape
    if channels != 3:
        raise ArgumentError(f"output: an RGB image needs 3 channels (R, G, B), found {channels}")
    rgb = np.moveaxis(values.astype(np.uint8), 2, -1)
    packed = np.empty((frames, slices, height, width, 4), np.uint8)
    packed[..., 2::-1] = rgb
    packed[..., 3] = 255
    return packed.view("<i4").reshape(frames, slices, height, width)


def _calibration(image: xr.DataArray, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """ImageJ's calibration of an output, from its coordinates or ``pixel_size`` (none when uncalibrated)."""
    sizes = attrs.get("pixel_size") or {}
    calibration: dict[str, Any] = {}
    for dim, size_key, origin_key in (("col", "pixel_width", "x_origin"), ("row", "pixel_height", "y_origin"),
                                      ("pln", "pixel_depth", "z_origin")):
        step, origin = _axis_scale(image, dim, sizes.get(dim))
        if step is not None:
            calibration[size_key], calibration[origin_key] = step, origin
    if calibration:
        for key in ("pixel_width", "pixel_height", "pixel_depth"):
            calibration.setdefault(key, 1.0)
    if calibration or attrs.get("unit"):
        calibration["unit"] = str(attrs.get("unit") or "pixel")
    interval = attrs.get("frame_interval")
    if interval is None and "t" in image.coords and image.sizes["t"] > 1:
        interval = float(image.coords["t"].values[1] - image.coords["t"].values[0])
    if interval:
        calibration["frame_interval"] = float(interval)
        if attrs.get("time_unit"):
            calibration["time_unit"] = str(attrs["time_unit"])
    return calibration


def _axis_scale(image: xr.DataArray, dim: str, size: float | None) -> tuple[float | None, float]:
    """(pixel size, origin in pixels) from coordinates, else from ``pixel_size``; (None, 0) when neither."""
    if dim in image.coords and image.sizes.get(dim, 0) > 0:
        values = np.asarray(image.coords[dim].values, dtype=float)
        step = float(values[1] - values[0]) if values.size > 1 else float(size or 1.0)
        if step != 0:
            return step, -float(values[0]) / step
    if size is not None:
        return float(size), 0.0
    return None, 0.0
