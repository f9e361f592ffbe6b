"""Which outputs of a model become instances, and what the network gives for them.

An instance op changes a tensor's shape: the descriptor's output axes describe what comes out of the op (the
label image: one channel, at the input's size), not what the network gives (StarDist: the probability and
the ``n_rays`` distances at ``1/grid`` of the input's size; Cellpose: the flows and the cell probability),
as bioimageio.core reads them (its StarDist op draws the labels at the network output's size times the
grid, its Cellpose op keeps the size and makes the channels one). :func:`plan_instances` therefore gives two
descriptions: the declared one, and :attr:`InstancePlan.network`, where each such output is what the
network gives (the ops before the instance op stay in its chain). Tiling, the backend and the per-tile spec
ops work on the network view; the instance steps run after stitching, on the whole output.

Besides declared ops, the zoo's exporters write bundles that declare none (recognised here, as JDLL does):

- StarDist (``config.stardist``): one output of probability + distances; thresholds from
  ``config.stardist.thresholds``; the grid from the output's scale (1 when the exporter upsampled it, then
  ``b`` = 2 model grid cells, as stardist's newer exporter writes it).
- Cellpose (tag or config ``cellpose``, or a ``CPnet`` architecture): the 3-channel ``flow`` output (dy, dx,
  cell probability), cellpose's defaults.

Those run with ``instances="auto"`` (the default); ``"declared"`` runs only what the descriptor declares (a
recognised bundle then gives its raw maps, as its test outputs hold them); ``"none"`` gives the network's
raw outputs for every output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from deepij.bundle.description import (
    AxisSpec,
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ProcessingOp,
    ReferenceSize,
    SizeRule,
    TensorSpec,
)
from deepij.errors import ProcessingError
from deepij.processing.instances.params import (
    CELLPOSE,
    CUSTOM,
    INSTANCE_OPS,
    STARDIST,
    CellposeParams,
    CustomParams,
    StardistParams,
    cellpose_params,
    custom_params,
    stardist_params,
)

MODES = ("auto", "declared", "none")
Params = StardistParams | CellposeParams | CustomParams


@dataclass(frozen=True)
class InstanceStep:
    """One output turned into instances.

    Attributes
    ----------
    output : str
        The output tensor's name.
    op : str
        ``stardist_postprocessing``, ``cellpose_flow_dynamics`` or ``custom``.
    params : StardistParams, CellposeParams or CustomParams
        The op's checked kwargs.
    where : str
        The descriptor field of the op (``outputs['labels'].postprocessing[0]``), or what it was recognised
        from (``config.stardist``).
    declared : TensorSpec
        The output after the op (the labels).
    network : TensorSpec
        The output as the network gives it.
    after : tuple of ProcessingOp
        Declared spec ops after the instance op (they run on the labels).
    recognised : bool
        True when the descriptor declares no op and the exporter's bundle shape was recognised.
    """

    output: str
    op: str
    params: Params
    where: str
    declared: TensorSpec
    network: TensorSpec
    after: tuple[ProcessingOp, ...] = ()
    recognised: bool = False


@dataclass(frozen=True)
class InstancePlan:
    """A model's instance steps and the description of what its network gives (module notes)."""

    description: ModelDescription
    network: ModelDescription
    steps: tuple[InstanceStep, ...] = ()

    def chosen(self, mode: str) -> tuple[InstanceStep, ...]:
        """The steps that run with ``predict(..., instances=mode)``."""
        check_mode(mode)
        if mode == "none":
            return ()
        return tuple(s for s in self.steps if mode == "auto" or not s.recognised)


def check_mode(mode: Any) -> str:
    """``mode`` if it is one of :data:`MODES`, else :class:`~deepij.errors.ArgumentError` naming it."""
    from deepij.errors import ArgumentError

    if not isinstance(mode, str) or mode not in MODES:
        raise ArgumentError(f"instances: unknown value {mode!r}; expected one of {list(MODES)}")
    return mode


