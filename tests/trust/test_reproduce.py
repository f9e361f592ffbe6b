"""``deepij test`` / ``deepij.test_bundle``: real bundles (the project's demo bundle, bundles written by
tests/support the way their tools wrote them), real weights, real ImageJ for deepImageJ steps.

Expected values come from elsewhere than the code under test: what the support writers put in the bundles
(tolerances, the altered patch), onnxruntime and torch run by hand on the test inputs, the tile layout of
FORMATS.md section 6 computed by hand, the demo bundle's README (67 nuclei, a 22-pixel receptive field
under a 24-pixel halo), hashlib.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

import deepij
from deepij.errors import ArgumentError, BundleError, ChecksumError
from deepij.frontdoors.cli import main
from deepij.trust import reproduce
from deepij.trust.reproduce_compare import Tolerance, compare_arrays, reproduction_tolerance
from support.bundles import write_bundle_v0_3, write_bundle_v0_4, write_bundle_v0_5, zero_mean_unit_variance
from support.trust_bundles import (
    ALTERED_SHIFT,
    write_altered_output_bundle,
    write_short_halo_bundle,
    write_untested_bundle_v0_3,
)

DEMO = Path(__file__).resolve().parents[2] / "examples" / "nuclei_bundle"
DEMO_NUCLEI = 67  # the demo bundle's README: "the bundle finds 67 nuclei"


def run_cli(capsys, *args: object) -> tuple[int, str]:
    code = main(["test", *map(str, args)])
    return code, capsys.readouterr().out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


# --- a bundle that reproduces ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_report(imagej_session):
    return deepij.test_bundle(DEMO, session=imagej_session)


def test_the_demo_bundle_reproduces_its_test_tensors_and_its_deepimagej_example(demo_report):
    assert demo_report.status == "passed" and demo_report.exit_code == 0
    assert [f.weights_format for f in demo_report.formats] == ["torchscript", "onnx"]
    assert [(c["kind"], c["processing"]) for c in demo_report.cases] == [
        ("test tensors", "spec"), ("deepImageJ example", "macros")]
    for report in demo_report.formats:
        assert report.status == "passed" and report.error is None
        compared = {(c.case, c.output, c.expected_file): c for c in report.comparisons}
        assert set(compared) == {
            ("test tensors", "probability", "test_output.npy"),
            ("deepImageJ example", "labels", "resultImage.tif"),
            ("deepImageJ example", "Results", "resultTable.csv"),
        }
        assert all(c.passed for c in compared.values())
        # examples/make_expected.py ran the example as the zoo does (tile="image"), not as deepImageJ does
        # (its default tile of 560, mirror-padded: a nucleus at the border then grows by 2 pixels): the
        # example is tried the deepImageJ way first, and reproduced the zoo way, which the report says
        assert {c.case: c.convention for c in compared.values()} == {
            "test tensors": "zoo", "deepImageJ example": "zoo"}
        assert "deepImageJ example: deepImageJ's default tile y=560, x=560 (1 tile)" in report.notes
        (note,) = [n for n in report.notes if n.startswith("deepImageJ example: reproduced under the zoo")]
        # the grown nucleus changes 2 of 262144 label pixels (within the 100 per million allowed) and its
        # row of the table (beyond it)
        assert "not the deepImageJ one (resultTable.csv: " in note and "resultImage.tif:" not in note
        table = compared["deepImageJ example", "Results", "resultTable.csv"]
        assert table.elements == DEMO_NUCLEI * 4  # Area, Mean, X, Y
        assert compared["deepImageJ example", "labels", "resultImage.tif"].elements == 512 * 512
        tensors = compared["test tensors", "probability", "test_output.npy"]
        # the tolerance the descriptor states
        assert (tensors.tolerance.absolute, tensors.tolerance.relative) == (1e-4, 1e-3)
        assert report.run_seconds > 0 and report.peak_memory_bytes >= 0


def test_the_demo_test_tensor_errors_are_those_of_the_onnx_graph_run_by_hand(demo_report):
    import onnxruntime

    # the scale_range op as the zoo computes it (linear percentiles, eps 1e-6), then the network
    x = np.load(DEMO / "test_input.npy").astype(np.float64)
    low, high = np.percentile(x, (1.0, 99.8), axis=(2, 3), keepdims=True)
    normalised = ((x - low) / (high - low + 1e-6)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(DEMO / "weights.onnx"), providers=["CPUExecutionProvider"])
    by_hand = session.run(None, {session.get_inputs()[0].name: normalised})[0]
    expected = np.load(DEMO / "test_output.npy")
    tensors = next(c for c in demo_report.format("onnx").comparisons if c.case == "test tensors")
    assert tensors.max_abs_error == pytest.approx(float(np.abs(by_hand - expected).max()), abs=1e-6)


def test_the_demo_halo_covers_the_receptive_field_so_tiles_change_nothing_inside(demo_report):
    for report in demo_report.formats:
        assert report.declared_padding == {"y": 24, "x": 24}
        assert report.receptive_radius is not None
        # 23: where the TorchScript network's impulse response ends in float64 (the README's 22 was the
        # single-impulse probe's); the halo of 24 covers it
        assert max(report.receptive_radius.values()) == 23
        labels = [t.tiling for t in report.tiled]
        assert labels == ["deepImageJ default tile", "small tile"]
        for tiled in report.tiled:
            assert not tiled.seams_found and tiled.max_abs_inside < 1e-5
            # at the border mirrored pixels replace the network's zero padding: that differs, and is apart
            assert tiled.max_abs_border > 1e-3
        small = report.tiled[1]
        assert small.n_tiles > 1 and small.tile["y"] < 256
    assert not demo_report.to_dict()["seams_found"]


def test_a_deepimagej_0_3_bundle_reproduces_its_result_through_its_macros(imagej_session, tmp_path, capsys):
    bundle = write_bundle_v0_3(tmp_path / "b03")
    code, out = run_cli(capsys, bundle.folder, "--no-tiled")
    assert code == 0, out
    report = deepij.test_bundle(bundle.folder, tiled=False, session=imagej_session)
    # deepImageJ 2.x wrote 0.3 bundles: its own tiling is the alternative for their test tensors
    assert report.cases == [{"kind": "test tensors", "processing": "macros", "convention": "zoo",
                             "alternative": "deepImageJ", "inputs": ["exampleImage.npy"],
                             "expected": ["resultImage.npy"]}]
    (comparison,) = report.format("torchscript").comparisons
    assert comparison.passed and comparison.tolerance.mismatched_per_million == 0
    assert comparison.convention == "zoo"  # the support writer ran the image as it is
    assert (comparison.tolerance.absolute, comparison.tolerance.relative) == (1e-3, 1e-3)
    assert report.format("torchscript").tiled == []


def test_example_files_without_a_deepimagej_section_are_not_a_test(tmp_path):
    # the same exampleImage/resultImage files, but nothing says deepImageJ made them with its steps
    import shutil

    copy = tmp_path / "zoo_only"
    shutil.copytree(DEMO, copy)
    rdf = yaml.safe_load((copy / "rdf.yaml").read_text())
    del rdf["config"]["deepimagej"]
    (copy / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
    cases, notes = reproduce.find_cases(deepij.load(copy).description)
    assert [(c.kind, c.processing) for c in cases] == [("test tensors", "spec")] and notes == []


# --- a bundle that does not -----------------------------------------------------------------------------


def test_an_altered_expected_output_fails_at_the_altered_pixels(tmp_path, capsys):
    bundle = write_altered_output_bundle(tmp_path / "altered")
    rdf = yaml.safe_load(bundle.descriptor.read_text())
    digest = hashlib.sha256((bundle.folder / "test_output.npy").read_bytes()).hexdigest()
    assert rdf["outputs"][0]["test_tensor"]["sha256"] == digest  # the checksum holds: only the numbers fail
    code, out = run_cli(capsys, bundle.folder, "--json", "--no-tiled")
    assert code == 1
    data = json.loads(out)
    assert data["status"] == "failed" and data["exit_code"] == 1
    rows, columns = bundle.extra["altered_pixels"]
    patch = (rows.stop - rows.start) * (columns.stop - columns.start)
    assert [f["weights_format"] for f in data["formats"]] == ["torchscript", "onnx"]
    for entry in data["formats"]:
        assert entry["status"] == "failed"
        (comparison,) = entry["comparisons"]
        assert comparison["passed"] is False
        assert comparison["mismatched"] == patch
        assert comparison["mismatched_per_million"] == pytest.approx(patch / 1024 * 1e6)
        assert comparison["max_abs_error"] == pytest.approx(ALTERED_SHIFT, abs=1e-5)
        assert len(comparison["worst"]) == 5
        for pixel in comparison["worst"]:
            position = pixel["position"]
            assert rows.start <= position["y"] < rows.stop and columns.start <= position["x"] < columns.stop
            assert pixel["expected"] - pixel["got"] == pytest.approx(ALTERED_SHIFT, abs=1e-5)
    code, text = run_cli(capsys, bundle.folder, "--no-tiled", "--weights-format", "onnx")
    assert code == 1
    assert "onnx: FAILED" in text and "at b=0, c=0, y=" in text
    assert text.splitlines()[-1].startswith("result: failed")


def test_a_missing_expected_file_fails_and_says_so(tmp_path):
    bundle = write_bundle_v0_5(tmp_path / "b05")
    (bundle.folder / "test_output.npy").unlink()
    report = deepij.test_bundle(bundle.folder, tiled=False)
    assert report.status == "failed"
    (comparison,) = report.format("torchscript").comparisons
    assert not comparison.passed and "test_output.npy" in comparison.problem


def test_a_test_output_that_is_not_the_file_described_is_never_compared(tmp_path, capsys):
    bundle = write_bundle_v0_5(tmp_path / "b05")
    path = bundle.folder / "test_output.npy"
    described = hashlib.sha256(path.read_bytes()).hexdigest()
    # the same values in other bytes (Fortran order): compared, they would pass; the sha256 says no
    np.save(path, np.asfortranarray(bundle.expected_output[0, 0])[None, None])
    np.testing.assert_array_equal(np.load(path), bundle.expected_output)
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    assert found != described
    with pytest.raises(ChecksumError) as caught:  # opened with verify (the default): refused, as weights are
        deepij.test_bundle(bundle.folder, tiled=False)
    assert caught.value.field == "outputs[0].test_tensor.sha256" and Path(caught.value.file) == path
    assert main(["test", str(bundle.folder), "--no-tiled"]) == 1
    assert "test_output.npy" in capsys.readouterr().err
    # a model loaded with verify=False runs, but the comparison is refused, naming the file
    report = deepij.test_bundle(deepij.load(bundle.folder, verify=False), tiled=False)
    assert report.status == "failed"
    (comparison,) = report.format("torchscript").comparisons
    assert not comparison.passed and comparison.elements == 0
    assert "test_output.npy" in comparison.problem and "outputs[0].test_tensor.sha256" in comparison.problem
    assert found in comparison.problem and described in comparison.problem


# --- seams ----------------------------------------------------------------------------------------------


def hand_tiled(forward, image: np.ndarray, tile: int, pad: int) -> np.ndarray:
    """deepImageJ 2.x's tiling written out from FORMATS.md section 6: valid region R = Q - 2P, N = ceil(I/R)
    tiles, mirror padding without the edge pixel, the last tile pushed back to end at the border."""
    size = image.shape[-1]
    region = tile - 2 * pad
    count = math.ceil(size / region)
    padded = np.pad(image, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
    windows = []  # (first image pixel read, first pixel written, pixels written)
    for k in range(count):
        if k < count - 1:
            windows.append((k * region - pad, k * region, region))
        else:
            windows.append((size - region - pad, k * region, size - k * region))
    out = np.zeros_like(image)
    for ry, wy, ny in windows:
        for rx, wx, nx in windows:
            window = padded[..., ry + pad: ry + pad + tile, rx + pad: rx + pad + tile]
            result = forward(window)[0]
            oy, ox = wy - ry, wx - rx
            out[..., wy: wy + ny, wx: wx + nx] = result[..., oy: oy + ny, ox: ox + nx]
    return out


def test_a_halo_smaller_than_the_receptive_field_shows_seams(tmp_path, capsys):
    bundle = write_short_halo_bundle(tmp_path / "short", halo=1, weights=("onnx",))
    code, text = run_cli(capsys, bundle.folder)
    assert code == 0  # the whole image reproduces: seams are shown, they do not fail the bundle
    assert "SEAMS" in text and "declared halo is smaller than the network's receptive field" in text
    report = deepij.test_bundle(bundle.folder)
    onnx = report.format("onnx")
    assert onnx.status == "passed" and onnx.seams_found
    assert onnx.receptive_radius == {"y": bundle.model.halo, "x": bundle.model.halo}  # 4: kernels 3, 5, 3
    assert onnx.declared_padding == {"y": 1, "x": 1}
    default, small = onnx.tiled
    assert default.n_tiles == 1 and not default.seams_found  # one tile: the border differs, nothing inside
    # the small tile: R = 13 - 2 = 11, N = ceil(32 / 11) = 3, seams where tiles 1 and 2 begin
    assert small.tile == {"y": 13, "x": 13} and small.n_tiles == 9
    assert small.seams == {"y": [11, 22], "x": [11, 22]}
    assert small.seams_found and small.mismatched_inside > 0
    assert small.worst_distance_to_seam is not None and small.worst_distance_to_seam < bundle.model.halo
    # the same tiles run by hand through the eager network give the same difference from the whole image
    normalised = zero_mean_unit_variance(bundle.test_input, (2, 3))
    by_hand = sigmoid(hand_tiled(bundle.model.forward, normalised, tile=13, pad=1))
    inside = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    expected = float(np.abs(by_hand - bundle.expected_output)[inside].max())
    assert expected > 1e-2
    assert small.max_abs_inside == pytest.approx(expected, abs=1e-5)


def test_an_honest_halo_has_no_seams_even_with_small_tiles(tmp_path):
    bundle = write_bundle_v0_5(tmp_path / "honest", weights=("onnx",))
    report = deepij.test_bundle(bundle.folder, tile=9)
    onnx = report.format("onnx")
    assert onnx.receptive_radius == onnx.declared_padding == {"y": 4, "x": 4}
    asked = onnx.tiled[-1]
    # R = 9 - 8 = 1 would cut the 32 x 32 image into 32 x 32 tiles; a window of 2*4 + 2*1 = 10 pixels,
    # from the middle (11 to 21), holds the seams that matter: 10 x 10 tiles
    assert asked.tiling == "tile asked for" and asked.n_tiles == 10 * 10
    assert asked.crop == {"y": [11, 21], "x": [11, 21]}
    assert asked.seams == {"y": list(range(1, 10)), "x": list(range(1, 10))}
    assert not onnx.seams_found and asked.max_abs_inside < 1e-5


# --- nothing to compare, bad arguments ------------------------------------------------------------------


def test_a_bundle_with_nothing_to_compare_exits_2(tmp_path, capsys):
    bundle = write_untested_bundle_v0_3(tmp_path / "untested")
    code, text = run_cli(capsys, bundle.folder)
    assert code == 2
    assert "nothing to compare" in text and "passed" not in text
    report = deepij.test_bundle(bundle.folder)
    assert report.status == "nothing to compare" and report.exit_code == 2 and report.formats == []
    code, out = run_cli(capsys, bundle.folder, "--json")
    assert code == 2 and json.loads(out)["status"] == "nothing to compare"


def test_an_unknown_weights_format_is_a_usage_error(tmp_path, capsys):
    bundle = write_bundle_v0_5(tmp_path / "b05")
    with pytest.raises(ArgumentError, match=r"weights_format.*tensorflow_saved_model_bundle.*torchscript"):
        deepij.test_bundle(bundle.folder, weights_format="Tensorflow")
    assert main(["test", str(bundle.folder), "--weights-format", "keras"]) == 2
    assert "weights_format" in capsys.readouterr().err
    assert main(["test", str(tmp_path / "nowhere")]) == 1


def test_state_dict_weights_are_skipped_without_allow_code(tmp_path):
    bundle = write_bundle_v0_5(tmp_path / "b05", weights=("onnx", "pytorch_state_dict"))
    report = deepij.test_bundle(bundle.folder, tiled=False)
    assert report.status == "passed"
    assert [(f.weights_format, f.status) for f in report.formats] == [
        ("onnx", "passed"), ("pytorch_state_dict", "skipped")]
    assert "allow_code" in report.format("pytorch_state_dict").error
    allowed = deepij.test_bundle(bundle.folder, tiled=False, allow_code=True)
    assert allowed.format("pytorch_state_dict").status == "passed"


# --- the JSON report ------------------------------------------------------------------------------------


def test_the_json_report_fields(tmp_path, capsys):
    bundle = write_bundle_v0_5(tmp_path / "b05", weights=("torchscript", "onnx"))
    code, out = run_cli(capsys, bundle.folder, "--json", "--weights-format", "onnx")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"bundle", "name", "format_version", "cases", "formats", "status", "message", "notes",
                         "exit_code", "seams_found"}
    assert (data["name"], data["format_version"], data["status"], data["exit_code"]) == (
        "deepij test 0.5 model", "0.5.4", "passed", 0)
    assert data["cases"] == [{"kind": "test tensors", "processing": "spec", "convention": "zoo",
                              "alternative": None, "inputs": ["test_input.npy"],
                              "expected": ["test_output.npy"]}]
    (entry,) = data["formats"]
    assert set(entry) == {"weights_format", "status", "runtime", "device", "load_seconds", "run_seconds",
                          "peak_memory_bytes", "comparisons", "tiled", "receptive_radius", "receptive_passes",
                          "declared_padding", "tiled_seconds", "error", "notes", "seams_found"}
    assert entry["tiled_seconds"] > 0
    assert (entry["weights_format"], entry["status"], entry["device"]) == ("onnx", "passed", "cpu")
    assert entry["runtime"] in ("onnxruntime", "openvino")
    assert entry["run_seconds"] > 0 and entry["load_seconds"] >= 0
    assert isinstance(entry["peak_memory_bytes"], int) and entry["peak_memory_bytes"] >= 0
    (comparison,) = entry["comparisons"]
    assert set(comparison) == {"case", "output", "expected_file", "passed", "elements", "mismatched",
                               "mismatched_per_million", "max_abs_error", "max_rel_error", "tolerance",
                               "worst", "problem", "convention"}
    assert comparison["convention"] == "zoo"
    assert comparison["elements"] == 32 * 32 and comparison["mismatched"] == 0 and comparison["worst"] == []
    # what the support writer put in the descriptor: absolute 1e-4 only, the zoo's defaults for the rest
    assert comparison["tolerance"] == {"relative": 1e-3, "absolute": 1e-4, "mismatched_per_million": 100.0,
                                       "source": "config.bioimageio.reproducibility_tolerance[0]"}
    assert 0 <= comparison["max_abs_error"] < 1e-5
    assert [t["tiling"] for t in entry["tiled"]] == ["deepImageJ default tile", "small tile"]
    small = entry["tiled"][1]
    assert set(small) == {"tiling", "output", "tile", "n_tiles", "seams", "border", "max_abs_inside",
                          "max_abs_border", "mismatched_inside", "seams_found", "tolerance", "worst_inside",
                          "worst_distance_to_seam", "problem", "crop"}
    assert small["crop"] is None  # 3 tiles of 11 pixels: the whole image is the window
    # P = 4, a third of 32 is 11: Q = 8 + 11 = 19, R = 11, seams at 11 and 22
    assert small["tile"] == {"y": 19, "x": 19} and small["n_tiles"] == 9
    assert small["seams"] == {"y": [11, 22], "x": [11, 22]} and small["border"] == {"y": 4, "x": 4}
    assert entry["receptive_radius"] == entry["declared_padding"] == {"y": 4, "x": 4}


# --- tolerances and comparisons -------------------------------------------------------------------------


def _with_tolerance(bundle, entries) -> object:
    rdf = yaml.safe_load(bundle.descriptor.read_text())
    rdf["config"]["bioimageio"]["reproducibility_tolerance"] = entries
    bundle.descriptor.write_text(yaml.safe_dump(rdf, sort_keys=False))
    return deepij.load(bundle.folder).description


def test_the_first_tolerance_entry_for_the_output_and_weights_applies(tmp_path):
    bundle = write_bundle_v0_5(tmp_path / "b05")
    description = _with_tolerance(bundle, [
        {"weights_formats": ["onnx"], "absolute_tolerance": 0.5},
        {"output_ids": ["other"], "absolute_tolerance": 0.25},
        {"relative_tolerance": 0.01, "mismatched_elements_per_million": 20},
    ])
    onnx = reproduction_tolerance(description, "onnx", "probability")
    assert (onnx.absolute, onnx.relative, onnx.mismatched_per_million) == (0.5, 1e-3, 100.0)
    torch = reproduction_tolerance(description, "torchscript", "probability")
    assert (torch.absolute, torch.relative, torch.mismatched_per_million) == (1e-3, 0.01, 20.0)
    assert torch.source == "config.bioimageio.reproducibility_tolerance[2]"
    other = reproduction_tolerance(description, "torchscript", "other")
    assert other.absolute == 0.25
    none = _with_tolerance(bundle, [])
    assert reproduction_tolerance(none, "onnx", "probability") == Tolerance(
        1e-3, 1e-3, 100.0, "the zoo's default")


def test_a_tolerance_that_is_not_a_number_names_its_field(tmp_path):
    bundle = write_bundle_v0_5(tmp_path / "b05")
    description = _with_tolerance(bundle, [{"absolute_tolerance": "small"}])
    with pytest.raises(BundleError) as caught:
        reproduction_tolerance(description, "onnx", "probability")
    assert caught.value.field == "config.bioimageio.reproducibility_tolerance[0].absolute_tolerance"
    assert caught.value.found == "small" and str(bundle.descriptor) in str(caught.value)


def test_0_4_bundles_get_the_zoo_s_0_4_tolerance(tmp_path):
    description = deepij.load(write_bundle_v0_4(tmp_path / "b04").folder).description
    found = reproduction_tolerance(description, "torchscript", "output")
    assert (found.relative, found.absolute, found.mismatched_per_million) == (1e-3, 1e-3, 0.0)


def test_compare_arrays_counts_nan_against_a_number_and_not_nan_against_nan():
    rule = Tolerance(relative=0.1, absolute=0.0, mismatched_per_million=0, source="test")
    got = np.array([[1.0, np.nan], [np.nan, 10.5]])
    expected = np.array([[1.05, np.nan], [3.0, 10.0]])
    found = compare_arrays(got, expected, ("y", "x"), rule, case="c", output="o", expected_file="f")
    # 1.0 vs 1.05: 0.05 <= 0.1 * 1.05; NaN vs NaN agree; NaN vs 3 mismatched; 10.5 vs 10: 0.5 <= 1.0
    assert found.mismatched == 1 and not found.passed
    assert found.worst[0].position == {"y": 1, "x": 0}
    assert found.mismatched_per_million == pytest.approx(1 / 4 * 1e6)


def test_test_bundle_is_not_collected_as_a_test():
    assert reproduce.test_bundle.__test__ is False
