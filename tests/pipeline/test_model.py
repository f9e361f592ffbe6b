"""``deepij.load(bundle).predict(...)`` end to end, with real bundles and real TorchScript/ONNX models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import deepij
from deepij.bundle.description import AxisSpec, FixedSize, ParameterizedSize, TensorSpec, WeightsEntry
from deepij.errors import (
    ArgumentError,
    ArgumentTypeError,
    BackendError,
    ChecksumError,
    DeepijWarning,
    InputError,
    OutputShapeError,
    SeamWarning,
    TilingError,
)
from deepij.pipeline import Model
from support.bundles import write_bundle_v0_3, write_bundle_v0_4, write_bundle_v0_5
from support.models import (
    describe,
    write_torchscript_convnet,
    write_torchscript_two_heads,
    write_torchscript_two_inputs,
)

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return {
        "0.4": write_bundle_v0_4(root / "b04", weights=("torchscript", "onnx")),
        "0.5": write_bundle_v0_5(root / "b05", weights=("torchscript",)),
    }


@pytest.fixture(scope="module")
def convnet(tmp_path_factory):
    """A TorchScript convnet (receptive radius 4) described with that radius as its halo."""
    folder = tmp_path_factory.mktemp("convnet")
    net = write_torchscript_convnet(folder / "net.pt", kernel_sizes=(3, 5, 3))
    return net, Model(describe(net))


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_bundle_test_input_reproduces_its_test_output(bundles, version):
    bundle = bundles[version]
    model = deepij.load(bundle.folder)
    result = model.predict(np.load(bundle.folder / "test_input.npy"))
    (name,) = result.images
    assert result.images[name].dims == tuple(bundle.output_axes)
    np.testing.assert_allclose(result.images[name].values, bundle.expected_output, atol=1e-4, rtol=1e-3)
    assert result.plan.n_tiles == 1 and result.tables == {}


def test_weights_that_differ_from_their_sha256_run_only_when_trusted(tmp_path):
    bundle = write_bundle_v0_5(tmp_path / "b05", weights=("torchscript",))
    weights = bundle.folder / bundle.weights["torchscript"]
    weights.write_bytes(weights.read_bytes() + b"\0")  # still a loadable zip, but not the published file
    with pytest.raises(ChecksumError, match=weights.name):
        deepij.load(bundle.folder)
    trusted = deepij.load(bundle.folder, verify=False)
    (output,) = trusted.predict(bundle.test_input).images.values()
    np.testing.assert_allclose(output.values, bundle.expected_output, atol=1e-4, rtol=1e-3)


def test_tiled_prediction_keeps_whole_image_statistics(bundles):
    # zero_mean_unit_variance is computed on the whole image before tiling: tiled and one-pass results agree.
    # The default tiles lie inside the image (none padded), so they agree at the border too; deepImageJ's
    # mirror-padded tiles agree away from it (where the network's zero padding meets the mirrored pixels).
    bundle = bundles["0.4"]
    model = deepij.load(bundle.folder)
    whole = model.predict(bundle.test_input).images["output"].values
    tiled = model.predict(bundle.test_input, tile=16, weights_format="torchscript", runtime="native")
    # 32 pixels in tiles of 16 keeping 4 per side: starts 0, 8 and 16 along each axis
    assert tiled.plan.n_tiles == 9 and tiled.weights_format == "torchscript"
    np.testing.assert_allclose(tiled.images["output"].values, whole, atol=1e-5)
    mirrored = model.predict(bundle.test_input, tile=16, tiling="deepimagej", runtime="native")
    assert mirrored.plan.n_tiles == 16
    halo = model.tiling.pads["y"]
    inner = (0, 0, slice(halo, -halo), slice(halo, -halo))
    np.testing.assert_allclose(mirrored.images["output"].values[inner], whole[inner], atol=1e-5)


def test_deepimagej_bundle_without_its_macros(tmp_path):
    # A 0.3 bundle's processing is ImageJ macros; processing="none" runs the bare network.
    bundle = write_bundle_v0_3(tmp_path / "b03")
    model = deepij.load(bundle.folder)
    x = bundle.test_input
    scaled = (x - x.min()) / (x.max() - x.min())
    result = model.predict(scaled, processing="none", tile="image")
    np.testing.assert_allclose(result.images["output"].values * 2, bundle.expected_output, atol=1e-4)


def test_tiles_equal_the_whole_padded_image_when_the_halo_covers_the_receptive_field(convnet):
    _, model = convnet
    image = RNG.random((1, 1, 70, 57), dtype=np.float32)
    whole = model.predict(image, tile="whole", runtime="native")
    as_is = model.predict(image, tile="image", runtime="native")
    for tile in (24, (40, 24)):
        # deepImageJ's tiles are the mirror-padded whole image cut up; the default ones the image as it is
        mirrored = model.predict(image, tile=tile, tiling="deepimagej", runtime="native")
        assert mirrored.plan.n_tiles > 1
        np.testing.assert_allclose(mirrored.images["output"].values, whole.images["output"].values, atol=1e-5)
        inside = model.predict(image, tile=tile, runtime="native")
        assert inside.plan.n_tiles > 1 and inside.plan.mode == "unpadded"
        np.testing.assert_allclose(inside.images["output"].values, as_is.images["output"].values, atol=1e-5)
    blended = model.predict(image, tile=32, tiling="blend", runtime="native")
    np.testing.assert_allclose(blended.images["output"].values, whole.images["output"].values, atol=1e-5)


def test_backend_is_loaded_once_and_reused(convnet):
    _, model = convnet
    image = RNG.random((1, 1, 20, 20), dtype=np.float32)
    model.predict(image, runtime="native")
    first = model.backend(runtime="native")
    model.predict(image * 2, tile=12, runtime="native")
    assert model.backend(runtime="native") is first
    assert len([k for k in model._backends if k[2] == "native"]) == 1


def test_inputs_without_batch_with_named_axes_and_looped_dims(convnet):
    _, model = convnet
    image = RNG.random((3, 20, 24), dtype=np.float32)  # a Z stack for a 2-D model
    stack = model.predict(image, axes="zyx", runtime="native")
    assert stack.images["output"].dims == ("z", "b", "c", "y", "x")
    for z in range(3):
        single = model.predict(image[z], axes="yx", runtime="native").images["output"]
        np.testing.assert_allclose(stack.images["output"].values[z], single.values, atol=1e-6)
    named = model.predict(xr.DataArray(image[0][None], dims=("c", "y", "x")), runtime="native")
    assert named.images["output"].shape == (1, 1, 20, 24)
    no_batch = model.predict(image[:1], runtime="native")  # (c, y, x): the input's axes without b
    np.testing.assert_allclose(no_batch.images["output"].values, named.images["output"].values)


def test_bad_images_and_arguments_get_clear_errors(convnet):
    _, model = convnet
    with pytest.raises(InputError, match=r"shape \(4, 4, 4, 4, 4\) does not fit input 'input'"):
        model.predict(np.zeros((4, 4, 4, 4, 4), dtype=np.float32))
    with pytest.raises(TilingError, match=r"tile: y=8 is not a valid size for input 'input'"):
        model.predict(np.zeros((1, 1, 40, 40), np.float32), tile={"y": 8, "x": 16})
    modes = r"\['auto', 'macros', 'spec', 'none'\]"
    with pytest.raises(ArgumentError, match=rf"processing: unknown value 'imagej'.*{modes}"):
        model.predict(np.zeros((1, 1, 20, 20), np.float32), processing="imagej")
    with pytest.raises(ArgumentError, match="max_memory: cannot read 'lots'"):
        model.predict(np.zeros((1, 1, 20, 20), np.float32), max_memory="lots")
    with pytest.raises(InputError, match=r"needs axis 'x'"):
        model.predict(np.zeros((20,), np.float32), axes="y")


def test_max_memory_caps_the_tile(convnet):
    _, model = convnet
    image = RNG.random((1, 1, 600, 600), dtype=np.float32)
    free = model.predict(image, runtime="native")
    capped = model.predict(image, runtime="native", max_memory="20MB")
    assert free.plan.n_tiles == 1 and free.plan.tile == {"y": 600, "x": 600}  # fits: one unpadded pass
    assert capped.plan.n_tiles > 1 and max(capped.plan.tile.values()) < 600
    # the capped run's tiles lie inside the image: it gives what the one pass gives (the halo covers)
    np.testing.assert_allclose(capped.images["output"].values, free.images["output"].values, atol=1e-5)
    with pytest.raises(TilingError, match=r"max_memory='1MB' cannot hold this run"):
        model.predict(image, runtime="native", max_memory="1MB")


def test_two_outputs_of_different_sizes(tmp_path):
    net = write_torchscript_two_heads(tmp_path / "heads.pt")
    model = Model(describe(net))
    image = RNG.random((1, 1, 48, 40), dtype=np.float32)
    for tiling, whole in (("deepimagej", "whole"), ("unpadded", "image")):
        one_pass = model.predict(image, tile=whole, runtime="native")
        tiled = model.predict(image, tile=16, tiling=tiling, runtime="native")
        assert tiled.images["classes"].shape == (1, 2, 24, 20) and tiled.plan.n_tiles > 1
        for name in ("mask", "classes"):
            np.testing.assert_allclose(tiled.images[name].values, one_pass.images[name].values, atol=1e-5)


def test_two_inputs_by_name(tmp_path):
    net = write_torchscript_two_inputs(tmp_path / "two.pt")
    model = Model(describe(net))
    image = RNG.random((1, 1, 24, 24), dtype=np.float32)
    guide = RNG.random((1, 2, 24, 24), dtype=np.float32)
    result = model.predict({"image": image, "guide": guide}, tile="image", runtime="native")
    expected = net.forward(image, guide)[0]
    np.testing.assert_allclose(result.images["output"].values, expected, atol=1e-5)
    with pytest.raises(InputError, match="expected a mapping from input name"):
        model.predict(image)


def _write_table_model(path: Path) -> None:
    import torch

    class Stats(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.mean((2, 3)), x.amax((2, 3)), x.amin((2, 3))], dim=1)

    torch.jit.script(Stats()).save(str(path))


def test_table_outputs_become_dataframes(tmp_path):
    _write_table_model(tmp_path / "stats.pt")
    spatial = ParameterizedSize(1, 1)
    description = describe(write_torchscript_convnet(tmp_path / "unused.pt"))
    inputs = (
        TensorSpec(
            "image",
            (AxisSpec("b"), AxisSpec("c", FixedSize(2)), AxisSpec("y", spatial), AxisSpec("x", spatial)),
        ),
    )
    outputs = (
        TensorSpec(
            "stats",
            (
                AxisSpec("b"),
                AxisSpec("i", FixedSize(3)),
                AxisSpec("c", FixedSize(2), channel_names=("red", "green")),
            ),
        ),
    )
    from dataclasses import replace

    description = replace(
        description,
        inputs=inputs,
        outputs=outputs,
        weights={"torchscript": WeightsEntry("torchscript", "stats.pt")},
    )
    model = Model(description)
    image = RNG.random((1, 2, 30, 20), dtype=np.float32)
    result = model.predict(image, runtime="native")
    table = result.tables["stats"]
    assert list(table.columns) == ["red", "green"] and len(table) == 3
    np.testing.assert_allclose(
        table["green"], [image[0, 1].mean(), image[0, 1].max(), image[0, 1].min()], rtol=1e-5
    )
    assert not model.tiling.tileable and result.images == {}


def test_processing_modes_apply_the_spec_ops_or_nothing(bundles):
    # The 0.4 bundle normalises (zero mean, unit variance) as a spec op; its network is bundle.model.
    bundle = bundles["0.4"]
    model = deepij.load(bundle.folder)
    x = bundle.test_input
    spec = model.predict(x, processing="spec", weights_format="torchscript", runtime="native")
    auto = model.predict(x, processing="auto", weights_format="torchscript", runtime="native")
    bare = model.predict(x, processing="none", weights_format="torchscript", runtime="native")
    np.testing.assert_allclose(spec.images["output"].values, bundle.expected_output, atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(auto.images["output"].values, spec.images["output"].values, atol=1e-6)
    np.testing.assert_allclose(bare.images["output"].values, bundle.model.forward(x)[0], atol=1e-4)


def test_three_d_torchscript_model_tiled_in_z_y_x(tmp_path):
    net = write_torchscript_convnet(tmp_path / "net3d.pt", kernel_sizes=(3, 3), ndim=3)
    model = Model(describe(net))
    assert model.tiling.axes == "zyx" and model.tiling.pads == {"z": 2, "y": 2, "x": 2}
    image = RNG.random((1, 1, 12, 30, 26), dtype=np.float32)
    whole = model.predict(image, tile="whole", runtime="native")
    tiled = model.predict(image, tile={"z": 8, "y": 16, "x": 16}, tiling="deepimagej", runtime="native")
    assert tiled.plan.n_tiles == 3 * 3 * 3
    np.testing.assert_allclose(tiled.images["output"].values, whole.images["output"].values, atol=1e-5)
    # inside the image: z 0, 4 (2 tiles); y 0, 12, 14 and x 0, 10 (the last ones pushed to the border)
    inside = model.predict(image, tile={"z": 8, "y": 16, "x": 16}, runtime="native")
    assert inside.plan.n_tiles == 2 * 3 * 2
    as_is = model.predict(image, tile="image", runtime="native")
    np.testing.assert_allclose(inside.images["output"].values, as_is.images["output"].values, atol=1e-5)


# --- hardening ---------------------------------------------------------------------------------------------


def _fixed_size(description, size):
    """The description with its input's spatial axes fixed at ``size`` (as real bundles declare them)."""
    from dataclasses import replace

    raw = description.inputs[0]
    axes = tuple(replace(a, size=FixedSize(size)) if a.id in "yx" else a for a in raw.axes)
    return replace(description, inputs=(replace(raw, axes=axes),))


