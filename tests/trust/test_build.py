"""deepij.build: bundles from trained networks, with min/step/halo measured on the network.

Expected values come from the networks' architectures (tests/support: a convnet's receptive radius is the
sum of its kernels' half widths; a U-Net with 2 poolings takes multiples of 4 and sees 23 pixels, the
support of its linearised network), from the networks' own framework (eager torch forward passes), from
normalisations computed here in numpy, from ImageJ (the bundle's macros) and from bioimageio.spec.
"""

from __future__ import annotations

import json
import math
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

import deepij
from deepij.bundle import open_bundle
from deepij.bundle.description import FixedSize, ParameterizedSize, ReferenceSize
from deepij.errors import ArgumentError
from support.models import write_onnx_unet, write_torchscript_convnet
from support.zoo_models import write_fixed_onnx_unet

REPO = Path(__file__).resolve().parents[2]
SPEC_PYTHON = REPO / "benchmarks" / ".venv-bioimageio" / "bin" / "python"
CHECK_SCRIPT = REPO / "benchmarks" / "check_built_bundle.py"


def _zero_mean_unit_variance(x: np.ndarray) -> np.ndarray:
    """The spec op by its formula: population std, eps 1e-6, over the whole sample."""
    x = x.astype(np.float64)
    return ((x - x.mean()) / (x.std() + 1e-6)).astype(np.float32)


def _no_staging_left(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if p.name.startswith(".deepij-build-")]


@pytest.fixture(scope="module")
def convnet(tmp_path_factory, imagej_session):
    """A scripted convnet (kernels 3, 7, 5: receptive radius 6) built with a zero_mean_unit_variance
    macro and op, from a 2-D 16-bit example."""
    folder = tmp_path_factory.mktemp("convnet")
    net = write_torchscript_convnet(folder / "net.pt", kernel_sizes=(3, 7, 5))
    rng = np.random.default_rng(3)
    example = (rng.random((72, 80)) * 3000 + 500).astype(np.uint16)
    built = deepij.build(
        net.path,
        folder / "bundle",
        example=example,
        name="test convnet",
        description="A convnet for the build tests.",
        preprocessing="zero_mean_unit_variance",
        authors=["deepij tests"],
    )
    return net, example, built


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """An ONNX U-Net with 2 poolings (step 4, receptive radius 23), no processing."""
    folder = tmp_path_factory.mktemp("unet")
    net = write_onnx_unet(folder / "unet.onnx", depth=2, base=4)
    example = np.random.default_rng(5).random((1, 1, 96, 96)).astype(np.float32)
    built = deepij.build(net.path, folder / "bundle", example=example, name="test unet", authors=["tests"])
    return net, example, built


def test_convnet_halo_min_step_are_the_architectures(convnet):
    net, _, built = convnet
    assert net.halo == 6  # 1 + 3 + 2
    assert built.receptive_radius == {"y": 6, "x": 6}
    assert built.network_sizes == {"y": ParameterizedSize(1, 1), "x": ParameterizedSize(1, 1)}
    assert built.halo == {"output": {"y": 6, "x": 6}}
    spec = built.description.inputs[0]
    # the smallest tile that keeps a valid pixel once 6 are cropped from each side: 2*6 + 1
    assert spec.axis("y").size == ParameterizedSize(13, 1) == spec.axis("x").size
    assert built.description.outputs[0].axis("y").halo == 6
    assert set(built.weights) == {"torchscript", "onnx"}
    assert built.description.weights["onnx"].parent == "torchscript"
    assert built.memory_peak >= 0 and built.runtime > 0


def test_convnet_test_tensors_are_the_network_on_the_normalised_example(convnet):
    net, example, built = convnet
    test_input = np.load(built.folder / "test_input.npy")
    test_output = np.load(built.folder / "test_output.npy")
    assert test_input.shape == (1, 1, 72, 80) and test_input.dtype == np.float32
    np.testing.assert_array_equal(test_input[0, 0], example.astype(np.float32))
    [expected] = net.forward(_zero_mean_unit_variance(test_input))
    np.testing.assert_allclose(test_output, expected, atol=1e-4, rtol=1e-4)
    assert built.description.inputs[0].processing[0].name == "zero_mean_unit_variance"


