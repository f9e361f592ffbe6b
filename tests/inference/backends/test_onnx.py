"""onnxruntime adapter on real ONNX files, and torch weights converted to ONNX (runtime="auto")."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from deepij.bundle.description import TensorSpec
from deepij.errors import BackendError
from deepij.inference.backends import load_backend, selection
from deepij.inference.backends.probes import outputs_agree, probe_inputs
from support import models


class Unexportable(torch.nn.Module):
    """cumprod has no ONNX opset-17 export: the conversion must fail and torch keep the model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumprod(x, dim=-1)


def test_onnx_equals_torch(convnet, rng):
    _, onnx_net = convnet
    backend = load_backend(models.describe(onnx_net), runtime="onnxruntime")
    image = rng.standard_normal((3, 1, 37, 29)).astype(np.float32)
    [out] = backend.predict([image])
    assert (backend.weights.format, backend.runtime) == ("onnx", "onnxruntime")
    np.testing.assert_allclose(out, onnx_net.forward(image)[0], rtol=1e-5, atol=1e-5)


def test_onnx_unet_equals_torch(tmp_path, rng):
    written = models.write_onnx_unet(tmp_path / "unet.onnx", base=8)
    image = rng.standard_normal((1, 1, 48, 64)).astype(np.float32)
    [out] = load_backend(models.describe(written)).predict([image])
    np.testing.assert_allclose(out, written.forward(image)[0], rtol=1e-4, atol=1e-5)


def test_onnx_without_batch_axis_and_other_names(convnet, rng):
    _, onnx_net = convnet
    description = models.describe(onnx_net, drop_batch=True)
    renamed = TensorSpec("raw", description.inputs[0].axes)  # names differ from the graph's: matched by order
    backend = load_backend(models.describe(onnx_net, drop_batch=True, inputs=(renamed,)))
    image = rng.standard_normal((1, 25, 30)).astype(np.float32)
    [out] = backend.predict([image])
    assert out.shape == (1, 25, 30)
    np.testing.assert_allclose(out, onnx_net.forward(image[None])[0][0], rtol=1e-5, atol=1e-5)


def test_onnx_casts_to_graph_dtype(convnet, rng):
    _, onnx_net = convnet
    backend = load_backend(models.describe(onnx_net, input_dtype="uint8"))
    image = rng.integers(0, 200, (1, 1, 16, 16)).astype(np.uint8)
    [out] = backend.predict([image])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, onnx_net.forward(image.astype(np.float32))[0], rtol=1e-5, atol=1e-4)


def test_torchscript_runs_on_an_onnx_engine_by_default(unet, rng):
    backend = load_backend(models.describe(unet), device="cpu")
    assert backend.weights.format == "torchscript" and backend.runtime in ("onnxruntime", "openvino")
    assert any("converted to ONNX" in note for note in backend.notes)
    image = rng.standard_normal((2, 1, 40, 56)).astype(np.float32)
    [out] = backend.predict([image])
    np.testing.assert_allclose(out, unet.forward(image)[0], rtol=1e-4, atol=1e-5)


def test_conversion_of_a_batchless_state_dict_model(tmp_path, rng):
    written = models.write_state_dict_convnet(tmp_path, kernel_sizes=(3, 5))
    backend = load_backend(
        models.describe(written, drop_batch=True), allow_code=True, device="cpu", runtime="onnxruntime"
    )
    assert backend.runtime == "onnxruntime"
    image = rng.standard_normal((1, 18, 22)).astype(np.float32)
    np.testing.assert_allclose(backend.predict([image])[0], written.forward(image[None])[0][0], atol=1e-5)


