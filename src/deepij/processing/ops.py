"""The bioimage.io spec processing ops, with the formulas of the zoo's Python tools.

Each op takes the tensor (an ``xarray.DataArray`` whose dims are axis letters) and an
:class:`~deepij.processing.context.OpContext`, and returns the new tensor. Statistics are taken over the
whole tensor given (never per tile): ``axes`` are reduced jointly per sample; ``mode: per_dataset`` also
reduces the batch and looped dims; no ``axes`` (0.5) reduces everything. Means and standard deviations
(population, ``ddof=0``) accumulate in float64; percentiles interpolate linearly (numpy's default, as
``xarray.quantile`` in bioimageio.core).

| op | formula |
|---|---|
| binarize | ``x > threshold`` |
| clip | ``min(max(x, min), max)`` |
| scale_linear | ``x * gain + offset`` |
| sigmoid | ``1 / (1 + exp(-x))`` |
| zero_mean_unit_variance | ``(x - mean) / (std + eps)`` (``mode: fixed`` takes ``mean``/``std``) |
| fixed_zero_mean_unit_variance | ``(x - mean) / (std + eps)`` with the given mean and std |
| scale_range | ``(x - p_low) / (p_high - p_low + eps)``, no clipping |
| scale_mean_variance | ``(x - mean) / (std + eps) * (ref_std + eps) + ref_mean`` |
| ensure_dtype | cast |
| softmax | ``exp(x - max) / sum(exp(x - max))`` along ``axis`` (channel by default) |
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from deepij.bundle.description import DATA_TYPES
from deepij.processing.context import OpContext, axis_letter

Op = Callable[[xr.DataArray, OpContext], xr.DataArray]
EPS = 1e-6


def _reduce(source: xr.DataArray, dims: tuple[str, ...], reducer: Callable) -> xr.DataArray:
    axis = tuple(source.dims.index(d) for d in dims)
    kept = [d for d in source.dims if d not in dims]
    return xr.DataArray(reducer(np.asarray(source.values), axis), dims=kept)


def _mean_std(source: xr.DataArray, dims: tuple[str, ...]) -> tuple[xr.DataArray, xr.DataArray]:
    mean = _reduce(source, dims, lambda a, ax: np.mean(a, axis=ax, dtype=np.float64))
    std = _reduce(source, dims, lambda a, ax: np.std(a, axis=ax, dtype=np.float64))
    return mean, std


def _like(value: xr.DataArray | float, data: xr.DataArray) -> xr.DataArray | float:
    """Cast a statistic to the tensor's float type, so float32 images stay float32."""
    if isinstance(value, xr.DataArray):
        return value.astype(data.dtype if data.dtype.kind == "f" else np.float32)
    return value


def _finish(result: xr.DataArray, data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    extra = [d for d in result.dims if d not in data.dims]
    if extra:
        raise ctx.error(None, "statistics or values have axes the tensor lacks", found=extra)
    return result.transpose(*data.dims)


def binarize(data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    ctx.check_known(("threshold", "axis"))
    return _finish(data > ctx.per_axis("threshold", data), data, ctx)


def clip(data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    ctx.check_known(("min", "max"))
    low = ctx.number("min") if ctx.get("min") is not None else None
    high = ctx.number("max") if ctx.get("max") is not None else None
    if low is None and high is None:
        raise ctx.error("min", "needs min, max or both", expected="a number for 'min' and/or 'max'")
    if low is not None and high is not None and low >= high:
        raise ctx.error("max", "max is not above min", found=high, expected=f"a number > {low}")
    return data.clip(low, high)


def scale_linear(data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    ctx.check_known(("gain", "offset", "axes", "axis", "mode"))
    gain = _like(ctx.per_axis("gain", data, 1.0), data)
    offset = _like(ctx.per_axis("offset", data, 0.0), data)
    return _finish(data * gain + offset, data, ctx)


def sigmoid(data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    ctx.check_known(())
    return 1 / (1 + np.exp(-data))


def zero_mean_unit_variance(data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    ctx.check_known(("mode", "axes", "eps", "mean", "std", "reference_tensor"))
    if ctx.mode() == "fixed":
        return _fixed_normalise(data, ctx)
    eps = ctx.number("eps", EPS)
    source = ctx.source(data)
    mean, std = _mean_std(source, ctx.reduce_dims(source))
    return _finish((data - _like(mean, data)) / (_like(std, data) + eps), data, ctx)


def fixed_zero_mean_unit_variance(data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    ctx.check_known(("mean", "std", "eps", "axis", "axes", "mode"))
    return _fixed_normalise(data, ctx)


def _fixed_normalise(data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    mean = _like(ctx.per_axis("mean", data), data)
    std = _like(ctx.per_axis("std", data), data)
    eps = ctx.number("eps", EPS)
    return _finish((data - mean) / (std + eps), data, ctx)


def scale_range(data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    ctx.check_known(("mode", "axes", "min_percentile", "max_percentile", "eps", "reference_tensor"))
    ctx.mode()
    low_q = ctx.number("min_percentile", 0.0)
    high_q = ctx.number("max_percentile", 100.0)
    if not 0 <= low_q < high_q <= 100:
        raise ctx.error(
            "max_percentile",
            "percentiles out of order",
            found=(low_q, high_q),
            expected="0 <= min < max <= 100",
        )
    eps = ctx.number("eps", EPS)
    source = ctx.source(data)
    dims = ctx.reduce_dims(source)
    axis = tuple(source.dims.index(d) for d in dims)
    kept = [d for d in source.dims if d not in dims]
    low, high = np.percentile(np.asarray(source.values), [low_q, high_q], axis=axis)
    low, high = _like(xr.DataArray(low, dims=kept), data), _like(xr.DataArray(high, dims=kept), data)
    return _finish((data - low) / (high - low + eps), data, ctx)


def scale_mean_variance(data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    ctx.check_known(("mode", "axes", "eps", "reference_tensor"))
    ctx.mode()
    ctx.require("reference_tensor")
    eps = ctx.number("eps", EPS)
    mean, std = _mean_std(data, ctx.reduce_dims(data))
    reference = ctx.source(data)
    ref_mean, ref_std = _mean_std(reference, ctx.reduce_dims(reference))
    result = (data - _like(mean, data)) / (_like(std, data) + eps) * (_like(ref_std, data) + eps)
    return _finish(result + _like(ref_mean, data), data, ctx)


def ensure_dtype(data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    ctx.check_known(("dtype",))
    dtype = ctx.require("dtype")
    if dtype not in DATA_TYPES:
        raise ctx.error("dtype", "unknown data type", found=dtype, expected=" | ".join(DATA_TYPES))
    return data.astype(dtype)


def softmax(data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
    ctx.check_known(("axis",))
    axis = axis_letter(str(ctx.get("axis", "c")))
    if axis not in data.dims:
        raise ctx.error(
            "axis", "no such axis in the tensor", found=axis, expected=f"one of {list(data.dims)}"
        )
    shifted = np.exp(data - data.max(dim=axis))
    return _finish(shifted / shifted.sum(dim=axis), data, ctx)


OPS: dict[str, Op] = {
    "binarize": binarize,
    "clip": clip,
    "scale_linear": scale_linear,
    "sigmoid": sigmoid,
    "zero_mean_unit_variance": zero_mean_unit_variance,
    "fixed_zero_mean_unit_variance": fixed_zero_mean_unit_variance,
    "scale_range": scale_range,
    "scale_mean_variance": scale_mean_variance,
    "ensure_dtype": ensure_dtype,
    "softmax": softmax,
}
"""Op name -> implementation."""
