"""resolve_weights: sha256 checks, missing files, TF SavedModel zips unpacked once and atomically, URLs."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepij.bundle import open_bundle, resolve_file, resolve_weights
from deepij.bundle.info import summarize
from deepij.errors import BundleError, ChecksumError
from support.bundles import WrittenBundle, sha256_file, write_bundle_v0_3
from support.http import LocalServer


@pytest.fixture(scope="session")
def tf_bundle(tmp_path_factory: pytest.TempPathFactory) -> WrittenBundle:
    """A deepImageJ 2.x bundle with a real TF1 SavedModel in tensorflow_saved_model_bundle.zip."""
    return write_bundle_v0_3(tmp_path_factory.mktemp("tf") / "v03tf", weights="tensorflow")


@pytest.fixture
def tf_copy(tf_bundle: WrittenBundle, tmp_path: Path) -> Path:
    target = tmp_path / "tf_bundle"
    shutil.copytree(tf_bundle.folder, target)
    return target


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_local_weights_of_each_format(written: dict[str, WrittenBundle]) -> None:
    for version, bundle in written.items():
        description = open_bundle(bundle.folder)
        for fmt, source in bundle.weights.items():
            assert resolve_weights(description, fmt) == bundle.folder / source, (version, fmt)
    description = open_bundle(written["0.3"].folder)
    assert resolve_weights(description, "pytorch_script").name == "pytorch_script.pt"  # the old name works


def test_format_not_in_the_bundle(written: dict[str, WrittenBundle]) -> None:
    description = open_bundle(written["0.5"].folder)
    with pytest.raises(BundleError, match="the bundle has no such weights format") as caught:
        resolve_weights(description, "onnx")
    assert caught.value.found == "onnx" and "torchscript" in caught.value.expected


def test_missing_weights_file(bundle_copy) -> None:
    folder = bundle_copy("0.4")
    (folder / "weights.onnx").unlink()
    description = open_bundle(folder)  # the other formats are still usable
    with pytest.raises(BundleError, match="file missing from the bundle") as caught:
        resolve_weights(description, "onnx")
    assert caught.value.file == str(folder / "weights.onnx")
    assert caught.value.field == "weights.onnx.source"
    assert resolve_weights(description, "torchscript").is_file()
    assert summarize(description)["weights"]["onnx"]["status"] == "missing"


def test_sha256_mismatch(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    weights = folder / "weights_torchscript.pt"
    _corrupt(weights)
    with pytest.raises(ChecksumError, match="does not match the sha256") as caught:
        open_bundle(folder)
    assert caught.value.file == str(weights) and caught.value.found == sha256_file(weights)
    description = open_bundle(folder, verify=False)
    with pytest.raises(ChecksumError) as caught:
        resolve_weights(description, "torchscript")
    assert caught.value.file == str(weights)
    assert resolve_weights(description, "torchscript", verify=False) == weights
    assert summarize(description)["weights"]["torchscript"]["status"] == "sha256 mismatch"


def test_a_file_changed_after_a_check_is_checked_again(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    description = open_bundle(folder)
    assert resolve_weights(description, "torchscript")
    weights = folder / "weights_torchscript.pt"
    _corrupt(weights)
    os.utime(weights, ns=(1, 1))  # a different modification time, whatever the clock resolution
    with pytest.raises(ChecksumError):
        resolve_weights(description, "torchscript")


def test_paths_leaving_the_bundle_are_refused(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    descriptor = folder / "rdf.yaml"
    data = yaml.safe_load(descriptor.read_text())
    data["weights"]["torchscript"]["source"] = "../elsewhere/weights.pt"
    descriptor.write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match="path leads out of the bundle folder"):
        resolve_weights(open_bundle(folder), "torchscript")


# --- TensorFlow SavedModel zips --------------------------------------------------------------------------


def test_tf_zip_is_unpacked_once_next_to_the_descriptor(tf_copy: Path) -> None:
    description = open_bundle(tf_copy)
    assert description.deepimagej.tensorflow_tag == "serve"
    folder = resolve_weights(description, "tensorflow_saved_model_bundle")
    assert folder == tf_copy / "tensorflow_saved_model_bundle"
    assert (folder / "saved_model.pb").is_file() and (folder / "variables" / "variables.index").is_file()
    marker = folder / "saved_model.pb"
    before = marker.stat().st_mtime_ns
    assert resolve_weights(description, "tensorflow_saved_model_bundle") == folder
    assert marker.stat().st_mtime_ns == before, "not unpacked a second time"
    assert sorted(p.name for p in tf_copy.iterdir() if p.name.startswith(".")) == []


def test_tf_zip_unpacked_by_concurrent_processes(tf_copy: Path) -> None:
    code = (
        "import sys; from deepij.bundle import open_bundle, resolve_weights; "
        "print(resolve_weights(open_bundle(sys.argv[1]), 'tensorflow_saved_model_bundle'))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tf_copy)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    answers = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert answers == {str(tf_copy / "tensorflow_saved_model_bundle")}
    assert not [p for p in tf_copy.iterdir() if p.name.startswith(".")], "no temporary folder left"


def test_tf_zip_sha256_is_checked(tf_copy: Path) -> None:
    _corrupt(tf_copy / "tensorflow_saved_model_bundle.zip")
    description = open_bundle(tf_copy, verify=False)
    with pytest.raises(ChecksumError) as caught:
        resolve_weights(description, "tensorflow_saved_model_bundle")
    assert caught.value.file == str(tf_copy / "tensorflow_saved_model_bundle.zip")
    assert not (tf_copy / "tensorflow_saved_model_bundle").exists()


def test_saved_model_already_unzipped_by_deepimagej(tf_copy: Path) -> None:
    # deepImageJ 2.x unzips into the model folder itself and the zip may be gone
    shutil.unpack_archive(tf_copy / "tensorflow_saved_model_bundle.zip", tf_copy)
    (tf_copy / "tensorflow_saved_model_bundle.zip").unlink()
    description = open_bundle(tf_copy)
    assert resolve_weights(description, "tensorflow_saved_model_bundle") == tf_copy
    assert summarize(description)["weights"]["tensorflow_saved_model_bundle"]["status"] == "unpacked"


def test_saved_model_zip_missing(tf_copy: Path) -> None:
    (tf_copy / "tensorflow_saved_model_bundle.zip").unlink()
    with pytest.raises(BundleError, match="file missing from the bundle") as caught:
        resolve_weights(open_bundle(tf_copy), "tensorflow_saved_model_bundle")
    assert "saved_model.pb" in caught.value.expected


def test_a_bundle_folder_that_cannot_be_written_unpacks_into_the_cache(tf_copy: Path, tmp_path: Path) -> None:
    # A folder nobody can write into, whoever runs the test (root ignores read-only modes): a path whose
    # parent is a file. The SavedModel zip is served over HTTP, as a zoo descriptor can give it.
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    description = open_bundle(tf_copy)
    payload = (tf_copy / "tensorflow_saved_model_bundle.zip").read_bytes()
    with LocalServer({"/tf.zip": payload}) as server:
        entry = dataclasses.replace(
            description.weights["tensorflow_saved_model_bundle"], source=server.url("/tf.zip")
        )
        unwritable = dataclasses.replace(
            description, root=blocker / "bundle", weights={"tensorflow_saved_model_bundle": entry}
        )
        folder = resolve_weights(unwritable, "tensorflow_saved_model_bundle")
    assert (tmp_path / "cache" / "unpacked") in folder.parents
    assert (folder / "saved_model.pb").is_file() and blocker.read_text() == "not a folder"


# --- URLs ------------------------------------------------------------------------------------------------


def _remote_weights(folder: Path, url: str) -> None:
    descriptor = folder / "rdf.yaml"
    data = yaml.safe_load(descriptor.read_text())
    data["weights"]["torchscript"]["source"] = url
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False))


def test_url_weights_are_downloaded_once_and_checked(bundle_copy, tmp_path: Path) -> None:
    folder = bundle_copy("0.5")
    payload = (folder / "weights_torchscript.pt").read_bytes()
    with LocalServer({"/w.pt": payload}) as server:
        _remote_weights(folder, server.url("/w.pt"))
        description = open_bundle(folder)
        assert summarize(description)["weights"]["torchscript"]["status"] == "remote"
        path = resolve_weights(description, "torchscript")
        assert path.read_bytes() == payload and (tmp_path / "cache") in path.parents
        assert resolve_weights(description, "torchscript") == path
        assert len(server.requests) == 1


def test_url_weights_with_a_wrong_sha256(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    with LocalServer({"/w.pt": b"not the weights"}) as server:
        _remote_weights(folder, server.url("/w.pt"))
        with pytest.raises(ChecksumError, match="downloaded file does not match its sha256"):
            resolve_weights(open_bundle(folder), "torchscript")


def test_unreachable_url_weights(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    with LocalServer({}) as server:
        _remote_weights(folder, server.url("/missing.pt"))
        with pytest.raises(BundleError, match=r"weights not available.*HTTP 404") as caught:
            resolve_weights(open_bundle(folder), "torchscript")
        assert caught.value.field == "weights.torchscript.source"
        url = server.url("/gone.pt")
    _remote_weights(folder, url)  # the server is stopped now: nothing listens there
    with pytest.raises(BundleError, match="cannot download"):
        resolve_weights(open_bundle(folder), "torchscript")


def test_resolve_file_for_architecture_and_test_tensors(written: dict[str, WrittenBundle]) -> None:
    description = open_bundle(written["0.5"].folder)
    architecture = description.weights["pytorch_state_dict"].architecture
    assert resolve_file(description, architecture.source, architecture.sha256).name == "torch_nets.py"
    assert resolve_file(description, description.inputs[0].test_tensor).name == "test_input.npy"
