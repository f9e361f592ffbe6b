"""Opening a bundle zip (``open_bundle``, ``deepij.load``) unpacks it into the cache only when it is accepted:
a refused descriptor, a checksum that does not match or an archive over the limits leave the cache as it was.
Real zips of real bundles (support.bundles), a real cache folder, a real HTTP server for URLs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import deepij
from deepij.bundle import open_bundle
from deepij.errors import ArchiveError, BundleError, ChecksumError
from support.bundles import WrittenBundle, zip_bundle
from support.http import LocalServer


def listing(folder: Path) -> list[str]:
    """Every path under ``folder`` (hidden staging folders included), relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def changed_zip(written: dict[str, WrittenBundle], tmp_path: Path) -> Callable[..., Path]:
    """``changed_zip("0.5", change)``: a zip (wrapped in a top folder) of a changed bundle copy."""

    def make(version: str, change: Callable[[Path], None]) -> Path:
        folder = tmp_path / f"bundle_{version.replace('.', '')}"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(written[version].folder, folder)
        change(folder)
        return zip_bundle(folder, tmp_path / f"{folder.name}.zip", wrap_in_folder=True)

    return make


def bad_axis_type(folder: Path) -> None:
    descriptor = folder / "rdf.yaml"
    descriptor.write_text(descriptor.read_text().replace("type: space", "type: spaze", 1))


def huge_size(folder: Path) -> None:
    descriptor = folder / "rdf.yaml"
    data = yaml.safe_load(descriptor.read_text())
    data["inputs"][0]["axes"][2]["size"] = 2**40
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False))


def other_weights(folder: Path) -> None:
    weights = folder / "weights_torchscript.pt"
    weights.write_bytes(weights.read_bytes() + b"\0")  # no longer the file its sha256 names


@pytest.fixture
def cache(tmp_path: Path, written: dict[str, WrittenBundle]) -> Path:
    """The test's cache folder, already holding one accepted bundle (so 'unchanged' is not 'empty')."""
    open_bundle(zip_bundle(written["0.4"].folder, tmp_path / "accepted.zip"))
    folder = tmp_path / "cache"
    assert next(p for p in listing(folder / "bundles") if "/" not in p).startswith("accepted-")
    return folder


@pytest.mark.parametrize(
    ("change", "kind", "message", "field"),
    [
        (bad_axis_type, BundleError, "wrong axis type", "inputs[0].axes[2].type"),
        (huge_size, BundleError, "axis size too large", "inputs[0].axes[2].size"),
        (other_weights, ChecksumError, "sha256", "weights.torchscript.sha256"),
    ],
)
def test_a_refused_zip_leaves_the_cache_unchanged(
    changed_zip, cache: Path, change, kind: type, message: str, field: str
) -> None:
    archive = changed_zip("0.5", change)
    before = listing(cache)
    with pytest.raises(kind, match=message) as caught:
        open_bundle(archive)
    assert caught.value.field == field
    # the error names the zip and the file in it, not a staging folder that no longer exists
    assert caught.value.file is not None and caught.value.file.startswith(f"{archive}: {archive.stem}/")
    assert ".deepij-opening-" not in str(caught.value)
    assert listing(cache) == before


def test_deepij_load_of_a_refused_zip_leaves_the_cache_unchanged(changed_zip, cache: Path) -> None:
    archive = changed_zip("0.5", bad_axis_type)
    before = listing(cache)
    with pytest.raises(BundleError, match="wrong axis type"):
        deepij.load(archive)
    assert listing(cache) == before


def bad_instance_op(folder: Path) -> None:
    """A StarDist op whose grid has one entry for a 2-D output: the descriptor reads, the model refuses."""
    descriptor = folder / "rdf.yaml"
    data = yaml.safe_load(descriptor.read_text())
    data["outputs"][0]["postprocessing"] = [
        {"id": "stardist_postprocessing", "kwargs": {"grid": [2], "b": 2, "n_rays": 32,
                                                   "prob_threshold": 0.5, "nms_threshold": 0.4}}
    ]
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False))


def test_deepij_load_of_a_zip_the_model_refuses_leaves_the_cache_unchanged(changed_zip, cache: Path) -> None:
    # the descriptor reads, but making the model checks the instance op's kwargs and refuses them: the
    # unpacked copy was kept before, as the refusal came after open_bundle
    archive = changed_zip("0.5", bad_instance_op)
    before = listing(cache)
    with pytest.raises(BundleError, match="grid"):
        deepij.load(archive)
    assert listing(cache) == before


def test_a_zip_over_the_archive_limits_leaves_the_cache_unchanged(
    written: dict[str, WrittenBundle], cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = zip_bundle(written["0.5"].folder, tmp_path / "many.zip")
    before = listing(cache)
    monkeypatch.setenv("DEEPIJ_ARCHIVE_MAX_FILES", "2")
    with pytest.raises(ArchiveError, match="too many files in the archive"):
        open_bundle(archive)
    assert listing(cache) == before


def test_an_accepted_zip_is_unpacked_once_after_a_refusal(
    changed_zip, written: dict[str, WrittenBundle], cache: Path, tmp_path: Path
) -> None:
    archive = changed_zip("0.5", other_weights)
    with pytest.raises(ChecksumError):
        open_bundle(archive)
    before = set(listing(cache / "bundles"))
    description = open_bundle(archive, verify=False)  # asked to read it unchecked: it is cached
    added = {p for p in listing(cache / "bundles") if "/" not in p} - before
    assert added == {description.root.parent.name}, "one complete copy, the top folder the zip wraps in it"
    assert description.root.name == archive.stem and description.name == written["0.5"].name
    assert not any(".deepij-opening-" in p for p in listing(cache))


def test_a_refused_zip_from_a_url_leaves_neither_download_nor_copy(
    changed_zip, written: dict[str, WrittenBundle], cache: Path
) -> None:
    refused = changed_zip("0.5", bad_axis_type).read_bytes()
    good = zip_bundle(written["0.5"].folder, cache.parent / "good.zip").read_bytes()
    before = listing(cache)
    with LocalServer({"/m.zip": refused}) as server:
        with pytest.raises(BundleError, match="wrong axis type") as caught:
            open_bundle(server.url("/m.zip"))
        assert caught.value.file is not None and caught.value.file.startswith(server.url("/m.zip") + ": ")
        assert listing(cache) == [*before, "downloads"], "the download is gone, its (shared) folder stays"
        server.files["/m.zip"] = good  # fixed on the server: fetched again, not refused from the cache
        assert open_bundle(server.url("/m.zip")).name == written["0.5"].name
        assert len(server.requests) == 2
