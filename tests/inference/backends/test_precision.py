"""Half precision: refused (with a note and a warning) where it does not apply or does not reproduce
float32; the check itself run on torch here (no GPU: it is the same arithmetic on the CPU), on a network that
survives float16 and on one that overflows it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deepij.errors import BackendError, DeepijWarning
from deepij.inference.backends import load_backend
from deepij.inference.backends.precision import Tolerance, half_if_it_reproduces, reproduction_tolerance
from support import models


def test_float16_on_the_cpu_is_refused_with_a_note_and_a_warning(convnet, rng):
    torchscript, _ = convnet
    description = models.describe(torchscript)
    with pytest.warns(DeepijWarning, match=r"precision='float16' refused, float32 runs: it applies to GPU"):
        backend = load_backend(description, device="cpu", runtime="native", precision="float16")
    assert any("refused" in n for n in backend.notes) and not backend.half
    image = rng.standard_normal((1, 1, 24, 24)).astype(np.float32)
    [out] = backend.predict([image])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, torchscript.forward(image)[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(BackendError, match=r"precision='float8' is not known"):
        load_backend(description, device="cpu", precision="float8")


def test_half_is_kept_when_it_reproduces_float32(convnet, rng):
    torchscript, _ = convnet
    backend = load_backend(models.describe(torchscript), device="cpu", runtime="native")
    backend = half_if_it_reproduces(backend)
    assert backend.half and any("precision float16: checked against float32" in n for n in backend.notes)
    image = rng.standard_normal((1, 1, 24, 24)).astype(np.float32)
    [out] = backend.predict([image])
    assert out.dtype == np.float32  # handed back in the declared type
    np.testing.assert_allclose(out, torchscript.forward(image)[0], rtol=1e-2, atol=1e-2)


def test_half_that_overflows_is_refused_and_the_float32_weights_restored(tmp_path, rng):
    import torch

    written = models.write_torchscript_convnet(tmp_path / "loud.pt", kernel_sizes=(3,))
    module = torch.jit.load(str(written.path))
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(1e5)  # activations past float16's 65504: inf in half precision
    module.save(str(written.path))
    backend = load_backend(models.describe(written), device="cpu", runtime="native")
    image = rng.standard_normal((1, 1, 20, 20)).astype(np.float32)
    before = backend.predict([image])[0]
    assert np.abs(before).max() > 65504
    refused = r"leave the bundle's reproduction tolerance \(\d+ of \d+ elements"
    with pytest.warns(DeepijWarning, match=refused):
        backend = half_if_it_reproduces(backend)
    assert not backend.half
    np.testing.assert_array_equal(backend.predict([image])[0], before)  # exactly the float32 weights


def test_the_bundle_tolerance_is_read_from_its_config(convnet):
    description = models.describe(convnet[0])
    assert reproduction_tolerance(description) == Tolerance(1e-3, 1e-3, 100)
    entries = [
        {"weights_formats": ["onnx"], "relative_tolerance": 0.5},
        {"relative_tolerance": 0.01, "absolute_tolerance": 0.02, "mismatched_elements_per_million": 5},
    ]
    config = {"bioimageio": {"reproducibility_tolerance": entries}}
    configured = dataclasses.replace(description, config=config)
    assert reproduction_tolerance(configured, "torchscript") == Tolerance(0.01, 0.02, 5)
    assert reproduction_tolerance(configured, "onnx").relative == 0.5


def test_tolerance_counts_mismatched_elements_per_million():
    reference = np.zeros(1_000_000)
    candidate = reference.copy()
    candidate[:100] = 1.0  # 100 per million: allowed by the default
    assert Tolerance().accepts(reference, candidate)[0]
    candidate[100] = 1.0
    ok, text = Tolerance().accepts(reference, candidate)
    assert not ok and text.startswith("101 of 1000000 elements outside")