@pytest.fixture(scope="module")
def wide_convnet(tmp_path_factory):
    """A TorchScript convnet of receptive radius 8 (four 5x5 convolutions)."""
    folder = tmp_path_factory.mktemp("wide")
    return write_torchscript_convnet(folder / "net.pt", kernel_sizes=(5, 5, 5, 5), hidden=4)


@pytest.mark.parametrize("shape", [(200, 150), (40, 40)])
def test_fixed_size_model_with_a_halo_tiles_other_image_sizes(wide_convnet, shape):
    # A fixed 64x64 input with halo 8 (as the zoo's nuclei U-Net's 512): larger images are tiled at 64,
    # smaller ones mirrored up to 64; both equal the network on the whole mirror-padded image.
    net = wide_convnet
    model = Model(_fixed_size(describe(net), 64))
    image = RNG.random((1, 1, *shape), dtype=np.float32)
    result = model.predict(image, runtime="native", processing="none")
    assert result.plan.tile == {"y": 64, "x": 64}
    assert result.plan.n_tiles == (5 * 4 if shape == (200, 150) else 1)
    padded = np.pad(image, ((0, 0), (0, 0), (8, 8), (8, 8)), mode="reflect")
    reference = net.forward(padded)[0][:, :, 8:-8, 8:-8]
    np.testing.assert_allclose(result.images["output"].values, reference, atol=1e-5)


