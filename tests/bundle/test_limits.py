"""Descriptor numbers that no tensor can have are refused while reading, naming the field: sizes like 2**40
(which would end in allocation errors), scales of 0, an output batch that contradicts the input's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepij.bundle import open_bundle
from deepij.bundle.description import FixedSize, ReferenceSize
from deepij.errors import BundleError

HUGE = 2**40
LIMIT = 2**20  # the documented bound (deepij.bundle.description.MAX_AXIS_SIZE)


def refused(descriptor: Path, field: str, message: str) -> BundleError:
    with pytest.raises(BundleError) as caught:
        open_bundle(descriptor, verify=False)
    error = caught.value
    assert error.field == field, str(error)
    assert message in str(error), str(error)
    assert error.file == str(descriptor)
    assert str(descriptor) in str(error) and error.expected
    return error


def setter(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets ``data[path[0]][path[1]]... = value``."""

    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


# --- 0.5 -------------------------------------------------------------------------------------------------

# the written 0.5 bundle: inputs[0].axes = batch, channel, y {min 9, step 1}, x {min 9, step 1};
# outputs[0].axes = batch, channel, y and x referring to the input's, halo 4
V05_HUGE = [
    (("inputs", 0, "axes", 2, "size"), HUGE, "inputs[0].axes[2].size", "axis size too large"),
    (
        ("inputs", 0, "axes", 2, "size"),
        {"min": HUGE, "step": 1},
        "inputs[0].axes[2].size.min",
        "minimum size",
    ),
    (("inputs", 0, "axes", 2, "size"), {"min": 9, "step": HUGE}, "inputs[0].axes[2].size.step", "step too"),
    (("outputs", 0, "axes", 2, "halo"), HUGE, "outputs[0].axes[2].halo", "halo too large"),
    (
        ("outputs", 0, "axes", 2, "size"),
        {"tensor_id": "raw", "axis_id": "y", "offset": HUGE},
        "outputs[0].axes[2].size.offset",
        "offset too large",
    ),
    (("outputs", 0, "axes", 1), {"type": "channel", "size": HUGE}, "outputs[0].axes[1].size", "axis size"),
]


@pytest.mark.parametrize(("path", "value", "field", "message"), V05_HUGE)
def test_huge_0_5_sizes_are_refused(mutated, path: tuple, value: Any, field: str, message: str) -> None:
    error = refused(mutated("0.5", setter(*path, value=value)), field, message)
    assert error.found in (HUGE, value)
    assert "at most 1048576" in str(error)


def test_the_largest_allowed_axis_and_one_more(mutated) -> None:
    described = open_bundle(mutated("0.5", setter("inputs", 0, "axes", 2, "size", value=LIMIT)), verify=False)
    assert described.inputs[0].axes[2].size == FixedSize(LIMIT)
    refused(
        mutated("0.5", setter("inputs", 0, "axes", 2, "size", value=LIMIT + 1)),
        "inputs[0].axes[2].size",
        "axis size too large",
    )


@pytest.mark.parametrize("scale", [0, -1.0, ".inf", float("nan")])
def test_a_0_5_axis_scale_must_be_positive_and_finite(mutated, scale: Any) -> None:
    # before: `scale: 0` was read as 1
    refused(
        mutated("0.5", setter("inputs", 0, "axes", 3, "scale", value=scale)),
        "inputs[0].axes[3].scale",
        "axis scale must be a finite number > 0",
    )
    refused(
        mutated("0.5", setter("outputs", 0, "axes", 2, "scale", value=scale)),
        "outputs[0].axes[2].scale",
        "axis scale must be a finite number > 0",
    )


def test_a_0_5_scale_ratio_that_makes_an_axis_of_millions(mutated) -> None:
    # size = raw.y * raw.y.scale / scale = raw.y * 1e7: one input pixel, ten million output pixels
    error = refused(
        mutated("0.5", setter("outputs", 0, "axes", 2, "scale", value=1e-7)),
        "outputs[0].axes[2].scale",
        "axis scale too small",
    )
    assert error.found == 1e-7


def test_a_0_5_reference_that_leads_to_a_huge_axis(mutated) -> None:
    def change(data: dict[str, Any]) -> None:
        data["inputs"][0]["axes"][2]["size"] = {"min": 4096, "step": 16}
        data["outputs"][0]["axes"][2]["scale"] = 1 / 512  # 512 output pixels per input pixel

    error = refused(
        mutated("0.5", change), "outputs[0].axes[2].size", "smallest size of axis 'y' is too large"
    )
    assert error.found == 4096 * 512


def test_a_smallest_tensor_of_terabytes_is_refused(mutated) -> None:
    def change(data: dict[str, Any]) -> None:
        data["inputs"][0]["axes"][2]["size"] = LIMIT  # each axis allowed, together 2**40 float32
        data["inputs"][0]["axes"][3]["size"] = {"min": LIMIT, "step": 0}

    error = refused(mutated("0.5", change), "inputs[0].axes", "smallest valid input 'raw' is too large")
    assert error.found == "4096.0 GiB"  # 2**20 * 2**20 * 1 channel * 4 bytes
    assert "1048576 x 1048576" in str(error)


