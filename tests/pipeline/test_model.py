"""``deepij.load(bundle).predict(...)`` end to end, with real bundles and real TorchScript/ONNX models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import deepij
from deepij.bundle.description import AxisSpec, FixedSize, ParameterizedSize, TensorSpec, WeightsEntry
from deepij.errors import ArgumentError, ChecksumError, InputError, TilingError
from deepij.pipeline import Model
from deepij.pipeline.steps import MODES
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
    # zero_mean_unit_variance is computed on the whole image before tiling: tiled and one-pass results agree
    # away from the borders (where the network's zero padding meets the tiles' mirror padding).
    bundle = bundles["0.4"]
    model = deepij.load(bundle.folder)
    whole = model.predict(bundle.test_input).images["output"].values
    tiled = model.predict(bundle.test_input, tile=16, weights_format="torchscript", runtime="native")
    assert tiled.plan.n_tiles == 16 and tiled.weights_format == "torchscript"
    halo = model.tiling.pads["y"]
    inner = (0, 0, slice(halo, -halo), slice(halo, -halo))
    np.testing.assert_allclose(tiled.images["output"].values[inner], whole[inner], atol=1e-5)


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
    for tile in (24, (40, 24)):
        tiled = model.predict(image, tile=tile, runtime="native")
        assert tiled.plan.n_tiles > 1
        np.testing.assert_allclose(tiled.images["output"].values, whole.images["output"].values, atol=1e-5)
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
    padded = model.predict(image, runtime="native", tile="whole")  # mirror padding, as the tiles have
    np.testing.assert_allclose(capped.images["output"].values, padded.images["output"].values, atol=1e-5)
    with pytest.raises(TilingError, match=r"max_memory='1MB' cannot hold this run"):
        model.predict(image, runtime="native", max_memory="1MB")


def test_two_outputs_of_different_sizes(tmp_path):
    net = write_torchscript_two_heads(tmp_path / "heads.pt")
    model = Model(describe(net))
    image = RNG.random((1, 1, 48, 40), dtype=np.float32)
    whole = model.predict(image, tile="whole", runtime="native")
    tiled = model.predict(image, tile=16, runtime="native")
    assert tiled.images["classes"].shape == (1, 2, 24, 20) and tiled.plan.n_tiles > 1
    for name in ("mask", "classes"):
        np.testing.assert_allclose(tiled.images[name].values, whole.images[name].values, atol=1e-5)


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


def test_processing_modes():
    assert MODES == ("auto", "macros", "spec", "none")


def test_three_d_torchscript_model_tiled_in_z_y_x(tmp_path):
    net = write_torchscript_convnet(tmp_path / "net3d.pt", kernel_sizes=(3, 3), ndim=3)
    model = Model(describe(net))
    assert model.tiling.axes == "zyx" and model.tiling.pads == {"z": 2, "y": 2, "x": 2}
    image = RNG.random((1, 1, 12, 30, 26), dtype=np.float32)
    whole = model.predict(image, tile="whole", runtime="native")
    tiled = model.predict(image, tile={"z": 8, "y": 16, "x": 16}, runtime="native")
    assert tiled.plan.n_tiles == 3 * 3 * 3
    np.testing.assert_allclose(tiled.images["output"].values, whole.images["output"].values, atol=1e-5)
