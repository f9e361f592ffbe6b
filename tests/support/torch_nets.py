"""Small PyTorch networks the tests and benchmarks turn into real model files.

This file imports only torch, so it doubles as the *architecture file* of ``pytorch_state_dict`` test bundles
(it is copied into the bundle and loaded from there).
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(ndim: int, cin: int, cout: int, kernel: int, padding: int) -> nn.Module:
    layer = nn.Conv2d if ndim == 2 else nn.Conv3d
    return layer(cin, cout, kernel, padding=padding)


class ConvNet(nn.Module):
    """A plain stack of convolutions with a known receptive field.

    With ``padding="same"`` every output pixel depends on input pixels at most ``sum(k // 2)`` away
    (the receptive radius); with ``padding="valid"`` the output is smaller by twice that radius.
    ``scale`` 2 upsamples the output (nearest), 0.5 halves it (2x2 average pooling).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        kernel_sizes: tuple[int, ...] = (3, 5, 3),
        hidden: int = 8,
        ndim: int = 2,
        padding: str = "same",
        scale: float = 1,
    ) -> None:
        super().__init__()
        widths = [in_channels] + [hidden] * (len(kernel_sizes) - 1) + [out_channels]
        layers: list[nn.Module] = []
        for i, k in enumerate(kernel_sizes):
            layers.append(_conv(ndim, widths[i], widths[i + 1], k, k // 2 if padding == "same" else 0))
            if i < len(kernel_sizes) - 1:
                layers.append(nn.ReLU())
        if scale == 2:
            layers.append(nn.Upsample(scale_factor=2.0, mode="nearest"))
        elif scale == 0.5:
            layers.append(nn.AvgPool2d(2) if ndim == 2 else nn.AvgPool3d((1, 2, 2)))
        elif scale != 1:
            raise ValueError(f"scale must be 1, 2 or 0.5, not {scale}")
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU()
    )


class UNet(nn.Module):
    """A 2-D U-Net: ``depth`` 2x2 poolings, ``base`` channels at full resolution, sigmoid output (logits
    with ``sigmoid=False``, for descriptors that declare the sigmoid as post-processing).

    With the defaults (depth 3, base 16) it has about 0.48 M parameters, like the zoo's small nuclei U-Nets.
    Input sizes must be multiples of ``2 ** depth``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base: int = 16,
        depth: int = 3,
        sigmoid: bool = True,
    ) -> None:
        super().__init__()
        self.sigmoid = sigmoid
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths[:-1]:
            self.down.append(_double_conv(cin, w))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottom = _double_conv(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w_low, w_high in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(w_low, w_high, 2, stride=2))
            self.merge.append(_double_conv(2 * w_high, w_high))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        # TorchScript iterates one ModuleList at a time, hence the index into the other.
        for i, up in enumerate(self.up):
            x = torch.cat([skips[len(skips) - 1 - i], up(x)], dim=1)
            for j, merge in enumerate(self.merge):
                if j == i:
                    x = merge(x)
        x = self.head(x)
        return torch.sigmoid(x) if self.sigmoid else x


class TwoHeads(nn.Module):
    """Two outputs of different shapes: a same-size 1-channel map and a half-size ``classes``-channel map."""

    def __init__(self, in_channels: int = 1, classes: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU())
        self.mask = nn.Conv2d(4, 1, 3, padding=1)
        self.classes = nn.Sequential(nn.Conv2d(4, classes, 3, padding=1), nn.AvgPool2d(2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.mask(features), self.classes(features)


class PairNet(nn.Module):
    """Two inputs, two outputs, each output from its own input (the zoo's ``unet2d_multi_tensor`` shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(1, 1, 3, padding=1)
        self.second = nn.Conv2d(1, 1, 5, padding=2)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.first(a), self.second(b)


class Upsample4(nn.Module):
    """Nearest upsampling by 4 after a 1x1 convolution (the zoo's ``upsample_test_model`` shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.conv(x), scale_factor=4.0, mode="nearest")


class WithZ(nn.Module):
    """A 2-D convnet whose output carries a singleton ``z`` axis (the zoo's ``expand_output_shape``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).unsqueeze(2)


class TwoInputs(nn.Module):
    """Two inputs (image and a second channel set), concatenated then convolved: checks input order."""

    def __init__(self, channels_a: int = 1, channels_b: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels_a + channels_b, 1, 3, padding=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([a, 2.0 * b], dim=1))
