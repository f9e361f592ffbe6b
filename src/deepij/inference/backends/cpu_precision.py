"""Lower precision on the CPU: ``precision="int8"`` and ``precision="bfloat16"``, checked at load.

Both apply to ONNX graphs run on the CPU by onnxruntime or OpenVINO: the bundle's own ONNX weights, or torch
weights converted to ONNX (``runtime="auto"``, the default). A model that runs with torch
(``runtime="native"``), TensorFlow or Keras, or on a GPU, keeps float32 with a note.

- ``int8``: the graph statically quantized by onnxruntime (:mod:`.quantization`), calibrated on the
  bundle's test input after its spec pre-processing (:mod:`.calibration_inputs`), kept in the graph cache.
  With ``runtime="auto"`` the faster of onnxruntime and OpenVINO on the int8 graph is measured as for
  float32 (:mod:`.runtime_choice`; the two engines' int8 rounding differs, so they are not required to
  agree with each other: each result is checked against float32 instead); ``runtime="onnxruntime"`` /
  ``"openvino"`` (``"native"`` for ONNX weights: onnxruntime) keep that engine. Integer arithmetic pays
  most on CPUs with VNNI (``avx512_vnni``, ``avx_vnni``) or AMX; on AVX2 alone the u8s8 kernels still beat
  float32 (benchmarks/bench_precision.py prints the figures).
- ``bfloat16``: OpenVINO's ``INFERENCE_PRECISION_HINT: bf16``. It runs faster only with bfloat16
  arithmetic in the CPU (``avx512_bf16`` or AMX); elsewhere OpenVINO silently computes float32, so it is
  refused on such CPUs with a note naming the missing CPU feature. onnxruntime has no bfloat16 CPU kernels
  (convolution, matrix products), so ``runtime="onnxruntime"`` refuses it too.

Either is kept only when its outputs reproduce the float32 ones within the bundle's reproduction tolerance
(:func:`~deepij.inference.backends.precision.reproduction_tolerance`) on the calibration input and on a
held-out one (the same image mirrored; random data when the bundle ships none, said in the note);
otherwise float32 runs, and a note and a :class:`~deepij.errors.DeepijWarning` say why.
"""

from __future__ import annotations

from typing import Any

from deepij.errors import BackendError
from deepij.inference.backends.base import Backend
from deepij.inference.backends.calibration_inputs import CalibrationInputs, calibration_inputs
from deepij.inference.backends.devices import cpu_flags
from deepij.inference.backends.precision import compare, refused, reproduction_tolerance

GRAPH_ENGINES = ("onnxruntime", "openvino")
BF16_FEATURES = ("avx512_bf16", "amx_bf16")
"""CPU features (``/proc/cpuinfo`` flags) that give OpenVINO bfloat16 arithmetic."""


def _not_a_cpu_graph(backend: Backend) -> str | None:
    """Why ``backend`` cannot take a CPU precision, or None when it runs an ONNX graph on the CPU."""
    if backend.device != "cpu":
        return f"it applies on the CPU and this model runs on {backend.device}"
    if backend.runtime in GRAPH_ENGINES and getattr(backend, "model_source", None) is not None:
        return None
    hint = ""
    if backend.runtime == "torch":
        hint = " (runtime='auto' converts torch weights to ONNX where that reproduces torch)"
    return (
        "it applies to ONNX graphs run by onnxruntime or OpenVINO and this model runs with "
        f"{backend.runtime}{hint}"
    )


def _kept_if_it_reproduces(
    backend: Backend, candidate: Backend, precision: str, calibration: CalibrationInputs, made: str
) -> Backend:
    """``candidate`` when it reproduces ``backend`` on the calibration and held-out inputs (``backend`` is
    closed then), else ``backend`` with the refusal (``candidate`` closed)."""
    tolerance = reproduction_tolerance(backend.description, backend.weights.format)
    probes = [calibration.inputs, calibration.held_out]
    try:
        expected = [backend.predict(probe) for probe in probes]
        ok, figures = compare(expected, candidate, probes, tolerance)
        if ok and precision == "bfloat16":
            compiled = candidate.compiled_precision()  # type: ignore[attr-defined]
            if compiled != "bf16":
                ok, figures = False, f"OpenVINO compiled it in {compiled}, not bf16"
    except BackendError as error:  # the float32 network refuses the calibration input
        candidate.close()
        why = str(error).splitlines()[0]
        return refused(backend, precision, f"it cannot be checked on {calibration.source}: {why}")
    except BaseException:
        candidate.close()
        raise
    if not ok:
        candidate.close()
        return refused(
            backend,
            precision,
            f"its outputs leave the bundle's reproduction tolerance ({figures}; checked on "
            f"{calibration.source} and {calibration.held_out_source})",
        )
    speed = _speed(backend, candidate) if precision == "int8" else ""
    candidate.notes.append(
        f"precision {precision} ({made}): checked against float32 on {calibration.source} and "
        f"{calibration.held_out_source} ({figures}); run with {candidate.runtime}{speed}"
    )
    backend.close()
    return candidate


