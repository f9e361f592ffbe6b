"""Wrong argument types and values for the public bundle functions raise ArgumentTypeError/ArgumentError
naming the argument (never a bare TypeError from deep inside, never a BundleError about a file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepij.bundle import (
    find_descriptor,
    find_model,
    install,
    installed_models,
    open_bundle,
    resolve_file,
    resolve_weights,
    summarize,
    write_descriptor,
)
from deepij.bundle.archive import extract_zip
from deepij.bundle.download import download
from deepij.errors import ArgumentError, ArgumentTypeError, BundleError
from support.bundles import WrittenBundle


@pytest.fixture
def description(written: dict[str, WrittenBundle]):
    return open_bundle(written["0.5"].folder)


CALLS = [
    ("source", lambda d, t: open_bundle(None)),
    ("source", lambda d, t: open_bundle(3)),
    ("source", lambda d, t: open_bundle(b"bundle")),
    ("verify", lambda d, t: open_bundle(t, verify="yes")),
    ("models_dir", lambda d, t: install(t, models_dir=3)),
    ("zip_or_url", lambda d, t: install(None)),
    ("overwrite", lambda d, t: install(t, models_dir=t / "m", overwrite=1)),
    ("progress", lambda d, t: install(t, models_dir=t / "m", progress="bar")),
    ("limits", lambda d, t: install(t, models_dir=t / "m", limits={"max_bytes": 1})),
    ("models_dir", lambda d, t: installed_models(3.5)),
    ("name", lambda d, t: find_model(None, models_dir=t)),
    ("description", lambda d, t: resolve_weights("rdf.yaml", "onnx")),
    ("weights_format", lambda d, t: resolve_weights(d, 3)),
    ("verify", lambda d, t: resolve_weights(d, "torchscript", verify=None)),
    ("source", lambda d, t: resolve_file(d, None)),
    ("sha256", lambda d, t: resolve_file(d, "test_input.npy", 123)),
    ("description", lambda d, t: summarize({"name": "x"})),
    ("description", lambda d, t: write_descriptor(None, t / "rdf.yaml")),
    ("path", lambda d, t: write_descriptor(d, None)),
    ("format_version", lambda d, t: write_descriptor(d, t / "rdf.yaml", "0.3")),
    ("format_version", lambda d, t: write_descriptor(d, t / "rdf.yaml", 0.5)),
    ("folder", lambda d, t: find_descriptor(None)),
    ("limits", lambda d, t: extract_zip(t / "x.zip", t / "out", limits=5)),
    ("url", lambda d, t: download(None, t / "x")),
    ("retries", lambda d, t: download("http://127.0.0.1:9/x", t / "x", retries=-1)),
    ("max_bytes", lambda d, t: download("http://127.0.0.1:9/x", t / "x", max_bytes=0)),
]


@pytest.mark.parametrize(("argument", "call"), CALLS, ids=[f"{i}-{a}" for i, (a, _) in enumerate(CALLS)])
def test_bad_arguments_are_named(description, tmp_path: Path, argument: str, call) -> None:
    with pytest.raises(ArgumentError) as caught:
        call(description, tmp_path)
    assert str(caught.value).startswith(f"{argument}: "), str(caught.value)
    assert not isinstance(caught.value, BundleError)


def test_types_and_values_are_told_apart(tmp_path: Path) -> None:
    with pytest.raises(ArgumentTypeError):
        open_bundle(None)
    with pytest.raises(TypeError):  # still a TypeError for callers that catch that
        install(tmp_path, models_dir=3)
    with pytest.raises(ValueError):
        open_bundle("   ")


def test_bundle_errors_are_not_value_errors(tmp_path: Path) -> None:
    """A broken file is not a bad argument: code catching ValueError (as the bundle package's own handlers
    around zipfile and yaml do) must not swallow or re-word it."""
    (tmp_path / "rdf.yaml").write_text("format_version: 0.5.3\nname: [unclosed\n")
    with pytest.raises(BundleError) as caught:
        open_bundle(tmp_path)
    assert not isinstance(caught.value, ValueError) and "malformed YAML" in str(caught.value)
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(BundleError) as caught:
        open_bundle(tmp_path / "bad.zip")
    assert not isinstance(caught.value, ValueError) and caught.value.file == str(tmp_path / "bad.zip")


def test_descriptor_names_are_looked_for_in_deepimagej_order(tmp_path: Path) -> None:
    # FORMATS.md section 1: rdf.yaml first (deepImageJ reads it before model.yaml), then model.yaml, then
    # bioimageio.yaml, then a single *.bioimageio.yaml
    names = ["x.bioimageio.yaml", "bioimageio.yaml", "model.yaml", "rdf.yaml"]
    for count in range(1, len(names) + 1):
        for name in names[:count]:
            (tmp_path / name).write_text("name: x\n")
        assert find_descriptor(tmp_path).name == names[count - 1]
