"""Reading real bundles of every descriptor version into the one description, as folders, files and zips."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import deepij
from deepij.bundle import open_bundle
from deepij.bundle.description import (
    FixedSize,
    ImageJStep,
    ParameterizedSize,
    ProcessingOp,
    ReferenceSize,
)
from support.bundles import WrittenBundle, write_bundle_v0_5, zip_bundle


def _sizes(tensor) -> dict[str, object]:
    return {a.id: a.size for a in tensor.axes}


def test_v0_3_model_yaml_with_deepimagej_config(written: dict[str, WrittenBundle]) -> None:
    bundle = written["0.3"]
    d = open_bundle(bundle.folder)
    assert d.descriptor.name == "model.yaml"
    assert d.format_version == "0.3.2"
    assert d.name == "deepij test 0.3 model"
    (tensor_in,) = d.inputs
    (tensor_out,) = d.outputs
    assert tensor_in.axes_str == "bcyx"
    min_size = bundle.model.min_size
    assert _sizes(tensor_in) == {
        "b": FixedSize(1),
        "c": FixedSize(1),
        "y": ParameterizedSize(min_size, 1),
        "x": ParameterizedSize(min_size, 1),
    }
    assert tensor_in.data_range == (-math.inf, math.inf)  # written as the strings "-inf", "inf"
    assert _sizes(tensor_out)["y"] == ReferenceSize("input", "y", 1.0, 0.0)
    assert [a.halo for a in tensor_out.axes] == [0, 0, bundle.model.halo, bundle.model.halo]
    # the old weights key pytorch_script is the canonical torchscript
    assert list(d.weights) == ["torchscript"]
    assert d.weights["torchscript"].source == "pytorch_script.pt"
    assert d.deepimagej.preprocess == (ImageJStep("macro", "preprocessing.ijm"),)
    assert d.deepimagej.postprocess == (ImageJStep("macro", "postprocessing.ijm"),)
    assert d.deepimagej.tensorflow_tag is None  # model_keys: null for a PyTorch bundle
    assert d.deepimagej.test_information["runtime"] == "0.3 s s"  # kept as found
    assert d.test_inputs == ("exampleImage.npy",)  # "./" removed
    assert d.test_outputs == ("resultImage.npy",)
    assert d.documentation == "README.md"
    assert d.attachments == ("preprocessing.ijm", "postprocessing.ijm")
    assert d.extra["language"] == "java" and d.extra["run_mode"] == {"name": "deepimagej"}
    assert d.extra["timestamp"] == "2021-04-07T19:49:30.000301"  # timestamps stay text


def test_v0_4_rdf_with_spec_ops_and_macros(written: dict[str, WrittenBundle]) -> None:
    bundle = written["0.4"]
    d = open_bundle(bundle.folder / "rdf.yaml")
    assert d.format_version == "0.4.10"
    (tensor_in,) = d.inputs
    (tensor_out,) = d.outputs
    assert tensor_in.processing == (
        ProcessingOp("zero_mean_unit_variance", {"mode": "per_sample", "axes": "yx"}),
    )
    assert d.deepimagej.preprocess == (ImageJStep("macro", "zero_mean_unit_variance.ijm"),)
    assert d.deepimagej.postprocess == ()  # {spec: null}
    # scale 0 with a per-side offset 0.5: one output channel whatever the input has
    assert _sizes(tensor_out) == {
        "b": ReferenceSize("input", "b", 1.0, 0.0),
        "c": FixedSize(1),
        "y": ReferenceSize("input", "y", 1.0, 0.0),
        "x": ReferenceSize("input", "x", 1.0, 0.0),
    }
    assert list(d.weights) == ["torchscript", "onnx", "pytorch_state_dict"]
    state_dict = d.weights["pytorch_state_dict"]
    assert state_dict.architecture.source == "torch_nets.py"
    assert state_dict.architecture.callable == "ConvNet"
    assert state_dict.architecture.sha256 is not None
    assert state_dict.framework_version == "2.13"
    assert d.weights["onnx"].extra == {"opset_version": 17}
    assert d.test_inputs == ("test_input.npy",)
    assert d.cite[0].url == "https://example.com/"


def test_v0_5_axis_objects(written: dict[str, WrittenBundle]) -> None:
    bundle = written["0.5"]
    d = open_bundle(bundle.folder)
    (tensor_in,) = d.inputs
    (tensor_out,) = d.outputs
    assert tensor_in.name == "raw" and tensor_out.name == "probability"
    assert tensor_in.axes_str == "bcyx" and tensor_out.axes_str == "bcyx"
    assert tensor_in.axis("c").channel_names == ("intensity",)
    assert tensor_in.axis("y").unit == "micrometer"
    assert _sizes(tensor_in) == {
        "b": None,
        "c": FixedSize(1),
        "y": ParameterizedSize(bundle.model.min_size, 1),
        "x": ParameterizedSize(bundle.model.min_size, 1),
    }
    assert tensor_out.axis("y").size == ReferenceSize("raw", "y", 1.0, 0.0)
    assert tensor_out.axis("x").halo == bundle.model.halo
    assert [op.name for op in tensor_in.processing] == ["ensure_dtype", "zero_mean_unit_variance"]
    assert tensor_in.processing[1].kwargs == {"axes": "yx"}  # 0.5 axis ids turned into letters
    assert tensor_in.test_tensor == "test_input.npy" and tensor_in.sample_tensor == "test_input.npy"
    assert tensor_out.data_range == (0.0, 1.0)
    assert d.documentation == "README.md"  # {source: README.md}
    assert d.config["bioimageio"]["reproducibility_tolerance"][0]["absolute_tolerance"] == 1e-4
    architecture = d.weights["pytorch_state_dict"].architecture  # 0.5: a mapping with source and callable
    assert (architecture.source, architecture.callable) == ("torch_nets.py", "ConvNet")


def test_v0_5_descriptor_names(tmp_path: Path) -> None:
    for name in ("bioimageio.yaml", "unet.bioimageio.yaml"):
        bundle = write_bundle_v0_5(tmp_path / name, descriptor_name=name)
        assert open_bundle(bundle.folder).descriptor.name == name


def test_rdf_yaml_is_read_before_model_yaml(bundle_copy) -> None:
    folder = bundle_copy("0.4")
    (folder / "model.yaml").write_text("this: is not read\n")
    assert open_bundle(folder).descriptor.name == "rdf.yaml"


@pytest.mark.parametrize("version", ["0.3", "0.4", "0.5"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_zip_reads_like_the_folder(
    written: dict[str, WrittenBundle], tmp_path: Path, version: str, wrapped: bool
) -> None:
    bundle = written[version]
    archive = zip_bundle(bundle.folder, tmp_path / f"bundle{version}.zip", wrap_in_folder=wrapped)
    from_zip = open_bundle(archive)
    from_folder = open_bundle(bundle.folder)
    assert from_zip.inputs == from_folder.inputs and from_zip.weights == from_folder.weights
    assert from_zip.root != bundle.folder and (from_zip.root / bundle.descriptor.name).is_file()
    # opened again: the unpacked copy is reused, not unpacked twice
    assert open_bundle(archive).root == from_zip.root


def test_load_gives_a_model_with_the_description(written: dict[str, WrittenBundle]) -> None:
    model = deepij.load(written["0.5"].folder)
    assert model.description.name == "deepij test 0.5 model"


def test_open_a_bundle_zip_from_a_url(written: dict[str, WrittenBundle], tmp_path: Path) -> None:
    from support.http import LocalServer

    archive = zip_bundle(written["0.3"].folder, tmp_path / "remote.zip")
    with LocalServer({"/models/remote.zip": archive.read_bytes()}) as server:
        description = open_bundle(server.url("/models/remote.zip"))
        assert description.name == written["0.3"].name
        assert (tmp_path / "cache") in description.root.parents
        assert open_bundle(server.url("/models/remote.zip")).root == description.root
        assert len(server.requests) == 1  # the second open uses the cached download