def _speed(backend: Backend, candidate: Backend) -> str:
    """The int8 and float32 probe passes the engine choices timed at load, in words, when both were timed
    (``runtime="auto"``); an int8 graph is not faster everywhere (small networks, CPUs without VNNI)."""
    float32 = [s for k, s in backend.figures.items() if k.endswith("_probe_s")]
    int8 = [s for k, s in candidate.figures.items() if k.endswith("_probe_s")]
    if not float32 or not int8:
        return ""
    verdict = " (int8 does not pay for this model here)" if min(int8) >= min(float32) else ""
    return f"; probe pass {min(int8) * 1e3:.0f} ms in int8, {min(float32) * 1e3:.0f} ms in float32{verdict}"


def int8_if_it_reproduces(backend: Backend, runtime: str = "auto") -> Backend:
    """``backend``'s graph in int8 when that reproduces float32 (module notes), else ``backend`` with a
    note saying why not.

    Parameters
    ----------
    backend : Backend
        The float32 model as loaded (closed when int8 takes over).
    runtime : str
        The ``runtime=`` asked for: ``"auto"`` lets a timed probe pick the int8 engine, ``"onnxruntime"``,
        ``"native"`` (ONNX weights) or ``"openvino"`` keep that engine.
    """
    reason = _not_a_cpu_graph(backend)
    if reason is not None:
        return refused(backend, "int8", reason)
    calibration = calibration_inputs(backend.description)
    try:
        from deepij.inference.backends.quantization import quantized_graph

        graph, cached = quantized_graph(backend, calibration)
        candidate = _int8_engine(backend, graph, runtime)
    except ImportError as error:
        missing = (error.name or "onnx").split(".")[0]
        return refused(backend, "int8", f"{missing} is not installed (pip install {missing})")
    except BackendError as error:
        text = str(error).strip().splitlines()
        return refused(backend, "int8", text[0] if text else type(error).__name__)
    made = "quantized graph from the graph cache" if cached else f"quantized on {calibration.source}"
    return _kept_if_it_reproduces(backend, candidate, "int8", calibration, made)


def _int8_engine(backend: Backend, graph: bytes, runtime: str) -> Backend:
    from deepij.inference.backends.onnx_runtime import OnnxRuntimeBackend
    from deepij.inference.backends.runtime_choice import choose_cpu_runtime

    threads = getattr(backend, "threads", None)
    int8 = OnnxRuntimeBackend(backend.description, backend.weights, graph, "cpu", threads)
    int8.notes[:0] = backend.notes
    engine = runtime if runtime in ("auto", "openvino") else "onnxruntime"
    try:
        return choose_cpu_runtime(int8, engine, agreement=False, subject=" for the int8 graph")
    except BaseException:
        int8.close()
        raise


def bfloat16_if_it_reproduces(backend: Backend, runtime: str = "auto") -> Backend:
    """``backend``'s graph run by OpenVINO in bfloat16 when this CPU has bfloat16 arithmetic and that
    reproduces float32 (module notes), else ``backend`` with a note saying why not."""
    reason = _not_a_cpu_graph(backend)
    if reason is None and (
        runtime == "onnxruntime" or (runtime == "native" and backend.runtime == "onnxruntime")
    ):
        reason = f"onnxruntime has no bfloat16 CPU kernels and runtime={runtime!r} asks for it (OpenVINO has)"
    if reason is None:
        reason = bfloat16_missing()
    if reason is not None:
        return refused(backend, "bfloat16", reason)
    from deepij.inference.backends.openvino_runtime import OpenVinoBackend

    model_source = backend.model_source  # type: ignore[attr-defined]
    threads = getattr(backend, "threads", None)
    try:
        candidate = OpenVinoBackend(backend.description, backend.weights, model_source, threads, "bf16")
    except BackendError as error:
        return refused(backend, "bfloat16", str(error).splitlines()[0])
    candidate.notes[:0] = backend.notes
    calibration = calibration_inputs(backend.description)
    return _kept_if_it_reproduces(backend, candidate, "bfloat16", calibration, "OpenVINO bf16 inference")


def openvino_cpu_capabilities() -> list[str]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU (``FP32``, ``INT8``, ``BF16``, ...)."""
    import openvino

    return [str(c) for c in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def bfloat16_missing() -> str | None:
    """None when OpenVINO computes bfloat16 on this CPU; else why not, naming what is missing."""
    from deepij.inference.backends.runtime_choice import openvino_installed

    if not openvino_installed():
        return "it runs with OpenVINO, which is not installed (pip install openvino)"
    capabilities = openvino_cpu_capabilities()
    if "BF16" in capabilities:
        return None
    present = [f for f in BF16_FEATURES if f in cpu_flags()]
    offered = ", ".join(capabilities)
    if present:
        return (
            f"OpenVINO does not offer bfloat16 on this CPU (it has {', '.join(present)}; OpenVINO offers "
            f"{offered})"
        )
    return (
        f"this CPU has no bfloat16 arithmetic (neither {' nor '.join(BF16_FEATURES)}; OpenVINO offers "
        f"{offered}), where OpenVINO would silently compute float32"
    )


def describe_cpu() -> dict[str, Any]:
    """What decides int8 and bfloat16 speed here: the CPU's VNNI, AMX and bfloat16 flags and OpenVINO's
    capabilities (for benchmarks and reports)."""
    flags = cpu_flags()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
    found: dict[str, Any] = {flag: flag in flags for flag in wanted}
    try:
        found["openvino_capabilities"] = openvino_cpu_capabilities()
    except ImportError:
        found["openvino_capabilities"] = None
    return found
