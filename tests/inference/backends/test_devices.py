"""Device requests: parsing and the choice against how many GPUs a framework sees."""

from __future__ import annotations

import pytest

from deepij.errors import BackendError
from deepij.inference.backends import onnx_runtime, torch_runner
from deepij.inference.backends.devices import DeviceRequest, choose_device, is_gpu, parse_device


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (None, None),
        ("auto", None),
        ("cpu", DeviceRequest("cpu")),
        ("CUDA", DeviceRequest("cuda")),
        ("gpu:2", DeviceRequest("cuda", 2)),
        (" cuda:1 ", DeviceRequest("cuda", 1)),
    ],
)
def test_parse(text, parsed):
    assert parse_device(text) == parsed


@pytest.mark.parametrize("text", ["tpu", "cuda:", "cuda:x", "cpu:1", "mps"])
def test_parse_refuses(text):
    with pytest.raises(BackendError, match=r"device="):
        parse_device(text)


def test_automatic_choice():
    assert choose_device(None, 0, "torch") == "cpu"
    assert choose_device(None, 3, "torch") == "cuda:0"
    assert choose_device("cpu", 3, "torch") == "cpu"
    assert choose_device("cuda", 1, "torch") == "cuda:0"
    assert choose_device("gpu:1", 2, "torch") == "cuda:1"
    assert is_gpu("cuda:0") and not is_gpu("cpu") and not is_gpu(None)


def test_unavailable_gpu_errors():
    with pytest.raises(BackendError, match=r"device='cuda' asks for a GPU but onnxruntime sees none"):
        choose_device("cuda", 0, "onnxruntime")
    with pytest.raises(BackendError, match=r"sees 2 GPU\(s\) \(expected one of 'cuda:0', 'cuda:1'\)"):
        choose_device("cuda:2", 2, "torch")


def test_automatic_choice_follows_what_the_machine_has():
    """The real queries, on whatever this machine has: counts as torch and onnxruntime report them."""
    import onnxruntime
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert torch_runner.gpu_count() == gpus
    assert torch_runner.torch_device(None) == ("cuda:0" if gpus else "cpu")
    has_cuda_provider = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    assert (onnx_runtime.gpu_count() > 0) == has_cuda_provider


def test_torch_would_pick_the_gpu(monkeypatch):
    # No GPU here: only the "how many GPUs" query is replaced; nothing is moved to a device.
    monkeypatch.setattr(torch_runner, "gpu_count", lambda: 2)
    assert torch_runner.torch_device(None) == "cuda:0"
    assert torch_runner.torch_device("cuda:1") == "cuda:1"
    assert torch_runner.torch_device("cpu") == "cpu"


def test_no_nvidia_driver_means_torch_sees_no_gpu():
    """What lets a start-up skip importing torch to count GPUs: without a driver, torch counts none."""
    import torch

    from deepij.inference.backends import devices

    if not devices.cuda_driver_present():
        assert torch.cuda.device_count() == 0 and torch_runner.gpu_count() == 0
    else:
        assert torch_runner.gpu_count() == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
