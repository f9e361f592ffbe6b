"""Running a PyTorch module (TorchScript, or rebuilt from a state dict): what both torch formats share."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from deepij.bundle.description import ModelDescription, WeightsEntry
from deepij.errors import BackendError
from deepij.inference.backends.devices import choose_device, cuda_driver_present
from deepij.inference.backends.graph import GraphBackend, GraphTensor, match_tensors


def gpu_count() -> int:
    """How many CUDA GPUs torch sees (the one query tests replace to act as if a GPU were there); 0 without
    importing torch on a machine with no NVIDIA driver (:func:`~.devices.cuda_driver_present`)."""
    if "torch" not in sys.modules and not cuda_driver_present():
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count (process-wide in torch); None keeps torch's default."""
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))


def torch_device(device: str | None) -> str:
    """``device=`` resolved for torch (``"cpu"`` or ``"cuda:N"``)."""
    return choose_device(device, gpu_count(), "torch")


def module_dtype(module: Any) -> np.dtype | None:
    """The numpy dtype of the module's floating-point weights: what its inputs must be cast to."""
    import torch

    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return np.dtype(torch.empty((), dtype=tensor.dtype).numpy().dtype)
    return None


class TorchModuleBackend(GraphBackend):
    """A torch module in eval mode, run under ``torch.inference_mode`` on one device.

    Inputs are passed positionally in descriptor order (torch graphs have no input names to match);
    outputs may be a tensor, a tuple/list of tensors, or a dict matched to the outputs by name.
    """

    runtime = "torch"
    _torch_like = True

    def __init__(
        self, description: ModelDescription, weights: WeightsEntry, module: Any, device: str
    ) -> None:
        super().__init__(description, weights, device)
        self.module = module.eval()
        dtype = module_dtype(self.module)
        if dtype is None:
            dtype = np.dtype(description.inputs[0].data_type) if description.inputs else None
        self._bind([GraphTensor((s.name,), None, dtype) for s in description.inputs], None)
        self.half = False
        """Whether the module runs in float16 (:mod:`deepij.inference.backends.precision`)."""

    def use_half(self, half: bool) -> None:
        """Cast the module's floating-point parameters to float16 (``half``) or float32; inputs follow the
        module's dtype, outputs are handed back in float32."""
        self.module = self.module.half() if half else self.module.float()
        self.half = half
        dtype = module_dtype(self.module)
        self._bind([GraphTensor((s.name,), None, dtype) for s in self.description.inputs], None)

    def _run(self, graph_inputs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        on_cpu = self.device == "cpu"
        with torch.inference_mode():
            tensors = [
                torch.from_numpy(a) if on_cpu else torch.from_numpy(a).to(self.device, non_blocking=True)
                for a in graph_inputs
            ]
            try:
                result = self.module(*tensors)
            except Exception as error:  # the network's own failure: keep its message, name the model
                raise BackendError(
                    f"{self.label}: the network failed on inputs of shape "
                    f"{[tuple(a.shape) for a in graph_inputs]}: {error}"
                ) from error
            outputs = self._as_list(result)
            if self.half:
                outputs = [t.float() if t.dtype == torch.float16 else t for t in outputs]
            return [t.numpy() if on_cpu else t.cpu().numpy() for t in outputs]

    def _as_list(self, result: Any) -> list[Any]:
        import torch

        if isinstance(result, torch.Tensor):
            return [result]
        if isinstance(result, Mapping):
            keys = list(result)
            slots = match_tensors(
                self.description.outputs, [GraphTensor((str(k),)) for k in keys], "output", self.label
            )
            return [result[keys[s]] for s in slots]
        if isinstance(result, (tuple, list)):
            return list(result)
        raise BackendError(
            f"{self.label}: the network returned a {type(result).__name__} "
            "(expected a tensor, a tuple/list of tensors or a dict of tensors)"
        )

    def close(self) -> None:
        if not self.closed and self.device.startswith("cuda"):
            import torch

            self.module = None
            torch.cuda.empty_cache()
        self.module = None
        super().close()