def plan_instances(description: ModelDescription) -> InstancePlan:
    """Find the instance steps of a model (declared ops, then recognised exporter bundles), with their
    kwargs checked (:class:`~deepij.errors.ProcessingError` naming the field otherwise)."""
    _refuse_on_inputs(description)
    steps = [s for s in (_declared(description, o) for o in description.outputs) if s is not None]
    if not steps:
        recognised = _recognise_stardist(description) or _recognise_cellpose(description)
        steps = [recognised] if recognised is not None else []
    if not steps:
        return InstancePlan(description, description)
    by_name = {s.output: s.network for s in steps}
    outputs = tuple(by_name.get(o.name, o) for o in description.outputs)
    return InstancePlan(description, replace(description, outputs=outputs), tuple(steps))


def _refuse_on_inputs(description: ModelDescription) -> None:
    for spec in description.inputs:
        for index, op in enumerate(spec.processing):
            if op.name in INSTANCE_OPS:
                raise ProcessingError(
                    f"{op.name} is a post-processing op",
                    file=description.descriptor,
                    field=f"inputs[{spec.name!r}].preprocessing[{index}].id",
                    found=op.name,
                    expected="it on an output's postprocessing",
                )


def _declared(description: ModelDescription, spec: TensorSpec) -> InstanceStep | None:
    ops = spec.processing
    found = [i for i, op in enumerate(ops) if op.name in INSTANCE_OPS]
    if not found:
        return None
    index = found[0]
    where = f"outputs[{spec.name!r}].postprocessing[{index}]"
    if len(found) > 1:
        raise ProcessingError(
            "two instance ops on one output",
            file=description.descriptor,
            field=f"outputs[{spec.name!r}].postprocessing[{found[1]}].id",
            found=ops[found[1]].name,
            expected="one of stardist_postprocessing, cellpose_flow_dynamics, custom per output",
        )
    op = ops[index]
    params = _params(op, where, description)
    network = _network_spec(spec, op.name, params, ops[:index], description, where)
    return InstanceStep(spec.name, op.name, params, where, spec, network, tuple(ops[index + 1 :]))


def _params(op: ProcessingOp, where: str, description: ModelDescription) -> Params:
    if op.name == STARDIST:
        return stardist_params(op, where=where, descriptor=description.descriptor)
    if op.name == CELLPOSE:
        return cellpose_params(op, where=where, descriptor=description.descriptor)
    return custom_params(op, where=where, descriptor=description.descriptor)


def _network_spec(
    spec: TensorSpec,
    op: str,
    params: Params,
    before: tuple[ProcessingOp, ...],
    description: ModelDescription,
    where: str,
) -> TensorSpec:
    """What the network gives for an output whose declared axes describe the op's result."""
    if "c" not in spec.axes_str and op != CUSTOM:
        raise ProcessingError(
            f"{op} reads the network output's channels, but the output has no channel axis",
            file=description.descriptor,
            field=f"outputs[{spec.name!r}].axes",
            found=spec.axes_str,
            expected="a channel axis (one channel: the labels)",
        )
    axes = []
    spatial = _op_spatial(op, params, spec.axes_str)
    for axis in spec.axes:
        if axis.id == "c":
            axes.append(AxisSpec("c", _network_channels(params), description=axis.description))
        elif axis.id in spatial and isinstance(params, StardistParams):
            axes.append(_subsampled(axis, params.grid[spatial.index(axis.id)], description, where))
        else:
            axes.append(axis)
    return replace(
        spec,
        axes=tuple(axes),
        data_type="float32",
        processing=before,
        test_tensor=None,
        sample_tensor=None,
        data_range=None,
    )


def _op_spatial(op: str, params: Params, axes: str) -> str:
    if isinstance(params, StardistParams):
        return "zyx"[3 - params.ndim :]
    if isinstance(params, CellposeParams):
        return "zyx" if params.do_3D else "yx"
    return "".join(a for a in "zyx" if a in axes)


def _network_channels(params: Params) -> SizeRule:
    if isinstance(params, StardistParams):
        return FixedSize(1 + params.n_rays) if params.n_rays else None
    if isinstance(params, CellposeParams):
        return FixedSize(params.channels)
    return None  # a custom op's input channels are not described anywhere


