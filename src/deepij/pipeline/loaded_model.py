"""What the modules below :mod:`deepij.pipeline.model` use of a loaded model, as a protocol.

The lazy path (:mod:`deepij.pipeline.lazy_predict`) and the references Dask tasks carry
(:mod:`deepij.pipeline.model_ref`) are called by :class:`~deepij.pipeline.model.Model` and work on the model
that called them: typing them with this protocol instead of the class keeps them below it (no import
circle), and says what they rely on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from deepij.bundle.description import ModelDescription
    from deepij.inference.backends.base import Backend
    from deepij.inference.tiling import ModelTiling
    from deepij.pipeline.outputs import Prediction


class LoadedModel(Protocol):
    """A bundle read and ready to run (:class:`deepij.pipeline.model.Model` is the one implementation)."""

    description: ModelDescription
    allow_code: bool
    verify: bool
    token: str
    measurements: Any
    instance_plan: Any

    @property
    def predict(self) -> Callable[..., Prediction]: ...

    @property
    def name(self) -> str: ...

    @property
    def tiling(self) -> ModelTiling: ...

    def tiling_for(self, backend: Backend) -> ModelTiling: ...

    def backend(
        self,
        weights_format: str | None = None,
        device: str | None = None,
        runtime: str = "auto",
        precision: str = "float32",
        *,
        threads: int | None = None,
    ) -> Backend: ...

    def close(self) -> None: ...
