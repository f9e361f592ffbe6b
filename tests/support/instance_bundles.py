"""TorchScript bundles whose outputs become instances: Cellpose-shaped (flows and cell probability) and a
bundle with a ``custom`` post-processing op.

The Cellpose-shaped network is not trained: it computes flows the way a trained Cellpose net points them,
from the image itself (the gradient of the image blurred with a Gaussian, normalised to length 5, points to
each blob's centre; the cell probability logit is the blurred image minus 0.35, times 12). Its outputs have
the shapes cellpose's exporter (``cellpose/export.py``) declares: ``flow`` (3 channels: dy, dx, cell
probability) and ``style`` (256 features); the exporter's leading ``z`` axis (the planes) is a batch axis
here (see :func:`write_cellpose_exporter_bundle`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from support.bundles import sha256_file

CUSTOM_OP_SOURCE = '''
import numpy as np
from scipy import ndimage


class ThresholdLabels:
    """Labels of the connected regions of the first output above a threshold (a class with __call__)."""

    def __init__(self, threshold=0.5):
        self.threshold = threshold

    def __call__(self, *arrays):
        return ndimage.label(arrays[0][0] > self.threshold)[0].astype(np.uint16)


def threshold_labels(threshold=0.5):
    """The same as a factory."""
    def run(*arrays):
        return ndimage.label(arrays[0][0] > threshold)[0].astype(np.uint16)
    return run
'''


def flow_module(sigma: float = 2.0) -> Any:
    """The Cellpose-shaped network (module notes)."""
    import torch
    import torch.nn.functional as F

    radius = int(3 * sigma)
    grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(grid**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()

    class FlowNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("ky", kernel.reshape(1, 1, -1, 1))
            self.register_buffer("kx", kernel.reshape(1, 1, 1, -1))
            self.radius = radius

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            r = self.radius
            image = x[:, :1]
            blur = F.conv2d(F.pad(image, (0, 0, r, r), mode="replicate"), self.ky)
            blur = F.conv2d(F.pad(blur, (r, r, 0, 0), mode="replicate"), self.kx)
            padded = F.pad(blur, (1, 1, 1, 1), mode="replicate")
            dy = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) / 2
            dx = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) / 2
            norm = torch.sqrt(dy * dy + dx * dx) + 1e-6
            flow = torch.cat([5 * dy / norm, 5 * dx / norm, 12 * (blur - 0.35)], dim=1)
            style = blur.mean(dim=(2, 3)).repeat(1, 256)
            return flow, style

    return FlowNet()


def _write_torchscript(module: Any, path: Path, example: Any) -> Path:
    import torch

    torch.jit.trace(module, example).save(str(path))
    return path


def _axes(letters: str, channels: dict[str, Any], reference: str | None, minimum: int = 16) -> list[Any]:
    axes: list[Any] = []
    for a in letters:
        if a == "b":
            axes.append({"type": "batch"})
        elif a == "c":
            axes.append({"type": "channel", "channel_names": channels["names"]})
        elif reference is None:
            axes.append(
                {
                    "type": "space",
                    "id": a,
                    "size": {"min": 1 if a == "z" else minimum, "step": 1 if a == "z" else 8},
                }
            )
        else:
            axes.append({"type": "space", "id": a, "size": {"tensor_id": reference, "axis_id": a}})
    return axes


def write_cellpose_exporter_bundle(folder: Path, *, declared: bool = False) -> Path:
    """A 0.5 bundle shaped as cellpose's exporter writes it (tag ``cellpose``, no post-processing), or with
    ``declared``: output ``labels`` (batch, one channel, y, x) with a ``cellpose_flow_dynamics`` op."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    module = flow_module()
    if declared:

        class FlowOnly(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = module

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.net(x)[0]

        weights = _write_torchscript(FlowOnly(), folder / "cpnet.pt", torch.zeros(1, 2, 32, 32))
        inputs = [
            {"id": "raw", "axes": _axes("bcyx", {"names": ["c1", "c2"]}, None), "data": {"type": "float32"}}
        ]
        outputs = [
            {
                "id": "labels",
                "axes": _axes("bcyx", {"names": ["labels"]}, "raw"),
                "data": {"type": "uint16"},
                "postprocessing": [
                    {
                        "id": "cellpose_flow_dynamics",
                        "kwargs": {
                            "cellprob_threshold": 0.0,
                            "flow_threshold": 0.4,
                            "do_3D": False,
                            "min_size": 15,
                            "output_dtype": "uint16",
                        },
                    }
                ],
            }
        ]
        tags = ["instance-segmentation"]
    else:
        weights = _write_torchscript(module, folder / "cpnet.pt", torch.zeros(1, 2, 32, 32))
        # The exporter's first axis is z (the planes); deepij's TorchScript backend adds a batch axis to a
        # tensor without one (a 5-D input for this 4-D network), so the planes are the batch here.
        inputs = [
            {"id": "raw", "axes": _axes("bcyx", {"names": ["c1", "c2"]}, None), "data": {"type": "float32"}}
        ]
        outputs = [
            {"id": "flow", "axes": _axes("bcyx", {"names": ["flow1", "flow2", "flow3"]}, "raw")},
            {
                "id": "style",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": [f"feature{i + 1}" for i in range(256)]},
                ],
            },
        ]
        tags = ["cellpose", "2d"]
    data = {
        "format_version": "0.5.4",
        "type": "model",
        "name": "cellpose-shaped flows",
        "description": "flows",
        "authors": [{"name": "deepij tests"}],
        "cite": [{"text": "Cellpose", "doi": "10.1038/s41592-020-01018-x"}],
        "license": "BSD-3-Clause",
        "documentation": "README.md",
        "tags": tags,
        "inputs": inputs,
        "outputs": outputs,
        "weights": {
            "torchscript": {"source": weights.name, "sha256": sha256_file(weights), "pytorch_version": "2.13"}
        },
    }
    return _finish(folder, data)