def _subsampled(axis: AxisSpec, grid: int, description: ModelDescription, where: str) -> AxisSpec:
    """A label axis at the network's ``1/grid`` resolution."""
    rule = axis.size
    if grid == 1:
        return axis
    if isinstance(rule, ReferenceSize):
        size: SizeRule = ReferenceSize(rule.tensor, rule.axis, rule.scale / grid, rule.offset / grid)
    elif isinstance(rule, FixedSize) and rule.value % grid == 0:
        size = FixedSize(rule.value // grid)
    elif isinstance(rule, ParameterizedSize) and rule.min % grid == 0 and rule.step % grid == 0:
        size = ParameterizedSize(rule.min // grid, rule.step // grid)
    elif rule is None:
        size = None
    else:
        raise ProcessingError(
            f"axis {axis.id!r} cannot be divided by the StarDist grid {grid}",
            file=description.descriptor,
            field=f"{where}.kwargs.grid",
            found=rule,
            expected="sizes that are multiples of the grid",
        )
    return replace(axis, size=size, halo=math.ceil(axis.halo / grid))


# --- exporter bundles that declare no op -------------------------------------------------------------------


def _labels_spec(spec: TensorSpec, dtype: str) -> TensorSpec:
    axes = tuple(
        replace(a, size=FixedSize(1), channel_names=("labels",)) if a.id == "c" else a for a in spec.axes
    )
    return replace(spec, axes=axes, data_type=dtype, processing=(), test_tensor=None, sample_tensor=None)


def _recognise_stardist(description: ModelDescription) -> InstanceStep | None:
    config = description.config.get("stardist")
    if not isinstance(config, dict):
        return None
    images = [o for o in description.outputs if not o.is_table and "c" in o.axes_str]
    thresholds = config.get("thresholds")
    if len(images) != 1 or not isinstance(thresholds, dict):
        return None
    spec = images[0]
    model = config.get("config") or config.get("model_config") or {}
    spatial = "".join(a for a in "zyx" if a in spec.axes_str)
    grid = tuple(_output_grid(spec.axis(a).size) for a in spatial)
    model_grid = model.get("grid") if isinstance(model, dict) else None
    upsampled = isinstance(model_grid, list) and len(model_grid) == len(grid) and grid == (1,) * len(grid)
    b = 2 * min(int(g) for g in model_grid) if upsampled and model_grid else 2
    kwargs: dict[str, Any] = {
        "prob_threshold": thresholds.get("prob"),
        "nms_threshold": thresholds.get("nms"),
        "grid": list(grid),
        "b": b,
    }
    if len(grid) == 3:
        kwargs["n_rays"] = model.get("n_rays")
        kwargs["anisotropy"] = model.get("anisotropy") or [1.0, 1.0, 1.0]
    where = "config.stardist"
    params = stardist_params(ProcessingOp(STARDIST, kwargs), where=where, descriptor=description.descriptor)
    return InstanceStep(
        spec.name, STARDIST, params, where, _labels_spec(spec, "int32"), spec, recognised=True
    )


def _output_grid(rule: SizeRule) -> int:
    """The subsampling of an output axis relative to the input it refers to (1 when it does not refer)."""
    if isinstance(rule, ReferenceSize) and 0 < rule.scale < 1:
        return round(1 / rule.scale)
    return 1


def _recognise_cellpose(description: ModelDescription) -> InstanceStep | None:
    tagged = any("cellpose" in t.lower() for t in description.tags) or "cellpose" in description.config
    architectures = [w.architecture.callable for w in description.weights.values() if w.architecture]
    if not (tagged or any(a.startswith("CPnet") for a in architectures)):
        return None
    candidates = [o for o in description.outputs if "c" in o.axes_str and _channels(o) == 3]
    named = [o for o in candidates if o.name == "flow"]
    if not (named or candidates):
        return None
    spec = (named or candidates)[0]
    params = CellposeParams()
    where = "cellpose exporter bundle"
    return InstanceStep(
        spec.name, CELLPOSE, params, where, _labels_spec(spec, params.output_dtype), spec, recognised=True
    )


def _channels(spec: TensorSpec) -> int | None:
    axis = spec.axis("c")
    if axis.channel_names:
        return len(axis.channel_names)
    if isinstance(axis.size, FixedSize):
        return axis.size.value
    if isinstance(axis.size, ReferenceSize) and axis.size.scale == 0:
        return round(axis.size.offset)
    return None