def test_default_tiling_never_shifts_and_the_readback_does_on_request(tmp_path):
    # A pointwise network (1x1 convolutions) on a 13x11 image in one 16x16 tile: margins 3 and 5 are odd.
    net = write_torchscript_convnet(tmp_path / "pointwise.pt", kernel_sizes=(1, 1))
    description = describe(net)
    from dataclasses import replace

    raw = description.inputs[0]
    axes = tuple(replace(a, size=ParameterizedSize(16, 16)) if a.id in "yx" else a for a in raw.axes)
    model = Model(replace(description, inputs=(replace(raw, axes=axes),)))
    image = RNG.random((1, 1, 13, 11), dtype=np.float32)
    pointwise = net.forward(image)[0]
    default = model.predict(image, tile=16, runtime="native").images["output"].values
    np.testing.assert_allclose(default, pointwise, atol=1e-6)
    shifted = model.predict(image, tile=16, tiling="deepimagej-readback", runtime="native")
    # deepImageJ reads from one pixel before the image: rows [1, 0, 1, ...], columns [1, 0, 1, ...].
    rows, cols = [1, *range(12)], [1, *range(10)]
    np.testing.assert_allclose(
        shifted.images["output"].values, pointwise[:, :, rows][:, :, :, cols], atol=1e-6
    )
    assert np.abs(shifted.images["output"].values - pointwise).max() > 0.01


