"""A bundle's ImageJ pre/post-processing inside the real ImageJ, end to end with real TorchScript networks.

Expected values come from numpy (the same formulas the macros compute, the network's own forward pass) and
from scipy (particle counts), never from deepij.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

import deepij
from deepij.errors import ArgumentError, StepError
from deepij.imagej._java import jc
from support.dij_bundles import (
    FAILING_MACRO,
    RENAMING_MACRO,
    SCALE_RANGE_MACRO,
    histogram_scale_range,
    write_scale_linear_bundle_v0_4,
    write_segmentation_bundle_v0_3,
)

NATIVE = {"runtime": "native", "tiling": "deepimagej"}


@pytest.fixture(scope="module")
def segmentation(tmp_path_factory):
    bundle = write_segmentation_bundle_v0_3(tmp_path_factory.mktemp("seg") / "bundle")
    return bundle, deepij.load(bundle.folder)


@pytest.fixture(scope="module")
def scale_linear(tmp_path_factory):
    bundle = write_scale_linear_bundle_v0_4(tmp_path_factory.mktemp("lin") / "bundle")
    return bundle, deepij.load(bundle.folder)


def test_deepimagej_bundle_macros_scale_binarize_and_count(imagej_session, segmentation):
    bundle, model = segmentation
    result = model.predict(bundle.test_input, session=imagej_session, **NATIVE)
    assert result.provenance["processing"] == "macros"
    assert result.provenance["steps"] == [
        "pre 1: macro per_sample_scale_range.ijm",
        "post 1: macro binarize and count.ijm",
    ]
    # the post-processing macro renamed the output to "mask": the network's own output stays under its name
    np.testing.assert_allclose(result.images["output"].values, bundle.expected_output, atol=1e-4)
    network = bundle.expected_output[0, 0].astype(np.float64)
    mask = result.images["mask"].values > 0
    borderline = np.abs(network - network.mean()) < 1e-4
    assert np.array_equal(mask[~borderline], (network >= network.mean())[~borderline])
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))  # ImageJ traces 8-connected particles
    table = result.tables["Results"]
    assert len(table) == count > 1
    assert sorted(table["Area"]) == sorted(np.bincount(labels.ravel())[1:].tolist())


def test_scale_range_macro_matches_its_numpy_formula_and_the_exact_one_closely(imagej_session):
    # the macro on its own, in ImageJ, against the numpy histogram version and the exact percentiles
    image = np.random.default_rng(1).gamma(2.0, 40.0, (50, 60)).astype(np.float32)
    scaled = imagej_session.run_macro(SCALE_RANGE_MACRO, image=image).images["input"].values
    np.testing.assert_allclose(scaled, histogram_scale_range(image), atol=1e-5)
    low, high = np.percentile(image, [1, 99.8])
    exact = (image - low) / (high - low)
    assert np.abs(scaled - exact).max() < 0.05  # 256 bins: close to, not equal to, the spec op


def test_normalisation_listed_as_spec_op_and_macro_is_applied_once(imagej_session, scale_linear):
    bundle, model = scale_linear
    auto = model.predict(bundle.test_input, session=imagej_session, **NATIVE)
    assert auto.provenance["processing"] == "macros"
    np.testing.assert_allclose(auto.images["output"].values, bundle.expected_output, atol=1e-5)
    spec = model.predict(bundle.test_input, processing="spec", **NATIVE)
    assert spec.provenance["processing"] == "spec" and spec.provenance["steps"] == ["none"]
    np.testing.assert_allclose(spec.images["output"].values, bundle.expected_output, atol=1e-5)
    twice = bundle.model.forward(bundle.test_input * 4 + 3)[0]
    assert np.abs(auto.images["output"].values - twice).max() > 1e-2  # what applying both would give
    bare = model.predict(bundle.test_input, processing="none", **NATIVE)
    np.testing.assert_allclose(
        bare.images["output"].values, bundle.model.forward(bundle.test_input)[0], atol=1e-5
    )


def test_failing_macro_names_bundle_step_file_and_line_then_the_next_call_works(imagej_session, tmp_path):
    bundle = write_segmentation_bundle_v0_3(tmp_path / "broken", pre_macro=FAILING_MACRO, post_macro=None)
    model = deepij.load(bundle.folder)
    with pytest.raises(StepError) as caught:
        model.predict(bundle.test_input, session=imagej_session, **NATIVE)
    message = str(caught.value)
    assert f"bundle {bundle.name!r}" in message
    assert "preprocessing step 1 of 1 (macro per_sample_scale_range.ijm), line 3" in message
    assert "undefinedVariable" in message
    assert jc.WindowManager.getImageCount() == 0  # nothing left open in ImageJ
    (bundle.folder / "per_sample_scale_range.ijm").write_text(SCALE_RANGE_MACRO)
    fixed = model.predict(bundle.test_input, session=imagej_session, **NATIVE)  # same model, same session
    np.testing.assert_allclose(fixed.images["output"].values, bundle.expected_output, atol=1e-4)


def test_a_step_past_its_time_limit_is_stopped_and_the_next_call_works(imagej_session, tmp_path):
    endless = "// never ends\nn = 0;\nwhile (true) {\n    n = n + 1;\n}\n"
    bundle = write_segmentation_bundle_v0_3(tmp_path / "endless", pre_macro=endless, post_macro=None)
    model = deepij.load(bundle.folder)
    with pytest.raises(StepError) as caught:
        model.predict(bundle.test_input, session=imagej_session, step_timeout=1.5, **NATIVE)
    message = str(caught.value)
    assert "preprocessing step 1 of 1 (macro per_sample_scale_range.ijm)" in message
    assert "the macro ran past its time limit of 1.5 s" in message
    assert jc.WindowManager.getImageCount() == 0  # nothing left open in ImageJ
    (bundle.folder / "per_sample_scale_range.ijm").write_text(SCALE_RANGE_MACRO)
    fixed = model.predict(bundle.test_input, session=imagej_session, step_timeout=600, **NATIVE)
    np.testing.assert_allclose(fixed.images["output"].values, bundle.expected_output, atol=1e-4)
    with pytest.raises(ArgumentError, match=r"step_timeout: expected a number of seconds > 0 or None"):
        model.predict(bundle.test_input, session=imagej_session, step_timeout=0, **NATIVE)


def test_an_image_titled_like_the_input_tensor_wins_over_the_current_image(imagej_session, tmp_path):
    bundle = write_segmentation_bundle_v0_3(tmp_path / "title", pre_macro=RENAMING_MACRO, post_macro=None)
    model = deepij.load(bundle.folder)
    result = model.predict(bundle.test_input, session=imagej_session, **NATIVE)
    expected = bundle.model.forward(bundle.test_input / 2)[0]  # "input" (x / 2), not the current "decoy"
    np.testing.assert_allclose(result.images["output"].values, expected, atol=1e-5)


def test_progress_events_per_step_and_per_forward_pass(imagej_session, segmentation):
    bundle, model = segmentation
    events = []
    result = model.predict(
        bundle.test_input, session=imagej_session, tile=16, progress=events.append, **NATIVE
    )
    passes = result.plan.n_tiles  # batch size 1: one forward pass per tile
    assert passes > 1
    assert [(e.stage, e.done, e.total) for e in events] == [
        ("preprocessing", 1, 1),
        *(("inference", k, passes) for k in range(1, passes + 1)),
        ("postprocessing", 1, 1),
    ]
    assert events[0].label == "macro per_sample_scale_range.ijm"


def test_logging_levels_of_the_deepij_logger(imagej_session, segmentation, caplog):
    bundle, model = segmentation
    logger = logging.getLogger("deepij")
    before = logger.level
    with caplog.at_level(logging.NOTSET, logger="deepij"):
        model.predict(bundle.test_input, session=imagej_session, logging="debug", **NATIVE)
        assert any("per_sample_scale_range.ijm" in r.getMessage() for r in caplog.records)
        caplog.clear()
        model.predict(bundle.test_input, session=imagej_session, logging="mute", **NATIVE)
        assert not [r for r in caplog.records if r.levelno < logging.ERROR]
    assert logger.level == before


def test_image_coming_back_from_run_macro_is_accepted(imagej_session, scale_linear):
    bundle, model = scale_linear
    blurred = imagej_session.run_macro('run("Add...", "value=1");', image=bundle.test_input[0, 0]).image
    assert blurred.dims == ("row", "col")
    result = model.predict(blurred, session=imagej_session, **NATIVE)
    expected = bundle.model.forward((bundle.test_input + 1) * 2 + 1)[0]
    np.testing.assert_allclose(result.images["output"].values, expected, atol=1e-4)


def test_spec_only_bundle_never_starts_imagej_and_auto_picks_spec(tmp_path):
    from deepij.pipeline.steps import Chain
    from support.bundles import write_bundle_v0_5

    bundle = write_bundle_v0_5(tmp_path / "b05", weights=("torchscript",))
    model = deepij.load(bundle.folder)

    def no_imagej():
        pytest.fail("ImageJ was asked for")

    assert Chain(model.description, "auto").mode == "spec"
    result = model.predict(xr.DataArray(bundle.test_input, dims=tuple("bcyx")), session=no_imagej, **NATIVE)
    np.testing.assert_allclose(result.images["probability"].values, bundle.expected_output, atol=1e-4)
