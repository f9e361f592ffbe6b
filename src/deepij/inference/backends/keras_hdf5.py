"""Keras HDF5 weights (``keras_hdf5``): loaded with the installed Keras (3.x reads the HDF5 format of
``model.save("x.h5")``), run through a traced ``tf.function`` rather than eager layer calls.

Models with ``Lambda`` layers carry Python code: Keras refuses them in safe mode, which is lifted only with
``allow_code=True``. HDF5 files from Keras 2.x / TF1 times load when their layers still exist in Keras 3.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from deepij.bundle.description import ModelDescription, WeightsEntry
from deepij.errors import BackendError
from deepij.inference.backends.base import OpenRequest
from deepij.inference.backends.devices import choose_device
from deepij.inference.backends.graph import GraphBackend, GraphTensor
from deepij.inference.backends.shapes import refuse_contradicting_graph
from deepij.inference.backends.tensorflow_saved_model import gpu_count


def _graph_tensors(tensors: list[object]) -> list[GraphTensor]:
    out = []
    for t in tensors:
        name = str(getattr(t, "name", "")).split(":")[0]
        shape = getattr(t, "shape", None)
        dtype = getattr(t, "dtype", None)
        dims = None if shape is None else tuple(d if isinstance(d, int) else None for d in shape)
        out.append(
            GraphTensor(
                (name,),
                None if dims is None else len(dims),
                None if dtype is None else np.dtype(str(getattr(dtype, "name", dtype))),
                dims,
            )
        )
    return out


class KerasBackend(GraphBackend):
    """A Keras model from an HDF5 file."""

    runtime = "keras"

    def __init__(
        self,
        description: ModelDescription,
        weights: WeightsEntry,
        path: Path,
        device: str | None = None,
        allow_code: bool = False,
    ) -> None:
        import keras
        import tensorflow as tf

        resolved = choose_device(device, gpu_count(), "tensorflow")
        super().__init__(description, weights, resolved)
        self._tf_device = "/CPU:0" if resolved == "cpu" else f"/GPU:{resolved.split(':')[1]}"
        try:
            with warnings.catch_warnings(), tf.device(self._tf_device):
                warnings.simplefilter("ignore")
                self.model = keras.models.load_model(str(path), compile=False, safe_mode=not allow_code)
        except Exception as error:
            hint = "" if allow_code else " (a model with Lambda layers needs allow_code=True)"
            raise BackendError(f"{path}: Keras {keras.__version__} cannot load it: {error}{hint}") from error
        inputs = _graph_tensors(list(self.model.inputs))
        outputs = _graph_tensors(list(self.model.outputs))
        output_names = list(getattr(self.model, "output_names", []) or [])
        if len(output_names) == len(outputs):  # layer names, which descriptors use, beat tensor names
            outputs = [
                GraphTensor((n, *g.names), g.rank, g.dtype)
                for n, g in zip(output_names, outputs, strict=True)
            ]
        self._bind(inputs, outputs)
        refuse_contradicting_graph(self)
        self._call = tf.function(
            lambda *xs: self.model(list(xs) if len(xs) > 1 else xs[0], training=False), reduce_retracing=True
        )

    def _run(self, graph_inputs: list[np.ndarray]) -> list[np.ndarray]:
        import tensorflow as tf

        try:
            with tf.device(self._tf_device):
                result = self._call(*graph_inputs)
        except Exception as error:
            raise BackendError(
                f"{self.label}: Keras failed on inputs of shape "
                f"{[tuple(a.shape) for a in graph_inputs]}: {error}"
            ) from error
        results = result if isinstance(result, (list, tuple)) else [result]
        return [np.asarray(r) for r in results]

    def close(self) -> None:
        self.model = None
        self._call = None
        super().close()


def open_backend(request: OpenRequest) -> KerasBackend:
    """Load the HDF5 file ``request.path`` with Keras."""
    return KerasBackend(
        request.description, request.weights, request.path, request.device, request.allow_code
    )
