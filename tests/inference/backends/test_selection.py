"""Which weights load: priority, override, entries skipped with a note, errors listing every entry."""

from __future__ import annotations

import functools
import hashlib
import http.server
import logging
import threading

import numpy as np
import pytest

from deepij.bundle.description import WeightsEntry
from deepij.errors import BackendError
from deepij.inference.backends import (
    CPU_PRIORITY,
    GPU_PRIORITY,
    canonical_format,
    load_backend,
    selection,
    torch_runner,
)
from support import models


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; downloads cached under tmp_path."""
    monkeypatch.setenv("DEEPIJ_CACHE_DIR", str(tmp_path / "cache"))
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _all_formats(convnet):
    torchscript = convnet[0]
    entries = {f: WeightsEntry(f, "absent." + f) for f in (*CPU_PRIORITY, "tensorflow_js")}
    return models.describe(torchscript, weights=entries)


# The orders the README's "Backends and devices" section documents, written out independently.
README_CPU_ORDER = [
    "onnx",
    "torchscript",
    "tensorflow_saved_model_bundle",
    "pytorch_state_dict",
    "keras_hdf5",
]
README_GPU_ORDER = [
    "torchscript",
    "pytorch_state_dict",
    "onnx",
    "tensorflow_saved_model_bundle",
    "keras_hdf5",
]


def test_cpu_priority_order(convnet):
    assert list(CPU_PRIORITY) == README_CPU_ORDER
    order = selection.candidate_formats(_all_formats(convnet), None, "cpu")
    assert order == [*README_CPU_ORDER, "tensorflow_js"]  # formats deepij cannot run come last


def test_gpu_priority_when_torch_sees_a_gpu(convnet, monkeypatch):
    # The GPU branch must be seen on any machine: only torch's "how many GPUs" query is replaced.
    monkeypatch.setattr(torch_runner, "gpu_count", lambda: 1)
    assert list(GPU_PRIORITY) == README_GPU_ORDER
    assert selection.candidate_formats(_all_formats(convnet), None, None)[:5] == README_GPU_ORDER
    assert selection.candidate_formats(_all_formats(convnet), None, "cpu")[0] == "onnx"


def test_the_first_format_that_loads_is_used(convnet, tmp_path):
    """Behaviour, not the table: with torchscript and onnx present on the CPU, the ONNX file runs; with the
    ONNX file broken, the TorchScript one does."""
    torchscript, onnx_net = convnet
    assert load_backend(models.describe(torchscript, onnx_net), device="cpu").weights.format == "onnx"
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    (tmp_path / "net.pt").write_bytes(torchscript.path.read_bytes())
    weights = {
        "torchscript": WeightsEntry("torchscript", "net.pt"),
        "onnx": WeightsEntry("onnx", "broken.onnx"),
    }
    backend = load_backend(models.describe(torchscript, weights=weights, root=tmp_path), device="cpu")
    assert backend.weights.format == "torchscript"
    assert backend.notes[0].startswith("skipped weights 'onnx' (broken.onnx)")


def test_gpu_priority_when_asked(convnet):
    assert selection.candidate_formats(_all_formats(convnet), None, "cuda:0")[0] == "torchscript"


def test_onnx_preferred_when_both_load(convnet):
    backend = load_backend(models.describe(*convnet))
    assert backend.weights.format == "onnx" and not any("skipped" in n for n in backend.notes)


@pytest.mark.parametrize("name", ["torchscript", "pytorch_script", "Pytorch"])
def test_weights_format_override(convnet, rng, name):
    backend = load_backend(models.describe(*convnet), weights_format=name, runtime="native")
    assert backend.weights.format == "torchscript" and backend.runtime == "torch"
    image = rng.standard_normal((1, 1, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(backend.predict([image])[0], convnet[0].forward(image)[0])


def test_canonical_names():
    assert canonical_format("Tensorflow") == "tensorflow_saved_model_bundle"
    assert canonical_format("keras_hdf5") == "keras_hdf5"


def test_weights_format_not_in_bundle(convnet):
    with pytest.raises(BackendError, match=r"weights_format='Tensorflow' is not in this bundle \(found \["):
        load_backend(models.describe(*convnet), weights_format="Tensorflow")


def test_missing_file_skipped_with_a_note(convnet, tmp_path, caplog):
    torchscript = convnet[0]
    weights = {
        "onnx": WeightsEntry("onnx", "not_there.onnx"),
        "torchscript": WeightsEntry("torchscript", torchscript.path.name),
    }
    with caplog.at_level(logging.WARNING, logger="deepij.inference.backends"):
        backend = load_backend(models.describe(torchscript, weights=weights))
    assert backend.weights.format == "torchscript"
    assert backend.notes[0].startswith("skipped weights 'onnx' (not_there.onnx)")
    assert "missing" in backend.notes[0]
    assert any("not_there.onnx" in r.getMessage() for r in caplog.records)


def test_explicit_format_that_fails_is_an_error(convnet):
    torchscript, _ = convnet
    weights = {
        "onnx": WeightsEntry("onnx", "not_there.onnx"),
        "torchscript": WeightsEntry("torchscript", "x.pt"),
    }
    with pytest.raises(BackendError, match=r"weights 'onnx' \(not_there.onnx\) cannot be used:.*missing"):
        load_backend(models.describe(torchscript, weights=weights), weights_format="onnx")


def test_unreachable_url_skipped_and_reachable_url_used(convnet, http_root, rng):
    www, base = http_root
    torchscript, onnx_net = convnet
    www.joinpath("net.onnx").write_bytes(onnx_net.path.read_bytes())
    digest = hashlib.sha256(onnx_net.path.read_bytes()).hexdigest()
    unreachable = {
        "onnx": WeightsEntry("onnx", f"{base}/gone.onnx"),
        "torchscript": WeightsEntry("torchscript", torchscript.path.name),
    }
    backend = load_backend(models.describe(torchscript, weights=unreachable), runtime="native")
    assert backend.weights.format == "torchscript"
    assert "gone.onnx" in backend.notes[0]
    served = {"onnx": WeightsEntry("onnx", f"{base}/net.onnx", sha256=digest)}
    backend = load_backend(models.describe(torchscript, weights=served))
    image = rng.standard_normal((1, 1, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(backend.predict([image])[0], onnx_net.forward(image)[0], atol=1e-5)


def test_checksum_mismatch_skipped(convnet):
    torchscript, onnx_net = convnet
    weights = {
        "onnx": WeightsEntry("onnx", onnx_net.path.name, sha256="ab" * 32),
        "torchscript": WeightsEntry("torchscript", torchscript.path.name),
    }
    backend = load_backend(models.describe(torchscript, weights=weights), runtime="native")
    assert backend.weights.format == "torchscript"
    assert "sha256" in backend.notes[0]
    assert load_backend(models.describe(torchscript, weights=weights), verify=False).weights.format == "onnx"


def test_nothing_loads_lists_every_entry(convnet, tmp_path, monkeypatch):
    torchscript, _ = convnet
    (tmp_path / "garbage.pt").write_bytes(b"this is not a model")
    monkeypatch.setitem(selection.ADAPTERS, "keras_hdf5", "deepij_no_such_framework_module")
    weights = {
        "onnx": WeightsEntry("onnx", "absent.onnx"),
        "torchscript": WeightsEntry("torchscript", "garbage.pt"),
        "keras_hdf5": WeightsEntry("keras_hdf5", "garbage.pt"),
        "tensorflow_js": WeightsEntry("tensorflow_js", "model.json"),
    }
    description = models.describe(torchscript, weights=weights, root=tmp_path)
    with pytest.raises(BackendError) as info:
        load_backend(description)
    message = str(info.value)
    assert "none of the weights could be loaded" in message
    assert "'onnx' (absent.onnx): " in message and "missing" in message
    assert "'torchscript' (garbage.pt): " in message and "not a TorchScript file" in message
    assert "'keras_hdf5' (garbage.pt): deepij_no_such_framework_module is not installed" in message
    assert "no runtime for weights format 'tensorflow_js'" in message


def test_no_weights_at_all(convnet):
    with pytest.raises(BackendError, match="lists no weights"):
        load_backend(models.describe(convnet[0], weights={}))


@pytest.mark.skipif(torch_runner.gpu_count() > 0, reason="this machine has a GPU: the request would be met")
def test_gpu_asked_without_gpu_lists_each_entry(convnet):
    with pytest.raises(BackendError) as info:
        load_backend(models.describe(*convnet), device="cuda")
    assert str(info.value).count("asks for a GPU but") == 2
    assert "torch sees none" in str(info.value) and "onnxruntime sees none" in str(info.value)


def test_malformed_device_is_refused_at_once(convnet):
    with pytest.raises(BackendError, match=r"device='tpu' is not a device name"):
        load_backend(models.describe(*convnet), device="tpu")
