"""``deepij test``'s outcomes: weights that cannot be had here are skipped (not failed), what exits how, every
outcome as JSON with ``--json``, ``--no-verify``, and the bounded cost of the tiled comparison.

Real bundles from tests/support, a real HTTP server on 127.0.0.1 for remote weights, real files changed on
disk. The forward passes are counted on the real loaded network (a counting wrapper around its
``predict``, which still runs); the expected counts come from the tile arithmetic of FORMATS.md section 6,
done here by hand.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

import deepij
from deepij.frontdoors.cli import main
from support.bundles import write_bundle_v0_5
from support.http import LocalServer
from support.trust_bundles import write_large_input_bundle


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Downloads go to a cache of the test's own (never the user's)."""
    monkeypatch.setenv("DEEPIJ_CACHE_DIR", str(tmp_path / "cache"))


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    code = main(["test", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _remote_weights(bundle, fmt: str, url: str) -> None:
    rdf = yaml.safe_load(bundle.descriptor.read_text())
    rdf["weights"][fmt]["source"] = url
    bundle.descriptor.write_text(yaml.safe_dump(rdf, sort_keys=False))


# --- skipped, not failed ----------------------------------------------------------------------------------


def test_weights_that_cannot_be_downloaded_are_skipped_and_the_others_decide(tmp_path, capsys):
    bundle = write_bundle_v0_5(tmp_path / "b", weights=("torchscript", "onnx"))
    with LocalServer({}) as server:
        server.fail_with("/weights_torchscript.pt", 404)
        _remote_weights(bundle, "torchscript", server.url("/weights_torchscript.pt"))
        code, out, _ = run_cli(capsys, bundle.folder, "--no-tiled", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["status"], data["exit_code"]) == ("passed", 0)
    torchscript, onnx = data["formats"]
    assert (torchscript["weights_format"], torchscript["status"]) == ("torchscript", "skipped")
    assert "cannot be had here" in torchscript["error"] and "404" in torchscript["error"]
    assert torchscript["comparisons"] == []
    assert (onnx["weights_format"], onnx["status"]) == ("onnx", "passed")


def test_nothing_tested_when_every_format_is_skipped_exits_2(tmp_path, capsys):
    bundle = write_bundle_v0_5(tmp_path / "b", weights=("onnx", "pytorch_state_dict"))
    (bundle.folder / "weights.onnx").unlink()  # and the state dict needs --allow-code
    report = deepij.test_bundle(bundle.folder, tiled=False, verify=False)
    assert (report.status, report.exit_code) == ("nothing tested", 2)
    assert [f.status for f in report.formats] == ["skipped", "skipped"]
    assert report.message.startswith("nothing was tested: every weights format was skipped")
    assert "weights.onnx" in report.message and "allow_code" in report.message
    code, out, _ = run_cli(capsys, bundle.folder, "--no-tiled", "--no-verify")
    assert code == 2 and out.splitlines()[-1].startswith("result: nothing tested")


def test_weights_that_are_there_but_do_not_load_fail(tmp_path):
    bundle = write_bundle_v0_5(tmp_path / "b", weights=("torchscript", "onnx"))
    (bundle.folder / "weights.onnx").write_bytes(b"not an ONNX graph")
    report = deepij.test_bundle(bundle.folder, tiled=False, verify=False)
    assert report.status == "failed" and report.message == "failed: onnx"
    assert report.format("torchscript").status == "passed"
    onnx = report.format("onnx")
    assert onnx.status == "failed" and onnx.error.startswith("the weights do not load")


# --- JSON for every outcome, --no-verify ------------------------------------------------------------------


def test_a_checksum_mismatch_is_json_with_json_and_names_no_verify(tmp_path, capsys):
    bundle = write_bundle_v0_5(tmp_path / "b", weights=("onnx",))
    path = bundle.folder / "test_output.npy"
    np.save(path, np.load(path) + np.float32(0.01))  # the expected output changed after the descriptor
    code, out, err = run_cli(capsys, bundle.folder, "--json", "--no-tiled")
    assert code == 1 and err == ""
    data = json.loads(out)
    assert (data["status"], data["exit_code"], data["bundle"]) == ("error", 1, str(bundle.folder))
    error = data["error"]
    assert error["type"] == "ChecksumError" and error["field"] == "outputs[0].test_tensor.sha256"
    assert error["file"] == str(path) and "--no-verify" in error["advice"]
    assert "verify=False" not in out
    code, _, err = run_cli(capsys, bundle.folder, "--no-tiled")
    assert code == 1 and "--no-verify tests the bundle anyway" in err and "verify=False" not in err
    # --no-verify runs it; the changed expected output is still not compared, and says why
    code, out, _ = run_cli(capsys, bundle.folder, "--json", "--no-tiled", "--no-verify")
    data = json.loads(out)
    assert code == 1 and data["status"] == "failed"
    (comparison,) = data["formats"][0]["comparisons"]
    assert "does not match the sha256" in comparison["problem"] and comparison["elements"] == 0


def test_usage_errors_and_missing_bundles_are_json_too(tmp_path, capsys):
    bundle = write_bundle_v0_5(tmp_path / "b")
    code, out, err = run_cli(capsys, bundle.folder, "--json", "--weights-format", "keras")
    assert code == 2 and err == ""
    data = json.loads(out)
    assert (data["status"], data["exit_code"], data["error"]["type"]) == ("error", 2, "ArgumentError")
    assert "weights_format" in data["error"]["message"]
    code, out, _ = run_cli(capsys, tmp_path / "nowhere", "--json")
    assert code == 1 and json.loads(out)["status"] == "error"


# --- the tiled comparison's cost --------------------------------------------------------------------------


def test_a_small_tile_on_a_large_test_input_runs_a_few_tiles(tmp_path, monkeypatch):
    bundle = write_large_input_bundle(tmp_path / "large", side=256, weights=("onnx",))
    halo = bundle.model.halo  # 4: the declared halo is the receptive radius
    model = deepij.load(bundle.folder)
    backend = model.backend("onnx", None, "auto")
    windows: list[tuple[int, ...]] = []
    real_predict = backend.predict

    def counting(inputs):
        windows.extend([tuple(inputs[0].shape[-2:])] * inputs[0].shape[0])
        return real_predict(inputs)

    monkeypatch.setattr(backend, "predict", counting)
    report = deepij.test_bundle(model, weights_format="onnx", tile=13)
    model.close()
    onnx = report.format("onnx")
    assert report.status == "passed" and not onnx.seams_found, report.to_text()
    region = 13 - 2 * halo  # 5 valid pixels per tile
    whole_image_tiles = math.ceil(256 / region) ** 2  # what tiling the whole 256 x 256 input would run
    assert whole_image_tiles == 2704
    # a window of 2*4 + 2*5 = 18 pixels, rounded up to whole tiles (20), from the middle of the input
    asked = onnx.tiled[-1]
    assert asked.tiling == "tile asked for" and asked.crop == {"y": [118, 138], "x": [118, 138]}
    assert asked.n_tiles == 4 * 4 and asked.seams == {"y": [5, 10, 15], "x": [5, 10, 15]}
    # the forward passes at the small tile: those 16 tiles, and predict's seam check, whose probe grows no
    # larger than the run's tiles: 4 backgrounds, each a pass and one with an impulse (step 1: one position)
    assert windows.count((13, 13)) == 16 + 4 * (1 + 1)
    # deepImageJ's default tile holds the whole input (256 + 2*4): one tile, no window
    default = onnx.tiled[0]
    assert default.n_tiles == 1 and default.crop is None and (264, 264) in windows
    # everything else (the whole-image run, the receptive field's impulses, the runs' memory probes) is a
    # bounded number of passes too: far from the 2704 tiles of the whole input
    assert len(windows) < whole_image_tiles / 20
    assert onnx.tiled_seconds > 0


# --- test files that are not what their name says ---------------------------------------------------------


def _replace_tensor(bundle, field: str, data: bytes) -> None:
    """Write ``data`` into the test tensor file of ``inputs`` or ``outputs`` and give the descriptor its
    sha256, so the file is read (not refused as changed) and shows what it holds."""
    import hashlib

    rdf = yaml.safe_load(bundle.descriptor.read_text())
    tensor = rdf[field][0]["test_tensor"]
    (bundle.folder / tensor["source"]).write_bytes(data)
    tensor["sha256"] = hashlib.sha256(data).hexdigest()
    bundle.descriptor.write_text(yaml.safe_dump(rdf, sort_keys=False))


def test_a_test_input_of_random_bytes_is_an_error_naming_the_file_and_field(tmp_path, capsys):
    # it once ended in a traceback from numpy's loader
    bundle = write_bundle_v0_5(tmp_path / "b", weights=("onnx",))
    _replace_tensor(bundle, "inputs", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    code, out, err = run_cli(capsys, bundle.folder, "--no-tiled")
    assert code == 1 and "Traceback" not in out + err
    assert "test_input.npy" in out and "inputs[0].test_tensor" in out and "4096 bytes" in out, out


def test_a_test_output_of_random_bytes_fails_its_comparison_naming_it(tmp_path, capsys):
    bundle = write_bundle_v0_5(tmp_path / "b", weights=("onnx",))
    _replace_tensor(bundle, "outputs", b"<!DOCTYPE html><html><body>Not found</body></html>\n")
    report = deepij.test_bundle(bundle.folder, tiled=False)
    (comparison,) = report.format("onnx").comparisons
    assert not comparison.passed and report.exit_code == 1
    assert "cannot read it" in comparison.problem and "outputs[0].test_tensor" in comparison.problem
    assert "an HTML page" in comparison.problem
