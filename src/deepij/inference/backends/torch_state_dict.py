"""``pytorch_state_dict`` weights: the network class comes from the bundle's architecture file.

That file is Python code from whoever made the bundle, so it is imported only when the caller passed
``allow_code=True``. Its sha256, when the descriptor gives one, is checked before anything runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from deepij.bundle.description import ArchitectureSpec, ModelDescription, WeightsEntry
from deepij.errors import BackendError
from deepij.inference.backends.base import OpenRequest
from deepij.inference.backends.torch_runner import TorchModuleBackend, set_threads, torch_device

CODE_REFUSAL = (
    "weights 'pytorch_state_dict' need the bundle's architecture file {source!r}, which is Python code "
    "and runs only when allowed: pass allow_code=True (deepij.load(..., allow_code=True)) if you trust "
    "this bundle, or choose another weights format"
)


@contextlib.contextmanager
def _importable_from(folder: Path) -> Iterator[None]:
    """Let the architecture file import its sibling modules while it is being imported."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def architecture_callable(description: ModelDescription, spec: ArchitectureSpec, verify: bool = True) -> Any:
    """Import the architecture (a ``.py`` file in the bundle, checked against its sha256, or an importable
    module) and return its callable. Runs the bundle's code: call only when code is allowed."""
    if spec.source.endswith(".py"):
        from deepij.bundle import resolve_file

        field = "weights.pytorch_state_dict.architecture.source"
        path = resolve_file(description, spec.source, spec.sha256, verify=verify, field=field)
        name = f"deepij_architecture_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise BackendError(f"{path}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(loader_spec)
        with _importable_from(path.parent):
            try:
                loader_spec.loader.exec_module(module)
            except Exception as error:
                raise BackendError(f"{path}: importing the architecture file failed: {error!r}") from error
    else:
        try:
            module = importlib.import_module(spec.source)
        except ImportError as error:
            raise BackendError(
                f"architecture module {spec.source!r} cannot be imported: {error} "
                "(expected a .py file in the bundle or an installed module)"
            ) from error
    try:
        return getattr(module, spec.callable)
    except AttributeError:
        raise BackendError(
            f"architecture {spec.source!r} has no {spec.callable!r} "
            f"(found: {sorted(n for n in vars(module) if not n.startswith('_'))})"
        ) from None


def _state_dict(path: Path) -> Mapping[str, Any]:
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise BackendError(f"{path}: not a PyTorch state dict torch can load safely: {error}") from error
    # Some training scripts save {"state_dict": ...} (or "model_state_dict") instead of the dict itself.
    if isinstance(state, Mapping) and len(state) == 1:
        ((key, inner),) = state.items()
        if key in ("state_dict", "model_state_dict", "model") and isinstance(inner, Mapping):
            state = inner
    if not isinstance(state, Mapping):
        raise BackendError(f"{path}: holds a {type(state).__name__} (expected a state dict: name -> tensor)")
    return state


def build_module(
    description: ModelDescription, weights: WeightsEntry, path: Path, verify: bool = True
) -> Any:
    """The architecture instantiated with its kwargs and the state dict loaded into it (strictly)."""
    if weights.architecture is None:
        raise BackendError(
            f"{description.descriptor}: weights.pytorch_state_dict has no architecture "
            "(expected a source file and a callable)"
        )
    factory = architecture_callable(description, weights.architecture, verify)
    try:
        module = factory(**dict(weights.architecture.kwargs))
    except Exception as error:
        raise BackendError(
            f"architecture {weights.architecture.callable}(**{dict(weights.architecture.kwargs)!r}) "
            f"failed: {error}"
        ) from error
    try:
        module.load_state_dict(_state_dict(path), strict=True)
    except RuntimeError as error:
        raise BackendError(
            f"{path}: the state dict does not fit {weights.architecture.callable}: {error}"
        ) from error
    return module.eval()


class TorchStateDictBackend(TorchModuleBackend):
    """A network rebuilt from the bundle's architecture file and state dict."""

    def __init__(
        self,
        description: ModelDescription,
        weights: WeightsEntry,
        path: Path,
        device: str | None = None,
        allow_code: bool = False,
        verify: bool = True,
    ) -> None:
        if not allow_code:
            source = weights.architecture.source if weights.architecture else "?"
            raise BackendError(CODE_REFUSAL.format(source=source))
        resolved = torch_device(device)
        module = build_module(description, weights, path, verify).to(resolved)
        super().__init__(description, weights, module, resolved)


def open_backend(request: OpenRequest) -> TorchStateDictBackend:
    """Rebuild the network (only with ``allow_code=True``) and load it onto its device."""
    set_threads(request.threads)
    return TorchStateDictBackend(
        request.description, request.weights, request.path, request.device, request.allow_code, request.verify
    )
