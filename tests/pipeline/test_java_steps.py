"""A bundle whose pre/post-processing is Java (jars compiled with javac by the test, as bundle authors did),
run end to end through deepij.imagej.java_steps inside the real ImageJ."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy import ndimage

import deepij
from deepij.errors import StepError
from support.dij_bundles import write_java_bundle_v0_3

java = pytest.importorskip("support.java")  # needs javac and deepij's interfaces jar

NATIVE = {"runtime": "native", "tiling": "deepimagej"}
STEPS = ["ScaleFromConfig", "org.example.seg.ThresholdMeasure", "org.example.check.CheckBitDepth"]


@pytest.fixture(scope="module")
def jars(tmp_path_factory):
    root = tmp_path_factory.mktemp("java")
    classes = java.compile_steps(root / "classes", STEPS)
    return {
        "scale.jar": java.pack_jar(classes, ["ScaleFromConfig"], root / "scale.jar"),
        "threshold.jar": java.pack_jar(classes, ["org.example.seg.ThresholdMeasure"], root / "threshold.jar"),
        "check.jar": java.pack_jar(classes, ["org.example.check.CheckBitDepth"], root / "check.jar"),
        # two pre-processing classes in one jar: only the class the spec names tells which runs
        "both.jar": java.pack_jar(
            classes, ["ScaleFromConfig", "org.example.check.CheckBitDepth"], root / "both.jar"
        ),
    }


def test_java_pre_and_post_steps_with_config_files(imagej_session, jars, tmp_path):
    bundle = write_java_bundle_v0_3(tmp_path / "bundle", jars)
    model = deepij.load(bundle.folder)
    result = model.predict(bundle.test_input, session=imagej_session, **NATIVE)
    expected = bundle.expected_output  # the network on 3 * input (scale=3 from the config file)
    assert result.provenance["steps"] == [
        "pre 1: java scale.jar",
        "post 1: java threshold.jar",
    ]
    np.testing.assert_allclose(result.images["output"].values, expected, atol=1e-5)
    mask = expected[0, 0] > 0.5
    assert 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(result.images["mask"].values > 0, mask)
    _, count = ndimage.label(mask, structure=np.ones((3, 3)))
    assert len(result.tables["objects"]) == count


def test_a_java_step_error_names_bundle_and_step(imagej_session, jars, tmp_path):
    bundle = write_java_bundle_v0_3(
        tmp_path / "check", jars, pre="check.jar org.example.check.CheckBitDepth", post=None
    )
    model = deepij.load(bundle.folder)
    where = (
        r"bundle 'deepij java steps 0.3': preprocessing step 1 of 1 "
        r"\(Java step check.jar org.example.check.CheckBitDepth\)"
    )
    with pytest.raises(StepError, match=rf"{where}.*CheckBitDepth.*reports an error.*32-bit"):
        model.predict(bundle.test_input.astype(np.uint8), session=imagej_session, **NATIVE)


def test_the_named_class_runs_with_the_config_files_its_kwargs_name(imagej_session, jars, tmp_path):
    # {spec: "File.jar Class", kwargs: config}: the class picks one of the jar's two pre-processing classes
    # and the kwargs file is its only config file (no weights attachments here)
    bundle = write_java_bundle_v0_3(tmp_path / "kwargs", jars, post=None)
    (bundle.folder / "scale2.txt").write_text("scale=2\n")
    data = yaml.safe_load(bundle.descriptor.read_text())
    del data["weights"]["pytorch_script"]["attachments"]
    data["config"]["deepimagej"]["prediction"]["preprocess"] = [
        {"spec": "both.jar ScaleFromConfig", "kwargs": "scale2.txt"}
    ]
    bundle.descriptor.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    model = deepij.load(bundle.folder)
    result = model.predict(bundle.test_input, session=imagej_session, **NATIVE)
    assert result.provenance["steps"] == ["pre 1: java both.jar"]
    expected = bundle.model.forward((bundle.test_input * np.float32(2)).astype(np.float32))[0]
    np.testing.assert_allclose(result.images["output"].values, expected, atol=1e-5)
