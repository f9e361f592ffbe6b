"""Run a model's instance steps on its stitched outputs (:func:`run_instances`).

Each step sees the whole output of one image (never a tile): every dim that is not one of the op's spatial
axes or the channel axis (batch, time, planes of a 2-D op) is looped over, one image at a time. The labels
replace the output (in the declared axes, cast to the declared type after the declared ops that follow),
and the objects of every image go into one table (with the looped dims as columns when there are several
images).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from deepij.bundle.description import ReferenceSize
from deepij.errors import ProcessingError, StepError
from deepij.processing.instances.params import CellposeParams, CustomParams, StardistParams
from deepij.processing.instances.plan import InstancePlan, InstanceStep
from deepij.processing.instances.table import Instances, object_table, outlines

Sample = dict[str, int]


@dataclass
class InstanceResult:
    """What :func:`run_instances` gives.

    Attributes
    ----------
    outputs : dict of str to xarray.DataArray
        The outputs, the instance ones replaced by their labels.
    tables : dict of str to pandas.DataFrame
        ``<output>_objects`` per instance output.
    instances : dict of str to list of (dict, Instances)
        Per instance output, each image's position along the looped dims and its instances (labels,
        table, polygons: the ROIs).
    notes : list of str
        What ran, how many objects, how long.
    """

    outputs: dict[str, xr.DataArray]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    instances: dict[str, list[tuple[Sample, Instances]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_instances(
    plan: InstancePlan,
    outputs: Mapping[str, xr.DataArray],
    inputs: Mapping[str, xr.DataArray],
    *,
    mode: str = "auto",
    allow_code: bool = False,
) -> InstanceResult:
    """The chosen steps (:meth:`InstancePlan.chosen`) on whole stitched ``outputs`` (numpy-backed);
    ``inputs`` are the model's inputs as it received them (their sizes give the label image's size)."""
    result = InstanceResult(dict(outputs))
    for step in plan.chosen(mode):
        data = outputs[step.output]
        if not isinstance(data.data, np.ndarray):
            raise ProcessingError(
                f"{step.op} needs the whole output in memory, and this output is lazy (dask): run predict "
                "on an in-memory image (np.asarray(...) or a TIFF), or predict(..., instances='none') for "
                "the "
                "raw maps, then deepij.processing.instances on each image",
                file=plan.description.descriptor,
                field=step.where,
            )
        started = time.perf_counter()
        op = _operator(plan, step, allow_code)
        labels, found = _per_image(step, data, dict(outputs), inputs, op)
        labels = _after(plan, step, labels, inputs, outputs)
        result.outputs[step.output] = labels
        result.instances[step.output] = found
        result.tables[f"{step.output}_objects"] = _joined(found, data, step)
        count = sum(len(i.table) for _, i in found)
        how = "recognised from " + step.where if step.recognised else step.where
        result.notes.append(
            f"instances: {step.op} ({how}) on output {step.output!r}: {count} objects in "
            f"{len(found)} image(s), {time.perf_counter() - started:.2f} s"
        )
    return result


Operator = Callable[[xr.DataArray, Mapping[str, xr.DataArray], Sample, tuple[int, ...]], Instances]


def _operator(plan: InstancePlan, step: InstanceStep, allow_code: bool) -> Operator:
    params = step.params
    if isinstance(params, StardistParams):
        return _stardist(params)
    if isinstance(params, CellposeParams):
        return _cellpose(params)
    from deepij.processing.instances.custom import custom_operator

    assert isinstance(params, CustomParams)
    op = custom_operator(plan.description, params, allow_code=allow_code, where=step.where)
    return _custom(op, step, plan)


def _stardist(params: StardistParams) -> Operator:
    from deepij.processing.instances.stardist import stardist_instances

    spatial = "zyx"[3 - params.ndim :]

    def run(
        image: xr.DataArray, others: Mapping[str, xr.DataArray], sample: Sample, size: tuple[int, ...]
    ) -> Instances:
        values = np.asarray(image.transpose(*spatial, "c").values)
        return stardist_instances(
            values[..., 0],
            values[..., 1:],
            grid=params.grid,
            prob_threshold=params.prob_threshold,
            nms_threshold=params.nms_threshold,
            b=params.b,
            shape=size,
            anisotropy=params.anisotropy,
            overlap_label=params.overlap_label,
        )

    return run


def _cellpose(params: CellposeParams) -> Operator:
    from deepij.processing.instances.cellpose import cellpose_instances

    spatial = "zyx" if params.do_3D else "yx"
    flows = len(spatial)

    def run(
        image: xr.DataArray, others: Mapping[str, xr.DataArray], sample: Sample, size: tuple[int, ...]
    ) -> Instances:
        values = np.asarray(image.transpose("c", *spatial).values)
        return cellpose_instances(
            values[:flows],
            values[flows],
            cellprob_threshold=params.cellprob_threshold,
            flow_threshold=params.flow_threshold,
            do_3D=params.do_3D,
            min_size=params.min_size,
            output_dtype=params.output_dtype,
        )

    return run


def _custom(op: Callable[..., Any], step: InstanceStep, plan: InstancePlan) -> Operator:
    """``op(*arrays)`` per image: every network output at this image's position, in the descriptor's order,
    each in its own axes without the looped dims; the result is the image's output in the declared axes."""

    def run(
        image: xr.DataArray, others: Mapping[str, xr.DataArray], sample: Sample, size: tuple[int, ...]
    ) -> Instances:
        arrays = []
        for spec in plan.network.outputs:
            data = others[spec.name]
            arrays.append(np.asarray(data.isel({d: i for d, i in sample.items() if d in data.dims}).values))
        try:
            result = np.asarray(op(*arrays))
        except Exception as error:
            raise StepError(
                f"custom op {step.where} ({step.op}) failed: {error!r}"
            ) from error
        labels = _as_declared(result, step, sample, size)
        table = object_table(labels) if labels.dtype.kind in "iub" else pd.DataFrame()
        return Instances(labels, table, outlines(labels) if labels.dtype.kind in "iu" else {})

    return run