@pytest.fixture(scope="module")
def valid_convnet(tmp_path_factory):
    """A TorchScript network of two 3x3 valid (unpadded) convolutions: its output is 2 pixels smaller on
    each side (offset -4), which covers its receptive radius 2 (declared halo 0)."""
    folder = tmp_path_factory.mktemp("valid")
    net = write_torchscript_convnet(folder / "net.pt", kernel_sizes=(3, 3), padding="valid")
    assert (net.offset, net.halo) == (-4, 2)
    return net, Model(describe(net, output_halo=0))


def test_valid_convolutions_on_the_image_as_it_is_give_the_smaller_output(valid_convnet):
    # tile="image": one pass on the image unpadded, as the zoo's tools run it; the output is what the eager
    # torch module gives, 4 pixels smaller than the image along y and x.
    net, model = valid_convnet
    image = RNG.random((1, 1, 37, 30), dtype=np.float32)
    result = model.predict(image, tile="image", runtime="native")
    [eager] = net.forward(image)
    assert eager.shape == (1, 1, 33, 26)
    assert result.images["output"].shape == eager.shape and result.plan.n_tiles == 1
    np.testing.assert_allclose(result.images["output"].values, eager, atol=1e-6)


@pytest.mark.parametrize("tile", [None, "whole", "suggested", 12, (16, 9)])
def test_valid_convolutions_tiled_cover_the_image_mirror_padded(valid_convnet, tile):
    # Any other tile: the image mirror-padded by the 2 pixels the network crops (deepImageJ's mirror, no
    # repeated edge pixel: numpy's "reflect"), an output of the image's size.
    import warnings

    net, model = valid_convnet
    image = RNG.random((1, 1, 37, 30), dtype=np.float32)
    [mirrored] = net.forward(np.pad(image, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect"))
    assert mirrored.shape == image.shape
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeamWarning)  # the offset covers the receptive field
        result = model.predict(image, tile=tile, runtime="native")
    assert result.plan.n_tiles > 1 or tile in (None, "whole")
    np.testing.assert_allclose(result.images["output"].values, mirrored, atol=1e-6)
    if isinstance(tile, int):
        blended = model.predict(image, tile=tile, tiling="blend", runtime="native")
        np.testing.assert_allclose(blended.images["output"].values, mirrored, atol=1e-6)


def test_valid_convolutions_mask_the_output_pixel_a_missing_input_pixel_becomes(valid_convnet):
    # non_finite="ignore" on the image as it is: input pixel (y, x) is output pixel (y - 2, x - 2).
    _, model = valid_convnet
    image = RNG.random((1, 1, 20, 24), dtype=np.float32)
    image[0, 0, 9, 6] = np.nan
    result = model.predict(image, tile="image", non_finite="ignore", runtime="native")
    missing = np.argwhere(np.isnan(result.images["output"].values))
    assert missing.tolist() == [[0, 0, 7, 4]]


def test_declared_halo_smaller_than_the_receptive_field_is_measured_and_warned(tmp_path):
    net = write_torchscript_convnet(tmp_path / "net.pt", kernel_sizes=(3, 5, 3))  # radius 4
    small_halo = Model(describe(net, output_halo=1))
    image = RNG.random((1, 1, 60, 60), dtype=np.float32)
    with pytest.warns(SeamWarning, match=r"looks \{'y': 4, 'x': 4\} pixels far but its tiles keep only"):
        tiled = small_halo.predict(image, tile=24, tiling="deepimagej", runtime="native")
    assert "receptive radius measured: y: 4, x: 4 pixels (a lower bound: the quick probe" in " ".join(
        tiled.notes
    )
    whole = small_halo.predict(image, tile="whole", runtime="native").images["output"].values
    seams = np.abs(tiled.images["output"].values - whole).max()
    # Blending overlaps by the measured radius when no overlap is given: closer to the whole image.
    blended = small_halo.predict(image, tile=24, tiling="blend", runtime="native")
    assert "blending overlap 4 pixels" in " ".join(blended.notes)
    assert np.abs(blended.images["output"].values - whole).max() < seams
    # The halo that covers the radius: no warning, tiles equal the whole image.
    import warnings

    exact = Model(describe(net))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = exact.predict(image, tile=24, tiling="deepimagej", runtime="native")
        inside = exact.predict(image, tile=24, runtime="native")
    padded = exact.predict(image, tile="whole", runtime="native").images["output"].values
    np.testing.assert_allclose(result.images["output"].values, padded, atol=1e-5)
    as_is = exact.predict(image, tile="image", runtime="native").images["output"].values
    np.testing.assert_allclose(inside.images["output"].values, as_is, atol=1e-5)


def test_non_finite_pixels_are_refused_or_left_out(bundles):
    bundle = bundles["0.4"]  # zero mean, unit variance over the whole image, then the network
    model = deepij.load(bundle.folder)
    image = bundle.test_input.copy()
    image[0, 0, 5, 7] = np.nan
    image[0, 0, 20, 3] = np.inf
    with pytest.raises(
        InputError, match=r"2 pixels are NaN or infinite \(the first at (b=0, c=0, )?y=5, x=7, value nan\)"
    ):
        model.predict(image)
    run = {"processing": "spec", "weights_format": "torchscript", "runtime": "native"}
    result = model.predict(image, non_finite="ignore", **run)
    out = result.images["output"].values
    assert np.isnan(out[0, 0, 5, 7]) and np.isnan(out[0, 0, 20, 3]) and np.isfinite(out).sum() == out.size - 2
    # By hand: statistics of the finite pixels, the others run as 0 after normalisation.
    finite = image[np.isfinite(image)].astype(np.float64)
    normalised = ((image - finite.mean()) / (finite.std() + 1e-6)).astype(np.float32)
    normalised[~np.isfinite(image)] = 0.0
    expected = bundle.model.forward(normalised)[0]
    mask = np.isfinite(out)
    np.testing.assert_allclose(out[mask], expected[mask], atol=1e-4)
    # "propagate": as given; one NaN spreads through the whole-image statistics.
    spread = model.predict(image, non_finite="propagate", **run)
    assert np.isnan(spread.images["output"].values).all()


@pytest.mark.parametrize(
    ("image", "pattern"),
    [
        (np.zeros((1, 1, 8, 8), np.complex64), r"complex values \(complex64\) cannot be a model input"),
        (np.full((1, 1, 8, 8), "a"), r"text values"),
        (np.empty((1, 1, 8, 8), object), r"object values"),
        (np.zeros((1, 1, 8, 8), bool), r"a boolean image for input 'input', which takes float32"),
        (np.zeros((1, 1, 0, 8), np.float32), r"the image is empty \(y=0"),
    ],
)
def test_unusable_images_are_refused(convnet, image, pattern):
    _, model = convnet
    with pytest.raises(InputError, match=pattern):
        model.predict(image, runtime="native")


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"tile": "abc"}, ArgumentError, r"tile: unknown value 'abc'"),
        ({"tile": 2.5}, ArgumentTypeError, r"tile: expected an int"),
        ({"batch_size": 0}, ArgumentError, r"batch_size: expected a positive integer"),
        ({"batch_size": "many"}, ArgumentTypeError, r"batch_size: expected a positive integer or 'auto'"),
        ({"processing": "x"}, ArgumentError, r"processing: unknown value 'x'"),
        ({"tiling": "y"}, ArgumentError,
         r"tiling: unknown value 'y'; expected one of \['unpadded', 'deepimagej', "),
        ({"overlap": -1}, ArgumentError, r"overlap: expected a whole number of pixels >= 0, not -1"),
        ({"overlap": 1.5}, ArgumentTypeError, r"overlap: expected a whole number"),
        ({"axes": 5}, ArgumentTypeError, r"axes: expected letters"),
        ({"non_finite": "zero"}, ArgumentError, r"non_finite: unknown value 'zero'"),
        ({"precision": "half"}, ArgumentError, r"precision: unknown value 'half'; expected one of \['float"),
    ],
)
def test_bad_arguments_name_the_argument(convnet, kwargs, error, pattern):
    _, model = convnet
    with pytest.raises(error, match=pattern):
        model.predict(np.zeros((1, 1, 20, 20), np.float32), runtime="native", **kwargs)


