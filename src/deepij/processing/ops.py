"""The bioimage.io spec processing ops, with the formulas of the zoo's Python tools.

Each op is split in two: its statistics (means, standard deviations, percentiles), taken once over the whole
tensor, and its element-wise formula, which uses them. So a chain can be prepared on a whole image and then
applied tile by tile, or chunk by chunk in place, with the same numbers as on the whole image
(:mod:`deepij.processing.chain`). Calling an op (``OPS[name](data, ctx)``) does both on one tensor.

Statistics are taken over the whole tensor given (never per tile): ``axes`` are reduced jointly per sample;
``mode: per_dataset`` also reduces the batch and looped dims; no ``axes`` (0.5) reduces everything. Means and
standard deviations (population, ``ddof=0``) accumulate in float64 chunk by chunk; percentiles interpolate
linearly (numpy's default, as ``xarray.quantile`` in bioimageio.core). With ``ignore_nan`` (predict's
``non_finite="ignore"``) NaN and infinite pixels are left out of every statistic.

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from deepij.bundle.description import DATA_TYPES
from deepij.processing.context import OpContext, axis_letter
from deepij.processing.statistics import StatsSource

Stats = Mapping[str, "xr.DataArray | float"]
EPS = 1e-6


@dataclass(frozen=True)
class Op:
    """One spec op: the kwargs it takes, its element-wise formula and what that formula needs.

    ``bind(template, ctx)`` resolves per-axis kwargs (a gain per channel) against the tensor's dims and
    sizes, without reading pixels; ``statistics(source, ctx)`` reads the whole tensor (or the reference
    tensor the kwargs name). ``apply(block, ctx, values)`` then works on any block of the tensor whose dims
    hold the dims of those values.
    """

    kwargs: tuple[str, ...]
    apply: Callable[[xr.DataArray, OpContext, Stats], xr.DataArray]
    statistics: Callable[[StatsSource, OpContext], Stats] | None = None
    bind: Callable[[xr.DataArray, OpContext], Stats] | None = None
    fixed_mode_reads_nothing: bool = False

    def __call__(self, data: xr.DataArray, ctx: OpContext) -> xr.DataArray:
        """The op on one whole tensor (statistics included)."""
        self.check(ctx)
        return self.apply(data, ctx, self.values(StatsSource(data), ctx))

    def check(self, ctx: OpContext) -> None:
        """Raise ProcessingError for unknown kwargs (and a bad ``mode``)."""
        ctx.check_known(self.kwargs)
        if "mode" in self.kwargs:
            ctx.mode()

    def reads_data(self, ctx: OpContext) -> bool:
        """Whether the op needs statistics of a whole tensor (it cannot start on a tile alone)."""
        if self.statistics is None:
            return False
        return not (self.fixed_mode_reads_nothing and ctx.get("mode") == "fixed")

    def values(self, source: StatsSource, ctx: OpContext) -> Stats:
        """Everything ``apply`` needs besides the block: bound kwargs and statistics."""
        bound = dict(self.bind(source.data, ctx)) if self.bind is not None else {}
        if self.reads_data(ctx) and self.statistics is not None:
            bound.update(self.statistics(source, ctx))
        return bound


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


# --- element-wise ops -----------------------------------------------------------------------------------


def _value(stats: Stats, name: str, data: xr.DataArray, ctx: OpContext, default: float | None = None) -> Any:
    """A per-axis kwarg as bound on the whole tensor, or resolved on this one."""
    if name in stats:
        return stats[name]
    return ctx.per_axis(name, data, default)


def _binder(
    *names: str, defaults: Mapping[str, float] | None = None
) -> Callable[[xr.DataArray, OpContext], Stats]:
    def bind(template: xr.DataArray, ctx: OpContext) -> Stats:
        return {n: ctx.per_axis(n, template, (defaults or {}).get(n)) for n in names}

    return bind


def _binarize(data: xr.DataArray, ctx: OpContext, stats: Stats) -> xr.DataArray:
    return _finish(data > _value(stats, "threshold", data, ctx), data, ctx)


def _clip(data: xr.DataArray, ctx: OpContext, stats: Stats) -> xr.DataArray:
    low = ctx.number("min") if ctx.get("min") is not None else None
    high = ctx.number("max") if ctx.get("max") is not None else None
    if low is None and high is None:
        raise ctx.error("min", "needs min, max or both", expected="a number for 'min' and/or 'max'")
    if low is not None and high is not None and low >= high:
        raise ctx.error("max", "max is not above min", found=high, expected=f"a number > {low}")
    return data.clip(low, high)


def _scale_linear(data: xr.DataArray, ctx: OpContext, stats: Stats) -> xr.DataArray:
    gain = _like(_value(stats, "gain", data, ctx, 1.0), data)
    offset = _like(_value(stats, "offset", data, ctx, 0.0), data)
    return _finish(data * gain + offset, data, ctx)


def _sigmoid(data: xr.DataArray, ctx: OpContext, stats: Stats) -> xr.DataArray:
    return 1 / (1 + xr.apply_ufunc(np.exp, -data, dask="allowed"))  # np.exp keeps dask data lazy


def _fixed_normalise(data: xr.DataArray, ctx: OpContext, stats: Stats) -> xr.DataArray:
    mean = _like(_value(stats, "mean", data, ctx), data)
    std = _like(_value(stats, "std", data, ctx), data)
    eps = ctx.number("eps", EPS)
    return _finish((data - mean) / (std + eps), data, ctx)


def _ensure_dtype(data: xr.DataArray, ctx: OpContext, stats: Stats) -> xr.DataArray:
    dtype = ctx.require("dtype")
    if dtype not in DATA_TYPES:
        raise ctx.error("dtype", "unknown data type", found=dtype, expected=" | ".join(DATA_TYPES))
    return data.astype(dtype)


def _softmax(data: xr.DataArray, ctx: OpContext, stats: Stats) -> xr.DataArray:
    axis = softmax_axis(ctx)
    if axis not in data.dims:
        raise ctx.error(
            "axis", "no such axis in the tensor", found=axis, expected=f"one of {list(data.dims)}"
        )
    shifted = xr.apply_ufunc(np.exp, data - data.max(dim=axis), dask="allowed")
    return _finish(shifted / shifted.sum(dim=axis), data, ctx)


def softmax_axis(ctx: OpContext) -> str:
    """The axis softmax normalises along (channel by default)."""
    return axis_letter(str(ctx.get("axis", "c")))


# --- ops with statistics ----------------------------------------------------------------------------------


def _moments(source: StatsSource, ctx: OpContext) -> Stats:
    own = ctx.source_of(source)
    mean, std = own.mean_std(ctx.reduce_dims(own.data))
    return {"mean": mean, "std": std}


def _zmuv(data: xr.DataArray, ctx: OpContext, stats: Stats) -> xr.DataArray:
    if ctx.mode() == "fixed":
        return _fixed_normalise(data, ctx, stats)
    eps = ctx.number("eps", EPS)
    return _finish((data - _like(stats["mean"], data)) / (_like(stats["std"], data) + eps), data, ctx)


def _percentiles(source: StatsSource, ctx: OpContext) -> Stats:
    low_q = ctx.number("min_percentile", 0.0)
    high_q = ctx.number("max_percentile", 100.0)
    if not 0 <= low_q < high_q <= 100:
        raise ctx.error(
            "max_percentile",
            "percentiles out of order",
            found=(low_q, high_q),
            expected="0 <= min < max <= 100",
        )
    own = ctx.source_of(source)
    low, high = own.percentiles(ctx.reduce_dims(own.data), (low_q, high_q))
    return {"low": low, "high": high}


def _scale_range(data: xr.DataArray, ctx: OpContext, stats: Stats) -> xr.DataArray:
    eps = ctx.number("eps", EPS)
    low, high = _like(stats["low"], data), _like(stats["high"], data)
    return _finish((data - low) / (high - low + eps), data, ctx)


def _mean_variance_statistics(source: StatsSource, ctx: OpContext) -> Stats:
    ctx.require("reference_tensor")
    mean, std = source.mean_std(ctx.reduce_dims(source.data))
    reference = ctx.source_of(source)
    ref_mean, ref_std = reference.mean_std(ctx.reduce_dims(reference.data))
    return {"mean": mean, "std": std, "ref_mean": ref_mean, "ref_std": ref_std}


def _scale_mean_variance(data: xr.DataArray, ctx: OpContext, stats: Stats) -> xr.DataArray:
    eps = ctx.number("eps", EPS)
    mean, std = _like(stats["mean"], data), _like(stats["std"], data)
    ref_mean, ref_std = _like(stats["ref_mean"], data), _like(stats["ref_std"], data)
    result = (data - mean) / (std + eps) * (ref_std + eps)
    return _finish(result + ref_mean, data, ctx)


def _bind_fixed_if_fixed(template: xr.DataArray, ctx: OpContext) -> Stats:
    return _binder("mean", "std")(template, ctx) if ctx.get("mode") == "fixed" else {}


OPS: dict[str, Op] = {
    "binarize": Op(("threshold", "axis"), _binarize, bind=_binder("threshold")),
    "clip": Op(("min", "max"), _clip),
    "scale_linear": Op(
        ("gain", "offset", "axes", "axis", "mode"),
        _scale_linear,
        bind=_binder("gain", "offset", defaults={"gain": 1.0, "offset": 0.0}),
    ),
    "sigmoid": Op((), _sigmoid),
    "zero_mean_unit_variance": Op(
        ("mode", "axes", "eps", "mean", "std", "reference_tensor"),
        _zmuv,
        _moments,
        bind=_bind_fixed_if_fixed,
        fixed_mode_reads_nothing=True,
    ),
    "fixed_zero_mean_unit_variance": Op(
        ("mean", "std", "eps", "axis", "axes", "mode"), _fixed_normalise, bind=_binder("mean", "std")
    ),
    "scale_range": Op(
        ("mode", "axes", "min_percentile", "max_percentile", "eps", "reference_tensor"),
        _scale_range,
        _percentiles,
    ),
    "scale_mean_variance": Op(
        ("mode", "axes", "eps", "reference_tensor"), _scale_mean_variance, _mean_variance_statistics
    ),
    "ensure_dtype": Op(("dtype",), _ensure_dtype),
    "softmax": Op(("axis",), _softmax),
}
"""Op name -> implementation."""
