"""A tensor's processing chain, prepared once on the whole tensor and then applied to any part of it.

Preparing a chain (:func:`prepare_chain`) checks every step's kwargs, binds per-axis values (a gain per
channel) and takes every statistic on the whole tensor: step ``k``'s on the tensor as steps ``0 .. k-1``
leave it (read chunk by chunk, :mod:`deepij.processing.statistics`). What is left is element-wise, so the
prepared chain can run:

- on the whole tensor (:meth:`Chain.__call__`), as :func:`deepij.processing.apply_ops` does;
- tile by tile (:meth:`Chain.tile_transform`), as the tiled runner cuts them: pre-processing never makes a
  processed copy of the whole image, and gives the same numbers as on the whole image;
- chunk by chunk, in place where the type allows (:meth:`Chain.apply_in_place`), for post-processing the
  stitched outputs.

A chain whose values vary along a spatial axis (statistics over channels only, softmax along ``x``) is not
block-safe (:attr:`Chain.block_safe`): it runs on whole tensors only.

Examples
--------
>>> import numpy as np, xarray as xr
>>> from deepij.bundle.description import AxisSpec, ProcessingOp, TensorSpec
>>> spec = TensorSpec("raw", tuple(AxisSpec(a) for a in "cyx"))
>>> image = xr.DataArray(np.arange(16.0, dtype="float32").reshape(1, 4, 4), dims=("c", "y", "x"))
>>> chain = prepare_chain(image, [ProcessingOp("zero_mean_unit_variance", {"axes": "yx"})], spec,
...                       where="inputs['raw'].preprocessing")
>>> tile = chain.tile_transform()(image.values[:, :2, :2].copy(), "cyx", {})
>>> bool(np.allclose(tile, chain(image).values[:, :2, :2]))
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from deepij.bundle.description import SPACE_AXES, ProcessingOp, TensorSpec
from deepij.errors import ProcessingError
from deepij.processing.context import OpContext
from deepij.processing.ops import OPS, Op, Stats, softmax_axis
from deepij.processing.statistics import CHUNK_ELEMENTS, StatsSource

TileTransform = Callable[[np.ndarray, str, Mapping[str, int]], np.ndarray]


@dataclass(frozen=True)
class BoundStep:
    """One step with everything it needs besides the pixels."""

    op: Op
    ctx: OpContext
    values: Stats

    def dims(self) -> set[str]:
        """Dims the step's values vary along."""
        found = {str(d) for v in self.values.values() if isinstance(v, xr.DataArray) for d in v.dims}
        if self.ctx.op == "softmax":
            found.add(softmax_axis(self.ctx))
        return found

    def selected(self, sample: Mapping[str, int]) -> BoundStep:
        """The step for one sample: values taken at the sample's position along looped dims."""
        values = {
            k: v.isel({d: i for d, i in sample.items() if d in v.dims}) if isinstance(v, xr.DataArray) else v
            for k, v in self.values.items()
        }
        return BoundStep(self.op, self.ctx, values)


