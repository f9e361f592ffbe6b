"""Which device a backend runs on: the user's ``device=`` checked against what the framework can see.

Each adapter asks its framework how many GPUs it sees (its own ``gpu_count()``) and passes that count here,
so the rules are the same for every framework: no request means "a GPU when there is one", ``"cpu"`` always
works, ``"cuda"`` / ``"cuda:N"`` (or ``"gpu"`` / ``"gpu:N"``) must exist or the error says what there is.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from deepij.errors import BackendError

_DEVICE_PATTERN = re.compile(r"^(cpu|cuda|gpu)(?::(\d+))?$")


@dataclass(frozen=True)
class DeviceRequest:
    """A parsed ``device=`` value: ``kind`` ``"cpu"`` or ``"cuda"``, ``index`` None when not given."""

    kind: str
    index: int | None = None


def parse_device(device: str | None) -> DeviceRequest | None:
    """Parse a ``device=`` argument; None (or ``"auto"``) means "let the framework choose".

    Examples
    --------
    >>> parse_device("cuda:1")
    DeviceRequest(kind='cuda', index=1)
    >>> parse_device("GPU")
    DeviceRequest(kind='cuda', index=None)
    >>> parse_device(None) is None
    True
    """
    if device is None or str(device).strip().lower() == "auto":
        return None
    match = _DEVICE_PATTERN.match(str(device).strip().lower())
    if match is None:
        raise BackendError(
            f"device={device!r} is not a device name: expected 'cpu', 'cuda', 'cuda:N' (or 'gpu', 'gpu:N') "
            "or None for automatic choice"
        )
    kind = "cpu" if match.group(1) == "cpu" else "cuda"
    if kind == "cpu" and match.group(2) is not None:
        raise BackendError(f"device={device!r}: the CPU takes no index (expected 'cpu')")
    return DeviceRequest(kind, None if match.group(2) is None else int(match.group(2)))


def choose_device(device: str | None, gpu_count: int, framework: str) -> str:
    """The device to run on, as ``"cpu"`` or ``"cuda:N"``.

    Parameters
    ----------
    device : str or None
        The user's request (see :func:`parse_device`).
    gpu_count : int
        How many GPUs ``framework`` sees.
    framework : str
        Named in the error when the request cannot be met (``"torch"``, ``"onnxruntime"``, ...).

    Examples
    --------
    >>> choose_device(None, 0, "torch"), choose_device(None, 2, "torch"), choose_device("cuda:1", 2, "torch")
    ('cpu', 'cuda:0', 'cuda:1')
    """
    request = parse_device(device)
    if request is None:
        return "cuda:0" if gpu_count > 0 else "cpu"
    if request.kind == "cpu":
        return "cpu"
    index = request.index or 0
    if gpu_count == 0:
        raise BackendError(
            f"device={device!r} asks for a GPU but {framework} sees none (found 0 CUDA devices); "
            "use device='cpu', or install a GPU build of the framework"
        )
    if index >= gpu_count:
        raise BackendError(
            f"device={device!r}: {framework} sees {gpu_count} GPU(s) (expected one of "
            + ", ".join(f"'cuda:{i}'" for i in range(gpu_count))
            + ")"
        )
    return f"cuda:{index}"


def is_gpu(device: str | None) -> bool:
    """True when ``device`` asks for a GPU (``cuda``, ``cuda:N``, ``gpu``)."""
    request = parse_device(device)
    return request is not None and request.kind == "cuda"


def cuda_driver_present() -> bool:
    """Whether this machine may have a CUDA GPU, answered without importing a framework.

    On Linux a CUDA device needs NVIDIA's kernel driver (``/proc/driver/nvidia``, ``/dev/nvidia0``...) or
    WSL's GPU bridge (``/dev/dxg``); with none of them no framework sees a GPU, so the ~2 s it takes to
    import torch just to count none is saved. Elsewhere the answer is True (ask the framework).

    Examples
    --------
    >>> isinstance(cuda_driver_present(), bool)
    True
    """
    if not sys.platform.startswith("linux"):
        return True
    if Path("/proc/driver/nvidia/version").exists() or Path("/dev/dxg").exists():
        return True
    return any(Path("/dev").glob("nvidia[0-9]*"))


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo``: ``avx2``, ``avx512_vnni``, ``amx_bf16``, ...); empty
    where the system does not list them."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()
