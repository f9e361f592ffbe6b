"""install(): zips, URLs and folders into a models folder, all or nothing; find_model by name."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

import deepij
from deepij.bundle import default_models_dir, find_model, install, installed_models, open_bundle
from deepij.errors import ArchiveError, BundleError, ChecksumError, ModelNotFoundError
from support.bundles import WrittenBundle, zip_bundle
from support.http import LocalServer


def _only_bundles(models: Path) -> list[str]:
    """The entries of a models folder; hidden staging folders must never stay behind."""
    return sorted(p.name for p in models.iterdir())


def test_install_a_zip_into_the_default_models_folder(
    written: dict[str, WrittenBundle], tmp_path: Path
) -> None:
    archive = zip_bundle(written["0.4"].folder, tmp_path / "unet_test.zip")
    folder = deepij.install(archive)
    assert folder == tmp_path / "models" / "unet_test" == default_models_dir() / "unet_test"
    assert (folder / "rdf.yaml").is_file() and (folder / "weights.onnx").is_file()
    assert open_bundle(folder).name == written["0.4"].name
    assert _only_bundles(tmp_path / "models") == ["unet_test"]


def test_install_a_wrapped_zip_into_an_imagej_folder(
    written: dict[str, WrittenBundle], tmp_path: Path
) -> None:
    fiji = tmp_path / "Fiji.app"
    (fiji / "plugins").mkdir(parents=True)
    archive = zip_bundle(written["0.3"].folder, tmp_path / "dij_model.zip", wrap_in_folder=True)
    folder = install(archive, models_dir=fiji)
    assert folder == fiji / "models" / "dij_model"
    assert (folder / "model.yaml").is_file() and (folder / "preprocessing.ijm").is_file()


def test_install_a_folder(written: dict[str, WrittenBundle], tmp_path: Path) -> None:
    folder = install(written["0.5"].folder, models_dir=tmp_path / "m")
    assert folder == tmp_path / "m" / "v05" and (folder / "rdf.yaml").is_file()


def test_install_from_a_url_with_resume(written: dict[str, WrittenBundle], tmp_path: Path) -> None:
    archive = zip_bundle(written["0.5"].folder, tmp_path / "zoo_model.zip")
    progress: list[int] = []
    with LocalServer({"/files/zoo_model.zip": archive.read_bytes()}) as server:
        server.drop_after("/files/zoo_model.zip", 20_000)
        folder = install(
            server.url("/files/zoo_model.zip"), progress=lambda done, total: progress.append(done)
        )
        assert server.ranges_asked("/files/zoo_model.zip") == [None, "bytes=20000-"]
    assert folder.name == "zoo_model" and open_bundle(folder).name == written["0.5"].name
    assert progress[-1] == archive.stat().st_size
    assert not list((tmp_path / "cache" / "downloads").rglob("*.zip")), "the downloaded zip is not kept"


def test_an_existing_bundle_is_not_replaced_unless_asked(
    written: dict[str, WrittenBundle], tmp_path: Path
) -> None:
    archive = zip_bundle(written["0.4"].folder, tmp_path / "model.zip")
    first = install(archive, models_dir=tmp_path / "m")
    (first / "note.txt").write_text("mine")
    with pytest.raises(BundleError, match="a model is already installed there") as caught:
        install(archive, models_dir=tmp_path / "m")
    assert caught.value.file == str(first) and (first / "note.txt").exists()
    again = install(archive, models_dir=tmp_path / "m", overwrite=True)
    assert again == first and not (first / "note.txt").exists()
    assert _only_bundles(tmp_path / "m") == [first.name]


def test_failures_leave_nothing_behind(written: dict[str, WrittenBundle], tmp_path: Path) -> None:
    models = tmp_path / "m"
    broken = tmp_path / "broken"
    shutil.copytree(written["0.5"].folder, broken)
    data = yaml.safe_load((broken / "rdf.yaml").read_text())
    data["inputs"][0]["axes"][2]["id"] = "w"
    (broken / "rdf.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match="space axes must be called x, y or z"):
        install(zip_bundle(broken, tmp_path / "broken.zip"), models_dir=models)
    assert _only_bundles(models) == []

    corrupt = tmp_path / "corrupt"
    shutil.copytree(written["0.5"].folder, corrupt)
    (corrupt / "weights_torchscript.pt").write_bytes(b"garbage")
    with pytest.raises(ChecksumError):
        install(zip_bundle(corrupt, tmp_path / "corrupt.zip"), models_dir=models)
    assert _only_bundles(models) == []
    assert install(tmp_path / "corrupt.zip", models_dir=models, verify=False).is_dir()

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("rdf.yaml", (written["0.5"].folder / "rdf.yaml").read_text())
        zf.writestr("../../outside.txt", "x")
    with pytest.raises(ArchiveError, match="path escaping the target folder"):
        install(evil, models_dir=models)
    assert _only_bundles(models) == ["corrupt"] and not (tmp_path / "outside.txt").exists()

    with pytest.raises(BundleError, match="no such file or folder"):
        install(tmp_path / "nothing.zip", models_dir=models)


def test_install_from_an_unreachable_url(tmp_path: Path) -> None:
    with LocalServer({}) as server, pytest.raises(BundleError, match="HTTP 404"):
        install(server.url("/model.zip"), models_dir=tmp_path / "m")
    assert _only_bundles(tmp_path / "m") == []


# --- lookup ----------------------------------------------------------------------------------------------


@pytest.fixture
def models(written: dict[str, WrittenBundle], tmp_path: Path) -> Path:
    """A models folder: the three bundles, one renamed with quotes, one broken, one duplicate name."""
    models = tmp_path / "lookup_models"
    for version, bundle in written.items():
        shutil.copytree(bundle.folder, models / f"bundle_{version.replace('.', '')}")
    descriptor = models / "bundle_03" / "model.yaml"
    descriptor.write_text(
        descriptor.read_text().replace("name: deepij test 0.3 model", "name: '\"UNet 2D Nuclei Broad\"'")
    )
    (models / "broken").mkdir()
    (models / "broken" / "rdf.yaml").write_text("name: [unclosed\n")
    (models / "not_a_bundle").mkdir()
    return models


def test_find_model_by_name_then_folder(models: Path) -> None:
    assert find_model("UNet 2D Nuclei Broad", models_dir=models) == models / "bundle_03"
    assert find_model("[UNet 2D Nuclei Broad]".strip("[]"), models_dir=models) == models / "bundle_03"
    assert find_model('"deepij test 0.5 model"', models_dir=models) == models / "bundle_05"
    assert find_model("bundle_04", models_dir=models) == models / "bundle_04"
    assert find_model("broken", models_dir=models) == models / "broken"  # loading it will say what is wrong
    assert find_model("  unet 2d NUCLEI broad ", models_dir=models) == models / "bundle_03"
    assert {m.folder.name: m.name for m in installed_models(models)}["broken"] is None


def test_find_model_not_found_or_ambiguous(models: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no model called 'Nope'") as caught:
        find_model("Nope", models_dir=models)
    assert "'deepij test 0.4 model'" in str(caught.value)
    shutil.copytree(models / "bundle_05", models / "bundle_05_copy")
    with pytest.raises(ModelNotFoundError, match="2 installed models are called") as caught:
        find_model("deepij test 0.5 model", models_dir=models)
    assert "bundle_05_copy" in str(caught.value) and "bundle_05;" in str(caught.value)
    assert find_model("bundle_05_copy", models_dir=models) == models / "bundle_05_copy"


def test_find_model_in_the_default_folder(written: dict[str, WrittenBundle], tmp_path: Path) -> None:
    install(zip_bundle(written["0.4"].folder, tmp_path / "installed.zip"))
    assert deepij.find_model("deepij test 0.4 model") == tmp_path / "models" / "installed"


def test_install_from_a_url_without_a_file_name(written: dict[str, WrittenBundle], tmp_path: Path) -> None:
    archive = zip_bundle(written["0.4"].folder, tmp_path / "x.zip")
    with LocalServer({"/records/1/files/x.zip/content": archive.read_bytes()}) as server:
        folder = install(server.url("/records/1/files/x.zip/content"), models_dir=tmp_path / "m")
    assert folder == tmp_path / "m" / "deepij test 0.4 model"


def test_a_refused_download_is_not_kept(tmp_path: Path) -> None:
    with LocalServer({"/m.zip": b"PK\x03\x04 not really a zip"}) as server:
        with pytest.raises(ArchiveError, match="not a readable zip archive") as caught:
            install(server.url("/m.zip"), models_dir=tmp_path / "m")
        with pytest.raises(BundleError, match="names a folder"):
            install(server.url("/m.zip/.."), models_dir=tmp_path / "m")
        assert caught.value.file == server.url("/m.zip")  # the URL given, not the deleted download
    assert not list((tmp_path / "cache").rglob("*.zip*")), "nothing left in the download cache"
    assert _only_bundles(tmp_path / "m") == []
