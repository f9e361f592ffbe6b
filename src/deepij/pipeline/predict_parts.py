"""What an in-memory predict (:mod:`deepij.pipeline.model`) and a lazy one
(:mod:`deepij.pipeline.lazy_predict`) share: the checks of ``predict``'s arguments, the sizes of one sample,
and the :class:`Prediction` made from the processed outputs.

Examples
--------
>>> check_arguments(256, "blend", 16, "auto", "2GB", "raise", "yx")
'blend'
>>> check_arguments(None, None, None, "auto", None, "raise", None) is None
True
>>> import numpy as np, xarray as xr
>>> from deepij.bundle import open_bundle
>>> image = xr.DataArray(np.zeros((1, 1, 512, 512), np.float32), dims=("b", "c", "y", "x"))
>>> sample_shapes(open_bundle("examples/nuclei_bundle"), {"input": image})
{'input': {'c': 1, 'y': 512, 'x': 512}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deepij.pipeline.outputs import Prediction

if TYPE_CHECKING:
    import xarray as xr

    from deepij.bundle.description import ModelDescription
    from deepij.inference.backends.base import Backend
    from deepij.inference.plan import TilePlan
    from deepij.inference.tiling import TilingMode
    from deepij.pipeline.steps import Chain, StepOutputs


def check_arguments(
    tile: Any,
    tiling: str | None,
    overlap: Any,
    batch_size: Any,
    max_memory: Any,
    non_finite: str,
    axes: Any,
    precision: str = "float32",
) -> TilingMode | None:
    """Refuse bad arguments of :meth:`~deepij.pipeline.model.Model.predict` before anything runs; the
    tiling mode asked for (None: chosen by the run, :func:`deepij.pipeline.planning.layout`).

    Raises
    ------
    ArgumentError, ArgumentTypeError
        An argument of an unknown value or of the wrong type (the message names it).
    """
    from deepij.errors import ArgumentError, ArgumentTypeError
    from deepij.inference.arrays import NON_FINITE
    from deepij.inference.backends.precision import PRECISIONS
    from deepij.inference.tiling import TILE_WORDS, TILING_MODES
    from deepij.sizes import parse_memory_size

    if isinstance(tile, str) and tile not in TILE_WORDS:
        raise ArgumentError(
            f"tile: unknown value {tile!r}; expected sizes per axis or one of {list(TILE_WORDS)}"
        )
    if isinstance(tile, bool) or not isinstance(tile, (type(None), str, int, tuple, list, Mapping)):
        raise ArgumentTypeError(
            f"tile: expected an int, a sequence or a mapping of sizes, or a word, not {tile!r}"
        )
    if tiling is not None and tiling not in TILING_MODES:
        raise ArgumentError(f"tiling: unknown value {tiling!r}; expected one of {list(TILING_MODES)}")
    if overlap is not None:
        if isinstance(overlap, bool) or not isinstance(overlap, int):
            raise ArgumentTypeError(f"overlap: expected a whole number of pixels, not {overlap!r}")
        if overlap < 0:
            raise ArgumentError(f"overlap: expected a whole number of pixels >= 0, not {overlap}")
    if batch_size != "auto":
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise ArgumentTypeError(f"batch_size: expected a positive integer or 'auto', not {batch_size!r}")
        if batch_size < 1:
            raise ArgumentError(f"batch_size: expected a positive integer or 'auto', not {batch_size}")
    if max_memory is not None:
        parse_memory_size(max_memory)
    if non_finite not in NON_FINITE:
        raise ArgumentError(f"non_finite: unknown value {non_finite!r}; expected one of {list(NON_FINITE)}")
    if precision not in PRECISIONS:
        raise ArgumentError(f"precision: unknown value {precision!r}; expected one of {list(PRECISIONS)}")
    if axes is not None and not isinstance(axes, (str, Mapping)):
        raise ArgumentTypeError(
            "axes: expected letters naming the image's dims (e.g. 'zyx') or a mapping per input, "
            f"not {axes!r}"
        )
    return tiling_mode(tiling) if tiling is not None else None


def tiling_mode(mode: str) -> TilingMode:
    """``mode`` as one of the tiling modes (already checked by :func:`check_arguments`).

    Examples
    --------
    >>> tiling_mode("blend")
    'blend'
    """
    from deepij.inference.tiling import TILING_MODES

    for known in TILING_MODES:
        if known == mode:
            return known
    raise AssertionError(mode)  # check_arguments refused it


def sample_shapes(description: ModelDescription, inputs: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per input, axis -> size of one sample (no batch), from images with named dims."""
    return {
        s.name: {a: int(inputs[s.name].sizes[a]) for a in s.axes_str if a != "b"} for s in description.inputs
    }


def make_prediction(
    description: ModelDescription,
    outputs: Mapping[str, xr.DataArray],
    plan: TilePlan,
    batch: int,
    backend: Backend,
    notes: list[str],
) -> Prediction:
    """The network's processed outputs as a :class:`Prediction`: table outputs as DataFrames, images as
    they are; with the plan, batch size and what ran."""
    from deepij.inference.arrays import table_frame

    images, tables = {}, {}
    for spec in description.outputs:
        if spec.is_table:
            tables[spec.name] = table_frame(outputs[spec.name], spec)
        else:
            images[spec.name] = outputs[spec.name]
    return Prediction(
        images, tables, plan, batch, backend.weights.format, backend.device, notes, backend.runtime
    )


def with_step_outputs(
    prediction: Prediction,
    finished: StepOutputs,
    chain: Chain,
    input_title: str,
    description: ModelDescription,
) -> Prediction:
    """The prediction with what the processing steps left (images and tables by title) and how it was made."""
    from deepij.pipeline.outputs import provenance

    prediction.images.update(finished.images)
    prediction.tables.update(finished.tables)
    prediction.rois = list(finished.rois)
    prediction.model_name = description.name
    prediction.input_title = input_title
    prediction.provenance = provenance(description, prediction, chain.mode, chain.ran)
    return prediction
