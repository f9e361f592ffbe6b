"""The tiling fields of a built bundle, measured on the network (:func:`deepij.build`).

``min`` and ``step`` come from the sizes the network runs on, the output ``scale``/``offset`` from the
sizes it returns (:mod:`.build_probe`), the halo from its receptive field measured with impulses, rounded
up to a multiple of ``step`` (tiles then start on the pooling grid and reproduce the whole-image output).
The declared ``min`` is the network's smallest valid size that leaves a valid region once the halo is
cropped (``min*scale + offset - 2*halo >= 1``: deepImageJ's ``Q > 2P`` and the zoo's rule). A network
whose size is fixed (or a ``min_size`` given) too small for its halo is refused.

Examples
--------
>>> rule_words(ParameterizedSize(52, 4)), rule_words(FixedSize(64))
('52 + k*4', 'exactly 64')
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.bundle.description import (
    SPACE_AXES,
    AxisSpec,
    DeepImageJConfig,
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ReferenceSize,
    TensorSpec,
    WeightsEntry,
)
from deepij.errors import ArgumentError, ArgumentTypeError, SeamWarning
from deepij.trust.build_args import input_tensor
from deepij.trust.build_probe import ProbedSizes, aligned_halo, probe_sizes
from deepij.trust.build_sources import WrittenWeights
from deepij.trust.build_types import Layout

if TYPE_CHECKING:
    from deepij.inference.receptive import ReceptiveField


def _axis(letter: str, rule: Any, channels: int, prefix: str) -> AxisSpec:
    if letter == "c":
        return AxisSpec(
            "c", FixedSize(channels), channel_names=tuple(f"{prefix}{i}" for i in range(channels))
        )
    return AxisSpec(letter, rule)


def _graph_fixed(written: WrittenWeights, axes: str) -> dict[str, int]:
    """Axes the graph fixes (ONNX dims), by letter."""
    if len(written.input_dims) != len(axes):
        return {}
    return {a: d for a, d in zip(axes, written.input_dims, strict=True) if d is not None}


def probe_description(
    root: Path, name: str, written: WrittenWeights, layout: Layout, channels: int, tf_keys: tuple | None
) -> ModelDescription:
    """A description of what is known before probing: every free spatial size allowed."""
    fixed = _graph_fixed(written, layout.input_axes)
    in_axes = tuple(
        _axis(
            a,
            FixedSize(fixed[a]) if a in fixed else (None if a == "b" else ParameterizedSize(1, 1)),
            channels,
            "channel",
        )
        for a in layout.input_axes
    )
    outputs = tuple(
        TensorSpec(
            n,
            tuple(
                AxisSpec(a, ReferenceSize(layout.input_name, a) if a in SPACE_AXES else None) for a in letters
            ),
        )
        for n, letters in layout.output_axes.items()
    )
    entry = WeightsEntry(written.format, written.file)
    return ModelDescription(
        name=name,
        format_version="0.5.4",
        root=root,
        descriptor=root / "rdf.yaml",
        inputs=(TensorSpec(layout.input_name, in_axes),),
        outputs=outputs,
        weights={written.format: entry},
        deepimagej=tf_config(tf_keys),
    )


def tf_config(tf_keys: tuple | None) -> DeepImageJConfig:
    return (
        DeepImageJConfig()
        if tf_keys is None
        else DeepImageJConfig(tensorflow_tag=tf_keys[0], tensorflow_signature=tf_keys[1])
    )


def probe_network(
    root: Path, name: str, written: WrittenWeights, layout: Layout, array: np.ndarray, tf_keys: tuple | None
) -> tuple[ProbedSizes, dict[str, int]]:
    """The network's valid sizes and output sizes, then its receptive radius per spatial axis."""
    tensor = input_tensor(array, layout.input_axes)
    sizes_of = dict(zip(layout.input_axes, tensor.shape, strict=True))
    provisional = probe_description(root, name, written, layout, sizes_of.get("c", 1), tf_keys)
    backend = _probe_backend(provisional, written)
    try:
        fixed = {a: s for a, s in _graph_fixed(written, layout.input_axes).items() if a in SPACE_AXES}
        sizes = probe_sizes(
            lambda x: backend.predict([x]), layout.input_axes, sizes_of, layout.output_axes, fixed=fixed
        )
        _check_example_size(sizes, sizes_of)
        found = _receptive_field(backend, provisional, layout, sizes, sizes_of)
    finally:
        backend.close()
    if found is None:  # no impulse changes the output: nothing is seen across a seam
        return sizes, {a: 0 for a in sizes.rules}
    unbounded = [a for a, flag in found.at_least.items() if flag and _grid_of(sizes, a)]
    if unbounded:
        _refuse_unbounded(unbounded, dict(found.radius), dict(found.probe))
    return sizes, dict(found.radius)


