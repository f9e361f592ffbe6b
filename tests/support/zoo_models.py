"""Test models made the way BioImage Model Zoo bundles were made, with their quirks.

- :func:`write_scripted_zoo_unet`: a U-Net written for ``torch.jit.script`` as zoo U-Nets are: type
  annotations (``List[Tensor]``, ``Optional[str]``), control flow on the input size (reflect padding to a
  multiple of the pooling factor, crop of the skip connections, crop back at the end), an optional final
  activation, upsampling by ConvTranspose2d; or (``upsampling="bilinear"``) two levels written out, upsampled
  by ``F.interpolate(scale_factor=2)`` (always depth 2). Scripted, saved, and loaded back, as a bundle's
  ``weights.pt``.
- :func:`write_traced_unet`: the plain U-Net of :mod:`support.torch_nets` saved by ``torch.jit.trace``.
- :func:`write_fixed_onnx_unet`: a U-Net exported to ONNX with fixed dims (``1x1xSxS``), as many zoo ONNX
  files are; fully convolutional, so the dims could be relaxed.
- :func:`write_fixed_onnx_dense`: an ONNX net whose ops need its fixed size (Conv -> Flatten -> Linear ->
  Reshape back to the image): its dims must not be relaxed.

Every writer returns a :class:`support.models.WrittenModel` (``forward`` is the eager torch module) that
:func:`support.models.describe` turns into a description; ``fixed_description`` describes a fixed-size one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, List, Optional  # noqa: UP035 - zoo code of the TorchScript era is written this way

import numpy as np

from deepij.bundle.description import AxisSpec, FixedSize, ModelDescription, ParameterizedSize, TensorSpec
from support import models


def _zoo_classes() -> tuple[type, type, type]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu(self.conv2(F.relu(self.conv1(x))))

    class ZooUNet(nn.Module):
        def __init__(
            self,
            depth: int = 3,
            base: int = 8,
            upsampling: str = "transpose",
            final_activation: Optional[str] = "sigmoid",  # noqa: UP045 - TorchScript-era spelling
        ) -> None:
            super().__init__()
            self.depth = depth
            self.factor = 2**depth
            widths = [base * 2**i for i in range(depth + 1)]
            self.encoders = nn.ModuleList(
                [Block(1 if i == 0 else widths[i - 1], widths[i]) for i in range(depth)]
            )
            self.base = Block(widths[depth - 1], widths[depth])
            self.bilinear = upsampling == "bilinear"
            self.upsamplers = nn.ModuleList(
                [
                    nn.Conv2d(widths[i + 1], widths[i], 1)
                    if self.bilinear
                    else nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                    for i in reversed(range(depth))
                ]
            )
            self.decoders = nn.ModuleList([Block(2 * widths[i], widths[i]) for i in reversed(range(depth))])
            self.out_conv = nn.Conv2d(widths[0], 1, 1)
            self.final_activation = final_activation

        def _crop(self, x: torch.Tensor, shape: List[int]) -> torch.Tensor:  # noqa: UP006
            dy = (x.shape[2] - shape[2]) // 2
            dx = (x.shape[3] - shape[3]) // 2
            if dy == 0 and dx == 0:
                return x
            return x[:, :, dy : dy + shape[2], dx : dx + shape[3]]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            height, width = x.shape[2], x.shape[3]
            pad_y = (self.factor - height % self.factor) % self.factor
            pad_x = (self.factor - width % self.factor) % self.factor
            if pad_y > 0 or pad_x > 0:
                x = F.pad(x, [0, pad_x, 0, pad_y], mode="reflect")
            skips: List[torch.Tensor] = []  # noqa: UP006
            for encoder in self.encoders:
                x = encoder(x)
                skips.append(x)
                x = F.max_pool2d(x, 2)
            x = self.base(x)
            for i, (upsample, decoder) in enumerate(zip(self.upsamplers, self.decoders)):  # noqa: B905
                x = upsample(x)
                skip = skips[self.depth - 1 - i]
                x = decoder(torch.cat([self._crop(skip, x.shape), x], dim=1))
            x = self.out_conv(x)
            if self.final_activation is not None:  # noqa: SIM102 - as the zoo code reads
                if self.final_activation == "sigmoid":
                    x = torch.sigmoid(x)
            return x[:, :, :height, :width]

    class ZooBilinearUNet(nn.Module):
        """Two levels written out (no module lists), upsampling by ``F.interpolate(scale_factor=2)``."""

        def __init__(self, depth: int = 2, base: int = 8, upsampling: str = "bilinear") -> None:
            super().__init__()
            self.enc1, self.enc2 = Block(1, base), Block(base, 2 * base)
            self.bottom = Block(2 * base, 4 * base)
            self.up2, self.dec2 = nn.Conv2d(4 * base, 2 * base, 1), Block(4 * base, 2 * base)
            self.up1, self.dec1 = nn.Conv2d(2 * base, base, 1), Block(2 * base, base)
            self.out_conv = nn.Conv2d(base, 1, 1)

        def _up(self, x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s1 = self.enc1(x)
            s2 = self.enc2(F.max_pool2d(s1, 2))
            x = self.bottom(F.max_pool2d(s2, 2))
            x = self.dec2(torch.cat([s2, self.up2(self._up(x))], dim=1))
            x = self.dec1(torch.cat([s1, self.up1(self._up(x))], dim=1))
            return torch.sigmoid(self.out_conv(x))

    class DenseHead(nn.Module):
        """Conv, then a Linear over the whole flattened image: needs exactly ``side x side`` inputs."""

        def __init__(self, side: int) -> None:
            super().__init__()
            self.side = side
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.dense = nn.Linear(side * side, side * side)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = torch.flatten(self.conv(x), 1)
            return torch.sigmoid(self.dense(flat)).reshape(-1, 1, self.side, self.side)

    return ZooUNet, ZooBilinearUNet, DenseHead


def zoo_unet_module(*, depth: int = 3, base: int = 8, upsampling: str = "transpose", seed: int = 0) -> Any:
    """The eager zoo-style U-Net (before scripting)."""
    import torch

    zoo_unet, zoo_bilinear_unet, _ = _zoo_classes()
    torch.manual_seed(seed)
    if upsampling == "bilinear":
        return zoo_bilinear_unet(2, base).eval()
    return zoo_unet(depth, base, upsampling).eval()


def _info(path: Path, fmt: str, module: Any, depth: int) -> models.WrittenModel:
    return models.WrittenModel(
        path=path,
        format=fmt,
        input_names=("input",),
        input_axes=("bcyx",),
        input_channels=(1,),
        output_names=("output",),
        output_axes=("bcyx",),
        output_channels=(1,),
        forward=models._torch_forward(module),
        halo=5 * (2**depth - 1) + 2 ** (depth + 1),
        min_size=2**depth,
        step=2**depth,
    )


def write_scripted_zoo_unet(
    path: str | Path, *, depth: int = 3, base: int = 8, upsampling: str = "transpose", seed: int = 0
) -> models.WrittenModel:
    """The zoo-style U-Net, ``torch.jit.script``-ed and saved; ``forward`` is the reloaded script module."""
    import torch

    path = Path(path)
    module = zoo_unet_module(depth=depth, base=base, upsampling=upsampling, seed=seed)
    with models._quiet_torch_warnings():
        torch.jit.script(module).save(str(path))
        reloaded = torch.jit.load(str(path)).eval()
    return _info(path, "torchscript", reloaded, 2 if upsampling == "bilinear" else depth)


def write_traced_unet(
    path: str | Path, *, depth: int = 3, base: int = 8, seed: int = 0
) -> models.WrittenModel:
    """The :class:`support.torch_nets.UNet` saved by ``torch.jit.trace`` on a 64x64 example."""
    import torch

    path = Path(path)
    module = models.unet_module(base=base, depth=depth, seed=seed)
    with models._quiet_torch_warnings(), torch.no_grad():
        torch.jit.trace(module, torch.zeros(1, 1, 64, 64)).save(str(path))
    return _info(path, "torchscript", module, depth)


def _export_fixed(module: Any, path: Path, side: int) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer warns about every size-dependent branch it freezes
        torch.onnx.export(
            module,
            (torch.zeros(1, 1, side, side),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
        )


def write_fixed_onnx_unet(
    path: str | Path, *, side: int = 128, depth: int = 3, base: int = 8, seed: int = 0
) -> models.WrittenModel:
    """The plain U-Net exported to ONNX with every dim fixed (``1x1x{side}x{side}``)."""
    path = Path(path)
    module = models.unet_module(base=base, depth=depth, seed=seed)
    _export_fixed(module, path, side)
    info = _info(path, "onnx", module, depth)
    info.extra["side"] = side
    return info


def write_fixed_onnx_dense(path: str | Path, *, side: int = 32, seed: int = 0) -> models.WrittenModel:
    """:class:`DenseHead` exported with fixed dims: Flatten + Gemm over the whole image, Reshape back."""
    import torch

    *_, dense_head = _zoo_classes()
    path = Path(path)
    torch.manual_seed(seed)
    module = dense_head(side).eval()
    _export_fixed(module, path, side)
    info = _info(path, "onnx", module, 0)
    info.halo, info.min_size, info.step = 0, 1, 1
    info.extra["side"] = side
    return info


def fixed_description(written: models.WrittenModel, side: int, **kw: Any) -> ModelDescription:
    """A description pinning the spatial size to ``side`` on the input and the output (as zoo bundles with
    a fixed ``shape`` do)."""
    base = models.describe(written, **kw)

    def pinned(spec: TensorSpec) -> TensorSpec:
        axes = tuple(dataclasses.replace(a, size=FixedSize(side)) if a.id in "yx" else a for a in spec.axes)
        return dataclasses.replace(spec, axes=axes)

    return dataclasses.replace(
        base, inputs=tuple(map(pinned, base.inputs)), outputs=tuple(map(pinned, base.outputs))
    )


def multiple_of(written: models.WrittenModel, step: int, **kw: Any) -> ModelDescription:
    """A description allowing any multiple of ``step`` on the input's spatial axes (a relaxed shape rule)."""
    base = models.describe(written, **kw)
    spec = base.inputs[0]
    axes = tuple(
        AxisSpec(a.id, ParameterizedSize(step, step), a.halo) if a.id in "yx" else a for a in spec.axes
    )
    return dataclasses.replace(base, inputs=(dataclasses.replace(spec, axes=axes),))


def image(side: int, seed: int = 0, batch: int = 1) -> np.ndarray:
    """A float32 ``bcyx`` test image."""
    return np.random.default_rng(seed).standard_normal((batch, 1, side, side)).astype(np.float32)
