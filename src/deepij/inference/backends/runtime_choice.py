"""onnxruntime or OpenVINO for an ONNX graph on the CPU: measured per model at load, remembered on disk.

Neither engine wins everywhere: OpenVINO ran the zoo's nuclei U-Net 1.2x faster than onnxruntime at 512^2
(identical outputs), onnxruntime wins on small graphs where OpenVINO's per-call overhead dominates. So with
``runtime="auto"`` both run the model on a probe tile (the smallest valid size from :data:`PROBE_SIDE`
pixels per spatial axis, one warm-up pass each, then the best of :data:`ROUNDS` interleaved passes), and
OpenVINO is taken only when it is at least :data:`MARGIN` faster and its outputs agree with onnxruntime's.
The choice and both timings go into the backend's notes and figures; the choice is kept in the graph cache
(keyed by the graph's sha256, the engines' versions and the thread count), so a later process does not
measure again. ``runtime="onnxruntime"`` / ``"openvino"`` force one engine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
from pathlib import Path
from typing import Any

from deepij.errors import BackendError
from deepij.inference.backends import graph_cache
from deepij.inference.backends.base import Backend

PROBE_SIDE = 256
ROUNDS = 3
MARGIN = 0.05
CHOICE = "cpu-runtime-choice-v1"


def openvino_installed() -> bool:
    """Whether OpenVINO can be imported (the query tests replace to act as if it were not)."""
    return importlib.util.find_spec("openvino") is not None


def _graph_digest(source: Path | bytes) -> str:
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    return graph_cache.file_sha256(Path(source))


def _choice_key(backend: Any, agreement: bool = True) -> str | None:
    import deepij

    try:
        digest = _graph_digest(backend.model_source)
    except OSError:
        return None
    return graph_cache.cache_key(
        digest,
        CHOICE if agreement else f"{CHOICE} without agreement",
        f"deepij {deepij.__version__}",
        *graph_cache.versions("onnxruntime", "openvino"),
        f"threads {backend.threads or os.cpu_count()}",
        graph_cache.tensors_text(backend.description),
    )


def _seconds(engine: Any, probe: list[Any]) -> float:
    started = time.perf_counter()
    engine.predict(probe)
    return time.perf_counter() - started


def _openvino_backend(backend: Any) -> Any:
    from deepij.inference.backends.openvino_runtime import OpenVinoBackend

    converted = OpenVinoBackend(backend.description, backend.weights, backend.model_source, backend.threads)
    converted.notes[:0] = backend.notes
    return converted


def measure(backend: Any, candidate: Any) -> tuple[float, float, bool]:
    """Best seconds per probe pass of ``backend`` and ``candidate``, and whether their outputs agree."""
    from deepij.inference.backends.probes import outputs_agree, probe_inputs

    probe = probe_inputs(backend.description, side=PROBE_SIDE, seed=5)
    agree = outputs_agree(backend.predict(probe), candidate.predict(probe))  # also the warm-up passes
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(ROUNDS):
        for which, engine in enumerate((backend, candidate)):
            times[which].append(_seconds(engine, probe))
    return min(times[0]), min(times[1]), agree


def choose_cpu_runtime(backend: Any, runtime: str, *, agreement: bool = True, subject: str = "") -> Backend:
    """``backend`` (onnxruntime on the CPU) or an OpenVINO backend on the same graph, per ``runtime``.

    Parameters
    ----------
    backend : OnnxRuntimeBackend
        The loaded graph; closed when OpenVINO takes over.
    runtime : {"auto", "onnxruntime", "openvino"}
        ``auto`` measures (see the module notes); the others force that engine.
    agreement : bool
        Take OpenVINO only when its outputs agree with onnxruntime's to float rounding. False for an int8
        graph, where each engine rounds its own way and the caller checks the result against float32.
    subject : str
        What the notes call the graph, after the engine's name (``" for the int8 graph"``).
    """
    if runtime == "onnxruntime" or backend.device != "cpu":
        return backend
    if not openvino_installed():
        if runtime == "openvino":
            raise BackendError("runtime='openvino': openvino is not installed (pip install openvino)")
        return backend
    if runtime == "openvino":
        chosen = _openvino_backend(backend)
        chosen.notes.append(f"run with OpenVINO{subject} (runtime='openvino')")
        backend.close()
        return chosen
    key = _choice_key(backend, agreement)
    cached = graph_cache.load(key) if key else None
    if cached is not None:
        backend.figures.update(cached.meta.get("figures", {}))
        if cached.meta.get("runtime") != "openvino":
            backend.notes.append(
                f"{cached.meta.get('note', 'onnxruntime measured faster')} (choice from the cache)"
            )
            return backend
        chosen = _openvino_backend(backend)
        chosen.figures.update(backend.figures)
        chosen.notes.append(f"{cached.meta.get('note', 'OpenVINO measured faster')} (choice from the cache)")
        backend.close()
        return chosen
    try:
        candidate = _openvino_backend(backend)
        ort_s, ov_s, agree = measure(backend, candidate)
    except BackendError as error:
        backend.notes.append(
            f"kept onnxruntime: OpenVINO cannot run this graph ({str(error).splitlines()[0]})"
        )
        return backend
    figures = {"onnxruntime_probe_s": ort_s, "openvino_probe_s": ov_s}
    agree = agree or not agreement
    faster = agree and ov_s < (1 - MARGIN) * ort_s
    winner = "openvino" if faster else "onnxruntime"
    note = (
        f"runtime {winner}{subject}: {PROBE_SIDE}-pixel probe pass {ov_s * 1e3:.0f} ms with OpenVINO, "
        f"{ort_s * 1e3:.0f} ms with onnxruntime" + ("" if agree else " (OpenVINO's outputs differ: not used)")
    )
    if key:
        graph_cache.store(key, b"", {"runtime": winner, "figures": figures, "note": note})
    chosen = candidate if faster else backend
    (candidate if not faster else backend).close()
    chosen.figures.update(figures)
    chosen.notes.append(note)
    return chosen
