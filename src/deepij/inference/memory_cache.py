"""Memory estimates kept on disk: what a network needs per pass is measured once per machine's engine and
read back by later processes.

Measuring (:func:`deepij.inference.memory.estimate_memory`) costs a warm-up and two or more probe passes,
each with a garbage collection to read the resident memory: on the first call of a process it cost more
than the 512x512 pass it planned (1.1 s of 3.3 s, benchmarks/bench_first_call.py). Entries live in the graph
cache's folder (:mod:`deepij.inference.backends.graph_cache`: atomic, corruption-safe), keyed by the weights'
sha256, the descriptor's tensors, the sizes the measurement depends on (channels), and what runs the
network: engine class, runtime and its version, device, threads and memory mode (onnxruntime's arena or
exact allocations), precision. Only CPU estimates are kept: a GPU's memory depends on the card and its
driver, and a GPU run's first pass is not where the time goes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from deepij.inference.backends.base import Backend
from deepij.inference.memory import MemoryEstimate
from deepij.inference.meters import is_gpu_device

MEMORY_OPERATION = "memory-estimate-v1"
_ENGINES = {
    "onnxruntime": "onnxruntime", "openvino": "openvino", "torch": "torch", "tensorflow": "tensorflow",
    "keras": "tensorflow",
}
"""``backend.runtime`` -> the package whose version the estimate depends on."""


def read_memory_estimate(backend: Backend, sizes: tuple) -> MemoryEstimate | None:
    """The estimate an earlier measurement of this network on this engine kept; None when there is none
    (or the backend has no weights file, or runs on a GPU).

    ``sizes``: what the measurement depends on besides the tile (the channels,
    :func:`deepij.pipeline.planning.fixed_sizes`).
    """
    from deepij.inference.backends import graph_cache

    key = _estimate_key(backend, sizes)
    cached = graph_cache.load(key) if key else None
    return None if cached is None else _estimate_from(cached.meta)


def keep_memory_estimate(backend: Backend, sizes: tuple, estimate: MemoryEstimate) -> None:
    """Keep ``estimate`` (measured by :func:`deepij.inference.memory.estimate_memory`) for later runs; a
    cache that cannot be written costs only the time."""
    from deepij.inference.backends import graph_cache

    key = _estimate_key(backend, sizes)
    if key:
        graph_cache.store(key, b"", _estimate_meta(estimate))


def engine_state(backend: Backend) -> str:
    """What the memory of a pass depends on in the engine: its class, runtime and version, device, threads,
    memory mode and precision.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> engine_state(SimpleNamespace(runtime="onnxruntime", device="cpu", threads=2, exact_memory=False))
    "('SimpleNamespace', 'onnxruntime', 'cpu', 2, False, None, None)"
    """
    threads = getattr(backend, "threads", None) or _process_threads(backend.runtime)
    return repr((
        type(backend).__name__, backend.runtime, backend.device, threads,
        getattr(backend, "exact_memory", None), getattr(backend, "half", None),
        getattr(backend, "precision", None),
    ))


def _process_threads(runtime: str) -> int | None:
    """The engine's threads where they are the process's (torch's setting), else the cores."""
    torch = sys.modules.get("torch") if runtime == "torch" else None
    return int(torch.get_num_threads()) if torch is not None else os.cpu_count()


def _estimate_key(backend: Backend, sizes: tuple) -> str | None:
    import deepij
    from deepij.inference.backends import graph_cache

    if is_gpu_device(backend.device):
        return None
    digest = graph_cache.weights_digest(backend.description, backend.weights)
    if digest is None:
        return None
    engine = _ENGINES.get(backend.runtime)
    return graph_cache.cache_key(
        digest,
        MEMORY_OPERATION,
        f"deepij {deepij.__version__}",
        *(graph_cache.versions(engine) if engine else ()),
        engine_state(backend),
        graph_cache.tensors_text(backend.description),
        repr(sizes),
    )


def _estimate_meta(estimate: MemoryEstimate) -> dict[str, Any]:
    return {
        "estimate": {
            "fixed": estimate.fixed,
            "per_pixel": estimate.per_pixel,
            "output_per_pixel": estimate.output_per_pixel,
            "probes": [list(p) for p in estimate.probes],
            "device": estimate.device,
        }
    }


def _estimate_from(meta: Mapping[str, Any]) -> MemoryEstimate | None:
    """The estimate an entry holds; None when it does not hold one (then it is measured again)."""
    data = meta.get("estimate")
    try:
        return MemoryEstimate(
            float(data["fixed"]),  # type: ignore[index]
            float(data["per_pixel"]),  # type: ignore[index]
            float(data["output_per_pixel"]),  # type: ignore[index]
            tuple((int(p), round(float(m))) for p, m in data["probes"]),  # type: ignore[index]
            str(data["device"]),  # type: ignore[index]
        )
    except (KeyError, TypeError, ValueError):
        return None