def test_convnet_round_trip_through_load_and_predict(convnet):
    _, _, built = convnet
    model = deepij.load(built.folder)
    test_input = np.load(built.folder / "test_input.npy")
    for weights in ("torchscript", "onnx"):
        result = model.predict(test_input, processing="spec", weights_format=weights)
        np.testing.assert_allclose(
            result.images["output"].transpose("b", "c", "y", "x").values,
            np.load(built.folder / "test_output.npy"),
            atol=1e-4,
            rtol=1e-4,
        )


def test_convnet_example_through_imagej_gives_the_result_image(convnet):
    net, example, built = convnet
    result_image = tifffile.imread(built.folder / "resultImage.tif")
    # ImageJ ran the generated macro (the spec op's formula, sample std converted), then the network as
    # deepImageJ runs it: its default tile ceil(I + 2*6) holds the 72 x 80 image with 6 mirrored pixels
    # (FORMATS.md section 6; no edge pixel repeated) on each side, one pass
    mirrored = np.pad(_zero_mean_unit_variance(example), 6, mode="reflect")
    [by_formula] = net.forward(mirrored[None, None])
    np.testing.assert_allclose(result_image, by_formula[0, 0, 6:-6, 6:-6], atol=1e-4, rtol=1e-4)
    # the zoo's one unpadded pass differs at the border (the network's zero padding), not inside
    [unpadded] = net.forward(_zero_mean_unit_variance(example[None, None]))
    difference = np.abs(result_image - unpadded[0, 0])
    assert difference.max() > 1e-2 and difference[6:-6, 6:-6].max() < 1e-4
    model = deepij.load(built.folder)
    run = model.predict(built.folder / "exampleImage.tif", tile="suggested", tiling="deepimagej-readback")
    np.testing.assert_allclose(np.squeeze(run.images["output"].values), result_image, atol=1e-4, rtol=1e-4)
    assert tifffile.imread(built.folder / "exampleImage.tif").dtype == np.uint16


def test_convnet_descriptor_carries_deepimagej_config(convnet):
    _, _, built = convnet
    config = built.description.deepimagej
    assert [s.file for s in config.preprocess] == ["zero_mean_unit_variance.ijm"]
    assert config.postprocess == ()
    info = config.test_information
    assert info["inputs"][0]["size"] == "80 x 72 x 1 x 1"  # W x H x C x Z, as deepImageJ writes it
    assert info["runtime"].endswith(" s") and info["memory_peak"].endswith(" MB")
    for name in ("README.md", "cover.png", "zero_mean_unit_variance.ijm", "exampleImage.tif"):
        assert (built.folder / name).is_file()
    from PIL import Image

    assert Image.open(built.folder / "cover.png").size == (640, 320)
    assert "# Validation" in (built.folder / "README.md").read_text()


def test_zip_opens_with_load_and_reads_back_the_same_fields(convnet):
    _, _, built = convnet
    assert built.zip is not None and built.zip.is_file()
    from_zip, from_folder = open_bundle(built.zip), open_bundle(built.folder)
    for field in ("name", "inputs", "outputs", "deepimagej", "authors", "cite", "license", "covers"):
        assert getattr(from_zip, field) == getattr(from_folder, field), field
    assert {k: (w.source, w.sha256) for k, w in from_zip.weights.items()} == {
        k: (w.source, w.sha256) for k, w in from_folder.weights.items()
    }
    result = deepij.load(built.zip).predict(np.load(built.folder / "test_input.npy"), processing="spec")
    np.testing.assert_allclose(
        result.images["output"].values, np.load(built.folder / "test_output.npy"), atol=1e-4, rtol=1e-4
    )


