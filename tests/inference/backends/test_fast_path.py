"""The fast path on zoo-style weights: scripted/traced torch converted to ONNX by the route that works, fixed
ONNX dims relaxed where the network allows (and only there), graphs that contradict the descriptor skipped,
output shapes checked at load, OpenVINO as a CPU engine, and the on-disk graph cache across processes.

Expected outputs come from the eager torch modules the files were made from (support.zoo_models)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from deepij.bundle.description import FixedSize, ParameterizedSize, WeightsEntry
from deepij.errors import BackendError, OutputShapeError
from deepij.inference.backends import devices, graph_cache, load_backend, runtime_choice
from support import models, zoo_models

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="module")
def fixed_unet(zoo_dir):
    return zoo_models.write_fixed_onnx_unet(zoo_dir / "fixed_unet.onnx", side=128)


@pytest.fixture(scope="module")
def dense(zoo_dir):
    return zoo_models.write_fixed_onnx_dense(zoo_dir / "dense.onnx", side=32)


def _close(actual, written, image, atol=1e-5):
    np.testing.assert_allclose(actual, written.forward(image)[0], rtol=1e-4, atol=atol)


# --- torch weights: which export route works ---


def test_scripted_zoo_unet_with_control_flow_converts_frozen(zoo_dir):
    written = zoo_models.write_scripted_zoo_unet(zoo_dir / "zoo_unet.pt")
    backend = load_backend(models.describe(written), device="cpu", runtime="onnxruntime")
    assert backend.runtime == "onnxruntime"
    assert any("converted to ONNX (frozen TorchScript graph)" in n for n in backend.notes)
    image = zoo_models.image(48, batch=2)
    _close(backend.predict([image])[0], written, image)


def test_scripted_unet_with_interpolate_converts_as_loaded(zoo_dir):
    written = zoo_models.write_scripted_zoo_unet(zoo_dir / "zoo_bilinear.pt", upsampling="bilinear")
    backend = load_backend(models.describe(written), device="cpu", runtime="onnxruntime")
    [note] = [n for n in backend.notes if "converted to ONNX" in n]
    assert "(module as loaded; before it frozen TorchScript graph: export failed" in note
    image = zoo_models.image(40)
    _close(backend.predict([image])[0], written, image)


def test_traced_unet_converts(zoo_dir):
    written = zoo_models.write_traced_unet(zoo_dir / "traced.pt")
    backend = load_backend(models.describe(written), device="cpu", runtime="onnxruntime")
    assert backend.runtime == "onnxruntime"
    image = zoo_models.image(56)  # another size than the 64 it was traced with
    _close(backend.predict([image])[0], written, image)


def test_output_contradicting_the_descriptor_is_found_at_load(tmp_path):
    # A "valid" convnet loses 2*halo pixels; described as if its output kept the input size.
    written = models.write_torchscript_convnet(tmp_path / "valid.pt", padding="valid")
    honest = models.describe(written)
    out = honest.outputs[0]
    same_size = dataclasses.replace(
        out,
        axes=tuple(
            dataclasses.replace(a, size=dataclasses.replace(a.size, offset=0)) if a.id in "yx" else a
            for a in out.axes
        ),
    )
    lying = dataclasses.replace(honest, outputs=(same_size,))
    with pytest.raises(BackendError, match=r"output 'output' axis 'y' came out with \d+ elements") as info:
        load_backend(lying, weights_format="torchscript", device="cpu")
    assert isinstance(info.value.__cause__, OutputShapeError)
    # kernels 3, 5, 3 without padding: 20 - 2 * (1 + 2 + 1) = 12
    assert load_backend(honest, device="cpu").predict([zoo_models.image(20)])[0].shape == (1, 1, 12, 12)


# --- fixed ONNX dims ---


def test_fixed_dims_relaxed_under_a_fixed_descriptor(fixed_unet):
    description = zoo_models.fixed_description(fixed_unet, 128)
    backend = load_backend(description, runtime="onnxruntime")
    assert any("fixed y=128, x=128 relaxed" in n for n in backend.notes)
    # the U-Net pools 3 times: sizes must be multiples of 2**3 = 8, which the relaxation found
    sizes = [a.size for a in backend.description.inputs[0].axes if a.id in "yx"]
    assert sizes == [ParameterizedSize(8, 8)] * 2
    image = zoo_models.image(72)
    _close(backend.predict([image])[0], fixed_unet, image)


def test_fixed_dims_relaxed_under_a_multiple_rule(fixed_unet):
    backend = load_backend(zoo_models.multiple_of(fixed_unet, 16), runtime="onnxruntime")
    assert [a.size for a in backend.description.inputs[0].axes if a.id == "y"] == [ParameterizedSize(16, 16)]
    image = zoo_models.image(96, batch=3)  # and a batch of 3 through a graph that fixes batch 1
    _close(backend.predict([image])[0], fixed_unet, image)


def test_ops_that_need_the_size_are_not_relaxed(dense):
    backend = load_backend(zoo_models.fixed_description(dense, 32), runtime="onnxruntime")
    assert any("fixes y=32, x=32 and needs it" in n for n in backend.notes)
    assert [a.size for a in backend.description.inputs[0].axes if a.id == "y"] == [FixedSize(32)]
    image = zoo_models.image(32, batch=2)
    _close(backend.predict([image])[0], dense, image)
    again = load_backend(zoo_models.fixed_description(dense, 32), runtime="onnxruntime")
    assert any("needs it" in n and "(from the graph cache)" in n for n in again.notes)  # not tried again


def test_contradicting_graph_skipped_for_the_next_format(dense, zoo_dir):
    scripted = zoo_models.write_scripted_zoo_unet(zoo_dir / "fallback.pt")
    weights = {
        "onnx": WeightsEntry("onnx", dense.path.name),
        "torchscript": WeightsEntry("torchscript", scripted.path.name),
    }
    description = zoo_models.multiple_of(dense, 8, weights=weights)
    backend = load_backend(description, device="cpu", runtime="native")
    assert backend.weights.format == "torchscript"
    assert "'input' axis 'y' is fixed to 32 in the graph, the descriptor allows 8 + k*8" in backend.notes[0]
    assert "relaxing its fixed dims failed" in backend.notes[0]
    with pytest.raises(BackendError, match=r"weights 'onnx' \(dense.onnx\) cannot be used: the graph contra"):
        load_backend(description, weights_format="onnx")



def _stand_in(written, folder, weights_format="onnx"):
    """A copy of ``written``'s file in ``folder``, its sha256 in the descriptor's weights entry (the cache
    key), and the description of it allowing multiples of 16."""
    import hashlib
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    copy = Path(shutil.copy(written.path, folder / written.path.name))
    entry = WeightsEntry(weights_format, copy.name, hashlib.sha256(copy.read_bytes()).hexdigest())
    return copy, zoo_models.multiple_of(dataclasses.replace(written, path=copy), 16,
                                        weights={weights_format: entry})


def test_a_fitted_graph_comes_from_the_cache_before_the_original_is_opened(fixed_unet, dense, tmp_path):
    """A warm start opens one engine session, not two: what an earlier load made of a fixed-dims graph
    (relaxed, or refused) is read before the original graph is opened. Seen with the original file itself:
    replaced by bytes no engine opens (loaded unverified, as verify=False does), the relaxed graph still
    runs and the refusal is still the same refusal."""
    copy, description = _stand_in(fixed_unet, tmp_path / "unet")
    first = load_backend(description, runtime="onnxruntime")
    copy.write_bytes(b"not an ONNX graph any more")
    again = load_backend(description, runtime="onnxruntime", verify=False)
    assert any("(relaxed graph from the cache)" in n for n in again.notes)
    image = zoo_models.image(96)
    np.testing.assert_array_equal(again.predict([image])[0], first.predict([image])[0])
    copy, description = _stand_in(dense, tmp_path / "dense")
    with pytest.raises(BackendError) as refused:
        load_backend(description, runtime="onnxruntime")
    copy.write_bytes(b"not an ONNX graph any more")
    with pytest.raises(BackendError) as cached:
        load_backend(description, runtime="onnxruntime", verify=False)
    assert "relaxing its fixed dims failed" in str(refused.value)
    assert str(cached.value) == f"{refused.value} (from the graph cache)"  # word for word


# --- engines ---


def test_runtime_names(zoo_dir, fixed_unet):
    written = zoo_models.write_scripted_zoo_unet(zoo_dir / "names.pt")
    description = models.describe(written)
    image = zoo_models.image(40)
    assert load_backend(description, runtime="torch").runtime == "torch"
    with pytest.raises(BackendError, match=r"cannot run with runtime='tensorflow'"):
        load_backend(
            zoo_models.fixed_description(fixed_unet, 128), weights_format="onnx", runtime="tensorflow"
        )
    openvino_backend = load_backend(description, device="cpu", runtime="openvino")
    assert openvino_backend.runtime == "openvino"
    _close(openvino_backend.predict([image])[0], written, image, atol=1e-4)
    _close(openvino_backend.predict([zoo_models.image(48)])[0], written, zoo_models.image(48), atol=1e-4)


def test_automatic_choice_is_measured_then_remembered(fixed_unet):
    description = zoo_models.fixed_description(fixed_unet, 128)
    first = load_backend(description)
    assert first.runtime in ("onnxruntime", "openvino")
    assert set(first.figures) == {"onnxruntime_probe_s", "openvino_probe_s"}
    faster = min(first.figures, key=first.figures.__getitem__).removesuffix("_probe_s")
    assert (
        first.runtime == faster
        or first.figures["openvino_probe_s"] > 0.95 * first.figures["onnxruntime_probe_s"]
    )
    second = load_backend(description)
    assert second.runtime == first.runtime
    assert any("choice from the cache" in n for n in second.notes)


def test_without_openvino_onnxruntime_runs(fixed_unet, monkeypatch):
    # OpenVINO is installed here: only the "is it installed" query is replaced to act as if it were not.
    monkeypatch.setattr(runtime_choice, "openvino_installed", lambda: False)
    assert load_backend(zoo_models.fixed_description(fixed_unet, 128)).runtime == "onnxruntime"
    with pytest.raises(BackendError, match=r"runtime='openvino': openvino is not installed"):
        load_backend(zoo_models.fixed_description(fixed_unet, 128), runtime="openvino")


# --- the graph cache, across real processes ---

CHILD = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    sys.path[:0] = [{tests!r}]
    from pathlib import Path
    from support import models
    from deepij.inference.backends import load_backend
    written = models.WrittenModel(Path({path!r}), "torchscript", ("input",), ("bcyx",), (1,), ("output",),
                                  ("bcyx",), (1,), forward=None, min_size=8, step=8)
    backend = load_backend(models.describe(written), device={device!r}, runtime="onnxruntime")
    backend.predict([__import__("numpy").zeros((1, 1, 40, 40), "float32")])
    print(backend.runtime)
    print("imported:", sorted(m for m in ("onnx", "openvino", "tensorflow", "torch") if m in sys.modules))
    print("\\n".join(backend.notes))
    """
)


