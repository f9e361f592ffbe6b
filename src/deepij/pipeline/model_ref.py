"""A loaded model found again in any process: what Dask tasks carry instead of a loaded network.

A :class:`ModelRef` names a model by its descriptor and a token. In the process that loaded it, it gives that
:class:`~deepij.pipeline.model.Model` back; in another process (a Dask worker) it loads the model once from
its descriptor and keeps it for the process's life, so a worker never reloads the network per task.
:class:`BackendRef` adds the weights, device, runtime and precision: it is the ``backend`` a lazy tile graph
calls.

Examples
--------
>>> import deepij, pickle
>>> model = deepij.load("examples/nuclei_bundle")
>>> ref = BackendRef.of(model, None, "cpu", "auto")
>>> ref() is model.backend(None, "cpu", "auto")
True
>>> pickle.loads(pickle.dumps(ref))() is model.backend(None, "cpu", "auto")  # as a Dask task carries it
True
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deepij.inference.backends.base import Backend
    from deepij.pipeline.loaded_model import LoadedModel

LOADED: dict[str, LoadedModel] = {}
LOADING = threading.Lock()


# --- the model in every process -------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """A model by where it comes from. In a process that loaded it, the loaded :class:`Model`; anywhere
    else (a Dask worker) it is loaded once from its descriptor and kept for the process's life."""

    descriptor: str
    allow_code: bool
    verify: bool
    token: str
    kind: type
    """The class of the loaded model: a worker makes its copy with it (pickled by name, so this module
    needs no import of the class's own)."""

    @classmethod
    def of(cls, model: LoadedModel) -> ModelRef:
        """The reference of a loaded model (the model is registered in this process under its token)."""
        with LOADING:
            LOADED.setdefault(model.token, model)
        descriptor = str(Path(model.description.descriptor).resolve())
        return cls(descriptor, model.allow_code, model.verify, model.token, type(model))

    def model(self) -> LoadedModel:
        with LOADING:
            model = LOADED.get(self.token)
            if model is None:
                from deepij.bundle import open_bundle

                description = open_bundle(self.descriptor, verify=self.verify)
                model = self.kind(description, allow_code=self.allow_code, verify=self.verify)
                model.token = self.token  # the same model in this process
                LOADED[self.token] = model
            return model


@dataclass(frozen=True)
class BackendRef:
    """The loaded network of a :class:`ModelRef` (what :func:`deepij.inference.lazy.lazy_tiled` calls)."""

    model: ModelRef
    weights_format: str | None
    device: str | None
    runtime: str
    precision: str = "float32"

    @classmethod
    def of(
        cls,
        model: LoadedModel,
        weights_format: str | None,
        device: str | None,
        runtime: str,
        precision: str = "float32",
    ) -> BackendRef:
        return cls(ModelRef.of(model), weights_format, device, runtime, precision)

    def __call__(self) -> Backend:
        return self.model.model().backend(self.weights_format, self.device, self.runtime, self.precision)
