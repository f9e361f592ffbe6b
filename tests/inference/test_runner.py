"""The tiled runner with real (numpy) networks: tiled results equal the whole-image result when the
receptive field fits in the halo; loops over time/Z/batch; 3-D models; batching; blending; other sizes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from deepij.bundle.description import FixedSize, ReferenceSize
from deepij.errors import OutputShapeError, TilingError
from deepij.inference.runner import TiledRun, cut_tile, run_tiled
from deepij.inference.tiling import analyse_tiling
from support.numpy_nets import ConvSpec, NumpyConvBackend, conv_description, whole_image_reference

RNG = np.random.default_rng(7)


def image(*shape: int) -> np.ndarray:
    return RNG.random(shape, dtype=np.float32)


def run(spec, description, data, dims, tile=None, mode="deepimagej", batch_size=1):
    backend = NumpyConvBackend(description, spec)
    tiling = analyse_tiling(description)
    sample = {d: n for d, n in zip(dims, data.shape, strict=True) if d in description.inputs[0].axes_str}
    sample.pop("b", None)
    plan = tiling.plan({"raw": sample}, tile=tile, mode=mode)
    out = run_tiled(backend, plan, {"raw": xr.DataArray(data, dims=dims)}, batch_size=batch_size)["out"]
    return out, plan, backend


@settings(max_examples=25, deadline=None)
@given(
    kernels=st.lists(st.sampled_from([1, 3, 5]), min_size=1, max_size=3),
    y=st.integers(5, 90),
    x=st.integers(5, 90),
    k=st.integers(0, 6),
    mode=st.sampled_from(["deepimagej-readback", "blend", "deepimagej"]),
)
def test_tiled_equals_whole_image_when_the_receptive_field_fits_the_halo(kernels, y, x, k, mode):
    spec = ConvSpec(kernel_sizes=tuple(kernels), hidden=2)
    description = conv_description(spec, step=4)
    tiling = analyse_tiling(description)
    pad = tiling.pads["y"]
    tile = tiling.smallest_valid("y", 2 * pad + 1) + 4 * k
    if mode == "deepimagej-readback" and tile - 2 * pad >= min(y, x):
        mode = "deepimagej"  # one tile along an axis: deepImageJ's one-pixel shift is tested on its own
    data = image(1, 1, y, x)
    out, _, _ = run(spec, description, data, ("b", "c", "y", "x"), tile=tile, mode=mode)
    reference = whole_image_reference(spec, data[0], pad)
    assert out.dims == ("b", "c", "y", "x")
    np.testing.assert_allclose(out.values[0], reference, atol=2e-5)


def test_deepimagej_one_pixel_shift_only_when_asked_for():
    # A 1x1 convolution (w * x): the 5x7 image sits at (2, 1) in an 8x8 tile; deepImageJ reads from (1, 0).
    spec = ConvSpec(kernel_sizes=(1,))
    description = conv_description(spec, min_size=8, step=8)
    data = image(1, 1, 5, 7)
    w = float(spec.weights()[0].ravel()[0])
    shifted, plan, _ = run(spec, description, data, ("b", "c", "y", "x"), tile=8, mode="deepimagej-readback")
    # Margins 3 (y) and 1 (x) are odd: both axes read one pixel early, i.e. from image row/column -1.
    assert plan.grids[0].read == (1,) and plan.grids[1].read == (0,)
    rows, cols = [1, 0, 1, 2, 3], [1, 0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(shifted.values[0, 0], w * data[0, 0][np.ix_(rows, cols)], rtol=1e-6)
    default, _, _ = run(spec, description, data, ("b", "c", "y", "x"), tile=8)
    np.testing.assert_allclose(default.values[0, 0], w * data[0, 0], rtol=1e-6)


@pytest.mark.parametrize("scale", [2.0, 0.5])
def test_other_output_sizes(scale):
    spec = ConvSpec(kernel_sizes=(3, 3), scale=scale)
    description = conv_description(spec, min_size=8, step=8)
    data = image(1, 1, 60, 44)
    out, plan, _ = run(spec, description, data, ("b", "c", "y", "x"), tile=24)
    assert plan.n_tiles > 1
    assert out.shape == (1, 1, int(60 * scale), int(44 * scale))
    reference = whole_image_reference(spec, data[0], analyse_tiling(description).pads["y"])
    np.testing.assert_allclose(out.values[0], reference, atol=2e-5)


def test_valid_convolutions_with_negative_offset():
    spec = ConvSpec(kernel_sizes=(3, 5), padding="valid")
    description = conv_description(spec, min_size=8, step=2, halo=0)
    data = image(1, 1, 50, 41)
    out, plan, _ = run(spec, description, data, ("b", "c", "y", "x"), tile=20)
    assert plan.grids[0].pad == 3 and plan.n_tiles > 1
    np.testing.assert_allclose(out.values[0], whole_image_reference(spec, data[0], 3), atol=2e-5)


def test_output_channels_absent_from_the_input():
    spec = ConvSpec(kernel_sizes=(3,), out_channels=3)
    description = conv_description(spec, input_axes="byx", output_axes="bcyx")
    data = image(1, 40, 30)
    out, _, _ = run(spec, description, data, ("b", "y", "x"), tile=16)
    assert out.dims == ("b", "c", "y", "x") and out.shape == (1, 3, 40, 30)
    np.testing.assert_allclose(out.values[0], whole_image_reference(spec, data, 1), atol=2e-5)


def test_three_d_model_on_a_stack():
    spec = ConvSpec(kernel_sizes=(3, 3), ndim=3, hidden=2)
    description = conv_description(spec, input_axes="bczyx", min_size=6, step=2)
    data = image(1, 1, 13, 20, 17)
    out, plan, _ = run(spec, description, data, ("b", "c", "z", "y", "x"), tile={"z": 10, "y": 12, "x": 12})
    assert plan.axes == "zyx" and plan.n_tiles == 3 * 3 * 3
    np.testing.assert_allclose(out.values[0], whole_image_reference(spec, data[0], 2), atol=2e-5)


def test_two_d_model_loops_over_time_and_z():
    spec = ConvSpec(kernel_sizes=(3,))
    description = conv_description(spec, input_axes="cyx")
    data = image(3, 2, 1, 24, 20)  # t, z, c, y, x
    out, plan, backend = run(spec, description, data, ("t", "z", "c", "y", "x"), tile=12)
    assert out.dims == ("t", "z", "c", "y", "x")
    assert len(backend.calls) == 3 * 2 * plan.n_tiles
    for t in range(3):
        for z in range(2):
            reference = whole_image_reference(spec, data[t, z], 1)
            np.testing.assert_allclose(out.values[t, z], reference, atol=2e-5)


def test_batch_of_images_and_tiles_per_forward_pass():
    spec = ConvSpec(kernel_sizes=(3, 3))
    description = conv_description(spec, batch=None)
    data = image(2, 1, 30, 30)
    one, plan, single = run(spec, description, data, ("b", "c", "y", "x"), tile=16)
    many, _, batched = run(spec, description, data, ("b", "c", "y", "x"), tile=16, batch_size=3)
    assert len(single.calls) == 2 * plan.n_tiles
    assert len(batched.calls) == -(-2 * plan.n_tiles // 3) and batched.calls[0][0] == 3
    np.testing.assert_allclose(one.values, many.values, atol=1e-6)
    for b in range(2):
        np.testing.assert_allclose(many.values[b], whole_image_reference(spec, data[b], 2), atol=2e-5)


def test_fixed_batch_axis_is_filled_up():
    spec = ConvSpec(kernel_sizes=(3,))
    description = conv_description(spec, batch=4)
    data = image(1, 1, 20, 20)
    out, plan, backend = run(spec, description, data, ("b", "c", "y", "x"), tile=12, batch_size=1)
    assert all(shape[0] == 4 for shape in backend.calls)
    assert len(backend.calls) == -(-plan.n_tiles // 4)
    np.testing.assert_allclose(out.values[0], whole_image_reference(spec, data[0], 1), atol=2e-5)


def test_blend_mode_hides_seams_of_a_too_small_halo():
    # The declared halo (1) is smaller than the receptive radius (4): tiles differ from the whole image
    # at seams; blending overlapping tiles brings the result closer.
    spec = ConvSpec(kernel_sizes=(3, 3, 3, 3), hidden=2)
    description = conv_description(spec, halo=1, min_size=4, step=2)
    data = image(1, 1, 64, 64)
    reference = whole_image_reference(spec, data[0], 4)
    plain, _, _ = run(spec, description, data, ("b", "c", "y", "x"), tile=20)
    blended, _, _ = run(spec, description, data, ("b", "c", "y", "x"), tile=20, mode="blend")
    assert np.abs(blended.values[0] - reference).mean() < np.abs(plain.values[0] - reference).mean()


def test_untileable_model_runs_once_and_crops():
    spec = ConvSpec(kernel_sizes=(3,))
    description = conv_description(spec, allow_tiling=False, min_size=16, step=16)
    data = image(1, 1, 37, 21)
    out, plan, backend = run(spec, description, data, ("b", "c", "y", "x"))
    assert plan.n_tiles == 1 and backend.calls == [(1, 1, 48, 32)]
    np.testing.assert_allclose(out.values[0], whole_image_reference(spec, data[0], 1), atol=2e-5)


def test_cut_tile_mirrors_only_past_the_borders():
    spec = ConvSpec(kernel_sizes=(3,))
    description = conv_description(spec, input_axes="yx", min_size=4, step=1)
    plan = analyse_tiling(description).plan({"raw": {"y": 6, "x": 5}}, tile=4)
    sample = np.arange(30, dtype=np.float32).reshape(6, 5)
    first = next(plan.tiles())
    expected = np.pad(sample, 1, mode="reflect")[:4, :4]
    np.testing.assert_array_equal(cut_tile(sample, "yx", plan, first), expected)


def test_runner_reports_a_network_that_breaks_its_description():
    spec = ConvSpec(kernel_sizes=(3,), padding="valid")  # gives 2 pixels less than the description says
    description = conv_description(ConvSpec(kernel_sizes=(3,)), min_size=4)
    backend = NumpyConvBackend(description, spec)
    plan = analyse_tiling(description).plan({"raw": {"c": 1, "y": 20, "x": 20}}, tile=12)
    data = xr.DataArray(image(1, 1, 20, 20), dims=("b", "c", "y", "x"))
    with pytest.raises(
        OutputShapeError,
        match=r"output 'out' axis y: the network gave 10 but the description "
        r"declares 12 \(input y 12 \* 1 \+0\)",
    ):
        run_tiled(backend, plan, {"raw": data})


def _with_output_axis(description, letter, **changes):
    out = description.outputs[0]
    axes = tuple(replace(a, **changes) if a.id == letter else a for a in out.axes)
    return replace(description, outputs=(replace(out, axes=axes),))


def test_declared_output_offset_the_network_does_not_have_is_refused():
    # Declared raw.y - 16 (valid convolutions) while the network keeps the size: reading the tile result
    # 8 pixels in would shift the whole output. Every pass is checked, so it never gets that far.
    spec = ConvSpec(kernel_sizes=(3,))
    description = conv_description(spec, min_size=4)
    declared = _with_output_axis(description, "y", size=ReferenceSize("raw", "y", 1.0, -16), halo=0)
    plan = analyse_tiling(declared).plan({"raw": {"c": 1, "y": 40, "x": 40}}, tile=32)
    data = xr.DataArray(image(1, 1, 40, 40), dims=tuple("bcyx"))
    with pytest.raises(
        OutputShapeError, match=r"axis y: the network gave 32 but the description declares 16"
    ):
        run_tiled(NumpyConvBackend(declared, spec), plan, {"raw": data})


def test_output_channels_and_fixed_sizes_are_checked_on_every_pass():
    spec = ConvSpec(kernel_sizes=(3,), out_channels=3)
    description = conv_description(spec)
    one_channel = _with_output_axis(description, "c", size=FixedSize(1))
    plan = analyse_tiling(one_channel).plan({"raw": {"c": 1, "y": 20, "x": 20}}, tile=12)
    data = xr.DataArray(image(1, 1, 20, 20), dims=tuple("bcyx"))
    with pytest.raises(
        OutputShapeError,
        match=r"output 'out' axis c: the network gave 3 but the description "
        r"declares exactly 1",
    ):
        run_tiled(NumpyConvBackend(one_channel, spec), plan, {"raw": data})
    # A fixed output size that contradicts the input's rule: the model runs once (it cannot be tiled) and
    # the network's 20 rows are not the 64 declared.
    fixed = _with_output_axis(conv_description(ConvSpec(kernel_sizes=(3,))), "y", size=FixedSize(64))
    tiling = analyse_tiling(fixed)
    assert not tiling.tileable
    plan = tiling.plan({"raw": {"c": 1, "y": 20, "x": 20}})
    with pytest.raises(
        OutputShapeError,
        match=r"axis y: the network gave \d+ but the description declares "
        r"exactly 64",
    ):
        run_tiled(NumpyConvBackend(fixed, ConvSpec(kernel_sizes=(3,))), plan, {"raw": data})


def test_batch_axis_given_as_a_reference_size():
    # Real 0.5 files give the input batch as a reference to another tensor's batch; any size goes.
    spec = ConvSpec(kernel_sizes=(3,))
    description = conv_description(spec)
    raw = description.inputs[0]
    axes = tuple(replace(a, size=ReferenceSize("raw", "b")) if a.id == "b" else a for a in raw.axes)
    description = replace(description, inputs=(replace(raw, axes=axes),))
    data = image(2, 1, 20, 20)
    out, plan, backend = run(spec, description, data, tuple("bcyx"), tile=12, batch_size=3)
    assert backend.calls[0][0] == 3 and len(backend.calls) == -(-2 * plan.n_tiles // 3)
    for b in range(2):
        np.testing.assert_allclose(out.values[b], whole_image_reference(spec, data[b], 1), atol=2e-5)


def test_super_resolution_output_with_a_batch_axis_its_input_lacks():
    # deepImageJ 2.x super-resolution bundles: input yxc, output byxc at twice the size; some carry an
    # offset on the output batch axis (it must not make the batch 2 or 3).
    spec = ConvSpec(kernel_sizes=(3, 3), scale=2.0)
    description = conv_description(spec, input_axes="yxc", output_axes="byxc")
    description = _with_output_axis(description, "b", size=ReferenceSize("raw", "b", 1.0, 2.0))
    data = image(30, 26, 1)
    out, plan, _ = run(spec, description, data, ("y", "x", "c"), tile=16)
    assert plan.n_tiles > 1 and out.dims == ("b", "y", "x", "c") and out.shape == (1, 60, 52, 1)
    reference = whole_image_reference(spec, data.transpose(2, 0, 1), 2)
    np.testing.assert_allclose(out.values[0].transpose(2, 0, 1), reference, atol=2e-5)
    # Several images along b of a model input without one: looped, each in its own b of the output.
    stack = image(2, 30, 26, 1)
    looped, _, _ = run(spec, description, stack, ("b", "y", "x", "c"), tile=16)
    assert looped.shape == (2, 60, 52, 1)
    np.testing.assert_allclose(
        looped.values[1].transpose(2, 0, 1),
        whole_image_reference(spec, stack[1].transpose(2, 0, 1), 2),
        atol=2e-5,
    )


def test_output_without_the_inputs_batch_axis_runs_one_tile_per_pass():
    # With several tiles in one pass, an output lacking b could not tell them apart: one tile per pass.
    spec = ConvSpec(kernel_sizes=(3,))
    description = conv_description(spec, batch=None, input_axes="bcyx", output_axes="cyx")
    data = image(1, 1, 24, 24)
    out, plan, backend = run(spec, description, data, tuple("bcyx"), tile=12, batch_size=4)
    assert plan.n_tiles > 1 and all(shape[0] == 1 for shape in backend.calls)
    np.testing.assert_allclose(out.values[0], whole_image_reference(spec, data[0], 1), atol=2e-5)


def test_per_tile_prepare_and_finish_transforms():
    spec = ConvSpec(kernel_sizes=(3,))
    description = conv_description(spec)
    data = image(1, 1, 30, 30)
    plan = analyse_tiling(description).plan({"raw": {"c": 1, "y": 30, "x": 30}}, tile=12)
    seen = []

    def prepare(block, axes, sample):
        seen.append((axes, dict(sample)))
        block *= 2.0
        return block

    def finish(block, axes, sample):
        return block > 0

    out = run_tiled(
        NumpyConvBackend(description, spec),
        plan,
        {"raw": xr.DataArray(data, dims=tuple("bcyx"))},
        prepare={"raw": prepare},
        finish={"out": finish},
    )["out"]
    assert seen[0] == ("cyx", {"b": 0}) and len(seen) == plan.n_tiles
    assert out.dtype == bool
    reference = whole_image_reference(spec, 2 * data[0], 1)
    np.testing.assert_array_equal(out.values[0], reference > 0)
    np.testing.assert_array_equal(data, data * 1)  # the caller's image is never changed in place


def test_input_dims_are_checked():
    spec = ConvSpec(kernel_sizes=(3,))
    description = conv_description(spec)
    backend = NumpyConvBackend(description, spec)
    plan = analyse_tiling(description).plan({"raw": {"c": 1, "y": 20, "x": 20}}, tile=12)
    with pytest.raises(TilingError, match=r"input 'raw': no dims \['c'\]"):
        TiledRun(backend, plan, {"raw": xr.DataArray(image(1, 20, 20), dims=("b", "y", "x"))})
    with pytest.raises(TilingError, match="batch_size: expected a positive integer"):
        TiledRun(backend, plan, {"raw": xr.DataArray(image(1, 1, 20, 20), dims=tuple("bcyx"))}, batch_size=0)
