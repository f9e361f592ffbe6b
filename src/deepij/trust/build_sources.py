"""The trained network a bundle is built from, written as the bundle's weights file.

:func:`write_weights` takes what a developer has at the end of training and writes it into the bundle
folder in a format deepImageJ 2.x and the zoo both run:

- a torch ``nn.Module`` (eager): scripted with ``torch.jit.script`` (traced on the example input when it
  cannot be scripted) into ``weights_torchscript.pt``;
- a TorchScript module, or a TorchScript file: ``weights_torchscript.pt``;
- an ONNX file: ``weights.onnx`` (the dims its graph fixes are read from it: they are the only sizes the
  bundle may then allow);
- a Keras model, or a Keras ``.h5`` file: ``keras_model.h5`` (``keras_hdf5``);
- a TensorFlow SavedModel folder (``saved_model.pb`` + ``variables/``): zipped into
  ``tensorflow_saved_model_bundle.zip``, the file deepImageJ 2.x unzips.

A ``pytorch_state_dict`` needs the network's Python class as well: load the weights into the module and pass
the module.

Examples
--------
>>> import tempfile, torch
>>> written = write_weights(torch.nn.Conv2d(1, 1, 3, padding=1), Path(tempfile.mkdtemp()))
>>> written.format, written.file
('torchscript', 'weights_torchscript.pt')
"""

from __future__ import annotations

import contextlib
import re
import shutil
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepij.errors import ArgumentError, ArgumentTypeError

TORCHSCRIPT_FILE = "weights_torchscript.pt"
ONNX_FILE = "weights.onnx"
KERAS_FILE = "keras_model.h5"
SAVED_MODEL_ZIP = "tensorflow_saved_model_bundle.zip"
TENSOR_ID = re.compile(r"^[a-z0-9_-]{1,32}$")
"""What a 0.5 tensor id may be (lower case, digits, ``_`` and ``-``, at most 32 characters)."""


@dataclass(frozen=True)
class WrittenWeights:
    """The weights file written into the bundle, and what the graph itself says about its tensors.

    Attributes
    ----------
    format : str
        Canonical weights format (``torchscript``, ``onnx``, ``keras_hdf5``,
        ``tensorflow_saved_model_bundle``).
    file : str
        The file's name inside the bundle folder.
    input_names, output_names : tuple of str
        Names the graph gives its tensors where it names them (ONNX), usable as 0.5 tensor ids; empty when
        the graph has none (TorchScript) or they are not valid ids.
    input_dims : tuple of int or None
        Per dim of the (first) input, the size the graph fixes (None where it is free); empty when unknown.
    framework_version : str or None
        ``pytorch_version`` / ``tensorflow_version`` to record; for ONNX the opset.
    module : object
        The TorchScript module (torch weights), kept to export an ONNX copy.
    """

    format: str
    file: str
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    input_dims: tuple[int | None, ...] = ()
    framework_version: str | None = None
    opset: int | None = None
    module: Any = None
    notes: tuple[str, ...] = field(default=())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch.jit and Keras' HDF5 saving warn about their deprecation on every call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def write_weights(model: Any, folder: Path, *, example: np.ndarray | None = None) -> WrittenWeights:
    """Write ``model`` into ``folder`` as a weights file (see the module notes for what it takes).

    Parameters
    ----------
    model : nn.Module, ScriptModule, keras.Model, str or Path
        The trained network, or its file / SavedModel folder.
    folder : Path
        The bundle folder being built.
    example : ndarray, optional
        An input of the network's own layout, to trace a module that cannot be scripted.

    Raises
    ------
    ArgumentTypeError
        ``model`` is none of these.
    ArgumentError
        A file that is none of these formats (named, with what it was tried as).
    """
    if isinstance(model, (str, Path)):
        return _from_path(Path(model), folder)
    kind = _object_kind(model)
    if kind == "torch":
        return _from_torch_module(model, folder, example)
    if kind == "keras":
        return _from_keras(model, folder)
    raise ArgumentTypeError(
        f"model: cannot build a bundle from a {type(model).__name__} (expected a torch nn.Module or "
        "TorchScript module, a Keras model, or the path of a TorchScript, ONNX or Keras .h5 file or of a "
        "TensorFlow SavedModel folder)"
    )


def _object_kind(model: Any) -> str | None:
    """``"torch"`` / ``"keras"`` from the object's classes, without importing a framework it cannot be."""
    names = {f"{c.__module__}.{c.__name__}" for c in type(model).__mro__}
    if "torch.nn.modules.module.Module" in names:
        return "torch"
    if any(n.startswith(("keras.", "tf_keras.")) and n.endswith(".Model") for n in names):
        return "keras"
    return None


