"""Train the demo bundle's network and write its weights (TorchScript and ONNX) and test tensors.

The network is a small U-Net (2 poolings, 8-16-32 channels, 29 k parameters) that predicts the probability
that a pixel lies inside a nucleus. It is trained on synthetic images (``nuclei_data.py``), normalised
exactly as the bundle's pre-processing macro normalises (1 % / 99.8 % percentiles from a 256-bin
histogram). Everything is seeded and runs on the CPU with 2 threads, so a rerun on the same torch version
writes the same weights (the TorchScript file's bytes differ, by the random serialization id torch writes
into it; the ONNX file is byte for byte the same). Training takes 30 s to 2 minutes on 2 quiet cores (10
minutes seen while other work loaded them).

Written into the bundle folder:

- ``weights_torchscript.pt``: the network scripted with ``torch.jit.script``;
- ``weights.onnx``: the same network exported to ONNX (opset 17) with dynamic batch and spatial dims,
  checked against the TorchScript on the example image;
- ``test_input.npy`` / ``test_output.npy``: a 256 x 256 crop of the example image (raw counts as float32,
  ``(b, c, y, x)``) and the network's output on it after the descriptor's spec pre-processing
  (``scale_range`` with exact percentiles), computed here in numpy: what the zoo's tools reproduce.

Then ``make_expected.py`` runs (unless ``--weights-only``): ImageJ pre-processing, the network, ImageJ
post-processing on the example image, and the descriptor with every sha256.

Usage: ``python examples/train_demo_model.py [--bundle examples/nuclei_bundle] [--steps 500]``
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from nuclei_data import EXAMPLE_COUNT, EXAMPLE_SEED, EXAMPLE_SIZE, scale_range, synthetic_nuclei

BUNDLE = Path(__file__).with_name("nuclei_bundle")
TORCHSCRIPT = "weights_torchscript.pt"
ONNX = "weights.onnx"
TEST_INPUT, TEST_OUTPUT = "test_input.npy", "test_output.npy"
TEST_CROP = (slice(128, 384), slice(128, 384))
"""The example image's part that makes the test tensors (256 x 256: valid for the input's min 64, step 16)."""
SPEC_PERCENTILES = (1.0, 99.8)
SPEC_EPS = 1e-6

SEED = 7
TRAIN_IMAGES = 24
TRAIN_SIZE = 256
VALIDATION_SEED = 99
PATCH = 64
BATCH = 8
THREADS = 2


def unet_class() -> Any:
    """The network's class (made inside a function so that importing this file does not import torch)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class DoubleConv(nn.Module):
        def __init__(self, in_channels: int, out_channels: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            return F.relu(self.conv2(x))

    class NucleiUNet(nn.Module):
        """U-Net, 2 poolings; input (b, 1, y, x) with y, x multiples of 4; output probabilities."""

        def __init__(self, base: int = 8) -> None:
            super().__init__()
            self.enc0 = DoubleConv(1, base)
            self.enc1 = DoubleConv(base, 2 * base)
            self.bottom = DoubleConv(2 * base, 4 * base)
            self.up1 = nn.ConvTranspose2d(4 * base, 2 * base, 2, stride=2)
            self.dec1 = DoubleConv(4 * base, 2 * base)
            self.up0 = nn.ConvTranspose2d(2 * base, base, 2, stride=2)
            self.dec0 = DoubleConv(2 * base, base)
            self.head = nn.Conv2d(base, 1, 1)

        def logits(self, x):
            skip0 = self.enc0(x)
            skip1 = self.enc1(F.max_pool2d(skip0, 2))
            x = self.bottom(F.max_pool2d(skip1, 2))
            x = self.dec1(torch.cat([self.up1(x), skip1], 1))
            x = self.dec0(torch.cat([self.up0(x), skip0], 1))
            return self.head(x)

        def forward(self, x):
            return torch.sigmoid(self.logits(x))

    return NucleiUNet


def training_data() -> tuple[np.ndarray, np.ndarray]:
    """Normalised training images and their foreground masks, ``(n, y, x)`` float32."""
    count = round(EXAMPLE_COUNT * TRAIN_SIZE**2 / EXAMPLE_SIZE**2)  # the example image's density
    images, masks = [], []
    for index in range(TRAIN_IMAGES):
        nuclei = synthetic_nuclei(TRAIN_SIZE, count, seed=SEED * 1000 + index)
        images.append(scale_range(nuclei.image))
        masks.append(nuclei.foreground)
    return np.stack(images), np.stack(masks)


def batches(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A batch of random patches, flipped and turned at random."""
    picks = rng.integers(0, len(images), BATCH)
    corners = rng.integers(0, TRAIN_SIZE - PATCH + 1, (BATCH, 2))
    xs, ys = [], []
    for pick, (y, x), turn, flip in zip(picks, corners, rng.integers(0, 4, BATCH), rng.random(BATCH) < 0.5,
                                        strict=True):
        window = (pick, slice(y, y + PATCH), slice(x, x + PATCH))
        patch, target = np.rot90(images[window], turn), np.rot90(masks[window], turn)
        if flip:
            patch, target = patch[:, ::-1], target[:, ::-1]
        xs.append(patch)
        ys.append(target)
    return np.stack(xs)[:, None].copy(), np.stack(ys)[:, None].copy()


def train(steps: int) -> Any:
    """The trained network (eager, in eval mode)."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(SEED)
    images, masks = training_data()
    net = unet_class()()
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    started = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = batches(images, masks, rng)
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(net.logits(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 50 == 0 or step == steps:
            print(f"  step {step}/{steps}: loss {loss.item():.4f} ({time.perf_counter() - started:.0f} s)")
    return net.eval()


def validation_iou(net: Any) -> float:
    """Foreground IoU (probability > 0.5) on an image the network never saw."""
    import torch

    nuclei = synthetic_nuclei(EXAMPLE_SIZE, EXAMPLE_COUNT, seed=VALIDATION_SEED)
    with torch.no_grad():
        probability = net(torch.from_numpy(scale_range(nuclei.image))[None, None])[0, 0].numpy()
    predicted, truth = probability > 0.5, nuclei.labels > 0
    return float((predicted & truth).sum() / (predicted | truth).sum())


def export(net: Any, folder: Path) -> tuple[Path, Path]:
    """TorchScript and ONNX files of the network."""
    import torch

    scripted = torch.jit.script(net)
    torchscript = folder / TORCHSCRIPT
    scripted.save(str(torchscript))
    onnx = folder / ONNX
    dims = {0: "batch", 2: "y", 3: "x"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its deprecation
        torch.onnx.export(net, (torch.zeros(1, 1, 64, 64),), str(onnx), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["probability"],
                          dynamic_axes={"input": dims, "probability": dims})
    return torchscript, onnx


def compare_weights(torchscript: Path, onnx: Path) -> float:
    """Largest difference between the two files' outputs on the example image (as the macro normalises it)."""
    import onnxruntime
    import torch

    image = scale_range(synthetic_nuclei(EXAMPLE_SIZE, EXAMPLE_COUNT, seed=EXAMPLE_SEED).image)[None, None]
    with torch.no_grad():
        scripted = torch.jit.load(str(torchscript))(torch.from_numpy(image)).numpy()
    onnx_session = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    exported = onnx_session.run(None, {"input": image})[0]
    return float(np.abs(scripted - exported).max())


def spec_scale_range(tensor: np.ndarray) -> np.ndarray:
    """The bioimage.io ``scale_range`` op (exact linear-interpolated percentiles over y, x; no clipping)."""
    low, high = np.percentile(tensor, SPEC_PERCENTILES, axis=(-2, -1), keepdims=True)
    return ((tensor - low) / (high - low + SPEC_EPS)).astype(np.float32)


def write_test_tensors(torchscript: Path, folder: Path) -> None:
    import torch

    image = synthetic_nuclei(EXAMPLE_SIZE, EXAMPLE_COUNT, seed=EXAMPLE_SEED).image
    test_input = image[TEST_CROP].astype(np.float32)[None, None]
    with torch.no_grad():
        test_output = torch.jit.load(str(torchscript))(torch.from_numpy(spec_scale_range(test_input))).numpy()
    np.save(folder / TEST_INPUT, test_input)
    np.save(folder / TEST_OUTPUT, test_output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help="bundle folder to write into")
    parser.add_argument("--steps", type=int, default=500, help="training steps (batches of 8 patches)")
    parser.add_argument("--weights-only", action="store_true", help="do not run make_expected.py afterwards")
    options = parser.parse_args(argv)
    options.bundle.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    print(f"training on {TRAIN_IMAGES} synthetic {TRAIN_SIZE}x{TRAIN_SIZE} images, {options.steps} steps")
    net = train(options.steps)
    print(f"trained in {time.perf_counter() - started:.0f} s; foreground IoU on a new image "
          f"{validation_iou(net):.3f}")
    torchscript, onnx = export(net, options.bundle)
    difference = compare_weights(torchscript, onnx)
    print(f"wrote {torchscript} ({torchscript.stat().st_size / 1e3:.0f} kB) and {onnx} "
          f"({onnx.stat().st_size / 1e3:.0f} kB); largest TorchScript/ONNX difference {difference:.2e}")
    if difference > 1e-4:
        print("TorchScript and ONNX outputs disagree", file=sys.stderr)
        return 1
    write_test_tensors(torchscript, options.bundle)
    print(f"wrote {TEST_INPUT} and {TEST_OUTPUT}")
    if options.weights_only:
        return 0
    import make_expected

    return make_expected.main(["--bundle", str(options.bundle)])


if __name__ == "__main__":
    sys.exit(main())
