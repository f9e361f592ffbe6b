"""The zoo's own check, kept as a standing test: each example model's test input, run with default options,
gives its test output, on every weights format it ships.

The bundles are made by the tests in the shapes of the zoo's example models (support.zoo_examples), their
test outputs computed from the networks' own eager forward passes. The nuclei U-Net's shape showed the
failure this guards: its descriptor fixes 512x512 and declares a halo of 32, smaller than the network's
reach, and default runs cut the 512x512 test input into four mirror-padded tiles on the TorchScript route
(up to 0.26 off on the zoo's real model) while ONNX ran it in one pass.
"""

from __future__ import annotations

import numpy as np
import pytest

import deepij
from support import zoo_examples

FORMATS = {
    "unet2d_nuclei_broad": zoo_examples.NUCLEI_FORMATS,
    "unet2d_fixed_shape": ("torchscript",),
    "unet2d_diff_output_shape": ("torchscript", "onnx"),
    "unet2d_multi_tensor": ("torchscript", "onnx"),
    "upsample_test_model": ("torchscript",),
    "expand_output_shape": ("torchscript",),
}


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo-examples")
    return {name: write(folder / name) for name, write in zoo_examples.WRITERS.items()}


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DEEPIJ_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "zoo-examples-cache"))


def _outputs(bundle):
    expected = bundle.expected_output
    if isinstance(expected, dict):
        return expected
    model = deepij.load(bundle.folder)
    return {model.description.outputs[0].name: expected}


@pytest.mark.parametrize(
    ("example", "weights_format"), [(name, fmt) for name, formats in FORMATS.items() for fmt in formats]
)
def test_the_test_input_gives_the_test_output_with_default_options(examples, example, weights_format):
    bundle = examples[example]
    model = deepij.load(bundle.folder, allow_code=True)
    result = model.predict(bundle.test_input, weights_format=weights_format)
    assert result.weights_format == weights_format
    for name, expected in _outputs(bundle).items():
        actual = result.images[name].values
        assert actual.shape == expected.shape, (name, result.notes)
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4, err_msg=str(result.notes))
    assert result.plan.n_tiles == 1, result.notes


def test_the_nuclei_shape_differs_under_deepimagej_tiles(examples):
    # What deepImageJ's convention gives for the same input: 4 mirror-padded tiles of the fixed 512. That
    # it differs from the test output is what makes the default's choice matter (the halo of 32 is less
    # than this U-Net's reach, and the border is mirrored instead of the network's own zero padding).
    bundle = examples["unet2d_nuclei_broad"]
    model = deepij.load(bundle.folder)
    with pytest.warns(deepij.SeamWarning):
        tiled = model.predict(bundle.test_input, weights_format="onnx", tiling="deepimagej", tile=512)
    assert tiled.plan.n_tiles == 4
    difference = np.abs(tiled.images["probability"].values - bundle.expected_output)
    assert difference.max() > 1e-3  # ten times the tolerance the default run meets
