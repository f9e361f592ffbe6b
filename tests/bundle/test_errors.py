"""Bad bundles get a clear error naming the file, the field, what was found and what was expected."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from deepij.bundle import open_bundle
from deepij.bundle.archive import ArchiveLimits, extract_zip
from deepij.errors import ArchiveError, BundleError


def expect_error(
    path: Path, message: str, *, field: str | None = None, kind: type = BundleError
) -> BundleError:
    with pytest.raises(kind) as caught:
        open_bundle(path)
    error = caught.value
    assert message in str(error)
    assert error.file is not None and Path(error.file).name in str(error)
    if field is not None:
        assert error.field == field, str(error)
    return error


# --- descriptors -----------------------------------------------------------------------------------------


def test_missing_descriptor(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    error = expect_error(tmp_path / "empty", "no model descriptor in the bundle folder")
    assert error.file == str(tmp_path / "empty")
    assert "rdf.yaml, model.yaml" in error.expected


def test_missing_path(tmp_path: Path) -> None:
    expect_error(tmp_path / "nowhere", "no such file or folder")


def test_malformed_yaml(tmp_path: Path) -> None:
    (tmp_path / "rdf.yaml").write_text("format_version: 0.5.3\nname: [unclosed\ninputs: x\n")
    error = expect_error(tmp_path, "malformed YAML")
    assert "line" in str(error) and error.file == str(tmp_path / "rdf.yaml")


def test_yaml_custom_tags_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "rdf.yaml").write_text(
        f"format_version: 0.5.3\nname: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    expect_error(tmp_path, "YAML tags that build objects are not allowed")
    assert not marker.exists()
    (tmp_path / "rdf.yaml").write_text("format_version: 0.5.3\nname: !custom x\n")
    expect_error(tmp_path, "YAML tags that build objects are not allowed")


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 30)]
    (tmp_path / "rdf.yaml").write_text("\n".join(lines) + "\n")
    expect_error(tmp_path, "descriptor too large once its YAML aliases are expanded")


def test_descriptor_that_is_not_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "rdf.yaml").write_text("- just\n- a list\n")
    error = expect_error(tmp_path, "a descriptor must be a YAML mapping")
    assert error.found == ["just", "a list"]


@pytest.mark.parametrize("version", ["0.3", "0.4", "0.5"])
@pytest.mark.parametrize("field", ["name", "inputs", "outputs", "weights", "format_version"])
def test_missing_required_field(mutated, version: str, field: str) -> None:
    error = expect_error(mutated(version, lambda d: d.pop(field)), "missing required field", field=field)
    assert error.expected


def test_missing_required_tensor_field(mutated) -> None:
    expect_error(
        mutated("0.4", lambda d: d["inputs"][0].pop("name")), "missing required field", field="inputs[0].name"
    )
    expect_error(
        mutated("0.4", lambda d: d["inputs"][0].pop("shape")),
        "missing required field",
        field="inputs[0].shape",
    )
    expect_error(
        mutated("0.5", lambda d: d["outputs"][0]["axes"][2].pop("size")),
        "missing required field",
        field="outputs[0].axes[2].size",
    )


def test_unsupported_format_version(mutated) -> None:
    error = expect_error(
        mutated("0.5", lambda d: d.update(format_version="0.2.4")),
        "unsupported descriptor format_version",
        field="format_version",
    )
    assert error.found == "0.2.4"


def test_not_a_model(mutated) -> None:
    expect_error(mutated("0.5", lambda d: d.update(type="dataset")), "not a model description", field="type")


def test_wrong_axes_letters(mutated) -> None:
    def change(d: dict[str, Any]) -> None:
        d["inputs"][0]["axes"] = "bqyx"

    error = expect_error(mutated("0.4", change), "wrong axes letters", field="inputs[0].axes")
    assert error.found == "bqyx" and "bitczyx" in error.expected
    error = expect_error(
        mutated("0.3", lambda d: d["outputs"][0].update(axes="bcyy")),
        "an axis letter appears twice",
        field="outputs[0].axes",
    )


def test_wrong_0_5_axes(mutated) -> None:
    expect_error(
        mutated("0.5", lambda d: d["inputs"][0]["axes"][2].update(id="w")),
        "space axes must be called x, y or z",
        field="inputs[0].axes[2].id",
    )
    expect_error(
        mutated("0.5", lambda d: d["inputs"][0]["axes"][1].update(type="colour")),
        "wrong axis type",
        field="inputs[0].axes[1].type",
    )
    expect_error(
        mutated("0.5", lambda d: d["inputs"][0].update(axes="bcyx")),
        "0.5 axes are objects, not letters",
    )


def test_contradictory_shape_rules(mutated) -> None:
    def both(d: dict[str, Any]) -> None:
        d["outputs"][0]["shape"].update(min=[1, 1, 8, 8], step=[0, 0, 1, 1])

    error = expect_error(mutated("0.4", both), "contradictory shape rules", field="outputs[0].shape")
    assert "reference_tensor" in error.found and "min" in error.found

    def short_min(d: dict[str, Any]) -> None:
        d["inputs"][0]["shape"]["min"] = [1, 8]

    error = expect_error(
        mutated("0.4", short_min), "shape.min has 2 entries for 4 axes", field="inputs[0].shape.min"
    )

    def channel_count(d: dict[str, Any]) -> None:
        d["inputs"][0]["axes"][1]["size"] = 3

    expect_error(
        mutated("0.5", channel_count),
        "contradictory shape rules: size differs from the number of channel names",
        field="inputs[0].axes[1].size",
    )

    def chained(d: dict[str, Any]) -> None:
        d["outputs"][0]["axes"][3]["size"] = {"tensor_id": "probability", "axis_id": "y"}

    expect_error(mutated("0.5", chained), "whose size is itself a reference", field="outputs[0].axes[3].size")


def test_references_to_unknown_tensors_or_axes(mutated) -> None:
    error = expect_error(
        mutated("0.4", lambda d: d["outputs"][0]["shape"].update(reference_tensor="raw")),
        "shape refers to an unknown input",
        field="outputs[0].shape.reference_tensor",
    )
    assert error.found == "raw" and "'input'" in error.expected
    expect_error(
        mutated("0.5", lambda d: d["outputs"][0]["axes"][2]["size"].update(axis_id="z")),
        "tensor 'raw' has no such axis",
        field="outputs[0].axes[2].size.axis_id",
    )
    expect_error(
        mutated("0.5", lambda d: d["outputs"][0]["axes"][2]["size"].update(tensor_id="nothing")),
        "size refers to an unknown tensor",
    )


def test_halo_larger_than_the_shape_allows(mutated) -> None:
    def fixed(d: dict[str, Any]) -> None:
        d["inputs"][0]["shape"] = [1, 1, 16, 16]
        d["outputs"][0]["halo"] = [0, 0, 8, 8]

    error = expect_error(
        mutated("0.4", fixed), "halo too large for the shape of axis 'y'", field="outputs[0].halo"
    )
    assert error.found == 8 and "below 8" in error.expected

    def fixed_05(d: dict[str, Any]) -> None:
        for axis in d["inputs"][0]["axes"][2:]:
            axis["size"] = 10
        for axis in d["outputs"][0]["axes"][2:]:
            axis["halo"] = 5

    expect_error(mutated("0.5", fixed_05), "halo too large", field="outputs[0].axes[2].halo")


def test_duplicate_tensor_names(mutated) -> None:
    expect_error(
        mutated("0.5", lambda d: d["outputs"][0].update(id="raw")),
        "tensor name used twice",
        field="outputs[0].id",
    )


def test_unknown_weights_format(mutated) -> None:
    def change(d: dict[str, Any]) -> None:
        d["weights"]["caffe_model"] = {"source": "net.caffemodel"}

    error = expect_error(mutated("0.4", change), "unknown weights format", field="weights.caffe_model")
    assert error.found == "caffe_model" and "torchscript" in error.expected


def test_bad_sha256_text(mutated) -> None:
    error = expect_error(
        mutated("0.5", lambda d: d["weights"]["torchscript"].update(sha256="abc")),
        "not a sha256 digest",
        field="weights.torchscript.sha256",
    )
    assert error.found == "abc"


def test_processing_on_missing_axes_and_unknown_step_files(mutated) -> None:
    expect_error(
        mutated("0.4", lambda d: d["inputs"][0]["preprocessing"][0]["kwargs"].update(axes="zyx")),
        "processing names an axis the tensor does not have",
        field="inputs[0].preprocessing[0].kwargs.axes",
    )

    def python_step(d: dict[str, Any]) -> None:
        d["config"]["deepimagej"]["prediction"]["preprocess"] = [{"spec": "x", "kwargs": "normalize.py"}]

    error = expect_error(mutated("0.3", python_step), "unknown kind of processing file")
    assert error.found == "normalize.py"


def test_wrong_types_are_named(mutated) -> None:
    error = expect_error(
        mutated("0.4", lambda d: d.update(inputs={"name": "input"})), "wrong type", field="inputs"
    )
    assert error.expected == "a list"
    expect_error(
        mutated("0.4", lambda d: d["inputs"][0]["shape"].update(min=[1, 1, "big", 8])),
        "wrong type",
        field="inputs[0].shape.min[2]",
    )


# --- archives --------------------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.txt", "path escaping the target folder"),
        ("bundle/../../evil.txt", "path escaping the target folder"),
        ("/etc/evil.txt", "absolute path in the archive"),
        ("C:/evil.txt", "absolute path in the archive"),
    ],
)
def test_zip_paths_escaping_the_target(tmp_path: Path, name: str, message: str) -> None:
    archive = _zip(tmp_path / "evil.zip", {"rdf.yaml": b"name: x\n", name: b"boom"})
    error = expect_error(archive, message, kind=ArchiveError)
    assert error.found == name
    assert not (tmp_path / "evil.txt").exists()
    assert not any((tmp_path / "cache" / "bundles").glob("*")), "nothing half-unpacked is left"


def test_zip_with_a_symlink(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("rdf.yaml", "name: x\n")
        link = zipfile.ZipInfo("weights.pt")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    expect_error(archive, "the archive holds a link or special file", kind=ArchiveError)


def test_zip_bomb(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"rdf.yaml": b"name: x\n", "zeros.bin": bytes(8 << 20)})
    error = expect_error(archive, "compresses suspiciously well", kind=ArchiveError)
    assert "zeros.bin" in error.found


def test_zip_size_and_count_limits(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" * 1000 for i in range(20)})
    with pytest.raises(ArchiveError, match="too many files in the archive"):
        extract_zip(archive, tmp_path / "out1", limits=ArchiveLimits(max_files=10))
    with pytest.raises(ArchiveError, match="unpacks to too many bytes"):
        extract_zip(archive, tmp_path / "out2", limits=ArchiveLimits(max_bytes=5000))
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["many.zip"]


def test_broken_zip(tmp_path: Path) -> None:
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    expect_error(tmp_path / "broken.zip", "not a readable zip archive", kind=ArchiveError)


def test_zip_without_a_descriptor(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "none.zip", {"a/notes.txt": b"x", "b/weights.pt": b"y"})
    error = expect_error(archive, "no model descriptor in the archive")
    assert error.file == str(archive)


@pytest.mark.parametrize(
    "members",
    [
        ["a/rdf.yaml", "b/rdf.yaml"],
        ["unet.bioimageio.yaml", "stardist.bioimageio.yaml"],
        ["top/x.bioimageio.yaml", "top/y.bioimageio.yaml"],
    ],
)
def test_zip_with_several_descriptors(tmp_path: Path, members: list[str]) -> None:
    from deepij.bundle import install

    archive = _zip(tmp_path / "two.zip", {m: b"name: x\n" for m in members})
    error = expect_error(archive, "several descriptors in the archive")
    assert error.file == str(archive) and sorted(error.found) == sorted(members)
    with pytest.raises(BundleError, match="several descriptors in the archive") as caught:
        install(archive, models_dir=tmp_path / "models")
    assert caught.value.file == str(archive) and sorted(caught.value.found) == sorted(members)


@pytest.mark.parametrize("source", ["./", " ././ "])
def test_a_0_5_file_reference_that_names_no_file(mutated, source: str) -> None:
    descriptor = mutated("0.5", lambda d: d["inputs"][0].update(test_tensor={"source": source}))
    error = expect_error(descriptor, "not a file path", field="inputs[0].test_tensor.source")
    assert error.found == source
