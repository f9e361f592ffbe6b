"""Small REAL models for tests: TorchScript, ONNX, pytorch_state_dict, TF2 and TF1 SavedModels, Keras h5.

Every writer returns a :class:`WrittenModel`: where the weights are, the tensor names and axes, the
receptive radius (``halo``) and ``forward``, the framework's own forward pass (the eager torch module, a TF1
session, the Keras model) to compare a backend's outputs against. :func:`describe` turns one or several
written models of the same network into a :class:`deepij.bundle.description.ModelDescription`.

Frameworks are imported inside the writers: TensorFlow alone takes ~5 s to import, so write TF models only in
tests that need them, and cache them per session with ``tmp_path_factory`` fixtures.

Usage in a test (``tmp_path`` is pytest's fixture)::

    net = write_torchscript_convnet(tmp_path / "net.pt", kernel_sizes=(3, 5))
    net.halo  # -> 3
    onnx_net = write_onnx_convnet(tmp_path / "net.onnx", kernel_sizes=(3, 5))
    description = describe(net, onnx_net)
"""

from __future__ import annotations

import contextlib
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepij.bundle.description import (
    ArchitectureSpec,
    AxisSpec,
    DeepImageJConfig,
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ReferenceSize,
    TensorSpec,
    WeightsEntry,
)

Forward = Callable[..., list[np.ndarray]]


