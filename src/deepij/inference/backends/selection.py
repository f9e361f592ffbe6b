"""Choosing which of a bundle's weights to run, and on which engine.

Priority (the first entry that loads wins; entries that cannot load are skipped with a note):

- on the CPU: ``onnx`` > ``torchscript`` > ``tensorflow_saved_model_bundle`` > ``pytorch_state_dict`` >
  ``keras_hdf5``. onnxruntime is the fastest engine measured here (about 1.8x torch on the benchmark U-Net,
  2 cores) and loads in milliseconds; TorchScript is self-contained and reliable; TensorFlow takes ~5 s to
  import; a state dict needs the bundle's Python code (``allow_code=True``); Keras HDF5 is the least portable.
- on a GPU (``device="cuda..."``, or no ``device`` while torch sees a GPU): ``torchscript`` >
  ``pytorch_state_dict`` > ``onnx`` > ``tensorflow_saved_model_bundle`` > ``keras_hdf5``: torch's CUDA path
  is the best supported one, onnxruntime needs its separate GPU build.

What runs the network (``runtime=``, the same word as ``backend.runtime``): on the CPU, torch weights are
converted to ONNX and run with onnxruntime when onnxruntime is installed and the conversion reproduces torch's
outputs (``runtime="auto"``, the default); an ONNX graph (the bundle's, converted or relaxed) then runs with
onnxruntime or OpenVINO, whichever a short timed probe at load finds faster (:mod:`.runtime_choice`).
``runtime="native"`` (or the format's own framework's name: ``"torch"``, ``"tensorflow"``, ``"keras"``,
``"onnxruntime"`` for ONNX weights) keeps each format's own framework; ``"onnxruntime"`` / ``"openvino"``
insist on that engine (torch weights then must convert).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path

from deepij.bundle.description import ModelDescription, WeightsEntry
from deepij.errors import BackendError, BundleError, OutputShapeError
from deepij.inference.backends.base import Backend, OpenRequest
from deepij.inference.backends.devices import is_gpu, parse_device

log = logging.getLogger("deepij.inference.backends")

CPU_PRIORITY = ("onnx", "torchscript", "tensorflow_saved_model_bundle", "pytorch_state_dict", "keras_hdf5")
GPU_PRIORITY = ("torchscript", "pytorch_state_dict", "onnx", "tensorflow_saved_model_bundle", "keras_hdf5")
RUNTIMES = ("auto", "native", "onnxruntime", "openvino", "torch", "tensorflow", "keras")
"""Values of ``runtime=``: a strategy (``auto``, ``native``) or the name of what runs the network."""

NATIVE_RUNTIMES = {
    "torchscript": "torch",
    "pytorch_state_dict": "torch",
    "onnx": "onnxruntime",
    "tensorflow_saved_model_bundle": "tensorflow",
    "keras_hdf5": "keras",
}
"""Each weights format's own framework: ``backend.runtime`` with ``runtime="native"``."""
_ONNX_ENGINES = ("onnxruntime", "openvino")

ADAPTERS = {
    "torchscript": "deepij.inference.backends.torchscript",
    "pytorch_state_dict": "deepij.inference.backends.torch_state_dict",
    "onnx": "deepij.inference.backends.onnx_weights",
    "tensorflow_saved_model_bundle": "deepij.inference.backends.tensorflow_saved_model",
    "keras_hdf5": "deepij.inference.backends.keras_hdf5",
}
"""Canonical weights format -> the module whose ``open_backend`` loads it (imported only when used)."""

_TORCH_FORMATS = ("torchscript", "pytorch_state_dict")

_FORMAT_ALIASES = {
    "pytorch_script": "torchscript",
    "pytorch": "torchscript",  # deepImageJ's `format=Pytorch`
    "tensorflow": "tensorflow_saved_model_bundle",  # deepImageJ's `format=Tensorflow`
    "tensorflow_saved_model": "tensorflow_saved_model_bundle",
    "keras": "keras_hdf5",
    "state_dict": "pytorch_state_dict",
}

_PIP_NAMES = {
    "torch": "torch",
    "onnxruntime": "onnxruntime",
    "tensorflow": "tensorflow-cpu",
    "keras": "tensorflow-cpu",
    "openvino": "openvino",
}


def canonical_format(name: str) -> str:
    """A weights format name as the descriptions spell it (``Pytorch`` -> ``torchscript``).

    Examples
    --------
    >>> canonical_format("pytorch_script"), canonical_format("Tensorflow"), canonical_format("onnx")
    ('torchscript', 'tensorflow_saved_model_bundle', 'onnx')
    """
    key = name.strip().lower()
    return _FORMAT_ALIASES.get(key, key)


def _torch_sees_gpu() -> bool:
    try:
        from deepij.inference.backends.torch_runner import gpu_count
    except ImportError:
        return False
    try:
        return gpu_count() > 0
    except ImportError:
        return False


