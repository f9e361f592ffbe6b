"""Arrays in and out of a model: user images to named tensors, table outputs to DataFrames.

A model input is an ``xarray.DataArray`` whose dims are the tensor's axis letters, plus any other dims the
model does not take (``t``, ``z`` for a 2-D model, ...), which the runner loops over.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from deepij.bundle.description import AXIS_LETTERS, FixedSize, ParameterizedSize, TensorSpec
from deepij.errors import TilingError

_DIM_NAMES = {"batch": "b", "channel": "c", "index": "i", "time": "t"}


def _dims_of(
    image: np.ndarray | xr.DataArray, spec: TensorSpec, axes: str | None, argument: str
) -> list[str]:
    if axes is not None:
        dims = list(axes)
        if len(dims) != image.ndim:
            raise TilingError(
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
        raise TilingError(
            f"{argument}: an array of shape {image.shape} does not fit input {spec.name!r} with axes "
            f"{spec.axes_str!r}; expected {len(spec.axes)} dims ({spec.axes_str!r})"
            + (f" or {len(without_b)} ({without_b!r})" if without_b != spec.axes_str else "")
            + ", or pass axes= (e.g. axes='zyx') or an xarray with named dims"
        )
    unknown = [d for d in dims if d not in AXIS_LETTERS]
    if unknown or len(set(dims)) != len(dims):
        raise TilingError(
            f"{argument}: dims {dims} must be distinct axis letters from {AXIS_LETTERS!r} "
            f"(or batch/channel/index/time); found {unknown or dims}"
        )
    return dims


def as_tensor(
    image: np.ndarray | xr.DataArray, spec: TensorSpec, *, axes: str | None = None, argument: str = "image"
) -> xr.DataArray:
    """The image as a named tensor for input ``spec``: missing size-1 axes (batch, one channel) added.

    Parameters
    ----------
    image : ndarray or xarray.DataArray
        In the input's own axis order (batch optional), or with ``axes`` naming its dims, or an xarray with
        letter dims. Dims the input does not have are kept, to be looped over.
    spec : TensorSpec
        The model input.

    Examples
    --------
    >>> as_tensor(np.zeros((64, 64)), spec, axes="yx").dims  # spec axes "bcyx"  # doctest: +SKIP
    ('b', 'c', 'y', 'x')
    """
    if not isinstance(image, (np.ndarray, xr.DataArray)):
        raise TilingError(
            f"{argument}: expected a numpy array or an xarray.DataArray, not {type(image).__name__}"
        )
    dims = _dims_of(image, spec, axes, argument)
    data = np.asarray(image.data if isinstance(image, xr.DataArray) else image)
    tensor = xr.DataArray(data, dims=dims)
    for axis in spec.axes:
        if axis.id in tensor.dims:
            continue
        if axis.id in "zyx":
            raise TilingError(
                f"{argument}: input {spec.name!r} needs axis {axis.id!r} (axes {spec.axes_str!r}); the image "
                f"has dims {dims}"
            )
        if not _accepts_one(axis.size):
            raise TilingError(
                f"{argument}: input {spec.name!r} axis {axis.id!r} cannot be 1 and the image lacks it "
                f"(dims {dims})"
            )
        tensor = tensor.expand_dims(axis.id)
    loops = [d for d in tensor.dims if d not in spec.axes_str]
    return tensor.transpose(*loops, *(a for a in spec.axes_str))


def _accepts_one(rule: object) -> bool:
    if isinstance(rule, (FixedSize, ParameterizedSize)):
        return rule.is_valid(1)
    return True


def table_frame(data: xr.DataArray, spec: TensorSpec) -> pd.DataFrame:
    """A table output (axis ``i`` = rows) as a DataFrame: one column per channel (named when the
    description names them), one column per other dim of size > 1 (its index), size-1 dims dropped.

    Examples
    --------
    >>> table_frame(xr.DataArray(np.ones((1, 3, 2)), dims=("b", "i", "c")), spec).shape  # doctest: +SKIP
    (3, 2)
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
