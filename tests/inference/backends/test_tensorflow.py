"""TensorFlow SavedModel (TF2 and TF1-era) and Keras HDF5 adapters on real TF models."""

from __future__ import annotations

import numpy as np
import pytest

from deepij.bundle.description import DeepImageJConfig, TensorSpec
from deepij.errors import BackendError
from deepij.inference.backends import load_backend, tensorflow_saved_model
from support import models

pytest.importorskip("tensorflow")


def test_tf2_outputs_matched_by_name(tf2_model, rng):
    backend = load_backend(models.describe(tf2_model))
    image = rng.standard_normal((2, 24, 32, 1)).astype(np.float32)
    foreground, boundary = backend.predict([image])
    expected = tf2_model.forward(image)
    assert (backend.runtime, backend.tags, backend.signature) == ("tensorflow", ("serve",), "serving_default")
    np.testing.assert_allclose(foreground, expected[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(boundary, expected[1], rtol=1e-6, atol=1e-6)
    assert not np.allclose(foreground, boundary)


def test_tf2_without_batch_axis_and_uint8_input(tf2_model, rng):
    backend = load_backend(models.describe(tf2_model, drop_batch=True, input_dtype="uint8"))
    image = rng.integers(0, 255, (20, 28, 1), dtype=np.uint8)  # "yxc", as 0.3 bundles say
    foreground, _ = backend.predict([image])
    assert foreground.shape == (20, 28, 1) and foreground.dtype == np.float32
    np.testing.assert_allclose(foreground, tf2_model.forward(image[None].astype(np.float32))[0][0], atol=1e-6)


def test_tf1_custom_tag_and_signature(tf1_model, rng):
    backend = load_backend(models.describe(tf1_model))
    assert backend.tags == ("deepij-custom-tag",) and backend.signature == "deepij_custom_signature"
    image = rng.standard_normal((1, 30, 26, 1)).astype(np.float32)
    [out] = backend.predict([image])
    np.testing.assert_allclose(out, tf1_model.forward(image)[0], rtol=1e-6, atol=1e-6)


def test_tf1_output_named_by_its_tensor(tf1_model, rng):
    """0.3 descriptors often name outputs after the graph tensor, not the signature key."""
    description = models.describe(tf1_model)
    by_tensor = TensorSpec("conv2d_2/Sigmoid", description.outputs[0].axes)
    backend = load_backend(models.describe(tf1_model, outputs=(by_tensor,)))
    image = rng.standard_normal((1, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(backend.predict([image])[0], tf1_model.forward(image)[0], atol=1e-6)


def test_wrong_keys_fall_back_to_what_the_model_has(tf1_model, rng):
    wrong = DeepImageJConfig(tensorflow_tag="serve", tensorflow_signature="serving_default")
    backend = load_backend(models.describe(tf1_model, deepimagej=wrong))
    assert backend.tags == ("deepij-custom-tag",) and backend.signature == "deepij_custom_signature"
    assert any("'serving_default'" in note for note in backend.notes)
    image = rng.standard_normal((1, 12, 12, 1)).astype(np.float32)
    np.testing.assert_allclose(backend.predict([image])[0], tf1_model.forward(image)[0], atol=1e-6)


def test_several_signatures_and_none_named(tmp_path):
    written = models.write_tf1_saved_model(tmp_path / "sm", signature="first", extra_signatures=("second",))
    chosen = load_backend(
        models.describe(written, deepimagej=DeepImageJConfig(tensorflow_signature="second"))
    )
    assert chosen.signature == "second"
    with pytest.raises(BackendError, match=r"no signature 'serving_default' \(found \['first', 'second'\]"):
        load_backend(models.describe(written, deepimagej=DeepImageJConfig()), weights_format="tensorflow")


def test_meta_graph_listing(tf1_model):
    [meta] = tensorflow_saved_model.read_meta_graphs(tf1_model.path)
    assert meta.tags == ("deepij-custom-tag",)
    [(name, info)] = meta.signatures.items()
    assert name == "deepij_custom_signature"
    assert info.inputs[0].names == ("input", "input") and info.inputs[0].rank == 4
    assert info.outputs[0].names == ("output", "conv2d_2/Sigmoid")


def test_not_a_saved_model(tmp_path, tf1_model):
    (tmp_path / "saved_model.pb").write_bytes(b"not a protobuf at all")
    with pytest.raises(BackendError, match="not a SavedModel protobuf"):
        tensorflow_saved_model.read_meta_graphs(tmp_path)


def test_keras_h5(tmp_path, rng):
    written = models.write_keras_h5(tmp_path / "model.h5")
    backend = load_backend(models.describe(written))
    assert (backend.weights.format, backend.runtime) == ("keras_hdf5", "keras")
    image = rng.standard_normal((2, 18, 14, 1)).astype(np.float32)
    [out] = backend.predict([image])
    np.testing.assert_allclose(out, written.forward(image)[0], rtol=1e-5, atol=1e-5)
    assert backend.predict([image[:1]])[0].shape == (1, 18, 14, 1)  # reused with another batch size


def test_tensorflow_gpu_request_without_gpu(tf2_model):
    if tensorflow_saved_model.gpu_count() > 0:
        pytest.skip("TensorFlow sees a GPU here: the request would be met")
    with pytest.raises(BackendError, match=r"asks for a GPU but tensorflow sees none"):
        load_backend(models.describe(tf2_model), device="cuda")


def test_tensorflow_gpu_index_checked(tf2_model, monkeypatch):
    # No GPU on these machines: only TF's "how many GPUs" query is replaced, to reach the index check.
    monkeypatch.setattr(tensorflow_saved_model, "gpu_count", lambda: 1)
    with pytest.raises(
        BackendError, match=r"device='cuda:1': tensorflow sees 1 GPU\(s\) \(expected one of 'cuda:0'\)"
    ):
        load_backend(models.describe(tf2_model), device="cuda:1")


def test_fixed_placeholder_contradicting_the_descriptor_is_refused(tmp_path, rng):
    """A TF1 graph whose placeholder fixes 64x64 under a descriptor allowing any size: refused at load."""
    written = models.write_tf1_saved_model(tmp_path / "fixed", input_shape=(None, 64, 64, 1))
    with pytest.raises(
        BackendError, match=r"'input' axis 'y' is fixed to 64 in the graph, the descriptor allows"
    ):
        load_backend(models.describe(written), weights_format="tensorflow")
    pinned = models.describe(written)
    spec = pinned.inputs[0]
    from dataclasses import replace

    from deepij.bundle.description import FixedSize

    axes = tuple(replace(a, size=FixedSize(64)) if a.id in "yx" else a for a in spec.axes)
    backend = load_backend(replace(pinned, inputs=(replace(spec, axes=axes),)))
    image = rng.standard_normal((1, 64, 64, 1)).astype(np.float32)
    np.testing.assert_allclose(backend.predict([image])[0], written.forward(image)[0], atol=1e-6)
