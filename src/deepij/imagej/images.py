"""ImagePlus <-> xarray, by whole-plane buffer copies (never a per-pixel Python loop).

Layout
------
An ImageJ image becomes an :class:`xarray.DataArray` with dims in the order ``(t, pln, row, col, ch)`` (see
:mod:`deepij.axes`); dims of size 1 are left out except ``row`` and ``col`` (and ``ch`` of an RGB image,
always 3). Pixel types: 8-bit -> ``uint8``, 16-bit -> ``uint16``, 32-bit -> ``float32``, RGB -> ``uint8`` with
``ch`` = R, G, B and ``attrs["rgb"] = True``.

Metadata
--------
- ``name``: the image title.
- Calibrated images carry coordinates on ``col``/``row``/``pln`` (``(index - origin) * pixel size``),
  ``attrs["unit"]`` and ``attrs["pixel_size"]`` (``{"col": pw, "row": ph, "pln": pd}``); a frame interval
  gives ``t`` coordinates, ``attrs["frame_interval"]`` and ``attrs["time_unit"]``.
- ``attrs["display_range"]``: (min, max), or one pair per channel for a multi-channel (composite) image,
  which also has ``attrs["composite_mode"]`` (``composite``, ``color`` or ``grayscale``).

Going back, :func:`to_imageplus` reads the same names, so ``to_imageplus(to_xarray(imp))`` reproduces pixels,
dimensions, calibration and display range exactly.

Java -> numpy copies go through ``numpy.array(pixels)`` on a freshly fetched pixel array each time: JPype
caches a buffer snapshot per array wrapper, and re-reading a wrapper that still has a live numpy view returns
stale pixels. numpy -> Java copies go through a direct ``ByteBuffer`` over the numpy memory.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from deepij.axes import IMAGEJ_DIMS
from deepij.errors import ArgumentError, ArgumentTypeError
from deepij.imagej._java import jc, jstr

# dim aliases accepted on the way in (pyimagej accepts the bioimage.io letters too)
_DIM_ALIASES = {"x": "col", "y": "row", "z": "pln", "c": "ch", "t": "t",
                "col": "col", "row": "row", "pln": "pln", "ch": "ch"}
_BIT_DEPTH_DTYPES: dict[int, np.dtype[Any]] = {
    8: np.dtype("uint8"), 16: np.dtype("uint16"), 32: np.dtype("float32"),
}
_COMPOSITE_MODES = {"composite": 1, "color": 2, "grayscale": 3}
_FLOAT32_EXACT_INT = 2**24  # integers beyond this are not exact in float32
_HUGE_PAGE = 2 * 1024 * 1024
_HUGE_MIN = 4 * 1024 * 1024


# ------------------------------------------------------------------------------------------ Java -> Python
def to_xarray(imp: Any, *, squeeze: bool = True) -> xr.DataArray:
    """Copy an ImagePlus into a new :class:`xarray.DataArray`.

    Parameters
    ----------
    imp : ij.ImagePlus
        Any ImageJ image: 8/16/32-bit or RGB, single plane, stack or hyperstack, virtual stacks too.
    squeeze : bool
        Leave out ``t``/``pln``/``ch`` of size 1 (default). With False all five dims are kept.

    Examples
    --------
    >>> import deepij
    >>> imp = deepij.imagej().to_imageplus(np.zeros((3, 64, 64), "uint16"))
    >>> to_xarray(imp).dims, to_xarray(imp).dtype
    (('pln', 'row', 'col'), dtype('uint16'))
    >>> to_xarray(imp, squeeze=False).dims
    ('t', 'pln', 'row', 'col', 'ch')
    """
    if imp is None:
        raise ArgumentTypeError("imp: expected an ij.ImagePlus, found None")
    width, height, channels, slices, frames = (int(v) for v in imp.getDimensions())
    bit_depth = int(imp.getBitDepth())
    rgb = bit_depth == 24
    stack = imp.getStack()
    planes = _read_planes(stack, width, height, bit_depth)
    # ImageJ stack order: channel fastest, then slice, then frame.
    data = planes.reshape(frames, slices, channels, height, width, *(3,) if rgb else ())
    if rgb:
        data = data[:, :, 0]  # an RGB ImagePlus has one channel; its R, G, B become ch
        dims = ["t", "pln", "row", "col", "ch"]
    else:
        data = np.moveaxis(data, 2, -1)
        dims = list(IMAGEJ_DIMS)
    if squeeze:
        kept = ("row", "col", "ch") if rgb else ("row", "col")
        drop = [i for i, d in enumerate(dims) if data.shape[i] == 1 and d not in kept]
        data = data.squeeze(axis=tuple(drop))
        dims = [d for i, d in enumerate(dims) if i not in drop]
    return xr.DataArray(data, dims=dims, coords=_coords(imp, dict(zip(dims, data.shape, strict=True))),
                        attrs=_attrs(imp, rgb), name=jstr(imp.getTitle()))


def _read_planes(stack: Any, width: int, height: int, bit_depth: int) -> np.ndarray:
    size = int(stack.getSize())
    if bit_depth == 24:
        packed = new_array((size, height, width), np.int32)
        for index in range(size):
            packed[index] = np.array(stack.getPixels(index + 1), copy=True).reshape(height, width)
        # 0xAARRGGBB little-endian: bytes are B, G, R, A
        # contiguous, so the result can go straight to frameworks that refuse negative strides
        rgb = new_array((size, height, width, 3), np.uint8)
        rgb[...] = packed.view(np.uint8).reshape(size, height, width, 4)[..., 2::-1]
        return rgb
    dtype = _BIT_DEPTH_DTYPES[bit_depth]
    out = new_array((size, height, width), dtype)
    for index in range(size):
        # a fresh pixel array each time (see module docstring); the view is dropped right after the copy
        out[index] = np.asarray(stack.getPixels(index + 1)).view(dtype).reshape(height, width)
    return out


def new_array(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialized array; big ones on transparent huge pages.

    A fresh big numpy array gets its memory from the kernel page by page on first write (a 16 MB image is
    4096 page faults). On these virtual machines that costs more than copying the pixels (about 15 ms for
    16 MB, measured), so arrays of 4 MiB and more are mapped with MADV_HUGEPAGE: 2 MiB pages, 8 faults.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < _HUGE_MIN or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.empty(shape, dtype)
    area = mmap.mmap(-1, nbytes + _HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    area.madvise(mmap.MADV_HUGEPAGE)
    raw = np.frombuffer(area, np.uint8)
    start = (-raw.ctypes.data) % _HUGE_PAGE  # a 2 MiB boundary, where huge pages can begin
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _coords(imp: Any, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    cal = imp.getCalibration()
    coords: dict[str, np.ndarray] = {}
    if _is_calibrated(cal):
        axes = (("col", cal.pixelWidth, cal.xOrigin), ("row", cal.pixelHeight, cal.yOrigin),
                ("pln", cal.pixelDepth, cal.zOrigin))
        for dim, size_px, origin in axes:
            if dim in sizes:
                coords[dim] = (np.arange(sizes[dim]) - float(origin)) * float(size_px)
    if float(cal.frameInterval) > 0 and "t" in sizes:
        coords["t"] = np.arange(sizes["t"]) * float(cal.frameInterval)
    return coords


def _is_calibrated(cal: Any) -> bool:
    return bool(cal.scaled()) or any(float(v) != 0 for v in (cal.xOrigin, cal.yOrigin, cal.zOrigin))


def _attrs(imp: Any, rgb: bool) -> dict[str, Any]:
    cal = imp.getCalibration()
    attrs: dict[str, Any] = {}
    if rgb:
        attrs["rgb"] = True
    if _is_calibrated(cal):
        attrs["unit"] = jstr(cal.getUnit())
        attrs["pixel_size"] = {"col": float(cal.pixelWidth), "row": float(cal.pixelHeight),
                               "pln": float(cal.pixelDepth)}
    if float(cal.frameInterval) > 0:
        attrs["frame_interval"] = float(cal.frameInterval)
        attrs["time_unit"] = jstr(cal.getTimeUnit())
    if imp.isComposite():
        mode = int(imp.getMode())
        attrs["composite_mode"] = {v: k for k, v in _COMPOSITE_MODES.items()}.get(mode, "composite")
        attrs["display_range"] = [(float(lut.min), float(lut.max)) for lut in imp.getLuts()]
    else:
        attrs["display_range"] = (float(imp.getDisplayRangeMin()), float(imp.getDisplayRangeMax()))
    return attrs


# ------------------------------------------------------------------------------------------ Python -> Java
def to_imageplus(
    data: xr.DataArray | np.ndarray,
    title: str | None = None,
    *,
    dims: Sequence[str] | str | None = None,
    rgb: bool | None = None,
) -> Any:
    """Copy an array into a new ``ij.ImagePlus`` (not shown, not registered anywhere).

    Parameters
    ----------
    data : xarray.DataArray or numpy.ndarray
        A DataArray with ImageJ dims (``t, pln, row, col, ch``; the letters ``t, z, y, x, c`` are accepted
        too) in any order, or a numpy array: 2-D is ``(row, col)``, 3-D is ``(pln, row, col)``; other ranks
        need ``dims``.
    title : str, optional
        The ImagePlus title; default the DataArray's name, else ``"image"``.
    dims : sequence of str, optional
        Names of the numpy array's dims (or renames a DataArray's).
    rgb : bool, optional
        Make an RGB image from ``ch`` = R, G, B (``uint8``). Default: ``attrs["rgb"]`` of a DataArray.

    Notes
    -----
    ``uint8`` -> 8-bit, ``uint16`` -> 16-bit, ``float32`` -> 32-bit, ``bool`` -> 8-bit 0/255 (ImageJ's mask
    convention). Other numeric types become 32-bit float; integers must then be exactly representable
    (|value| <= 2**24), otherwise an ArgumentError (a ValueError) says so. Arguments of the wrong type
    (``title=5``, ``dims=3``, a list for ``data``) raise ArgumentTypeError (a TypeError).

    Examples
    --------
    >>> import deepij
    >>> _ = deepij.imagej()  # the JVM runs
    >>> imp = to_imageplus(np.zeros((4, 32, 32), "float32"), "stack")
    >>> str(imp.getTitle()), imp.getNSlices(), imp.getBitDepth()
    ('stack', 4, 32)
    """
    _check_to_imageplus_arguments(data, title, dims, rgb)
    array = _as_named(data, dims)
    attrs = dict(array.attrs)
    make_rgb = bool(attrs.get("rgb", False)) if rgb is None else rgb
    title = title if title is not None else (str(array.name) if array.name is not None else "image")
    full = _full_layout(array)  # (t, pln, ch, row, col)
    frames, slices, channels = full.shape[:3]
    if make_rgb:
        stack = _rgb_stack(full)
        channels = 1
    else:
        stack = _gray_stack(_imagej_pixels(full.data))
    imp = jc.ImagePlus(title, stack)
    imp.setDimensions(channels, slices, frames)
    if channels > 1:
        imp = jc.CompositeImage(imp, _COMPOSITE_MODES[_composite_mode(attrs)])
    if channels * slices * frames > 1 and sum(n > 1 for n in (channels, slices, frames)) > 1:
        imp.setOpenAsHyperStack(True)
    _apply_calibration(imp, array, attrs)
    _apply_display_range(imp, attrs, make_rgb)
    return imp


def _check_to_imageplus_arguments(data: Any, title: Any, dims: Any, rgb: Any) -> None:
    if not isinstance(data, xr.DataArray | np.ndarray):
        raise ArgumentTypeError(
            f"data: expected a numpy array or xarray.DataArray, found {type(data).__name__}"
        )
    if title is not None and not isinstance(title, str):
        raise ArgumentTypeError(f"title: expected a str or None, found {title!r} ({type(title).__name__})")
    named = isinstance(dims, str | Sequence) and all(isinstance(d, str) for d in dims)
    if dims is not None and not named:
        raise ArgumentTypeError(
            f"dims: expected dim names (a sequence of str such as ('pln', 'row', 'col')), found {dims!r}"
        )
    if rgb is not None and not isinstance(rgb, bool):
        raise ArgumentTypeError(f"rgb: expected True, False or None, found {rgb!r}")


def _as_named(data: xr.DataArray | np.ndarray, dims: Sequence[str] | str | None) -> xr.DataArray:
    if isinstance(data, xr.DataArray):
        array = data
        if dims is not None:
            names = _dim_list(dims, array.ndim)
            array = array.rename(dict(zip(array.dims, names, strict=True)))
    else:
        values = np.asarray(data)
        if dims is None:
            defaults = {2: ("row", "col"), 3: ("pln", "row", "col")}
            if values.ndim not in defaults:
                raise ArgumentError(
                    f"data: a numpy array of {values.ndim} dims needs dims=..., e.g. dims=('t', 'pln', "
                    f"'row', 'col', 'ch') (found shape {values.shape}; 2-D and 3-D arrays default to "
                    "(row, col) and (pln, row, col))"
                )
            dims = defaults[values.ndim]
        array = xr.DataArray(values, dims=_dim_list(dims, values.ndim))
    return array.rename({d: _canonical_dim(str(d)) for d in array.dims})


def _dim_list(dims: Sequence[str] | str, ndim: int) -> list[str]:
    names = [dims] if isinstance(dims, str) and dims in _DIM_ALIASES else list(dims)
    if len(names) != ndim:
        raise ArgumentError(f"dims: {tuple(names)} names {len(names)} dims but the array has {ndim}")
    return [_canonical_dim(n) for n in names]


def _canonical_dim(name: str) -> str:
    try:
        return _DIM_ALIASES[name]
    except KeyError:
        hint = " (a model batch axis: use deepij.axes.to_imagej_dims first)" if name == "b" else ""
        raise ArgumentError(
            f"dims: {name!r} is not an ImageJ dim (expected t, pln, row, col, ch or t, z, y, x, c){hint}"
        ) from None


def _full_layout(array: xr.DataArray) -> xr.DataArray:
    if len(set(array.dims)) != array.ndim:
        raise ArgumentError(f"dims: repeated dims in {array.dims}")
    for needed in ("row", "col"):
        if needed not in array.dims:
            raise ArgumentError(f"dims: an image needs 'row' and 'col' dims, found {tuple(array.dims)}")
    for dim in ("t", "pln", "ch"):
        if dim not in array.dims:
            array = array.expand_dims(dim)
    return array.transpose("t", "pln", "ch", "row", "col")


def _imagej_pixels(values: np.ndarray) -> np.ndarray:
    """The array in a type ImageJ stores: uint8, uint16 or float32."""
    dtype = values.dtype
    if dtype in (np.uint8, np.uint16, np.float32):
        return values
    if dtype == np.bool_:
        return values.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(dtype, np.integer):
        largest = max(abs(int(values.min())), abs(int(values.max()))) if values.size else 0
        if largest > _FLOAT32_EXACT_INT:
            raise ArgumentError(
                f"data: {dtype} values up to {largest} cannot be stored exactly in an ImageJ 32-bit image "
                "(expected |value| <= 2**24, or uint8/uint16/float32 data)"
            )
        return values.astype(np.float32)
    if np.issubdtype(dtype, np.floating):
        return values.astype(np.float32)
    raise ArgumentError(
        f"data: dtype {dtype} cannot become an ImageJ image (expected a numeric or bool array)"
    )


def _gray_stack(full: np.ndarray) -> Any:
    frames, slices, channels, height, width = full.shape
    return _stack_from_planes(full.reshape(frames * slices * channels, height, width))


def _rgb_stack(full: xr.DataArray) -> Any:
    frames, slices, channels, height, width = full.shape
    if channels != 3:
        raise ArgumentError(f"data: an RGB image needs ch of size 3 (R, G, B), found {channels}")
    values = full.data
    if values.dtype != np.uint8:
        if values.size and (values.min() < 0 or values.max() > 255 or not np.all(np.mod(values, 1) == 0)):
            raise ArgumentError(f"data: RGB values must be integers 0-255 (found dtype {values.dtype})")
        values = values.astype(np.uint8)
    rgb = np.moveaxis(values, 2, -1).reshape(frames * slices, height, width, 3)
    packed = new_array((frames * slices, height, width, 4), np.uint8)
    packed[..., 2::-1] = rgb  # B, G, R, A bytes of little-endian 0xAARRGGBB
    packed[..., 3] = 255
    return _stack_from_planes(packed.view(np.int32).reshape(frames * slices, height, width))


def _stack_from_planes(planes: np.ndarray) -> Any:
    """An ImageStack with one new Java pixel array per plane, filled from one direct ByteBuffer.

    One buffer over the whole (contiguous) array, read plane after plane, is the fastest way measured here:
    no per-pixel Python work and no per-plane buffer set-up.
    """
    import jpype.nio
    from jpype import JArray, JByte, JFloat, JInt, JShort

    if not planes.flags.c_contiguous:
        contiguous = new_array(planes.shape, planes.dtype)
        np.copyto(contiguous, planes)
        planes = contiguous
    count, height, width = planes.shape
    buffer = jpype.nio.convertToDirectBuffer(planes).order(jc.ByteOrder.nativeOrder())
    views = {
        np.dtype("uint8"): (JByte, lambda b: b),
        np.dtype("uint16"): (JShort, lambda b: b.asShortBuffer()),
        np.dtype("float32"): (JFloat, lambda b: b.asFloatBuffer()),
        np.dtype("int32"): (JInt, lambda b: b.asIntBuffer()),
    }
    java_type, typed = views[planes.dtype]
    source = typed(buffer)
    stack = jc.ImageStack(width, height)
    for _ in range(count):
        pixels = JArray(java_type)(height * width)
        source.get(pixels)
        stack.addSlice("", pixels)
    return stack


def _composite_mode(attrs: dict[str, Any]) -> str:
    mode = attrs.get("composite_mode", "composite")
    if mode not in _COMPOSITE_MODES:
        raise ArgumentError(f"attrs['composite_mode']: {mode!r} (expected one of {sorted(_COMPOSITE_MODES)})")
    return mode


def _apply_calibration(imp: Any, array: xr.DataArray, attrs: dict[str, Any]) -> None:
    cal = imp.getCalibration()
    sizes = attrs.get("pixel_size") or {}
    changed = False
    for dim, size_field, origin_field in (("col", "pixelWidth", "xOrigin"), ("row", "pixelHeight", "yOrigin"),
                                          ("pln", "pixelDepth", "zOrigin")):
        step, origin = _axis_scale(array, dim, sizes.get(dim))
        if step is not None:
            setattr(cal, size_field, step)
            setattr(cal, origin_field, origin)
            changed = True
    if changed or attrs.get("unit"):
        cal.setUnit(attrs.get("unit") or "pixel")
    interval = attrs.get("frame_interval")
    if interval is None and "t" in array.coords and array.sizes["t"] > 1:
        interval = float(array.coords["t"].values[1] - array.coords["t"].values[0])
    if interval:
        cal.frameInterval = float(interval)
        if attrs.get("time_unit"):
            cal.setTimeUnit(attrs["time_unit"])
    imp.setCalibration(cal)


def _axis_scale(array: xr.DataArray, dim: str, size_attr: float | None) -> tuple[float | None, float]:
    """(pixel size, origin in pixels) from coordinates, else from attrs; (None, 0) when uncalibrated."""
    if dim in array.coords and array.sizes.get(dim, 0) > 0:
        values = np.asarray(array.coords[dim].values, dtype=float)
        step = float(values[1] - values[0]) if values.size > 1 else (size_attr or 1.0)
        if step == 0 or not np.allclose(np.diff(values), step, rtol=1e-6, atol=0):
            raise ArgumentError(
                f"coords[{dim!r}]: ImageJ needs evenly spaced coordinates (found {values[:4]}...)"
            )
        return step, -float(values[0]) / step
    if size_attr is not None:
        return float(size_attr), 0.0
    return None, 0.0


def _apply_display_range(imp: Any, attrs: dict[str, Any], rgb: bool) -> None:
    shown = attrs.get("display_range")
    if shown is None or rgb:
        return  # ImageJ already set the range from the first plane's min and max, as when it opens a file
    shown = np.asarray(shown, dtype=float)
    channels = int(imp.getNChannels())
    if shown.size not in (2, 2 * channels):
        raise ArgumentError(
            f"attrs['display_range']: expected (min, max) or one pair per channel, found {shown.tolist()}"
        )
    per_channel = np.broadcast_to(shown.reshape(-1, 2), (channels, 2))
    if imp.isComposite():
        for channel, (low, high) in enumerate(per_channel, start=1):
            imp.setC(channel)
            imp.setDisplayRange(float(low), float(high))
        imp.setC(1)
    else:
        imp.setDisplayRange(float(per_channel[0][0]), float(per_channel[0][1]))