def _receptive_field(
    backend: Any,
    provisional: ModelDescription,
    layout: Layout,
    sizes: ProbedSizes,
    sizes_of: Mapping[str, int],
) -> ReceptiveField | None:
    """The thorough impulse probe on the network, under the sizes just probed (no halo yet)."""
    from deepij.inference.receptive import THOROUGH, measure_receptive_field
    from deepij.inference.tiling import analyse_tiling

    tiling = analyse_tiling(rules_description(provisional, layout, sizes, {}, sizes.rules))
    shapes = {layout.input_name: _untiled(sizes_of)}
    return measure_receptive_field(backend, tiling, shapes, effort=THOROUGH)


def _grid_of(sizes: ProbedSizes, axis: str) -> bool:
    """Whether the axis' size can grow (a fixed one cannot show more of the field)."""
    rule = sizes.rules[axis]
    return isinstance(rule, ParameterizedSize) and rule.step > 0


def _probe_backend(description: ModelDescription, written: WrittenWeights) -> Any:
    """The network loaded with its own framework; an ONNX session that does not log the failures the size
    probe provokes."""
    if written.format == "onnx":
        from deepij.inference.backends.onnx_runtime import OnnxRuntimeBackend

        entry = description.weights["onnx"]
        return OnnxRuntimeBackend(description, entry, description.root / entry.source, "cpu", quiet=True)
    from deepij.inference.backends import load_backend

    return load_backend(description, written.format, "cpu", allow_code=False, runtime="native", verify=False)


def _untiled(sizes_of: Mapping[str, int]) -> dict[str, int]:
    return {a: s for a, s in sizes_of.items() if a not in SPACE_AXES and a != "b"}


def _check_example_size(sizes: ProbedSizes, example: Mapping[str, int]) -> None:
    for axis, rule in sizes.rules.items():
        if not rule.is_valid(example[axis]):
            nearest = rule.smallest_at_least(example[axis])
            raise ArgumentError(
                f"example: its size along {axis!r} is {example[axis]}; the network takes "
                f"{rule_words(rule)} (expected e.g. {nearest if nearest is not None else rule_words(rule)})"
            )


def rule_words(rule: FixedSize | ParameterizedSize) -> str:
    if isinstance(rule, FixedSize) or rule.step == 0:
        return f"exactly {rule.value if isinstance(rule, FixedSize) else rule.min}"
    return f"{rule.min} + k*{rule.step}"


def _refuse_unbounded(axes: list[str], radius: Mapping[str, int], probe: Mapping[str, int]) -> None:
    axis = axes[0]
    raise ArgumentError(
        f"model: along {axis!r} its receptive field reaches the border of the largest probe tile "
        f"({probe[axis]} pixels, radius >= {radius[axis]}): the network sees the whole image (global "
        "pooling or normalisation inside?), so tiles would change its output; expected a bounded receptive "
        "field, or build it with allow_tiling=False"
    )


def tiling_fields(
    sizes: ProbedSizes,
    radius: Mapping[str, int],
    layout: Layout,
    halo: int | None,
    min_size: int | None,
    allow_tiling: bool,
) -> tuple[dict[str, dict[str, int]], dict[str, FixedSize | ParameterizedSize]]:
    """Declared halos per output axis and declared input size rules (see the module notes)."""
    if halo is not None and (not isinstance(halo, int) or isinstance(halo, bool) or halo < 0):
        raise ArgumentError(f"halo: found {halo!r}; expected a number of pixels >= 0")
    if not isinstance(allow_tiling, bool):
        raise ArgumentTypeError(f"allow_tiling: found {type(allow_tiling).__name__}; expected True or False")
    declared = dict(radius) if halo is None else {a: halo for a in radius}
    short = {a: r for a, r in radius.items() if declared[a] < r}
    if short and allow_tiling:
        warnings.warn(
            f"halo={halo} is smaller than the measured receptive radius ({short}): tiled outputs will "
            "differ from whole-image outputs at the tile seams",
            SeamWarning,
            stacklevel=3,
        )
    halos: dict[str, dict[str, int]] = {}
    for name, out in sizes.outputs.items():
        halos[name] = {
            a: aligned_halo(declared[a], _step(sizes.rules[a]), out.scale[a], out.offset[a])
            if allow_tiling
            else 0
            for a in out.scale
        }
    rules = {a: _declared_rule(a, sizes, halos, min_size, declared[a]) for a in sizes.rules}
    return halos, rules