def _as_declared(result: np.ndarray, step: InstanceStep, sample: Sample, size: tuple[int, ...]) -> np.ndarray:
    """A custom op's result as the image's spatial label array (a channel axis of one may be there)."""
    squeezed = np.squeeze(result)
    if squeezed.shape != size:
        raise StepError(
            f"custom op {step.where}: result of shape {result.shape} for output {step.output!r}; expected "
            "the "
            f"image's spatial size {size} (singleton axes allowed)"
        )
    return squeezed


def _per_image(
    step: InstanceStep,
    data: xr.DataArray,
    outputs: Mapping[str, xr.DataArray],
    inputs: Mapping[str, xr.DataArray],
    op: Operator,
) -> tuple[xr.DataArray, list[tuple[Sample, Instances]]]:
    spatial = [a for a in step.declared.axes_str if a in _spatial(step)]
    looped = [str(d) for d in data.dims if str(d) not in spatial and d != "c"]
    size = tuple(_label_size(step, a, data, inputs) for a in spatial)
    found: list[tuple[Sample, Instances]] = []
    labels: np.ndarray | None = None
    dims = [str(d) for d in data.dims]
    for position in itertools.product(*(range(data.sizes[d]) for d in looped)):
        sample = dict(zip(looped, position, strict=True))
        instances = op(data.isel(sample), outputs, sample, size)
        if labels is None:
            shape = [
                data.sizes[d] if d in looped else 1 if d == "c" else size[spatial.index(d)] for d in dims
            ]
            labels = np.zeros(shape, instances.labels.dtype)
        index = tuple(sample[d] if d in looped else slice(None) if d != "c" else 0 for d in dims)
        order = [d for d in dims if d in spatial]
        labels[index] = np.transpose(instances.labels, [spatial.index(d) for d in order])
        found.append((sample, instances))
    assert labels is not None
    return xr.DataArray(labels, dims=dims, name=data.name), found


def _spatial(step: InstanceStep) -> str:
    params = step.params
    if isinstance(params, StardistParams):
        return "zyx"[3 - params.ndim :]
    if isinstance(params, CellposeParams):
        return "zyx" if params.do_3D else "yx"
    return "zyx"


def _label_size(step: InstanceStep, axis: str, data: xr.DataArray, inputs: Mapping[str, xr.DataArray]) -> int:
    """The label image's size along ``axis``: the declared rule applied to the input's size (the image's
    size, the grid undone), else the network output's size times the grid."""
    rule = step.declared.axis(axis).size
    if isinstance(rule, ReferenceSize) and rule.tensor in inputs and rule.axis in inputs[rule.tensor].dims:
        return rule.size_for(int(inputs[rule.tensor].sizes[rule.axis]))
    grid = 1
    if isinstance(step.params, StardistParams):
        grid = step.params.grid[_spatial(step).index(axis)]
    return int(data.sizes[axis]) * grid


def _after(
    plan: InstancePlan,
    step: InstanceStep,
    labels: xr.DataArray,
    inputs: Mapping[str, xr.DataArray],
    outputs: Mapping[str, xr.DataArray],
) -> xr.DataArray:
    """The declared ops after the instance op, then the cast to the declared type (0.5's implied
    ``ensure_dtype``), refused when the labels do not fit it."""
    if step.after:
        from deepij.processing.spec import apply_ops

        labels = apply_ops(
            labels,
            step.after,
            step.declared,
            where=f"outputs[{step.output!r}].postprocessing",
            descriptor=plan.description.descriptor,
            references={**inputs, **outputs},
        )
    dtype = np.dtype(step.declared.data_type)
    if dtype.kind in "iu" and labels.size and int(labels.max()) > np.iinfo(dtype).max:
        raise ProcessingError(
            f"{int(labels.max())} objects do not fit the declared type",
            file=plan.description.descriptor,
            field=f"outputs[{step.output!r}].data.type",
            found=str(dtype),
            expected="a wider integer type",
        )
    return labels if labels.dtype == dtype else labels.astype(dtype)


def _joined(found: list[tuple[Sample, Instances]], data: xr.DataArray, step: InstanceStep) -> pd.DataFrame:
    several = [d for d, n in found[0][0].items() if data.sizes[d] > 1] if found else []
    frames = []
    for sample, instances in found:
        table = instances.table.copy()
        for position, name in enumerate(several):
            table.insert(position, name, sample[name])
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
