"""The sha256 of files other than weights (test and sample tensors, attachments, documentation, covers):
kept when read, written back by both writers, checked when a bundle is opened, reported by ``deepij info``.

Expected digests come from hashlib on the files themselves; expected descriptor text is the 0.5 format
(``{source, sha256}``) and, for 0.4, ``config.deepij.file_sha256``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from deepij.bundle import open_bundle, write_descriptor
from deepij.errors import BundleError, ChecksumError
from deepij.frontdoors.cli import main
from support.bundles import TRAINING_LOG, zip_bundle


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit_descriptor(folder: Path, edit: Any, name: str = "rdf.yaml") -> None:
    descriptor = folder / name
    data = yaml.safe_load(descriptor.read_text(encoding="utf-8"))
    edit(data)
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def alter_test_output(folder: Path) -> None:
    """Another test output in place of the one the descriptor describes (its sha256 left as it was)."""
    values = np.load(folder / "test_output.npy")
    np.save(folder / "test_output.npy", values + np.float32(0.25))


# --- reading and writing -----------------------------------------------------------------------------------


def test_a_0_5_bundle_keeps_the_sha256_of_its_test_tensors_and_attachment(written) -> None:
    folder = written["0.5"].folder
    d = open_bundle(folder)
    assert d.file_sha256 == {
        "test_input.npy": digest(folder / "test_input.npy"),
        "test_output.npy": digest(folder / "test_output.npy"),
        TRAINING_LOG: digest(folder / TRAINING_LOG),
    }
    assert d.attachments == (TRAINING_LOG,)


def test_the_0_5_writer_writes_them_beside_their_files(written, bundle_copy) -> None:
    folder = bundle_copy("0.5")
    original = open_bundle(folder)
    write_descriptor(original, folder / "rdf.yaml")
    data = yaml.safe_load((folder / "rdf.yaml").read_text())
    expected_input = {"source": "test_input.npy", "sha256": digest(folder / "test_input.npy")}
    assert data["inputs"][0]["test_tensor"] == expected_input
    assert data["inputs"][0]["sample_tensor"] == expected_input  # the same file, so the same digest
    assert data["outputs"][0]["test_tensor"] == {
        "source": "test_output.npy",
        "sha256": digest(folder / "test_output.npy"),
    }
    assert data["attachments"] == [{"source": TRAINING_LOG, "sha256": digest(folder / TRAINING_LOG)}]
    assert data["documentation"] == "README.md"  # given without a sha256: written as before
    again = open_bundle(folder)  # verify=True: every file matches what was written
    assert again.file_sha256 == original.file_sha256


def test_the_0_4_writer_keeps_them_in_config(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    original = open_bundle(folder)
    write_descriptor(original, folder / "model.yaml", "0.4")
    (folder / "rdf.yaml").unlink()
    data = yaml.safe_load((folder / "model.yaml").read_text())
    # 0.4 file references stay plain paths, as deepImageJ 2.x and the 0.4 spec read them
    assert data["test_outputs"] == ["test_output.npy"]
    assert data["attachments"] == {"files": [TRAINING_LOG]}
    assert data["config"]["deepij"]["file_sha256"] == {
        "test_input.npy": digest(folder / "test_input.npy"),
        "test_output.npy": digest(folder / "test_output.npy"),
        TRAINING_LOG: digest(folder / TRAINING_LOG),
    }
    again = open_bundle(folder)
    assert again.format_version == "0.4.10"
    assert again.file_sha256 == original.file_sha256
    assert "deepij" not in again.config and again.config == original.config
    alter_test_output(folder)
    with pytest.raises(ChecksumError) as caught:
        open_bundle(folder)
    assert Path(caught.value.file) == folder / "test_output.npy"
    assert caught.value.field == "test_outputs[0].sha256"


def test_0_4_attachments_given_as_file_descriptions_keep_their_sha256(bundle_copy) -> None:
    folder = bundle_copy("0.4")
    macro = "zero_mean_unit_variance.ijm"

    def describe_macro(data: dict[str, Any]) -> None:
        data["attachments"] = {"files": [{"source": f"./{macro}", "sha256": digest(folder / macro).upper()}]}

    edit_descriptor(folder, describe_macro)
    d = open_bundle(folder)
    assert d.attachments == (macro,) and d.file_sha256 == {macro: digest(folder / macro)}


def test_a_file_given_two_different_sha256_is_refused(bundle_copy) -> None:
    folder = bundle_copy("0.5")

    def contradict(data: dict[str, Any]) -> None:
        data["inputs"][0]["sample_tensor"]["sha256"] = "0" * 64  # the test tensor's file, another digest

    edit_descriptor(folder, contradict)
    with pytest.raises(
        BundleError, match=re.escape("two different sha256 given for the file 'test_input.npy'")
    ) as caught:
        open_bundle(folder, verify=False)
    assert caught.value.field == "inputs[0].sample_tensor.sha256"


def test_a_sha256_that_is_not_one_is_refused(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    edit_descriptor(folder, lambda data: data["attachments"][0].update(sha256="abc123"))
    with pytest.raises(BundleError, match="not a sha256 digest") as caught:
        open_bundle(folder, verify=False)
    assert caught.value.field == "attachments[0].sha256" and caught.value.found == "abc123"


def test_a_sha256_in_config_for_a_file_not_named_is_refused(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    edit_descriptor(
        folder, lambda data: data["config"].update(deepij={"file_sha256": {"other.npy": "a" * 64}})
    )
    with pytest.raises(
        BundleError, match="a sha256 is given for a file the descriptor does not name"
    ) as caught:
        open_bundle(folder, verify=False)
    assert caught.value.found == "other.npy" and caught.value.field == "config.deepij.file_sha256"


# --- checking them -----------------------------------------------------------------------------------------


def test_an_altered_test_output_with_the_old_sha256_is_refused(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    alter_test_output(folder)
    with pytest.raises(ChecksumError) as caught:
        open_bundle(folder)
    error = caught.value
    assert Path(error.file) == folder / "test_output.npy"
    assert error.field == "outputs[0].test_tensor.sha256"
    assert error.found == digest(folder / "test_output.npy")
    assert "test_output.npy" in str(error) and "outputs[0].test_tensor.sha256" in str(error)
    # verify=False reads it, and keeps the sha256 the descriptor gives
    d = open_bundle(folder, verify=False)
    assert d.outputs[0].test_tensor == "test_output.npy" and d.file_sha256["test_output.npy"] != error.found


def test_an_altered_attachment_is_refused(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    (folder / TRAINING_LOG).write_text("epoch,loss\n1,0.1\n")
    with pytest.raises(ChecksumError) as caught:
        open_bundle(folder)
    assert Path(caught.value.file) == folder / TRAINING_LOG and caught.value.field == "attachments[0].sha256"
    assert open_bundle(folder, verify=False).attachments == (TRAINING_LOG,)


def test_an_altered_cover_or_documentation_is_refused(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    (folder / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n a cover")

    def describe(data: dict[str, Any]) -> None:
        data["covers"] = [{"source": "cover.png", "sha256": digest(folder / "cover.png")}]
        data["documentation"] = {"source": "README.md", "sha256": digest(folder / "README.md")}

    edit_descriptor(folder, describe)
    assert open_bundle(folder).covers == ("cover.png",)
    readme = (folder / "README.md").read_bytes()
    for path, field in (("README.md", "documentation.sha256"), ("cover.png", "covers[0].sha256")):
        original = (folder / path).read_bytes()
        (folder / path).write_bytes(original + b"\nchanged")
        with pytest.raises(ChecksumError) as caught:
            open_bundle(folder)
        assert Path(caught.value.file) == folder / path and caught.value.field == field
        (folder / path).write_bytes(original)
    assert (folder / "README.md").read_bytes() == readme and open_bundle(folder).documentation == "README.md"


def test_a_missing_file_with_a_sha256_is_left_to_info(bundle_copy, capsys) -> None:
    folder = bundle_copy("0.5")
    (folder / TRAINING_LOG).unlink()
    assert open_bundle(folder).attachments == (TRAINING_LOG,)
    assert main(["info", "--json", str(folder)]) == 0
    summary = json.loads(capsys.readouterr().out)
    statuses = {f["path"]: f["status"] for f in summary["file_sha256"]}
    assert statuses[TRAINING_LOG] == "missing"
    assert {"field": "attachments", "path": TRAINING_LOG} in summary["missing_files"]


def test_info_reports_a_file_that_does_not_match(bundle_copy, capsys) -> None:
    folder = bundle_copy("0.5")
    alter_test_output(folder)
    assert main(["info", "--json", str(folder)]) == 0
    files = {f["path"]: f for f in json.loads(capsys.readouterr().out)["file_sha256"]}
    assert {path: f["status"] for path, f in files.items()} == {
        "test_input.npy": "verified",
        "test_output.npy": "sha256 mismatch",
        TRAINING_LOG: "verified",
    }
    assert files["test_output.npy"]["field"] == "outputs[0].test_tensor.sha256"
    assert files["test_input.npy"]["sha256"] == digest(folder / "test_input.npy")
    assert main(["info", "--json", "--no-verify", str(folder)]) == 0
    files = {f["path"]: f for f in json.loads(capsys.readouterr().out)["file_sha256"]}
    assert files["test_output.npy"]["status"] == "present"
    assert main(["info", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    (line,) = [x for x in lines if "test_output.npy" in x]
    assert line.split() == ["outputs[0].test_tensor.sha256", "sha256", "mismatch", "test_output.npy"]


def test_a_zipped_bundle_with_an_altered_test_output_is_refused(bundle_copy, tmp_path: Path) -> None:
    folder = bundle_copy("0.5")
    alter_test_output(folder)
    archive = zip_bundle(folder, tmp_path / "altered.zip")
    with pytest.raises(ChecksumError, match=re.escape("test_output.npy")):
        open_bundle(archive)
    assert open_bundle(archive, verify=False).name == "deepij test 0.5 model"


def test_the_writers_refuse_a_sha256_for_a_file_not_named(written, tmp_path: Path) -> None:
    d = open_bundle(written["0.5"].folder)
    orphan = dataclasses.replace(d, file_sha256={**d.file_sha256, "elsewhere.npy": "b" * 64})
    for version in ("0.5", "0.4"):
        with pytest.raises(BundleError, match="does not name") as caught:
            write_descriptor(orphan, tmp_path / f"rdf_{version}.yaml", version)
        assert caught.value.found == "elsewhere.npy"
        assert not (tmp_path / f"rdf_{version}.yaml").exists()


def test_install_refuses_a_zip_with_an_altered_test_output(bundle_copy, tmp_path: Path) -> None:
    from deepij.bundle import install

    folder = bundle_copy("0.5")
    alter_test_output(folder)
    archive = zip_bundle(folder, tmp_path / "altered.zip")
    models = tmp_path / "models_here"
    with pytest.raises(ChecksumError, match=re.escape("outputs[0].test_tensor.sha256")):
        install(archive, models_dir=models)
    assert not (models / "altered").exists()
    assert install(archive, models_dir=models, verify=False) == models / "altered"
