"""int8 and bfloat16 on the CPU: real bundles (0.5, with test tensors and spec pre-processing) whose ONNX or
TorchScript weights are quantized by onnxruntime, calibrated on their own test input, kept when they
reproduce float32 within the bundle's tolerance, refused with a note otherwise; bfloat16 according to what
this CPU has."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

import deepij
from deepij.bundle.description import DeepImageJConfig, ImageJStep
from deepij.errors import DeepijWarning
from deepij.inference.backends import cpu_precision, load_backend
from deepij.inference.backends.calibration_inputs import calibration_inputs
from deepij.inference.backends.precision import Tolerance
from support import models
from support.bundles import write_bundle_v0_5, zero_mean_unit_variance

GENEROUS = {"relative_tolerance": 0.05, "absolute_tolerance": 0.05}


def _with_tolerance(folder: Path, tolerance: dict | None) -> Path:
    """The bundle's descriptor with this reproducibility tolerance (None: the writer's own, atol 1e-4)."""
    if tolerance is not None:
        descriptor = folder / "rdf.yaml"
        data = yaml.safe_load(descriptor.read_text())
        data["config"]["bioimageio"]["reproducibility_tolerance"] = [tolerance]
        descriptor.write_text(yaml.safe_dump(data))
    return folder


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory):
    return write_bundle_v0_5(tmp_path_factory.mktemp("int8") / "onnx", weights=("onnx",))


@pytest.fixture(scope="module")
def generous_onnx(tmp_path_factory):
    written = write_bundle_v0_5(tmp_path_factory.mktemp("int8") / "generous", weights=("onnx",))
    _with_tolerance(written.folder, GENEROUS)
    return written


def _network_input(rng, side=40):
    """An input as the network sees it: zero mean, unit variance (the bundles' pre-processing)."""
    raw = rng.random((1, 1, side, side), dtype=np.float32) * 1000
    return zero_mean_unit_variance(raw, (2, 3)).astype(np.float32)


def test_int8_is_kept_where_it_reproduces_float32_and_stays_within_the_tolerance(generous_onnx, rng):
    description = deepij.load(generous_onnx.folder).description
    backend = load_backend(description, runtime="onnxruntime", precision="int8")
    [note] = [n for n in backend.notes if n.startswith("precision int8")]
    assert "quantized on the bundle's test input after its spec pre-processing" in note
    assert "and the same image mirrored" in note and backend.runtime == "onnxruntime"
    graph = onnx.load_from_string(backend.model_source)
    assert any(node.op_type == "QuantizeLinear" for node in graph.graph.node)
    image = _network_input(rng)
    [got] = backend.predict([image])
    [expected] = generous_onnx.model.forward(image)  # torch's float32 forward pass of the same weights
    ok, figures = Tolerance(0.05, 0.05, 100).accepts(expected, got)
    assert ok, figures
    assert not np.allclose(got, expected, rtol=1e-6, atol=1e-6)  # it did run in int8


def test_int8_is_refused_with_a_note_where_the_tolerance_is_tight(onnx_bundle, rng):
    description = deepij.load(onnx_bundle.folder).description  # atol 1e-4 in its descriptor
    refusal = r"precision='int8' refused, float32 runs: its outputs leave the bundle's reproduction tolerance"
    with pytest.warns(DeepijWarning, match=refusal):
        backend = load_backend(description, runtime="onnxruntime", precision="int8")
    assert any("atol 0.0001" in n and "the bundle's test input" in n for n in backend.notes)
    assert not any(node.op_type == "QuantizeLinear" for node in onnx.load(backend.model_source).graph.node)
    image = _network_input(rng)
    np.testing.assert_allclose(backend.predict([image])[0], onnx_bundle.model.forward(image)[0], atol=1e-5)


def test_int8_of_torch_weights_runs_their_converted_graph(tmp_path, rng):
    written = write_bundle_v0_5(tmp_path / "ts", weights=("torchscript",))
    _with_tolerance(written.folder, GENEROUS)
    backend = load_backend(deepij.load(written.folder).description, precision="int8")
    assert backend.weights.format == "torchscript" and backend.runtime in ("onnxruntime", "openvino")
    assert any("converted to ONNX" in n for n in backend.notes)
    assert any(n.startswith("precision int8") for n in backend.notes)
    image = _network_input(rng)
    assert Tolerance(0.05, 0.05, 100).accepts(written.model.forward(image)[0], backend.predict([image])[0])[0]


def test_int8_with_openvino_runs_integer_convolutions(generous_onnx, rng):
    description = deepij.load(generous_onnx.folder).description
    backend = load_backend(description, runtime="openvino", precision="int8")
    assert backend.runtime == "openvino" and any(n.startswith("precision int8") for n in backend.notes)
    backend.predict([_network_input(rng)])
    request = next(reversed(backend._compiled.values()))
    ops = request.get_compiled_model().get_runtime_model().get_ops()
    precisions = {
        str(op.get_rt_info()["runtimePrecision"].astype(str))
        for op in ops
        if op.get_rt_info()["layerType"].astype(str) == "Convolution"
    }
    assert precisions & {"u8", "i8"}, precisions  # OpenVINO's own account of what it ran


def test_the_int8_graph_is_reused_by_a_second_process(generous_onnx, tmp_path):
    cache = tmp_path / "cache"
    code = textwrap.dedent(
        f"""
        import sys, warnings
        import deepij
        from deepij.inference.backends import load_backend
        description = deepij.load({str(generous_onnx.folder)!r}).description
        backend = load_backend(description, runtime="onnxruntime", precision="int8")
        print("quantizer imported:", "onnxruntime.quantization" in sys.modules)
        print("\\n".join(backend.notes))
        """
    )
    env = dict(os.environ, DEEPIJ_CACHE_DIR=str(cache))

    def child() -> str:
        command = [sys.executable, "-c", code]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    first = child()
    entries = {p: p.stat().st_mtime_ns for p in (cache / "graphs").iterdir()}
    assert "quantizer imported: True" in first and "quantized on the bundle's test input" in first
    second = child()
    assert "quantizer imported: False" in second
    assert "precision int8 (quantized graph from the graph cache)" in second
    assert {p: p.stat().st_mtime_ns for p in (cache / "graphs").iterdir()} == entries  # nothing rewritten


def test_the_network_tail_stays_in_float32(generous_onnx, rng):
    description = deepij.load(generous_onnx.folder).description
    backend = load_backend(description, runtime="onnxruntime", precision="int8")
    graph = onnx.load_from_string(backend.model_source).graph
    producer = {output: node for node in graph.node for output in node.output}
    convolutions = [node for node in graph.node if node.op_type == "Conv"]
    quantized = [c for c in convolutions if producer.get(c.input[1], c).op_type == "DequantizeLinear"]
    assert len(convolutions) == 3 and len(quantized) == 2  # the convnet's last convolution is the tail
    assert producer[graph.output[0].name].op_type == "Conv"  # no 8-bit rounding of the outputs


def test_int8_is_refused_for_torch_run_natively(tmp_path):
    written = write_bundle_v0_5(tmp_path / "native", weights=("torchscript",))
    description = deepij.load(written.folder).description
    with pytest.warns(DeepijWarning, match=r"this model runs with torch \(runtime='auto' converts"):
        backend = load_backend(description, runtime="native", precision="int8")
    assert backend.runtime == "torch"


def test_calibration_is_the_pre_processed_test_input(onnx_bundle):
    calibration = calibration_inputs(deepij.load(onnx_bundle.folder).description)
    [expected] = [zero_mean_unit_variance(onnx_bundle.test_input, (2, 3)).astype(np.float32)]
    np.testing.assert_allclose(calibration.inputs[0], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(calibration.held_out[0], calibration.inputs[0][:, :, ::-1, ::-1])
    assert calibration.source == "the bundle's test input after its spec pre-processing"


def test_calibration_falls_back_to_random_data_with_the_reason(convnet):
    description = models.describe(convnet[1])  # no test tensors
    calibration = calibration_inputs(description)
    assert calibration.source == "random data (the bundle ships no test or sample input for 'input')"
    assert calibration.inputs[0].shape == (1, 1, 128, 128) and calibration.held_out[0].shape[0] == 2
    in_imagej = dataclasses.replace(
        description, deepimagej=DeepImageJConfig(preprocess=(ImageJStep("macro", "normalize.ijm"),))
    )
    assert "pre-processes in ImageJ" in calibration_inputs(in_imagej).source


def _cpu_has_bfloat16() -> bool:
    flags = Path("/proc/cpuinfo").read_text().split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def test_bfloat16_follows_what_this_cpu_has(generous_onnx, rng):
    description = deepij.load(generous_onnx.folder).description
    if not _cpu_has_bfloat16():
        with pytest.warns(DeepijWarning, match=r"no bfloat16 arithmetic \(neither avx512_bf16 nor amx_bf16"):
            backend = load_backend(description, precision="bfloat16")
        assert backend.runtime in ("onnxruntime", "openvino")
        return
    backend = load_backend(description, precision="bfloat16")
    assert backend.runtime == "openvino" and backend.compiled_precision() == "bf16"
    image = _network_input(rng)
    expected = generous_onnx.model.forward(image)[0]
    assert Tolerance(0.05, 0.05, 100).accepts(expected, backend.predict([image])[0])[0]


def test_bfloat16_is_refused_on_onnxruntime(generous_onnx):
    description = deepij.load(generous_onnx.folder).description
    with pytest.warns(DeepijWarning, match=r"onnxruntime has no bfloat16 CPU kernels"):
        load_backend(description, runtime="onnxruntime", precision="bfloat16")


@pytest.mark.skipif(_cpu_has_bfloat16(), reason="this CPU computes bfloat16")
def test_bfloat16_that_openvino_would_compute_in_float32_is_refused(generous_onnx, monkeypatch):
    # The one stand-in here: OpenVINO's capability list is made to claim BF16, which this CPU cannot have;
    # the real OpenVINO then compiles the graph in f32, and the check that reads it back must refuse.
    real = cpu_precision.openvino_cpu_capabilities
    monkeypatch.setattr(cpu_precision, "openvino_cpu_capabilities", lambda: [*real(), "BF16"])
    description = deepij.load(generous_onnx.folder).description
    with pytest.warns(DeepijWarning, match=r"OpenVINO compiled it in f32, not bf16"):
        backend = load_backend(description, precision="bfloat16")
    assert backend.runtime in ("onnxruntime", "openvino")


def test_predict_with_int8_says_so_and_stays_within_the_tolerance(generous_onnx, rng):
    model = deepij.load(generous_onnx.folder)
    image = rng.random((1, 1, 48, 48), dtype=np.float32) * 1000
    float32 = np.asarray(model.predict(image).images["probability"])
    result = model.predict(image, precision="int8")
    assert any(n.startswith("precision int8") for n in result.notes)
    int8 = np.asarray(result.images["probability"])
    assert Tolerance(0.05, 0.05, 100).accepts(float32, int8)[0] and not np.array_equal(float32, int8)


def test_a_calibration_input_the_network_cannot_take_refuses_int8_not_the_model(tmp_path, rng):
    written = models.write_onnx_convnet(tmp_path / "convnet.onnx")
    np.save(tmp_path / "test_input.npy", rng.random((1, 2, 32, 32), dtype=np.float32))  # 2 channels, not 1
    description = models.describe(written)
    spec = dataclasses.replace(description.inputs[0], test_tensor="test_input.npy")
    description = dataclasses.replace(description, inputs=(spec,))
    with pytest.warns(DeepijWarning, match=r"precision='int8' refused, float32 runs: onnxruntime could not"):
        backend = load_backend(description, runtime="onnxruntime", precision="int8")
    image = rng.standard_normal((1, 1, 24, 24)).astype(np.float32)
    np.testing.assert_allclose(backend.predict([image])[0], written.forward(image)[0], rtol=1e-5, atol=1e-5)
