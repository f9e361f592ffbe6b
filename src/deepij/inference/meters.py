"""Measuring memory: what a device has free, and the peak one forward pass uses.

On the CPU the peak is the process's resident memory sampled in a thread (the network's framework releases
the GIL while it computes), checked against the kernel's high-water mark (``ru_maxrss``), which catches
peaks shorter than the sampling interval. On a GPU it is the framework's own peak counters (torch, TF), or,
for engines without them, the drop of the GPU's free memory.
"""

from __future__ import annotations

import gc
import resource
import threading
import time
from collections.abc import Callable

from deepij.errors import TilingError
from deepij.inference.backends.base import Backend


def is_gpu_device(device: str | None) -> bool:
    return bool(device) and str(device).lower().startswith(("cuda", "gpu"))


def _device_index(device: str) -> int:
    _, _, index = str(device).partition(":")
    return int(index) if index.isdigit() else 0


MEMORY_ENV = "DEEPIJ_MEMORY_AVAILABLE"
"""Environment variable that sets the bytes a CPU run plans with (``"8g"``, ``"16GB"``): for machines whose
free RAM is shared with other jobs the kernel does not know about, and for tests and benchmarks whose plans
must not depend on what the machine has free at the moment."""


def available_memory(device: str | None = "cpu") -> int:
    """Bytes free for a run on ``device``: available RAM (psutil, within the process's cgroup memory limit
    when it has one, as under SLURM or in a container), or the GPU's free memory.

    ``$DEEPIJ_MEMORY_AVAILABLE`` (:data:`MEMORY_ENV`) replaces the RAM reading.

    Examples
    --------
    >>> available_memory("cpu") > 0
    True
    """
    if not is_gpu_device(device):
        import os

        assumed = os.environ.get(MEMORY_ENV, "").strip()
        if assumed:
            from deepij.sizes import parse_memory_size

            return parse_memory_size(assumed, argument=f"${MEMORY_ENV}")
        import psutil

        ram = int(psutil.virtual_memory().available)
        room = _cgroup_room()
        return ram if room is None else min(ram, room)
    gpu = _gpu_free_memory(_device_index(str(device)))
    if gpu is None:
        raise TilingError(
            f"device: cannot read the free memory of {device!r} (no torch with CUDA, no nvidia-smi)"
        )
    return gpu


_CGROUP_FILES = {
    "0": ("", "memory.max", "memory.current"),
    "memory": ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes"),
}
"""Per cgroup version (v2's ``0::`` line, v1's ``memory`` controller): mount folder, limit and usage files."""


def _cgroup_room(root: str = "/sys/fs/cgroup", membership: str = "/proc/self/cgroup") -> int | None:
    """Bytes this process's cgroup may still take (limit less usage), or None when it has no limit or the
    files cannot be read. psutil reports the machine's RAM, not a job's share (SLURM, containers)."""
    from pathlib import Path

    try:
        lines = Path(membership).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, relative = [*line.split(":", 2), "", ""][:3]
        version = "0" if hierarchy == "0" and not controllers else controllers
        if version not in _CGROUP_FILES:
            continue
        mount, limit_name, usage_name = _CGROUP_FILES[version]
        base = Path(root) / mount
        # inside a container the cgroup namespace puts the process's own group at the mount itself
        for folder in (base / relative.lstrip("/"), base):
            try:
                limit = (folder / limit_name).read_text().strip()
                usage = int((folder / usage_name).read_text().strip())
            except (OSError, ValueError):
                continue
            if not limit.isdigit() or int(limit) >= 2**60:
                return None  # "max" (v2) or v1's page-rounded 2**63: no limit
            return max(0, int(limit) - usage)
    return None


def resident_bytes() -> int:
    """This process's resident memory now (after handing freed memory back to the OS)."""
    import psutil

    gc.collect()
    _return_free_memory()
    return int(psutil.Process().memory_info().rss)


def _gpu_free_memory(index: int) -> int | None:
    try:
        import torch

        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info(index)
            return int(free)
    except ImportError:
        pass
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    answer = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", str(index)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    try:
        return int(float(answer.stdout.strip().splitlines()[0]) * 2**20)
    except (ValueError, IndexError):
        return None


def _return_free_memory() -> None:
    """Hand memory freed earlier back to the OS (glibc ``malloc_trim``), so that a pass reusing it shows up
    in the resident size instead of hiding in the allocator."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _ResidentPeak:
    """Peak resident memory of this process while the block runs, above what it was before."""

    def __init__(self, interval: float = 0.0005) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> _ResidentPeak:
        gc.collect()
        _return_free_memory()
        self.baseline = self._process.memory_info().rss
        self._high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)
        # A new lifetime high-water mark during the pass is a peak the sampler may have missed.
        high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if high_water > self._high_water:
            self.peak = max(self.peak, high_water)

    @property
    def used(self) -> int:
        return max(0, self.peak - self.baseline)


def _torch_gpu_meter(index: int) -> Callable[[Callable[[], object]], int]:
    import torch

    def measure(run: Callable[[], object]) -> int:
        torch.cuda.synchronize(index)
        before = torch.cuda.memory_allocated(index)
        torch.cuda.reset_peak_memory_stats(index)
        run()
        torch.cuda.synchronize(index)
        return max(0, torch.cuda.max_memory_allocated(index) - before)

    return measure


def _tensorflow_gpu_meter(index: int) -> Callable[[Callable[[], object]], int]:
    import tensorflow as tf

    name = f"GPU:{index}"

    def measure(run: Callable[[], object]) -> int:
        before = tf.config.experimental.get_memory_info(name)["current"]
        tf.config.experimental.reset_memory_stats(name)
        run()
        return max(0, tf.config.experimental.get_memory_info(name)["peak"] - before)

    return measure


def _free_memory_meter(index: int) -> Callable[[Callable[[], object]], int]:
    """For engines without peak counters (onnxruntime on a GPU): the drop of free GPU memory afterwards."""

    def measure(run: Callable[[], object]) -> int:
        before = _gpu_free_memory(index) or 0
        run()
        after = _gpu_free_memory(index) or before
        return max(0, before - after)

    return measure


def forward_meter(backend: Backend) -> Callable[[Callable[[], object]], int]:
    """A function that runs a callable and returns the peak memory it used on the backend's device."""
    if not is_gpu_device(backend.device):

        def measure(run: Callable[[], object]) -> int:
            with _ResidentPeak() as meter:
                run()
            return meter.used

        return measure
    index = _device_index(backend.device)
    if backend.runtime == "torch":
        return _torch_gpu_meter(index)
    if backend.runtime in ("tensorflow", "keras"):
        return _tensorflow_gpu_meter(index)
    return _free_memory_meter(index)