def test_unexportable_model_stays_on_torch(tmp_path, rng):
    path = tmp_path / "cumprod.pt"
    torch.jit.script(Unexportable()).save(str(path))
    written = models.write_torchscript_convnet(tmp_path / "shape_donor.pt")  # same tensors, other file
    description = models.describe(written, weights={"torchscript": _entry("torchscript", path.name)})
    backend = load_backend(description, device="cpu")
    assert backend.runtime == "torch"
    assert any("kept torch" in note and "ONNX" in note for note in backend.notes)
    image = rng.random((1, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(backend.predict([image])[0], np.cumprod(image, axis=-1), rtol=1e-6)
    with pytest.raises(BackendError, match=r"runtime='onnxruntime': .*could not export it to ONNX"):
        load_backend(description, runtime="onnxruntime", device="cpu")


def test_without_onnxruntime_torch_runs(convnet, monkeypatch):
    # onnxruntime is installed here: only the "is it installed" query is replaced to act as if it were not.
    real_find_spec = selection.importlib.util.find_spec
    monkeypatch.setattr(
        selection.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a),
    )
    description = models.describe(convnet[0])
    backend = load_backend(description, device="cpu")
    assert backend.runtime == "torch"
    assert "kept torch: onnxruntime is not installed (pip install onnxruntime)" in backend.notes
    with pytest.raises(BackendError, match=r"runtime='onnxruntime': onnxruntime is not installed"):
        load_backend(description, runtime="onnxruntime", device="cpu")


def test_runtime_must_be_known(convnet):
    with pytest.raises(BackendError, match=r"runtime='fast'.*'auto', 'native', 'onnxruntime', 'openvino'"):
        load_backend(models.describe(convnet[0]), runtime="fast")


def test_probe_inputs_follow_the_size_rules(unet):
    description = models.describe(unet)  # min 8, step 8
    (small,) = probe_inputs(description)
    (large,) = probe_inputs(description, larger=True)
    assert small.shape == (1, 1, 32, 32)
    assert large.shape == (2, 1, 40, 40)


def test_outputs_agree_tolerances():
    a = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    assert outputs_agree([a], [a + 5e-5])
    assert not outputs_agree([a], [a + 1e-2])
    assert not outputs_agree([a], [a[:5]])
    assert not outputs_agree([a, a], [a])


def _entry(fmt, source):
    from deepij.bundle.description import WeightsEntry

    return WeightsEntry(fmt, source)


def test_exact_memory_rebuilds_the_session_and_keeps_the_outputs(convnet, rng):
    # Under a memory cap the session runs on an arena that grows by what is asked (module notes of
    # onnx_runtime); the network's outputs are the same either way.
    torchscript, onnx_net = convnet
    backend = load_backend(models.describe(onnx_net), runtime="onnxruntime")
    image = rng.standard_normal((2, 1, 40, 33)).astype(np.float32)
    pooled = backend.session
    assert backend.exact_memory is False
    assert backend.hold_memory_exactly(True) is True and backend.session is not pooled
    assert backend.hold_memory_exactly(True) is False  # already so: nothing rebuilt
    np.testing.assert_allclose(backend.predict([image])[0], onnx_net.forward(image)[0], rtol=1e-5, atol=1e-5)
    assert backend.hold_memory_exactly(False) is True and backend.exact_memory is False
    torch_backend = load_backend(models.describe(torchscript), runtime="native")
    assert torch_backend.hold_memory_exactly(True) is False  # torch frees what a pass used


def test_openvino_carries_nan_and_infinity_through_the_network(convnet, rng, caplog):
    # OpenVINO's Relu gives 0 for NaN: a pass holding NaN or infinity runs with onnxruntime instead, so the
    # output is NaN wherever the eager torch module (the oracle) gives NaN, and the rest is unchanged.
    pytest.importorskip("openvino")
    _, onnx_net = convnet
    backend = load_backend(models.describe(onnx_net), runtime="openvino")
    assert backend.runtime == "openvino"
    image = rng.standard_normal((1, 1, 40, 36)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="deepij"):
        [finite] = backend.predict([image])
    assert "runs with onnxruntime" not in caplog.text
    np.testing.assert_allclose(finite, onnx_net.forward(image)[0], rtol=1e-4, atol=1e-5)
    image[0, 0, 10, 12] = np.nan
    image[0, 0, 30, 5] = np.inf
    with caplog.at_level(logging.INFO, logger="deepij"):
        [out] = backend.predict([image])
    assert "a pass with NaN or infinite inputs runs with onnxruntime" in caplog.text
    expected = onnx_net.forward(image)[0]
    reached = ~np.isfinite(expected)
    assert 0 < reached.sum() < reached.size  # within the receptive field of the two pixels only
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    np.testing.assert_allclose(out[~reached], expected[~reached], rtol=1e-4, atol=1e-5)
    backend.close()
