"""Small convolutional networks written in numpy, with a known receptive field, as real :class:`Backend` s.

They are genuine networks (random but fixed weights, ReLU, zero-padded or valid convolutions, up- and
down-sampling), just not in a deep-learning framework: the tiling and runner tests use them to check
results against the same network run on the whole image, fast and without torch.

Examples
--------
>>> net = ConvSpec(kernel_sizes=(3, 5))
>>> net.radius
3
>>> description = conv_description(net, input_axes="bcyx")
>>> backend = NumpyConvBackend(description, net)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from deepij.bundle.description import (
    AxisSpec,
    DeepImageJConfig,
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ReferenceSize,
    TensorSpec,
    WeightsEntry,
)
from deepij.inference.backends.base import Backend


@dataclass(frozen=True)
class ConvSpec:
    """A stack of convolutions: ``kernel_sizes`` (odd), channels in/out, ``padding`` same or valid,
    and an output ``scale`` of 1, 2 (nearest upsampling) or 0.5 (2x average pooling)."""

    kernel_sizes: tuple[int, ...] = (3, 3)
    in_channels: int = 1
    out_channels: int = 1
    hidden: int = 3
    padding: str = "same"
    scale: float = 1.0
    ndim: int = 2
    seed: int = 0

    @property
    def radius(self) -> int:
        """Receptive radius in input pixels."""
        return sum(k // 2 for k in self.kernel_sizes)

    def weights(self) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        widths = [self.in_channels] + [self.hidden] * (len(self.kernel_sizes) - 1) + [self.out_channels]
        return [
            rng.normal(0, 1 / k, size=(widths[i + 1], widths[i]) + (k,) * self.ndim).astype(np.float32)
            for i, k in enumerate(self.kernel_sizes)
        ]


def conv_forward(spec: ConvSpec, x: np.ndarray) -> np.ndarray:
    """Run the network on one sample laid out ``(c, *spatial)``."""
    layers = spec.weights()
    for i, w in enumerate(layers):
        k = w.shape[-1]
        if spec.padding == "same":
            x = np.pad(x, [(0, 0)] + [(k // 2, k // 2)] * spec.ndim)
        windows = sliding_window_view(x, (k,) * spec.ndim, axis=tuple(range(1, spec.ndim + 1)))
        letters = "uvw"[: spec.ndim]
        x = np.einsum(f"i...{letters},oi{letters}->o...", windows, w, optimize=True).astype(np.float32)
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    if spec.scale == 2:
        for axis in range(1, spec.ndim + 1):
            x = np.repeat(x, 2, axis=axis)
    elif spec.scale == 0.5:
        shape = [x.shape[0]]
        for n in x.shape[1:]:
            shape += [n // 2, 2]
        x = x[(slice(None), *(slice(0, 2 * (n // 2)) for n in x.shape[1:]))]
        x = x.reshape(shape).mean(axis=tuple(range(2, 2 * spec.ndim + 1, 2)))
    return x.astype(np.float32)


class NumpyConvBackend(Backend):
    """A :class:`ConvSpec` network as a backend: inputs and outputs in the description's axes."""

    format = "numpy"

    def __init__(self, description: ModelDescription, spec: ConvSpec, device: str | None = None) -> None:
        super().__init__(description, WeightsEntry(format="numpy", source="numpy"), device)
        self.spec = spec
        self.calls: list[tuple[int, ...]] = []

    def predict(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        source, target = self.description.inputs[0], self.description.outputs[0]
        x, axes = inputs[0], source.axes_str
        self.calls.append(x.shape)
        spatial = "zyx"[3 - self.spec.ndim :]
        if "b" not in axes:
            x, axes = x[None], "b" + axes
        if "c" not in axes:
            x, axes = x[..., None], axes + "c"
        x = _to_axes(x, axes, "bc" + spatial)
        y = np.stack([conv_forward(self.spec, sample) for sample in x])
        order = "bc" + spatial
        if "c" not in target.axes_str:
            y, order = y[:, 0], "b" + spatial
        if "b" not in target.axes_str:
            y, order = y[0], order[1:]
        return [np.ascontiguousarray(_to_axes(y, order, target.axes_str))]


def _to_axes(y: np.ndarray, order: str, axes: str) -> np.ndarray:
    return np.transpose(y, [order.index(a) for a in axes])


def conv_description(
    spec: ConvSpec,
    *,
    input_axes: str = "bcyx",
    output_axes: str | None = None,
    min_size: int | None = None,
    step: int = 1,
    halo: int | None = None,
    allow_tiling: bool = True,
    pyramidal: bool = False,
    fixed: int | None = None,
    batch: int | None = 1,
    name: str = "numpy conv",
) -> ModelDescription:
    """A description of ``spec`` as a model: input ``raw``, output ``out`` referring to it.

    ``halo`` defaults to the receptive radius (in output pixels); ``fixed`` makes the spatial input axes a
    fixed size; ``batch`` None allows any batch size, an int fixes it.
    """
    smallest = min_size if min_size is not None else 2 * spec.radius + 2
    out_halo = round(spec.radius * spec.scale) if halo is None else halo
    offset = -2 * spec.radius * spec.scale if spec.padding == "valid" else 0

    def in_axis(letter: str) -> AxisSpec:
        if letter == "b":
            return AxisSpec("b", None if batch is None else FixedSize(batch))
        if letter == "c":
            return AxisSpec("c", FixedSize(spec.in_channels))
        if fixed is not None:
            return AxisSpec(letter, FixedSize(fixed))
        return AxisSpec(letter, ParameterizedSize(smallest, step))

    def out_axis(letter: str) -> AxisSpec:
        if letter == "b":
            return AxisSpec("b", ReferenceSize("raw", "b"))
        if letter == "c":
            return AxisSpec("c", FixedSize(spec.out_channels))
        return AxisSpec(letter, ReferenceSize("raw", letter, spec.scale, offset), halo=out_halo)

    inputs = (TensorSpec("raw", tuple(in_axis(a) for a in input_axes)),)
    out_letters = output_axes or input_axes
    outputs = (TensorSpec("out", tuple(out_axis(a) for a in out_letters)),)
    root = Path("/nonexistent/numpy-net")
    return ModelDescription(
        name=name,
        format_version="0.4.10",
        root=root,
        descriptor=root / "rdf.yaml",
        inputs=inputs,
        outputs=outputs,
        weights={},
        deepimagej=DeepImageJConfig(pyramidal_model=pyramidal, allow_tiling=allow_tiling),
    )


def whole_image_reference(spec: ConvSpec, sample: np.ndarray, pad: int) -> np.ndarray:
    """The network on one whole sample ``(c, *spatial)`` mirror-padded by ``pad``, cropped back to the image.

    This is what a tiled run must reproduce when the receptive field fits in the padding.
    """
    padded = np.pad(sample, [(0, 0)] + [(pad, pad)] * spec.ndim, mode="reflect")
    y = conv_forward(spec, padded)
    valid_shift = spec.radius if spec.padding == "valid" else 0
    start = int((pad - valid_shift) * spec.scale)
    crop = tuple(slice(start, start + int(n * spec.scale)) for n in sample.shape[1:])
    return y[(slice(None), *crop)]