def test_load_refuses_unknown_options_by_name(bundles):
    with pytest.raises(
        ArgumentTypeError, match=r"load: unknown option 'tile_size'; expected allow_code, verify"
    ):
        deepij.load(bundles["0.5"].folder, tile_size=256)


def test_prediction_names_the_runtime_that_ran(convnet):
    _, model = convnet
    result = model.predict(np.zeros((1, 1, 20, 20), np.float32), runtime="native")
    assert result.runtime == "torch" and result.weights_format == "torchscript"
    assert not hasattr(result, "engine")


def test_imagej_dims_and_rgb_images_are_mapped(tmp_path):
    net = write_torchscript_convnet(tmp_path / "rgb.pt", kernel_sizes=(3,), in_channels=3)
    model = Model(describe(net))
    pixels = RNG.integers(0, 255, (20, 16, 3), dtype=np.uint8)
    rgb = xr.DataArray(pixels, dims=("row", "col", "ch"), attrs={"rgb": True})
    result = model.predict(rgb, runtime="native", processing="none")
    letters = model.predict(pixels.transpose(2, 0, 1)[None], runtime="native", processing="none")
    np.testing.assert_allclose(result.images["output"].values, letters.images["output"].values, atol=1e-6)


def test_output_shape_contradicting_the_description_is_refused(tmp_path):
    from dataclasses import replace

    net = write_torchscript_convnet(tmp_path / "three.pt", kernel_sizes=(3,), out_channels=3)
    description = describe(net)
    out = description.outputs[0]
    axes = tuple(replace(a, size=FixedSize(1)) if a.id == "c" else a for a in out.axes)
    model = Model(replace(description, outputs=(replace(out, axes=axes),)))
    with pytest.raises(
        OutputShapeError,
        match=r"output 'output' axis c: the network gave 3 but the "
        r"description declares exactly 1",
    ):
        model.predict(RNG.random((1, 1, 20, 20), dtype=np.float32), runtime="native")



