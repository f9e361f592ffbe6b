"""TorchScript weights (``torchscript``, also written ``pytorch_script``): ``torch.jit.load`` and run."""

from __future__ import annotations

import warnings
from pathlib import Path

from deepij.bundle.description import ModelDescription, WeightsEntry
from deepij.errors import BackendError
from deepij.inference.backends.base import OpenRequest
from deepij.inference.backends.torch_runner import TorchModuleBackend, set_threads, torch_device


class TorchScriptBackend(TorchModuleBackend):
    """A TorchScript file loaded once onto its device.

    Examples
    --------
    >>> import numpy as np
    >>> from deepij.bundle import open_bundle
    >>> description = open_bundle("examples/nuclei_bundle")
    >>> entry = description.weights["torchscript"]
    >>> backend = TorchScriptBackend(description, entry, description.path(entry.source))
    >>> [out] = backend.predict([np.load("examples/nuclei_bundle/test_input.npy")])
    >>> out.shape
    (1, 1, 256, 256)
    """

    def __init__(
        self, description: ModelDescription, weights: WeightsEntry, path: Path, device: str | None = None
    ) -> None:
        import torch

        resolved = torch_device(device)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit warns that TorchScript is deprecated
                module = torch.jit.load(str(path), map_location=resolved)
        except Exception as error:
            raise BackendError(
                f"{path}: not a TorchScript file torch {torch.__version__} can load: {error}"
            ) from error
        super().__init__(description, weights, module, resolved)


def open_backend(request: OpenRequest) -> TorchScriptBackend:
    """Load the file as TorchScript (``allow_code`` is not needed: TorchScript is data, not Python)."""
    set_threads(request.threads)
    return TorchScriptBackend(request.description, request.weights, request.path, request.device)