def _from_path(path: Path, folder: Path) -> WrittenWeights:
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ArgumentError(
                f"model: the folder {path} holds no saved_model.pb (expected a TensorFlow SavedModel folder)"
            )
        return _from_saved_model(path, folder)
    if not path.is_file():
        raise ArgumentError(f"model: {path} does not exist (expected a weights file or a SavedModel folder)")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _from_onnx(path, folder)
    if suffix in (".h5", ".hdf5"):
        shutil.copyfile(path, folder / KERAS_FILE)
        return WrittenWeights("keras_hdf5", KERAS_FILE, framework_version=_tensorflow_version())
    return _from_torchscript_file(path, folder)


def _torch_version() -> str:
    import torch

    return ".".join(torch.__version__.split("+")[0].split(".")[:2])


def _tensorflow_version() -> str | None:
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return ".".join(tf.__version__.split(".")[:2])


def _from_torchscript_file(path: Path, folder: Path) -> WrittenWeights:
    import torch

    try:
        with _quiet():
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise ArgumentError(
            f"model: {path} is not a TorchScript file torch {torch.__version__} can load ({error}); "
            "expected TorchScript (.pt), ONNX (.onnx), Keras (.h5) or a SavedModel folder. A state dict "
            "needs its network class: load it into the nn.Module and pass the module"
        ) from error
    shutil.copyfile(path, folder / TORCHSCRIPT_FILE)
    return WrittenWeights("torchscript", TORCHSCRIPT_FILE, framework_version=_torch_version(), module=module)


def _from_torch_module(module: Any, folder: Path, example: np.ndarray | None) -> WrittenWeights:
    import torch

    module = module.eval()
    notes: tuple[str, ...] = ()
    if isinstance(module, torch.jit.ScriptModule):
        scripted = module
    else:
        try:
            with _quiet():
                scripted = torch.jit.script(module)
        except Exception as error:
            if example is None:
                raise ArgumentError(
                    f"model: torch.jit.script cannot compile this {type(module).__name__} ({error}); "
                    "give an example input so that it can be traced instead"
                ) from error
            with _quiet(), torch.inference_mode():
                scripted = torch.jit.trace(module, torch.from_numpy(np.ascontiguousarray(example)))
            notes = (
                f"the module could not be scripted ({str(error).splitlines()[0]}); it was traced on the "
                "example input: branches on the input's values or sizes are frozen as the example took them",
            )
    with _quiet():
        scripted.save(str(folder / TORCHSCRIPT_FILE))
    return WrittenWeights(
        "torchscript", TORCHSCRIPT_FILE, framework_version=_torch_version(), module=scripted, notes=notes
    )


def _from_onnx(path: Path, folder: Path) -> WrittenWeights:
    import onnx

    try:
        graph_model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise ArgumentError(f"model: {path} is not an ONNX file onnx can read ({error})") from error
    graph = graph_model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    dims: tuple[int | None, ...] = ()
    if inputs:
        shape = inputs[0].type.tensor_type.shape
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in shape.dim)
    opset = max((o.version for o in graph_model.opset_import if o.domain in ("", "ai.onnx")), default=None)
    shutil.copyfile(path, folder / ONNX_FILE)
    return WrittenWeights(
        "onnx",
        ONNX_FILE,
        input_names=_ids([i.name for i in inputs]),
        output_names=_ids([o.name for o in graph.output]),
        input_dims=dims,
        opset=opset,
    )


def _ids(names: list[str]) -> tuple[str, ...]:
    """The graph's names when every one is a valid, distinct 0.5 tensor id, else none of them."""
    if names and all(TENSOR_ID.match(n) for n in names) and len(set(names)) == len(names):
        return tuple(names)
    return ()


def _from_keras(model: Any, folder: Path) -> WrittenWeights:
    with _quiet():
        model.save(str(folder / KERAS_FILE))
    return WrittenWeights("keras_hdf5", KERAS_FILE, framework_version=_tensorflow_version())


def _from_saved_model(path: Path, folder: Path) -> WrittenWeights:
    """The SavedModel's files at the root of ``tensorflow_saved_model_bundle.zip``, as deepImageJ expects."""
    target = folder / SAVED_MODEL_ZIP
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(path).as_posix())
    return WrittenWeights(
        "tensorflow_saved_model_bundle", SAVED_MODEL_ZIP, framework_version=_tensorflow_version()
    )


__all__ = ["WrittenWeights", "write_weights"]