def write_custom_op_bundle(
    folder: Path, *, callable_name: str = "ThresholdLabels", sha256: str | None = None, threshold: float = 0.5
) -> Path:
    """A TorchScript network (``probability``: the sigmoid of a blurred image, axes ``bcyx``) whose output
    ``labels`` is made by a ``custom`` op in ``my_labels.py`` (sha256 of the file unless given)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    module = flow_module()

    class Probability(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.net(x)[0][:, 2:3])

    weights = _write_torchscript(Probability(), folder / "net.pt", torch.zeros(1, 2, 32, 32))
    source = folder / "my_labels.py"
    source.write_text(CUSTOM_OP_SOURCE)
    digest = sha256 or hashlib.sha256(source.read_bytes()).hexdigest()
    data = {
        "format_version": "0.5.14",
        "type": "model",
        "name": "custom op",
        "description": "custom op",
        "authors": [{"name": "deepij tests"}],
        "cite": [{"text": "none", "doi": "10.1038/s41592-020-01018-x"}],
        "license": "MIT",
        "documentation": "README.md",
        "tags": ["test"],
        "inputs": [
            {"id": "raw", "axes": _axes("bcyx", {"names": ["c1", "c2"]}, None), "data": {"type": "float32"}}
        ],
        "outputs": [
            {
                "id": "labels",
                "axes": _axes("bcyx", {"names": ["labels"]}, "raw"),
                "data": {"type": "uint16"},
                "postprocessing": [
                    {
                        "id": "custom",
                        "callable": callable_name,
                        "source": "my_labels.py",
                        "sha256": digest,
                        "kwargs": {"threshold": threshold},
                    }
                ],
            }
        ],
        "weights": {
            "torchscript": {"source": weights.name, "sha256": sha256_file(weights), "pytorch_version": "2.13"}
        },
    }
    return _finish(folder, data)


def blob_pair(size: int = 96, seed: int = 0) -> np.ndarray:
    """A 2-channel image ``(y, x, c)``: disks of 1.0 on 0 in channel 0 (channel 1 is empty)."""
    from support.stardist_bundles import blob_image

    image, _ = blob_image(size, objects=10, seed=seed)
    clean = (image > 0.5).astype(np.float32)
    return np.stack([clean, np.zeros_like(clean)], axis=-1)


def _finish(folder: Path, data: dict[str, Any]) -> Path:
    (folder / "README.md").write_text(f"# {data['name']}\n")
    descriptor = folder / "rdf.yaml"
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False))
    return descriptor