def _child(path, cache, device="cpu"):
    code = CHILD.format(tests=str(ROOT / "tests"), path=str(path), device=device)
    env = dict(os.environ, DEEPIJ_CACHE_DIR=str(cache))
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _finish(process):
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    return out


def test_conversion_cached_across_processes_and_corrupt_entries_rebuilt(zoo_dir, tmp_path):
    written = zoo_models.write_scripted_zoo_unet(zoo_dir / "cached.pt")
    cache = tmp_path / "cache"
    cold = _finish(_child(written.path, cache))
    assert cold.startswith("onnxruntime") and "from the graph cache" not in cold
    assert "'torch'" in cold.splitlines()[1]  # loaded, exported, verified against torch
    [entry] = list((cache / graph_cache.FOLDER).glob(f"*{graph_cache.SUFFIX}"))
    # A warm start runs the converted graph from the cache: torch (~2 s to import) and onnx are never
    # imported, nor OpenVINO (onnxruntime is forced here), nor TensorFlow.
    warm = _finish(_child(written.path, cache))
    assert "frozen TorchScript graph; from the graph cache" in warm
    assert warm.splitlines()[1] == "imported: []"
    if not devices.cuda_driver_present():  # "is there a GPU?" is answered without torch too
        assert _finish(_child(written.path, cache, device=None)).splitlines()[1] == "imported: []"
    entry.write_bytes(entry.read_bytes()[:-100])  # truncated, as by a full disk
    rebuilt = _finish(_child(written.path, cache))
    assert "from the graph cache" not in rebuilt  # the corrupt entry was removed and rebuilt
    assert "from the graph cache" in _finish(_child(written.path, cache))