def _step(rule: FixedSize | ParameterizedSize) -> int:
    return 0 if isinstance(rule, FixedSize) else rule.step


def _room(size: int, axis: str, sizes: ProbedSizes, halos: Mapping[str, Mapping[str, int]]) -> bool:
    """Whether a tile of ``size`` leaves a valid region on every output (``out - 2*halo >= 1``)."""
    for name, out in sizes.outputs.items():
        if axis in out.scale and size * out.scale[axis] + out.offset[axis] - 2 * halos[name][axis] < 1:
            return False
    return True


def _declared_rule(
    axis: str,
    sizes: ProbedSizes,
    halos: Mapping[str, Mapping[str, int]],
    min_size: int | None,
    radius: int,
) -> FixedSize | ParameterizedSize:
    rule = sizes.rules[axis]
    needed = max(2 * h.get(axis, 0) for h in halos.values()) if halos else 0
    if min_size is not None:
        if not isinstance(min_size, int) or isinstance(min_size, bool) or not rule.is_valid(min_size):
            raise ArgumentError(
                f"min_size: found {min_size!r}; the network takes {rule_words(rule)} along {axis!r}"
            )
        if not _room(min_size, axis, sizes, halos):
            raise ArgumentError(
                f"min_size: {min_size} leaves no valid pixel along {axis!r} once the halo of {needed // 2} "
                f"(receptive radius {radius}) is cropped from both sides; expected a size above {needed}"
            )
        step = _step(rule)
        return ParameterizedSize(min_size, step) if step else FixedSize(min_size)
    if isinstance(rule, FixedSize) or rule.step == 0:
        size = rule.value if isinstance(rule, FixedSize) else rule.min
        if not _room(size, axis, sizes, halos):
            raise ArgumentError(
                f"model: its receptive field reaches {radius} pixels along {axis!r} (halo {needed // 2} on "
                f"each side) but its input size there is fixed to {size}: a tile would keep no valid pixel "
                f"(expected a fixed size above {needed}); export the network with free sizes, declare a "
                "smaller halo= (tiles then differ at their seams) or build it with allow_tiling=False"
            )
        return FixedSize(size)
    size = rule.min
    while not _room(size, axis, sizes, halos):
        size += rule.step
    return ParameterizedSize(size, rule.step)


def rules_description(
    base: ModelDescription,
    layout: Layout,
    sizes: ProbedSizes,
    halos: Mapping[str, Mapping[str, int]],
    rules: Mapping[str, FixedSize | ParameterizedSize],
) -> ModelDescription:
    """``base`` with the probed input rules, output sizes and the given halos."""
    from dataclasses import replace

    spec = base.inputs[0]
    in_axes = tuple(replace(a, size=rules[a.id]) if a.id in rules else a for a in spec.axes)
    outputs = []
    for out_spec in base.outputs:
        probed = sizes.outputs[out_spec.name]
        axes = []
        for a in out_spec.axes:
            if a.id in probed.scale:
                size: Any = ReferenceSize(
                    layout.input_name, a.id, float(probed.scale[a.id]), _offset(probed.offset[a.id], a.id)
                )
                axes.append(AxisSpec(a.id, size, halo=halos.get(out_spec.name, {}).get(a.id, 0)))
            elif a.id == "c":
                n = probed.fixed.get("c", 1)
                axes.append(
                    AxisSpec("c", FixedSize(n), channel_names=tuple(f"{out_spec.name}{i}" for i in range(n)))
                )
            elif a.id == "b":
                axes.append(a)
            else:
                axes.append(AxisSpec(a.id, FixedSize(probed.fixed[a.id])))
        outputs.append(replace(out_spec, axes=tuple(axes)))
    return replace(base, inputs=(replace(spec, axes=in_axes),), outputs=tuple(outputs))


def _offset(offset: Fraction, axis: str) -> float:
    if offset.denominator != 1:
        raise ArgumentError(
            f"model: its output size along {axis!r} is the input's scaled plus {float(offset)} pixels; "
            "expected a whole number of pixels (a bundle cannot describe it otherwise)"
        )
    return float(offset)


__all__ = [
    "probe_description",
    "probe_network",
    "rule_words",
    "rules_description",
    "tf_config",
    "tiling_fields",
]