def _fixed_onnx_convnet(folder: Path, side: int):
    """A convnet (receptive radius 8) exported to ONNX with every dim fixed to ``side``, as zoo ONNX files
    often are, under a descriptor pinning that size too (as the zoo's nuclei U-Net pins 512)."""
    from support import models, zoo_models

    kw = {"kernel_sizes": (5, 5, 5, 5), "hidden": 4}
    module = models.convnet_module(**kw)
    path = folder / f"fixed{side}.onnx"
    zoo_models._export_fixed(module, path, side)
    written = models._convnet_info(path, "onnx", module, kw)
    return written, zoo_models.fixed_description(written, side)


def _mirror_reference(written, image, halo=8):
    """The network on the image mirror-padded by its halo (= its receptive radius: what exact tiles give)."""
    pad = ((0, 0), (0, 0), (halo, halo), (halo, halo))
    return written.forward(np.pad(image, pad, mode="reflect"))[0][:, :, halo:-halo, halo:-halo]


def test_a_relaxed_graph_is_planned_with_its_own_size_rules(tmp_path, monkeypatch):
    # The graph fixes 512 and so does the descriptor; relaxed (and verified) it takes any size, and tiles
    # are planned with those rules: a 2048^2 image does not run in 512 tiles with mirrored borders (25 of
    # them) but as the image it is: one pass, or (on a CPU, where large passes are slower) fewer, larger
    # tiles inside it, which give the one pass since the halo covers this net's reach.
    monkeypatch.setenv("DEEPIJ_CACHE_DIR", str(tmp_path / "cache"))
    written, description = _fixed_onnx_convnet(tmp_path, 512)
    model = Model(description)
    image = RNG.random((1, 1, 2048, 2048), dtype=np.float32)
    result = model.predict(image, processing="none", runtime="onnxruntime")
    assert any("fixed y=512, x=512 relaxed" in n for n in result.notes)
    assert result.plan.n_tiles < 25 and result.plan.mode == "unpadded"
    np.testing.assert_allclose(result.images["output"].values, written.forward(image)[0], atol=1e-4)
    # a tile size the bundle's descriptor refuses, the relaxed graph takes
    part = image[..., :700, :500]
    explicit = model.predict(part, tile=(400, 300), processing="none", runtime="onnxruntime")
    assert explicit.plan.tile == {"y": 400, "x": 300} and explicit.plan.n_tiles == 4
    np.testing.assert_allclose(explicit.images["output"].values, written.forward(part)[0], atol=1e-4)
    mirrored = model.predict(part, tile=(400, 300), tiling="deepimagej", processing="none",
                             runtime="onnxruntime")
    np.testing.assert_allclose(mirrored.images["output"].values, _mirror_reference(written, part), atol=1e-4)
    with pytest.raises(TilingError, match=r"tile: y=400 is not a valid size"):
        model.tiling.plan({"input": {"c": 1, "y": 700, "x": 500}}, (400, 300))  # the descriptor's rules