def test_a_0_5_output_batch_fixed_at_2_for_an_input_batch_of_1(mutated) -> None:
    def change(data: dict[str, Any]) -> None:
        data["inputs"][0]["axes"][0]["size"] = 1
        data["outputs"][0]["axes"][0]["size"] = 2

    error = refused(mutated("0.5", change), "outputs[0].axes[0].size", "batch fixed at 2")
    assert "input 'raw' takes a batch of 1" in str(error) and error.found == 2


def test_a_0_5_output_batch_fixed_at_2_for_any_input_batch(mutated) -> None:
    refused(
        mutated("0.5", setter("outputs", 0, "axes", 0, "size", value=2)),
        "outputs[0].axes[0].size",
        "input 'raw' takes any batch",
    )


def test_an_output_batch_of_1_for_a_free_input_batch_is_accepted(mutated) -> None:
    described = open_bundle(mutated("0.5", setter("outputs", 0, "axes", 0, "size", value=1)), verify=False)
    assert described.outputs[0].axes[0].size == FixedSize(1)


# --- 0.4 and 0.3 -----------------------------------------------------------------------------------------

# the written 0.4 bundle: inputs[0] bcyx, shape {min: [1, 1, 9, 9], step: [0, 0, 1, 1]}; outputs[0] bcyx,
# shape {reference_tensor: input, scale: [1, 0, 1, 1], offset: [0, 0.5, 0, 0]}, halo [0, 0, 4, 4]
LEGACY_HUGE = [
    (("inputs", 0, "shape", "min", 2), HUGE, "inputs[0].shape.min[2]", "minimum size too large"),
    (("inputs", 0, "shape", "step", 3), HUGE, "inputs[0].shape.step[3]", "step too large"),
    (("outputs", 0, "shape", "offset", 2), HUGE, "outputs[0].shape.offset[2]", "offset (twice it is added"),
    (("outputs", 0, "shape", "offset", 1), HUGE, "outputs[0].shape.offset[1]", "offset (twice it is added"),
    (("outputs", 0, "shape", "scale", 3), 1e12, "outputs[0].shape.scale[3]", "scale (output elements per"),
    (("outputs", 0, "halo", 2), HUGE, "outputs[0].halo[2]", "halo too large"),
]


@pytest.mark.parametrize(("path", "value", "field", "message"), LEGACY_HUGE)
def test_huge_0_4_sizes_are_refused(mutated, path: tuple, value: Any, field: str, message: str) -> None:
    error = refused(mutated("0.4", setter(*path, value=value)), field, message)
    assert error.found == value


def test_a_huge_fixed_0_4_shape_is_refused(mutated) -> None:
    error = refused(
        mutated("0.4", setter("inputs", 0, "shape", value=[1, 1, HUGE, 32])),
        "inputs[0].shape[2]",
        "axis size too large",
    )
    assert error.found == HUGE


def test_a_0_3_reference_that_leads_to_a_huge_axis(mutated) -> None:
    # the written 0.3 bundle: inputs min [1, 1, 9, 9]; outputs reference_input with scale 1 everywhere
    def change(data: dict[str, Any]) -> None:
        data["inputs"][0]["shape"]["min"][2] = 4096
        data["outputs"][0]["shape"]["scale"][2] = 512

    error = refused(mutated("0.3", change), "outputs[0].shape", "smallest size of axis 'y' is too large")
    assert error.found == 4096 * 512


@pytest.mark.parametrize("scale", [-1.0, ".inf", "-inf"])
def test_a_negative_or_infinite_0_4_scale_is_refused(mutated, scale: Any) -> None:
    refused(
        mutated("0.4", setter("outputs", 0, "shape", "scale", 2, value=scale)),
        "outputs[0].shape.scale[2]",
        "scale must be a finite number >= 0",
    )


def test_a_0_4_scale_of_0_with_an_offset_is_the_zoo_way_of_a_new_axis(mutated) -> None:
    """0.4 states an axis its reference lacks as scale 0 and size 2 * offset: StarDist's 33 rays are
    ``scale: [1.0, 1.0, 1.0, 0.0], offset: [0.0, 0.0, 0.0, 16.5]`` (spec-bioimage-io,
    example_descriptions/models/stardist_example_model/v0_4.bioimageio.yaml). That stays accepted; scale 0
    with no whole positive size is refused."""
    described = open_bundle(
        mutated("0.4", setter("outputs", 0, "shape", "offset", 1, value=16.5)), verify=False
    )
    assert described.outputs[0].axes[1].size == FixedSize(33)
    assert described.outputs[0].axes[2].size == ReferenceSize("input", "y", 1.0, 0.0)
    refused(
        mutated("0.4", setter("outputs", 0, "shape", "offset", 1, value=0)),
        "outputs[0].shape.scale[1]",
        "scale 0 needs an offset",
    )


def test_a_0_4_output_batch_fixed_at_2_for_an_input_batch_of_1(mutated) -> None:
    error = refused(
        mutated("0.4", setter("outputs", 0, "shape", value=[2, 1, 32, 32])),
        "outputs[0].shape",
        "batch fixed at 2",
    )
    assert "input 'input' takes a batch of 1" in str(error)


def test_a_0_4_batch_of_2_in_and_out_is_accepted(mutated) -> None:
    def change(data: dict[str, Any]) -> None:
        data["inputs"][0]["shape"] = [2, 1, 32, 32]
        data["outputs"][0]["shape"] = [2, 1, 32, 32]

    described = open_bundle(mutated("0.4", change), verify=False)
    assert described.outputs[0].axes[0].size == FixedSize(2) == described.inputs[0].axes[0].size
