"""The one interface every framework adapter implements.

A backend wraps one loaded network. It knows nothing of tiling, processing or ImageJ: it takes one array per
model input, laid out exactly in that input's declared axes (``TensorSpec.axes_str``, batch included when the
descriptor has a ``b`` axis), and returns one array per model output, laid out in that output's declared axes.
Framework quirks (a graph that wants a batch axis the descriptor omits, TF signature names, dtype casts,
device transfers) stay inside the adapter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepij.bundle.description import ModelDescription, WeightsEntry


class Backend(ABC):
    """A loaded network, ready to run many times.

    Parameters
    ----------
    description : ModelDescription
        The model the weights belong to.
    weights : WeightsEntry
        The weights entry to load (its files already checked and, for TF, unpacked).
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...; None picks a GPU when the framework sees one.
    """

    runtime: str = "unknown"
    """What runs the network: ``"onnxruntime"``, ``"openvino"``, ``"torch"``, ``"tensorflow"`` or ``"keras"``.
    It can differ from the weights' own framework (torch weights converted to ONNX run with ``onnxruntime``
    or ``openvino``); ``weights.format`` says which weights were loaded."""

    def __init__(
        self, description: ModelDescription, weights: WeightsEntry, device: str | None = None
    ) -> None:
        self.description = description
        self.weights = weights
        self.device = device or "cpu"
        self.notes: list[str] = []
        """What loading did that a user may want to know: entries skipped and why, an engine switch."""
        self.figures: dict[str, float] = {}
        """Timings measured at load (seconds per probe pass of each runtime tried), when any."""
        self.closed = False

    @abstractmethod
    def predict(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run the network once.

        Parameters
        ----------
        inputs : sequence of ndarray
            One per ``description.inputs``, in that order and in that tensor's axes.

        Returns
        -------
        list of ndarray
            One per ``description.outputs``, in that order and in that tensor's axes.
        """

    def hold_memory_exactly(self, exact: bool) -> bool:
        """Make the engine's memory follow what each pass needs (``exact``, for runs under a memory cap)
        or let it keep the faster pool it has by default. Returns True when that changed the engine (memory
        measured before no longer holds); engines whose memory already follows their passes return False.
        """
        return False

    def close(self) -> None:
        """Release the framework's resources (sessions, GPU memory). The backend is unusable after."""
        self.closed = True

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class OpenRequest:
    """What every adapter module's ``open_backend(request) -> Backend`` receives.

    Attributes
    ----------
    description, weights : ModelDescription, WeightsEntry
        The model and the weights entry to load.
    path : Path
        The entry's local file, or the unpacked SavedModel folder (already checked).
    device : str or None
        The device asked for; None lets the adapter pick a GPU when its framework sees one.
    allow_code : bool
        Whether the bundle's Python code (architectures, Keras Lambda layers) may run.
    threads : int or None
        CPU threads for the framework, where it can be set per model.
    verify : bool
        Check further files the entry names (an architecture file) against their sha256.
    """

    description: ModelDescription
    weights: WeightsEntry
    path: Path
    device: str | None = None
    allow_code: bool = False
    threads: int | None = None
    verify: bool = True