def test_deepij_test_passes_on_the_built_bundle(convnet):
    _, _, built = convnet
    report = deepij.test_bundle(built.zip, tiled=False)
    assert report.status == "passed", report.to_text()
    conventions = {c.expected_file: c.convention for c in report.format("torchscript").comparisons}
    assert conventions == {"test_output.npy": "zoo", "resultImage.tif": "deepImageJ"}


def _validate_with_bioimageio_spec(folder: Path) -> dict:
    if not SPEC_PYTHON.exists():
        pytest.skip("benchmarks/.venv-bioimageio is not there (benchmarks/setup_bioimageio_env.sh makes it)")
    done = subprocess.run(
        [str(SPEC_PYTHON), str(CHECK_SCRIPT), str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_bioimageio_spec_validates_built_bundles(convnet, unet):
    for _, _, built in (convnet, unet):
        result = _validate_with_bioimageio_spec(built.folder)
        assert result["status"] == "valid-format", result
        assert result["errors"] == []


def test_onnx_unet_two_poolings(unet):
    net, _, built = unet
    assert (net.min_size, net.step, net.halo) == (4, 4, 23)
    assert built.network_sizes == {"y": ParameterizedSize(4, 4), "x": ParameterizedSize(4, 4)}
    assert built.receptive_radius == {"y": 23, "x": 23}
    assert built.halo == {"output": {"y": 24, "x": 24}}  # 23 rounded up to the pooling grid
    # smallest 4 + 4k leaving a valid pixel once 24 are cropped from each side: 52
    assert built.description.inputs[0].axis("x").size == ParameterizedSize(52, 4)
    assert built.weights == ("onnx",)


def test_onnx_unet_reproduces_and_its_halo_makes_tiles_exact(unet):
    net, example, built = unet
    test_output = np.load(built.folder / "test_output.npy")
    [expected] = net.forward(example)  # the eager torch module the ONNX was exported from
    np.testing.assert_allclose(test_output, expected, atol=1e-4, rtol=1e-4)
    model = deepij.load(built.zip)
    whole = model.predict(example).images["output"].values
    np.testing.assert_allclose(whole, test_output, atol=1e-5, rtol=1e-5)
    tiled = model.predict(example, tile=56).images["output"].values  # valid region 8: 12 tiles per axis
    inside = (slice(None), slice(None), slice(24, -24), slice(24, -24))  # beyond the mirrored border
    np.testing.assert_allclose(tiled[inside], whole[inside], atol=1e-5, rtol=1e-5)


def test_torch_module_with_valid_convolutions(tmp_path):
    import torch

    from support.torch_nets import ConvNet

    torch.manual_seed(0)
    module = ConvNet(kernel_sizes=(3, 3, 3), padding="valid").eval()  # radius 3, output 6 smaller
    example = np.random.default_rng(1).standard_normal((1, 1, 40, 40)).astype(np.float32)
    built = deepij.build(module, tmp_path / "valid", example=example, name="valid convnet", authors=["t"])
    assert built.receptive_radius == {"y": 3, "x": 3}
    assert built.network_sizes["y"] == ParameterizedSize(7, 1)  # 2*3 + 1: the smallest size that runs
    assert built.halo == {"output": {"y": 0, "x": 0}}  # valid convolutions crop their own border
    out_y = built.description.outputs[0].axis("y")
    assert out_y.size == ReferenceSize("input", "y", 1.0, -6.0) and out_y.halo == 0
    assert built.description.inputs[0].axis("y").size == ParameterizedSize(7, 1)
    with torch.inference_mode():
        expected = module(torch.from_numpy(example)).numpy()
    test_output = np.load(built.folder / "test_output.npy")
    assert test_output.shape == (1, 1, 34, 34)
    np.testing.assert_allclose(test_output, expected, atol=1e-5, rtol=1e-5)
    model = deepij.load(built.zip)
    # the zoo's way, which the test output is: the image as it is, an output 6 pixels smaller
    as_is = model.predict(example, tile="image").images["output"].values
    np.testing.assert_allclose(as_is, expected, atol=1e-5, rtol=1e-5)
    # deepImageJ's way: the image mirrored by the 3 pixels the network crops, an output of the input's size
    mirrored = np.pad(example, ((0, 0), (0, 0), (3, 3), (3, 3)), mode="reflect")
    with torch.inference_mode():
        padded = module(torch.from_numpy(mirrored)).numpy()
    np.testing.assert_allclose(model.predict(example).images["output"].values, padded, atol=1e-5, rtol=1e-5)
    report = deepij.test_bundle(built.zip)  # reproduces the smaller test output, then tiles
    assert report.status == "passed", report.to_text()


def test_fixed_size_network_whose_halo_exceeds_its_size_is_refused(tmp_path):
    net = write_fixed_onnx_unet(tmp_path / "fixed.onnx", side=32, depth=2, base=4)
    example = np.zeros((1, 1, 32, 32), np.float32)
    with pytest.raises(ArgumentError, match=r"fixed to 32.*receptive|receptive.*fixed to 32"):
        deepij.build(net.path, tmp_path / "out", example=example, name="fixed", authors=["t"])
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.zip").exists()
    assert _no_staging_left(tmp_path)


def test_min_size_too_small_for_the_halo_is_refused(tmp_path):
    net = write_torchscript_convnet(tmp_path / "net.pt", kernel_sizes=(3, 7, 5))  # radius 6
    example = np.zeros((1, 1, 32, 32), np.float32)
    with pytest.raises(ArgumentError, match=r"min_size: 12 leaves no valid pixel.*halo of 6"):
        deepij.build(net.path, tmp_path / "out", example=example, name="n", min_size=12, authors=["t"])
    assert not (tmp_path / "out").exists() and _no_staging_left(tmp_path)
    built = deepij.build(net.path, tmp_path / "ok", example=example, name="n", min_size=13, zip=False)
    assert built.description.inputs[0].axis("y").size == ParameterizedSize(13, 1) and built.zip is None


def test_example_of_a_size_the_network_does_not_take(tmp_path):
    net = write_onnx_unet(tmp_path / "unet.onnx", depth=2, base=4)
    with pytest.raises(ArgumentError, match=r"example: its size along 'y' is 50.*4 \+ k\*4.*52"):
        deepij.build(net.path, tmp_path / "out", example=np.zeros((50, 64), np.float32), name="u")
    assert not (tmp_path / "out").exists() and _no_staging_left(tmp_path)


def test_existing_output_needs_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    net = write_torchscript_convnet(tmp_path / "net.pt", kernel_sizes=(3,))
    with pytest.raises(ArgumentError, match="exists already"):
        deepij.build(net.path, tmp_path / "out", example=np.zeros((16, 16), np.float32), name="n")


# --- what the build may replace -------------------------------------------------------------------------


def _tiny(tmp_path: Path) -> tuple[Path, np.ndarray]:
    net = write_torchscript_convnet(tmp_path / "net.pt", kernel_sizes=(3,))
    return net.path, np.random.default_rng(7).random((16, 16)).astype(np.float32)


def _descriptor_name(data: bytes) -> str:
    return yaml.safe_load(data)["name"]


@pytest.mark.parametrize("descriptor", [None, "name: my own notes\nformat_version: 0.5.4\n"])
def test_overwrite_never_replaces_a_folder_deepij_did_not_build(tmp_path, capsys, descriptor):
    net, example = _tiny(tmp_path)
    project = tmp_path / "project"  # the user's project: notes, and perhaps a descriptor of their own
    project.mkdir()
    (project / "notes.txt").write_text("my notes")
    if descriptor is not None:
        (project / "rdf.yaml").write_text(descriptor)
    with pytest.raises(ArgumentError, match=r"output: .*project is not a bundle deepij built"):
        deepij.build(net, project, example=example, name="n", overwrite=True, onnx=False)
    assert sorted(p.name for p in project.iterdir()) == sorted(
        ["notes.txt"] + (["rdf.yaml"] if descriptor else []))
    assert (project / "notes.txt").read_text() == "my notes" and _no_staging_left(tmp_path)
    assert not (tmp_path / "project.zip").exists()
    from deepij.frontdoors import cli

    argv = ["build", str(net), str(project), "--example", str(tmp_path / "x.npy"), "--name", "n"]
    np.save(tmp_path / "x.npy", example)
    assert cli.main([*argv, "--overwrite", "--no-onnx"]) == 1
    assert "is not a bundle deepij built" in capsys.readouterr().err
    assert (project / "notes.txt").read_text() == "my notes"


def test_overwrite_replaces_a_bundle_deepij_built_and_its_zip(tmp_path):
    net, example = _tiny(tmp_path)
    first = deepij.build(net, tmp_path / "b", example=example, name="first", onnx=False)
    with zipfile.ZipFile(first.zip) as archive:
        assert _descriptor_name(archive.read("rdf.yaml")) == "first"
    assert yaml.safe_load((first.folder / "rdf.yaml").read_text())["config"]["deepij"]["built_by"] == (
        "deepij build")
    second = deepij.build(net, tmp_path / "b", example=example, name="second", onnx=False, overwrite=True)
    assert second.folder == first.folder and second.zip == first.zip
    assert _descriptor_name((second.folder / "rdf.yaml").read_bytes()) == "second"
    with zipfile.ZipFile(second.zip) as archive:
        assert _descriptor_name(archive.read("rdf.yaml")) == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "b.zip", "net.pt"]  # no staging, no .old


def test_an_unrelated_zip_next_to_the_output_is_never_replaced(tmp_path):
    net, example = _tiny(tmp_path)
    (tmp_path / "b.zip").write_bytes(b"my own archive")
    with pytest.raises(ArgumentError, match=r"b\.zip exists already, where the bundle's zip goes"):
        deepij.build(net, tmp_path / "b", example=example, name="n", onnx=False)
    with pytest.raises(ArgumentError, match=r"b\.zip is not the zip of a bundle deepij built"):
        deepij.build(net, tmp_path / "b", example=example, name="n", onnx=False, overwrite=True)
    assert not (tmp_path / "b").exists() and _no_staging_left(tmp_path)
    built = deepij.build(net, tmp_path / "b", example=example, name="n", onnx=False, zip=False)
    assert built.zip is None and built.folder.is_dir()
    assert (tmp_path / "b.zip").read_bytes() == b"my own archive"  # left alone, even now


def test_a_folder_holding_the_model_is_not_replaced(tmp_path):
    net, example = _tiny(tmp_path)
    built = deepij.build(net, tmp_path / "b", example=example, name="n", onnx=False, zip=False)
    kept = built.folder / "my_net.pt"
    kept.write_bytes(net.read_bytes())
    with pytest.raises(ArgumentError, match=r"model: .*my_net\.pt lies inside the output folder"):
        deepij.build(kept, built.folder, example=example, name="n", onnx=False, zip=False, overwrite=True)
    assert kept.read_bytes() == net.read_bytes()


def test_cli_build(tmp_path, capsys):
    from deepij.frontdoors import cli

    net = write_torchscript_convnet(tmp_path / "net.pt", kernel_sizes=(5, 3))  # radius 3
    np.save(tmp_path / "example.npy", np.random.default_rng(2).random((1, 1, 24, 24)).astype(np.float32))
    argv = ["build", str(net.path), str(tmp_path / "b"), "--example", str(tmp_path / "example.npy")]
    assert cli.main([*argv, "--name", "cli net", "--no-zip", "--no-onnx", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["receptive_radius"] == {"y": 3, "x": 3}
    assert summary["declared_sizes"]["y"] == {"min": 7, "step": 1} and summary["weights"] == ["torchscript"]
    assert summary["zip"] is None and not (tmp_path / "b.zip").exists()
    assert cli.main([*argv, "--name", "cli net"]) == 1  # the folder exists now
    assert "exists already" in capsys.readouterr().err
    assert math.isfinite(summary["runtime_s"])


def test_fixed_size_accepts_graph_fixed_sizes_with_room(tmp_path):
    net = write_fixed_onnx_unet(tmp_path / "fixed.onnx", side=64, depth=2, base=4)
    example = np.random.default_rng(0).random((1, 1, 64, 64)).astype(np.float32)
    built = deepij.build(net.path, tmp_path / "out", example=example, name="fixed 64", zip=False)
    assert built.network_sizes == {"y": FixedSize(64), "x": FixedSize(64)}
    assert built.description.inputs[0].axis("y").size == FixedSize(64)
    assert built.receptive_radius == {"y": 23, "x": 23} == {"y": net.halo, "x": net.halo}
    assert built.halo == {"output": {"y": 23, "x": 23}}  # no step to round to; 64 - 2*23 = 18 valid pixels


POST_MACRO = """// a test post-processing step: threshold the output at its mean, measure the objects
getStatistics(area, mean);
run("Duplicate...", "title=work");
setThreshold(mean, 1e30);
setOption("BlackBackground", true);
run("Convert to Mask");
run("Set Measurements...", "area centroid decimal=3");
run("Analyze Particles...", "size=0-Infinity pixel show=Masks display clear");
rename("mask");
"""


def test_scale_range_macro_and_a_post_processing_macro(tmp_path, imagej_session):
    net = write_torchscript_convnet(tmp_path / "net.pt", kernel_sizes=(3,))
    (tmp_path / "segment.ijm").write_text(POST_MACRO)
    rng = np.random.default_rng(4)
    example = (rng.gamma(2.0, 300.0, (64, 64)) + 100).astype(np.float32)
    built = deepij.build(
        net.path,
        tmp_path / "b",
        example=example,
        name="scaled",
        preprocessing="per_sample_scale_range",
        postprocessing=tmp_path / "segment.ijm",
        zip=False,
    )
    op = built.description.inputs[0].processing[0]
    assert (op.name, op.kwargs["min_percentile"], op.kwargs["max_percentile"]) == ("scale_range", 1.0, 99.8)
    low, high = np.percentile(example, (1.0, 99.8))  # numpy's linear percentiles: the spec op's
    [by_formula] = net.forward(((example - low) / (high - low + 1e-6)).astype(np.float32)[None, None])
    np.testing.assert_allclose(np.load(built.folder / "test_output.npy"), by_formula, atol=1e-5, rtol=1e-5)
    mask = tifffile.imread(built.folder / "resultImage.tif")
    assert set(np.unique(mask)) <= {0, 255}
    import pandas as pd
    from scipy import ndimage

    table = pd.read_csv(built.folder / "resultTable.csv")
    assert "Area" in table.columns and len(table) > 0
    outputs = built.description.deepimagej.test_information["outputs"]
    assert [o["type"] for o in outputs] == ["image", "ResultsTable"]
    network = by_formula[0, 0]
    objects = ndimage.label(network >= network.mean(), structure=np.ones((3, 3)))[1]  # 8-connected
    assert abs(objects - len(table)) <= 2  # the macro's normalisation is within a histogram bin
    assert abs(int((mask > 0).sum()) - int((network >= network.mean()).sum())) <= 0.01 * mask.size
    run = deepij.load(built.folder).predict(
        built.folder / "exampleImage.tif", tile="suggested", tiling="deepimagej-readback"
    )
    np.testing.assert_array_equal(np.squeeze(run.images["mask"].values), mask)
    # the macro's 4096-bin percentiles are within a bin of numpy's exact ones
    through_imagej = np.squeeze(run.images["output"].values)[1:-1, 1:-1]  # the border is mirror-padded
    np.testing.assert_allclose(through_imagej, network[1:-1, 1:-1], atol=2e-3 * float(np.ptp(network)))
