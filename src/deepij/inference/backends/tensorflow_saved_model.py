"""TensorFlow SavedModel weights (``tensorflow_saved_model_bundle``): TF2 models and TF1-era models alike,
loaded with TF 2's ``tf.saved_model.load`` and run through the chosen signature's concrete function (a graph,
not eager ops).

Which meta graph and signature: the bundle's ``config.deepimagej`` tag and signature keys (deepImageJ 2.x
bundles name them, sometimes wrongly), else ``serve`` / ``serving_default``, else the only one there is.
The ``saved_model.pb`` is read first to see what it holds, so a wrong key gets an error listing the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepij.bundle.description import ModelDescription, WeightsEntry
from deepij.errors import BackendError
from deepij.inference.backends.base import OpenRequest
from deepij.inference.backends.devices import choose_device
from deepij.inference.backends.graph import GraphBackend, GraphTensor
from deepij.inference.backends.shapes import refuse_contradicting_graph

DEFAULT_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
_INTERNAL_SIGNATURES = ("__saved_model_init_op", "__saved_model_train_op")


def gpu_count() -> int:
    """GPUs TensorFlow sees (the query tests replace)."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


@dataclass(frozen=True)
class SignatureInfo:
    """What ``saved_model.pb`` says about one signature: its inputs and outputs, keys first."""

    inputs: tuple[GraphTensor, ...]
    outputs: tuple[GraphTensor, ...]


@dataclass(frozen=True)
class MetaGraphInfo:
    tags: tuple[str, ...]
    signatures: dict[str, SignatureInfo]


def _graph_tensors(tensor_map: object) -> tuple[GraphTensor, ...]:
    import tensorflow as tf

    tensors = []
    for key in sorted(tensor_map):  # type: ignore[call-overload]
        info = tensor_map[key]  # type: ignore[index]
        shape = info.tensor_shape
        dims = None if shape.unknown_rank else tuple(d.size if d.size >= 0 else None for d in shape.dim)
        names = (key, info.name[:-2] if info.name.endswith(":0") else info.name)
        dtype = np.dtype(tf.dtypes.as_dtype(info.dtype).as_numpy_dtype)
        tensors.append(GraphTensor(names, None if dims is None else len(dims), dtype, dims))
    return tuple(tensors)


def read_meta_graphs(folder: Path) -> list[MetaGraphInfo]:
    """The meta graphs in ``folder/saved_model.pb``: tags and signatures (without TF's internal ones)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = folder / "saved_model.pb"
    if not pb.is_file():
        raise BackendError(f"{folder}: no saved_model.pb (expected an unpacked TensorFlow SavedModel folder)")
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(pb.read_bytes())
    except Exception as error:
        raise BackendError(f"{pb}: not a SavedModel protobuf: {error}") from error
    return [
        MetaGraphInfo(
            tuple(meta.meta_info_def.tags),
            {
                key: SignatureInfo(_graph_tensors(sig.inputs), _graph_tensors(sig.outputs))
                for key, sig in meta.signature_def.items()
                if key not in _INTERNAL_SIGNATURES
            },
        )
        for meta in saved.meta_graphs
    ]


def choose_meta_graph(metas: list[MetaGraphInfo], tag: str | None, where: Path) -> MetaGraphInfo:
    """The meta graph tagged ``tag``, else ``serve``, else the only one."""
    for wanted in (tag, DEFAULT_TAG):
        for meta in metas:
            if wanted is not None and wanted in meta.tags:
                return meta
    if len(metas) == 1:
        return metas[0]
    raise BackendError(
        f"{where}: no meta graph tagged {tag or DEFAULT_TAG!r} "
        f"(found tags {[list(m.tags) for m in metas]}; expected the bundle's "
        "config.deepimagej tensorflow_model_tag to name one of them)"
    )


def choose_signature(meta: MetaGraphInfo, signature: str | None, where: Path) -> str:
    """The signature ``signature``, else ``serving_default``, else the only one."""
    for wanted in (signature, DEFAULT_SIGNATURE):
        if wanted is not None and wanted in meta.signatures:
            return wanted
    if len(meta.signatures) == 1:
        return next(iter(meta.signatures))
    raise BackendError(
        f"{where}: meta graph {list(meta.tags)} has no signature {signature or DEFAULT_SIGNATURE!r} "
        f"(found {sorted(meta.signatures)}; expected the bundle's config.deepimagej "
        "tensorflow_siganture_def to name one of them)"
    )


class TensorFlowBackend(GraphBackend):
    """A SavedModel signature, loaded once, called as a concrete function on the chosen device."""

    runtime = "tensorflow"

    def __init__(
        self,
        description: ModelDescription,
        weights: WeightsEntry,
        folder: Path,
        device: str | None = None,
    ) -> None:
        import tensorflow as tf

        resolved = choose_device(device, gpu_count(), "tensorflow")
        super().__init__(description, weights, resolved)
        metas = read_meta_graphs(folder)
        config = description.deepimagej
        meta = choose_meta_graph(metas, config.tensorflow_tag, folder)
        self.tags = meta.tags
        self.signature = choose_signature(meta, config.tensorflow_signature, folder)
        for asked, used, kind in (
            (config.tensorflow_tag, self.tags, "tag"),
            (config.tensorflow_signature, (self.signature,), "signature"),
        ):
            if asked is not None and asked not in used:
                self.notes.append(
                    f"{kind} {asked!r} named by the bundle is not in {folder}; used {used[0]!r}"
                )
        self._tf_device = "/CPU:0" if resolved == "cpu" else f"/GPU:{resolved.split(':')[1]}"
        try:
            with tf.device(self._tf_device):
                self._loaded = tf.saved_model.load(str(folder), tags=list(self.tags))
            self._function = self._loaded.signatures[self.signature]
        except Exception as error:
            raise BackendError(f"{folder}: TensorFlow {tf.__version__} cannot load it: {error}") from error
        info = meta.signatures[self.signature]
        self._bind(info.inputs, info.outputs)
        refuse_contradicting_graph(self)
        self._input_keys = [g.names[0] for g in info.inputs]
        self._output_keys = [g.names[0] for g in info.outputs]

    def _run(self, graph_inputs: list[np.ndarray]) -> list[np.ndarray]:
        import tensorflow as tf

        try:
            with tf.device(self._tf_device):
                result = self._function(**dict(zip(self._input_keys, graph_inputs, strict=True)))
        except Exception as error:
            raise BackendError(
                f"{self.label}: TensorFlow failed on inputs of shape "
                f"{[tuple(a.shape) for a in graph_inputs]}: {error}"
            ) from error
        return [result[key].numpy() for key in self._output_keys]

    def close(self) -> None:
        self._function = None
        self._loaded = None
        super().close()


def open_backend(request: OpenRequest) -> TensorFlowBackend:
    """Load the SavedModel folder (``threads`` is ignored: TF fixes its pools at start-up)."""
    return TensorFlowBackend(request.description, request.weights, request.path, request.device)
