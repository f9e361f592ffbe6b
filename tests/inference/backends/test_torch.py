"""TorchScript and pytorch_state_dict adapters on real torch models: outputs equal torch's forward pass."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from deepij.bundle.description import ArchitectureSpec, WeightsEntry
from deepij.errors import BackendError, ChecksumError
from deepij.inference.backends import load_backend
from support import models


def native(description, **kw):
    """The adapter itself, without the switch to onnxruntime."""
    return load_backend(description, runtime="native", **kw)


@pytest.mark.parametrize(
    ("kw", "shape"),
    [
        ({}, (2, 1, 40, 48)),
        ({"kernel_sizes": (7,), "in_channels": 3, "out_channels": 2}, (1, 3, 33, 21)),
        ({"ndim": 3}, (1, 1, 6, 20, 24)),
        ({"padding": "valid", "scale": 2}, (1, 1, 30, 30)),
        ({"scale": 0.5}, (1, 1, 32, 40)),
    ],
)
def test_torchscript_equals_torch(tmp_path, rng, kw, shape):
    written = models.write_torchscript_convnet(tmp_path / "net.pt", **kw)
    backend = native(models.describe(written))
    image = rng.standard_normal(shape).astype(np.float32)
    [out] = backend.predict([image])
    [expected] = written.forward(image)
    assert backend.runtime == "torch" and backend.weights.format == "torchscript"
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)


def test_two_outputs_of_different_sizes(tmp_path, rng):
    written = models.write_torchscript_two_heads(tmp_path / "two.pt", classes=3)
    backend = native(models.describe(written))
    image = rng.standard_normal((1, 1, 24, 32)).astype(np.float32)
    mask, classes = backend.predict([image])
    expected = written.forward(image)
    assert mask.shape == (1, 1, 24, 32) and classes.shape == (1, 3, 12, 16)
    np.testing.assert_array_equal(mask, expected[0])
    np.testing.assert_array_equal(classes, expected[1])


def test_two_inputs_keep_descriptor_order(tmp_path, rng):
    written = models.write_torchscript_two_inputs(tmp_path / "two_in.pt")
    backend = native(models.describe(written))
    image = rng.standard_normal((1, 1, 16, 16)).astype(np.float32)
    guide = rng.standard_normal((1, 2, 16, 16)).astype(np.float32)
    [out] = backend.predict([image, guide])
    np.testing.assert_array_equal(out, written.forward(image, guide)[0])
    with pytest.raises(BackendError, match=r"got 1 input array\(s\) \(expected 2"):
        backend.predict([image])


def test_descriptor_without_batch_axis(convnet, rng):
    torchscript, _ = convnet
    backend = native(models.describe(torchscript, drop_batch=True), weights_format="torchscript")
    image = rng.standard_normal((1, 20, 28)).astype(np.float32)  # "cyx"
    [out] = backend.predict([image])
    assert out.shape == (1, 20, 28)
    np.testing.assert_array_equal(out, torchscript.forward(image[np.newaxis])[0][0])


def test_wrong_input_rank_names_the_tensor(convnet, rng):
    backend = native(models.describe(convnet[0]), weights_format="torchscript")
    with pytest.raises(BackendError, match=r"input 'input' has shape \(20, 28\).*axes 'bcyx'"):
        backend.predict([rng.standard_normal((20, 28))])


def test_inputs_cast_to_the_graph_dtype(tmp_path, rng):
    written = models.write_torchscript_convnet(tmp_path / "f64.pt", dtype="float64")
    backend = native(models.describe(written))
    image = rng.integers(0, 255, (1, 1, 16, 16), dtype=np.uint8)
    [out] = backend.predict([image])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, written.forward(image.astype(np.float64))[0])


def test_backend_stays_loaded_and_is_reused(unet, rng):
    backend = native(models.describe(unet))
    unet.path.rename(unet.path.with_suffix(".moved"))  # a reload would fail now
    try:
        for size in (32, 64, 40):
            image = rng.standard_normal((2, 1, size, size)).astype(np.float32)
            [out] = backend.predict([image])
            np.testing.assert_allclose(out, unet.forward(image)[0], rtol=0, atol=1e-6)
    finally:
        unet.path.with_suffix(".moved").rename(unet.path)
    backend.close()
    with pytest.raises(BackendError, match="after close"):
        backend.predict([image])


def test_network_failure_names_the_model(convnet, rng):
    backend = native(models.describe(convnet[0]), weights_format="torchscript")
    with pytest.raises(BackendError, match=r"convnet.pt.*failed on inputs of shape \[\(1, 2, 16, 16\)\]"):
        backend.predict([rng.standard_normal((1, 2, 16, 16)).astype(np.float32)])  # 2 channels, net takes 1


def test_state_dict_refused_without_allow_code(tmp_path):
    written = models.write_state_dict_convnet(tmp_path)
    with pytest.raises(BackendError, match=r"torch_nets.py.*allow_code=True"):
        load_backend(models.describe(written), weights_format="pytorch_state_dict")
    assert "deepij_architecture" not in " ".join(__import__("sys").modules)


def test_state_dict_with_allow_code(tmp_path, rng):
    written = models.write_state_dict_convnet(tmp_path, kernel_sizes=(3, 3), hidden=4)
    backend = native(models.describe(written), allow_code=True)
    image = rng.standard_normal((1, 1, 20, 20)).astype(np.float32)
    [out] = backend.predict([image])
    assert backend.weights.format == "pytorch_state_dict"
    np.testing.assert_array_equal(out, written.forward(image)[0])


def test_state_dict_architecture_checksum(tmp_path):
    written = models.write_state_dict_convnet(tmp_path)
    good = hashlib.sha256((tmp_path / "torch_nets.py").read_bytes()).hexdigest()
    bad = ArchitectureSpec("torch_nets.py", "ConvNet", written.architecture.kwargs, sha256="0" * 64)
    description = models.describe(written)
    entry = description.weights["pytorch_state_dict"]
    tampered = models.describe(written, weights={"pytorch_state_dict": _with(entry, architecture=bad)})
    with pytest.raises(BackendError, match="sha256") as info:
        load_backend(tampered, weights_format="pytorch_state_dict", allow_code=True)
    assert isinstance(info.value.__cause__, ChecksumError)
    checked = ArchitectureSpec("torch_nets.py", "ConvNet", written.architecture.kwargs, sha256=good)
    fine = models.describe(written, weights={"pytorch_state_dict": _with(entry, architecture=checked)})
    assert load_backend(fine, allow_code=True).weights.format == "pytorch_state_dict"


def test_state_dict_that_does_not_fit_its_architecture(tmp_path):
    written = models.write_state_dict_convnet(tmp_path, kernel_sizes=(3, 3))
    wrong = ArchitectureSpec("torch_nets.py", "ConvNet", {"kernel_sizes": [5, 5]})
    entry = WeightsEntry("pytorch_state_dict", written.path.name, architecture=wrong)
    with pytest.raises(BackendError, match="does not fit ConvNet"):
        load_backend(
            models.describe(written, weights={"pytorch_state_dict": entry}), allow_code=True, runtime="native"
        )


def test_state_dict_architecture_without_that_class(tmp_path):
    written = models.write_state_dict_convnet(tmp_path)
    wrong = ArchitectureSpec("torch_nets.py", "NoSuchNet", {})
    entry = WeightsEntry("pytorch_state_dict", written.path.name, architecture=wrong)
    with pytest.raises(BackendError, match=r"has no 'NoSuchNet' \(found: \[.*'ConvNet'"):
        load_backend(models.describe(written, weights={"pytorch_state_dict": entry}), allow_code=True)


def _with(entry, **changes):
    from dataclasses import replace

    return replace(entry, **changes)
