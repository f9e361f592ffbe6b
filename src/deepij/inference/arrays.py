"""Arrays in and out of a model: user images to named tensors, table outputs to DataFrames.

A model input is an ``xarray.DataArray`` whose dims are the tensor's axis letters, plus any other dims the
model does not take (``t``, ``z`` for a 2-D model, ...), which the runner loops over. Images with ImageJ's
dims (``row``, ``col``, ``ch``, ``pln``, ``t``: what ``run_macro`` returns, RGB images included) are renamed
to letters (:mod:`deepij.axes`).

Before anything runs, an image is refused (:class:`~deepij.errors.InputError`) when it cannot be a model
input: complex, text, object or date values, booleans for a model that does not take booleans, an empty
dim, and (unless asked otherwise, ``non_finite=``) NaN or infinite pixels, which would turn every output
pixel of a whole-image statistic into NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from deepij.axes import IMAGEJ_TO_BIOIMAGE
from deepij.bundle.description import AXIS_LETTERS, FixedSize, ParameterizedSize, TensorSpec
from deepij.errors import ArgumentError, InputError

_DIM_NAMES = {"batch": "b", "channel": "c", "index": "i", "time": "t", **IMAGEJ_TO_BIOIMAGE}
NON_FINITE = ("raise", "ignore", "propagate")
"""What ``non_finite=`` may be: refuse NaN/inf pixels, leave them out of statistics (NaN again in the
outputs), or run them as they are."""
_CHUNK = 1 << 22


def _dims_of(
    image: np.ndarray | xr.DataArray, spec: TensorSpec, axes: str | None, argument: str
) -> list[str]:
    if axes is not None:
        dims = list(axes)
        if len(dims) != image.ndim:
            raise InputError(
                f"axes: {axes!r} names {len(dims)} axes but {argument} has {image.ndim} dims {image.shape}"
            )
    elif isinstance(image, xr.DataArray):
        dims = [_DIM_NAMES.get(str(d), str(d)) for d in image.dims]
    elif image.ndim == len(spec.axes):
        dims = list(spec.axes_str)
    elif "b" in spec.axes_str and image.ndim == len(spec.axes) - 1:
        dims = [a for a in spec.axes_str if a != "b"]
    else:
        without_b = spec.axes_str.replace("b", "")
        raise InputError(
            f"{argument}: an array of shape {image.shape} does not fit input {spec.name!r} with axes "
            f"{spec.axes_str!r}; expected {len(spec.axes)} dims ({spec.axes_str!r})"
            + (f" or {len(without_b)} ({without_b!r})" if without_b != spec.axes_str else "")
            + ", or pass axes= (e.g. axes='zyx') or an xarray with named dims"
        )
    unknown = [d for d in dims if d not in AXIS_LETTERS]
    if unknown or len(set(dims)) != len(dims):
        raise InputError(
            f"{argument}: dims {dims} must be distinct axis letters from {AXIS_LETTERS!r} "
            f"(or batch/channel/index/time); found {unknown or dims}"
        )
    return dims


def as_tensor(
    image: np.ndarray | xr.DataArray,
    spec: TensorSpec,
    *,
    axes: str | None = None,
    argument: str = "image",
    non_finite: str = "raise",
) -> xr.DataArray:
    """The image as a named tensor for input ``spec``: missing size-1 axes (batch, one channel) added.

    Parameters
    ----------
    image : ndarray or xarray.DataArray
        In the input's own axis order (batch optional), or with ``axes`` naming its dims, or an xarray with
        letter dims. Dims the input does not have are kept, to be looped over.
    spec : TensorSpec
        The model input.
    non_finite : {"raise", "ignore", "propagate"}
        ``"raise"``: refuse an image with NaN or infinite pixels (InputError with their count and the first
        one's position); the others let it through (the pipeline handles ``"ignore"``).

    Raises
    ------
    InputError
        For an image that cannot be this input (module notes).

    Examples
    --------
    >>> from deepij.bundle.description import AxisSpec, TensorSpec
    >>> spec = TensorSpec("raw", tuple(AxisSpec(a) for a in "bcyx"))
    >>> as_tensor(np.zeros((64, 48)), spec, axes="yx").shape
    (1, 1, 64, 48)
    >>> rgb = xr.DataArray(np.zeros((8, 6, 3), "uint8"), dims=("row", "col", "ch"), attrs={"rgb": True})
    >>> as_tensor(rgb, spec).dims
    ('b', 'c', 'y', 'x')
    """
    if not isinstance(image, (np.ndarray, xr.DataArray)):
        raise InputError(
            f"{argument}: expected a numpy array or an xarray.DataArray, not {type(image).__name__}"
        )
    if non_finite not in NON_FINITE:
        raise ArgumentError(f"non_finite: unknown value {non_finite!r}; expected one of {list(NON_FINITE)}")
    dims = _dims_of(image, spec, axes, argument)
    data = np.asarray(image.data if isinstance(image, xr.DataArray) else image)
    names = [str(d) for d in image.dims] if isinstance(image, xr.DataArray) and axes is None else dims
    check_values(data, names, spec, argument, non_finite)
    tensor = xr.DataArray(data, dims=dims)
    for axis in spec.axes:
        if axis.id in tensor.dims:
            continue
        if axis.id in "zyx":
            raise InputError(
                f"{argument}: input {spec.name!r} needs axis {axis.id!r} (axes {spec.axes_str!r}); the image "
                f"has dims {dims}"
            )
        if not _accepts_one(axis.size):
            raise InputError(
                f"{argument}: input {spec.name!r} axis {axis.id!r} cannot be 1 and the image lacks it "
                f"(dims {dims})"
            )
        tensor = tensor.expand_dims(axis.id)
    loops = [str(d) for d in tensor.dims if str(d) not in spec.axes_str]
    return tensor.transpose(*loops, *(a for a in spec.axes_str))


def check_values(
    data: np.ndarray, dims: list[str], spec: TensorSpec, argument: str, non_finite: str = "raise"
) -> None:
    """Raise InputError for an array that cannot be the input ``spec`` (module notes)."""
    kind = data.dtype.kind
    if kind not in "biuf":
        what = {"c": "complex", "U": "text", "S": "bytes", "O": "object", "M": "date", "m": "time-delta"}
        raise InputError(
            f"{argument}: {what.get(kind, 'non-numeric')} values ({data.dtype}) cannot be a model input; "
            f"expected real numbers (input {spec.name!r} takes {spec.data_type})"
        )
    if kind == "b" and spec.data_type != "bool":
        raise InputError(
            f"{argument}: a boolean image for input {spec.name!r}, which takes {spec.data_type}; expected "
            "numbers (convert a mask explicitly, e.g. image.astype('float32'))"
        )
    empty = [f"{d}=0" for d, n in zip(dims, data.shape, strict=True) if n == 0]
    if empty:
        raise InputError(
            f"{argument}: the image is empty ({', '.join(empty)}, shape {data.shape}); expected at least "
            "one pixel along every dim"
        )
    if non_finite == "raise" and kind == "f":
        count, first = count_non_finite(data)
        if count:
            raise non_finite_error(argument, count, dims, first, data[first])


def non_finite_error(
    argument: str, count: int, dims: Sequence[str], first: Sequence[int], value: object
) -> InputError:
    """The error for an image with ``count`` NaN or infinite pixels, the first (C order) at index ``first``
    of dims ``dims``, holding ``value`` (in-memory and lazy images alike).

    Examples
    --------
    >>> print(non_finite_error("image['raw']", 2, ["y", "x"], (5, 7), float("nan")))
    image['raw']: 2 pixels are NaN or infinite (the first at y=5, x=7, value nan); expected finite values. \
non_finite='ignore' leaves them out of the statistics and NaN in the outputs
    """
    where = ", ".join(f"{d}={i}" for d, i in zip(dims, first, strict=True))
    return InputError(
        f"{argument}: {count} pixel{'s' if count > 1 else ''} {'are' if count > 1 else 'is'} NaN or "
        f"infinite (the first at {where}, value {value}); expected finite values. "
        "non_finite='ignore' leaves them out of the statistics and NaN in the outputs"
    )


def count_non_finite(data: np.ndarray) -> tuple[int, tuple[int, ...]]:
    """How many NaN/inf values ``data`` holds, and the index of the first (C order), read in chunks.

    Examples
    --------
    >>> count_non_finite(np.array([[1.0, np.nan], [np.inf, 2.0]]))
    (2, (0, 1))
    """
    if data.dtype.kind != "f":
        return 0, ()
    flat = data.reshape(-1) if data.flags.c_contiguous else None
    if flat is None:
        bad = ~np.isfinite(data)
        count = int(np.count_nonzero(bad))
        first = tuple(int(i) for i in np.argwhere(bad)[0]) if count else ()
        return count, first
    count, first_flat = 0, -1
    for start in range(0, flat.size, _CHUNK):
        bad = ~np.isfinite(flat[start : start + _CHUNK])
        found = int(np.count_nonzero(bad))
        if found and first_flat < 0:
            first_flat = start + int(np.argmax(bad))
        count += found
    first = tuple(int(i) for i in np.unravel_index(first_flat, data.shape)) if count else ()
    return count, first


def non_finite_mask(data: xr.DataArray, reduce: Sequence[str]) -> xr.DataArray:
    """True where any value is NaN or infinite, reduced (any) over the dims ``reduce`` (channels); lazy for a
    dask-backed image.

    Examples
    --------
    >>> image = xr.DataArray([[[1.0, np.nan]], [[2.0, 3.0]]], dims=("c", "y", "x"))
    >>> non_finite_mask(image, ["c"]).values.tolist()
    [[False, True]]
    """
    mask = xr.DataArray(~np.isfinite(data.data), dims=data.dims)
    present = [d for d in reduce if d in data.dims]
    return mask.any(dim=present) if present else mask


def _accepts_one(rule: object) -> bool:
    if isinstance(rule, (FixedSize, ParameterizedSize)):
        return rule.is_valid(1)
    return True


def table_frame(data: xr.DataArray, spec: TensorSpec) -> pd.DataFrame:
    """A table output (axis ``i`` = rows) as a DataFrame: one column per channel (named when the
    description names them), one column per other dim of size > 1 (its index), size-1 dims dropped.

    Examples
    --------
    >>> from deepij.bundle.description import AxisSpec
    >>> spec = TensorSpec("boxes", (AxisSpec("b"), AxisSpec("i"), AxisSpec("c", channel_names=("x", "y"))))
    >>> table_frame(xr.DataArray(np.arange(6.0).reshape(1, 3, 2), dims=("b", "i", "c")), spec)
         x    y
    0  0.0  1.0
    1  2.0  3.0
    2  4.0  5.0
    """
    squeezed = data.squeeze([d for d in data.dims if d not in ("i", "c") and data.sizes[d] == 1])
    names: list[str] = []
    if "c" in squeezed.dims:
        channel = spec.axis("c") if "c" in spec.axes_str else None
        declared = list(channel.channel_names) if channel is not None else []
        count = squeezed.sizes["c"]
        names = declared if len(declared) == count else [f"{spec.name}_{k}" for k in range(count)]
        frame = squeezed.assign_coords(c=names).to_dataset(dim="c").to_dataframe()
    else:
        frame = squeezed.to_dataframe(name=spec.name)
    frame = frame.reset_index()
    index_columns = [d for d in squeezed.dims if d != "c"]
    frame = frame[[*(d for d in index_columns if d != "i"), *(names or [spec.name])]]
    return frame.reset_index(drop=True)