def candidate_formats(
    description: ModelDescription, weights_format: str | None, device: str | None
) -> list[str]:
    """The bundle's formats in the order they will be tried; only ``weights_format`` when given."""
    offered = list(description.weights)
    if weights_format is not None:
        wanted = canonical_format(weights_format)
        if wanted not in offered:
            raise BackendError(
                f"{description.descriptor}: weights_format={weights_format!r} is not in this bundle "
                f"(found {offered}; expected one of them)"
            )
        return [wanted]
    if not offered:
        raise BackendError(f"{description.descriptor}: the bundle lists no weights (field 'weights')")
    parse_device(device)  # a malformed device= is the caller's error, not a reason to skip every entry
    gpu = is_gpu(device) or (
        device is None and any(f in _TORCH_FORMATS for f in offered) and _torch_sees_gpu()
    )
    priority = GPU_PRIORITY if gpu else CPU_PRIORITY
    ranked = [f for f in priority if f in offered]
    return ranked + [f for f in offered if f not in ranked]  # unknown formats last: they get a note


def weights_path(description: ModelDescription, weights_format: str, verify: bool = True) -> Path:
    """The local file (or unpacked SavedModel folder) of one weights entry, via the bundle package."""
    from deepij.bundle import resolve_weights

    return Path(resolve_weights(description, weights_format, verify=verify))


def _missing_framework(error: ImportError) -> str:
    name = (error.name or str(error)).split(".")[0]
    return f"{name} is not installed (pip install {_PIP_NAMES.get(name, name)})"


def _strategy(fmt: str, runtime: str) -> str:
    """``runtime`` for this format: ``auto``, ``native`` or an ONNX engine's name (refused when the format
    cannot run on it)."""
    if runtime in ("auto", "native"):
        return runtime
    if runtime == NATIVE_RUNTIMES.get(fmt) and runtime not in _ONNX_ENGINES:
        return "native"
    if runtime in _ONNX_ENGINES and fmt in (*_TORCH_FORMATS, "onnx"):
        return runtime
    raise BackendError(
        f"weights {fmt!r} cannot run with runtime={runtime!r} (expected 'auto', 'native' or "
        + ", ".join(repr(r) for r in sorted({NATIVE_RUNTIMES.get(fmt, "?"), *_ONNX_ENGINES}))
        + ")"
        if fmt in (*_TORCH_FORMATS, "onnx")
        else f"weights {fmt!r} cannot run with runtime={runtime!r} (expected 'auto', 'native' or "
        f"{NATIVE_RUNTIMES.get(fmt, '?')!r})"
    )


def _open(
    description: ModelDescription,
    entry: WeightsEntry,
    *,
    device: str | None,
    allow_code: bool,
    runtime: str,
    threads: int | None,
    verify: bool,
) -> Backend:
    """Load one entry (raising BundleError / BackendError / ImportError when it cannot be used)."""
    if entry.format not in ADAPTERS:
        raise BackendError(
            f"no runtime for weights format {entry.format!r} in deepij (expected one of {list(ADAPTERS)})"
        )
    strategy = _strategy(entry.format, runtime)
    path = weights_path(description, entry.format, verify)
    backend = _converted_before(description, entry, path, device, allow_code, strategy, threads)
    if backend is None:
        adapter = importlib.import_module(ADAPTERS[entry.format])
        request = OpenRequest(description, entry, path, device, allow_code, threads, verify)
        backend = adapter.open_backend(request)
        if strategy == "native":
            return backend
    try:
        if backend.runtime == "torch":
            if backend.device != "cpu":
                if strategy in _ONNX_ENGINES:
                    backend.notes.append(
                        f"runtime={runtime!r} applies on the CPU; torch runs on {backend.device}"
                    )
                return backend
            backend = _faster_engine(backend, strategy, threads, path)
        if backend.runtime == "onnxruntime" and backend.device == "cpu":
            from deepij.inference.backends.runtime_choice import choose_cpu_runtime

            backend = choose_cpu_runtime(backend, "onnxruntime" if strategy == "onnxruntime" else strategy)
        elif strategy == "openvino":
            raise BackendError(
                f"runtime='openvino' runs on the CPU only (this backend is on {backend.device})"
            )
    except BaseException:
        backend.close()
        raise
    return backend


def _converted_before(
    description: ModelDescription,
    entry: WeightsEntry,
    path: Path,
    device: str | None,
    allow_code: bool,
    strategy: str,
    threads: int | None,
) -> Backend | None:
    """Torch weights converted by an earlier process, straight from the graph cache (torch is not even
    imported), when they are to run converted on the CPU; None otherwise."""
    if entry.format not in _TORCH_FORMATS or strategy == "native":
        return None
    if entry.format == "pytorch_state_dict" and not allow_code:
        return None  # the adapter refuses it with the reason; a cached graph does not lift that
    request = parse_device(device)
    on_cpu = request.kind == "cpu" if request is not None else not _torch_sees_gpu()
    if not on_cpu or importlib.util.find_spec("onnxruntime") is None:
        return None
    from deepij.inference.backends.onnx_conversion import cached_conversion

    return cached_conversion(description, entry, path, threads)


