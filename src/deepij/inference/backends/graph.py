"""What every adapter does between the descriptor's tensors and the framework's graph.

Real bundles disagree with their graphs in a few known ways, handled here once for all frameworks:
- names: descriptor tensors are matched to graph inputs/outputs by name (also the graph tensor's other names,
  e.g. a TF1 tensor ``conv2d_19/Sigmoid:0`` behind the signature key ``output``), then by order;
- a batch axis: 0.3 descriptors say ``yxc`` while the graph takes ``NHWC``: one is added on the way in and
  removed on the way out;
- dtypes: inputs are cast to what the graph declares (``uint8`` images into a ``float32`` graph).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deepij.bundle.description import ModelDescription, TensorSpec, WeightsEntry
from deepij.errors import BackendError
from deepij.inference.backends.base import Backend

log = logging.getLogger("deepij.inference.backends")


@dataclass(frozen=True)
class GraphTensor:
    """One input or output of a loaded graph, as the framework describes it.

    ``names`` are every name it answers to (signature key first); ``rank`` and ``dtype`` are None when the
    framework does not say; ``dims`` has an int where the graph fixes a dim, None where it is free (all of
    it None when the framework does not say).
    """

    names: tuple[str, ...]
    rank: int | None = None
    dtype: np.dtype | None = None
    dims: tuple[int | None, ...] | None = None


def _normalized(name: str) -> str:
    name = name.strip().lower()
    return name[:-2] if name.endswith(":0") else name


def match_tensors(
    described: Sequence[TensorSpec], graph: Sequence[GraphTensor], kind: str, weights: str
) -> list[int]:
    """For each described tensor, the index of the graph tensor that carries it.

    Exact names first, then names without a ``:0`` suffix and case; the tensors left unmatched are paired in
    order when as many remain on both sides.

    Examples
    --------
    >>> spec = lambda n: TensorSpec(n, ())
    >>> match_tensors([spec("b"), spec("a")], [GraphTensor(("a",)), GraphTensor(("b:0",))], "input", "onnx")
    [1, 0]
    """
    chosen: list[int | None] = [None] * len(described)
    for rule in (lambda s: s, _normalized):
        for i, spec in enumerate(described):
            if chosen[i] is not None:
                continue
            hits = [
                j
                for j, g in enumerate(graph)
                if j not in chosen and any(rule(n) == rule(spec.name) for n in g.names)
            ]
            if len(hits) == 1:
                chosen[i] = hits[0]
    left_specs = [i for i, c in enumerate(chosen) if c is None]
    left_graph = [j for j in range(len(graph)) if j not in chosen]
    if left_specs:
        if len(left_specs) != len(left_graph):
            raise BackendError(
                f"{weights}: cannot match the description's {kind}s to the graph's "
                f"(described {[s.name for s in described]}, graph has {[g.names[0] for g in graph]}; "
                f"expected the same names, or as many {kind}s on both sides)"
            )
        for i, j in zip(left_specs, left_graph, strict=True):
            chosen[i] = j
        if len(graph) > 1:
            pairs = [
                (described[i].name, graph[j].names[0]) for i, j in zip(left_specs, left_graph, strict=True)
            ]
            log.debug("%s: %ss matched by order: %s", weights, kind, pairs)
    return [c for c in chosen if c is not None]


def add_batch_axis(
    array: np.ndarray, spec: TensorSpec, graph_rank: int | None, torch_like: bool
) -> np.ndarray:
    """Give ``array`` the leading batch axis the graph wants and the descriptor leaves out.

    The graph's rank decides; when the framework does not say (TorchScript), ``torch_like`` adds one,
    because PyTorch networks are written for ``N...`` tensors.
    """
    if "b" in spec.axes_str:
        return array
    wants_batch = graph_rank == array.ndim + 1 if graph_rank is not None else torch_like
    return array[np.newaxis] if wants_batch else array


def drop_batch_axis(array: np.ndarray, spec: TensorSpec, weights: str) -> np.ndarray:
    """Remove a graph's batch axis of size 1 that the descriptor's output axes leave out; check the rank."""
    axes = spec.axes_str
    if "b" not in axes and array.ndim == len(axes) + 1 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != len(axes):
        raise BackendError(
            f"{weights}: output {spec.name!r} came out with shape {tuple(array.shape)} "
            f"(expected {len(axes)} dimensions for axes {axes!r})"
        )
    return array


def check_inputs(inputs: Sequence[np.ndarray], described: Sequence[TensorSpec]) -> None:
    """The right number of inputs, each with as many dimensions as its declared axes."""
    if len(inputs) != len(described):
        raise BackendError(
            f"predict got {len(inputs)} input array(s) (expected {len(described)}: "
            f"{[s.name for s in described]})"
        )
    for array, spec in zip(inputs, described, strict=True):
        if np.ndim(array) != len(spec.axes_str):
            raise BackendError(
                f"input {spec.name!r} has shape {tuple(np.shape(array))} "
                f"(expected {len(spec.axes_str)} dimensions for axes {spec.axes_str!r})"
            )


def as_dtype(array: np.ndarray, dtype: np.dtype | None) -> np.ndarray:
    """``array`` as a C-contiguous array of ``dtype`` (no copy when it already is one)."""
    if dtype is not None and array.dtype != dtype:
        array = array.astype(dtype)
    return np.ascontiguousarray(array)


def fixed_batches(graph_inputs: list[np.ndarray], fixed: int | None) -> list[tuple[list[np.ndarray], int]]:
    """``graph_inputs`` in passes of the batch size a graph fixes (the last one filled up by repeating its
    last sample), each with how many of its samples are real; one pass when nothing is fixed.

    Examples
    --------
    >>> [(c[0].shape[0], kept) for c, kept in fixed_batches([np.zeros((3, 2))], 2)]
    [(2, 2), (2, 1)]
    """
    batch = graph_inputs[0].shape[0] if graph_inputs and graph_inputs[0].ndim else None
    if fixed is None or batch is None or batch == fixed:
        return [(graph_inputs, batch if batch is not None else 1)]
    chunks = []
    for start in range(0, batch, fixed):
        chunk = [a[start : start + fixed] for a in graph_inputs]
        short = fixed - chunk[0].shape[0]
        if short:
            chunk = [np.concatenate([c, np.repeat(c[-1:], short, axis=0)]) for c in chunk]
        chunks.append((chunk, fixed - short))
    return chunks


class GraphBackend(Backend):
    """A backend whose framework runs a graph with known (or assumed) inputs and outputs.

    Subclasses load the graph, then call :meth:`_bind` with the graph's inputs and outputs, and implement
    :meth:`_run` (arrays in graph input order -> arrays in graph output order).
    """

    _torch_like: bool = False

    def __init__(
        self, description: ModelDescription, weights: WeightsEntry, device: str | None = None
    ) -> None:
        super().__init__(description, weights, device)
        self._graph_inputs: list[GraphTensor] = []
        self._input_slots: list[int] = []
        self._output_slots: list[int] = []
        self._fixed_batch: int | None = None

    @property
    def label(self) -> str:
        return f"weights {self.weights.format!r} ({self.weights.source})"

    def _bind(self, graph_inputs: Sequence[GraphTensor], graph_outputs: Sequence[GraphTensor] | None) -> None:
        """Match descriptor tensors to graph tensors. ``graph_outputs`` None: outputs are matched at run
        time from what the framework returns (TorchScript)."""
        self._graph_inputs = list(graph_inputs)
        self._input_slots = match_tensors(self.description.inputs, graph_inputs, "input", self.label)
        if graph_outputs is not None:
            self._output_slots = match_tensors(self.description.outputs, graph_outputs, "output", self.label)
        self._fixed_batch = self._graph_batch()

    def _graph_batch(self) -> int | None:
        """The batch size every graph input fixes (zoo ONNX files often fix 1), else None."""
        sizes = set()
        for spec, slot in zip(self.description.inputs, self._input_slots, strict=True):
            dims = self._graph_inputs[slot].dims
            has_batch = "b" in spec.axes_str and spec.axes_str.index("b") == 0
            if dims and (has_batch or len(dims) == len(spec.axes_str) + 1):
                sizes.add(dims[0])
            else:
                return None
        return sizes.pop() if len(sizes) == 1 and None not in sizes else None

    def graph_dims(self) -> list[tuple[TensorSpec, tuple[int | None, ...] | None]]:
        """Each described input with its graph tensor's dims (None where the framework does not say)."""
        return [
            (spec, self._graph_inputs[slot].dims)
            for spec, slot in zip(self.description.inputs, self._input_slots, strict=True)
        ]

    def graph_feed(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``inputs`` (one per described input, in its axes) as the graph takes them: in graph input order,
        with the batch axis and dtype the graph wants."""
        described = self.description.inputs
        check_inputs(inputs, described)
        graph_inputs: list[np.ndarray | None] = [None] * len(self._graph_inputs)
        for array, spec, slot in zip(inputs, described, self._input_slots, strict=True):
            wanted = self._graph_inputs[slot]
            array = add_batch_axis(np.asarray(array), spec, wanted.rank, self._torch_like)
            graph_inputs[slot] = as_dtype(array, wanted.dtype)
        return graph_inputs  # type: ignore[return-value]

    def predict(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.closed:
            raise BackendError(f"{self.label}: predict called after close()")
        raw = self._run_in_fixed_batches(self.graph_feed(inputs))
        slots = self._output_slots or self._runtime_output_slots(raw)
        return [
            drop_batch_axis(np.asarray(raw[slot]), spec, self.label)
            for spec, slot in zip(self.description.outputs, slots, strict=True)
        ]

    def _run_in_fixed_batches(self, graph_inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One pass, or, when the graph fixes its batch size and the arrays have another, passes of that
        size (the last one filled up by repeating its last sample; the extra results are dropped)."""
        chunks = fixed_batches(graph_inputs, self._fixed_batch)
        if len(chunks) == 1 and chunks[0][0] is graph_inputs:
            return self._run(graph_inputs)
        parts = [[np.asarray(r)[:kept] for r in self._run(chunk)] for chunk, kept in chunks]
        return [np.concatenate(results) for results in zip(*parts, strict=True)]

    def _runtime_output_slots(self, raw: Sequence[np.ndarray]) -> list[int]:
        if len(raw) != len(self.description.outputs):
            raise BackendError(
                f"{self.label}: the network returned {len(raw)} output(s) "
                f"(expected {len(self.description.outputs)}: {[s.name for s in self.description.outputs]})"
            )
        return list(range(len(raw)))

    @abstractmethod
    def _run(self, graph_inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One forward pass on arrays already in the graph's layout, order and dtypes."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description.name!r}, {self.label}, device={self.device!r})"