def test_concurrent_writers_leave_one_complete_entry(zoo_dir, tmp_path):
    written = zoo_models.write_scripted_zoo_unet(zoo_dir / "racing.pt")
    cache = tmp_path / "cache"
    racing = [_child(written.path, cache), _child(written.path, cache)]
    for process in racing:
        assert _finish(process).startswith("onnxruntime")
    folder = cache / graph_cache.FOLDER
    assert len(list(folder.glob(f"*{graph_cache.SUFFIX}"))) == 1
    assert not list(folder.glob("*.part"))


def test_cache_detects_corruption(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPIJ_CACHE_DIR", str(tmp_path))
    key = graph_cache.cache_key("weights", "op")
    graph_cache.store(key, b"\x08\x07onnx-bytes", {"route": "r"})
    assert graph_cache.load(key).model == b"\x08\x07onnx-bytes"
    path = graph_cache.entry_path(key)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    assert graph_cache.load(key) is None and not path.exists()
    path.write_bytes(b"not json\n...")
    assert graph_cache.load(key) is None and not path.exists()


def test_graph_cropping_to_its_export_size_is_not_relaxed(zoo_dir):
    """The scripted zoo U-Net crops its output to the input size; exported at 128 that crop is a constant:
    relaxed, it would give 128-pixel outputs for larger inputs. Found on the larger-input check."""
    path = zoo_dir / "zoo_fixed128.onnx"
    zoo_models._export_fixed(zoo_models.zoo_unet_module(), path, 128)
    written = zoo_models._info(path, "onnx", zoo_models.zoo_unet_module(), 3)
    backend = load_backend(zoo_models.fixed_description(written, 128), runtime="onnxruntime")
    [note] = [n for n in backend.notes if "needs it" in n]
    assert "came out with 128 elements (the descriptor declares 192" in note
    image = zoo_models.image(128)
    _close(backend.predict([image])[0], written, image)


def _channel_mean_script(path):
    """A scripted net that takes any number of channels (it averages them first), as a zoo TorchScript file
    reused under descriptors with other channel counts would."""
    import torch

    class ChannelMean(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x.mean(dim=1, keepdim=True))

    torch.manual_seed(3)
    module = ChannelMean().eval()
    with models._quiet_torch_warnings():
        torch.jit.script(module).save(str(path))
    return module


def test_one_weights_file_under_two_descriptors_gets_two_graphs(zoo_dir, tmp_path, monkeypatch):
    """The graph cache was keyed by the weights' sha256 alone: the file under a 3-channel descriptor, then
    under a 1-channel one, ran the first conversion (3 channels baked in) for the second and failed."""
    import torch

    monkeypatch.setenv("DEEPIJ_CACHE_DIR", str(tmp_path / "cache"))
    path = zoo_dir / "channel_mean.pt"
    module = _channel_mean_script(path)
    for channels in (3, 1):
        written = models.WrittenModel(path, "torchscript", ("input",), ("bcyx",), (channels,), ("output",),
                                      ("bcyx",), (1,), forward=None, halo=1)
        backend = load_backend(models.describe(written), device="cpu", runtime="onnxruntime")
        assert backend.runtime == "onnxruntime"
        image = np.random.default_rng(channels).standard_normal((1, channels, 24, 24)).astype(np.float32)
        with torch.inference_mode():
            expected = module(torch.from_numpy(image)).numpy()
        np.testing.assert_allclose(backend.predict([image])[0], expected, rtol=1e-4, atol=1e-5)
    entries = list((tmp_path / "cache" / graph_cache.FOLDER).glob(f"*{graph_cache.SUFFIX}"))
    assert len([e for e in entries if b'"route"' in e.read_bytes().partition(b"\n")[0]]) == 2