def _faster_engine(backend: Backend, strategy: str, threads: int | None, source: Path) -> Backend:
    """The torch backend switched to onnxruntime when that works (see the module notes)."""
    from deepij.inference.backends.onnx_conversion import convert_to_onnxruntime

    try:
        if importlib.util.find_spec("onnxruntime") is None:
            raise ImportError(name="onnxruntime")
        converted = convert_to_onnxruntime(backend, threads, source)  # type: ignore[arg-type]
    except (BackendError, ImportError) as error:
        if isinstance(error, OutputShapeError):
            raise
        reason = _missing_framework(error) if isinstance(error, ImportError) else str(error)
        if strategy in _ONNX_ENGINES:
            raise BackendError(f"runtime={strategy!r}: {reason}") from error
        backend.notes.append(f"kept torch: {reason}")
        log.info("%s", reason)
        return backend
    backend.close()
    return converted


def load_backend(
    description: ModelDescription,
    weights_format: str | None = None,
    device: str | None = None,
    allow_code: bool = False,
    *,
    runtime: str = "auto",
    threads: int | None = None,
    verify: bool = True,
    precision: str = "float32",
) -> Backend:
    """Load the bundle's network, ready to :meth:`~deepij.inference.backends.base.Backend.predict` many times.

    Parameters
    ----------
    description : ModelDescription
        The bundle.
    weights_format : str, optional
        The weights to use (``"onnx"``, ``"torchscript"``/``"pytorch_script"``/``"Pytorch"``,
        ``"tensorflow_saved_model_bundle"``/``"Tensorflow"``, ``"pytorch_state_dict"``, ``"keras_hdf5"``).
        None: the first that loads, in the order of :data:`CPU_PRIORITY` (:data:`GPU_PRIORITY` on a GPU).
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``; None uses a GPU when the framework sees one.
    allow_code : bool
        Allow the bundle's Python code to run (``pytorch_state_dict`` architectures, Keras Lambda layers).
    runtime : {"auto", "native", "onnxruntime", "openvino", "torch", "tensorflow", "keras"}
        What runs the network (see the module notes): ``auto`` converts torch weights to ONNX on the CPU when
        that reproduces torch and takes the faster of onnxruntime and OpenVINO; ``native`` (or the format's
        framework) keeps the format's own; an engine's name insists on it.
    threads : int, optional
        Intra-op threads of the engine (torch's setting is process-wide); None keeps the framework default.
    verify : bool
        Check weights files against their sha256 (passed to :func:`deepij.bundle.resolve_weights`).
    precision : {"float32", "float16", "bfloat16", "int8"}
        ``"float16"``: half precision on a GPU runtime (torch on CUDA); ``"int8"``: the ONNX graph
        quantized by onnxruntime (calibrated on the bundle's test input), on the CPU; ``"bfloat16"``:
        OpenVINO's bf16 inference, on CPUs with bfloat16 arithmetic. Each is kept when a probe at load
        reproduces the float32 outputs within the bundle's reproduction tolerance; otherwise float32 runs
        and the notes (and a warning) say why (:mod:`deepij.inference.backends.precision`,
        :mod:`deepij.inference.backends.cpu_precision`).

    Returns
    -------
    Backend
        Its ``notes`` list the entries skipped and why (also logged as warnings) and any engine switch.

    Raises
    ------
    BackendError
        When the requested format is not in the bundle or fails, when ``device`` cannot be had, or when no
        entry loads (the message lists each entry and why).

    Examples
    --------
    >>> import numpy as np
    >>> from deepij.bundle import open_bundle
    >>> description = open_bundle("examples/nuclei_bundle")
    >>> backend = load_backend(description, "onnx", "cpu", runtime="onnxruntime")
    >>> backend.weights.format, backend.runtime, backend.device
    ('onnx', 'onnxruntime', 'cpu')
    >>> [probability] = backend.predict([np.load("examples/nuclei_bundle/test_input.npy")])
    >>> probability.shape, probability.dtype
    ((1, 1, 256, 256), dtype('float32'))
    """
    from deepij.inference.backends.precision import check_precision
    from deepij.inference.backends.precision_choice import apply_precision

    if runtime not in RUNTIMES:
        raise BackendError(f"runtime={runtime!r} is not known (expected one of {list(RUNTIMES)})")
    check_precision(precision)
    formats = candidate_formats(description, weights_format, device)
    skipped: list[str] = []
    for fmt in formats:
        entry = description.weights[fmt]
        try:
            backend = _open(
                description,
                entry,
                device=device,
                allow_code=allow_code,
                runtime=runtime,
                threads=threads,
                verify=verify,
            )
        except (BundleError, BackendError, ImportError) as error:
            reason = _missing_framework(error) if isinstance(error, ImportError) else str(error)
            if weights_format is not None:
                raise BackendError(f"weights {fmt!r} ({entry.source}) cannot be used: {reason}") from error
            skipped.append(f"skipped weights {fmt!r} ({entry.source}): {reason}")
            continue
        for note in skipped:
            log.warning("%s: %s", description.name, note)
        backend.notes[:0] = skipped
        try:
            return apply_precision(backend, precision, runtime)
        except BaseException:
            backend.close()
            raise
    raise BackendError(
        f"{description.descriptor}: none of the weights could be loaded:\n  " + "\n  ".join(skipped)
    )
