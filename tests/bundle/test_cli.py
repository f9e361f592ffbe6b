"""``deepij info`` and ``deepij install``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepij.frontdoors.cli import main
from support.bundles import WrittenBundle, zip_bundle


def test_info_text(written: dict[str, WrittenBundle], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(written["0.3"].folder)]) == 0
    out = capsys.readouterr().out
    assert "deepij test 0.3 model  (format 0.3.2)" in out
    assert "input 'input': axes bcyx (b=1 c=1 y=9+1k x=9+1k) float32" in out
    assert "output 'output': axes bcyx" in out and "halo {'y': 4, 'x': 4}" in out
    assert "deepImageJ preprocess: macro preprocessing.ijm" in out
    assert "torchscript" in out and "verified" in out


def test_info_json(written: dict[str, WrittenBundle], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json", str(written["0.5"].folder)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format_version"] == "0.5.4"
    assert summary["inputs"][0]["sizes"] == {"b": "any", "c": "1", "y": "9+1k", "x": "9+1k"}
    assert summary["outputs"][0]["sizes"]["y"] == "raw.y*1"
    assert summary["outputs"][0]["processing"] == ["sigmoid", "ensure_dtype"]
    assert {k: v["status"] for k, v in summary["weights"].items()} == {
        "torchscript": "verified",
        "pytorch_state_dict": "verified",
    }


def test_info_reports_mismatch_and_missing(bundle_copy, capsys: pytest.CaptureFixture[str]) -> None:
    folder = bundle_copy("0.4")
    (folder / "weights.onnx").unlink()
    (folder / "weights_torchscript.pt").write_bytes(b"changed")
    assert main(["info", "--json", str(folder)]) == 0
    statuses = {k: v["status"] for k, v in json.loads(capsys.readouterr().out)["weights"].items()}
    assert statuses == {"torchscript": "sha256 mismatch", "onnx": "missing", "pytorch_state_dict": "verified"}
    assert main(["info", "--json", "--no-verify", str(folder)]) == 0
    assert json.loads(capsys.readouterr().out)["weights"]["torchscript"]["status"] == "present"


def test_info_on_a_bad_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rdf.yaml").write_text("format_version: 0.5.3\nname: x\n")
    assert main(["info", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deepij info: ") and "inputs: missing required field" in err


def test_install_command(written: dict[str, WrittenBundle], tmp_path: Path, capsys) -> None:
    archive = zip_bundle(written["0.4"].folder, tmp_path / "cli_model.zip")
    models = tmp_path / "cli_models"
    assert main(["install", str(archive), "--models-dir", str(models)]) == 0
    assert capsys.readouterr().out.strip() == f"installed {models / 'cli_model'}"
    assert main(["install", str(archive), "--models-dir", str(models)]) == 1
    assert "already installed" in capsys.readouterr().err
    assert main(["install", str(archive), "--models-dir", str(models), "--force"]) == 0


def test_console_script(written: dict[str, WrittenBundle], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deepij.frontdoors.cli", "info", str(written["0.5"].folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "deepij test 0.5 model" in result.stdout


# --- files the descriptor names that the folder lacks -----------------------------------------------------


def test_info_flags_missing_macros_attachments_and_test_files(bundle_copy, capsys) -> None:
    folder = bundle_copy("0.3")
    (folder / "preprocessing.ijm").unlink()
    (folder / "resultImage.npy").unlink()
    assert main(["info", "--json", str(folder)]) == 0
    missing = json.loads(capsys.readouterr().out)["missing_files"]
    assert {(m["field"], m["path"]) for m in missing} == {
        ("config.deepimagej.prediction.preprocess", "preprocessing.ijm"),
        ("attachments", "preprocessing.ijm"),
        ("test_outputs", "resultImage.npy"),
        ("sample_outputs", "resultImage.npy"),
        ("documentation", "README.md"),  # the 0.3 test bundle names a README and a cover it never had
        ("covers", "cover.png"),
    }
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "missing files" in out and "preprocessing.ijm  (config.deepimagej.prediction.preprocess)" in out


def test_info_of_a_complete_bundle_lists_no_missing_files(written, capsys) -> None:
    assert main(["info", "--json", str(written["0.5"].folder)]) == 0
    assert json.loads(capsys.readouterr().out)["missing_files"] == []


# --- terminals and pipes (real subprocesses) --------------------------------------------------------------

EVIL_NAME = "evil\x1b]0;pwned\x07 model\x9b2J\u202e"


def _named(bundle_copy, name: str) -> Path:
    folder = bundle_copy("0.5")
    descriptor = folder / "rdf.yaml"
    data = yaml.safe_load(descriptor.read_text())
    data["name"] = name
    data["authors"][0]["name"] = "Estibaliz Gómez-de-Mariscal"
    descriptor.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return folder


def _deepij(*args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "deepij.frontdoors.cli", *args],
        capture_output=True,
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize("as_json", [False, True])
def test_control_characters_in_names_are_escaped(bundle_copy, as_json: bool) -> None:
    folder = _named(bundle_copy, EVIL_NAME)
    result = _deepij("info", *(["--json"] if as_json else []), str(folder), PYTHONIOENCODING="utf-8")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8")
    for char in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert char not in out
    if as_json:
        assert json.loads(out)["name"] == EVIL_NAME  # escaped as JSON: the data is unchanged
    else:
        assert "evil\\x1b]0;pwned\\x07 model\\x9b2J\\u202e" in out


def test_an_ascii_only_terminal(bundle_copy) -> None:
    folder = _named(bundle_copy, "modèle")
    for args in (["info", str(folder)], ["info", "--json", str(folder)]):
        result = _deepij(*args, PYTHONIOENCODING="ascii", LANG="C", LC_ALL="C")
        assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr
        assert result.stdout.isascii() and b"mod\\xe8le" in result.stdout


def test_an_error_on_an_ascii_only_terminal(tmp_path: Path) -> None:
    (tmp_path / "modèle").mkdir()
    result = _deepij("info", str(tmp_path / "modèle"), PYTHONIOENCODING="ascii", LANG="C", LC_ALL="C")
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert b"no model descriptor" in result.stderr and b"mod\\xe8le" in result.stderr


def test_a_closed_pipe(written) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "deepij.frontdoors.cli", "info", str(written["0.5"].folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader is gone before deepij writes (as `deepij info X | head -0`)
    err = child.stderr.read()
    child.wait(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
    assert child.returncode == 141


def test_a_closed_pipe_in_a_shell_pipeline(written) -> None:
    result = subprocess.run(
        f"'{sys.executable}' -m deepij.frontdoors.cli info '{written['0.3'].folder}' | head -1",
        shell=True,
        capture_output=True,
        timeout=120,
    )
    assert result.stdout.decode().startswith("deepij test 0.3 model")
    assert b"Traceback" not in result.stderr and b"Exception ignored" not in result.stderr