@dataclass(frozen=True)
class Chain:
    """A prepared chain (see the module notes); calling it runs every step on a block of the tensor."""

    tensor: str
    steps: tuple[BoundStep, ...] = ()

    def __call__(self, block: xr.DataArray) -> xr.DataArray:
        if block.dtype.kind in "biu":
            block = block.astype(np.float32)  # integer images are processed as float32
        for step in self.steps:
            block = step.op.apply(block, step.ctx, step.values)
        return block

    @property
    def dims(self) -> set[str]:
        """Dims any step's values vary along."""
        return set().union(*(s.dims() for s in self.steps)) if self.steps else set()

    @property
    def block_safe(self) -> bool:
        """True when the chain can run on any block cut along the spatial axes."""
        return not any(d in SPACE_AXES for d in self.dims)

    def selected(self, sample: Mapping[str, int]) -> Chain:
        return Chain(self.tensor, tuple(s.selected(sample) for s in self.steps))

    def tile_transform(self) -> TileTransform:
        """The chain as the tiled runner applies it: ``(block, axes, sample) -> processed block``."""
        per_sample: dict[tuple[tuple[str, int], ...], Chain] = {}

        def transform(block: np.ndarray, axes: str, sample: Mapping[str, int]) -> np.ndarray:
            key = tuple(sorted(sample.items()))
            if key not in per_sample:
                per_sample[key] = self.selected(sample)
            return np.asarray(per_sample[key](xr.DataArray(block, dims=tuple(axes))).data)

        return transform

    def apply_in_place(self, data: xr.DataArray, dtype: np.dtype | None = None) -> xr.DataArray:
        """The chain on a whole tensor, chunk by chunk (then cast to ``dtype``): written back into
        ``data``'s own array when the result has its type (never a second copy of a big output), else into
        one new array."""
        along = _chunk_dim(data, self.dims)
        if along is None:
            done = self(data)
            return done if dtype is None else done.astype(dtype, copy=False)
        size = data.sizes[along]
        rows = max(1, CHUNK_ELEMENTS // max(1, data.size // size))
        result: np.ndarray | None = None
        for start in range(0, size, rows):
            window = {along: slice(start, start + rows)}
            done = self(data.isel(window)).transpose(*data.dims)
            if dtype is not None:
                done = done.astype(dtype, copy=False)
            if result is None:
                same = done.dtype == data.dtype and data.values.flags.writeable
                result = data.values if same else np.empty(data.shape, dtype=done.dtype)
            index = tuple(window.get(str(d), slice(None)) for d in data.dims)
            result[index] = done.values
        return xr.DataArray(result, dims=data.dims, coords=data.coords, attrs=data.attrs, name=data.name)


def _chunk_dim(data: xr.DataArray, avoid: set[str]) -> str | None:
    if data.size <= CHUNK_ELEMENTS:
        return None
    candidates = [str(d) for d in data.dims if str(d) not in avoid and data.sizes[d] > 1]
    return max(candidates, key=lambda d: data.sizes[d]) if candidates else None


def prepare_chain(
    data: xr.DataArray,
    ops: Sequence[ProcessingOp],
    tensor: TensorSpec,
    *,
    where: str,
    descriptor: Path | None = None,
    references: Mapping[str, xr.DataArray] | None = None,
    ignore_nan: bool = False,
    statistics: type[StatsSource] = StatsSource,
) -> Chain:
    """Check, bind and take the statistics of ``ops`` on the whole tensor ``data``.

    Parameters
    ----------
    data : xarray.DataArray
        The whole tensor, dims named by axis letters (plus any looped dims).
    ops : sequence of ProcessingOp
        The steps, in order.
    tensor : TensorSpec
        The tensor's description (name and axes).
    where : str
        Descriptor field of the chain, for messages (``"inputs['raw'].preprocessing"``).
    references : mapping, optional
        Tensors ``reference_tensor`` may name.
    ignore_nan : bool
        Leave NaN and infinite values out of every statistic.
    statistics : type of StatsSource
        What takes the statistics: :class:`~deepij.processing.statistics.StatsSource` reads a numpy-backed
        tensor chunk by chunk; :class:`deepij.inference.lazy_statistics.DaskStats` a dask-backed one.
    """
    steps: list[BoundStep] = []
    for index, op in enumerate(ops):
        step = f"{where}[{index}]"
        implementation = OPS.get(op.name)
        if implementation is None:
            raise ProcessingError(
                f"unknown processing op {op.name!r} on tensor {tensor.name!r}",
                file=descriptor,
                field=f"{step}.name",
                found=op.name,
                expected=f"one of {sorted(OPS)}",
            )
        context = OpContext(
            op.name, dict(op.kwargs or {}), tensor.name, tensor.axes_str, step, descriptor, references or {}
        )
        implementation.check(context)
        before = Chain(tensor.name, tuple(steps)) if steps else None
        avoid = before.dims if before is not None else set()
        source = statistics(data, before, ignore_nan=ignore_nan, avoid=avoid)
        steps.append(BoundStep(implementation, context, implementation.values(source, context)))
    return Chain(tensor.name, tuple(steps))


def reads_data(ops: Sequence[ProcessingOp]) -> bool:
    """Whether any step needs statistics of a whole tensor (unknown ops count as needing them)."""
    for op in ops:
        implementation = OPS.get(op.name)
        if implementation is None:
            return True
        context = OpContext(op.name, dict(op.kwargs or {}), "", "", "")
        if implementation.reads_data(context) or context.reference() is not None:
            return True
    return False
