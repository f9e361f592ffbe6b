"""Every local path a descriptor names stays inside the bundle folder: weights, architectures, macros, jars,
attachments, test files; absolute paths, ``..`` and links leading out are refused with a clear error."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from deepij.bundle import install, open_bundle, resolve_file, resolve_weights
from deepij.bundle.paths import inside_bundle
from deepij.errors import BundleError
from support.bundles import WrittenBundle

OUTSIDE = "path leads out of the bundle folder"


def _change(folder: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    descriptor = next(folder / n for n in ("rdf.yaml", "model.yaml") if (folder / n).is_file())
    data = yaml.safe_load(descriptor.read_text())
    change(data)
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False))
    return descriptor


def _set_architecture_source(d: dict[str, Any], source: str) -> None:
    d["weights"]["pytorch_state_dict"]["architecture"]["source"] = source


def _set_macro(d: dict[str, Any], source: str) -> None:
    d["config"]["deepimagej"]["prediction"]["preprocess"] = [
        {"spec": "ij.IJ::runMacroFile", "kwargs": source}
    ]


def _set_jar(d: dict[str, Any], source: str) -> None:
    d["config"]["deepimagej"]["prediction"]["postprocess"] = [{"spec": f"{source} my.Post::run"}]


CASES = [
    ("0.5", "weights.torchscript.source", lambda d, s: d["weights"]["torchscript"].update(source=s)),
    ("0.5", "weights.pytorch_state_dict.architecture", _set_architecture_source),
    ("0.5", "inputs[0].test_tensor", lambda d, s: d["inputs"][0].update(test_tensor={"source": s})),
    ("0.5", "attachments", lambda d, s: d.update(attachments=[{"source": s}])),
    ("0.4", "weights.onnx.attachments", lambda d, s: d["weights"]["onnx"].update(attachments={"files": [s]})),
    ("0.3", "config.deepimagej.prediction.preprocess", _set_macro),
    ("0.3", "config.deepimagej.prediction.postprocess", _set_jar),
    ("0.3", "test_inputs", lambda d, s: d.update(test_inputs=[s])),
    ("0.3", "attachments", lambda d, s: d.update(attachments={"files": [s]})),
]


def _suffix(field: str) -> str:
    return {"architecture": ".py", "preprocess": ".ijm", "postprocess": ".jar"}.get(
        field.rsplit(".")[-1], ".npy"
    )


@pytest.mark.parametrize(("version", "field", "change"), CASES, ids=[f"{v}-{f}" for v, f, _ in CASES])
@pytest.mark.parametrize("kind", ["absolute", "dotdot", "link"])
def test_paths_leading_out_are_refused_at_opening(
    bundle_copy, tmp_path: Path, version: str, field: str, change, kind: str
) -> None:
    folder = bundle_copy(version)
    secret = tmp_path / f"secret{_suffix(field)}"
    secret.write_text("not the bundle's")
    if kind == "absolute":
        source = str(secret)
    elif kind == "dotdot":
        source = f"sub/../../{secret.name}"
    else:
        (folder / f"innocent{secret.suffix}").symlink_to(secret)
        source = f"innocent{secret.suffix}"
    descriptor = _change(folder, lambda d: change(d, source))
    with pytest.raises(BundleError, match=OUTSIDE) as caught:
        open_bundle(folder, verify=False)
    assert caught.value.file == str(descriptor)
    assert caught.value.field == field and caught.value.found == source
    assert "inside" in caught.value.expected


def test_an_absolute_weights_path_is_never_hashed(bundle_copy) -> None:
    folder = bundle_copy("0.5")
    _change(folder, lambda d: d["weights"]["torchscript"].update(source="/etc/passwd"))
    with pytest.raises(BundleError, match=OUTSIDE) as caught:
        open_bundle(folder)  # verifying would hash the file: refused before
    assert "sha256" not in str(caught.value)


def test_the_check_at_use_catches_files_changed_after_opening(bundle_copy, tmp_path: Path) -> None:
    folder = bundle_copy("0.5")
    description = open_bundle(folder)
    weights = folder / "weights_torchscript.pt"
    elsewhere = tmp_path / "elsewhere.pt"
    weights.rename(elsewhere)
    weights.symlink_to(elsewhere)
    with pytest.raises(BundleError, match=OUTSIDE) as caught:
        resolve_weights(description, "torchscript")
    assert caught.value.field == "weights.torchscript.source"
    with pytest.raises(BundleError, match=OUTSIDE):
        resolve_file(description, "weights_torchscript.pt")
    with pytest.raises(BundleError, match=OUTSIDE):
        description.path("weights_torchscript.pt", field="weights.torchscript.source")
    assert description.path("test_input.npy") == folder / "test_input.npy"


def test_an_installed_zip_cannot_point_outside_the_install(
    written: dict[str, WrittenBundle], tmp_path: Path
) -> None:
    data = yaml.safe_load((written["0.5"].folder / "rdf.yaml").read_text())
    data["weights"]["torchscript"]["source"] = "../../../../../../../../etc/passwd"
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("rdf.yaml", yaml.safe_dump(data))
        for name in ("weights_torchscript.pt", "weights_state_dict.pt", "torch_nets.py", "test_input.npy"):
            if (written["0.5"].folder / name).exists():
                zf.write(written["0.5"].folder / name, name)
    with pytest.raises(BundleError, match=OUTSIDE):
        install(archive, models_dir=tmp_path / "models")
    assert [p.name for p in (tmp_path / "models").iterdir()] == []


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "C:/Windows/x.dll", "c:\\x.pt", "..", "a/../../b", "a\\..\\..\\b", "//server/x"]
)
def test_inside_bundle_refuses(tmp_path: Path, path: str) -> None:
    with pytest.raises(BundleError, match=OUTSIDE) as caught:
        inside_bundle(tmp_path, path, descriptor="rdf.yaml", field="weights.onnx.source")
    assert (caught.value.file, caught.value.field, caught.value.found) == (
        "rdf.yaml",
        "weights.onnx.source",
        path,
    )


@pytest.mark.parametrize("path", ["w.pt", "a/b/w.pt", "a/../w.pt", "./w.pt", "a\\w.pt", "not/there/yet.npy"])
def test_inside_bundle_accepts(tmp_path: Path, path: str) -> None:
    (tmp_path / "a").mkdir()
    assert inside_bundle(tmp_path, path) == tmp_path / path.replace("\\", "/")


def test_a_link_inside_the_bundle_is_fine(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.pt").write_bytes(b"w")
    (tmp_path / "alias.pt").symlink_to(tmp_path / "weights" / "w.pt")
    assert inside_bundle(tmp_path, "alias.pt") == tmp_path / "alias.pt"


def test_a_bundle_reached_through_a_link_is_fine(written: dict[str, WrittenBundle], tmp_path: Path) -> None:
    link = tmp_path / "linked_bundle"
    os.symlink(written["0.5"].folder, link)
    description = open_bundle(link)
    assert resolve_weights(description, "torchscript") == link / "weights_torchscript.pt"