def test_a_bad_image_fails_before_any_weights_load(tmp_path, convnet):
    # Weights no framework can load (a file of junk): every image that passes the checks gets to the
    # loading and fails there, so an InputError on a bad image proves the checks ran first.
    net, _ = convnet
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a TorchScript archive")
    weights = {"torchscript": WeightsEntry("torchscript", junk.name)}
    model = Model(describe(net, root=tmp_path, weights=weights))
    image = RNG.random((1, 1, 20, 20), dtype=np.float32)
    with pytest.raises(BackendError, match=r"junk\.pt"):
        model.predict(image)
    bad = image.copy()
    bad[0, 0, 3, 4] = np.nan
    for unusable, pattern in (
        (bad, r"1 pixel is NaN or infinite \(the first at b=0, c=0, y=3, x=4"),
        (image.astype(np.complex64), "complex values"),
        (image[:, :, :0], r"the image is empty"),
        (image[0, 0, 0], r"needs axis 'x'"),
    ):
        with pytest.raises(InputError, match=pattern):
            model.predict(unusable, axes="y" if unusable.ndim == 1 else None)
    assert model._backends == {}


def test_a_memory_cap_makes_the_onnx_engine_hold_memory_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPIJ_CACHE_DIR", str(tmp_path / "cache"))
    written, description = _fixed_onnx_convnet(tmp_path, 64)
    model = Model(description)
    image = RNG.random((1, 1, 300, 200), dtype=np.float32)
    run = {"processing": "none", "runtime": "onnxruntime", "tile": (64, 64)}
    capped = model.predict(image, max_memory="30MB", **run)
    backend = model.backend(runtime="onnxruntime")
    assert backend.exact_memory is True and capped.plan.n_tiles > 1
    free = model.predict(image, **run)
    assert model.backend(runtime="onnxruntime") is backend and backend.exact_memory is False
    # relaxed, the graph takes the image's size: tiles inside it give the one unpadded pass
    reference = written.forward(image)[0]
    np.testing.assert_allclose(capped.images["output"].values, reference, atol=1e-4)
    np.testing.assert_allclose(free.images["output"].values, reference, atol=1e-4)


def test_float16_asked_on_the_cpu_runs_float32_and_says_so(convnet):
    net, model = convnet
    image = RNG.random((1, 1, 20, 20), dtype=np.float32)
    with pytest.warns(DeepijWarning, match=r"precision='float16' refused, float32 runs"):
        result = model.predict(image, runtime="native", precision="float16", device="cpu")
    assert any("precision='float16' refused" in n for n in result.notes)
    np.testing.assert_allclose(result.images["output"].values, net.forward(image)[0], atol=1e-5)