@dataclass
class WrittenModel:
    """A model file written by a test helper, and what a description of it needs.

    Attributes
    ----------
    path : Path
        The weights file, or the SavedModel folder (holding ``saved_model.pb``).
    format : str
        Canonical weights format (``torchscript``, ``onnx``, ``pytorch_state_dict``,
        ``tensorflow_saved_model_bundle``, ``keras_hdf5``).
    input_names, input_axes, input_channels : tuple
        Per input: name, axes letters as the graph takes them, channel count.
    output_names, output_axes, output_channels, output_scales : tuple
        Per output: name, axes, channel count, spatial scale relative to the first input.
    halo : int
        Receptive radius in input pixels: outputs more than ``halo`` pixels from a tile border are exact.
    offset : float
        Total size change of each spatial output axis, in output pixels (``-2 * halo * scale`` for ``valid``
        convolutions): output size = input size * scale + offset.
    min_size, step : int
        Valid spatial input sizes ``min_size + k * step``.
    forward : callable
        The framework's own forward pass: arrays in the input axes -> list of arrays in the output axes.
    architecture : ArchitectureSpec or None
        For ``pytorch_state_dict``: the architecture file (relative to ``path.parent``) and class.
    tf_tag, tf_signature : str or None
        For TF SavedModels: the meta graph tag and signature key written.
    """

    path: Path
    format: str
    input_names: tuple[str, ...]
    input_axes: tuple[str, ...]
    input_channels: tuple[int, ...]
    output_names: tuple[str, ...]
    output_axes: tuple[str, ...]
    output_channels: tuple[int, ...]
    forward: Forward
    output_scales: tuple[float, ...] = (1.0,)
    halo: int = 0
    offset: float = 0
    min_size: int = 1
    step: int = 1
    architecture: ArchitectureSpec | None = None
    tf_tag: str | None = None
    tf_signature: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- PyTorch ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_torch_warnings() -> Iterator[None]:
    """TorchScript and the legacy ONNX exporter warn about their deprecation on every call."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, UserWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        yield


def _torch_forward(module: Any) -> Forward:
    import torch

    def forward(*arrays: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            out = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.numpy().copy() for o in outs]

    return forward


def _seeded(factory: Callable[[], Any], seed: int, dtype: str = "float32") -> Any:
    import torch

    torch.manual_seed(seed)
    module = factory().eval()
    return module.double() if dtype == "float64" else module


def convnet_module(
    *,
    in_channels: int = 1,
    out_channels: int = 1,
    kernel_sizes: Sequence[int] = (3, 5, 3),
    hidden: int = 8,
    ndim: int = 2,
    padding: str = "same",
    scale: float = 1,
    seed: int = 0,
    dtype: str = "float32",
) -> Any:
    """The eager :class:`support.torch_nets.ConvNet` the convnet writers save (same seed, same weights)."""
    from support.torch_nets import ConvNet

    return _seeded(
        lambda: ConvNet(in_channels, out_channels, tuple(kernel_sizes), hidden, ndim, padding, scale),
        seed,
        dtype,
    )


def _convnet_info(path: Path, fmt: str, module: Any, kw: dict[str, Any]) -> WrittenModel:
    ndim = kw.get("ndim", 2)
    kernel_sizes = kw.get("kernel_sizes", (3, 5, 3))
    halo = sum(k // 2 for k in kernel_sizes)
    scale = float(kw.get("scale", 1))
    axes = "bczyx" if ndim == 3 else "bcyx"
    return WrittenModel(
        path=path,
        format=fmt,
        input_names=("input",),
        input_axes=(axes,),
        input_channels=(kw.get("in_channels", 1),),
        output_names=("output",),
        output_axes=(axes,),
        output_channels=(kw.get("out_channels", 1),),
        output_scales=(scale,),
        forward=_torch_forward(module),
        halo=halo,
        offset=-2 * halo * scale if kw.get("padding", "same") == "valid" else 0,
        min_size=2 * halo + 2 if scale == 0.5 else 2 * halo + 1,
        step=2 if scale == 0.5 else 1,
    )


def write_torchscript_convnet(path: str | Path, **kw: Any) -> WrittenModel:
    """A TorchScript :class:`ConvNet` (axes ``bcyx``, or ``bczyx`` with ``ndim=3``).

    Keyword arguments are those of :func:`convnet_module`: ``kernel_sizes`` sets the receptive field
    (``halo = sum(k // 2)``), ``padding`` ``"same"``/``"valid"``, ``scale`` 1, 2 or 0.5,
    ``dtype="float64"`` for a double-precision graph.
    """
    import torch

    path = Path(path)
    module = convnet_module(**kw)
    with _quiet_torch_warnings():
        torch.jit.script(module).save(str(path))
    return _convnet_info(path, "torchscript", module, kw)


def write_onnx_convnet(path: str | Path, *, opset: int = 17, **kw: Any) -> WrittenModel:
    """The same :class:`ConvNet` as :func:`write_torchscript_convnet` (same kwargs, same weights), as ONNX
    with dynamic batch and spatial axes."""
    path = Path(path)
    module = convnet_module(**kw)
    info = _convnet_info(path, "onnx", module, kw)
    _export_onnx(module, info, path, opset)
    return info


def _export_onnx(module: Any, info: WrittenModel, path: Path, opset: int) -> None:
    import torch

    dims = "zyx"[-(len(info.input_axes[0]) - 2) :]
    size = max(info.min_size + 4 * info.step, 16 if "z" not in dims else 8)
    size += (-size) % info.step
    examples = tuple(
        torch.zeros((1, c, *([size] * len(dims))), dtype=next(module.parameters()).dtype)
        for c in info.input_channels
    )
    dynamic = {0: "batch", **{2 + i: d for i, d in enumerate(dims)}}
    with _quiet_torch_warnings():
        torch.onnx.export(
            module,
            examples,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(info.input_names),
            output_names=list(info.output_names),
            dynamic_axes={n: dynamic for n in (*info.input_names, *info.output_names)},
        )


def unet_module(*, base: int = 16, depth: int = 3, in_channels: int = 1, seed: int = 0) -> Any:
    """The eager :class:`support.torch_nets.UNet` (default: 3 poolings, about 0.48 M parameters)."""
    from support.torch_nets import UNet

    return _seeded(lambda: UNet(in_channels, 1, base, depth), seed)


def _unet_info(path: Path, fmt: str, module: Any, depth: int, in_channels: int) -> WrittenModel:
    return WrittenModel(
        path=path,
        format=fmt,
        input_names=("input",),
        input_axes=("bcyx",),
        input_channels=(in_channels,),
        output_names=("output",),
        output_axes=("bcyx",),
        output_channels=(1,),
        forward=_torch_forward(module),
        # receptive radius: 2 px per 3x3 pair and 1 px per pooling at each level's pixel size, both ways
        # (51 for depth 3, measured with input gradients too); the zoo's U-Nets declare a halo of 32, less.
        halo=5 * (2**depth - 1) + 2 ** (depth + 1),
        min_size=2**depth,
        step=2**depth,
    )


def write_torchscript_unet(
    path: str | Path, *, base: int = 16, depth: int = 3, in_channels: int = 1, seed: int = 0
) -> WrittenModel:
    """A TorchScript :class:`UNet` (axes ``bcyx``, sizes multiples of ``2 ** depth``): the benchmark's net."""
    import torch

    path = Path(path)
    module = unet_module(base=base, depth=depth, in_channels=in_channels, seed=seed)
    with _quiet_torch_warnings():
        torch.jit.script(module).save(str(path))
    return _unet_info(path, "torchscript", module, depth, in_channels)


def write_onnx_unet(
    path: str | Path, *, base: int = 16, depth: int = 3, in_channels: int = 1, seed: int = 0, opset: int = 17
) -> WrittenModel:
    """The same U-Net as :func:`write_torchscript_unet` (same kwargs, same weights) as ONNX."""
    path = Path(path)
    module = unet_module(base=base, depth=depth, in_channels=in_channels, seed=seed)
    info = _unet_info(path, "onnx", module, depth, in_channels)
    _export_onnx(module, info, path, opset)
    return info


def write_torchscript_two_heads(path: str | Path, *, classes: int = 2, seed: int = 0) -> WrittenModel:
    """TorchScript net with two outputs: ``mask`` (same size, 1 channel) and ``classes`` (half size)."""
    import torch

    from support.torch_nets import TwoHeads

    path = Path(path)
    module = _seeded(lambda: TwoHeads(1, classes), seed)
    with _quiet_torch_warnings():
        torch.jit.script(module).save(str(path))
    return WrittenModel(
        path=path,
        format="torchscript",
        input_names=("input",),
        input_axes=("bcyx",),
        input_channels=(1,),
        output_names=("mask", "classes"),
        output_axes=("bcyx", "bcyx"),
        output_channels=(1, classes),
        output_scales=(1.0, 0.5),
        forward=_torch_forward(module),
        halo=2,
        min_size=2,
        step=2,
    )


def write_torchscript_two_inputs(path: str | Path, *, channels_b: int = 2, seed: int = 0) -> WrittenModel:
    """TorchScript net with two inputs ``image`` (1 channel) and ``guide`` (``channels_b``), one output."""
    import torch

    from support.torch_nets import TwoInputs

    path = Path(path)
    module = _seeded(lambda: TwoInputs(1, channels_b), seed)
    with _quiet_torch_warnings():
        torch.jit.script(module).save(str(path))
    return WrittenModel(
        path=path,
        format="torchscript",
        input_names=("image", "guide"),
        input_axes=("bcyx", "bcyx"),
        input_channels=(1, channels_b),
        output_names=("output",),
        output_axes=("bcyx",),
        output_channels=(1,),
        forward=_torch_forward(module),
        halo=1,
    )


def write_state_dict_convnet(folder: str | Path, **kw: Any) -> WrittenModel:
    """A ``pytorch_state_dict`` bundle part: ``convnet_weights.pt`` plus the architecture file
    ``torch_nets.py`` (class ``ConvNet``) in ``folder``. Same kwargs and weights as the convnet writers."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = convnet_module(**kw)
    path = folder / "convnet_weights.pt"
    torch.save(module.state_dict(), path)
    from support import torch_nets

    shutil.copyfile(torch_nets.__file__, folder / "torch_nets.py")
    arch_kwargs = {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items() if k not in ("seed", "dtype")
    }
    info = _convnet_info(path, "pytorch_state_dict", module, kw)
    info.architecture = ArchitectureSpec(source="torch_nets.py", callable="ConvNet", kwargs=arch_kwargs)
    return info


# --- TensorFlow ------------------------------------------------------------------------------------------


def _kernels(seed: int, channels: int, shapes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Random conv kernels (HWIO) for the TF models: widths given as (in, out) pairs."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32) for cin, cout in shapes
    ]


def write_tf2_saved_model(folder: str | Path, *, channels: int = 1, seed: int = 0) -> WrittenModel:
    """A TF2 SavedModel (``tf.Module``), axes ``byxc``, input ``raw``, two outputs ``foreground`` and
    ``boundary`` (the signature returns them as a dict: TF orders its keys alphabetically, the reverse of
    the order written here, so output matching by name is exercised). Signature ``serving_default``."""
    import tensorflow as tf

    folder = Path(folder)
    k1, k2 = _kernels(seed, channels, [(channels, 4), (4, 1)])

    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.k1, self.k2 = tf.Variable(k1), tf.Variable(k2)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32, name="raw")])
        def serve(self, raw: Any) -> dict[str, Any]:
            hidden = tf.nn.relu(tf.nn.conv2d(raw, self.k1, 1, "SAME"))
            fg = tf.sigmoid(tf.nn.conv2d(hidden, self.k2, 1, "SAME"))
            return {"foreground": fg, "boundary": 1.0 - 2.0 * fg}

    net = Net()
    tf.saved_model.save(net, str(folder), signatures={"serving_default": net.serve})

    def forward(raw: np.ndarray) -> list[np.ndarray]:
        out = net.serve(tf.constant(raw, tf.float32))
        return [out["foreground"].numpy(), out["boundary"].numpy()]

    return WrittenModel(
        path=folder,
        format="tensorflow_saved_model_bundle",
        input_names=("raw",),
        input_axes=("byxc",),
        input_channels=(channels,),
        output_names=("foreground", "boundary"),
        output_axes=("byxc", "byxc"),
        output_channels=(1, 1),
        output_scales=(1.0, 1.0),
        forward=forward,
        halo=2,
        tf_tag="serve",
        tf_signature="serving_default",
    )


def write_tf1_saved_model(
    folder: str | Path,
    *,
    tag: str = "deepij-custom-tag",
    signature: str = "deepij_custom_signature",
    input_key: str = "input",
    output_key: str = "output",
    output_op: str = "conv2d_2/Sigmoid",
    input_shape: tuple[int | None, ...] = (None, None, None, 1),
    extra_signatures: Sequence[str] = (),
    seed: int = 0,
) -> WrittenModel:
    """A TF1-era SavedModel written with ``tf.compat.v1.saved_model.Builder`` (graph, session, variables),
    under a custom tag and signature key, like deepImageJ 2.x bundles. Axes ``byxc``.

    The output tensor is named ``output_op`` (``conv2d_2/Sigmoid:0``, as Keras-1-era graphs name them) while
    its signature key is ``output_key``: 0.3 descriptors name outputs either way.
    ``extra_signatures`` adds the same signature under more keys (a model with several signatures).
    ``forward`` runs a real TF1 session on the saved model (``tf.compat.v1.saved_model.loader``).
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    folder = Path(folder)
    channels = int(input_shape[-1] or 1)
    k1, k2 = _kernels(seed, channels, [(channels, 4), (4, 1)])
    scope, op_name = output_op.rsplit("/", 1) if "/" in output_op else ("", output_op)
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        x = v1.placeholder(tf.float32, list(input_shape), name=input_key)
        w1, w2 = v1.Variable(k1, name="w1"), v1.Variable(k2, name="w2")
        hidden = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        with tf.name_scope(scope or None):
            y = tf.sigmoid(tf.nn.conv2d(hidden, w2, 1, "SAME"), name=op_name)
        sess.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(folder))
        sig = v1.saved_model.predict_signature_def(inputs={input_key: x}, outputs={output_key: y})
        signatures = {key: sig for key in (signature, *extra_signatures)}
        builder.add_meta_graph_and_variables(sess, [tag], signature_def_map=signatures)
        builder.save()

    def forward(image: np.ndarray) -> list[np.ndarray]:
        g = tf.Graph()
        with g.as_default(), v1.Session(graph=g) as s:
            meta = v1.saved_model.loader.load(s, [tag], str(folder))
            spec = meta.signature_def[signature]
            result = s.run(spec.outputs[output_key].name, {spec.inputs[input_key].name: image})
        return [np.asarray(result)]

    return WrittenModel(
        path=folder,
        format="tensorflow_saved_model_bundle",
        input_names=(input_key,),
        input_axes=("byxc",),
        input_channels=(channels,),
        output_names=(output_key,),
        output_axes=("byxc",),
        output_channels=(1,),
        forward=forward,
        halo=2,
        tf_tag=tag,
        tf_signature=signature,
        extra={"output_tensor": output_op},
    )


def write_keras_h5(path: str | Path, *, channels: int = 1, seed: int = 0) -> WrittenModel:
    """A Keras model saved as HDF5 (``model.save("x.h5")``), axes ``byxc``, one output."""
    import keras

    path = Path(path)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((None, None, channels), name="input"),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(1, 3, padding="same", name="output"),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras 3 calls HDF5 "legacy" on every save
        model.save(str(path))

    def forward(image: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(model(image, training=False))]

    return WrittenModel(
        path=path,
        format="keras_hdf5",
        input_names=("input",),
        input_axes=("byxc",),
        input_channels=(channels,),
        output_names=("output",),
        output_axes=("byxc",),
        output_channels=(1,),
        forward=forward,
        halo=2,
    )


# --- descriptions ----------------------------------------------------------------------------------------


def _tensor_axes(axes: str, channels: int, spatial: Any, halo: int = 0) -> tuple[AxisSpec, ...]:
    out = []
    for letter in axes:
        if letter == "b":
            out.append(AxisSpec("b"))
        elif letter == "c":
            out.append(AxisSpec("c", FixedSize(channels)))
        else:
            out.append(AxisSpec(letter, spatial(letter), halo=halo))
    return tuple(out)


def describe(
    *models: WrittenModel,
    name: str = "test model",
    root: str | Path | None = None,
    drop_batch: bool = False,
    output_halo: int | None = None,
    input_dtype: str = "float32",
    deepimagej: DeepImageJConfig | None = None,
    **overrides: Any,
) -> ModelDescription:
    """A :class:`ModelDescription` of one network offered in one or several weights formats.

    Parameters
    ----------
    *models : WrittenModel
        The same network in different formats; tensors are taken from the first. Their files must lie in
        ``root`` (default: the folder of the first model's weights).
    drop_batch : bool
        Describe tensors without their ``b`` axis (as 0.3 ``yxc`` bundles do) while the graph has one.
    output_halo : int, optional
        Halo declared on output spatial axes (default: the model's receptive radius).
    input_dtype : str
        The inputs' declared ``data_type``.
    deepimagej : DeepImageJConfig, optional
        Default: TF tag/signature of the first model, when it has them.
    **overrides
        Other :class:`ModelDescription` fields; ``weights=`` replaces the entries built from ``models``.
    """
    first = models[0]
    root = Path(root) if root is not None else first.path.parent
    halo = first.halo if output_halo is None else output_halo

    def strip(axes: str) -> str:
        return axes.replace("b", "") if drop_batch else axes

    inputs = tuple(
        TensorSpec(
            name=n,
            axes=_tensor_axes(strip(a), c, lambda _: ParameterizedSize(first.min_size, first.step)),
            data_type=input_dtype,
        )
        for n, a, c in zip(first.input_names, first.input_axes, first.input_channels, strict=True)
    )
    ref = first.input_names[0]
    outputs = tuple(
        TensorSpec(
            name=n,
            axes=_tensor_axes(
                strip(a),
                c,
                lambda letter, s=s: ReferenceSize(ref, letter, s, first.offset if letter in "yx" else 0),
                halo=int(halo * s),
            ),
        )
        for n, a, c, s in zip(
            first.output_names, first.output_axes, first.output_channels, first.output_scales, strict=True
        )
    )
    weights = overrides.pop("weights", None)
    if weights is None:
        weights = {
            m.format: WeightsEntry(m.format, m.path.relative_to(root).as_posix(), architecture=m.architecture)
            for m in models
        }
    if deepimagej is None:
        deepimagej = DeepImageJConfig(tensorflow_tag=first.tf_tag, tensorflow_signature=first.tf_signature)
    fields: dict[str, Any] = {
        "name": name,
        "format_version": "0.5.3",
        "root": root,
        "descriptor": root / "rdf.yaml",
        "inputs": inputs,
        "outputs": outputs,
        "weights": weights,
        "deepimagej": deepimagej,
    }
    fields.update(overrides)
    return ModelDescription(**fields)
