"""How a deepImageJ 0.3 descriptor names a Java processing step, read into the description: every form of
``spec`` (``"File.jar Class::method"``, ``"File.jar Class"``, ``"File.jar"``, ``.class`` files, the
``[Class]`` list deepImageJ 2.x printed, the labels its writer put after ``::``) and ``kwargs`` naming the
step's config files. Expected values are read off the spec text by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deepij.bundle import open_bundle
from deepij.bundle.description import ImageJStep
from deepij.bundle.info import missing_files, summarize
from deepij.bundle.writer import write_descriptor
from deepij.errors import BundleError

HEADER = """\
format_version: 0.3.2
name: java steps
inputs: [{name: input, axes: byxc, data_type: float32, shape: [1, 8, 8, 1]}]
outputs: [{name: output, axes: byxc, data_type: float32, shape: [1, 8, 8, 1]}]
weights:
  tensorflow_saved_model_bundle:
    source: https://zenodo.org/record/1/files/tensorflow_saved_model_bundle.zip
    sha256: 41E6361133AD6F0051900B8B9D8BB25D8223CEC81A52234AAEC6336357532FEA
config:
  deepimagej:
    prediction:
"""


def read_steps(tmp_path: Path, preprocess: str, postprocess: str = "[{spec: null}]"):
    folder = tmp_path / "bundle"
    folder.mkdir(exist_ok=True)
    text = HEADER + f"      preprocess: {preprocess}\n      postprocess: {postprocess}\n"
    (folder / "model.yaml").write_text(text, encoding="utf-8")
    return open_bundle(folder, verify=False)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            '{spec: "Norm.jar my.pkg.Normalize::deepimagejPreprocessing"}',
            ImageJStep("java", "Norm.jar", "my.pkg.Normalize", "deepimagejPreprocessing"),
        ),
        ('{spec: "Norm.jar my.pkg.Normalize"}', ImageJStep("java", "Norm.jar", "my.pkg.Normalize")),
        ('{spec: "Norm.jar Normalize::"}', ImageJStep("java", "Norm.jar", "Normalize")),
        ('{spec: "Norm.jar ::scale"}', ImageJStep("java", "Norm.jar", None, "scale")),
        ("{spec: Norm.jar}", ImageJStep("java", "Norm.jar")),
        ('{spec: "./processing/Norm.jar"}', ImageJStep("java", "processing/Norm.jar")),
        ("{spec: Normalize.class}", ImageJStep("java", "Normalize.class")),
        ('{spec: "Normalize.class Normalize"}', ImageJStep("java", "Normalize.class", "Normalize")),
        # deepImageJ 2.x wrote its list of classes as Java prints it
        ('{spec: "Norm.jar [my.pkg.Normalize]"}', ImageJStep("java", "Norm.jar", "my.pkg.Normalize")),
        ('{spec: "Norm.jar [my.pkg.Normalize, my.pkg.Check]"}', ImageJStep("java", "Norm.jar")),
        # ... and this label after "::", never called by name (the interface's method runs)
        (
            '{spec: "Norm.jar [Normalize]::preProcessingRoutineUsingImage"}',
            ImageJStep("java", "Norm.jar", "Normalize"),
        ),
        # the class first and the jar in kwargs (a form of hand-written files)
        (
            '{spec: "my.pkg.Normalize::run", kwargs: Norm.jar}',
            ImageJStep("java", "Norm.jar", "my.pkg.Normalize", "run"),
        ),
        # a step given as a plain string
        ('"Norm.jar my.pkg.Normalize"', ImageJStep("java", "Norm.jar", "my.pkg.Normalize")),
    ],
)
def test_every_spec_form_keeps_file_class_and_method(tmp_path: Path, item: str, expected: ImageJStep) -> None:
    description = read_steps(tmp_path, f"[{item}]")
    assert description.deepimagej.preprocess == (expected,)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            '{spec: "Norm.jar Normalize", kwargs: config.ijm}',
            ImageJStep("java", "Norm.jar", "Normalize", None, ("config.ijm",)),
        ),
        (
            '{spec: "Norm.jar Normalize::deepimagejPreprocessing", kwargs: [./scale.txt, params/b.json]}',
            ImageJStep(
                "java", "Norm.jar", "Normalize", "deepimagejPreprocessing", ("scale.txt", "params/b.json")
            ),
        ),
        (
            "{spec: Norm.jar, kwargs: [lib.jar, scale.txt]}",
            ImageJStep("java", "Norm.jar", None, None, ("lib.jar", "scale.txt")),
        ),
        (
            "{spec: Normalize.class, kwargs: scale.txt}",
            ImageJStep("java", "Normalize.class", None, None, ("scale.txt",)),
        ),
    ],
)
def test_kwargs_of_a_java_spec_are_its_config_files(tmp_path: Path, item: str, expected: ImageJStep) -> None:
    description = read_steps(tmp_path, f"[{item}]")
    assert description.deepimagej.preprocess == (expected,)


def test_kwargs_of_the_macro_spec_are_still_macros(tmp_path: Path) -> None:
    description = read_steps(
        tmp_path,
        "[{spec: ij.IJ::runMacroFile, kwargs: [config.txt, b.ijm]}]",
        '[{spec: "Post.jar org.example.Post", kwargs: config.txt}]',
    )
    assert description.deepimagej.preprocess == (
        ImageJStep("macro", "config.txt"),
        ImageJStep("macro", "b.ijm"),
    )
    assert description.deepimagej.postprocess == (
        ImageJStep("java", "Post.jar", "org.example.Post", None, ("config.txt",)),
    )


def test_config_files_are_files_the_bundle_must_have(tmp_path: Path) -> None:
    description = read_steps(tmp_path, '[{spec: "Norm.jar Normalize", kwargs: [scale.txt, missing.ijm]}]')
    (description.root / "Norm.jar").write_bytes(b"PK\x05\x06" + bytes(18))
    (description.root / "scale.txt").write_text("scale=2\n")
    assert missing_files(description) == [
        {"field": "config.deepimagej.prediction.preprocess", "path": "missing.ijm"}
    ]
    assert summarize(description, verify=False)["deepimagej"]["preprocess"] == [
        "java Norm.jar Normalize (config scale.txt, missing.ijm)"
    ]


def test_a_config_file_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"config\.deepimagej\.prediction\.preprocess") as caught:
        read_steps(tmp_path, '[{spec: "Norm.jar Normalize", kwargs: ../../etc/passwd}]')
    assert "../../etc/passwd" in str(caught.value)


def test_a_java_spec_with_a_mapping_as_kwargs_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"prediction\.preprocess\[0\]\.kwargs"):
        read_steps(tmp_path, '[{spec: "Norm.jar Normalize", kwargs: {config: scale.txt}}]')


def test_written_descriptor_keeps_class_method_and_config_files(tmp_path: Path) -> None:
    description = read_steps(
        tmp_path,
        '[{spec: "Norm.jar Normalize", kwargs: [scale.txt]}, {spec: Other.class}]',
        '[{spec: "Post.jar ::postprocess"}]',
    )
    path = write_descriptor(description, tmp_path / "out" / "model.yaml", "0.4")
    written = yaml.safe_load(path.read_text())["config"]["deepimagej"]["prediction"]
    assert written["preprocess"] == [
        {"spec": "Norm.jar Normalize", "kwargs": ["scale.txt"]},
        {"spec": "Other.class"},
    ]
    assert written["postprocess"] == [{"spec": "Post.jar ::postprocess"}]
    again = open_bundle(path, verify=False)
    assert again.deepimagej.preprocess == description.deepimagej.preprocess
    assert again.deepimagej.postprocess == description.deepimagej.postprocess
