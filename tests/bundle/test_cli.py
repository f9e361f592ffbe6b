"""``deepij info`` and ``deepij install``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepij.cli import main
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
        [sys.executable, "-m", "deepij.cli", "info", str(written["0.5"].folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "deepij test 0.5 model" in result.stdout
