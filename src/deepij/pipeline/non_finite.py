"""``non_finite="ignore"``: where the input has NaN or infinite pixels, and the outputs made NaN there again.

The statistics leave those pixels out and the network sees 0 there (:mod:`deepij.processing.stream`); the
floating-point image outputs then get NaN back at the pixels they come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import xarray as xr

    from deepij.bundle.description import ModelDescription
    from deepij.inference.plan import TilePlan
    from deepij.inference.tiling import ModelTiling

Tensors = dict[str, "xr.DataArray"]


def non_finite_masks(
    tiling: ModelTiling, description: ModelDescription, raw: Mapping[str, xr.DataArray]
) -> dict[str, xr.DataArray]:
    """For ``non_finite="ignore"``: where the primary input has NaN/inf pixels (any channel), if anywhere."""
    import numpy as np

    from deepij.inference.arrays import count_non_finite, non_finite_mask

    if not tiling.input:
        return {}
    spec = description.input(tiling.input)
    data = raw[spec.name]
    if not count_non_finite(np.asarray(data.values))[0]:
        return {}
    reduce = [a for a in spec.axes_str if a != "b" and a not in tiling.axes]
    return {spec.name: non_finite_mask(data, reduce)}


def masked_outputs(
    outputs: Tensors, plan: TilePlan, masks: Mapping[str, xr.DataArray], notes: list[str]
) -> Tensors:
    """NaN in the floating-point image outputs wherever the input pixel they come from was non-finite."""
    import numpy as np
    import xarray as xr

    if not masks:
        return outputs
    (mask,) = masks.values()
    count = int(mask.sum())
    notes.append(
        f"non_finite='ignore': {count} non-finite input pixels were left out of the statistics and run as 0"
    )
    for name, out_plan in plan.outputs.items():
        data = outputs[name]
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
        np.copyto(data.values, np.nan, where=np.asarray(where.values))
    return outputs
