"""The project's own demo bundle (examples/nuclei_bundle): it opens, its files are what its descriptor says,
its two weights agree, its shipped result is reproduced, and it finds the nuclei its synthetic image was
drawn with. Real ImageJ, real TorchScript and ONNX weights, the committed files.

Expected values come from the committed files (made once by examples/make_expected.py), from the
synthetic-image generator and its seed (the ground truth), from hashlib, pyyaml, numpy and scipy, and from
the zoo's own tools: bioimageio.spec and bioimageio.core, run in their side environment
(benchmarks/.venv-bioimageio, made by benchmarks/setup_bioimageio_env.sh) when it is there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from scipy import ndimage

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
BUNDLE = EXAMPLES / "nuclei_bundle"
SIDE_PYTHON = REPO / "benchmarks" / ".venv-bioimageio" / "bin" / "python"
SPEC_CHECK = REPO / "benchmarks" / "check_built_bundle.py"
sys.path.insert(0, str(EXAMPLES))  # the examples import one another as scripts do

import nuclei_data  # noqa: E402 (needs the path above)

PRE, POST = BUNDLE / "per_sample_scale_range.ijm", BUNDLE / "threshold_watershed_count.ijm"


@pytest.fixture(scope="module")
def rdf() -> dict:
    return yaml.safe_load((BUNDLE / "rdf.yaml").read_text())


@pytest.fixture(scope="module")
def model():
    import deepij

    loaded = deepij.load(BUNDLE)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def example() -> np.ndarray:
    return tifffile.imread(BUNDLE / "exampleImage.tif")


@pytest.fixture(scope="module")
def chained(imagej_session, model, example) -> dict:
    """The example image through the pieces, chained as make_expected.py chains them (but written out here):
    pre-processing macro, network without processing, post-processing macro."""
    import deepij

    normalised = deepij.run_macro(PRE, example)
    network = model.predict(np.asarray(normalised.image)[None, None], processing="none", tile="image",
                            weights_format="torchscript")
    probability = np.asarray(network.images["probability"])[0, 0]
    post = deepij.run_macro(POST, probability)
    return {
        "normalised": np.asarray(normalised.image),
        "probability": probability,
        "labels": np.asarray(post.images["labels"]),
        "table": post.tables["Results"],
        "log": post.log,
    }


def test_the_bundle_opens_as_a_deepimagej_bundle_in_a_0_5_descriptor(model, rdf):
    d = model.description
    assert d.format_version.startswith("0.5") and rdf["format_version"] == d.format_version
    assert d.name == rdf["name"] and set(d.weights) == {"torchscript", "onnx"}
    assert [(t.name, t.axes_str) for t in d.inputs] == [("input", "bcyx")]
    assert [(t.name, t.axes_str) for t in d.outputs] == [("probability", "bcyx")]
    assert [a.halo for a in d.outputs[0].axes if a.id in "yx"] == [24, 24]
    dij = d.deepimagej
    assert dij.allow_tiling and not dij.pyramidal_model
    assert [(s.kind, s.file) for s in dij.preprocess] == [("macro", PRE.name)]
    assert [(s.kind, s.file) for s in dij.postprocess] == [("macro", POST.name)]
    assert dij.test_information["inputs"][0]["name"] == "exampleImage.tif"
    # every file the descriptor names is in the bundle
    tensors = (*d.inputs, *d.outputs)
    named = [d.documentation, *d.covers, *d.attachments, *(e.source for e in d.weights.values()),
             *(t.test_tensor for t in tensors), *(t.sample_tensor for t in tensors)]
    assert all((BUNDLE / name).is_file() for name in named), named
    # as deepImageJ reads the prediction steps: {spec: ij.IJ::runMacroFile, kwargs: file}
    prediction = rdf["config"]["deepimagej"]["prediction"]
    assert prediction == {"preprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": PRE.name}],
                          "postprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": POST.name}]}


def test_every_sha256_in_the_descriptor_matches_its_file(rdf):
    entries = [*rdf["weights"].values()]
    for tensor in (*rdf["inputs"], *rdf["outputs"]):
        entries += [tensor["test_tensor"], tensor["sample_tensor"]]
    assert len(entries) == 6
    for entry in entries:
        assert hashlib.sha256((BUNDLE / entry["source"]).read_bytes()).hexdigest() == entry["sha256"], entry


def test_the_sample_tensors_are_the_test_tensors_as_imagej_images(rdf):
    # the zoo reads sample tensors with imageio (no .npy); these are the test tensors' planes, unchanged
    for tensor in (*rdf["inputs"], *rdf["outputs"]):
        sample = BUNDLE / tensor["sample_tensor"]["source"]
        assert sample.suffix == ".tif"
        with tifffile.TiffFile(sample) as tiff:
            assert tiff.is_imagej
            plane = tiff.asarray()
        expected = np.load(BUNDLE / tensor["test_tensor"]["source"])[0, 0]
        assert plane.dtype == expected.dtype == np.float32 and np.array_equal(plane, expected)


def test_the_descriptor_keeps_the_limits_of_the_0_5_spec(rdf):
    # what bioimageio.spec 0.5 refuses (its model/v0_5.py), checked here too where its environment is missing
    for tensor in (*rdf["inputs"], *rdf["outputs"]):
        assert len(tensor["description"]) <= 128
        assert not tensor["sample_tensor"]["source"].endswith(".npy")
        assert all("unit" not in axis for axis in tensor["axes"])  # "pixel" is no unit of 0.5's
    # ... while deepImageJ still finds its section
    assert set(rdf["config"]) == {"bioimageio", "deepimagej"}


def _side_environment() -> Path:
    if not SIDE_PYTHON.exists():
        pytest.skip("benchmarks/.venv-bioimageio is not there (benchmarks/setup_bioimageio_env.sh makes it)")
    return SIDE_PYTHON


def _last_json_line(done: subprocess.CompletedProcess) -> dict:
    assert done.stdout.strip(), done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_bioimageio_spec_validates_the_descriptor_and_its_files():
    python = _side_environment()
    # load_description with perform_io_checks: every sha256, the sample tensors read with imageio
    done = subprocess.run([str(python), str(SPEC_CHECK), str(BUNDLE), "--json"], capture_output=True,
                          text=True, timeout=300, check=False)
    result = _last_json_line(done)
    assert result["type"] == "ModelDescr" and result["errors"] == [], result
    # in bioimageio.spec 0.5.12 a format validation ends at "valid-format" (every check of it "passed");
    # the summary says "passed" only once bioimageio.core's tests ran (next test)
    assert result["status"] == "valid-format", result
    assert done.returncode == 0


_CORE_TEST = """
import json, sys
from bioimageio.core import test_description
summary = test_description(sys.argv[1], weight_format="torchscript", devices=["cpu"])
failed = [d.name for d in summary.details if d.status == "failed"]
print(json.dumps({"status": summary.status, "failed": failed}))
"""


def test_bioimageio_core_passes_the_bundle_with_its_test_tensors(tmp_path):
    python = _side_environment()
    copy = shutil.copytree(BUNDLE, tmp_path / "nuclei_bundle")  # whatever the tool writes stays out of git
    # the descriptor's validation, then the test output reproduced and 6 input shapes run (TorchScript)
    done = subprocess.run([str(python), "-c", _CORE_TEST, str(copy / "rdf.yaml")], capture_output=True,
                          text=True, timeout=600, check=False, cwd=tmp_path)
    result = _last_json_line(done)
    assert result == {"status": "passed", "failed": []}


def test_the_committed_bundle_stays_small():
    assert sum(p.stat().st_size for p in BUNDLE.iterdir()) < 5e6


def test_the_example_image_is_the_generator_image_of_its_seed(example):
    drawn = nuclei_data.synthetic_nuclei(nuclei_data.EXAMPLE_SIZE, nuclei_data.EXAMPLE_COUNT,
                                         seed=nuclei_data.EXAMPLE_SEED)
    assert example.dtype == np.uint16 and np.array_equal(example, drawn.image)
    with tifffile.TiffFile(BUNDLE / "exampleImage.tif") as tiff:
        assert tiff.is_imagej


def test_pre_processing_macro_is_the_histogram_percentile_normalisation(chained, example):
    # bit for bit what numpy computes with the same rule (256-bin histogram, float32 arithmetic) ...
    assert np.array_equal(chained["normalised"], nuclei_data.scale_range(example))
    # ... and close to the exact percentile normalisation (np.percentile), as deepImageJ's macro is
    low, high = np.percentile(example.astype(np.float64), (1, 99.8))
    exact = (example - low) / (high - low)
    assert np.abs(chained["normalised"] - exact).max() < 0.02
    assert abs(np.percentile(chained["normalised"], 1)) < 0.01
    assert abs(np.percentile(chained["normalised"], 99.8) - 1) < 0.01


def test_torchscript_and_onnx_weights_agree_on_the_example_image(model, example):
    normalised = nuclei_data.scale_range(example)[None, None]
    outputs = {fmt: np.asarray(model.predict(normalised, processing="none", tile="image",
                                             weights_format=fmt).images["probability"])
               for fmt in ("torchscript", "onnx")}
    assert outputs["torchscript"].shape == (1, 1, 512, 512)
    assert np.abs(outputs["torchscript"] - outputs["onnx"]).max() < 1e-4
    # ONNX spatial dims are dynamic: a size other than the export's (64 x 64) and not square runs too
    crop = normalised[..., 96:416, 64:256]
    small = {fmt: np.asarray(model.predict(crop, processing="none", tile="image",
                                           weights_format=fmt).images["probability"])
             for fmt in ("torchscript", "onnx")}
    assert small["onnx"].shape == (1, 1, 320, 192)
    assert np.abs(small["torchscript"] - small["onnx"]).max() < 1e-4


def test_the_test_tensors_are_reproduced_with_the_spec_processing(model, rdf):
    test_input = np.load(BUNDLE / "test_input.npy")
    expected = np.load(BUNDLE / "test_output.npy")
    got = model.predict(test_input, processing="spec", tile="image", weights_format="onnx")
    tolerance = rdf["config"]["bioimageio"]["reproducibility_tolerance"][0]
    np.testing.assert_allclose(np.asarray(got.images["probability"]), expected,
                               atol=tolerance["absolute_tolerance"], rtol=tolerance["relative_tolerance"])


def test_the_halo_covers_the_network_so_tiles_give_the_whole_image_result(model, example):
    normalised = nuclei_data.scale_range(example)[None, None]
    whole = np.asarray(model.predict(normalised, processing="none", tile="image").images["probability"])
    tiled = model.predict(normalised, processing="none", tile=128)
    assert tiled.plan.n_tiles > 1
    # away from the border (mirror padding there vs the network's zero padding) the tiles change nothing
    inner = (0, 0, slice(24, -24), slice(24, -24))
    assert np.abs(np.asarray(tiled.images["probability"])[inner] - whole[inner]).max() < 1e-5


def test_the_shipped_expected_result_is_reproduced(chained):
    expected_labels = tifffile.imread(BUNDLE / "resultImage.tif")
    expected_table = pd.read_csv(BUNDLE / "resultTable.csv")
    labels, table = chained["labels"], chained["table"]
    assert labels.dtype == expected_labels.dtype == np.uint16
    assert labels.max() == expected_labels.max() == len(table) == len(expected_table)
    # the same objects with the same numbers; a probability a hair from 0.5 may flip a pixel on another CPU
    assert np.mean(labels == expected_labels) > 0.999
    assert list(table.columns) == list(expected_table.columns) == ["Area", "Mean", "X", "Y"]
    np.testing.assert_allclose(table["Area"], expected_table["Area"], atol=2)
    np.testing.assert_allclose(table[["Mean", "X", "Y"]], expected_table[["Mean", "X", "Y"]], atol=0.05)
    assert f"nuclei found: {len(expected_table)}" in chained["log"]


def test_the_pipeline_reproduces_the_shipped_result_from_the_file(model):
    # model.predict runs the descriptor's deepImageJ macros itself (processing="auto"), whatever weights
    result = model.predict(BUNDLE / "exampleImage.tif", processing="auto")
    expected_labels = tifffile.imread(BUNDLE / "resultImage.tif")
    expected_table = pd.read_csv(BUNDLE / "resultTable.csv")
    labels = np.asarray(result.images["labels"]).reshape(expected_labels.shape)
    assert labels.max() == expected_labels.max() == len(result.tables["Results"])
    assert np.mean(labels == expected_labels) > 0.999
    table = result.tables["Results"][list(expected_table.columns)]
    np.testing.assert_allclose(table["Area"], expected_table["Area"], atol=2)
    np.testing.assert_allclose(table[["Mean", "X", "Y"]], expected_table[["Mean", "X", "Y"]], atol=0.05)


def test_the_results_table_describes_the_labels_image(chained):
    # measured independently with scipy: pixel counts, centroids (ImageJ: pixel centres at +0.5), mean prob.
    labels, table = chained["labels"], chained["table"]
    index = np.arange(1, labels.max() + 1)
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index)
    centroids = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, index)) + 0.5
    means = ndimage.mean(chained["probability"], labels, index)
    np.testing.assert_array_equal(table["Area"], areas)
    np.testing.assert_allclose(table[["Y", "X"]], centroids, atol=1e-6)
    np.testing.assert_allclose(table["Mean"], means, atol=1e-5)
    assert table["Mean"].min() > 0.5  # every nucleus is above the threshold it was cut at


def test_the_nuclei_found_are_the_nuclei_drawn(chained):
    truth = nuclei_data.synthetic_nuclei(nuclei_data.EXAMPLE_SIZE, nuclei_data.EXAMPLE_COUNT,
                                         seed=nuclei_data.EXAMPLE_SEED)
    labels = chained["labels"]
    found = int(labels.max())
    assert 0.9 * truth.count <= found <= truth.count + 2
    # nearly every object found is one drawn nucleus (IoU > 0.5); the misses are touching pairs left joined
    matched = 0
    for label in range(1, found + 1):
        mask = labels == label
        overlap = np.bincount(truth.labels[mask], minlength=truth.count + 1)
        overlap[0] = 0
        best = int(overlap.argmax())
        if best and overlap[best] / np.logical_or(mask, truth.labels == best).sum() > 0.5:
            matched += 1
    assert matched >= 0.9 * found
    # the watershed matters: without it touching pairs stay joined and fewer objects come out
    components, n = ndimage.label(chained["probability"] > 0.5)
    joined = int((ndimage.sum_labels(np.ones_like(components), components, np.arange(1, n + 1)) >= 30).sum())
    assert found - joined >= 0.5 * truth.pairs


def _load_demo():
    spec = importlib.util.spec_from_file_location("deepij_nuclei_demo", EXAMPLES / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("how", [[], ["--by-hand"]], ids=["pipeline", "by-hand"])
def test_demo_writes_the_labels_the_results_and_the_figure(imagej_session, tmp_path, capsys, how):
    output = tmp_path / "demo"
    assert _load_demo().main(["--output", str(output), *how]) == 0
    assert sorted(p.name for p in output.iterdir()) == [
        "Results.csv", "figure.png", "labels.tif", "notes.txt", "probability.tif"]
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no staging folder left behind
    expected = pd.read_csv(BUNDLE / "resultTable.csv")
    results = pd.read_csv(output / "Results.csv")
    assert len(results) == len(expected)
    with tifffile.TiffFile(output / "labels.tif") as tiff:
        assert tiff.is_imagej and tiff.asarray().max() == len(expected)
    with tifffile.TiffFile(output / "probability.tif") as tiff:
        probability = tiff.asarray()
        assert probability.dtype == np.float32 and probability.min() >= 0 and probability.max() <= 1
    assert (output / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert f"found {len(expected)} nuclei" in printed and str(output) in printed
