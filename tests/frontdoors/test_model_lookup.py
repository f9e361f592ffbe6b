"""How run("DeepImageJ Run", ...) finds its model (by name, as deepImageJ does) and keeps it loaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepij.errors import ArgumentError, ModelNotFoundError
from deepij.frontdoors.deepimagej_run import ModelCache, find_run_model, model_folders, processing_for
from deepij.frontdoors.run_options import parse_run_options
from support.bundles import write_bundle_v0_3, write_bundle_v0_5


@pytest.fixture(scope="module")
def fiji(tmp_path_factory):
    """A Fiji.app-like folder with a models/ folder of two installed bundles, as deepImageJ installs them."""
    root = tmp_path_factory.mktemp("lookup") / "Fiji.app"
    (root / "plugins").mkdir(parents=True)
    models = root / "models"
    write_bundle_v0_5(models / "nuclei_model", name="Nuclei Segmentation (UNet)")
    write_bundle_v0_3(models / "old.bioimage.io.model", name='"Old 2D Denoiser"')  # quotes as 0.3 files had
    return root


@pytest.fixture(autouse=True)
def isolated_models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPIJ_MODELS_DIR", str(tmp_path / "no_models_here"))


def test_by_descriptor_name_in_imagej_models_folder(fiji):
    request = parse_run_options("model=[Nuclei Segmentation (UNet)] format=Pytorch")
    assert find_run_model(request, fiji) == fiji / "models" / "nuclei_model"


def test_by_name_without_its_quotes_and_by_folder_name(fiji):
    assert find_run_model(parse_run_options("model=[Old 2D Denoiser]"), fiji).name == "old.bioimage.io.model"
    assert find_run_model(parse_run_options("model=nuclei_model"), fiji).name == "nuclei_model"


def test_models_dir_option_wins_and_may_name_an_imagej_folder(fiji):
    request = parse_run_options(f"model=nuclei_model models_dir=[{fiji}]")
    assert find_run_model(request, None) == fiji / "models" / "nuclei_model"
    request = parse_run_options(f"model=nuclei_model model_dir=[{fiji / 'models' / 'nuclei_model'}]")
    assert find_run_model(request, None) == fiji / "models" / "nuclei_model"


def test_environment_models_dir_comes_before_imagej(fiji, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    write_bundle_v0_5(mine / "my_copy", name="Nuclei Segmentation (UNet)")
    monkeypatch.setenv("DEEPIJ_MODELS_DIR", str(mine))
    request = parse_run_options("model=[Nuclei Segmentation (UNet)]")
    assert model_folders(request, fiji) == [mine, fiji / "models"]
    assert find_run_model(request, fiji) == mine / "my_copy"


def test_unknown_name_lists_where_it_looked(fiji):
    with pytest.raises(ModelNotFoundError) as caught:
        find_run_model(parse_run_options("model=[No Such Model]"), fiji)
    message = str(caught.value)
    assert "No Such Model" in message and str(fiji / "models") in message
    assert "no_models_here (no such folder)" in message and "'Nuclei Segmentation (UNet)'" in message


def test_model_path_and_a_model_naming_another(fiji):
    folder = fiji / "models" / "nuclei_model"
    assert find_run_model(parse_run_options(f"model_path=[{folder}]"), None) == folder
    same = parse_run_options(f"model=[Nuclei Segmentation (UNet)] model_path=[{folder}] input_path=/x")
    assert find_run_model(same, None) == folder
    other = parse_run_options(f"model=[Old 2D Denoiser] model_path=[{folder}] input_path=/x")
    with pytest.raises(ArgumentError, match=r"model=\[Old 2D Denoiser\] and model_path=.* name different"):
        find_run_model(other, None)
    with pytest.raises(ModelNotFoundError, match=r"model_path=.*nowhere: no such file"):
        find_run_model(parse_run_options(f"model_path={fiji / 'nowhere'}"), None)


def test_cache_loads_a_model_once_per_weights_format(fiji):
    cache = ModelCache(size=2)
    folder = fiji / "models" / "nuclei_model"
    first = cache.get(folder, "torchscript")
    assert cache.get(folder, "torchscript") is first
    assert cache.get(str(folder) + "/", "torchscript") is first  # the same folder however it is spelled
    assert cache.get(folder, None) is not first and len(cache) == 2
    cache.get(fiji / "models" / "old.bioimage.io.model")  # a third model: the least recently used goes
    assert len(cache) == 2 and cache.get(folder, "torchscript") is not first
    cache.clear()
    assert len(cache) == 0


def test_cache_reads_a_reinstalled_bundle_again(tmp_path):
    bundle = write_bundle_v0_5(tmp_path / "b", name="First")
    cache = ModelCache()
    assert cache.get(bundle.folder).name == "First"
    descriptor = bundle.descriptor
    descriptor.write_text(descriptor.read_text().replace("name: First", "name: Second"))
    stat = descriptor.stat()
    os.utime(descriptor, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache.get(bundle.folder).name == "Second"


def test_cache_size_must_be_positive():
    with pytest.raises(ArgumentError, match="size"):
        ModelCache(size=0)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("model=m", "auto"),
        ("model=m preprocessing=[preprocessing.ijm] postprocessing=[postprocessing.ijm]", "macros"),
        ("model=m preprocessing=[[preprocessing.ijm]] postprocessing=[postprocessing.ijm]", "macros"),
        ("model=m preprocessing=[no preprocessing] postprocessing=[no postprocessing]", "none"),
    ],
)
def test_processing_asked_of_a_bundle_with_macros(fiji, options, expected):
    import deepij

    model = deepij.load(fiji / "models" / "old.bioimage.io.model")
    assert processing_for(parse_run_options(options), model) == expected


def test_processing_files_the_bundle_does_not_have(fiji):
    import deepij

    model = deepij.load(fiji / "models" / "old.bioimage.io.model")
    with pytest.raises(ArgumentError, match=r"preprocessing=\[other.ijm\]: other.ijm is not a preprocessing"):
        processing_for(parse_run_options("model=m preprocessing=[other.ijm]"), model)
    half = parse_run_options("model=m preprocessing=[preprocessing.ijm] postprocessing=[no postprocessing]")
    with pytest.raises(ArgumentError, match=r"postprocessing=\[no postprocessing\]: .* one chain"):
        processing_for(half, model)


def test_spec_only_bundle_keeps_its_ops_when_no_macros_are_named(fiji):
    import deepij

    model = deepij.load(fiji / "models" / "nuclei_model")
    request = parse_run_options("model=m preprocessing=[no preprocessing] postprocessing=[no postprocessing]")
    assert processing_for(request, model) == "auto"


def test_folder_names_are_paths():
    assert all(isinstance(p, Path) for p in model_folders(parse_run_options("model=a"), "/opt/ImageJ"))
