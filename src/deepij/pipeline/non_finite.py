"""``predict(non_finite="ignore")``: where the input's NaN and infinite pixels are, and the outputs made NaN
again there, for in-memory and lazy (dask-backed) images alike.

The statistics leave those pixels out and the network sees 0 there (:mod:`deepij.processing.stream`); what
is left is to mark them in the outputs. A pixel of the primary input counts when any of its channels is
non-finite; an output pixel is NaN when the input pixel it comes from counts (outputs on another grid, and
outputs that are not floating-point images, are left as they are, and the notes say so). On a numpy output
the NaN are written in place; on a dask output they are one more lazy step, chunked as the output is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from deepij.inference.lazy_statistics import is_lazy

if TYPE_CHECKING:
    from deepij.bundle.description import ModelDescription
    from deepij.inference.plan import TilePlan
    from deepij.inference.tiling import ModelTiling

Tensors = dict[str, xr.DataArray]


@dataclass(frozen=True)
class NonFiniteMask:
    """Where the primary input's non-finite pixels are.

    Attributes
    ----------
    mask : xarray.DataArray
        True at those pixels: the input's dims without channels (lazy for a dask-backed input).
    count : int
        How many pixels are True.
    """

    mask: xr.DataArray
    count: int


def non_finite_mask(
    tiling: ModelTiling, description: ModelDescription, raw: Mapping[str, xr.DataArray]
) -> NonFiniteMask | None:
    """Where the primary input has NaN/inf pixels (any channel); None when it has none. A numpy image is
    counted chunk by chunk first (no mask is made for a finite one); a dask image is read once, for the
    count, and its mask stays lazy."""
    from deepij.inference import arrays

    if not tiling.input:
        return None
    spec = description.input(tiling.input)
    data = raw[spec.name]
    if data.dtype.kind != "f":
        return None
    if not is_lazy(data) and not arrays.count_non_finite(np.asarray(data.values))[0]:
        return None
    reduce = [a for a in spec.axes_str if a != "b" and a not in tiling.axes]
    mask = arrays.non_finite_mask(data, reduce)
    count = int(mask.sum())
    return NonFiniteMask(mask, count) if count else None


def mask_outputs(
    outputs: Mapping[str, xr.DataArray], plan: TilePlan, found: NonFiniteMask | None, notes: list[str]
) -> Tensors:
    """The outputs with NaN in the floating-point images wherever the input pixel they come from was
    non-finite (module notes); a note says how many input pixels that was."""
    result = dict(outputs)
    if found is None:
        return result
    mask, count = found.mask, found.count
    notes.append(
        f"non_finite='ignore': {count} non-finite input pixels were left out of the statistics and run as 0"
    )
    for name, out_plan in plan.outputs.items():
        data = result[name]
        follows = {m.input_axis for m in out_plan.maps.values()} == set(plan.axes)
        if not follows or data.dtype.kind != "f":
            notes.append(f"output {name!r} is not masked (not a floating-point image of the input)")
            continue
        index = {}
        for letter, m in out_plan.maps.items():
            size = mask.sizes[m.input_axis]
            rows = np.clip(m.image_pixels(data.sizes[letter]), 0, size - 1)
            index[m.input_axis] = xr.DataArray(rows, dims=(letter,))
        where = mask.isel(index).broadcast_like(data).transpose(*data.dims)
        if is_lazy(data):
            chunks = dict(zip(map(str, data.dims), data.chunks or (), strict=True))
            result[name] = data.where(~where.chunk(chunks))
        else:
            np.copyto(data.values, np.nan, where=np.asarray(where.values))
    return result
