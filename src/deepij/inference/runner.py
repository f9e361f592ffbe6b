"""Run a :class:`~deepij.inference.plan.TilePlan` with any backend, writing into preallocated outputs.

The image stays as it is (no padded copy): each tile is cut from it, mirrored only where it reaches past a
border, so peak memory is the input, the outputs and a few tiles, however many tiles there are.
Axes the model does not take (time, Z for a 2-D model, a batch of several images) are looped over, each
position being one sample planned alike. Several tiles (of one or several samples) can share one forward
pass when the model has a batch axis.

Element-wise processing can run per tile (``prepare`` on each input tile before the network, ``finish``
on each output piece before it is written), so that a run never holds a processed copy of the whole image;
every tile is cast to its input's declared ``data_type`` on the way in.

Every output of every forward pass is checked against the description's shape rule (batch, channels, the
size a tile must give); a network that breaks it raises :class:`~deepij.errors.OutputShapeError` instead of
returning shifted or truncated results.

The work is split so that another scheduler (Dask, threads) can drive it: :meth:`TiledRun.batches` lists the
work, :meth:`TiledRun.run_batch` computes one batch without touching the outputs, and :meth:`TiledRun.write`
puts its results in place.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from deepij.bundle.description import (
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ReferenceSize,
    TensorSpec,
)
from deepij.dask_on_demand import keep_dask_unloaded
from deepij.errors import BackendError, OutputShapeError, TilingError
from deepij.inference.backends.base import Backend
from deepij.inference.grid import mirror_indices
from deepij.inference.plan import Tile, TilePlan

keep_dask_unloaded()  # the runner's DataArrays would import dask otherwise

Progress = Callable[[int, int], None]
TileTransform = Callable[[np.ndarray, str, Mapping[str, int]], np.ndarray]
"""``transform(block, axes, sample)``: a block of one tensor (its axis letters ``axes``, no batch) of the
sample at ``sample`` (looped dim -> index) -> the processed block (it may be changed in place)."""


@dataclass(frozen=True)
class WorkItem:
    """One tile of one sample: ``key`` gives the sample's position along the looped dims."""

    key: tuple[int, ...]
    tile: Tile


def cut_tile(sample: np.ndarray, axes: str, plan: TilePlan, tile: Tile) -> np.ndarray:
    """The tile's window of one sample (axes ``axes``, no batch), mirrored past the borders.

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> from deepij.inference.tiling import analyse_tiling
    >>> plan = analyse_tiling(open_bundle("examples/nuclei_bundle")).plan(
    ...     {"input": {"c": 1, "y": 200, "x": 200}}, tile=128)
    >>> first = next(plan.tiles())
    >>> first.starts  # 24 pixels of halo before the image: mirrored
    (-24, -24)
    >>> cut_tile(np.zeros((1, 200, 200), np.float32), "cyx", plan, first).shape
    (1, 128, 128)
    """
    index: list[slice] = [slice(None)] * sample.ndim
    fancy: dict[int, np.ndarray] = {}
    for k, grid in enumerate(plan.grids):
        position = axes.index(grid.axis)
        start = tile.starts[k]
        if start >= 0 and start + grid.tile <= grid.size:
            index[position] = slice(start, start + grid.tile)
            continue
        rows = mirror_indices(start, grid.tile, grid.size)
        low = int(rows.min())
        index[position] = slice(low, int(rows.max()) + 1)
        fancy[position] = rows - low
    window = sample[tuple(index)]
    for position, rows in fancy.items():
        window = np.take(window, rows, axis=position)
    return window


class TiledRun:
    """One run of a plan over every sample of the inputs.

    Parameters
    ----------
    backend : Backend
        The loaded network.
    plan : TilePlan
        Tiles of one sample.
    inputs : mapping of str to xarray.DataArray
        Per model input, the (pre-processed) image with named dims: the input's axes (batch optional) and
        any dims the model does not take, which are looped over. Other inputs than the plan's must carry
        the same looped dims or none (then they are shared by every sample).
    batch_size : int
        Tiles per forward pass; only models with a batch axis take more than 1 (and only when every image
        output has one too, so that results can be told apart).
    prepare : mapping of str to TileTransform, optional
        Per input name, applied to each tile (or, for inputs given whole, each sample) before the network.
    finish : mapping of str to TileTransform, optional
        Per output name, applied to each piece of a tile result before it is written (not with blending,
        whose weighted sums must be made first).
    """

    def __init__(
        self,
        backend: Backend,
        plan: TilePlan,
        inputs: Mapping[str, xr.DataArray],
        batch_size: int = 1,
        *,
        prepare: Mapping[str, TileTransform] | None = None,
        finish: Mapping[str, TileTransform] | None = None,
    ) -> None:
        self.backend = backend
        self.plan = plan
        self.description: ModelDescription = backend.description
        primary = self.description.input(plan.input) if plan.input else self.description.inputs[0]
        model_axes = [a for a in primary.axes_str if a != "b"]
        self.loop_dims = tuple(str(d) for d in inputs[primary.name].dims if d not in model_axes)
        self.loop_sizes = tuple(inputs[primary.name].sizes[d] for d in self.loop_dims)
        self._samples = {
            spec.name: self._arrange(spec, inputs[spec.name]) for spec in self.description.inputs
        }
        self.batch_size = _effective_batch(primary, self.description.outputs, batch_size)
        if finish and plan.mode == "blend":
            raise TilingError("finish: per-tile post-processing cannot run before blending; expected none")
        self.prepare = dict(prepare or {})
        self.finish = dict(finish or {})
        self.outputs: dict[str, np.ndarray] = {}
        self._out_dims: dict[str, tuple[str, ...]] = {}

    # --- preparing ---------------------------------------------------------------------------------------

    def _arrange(self, spec: TensorSpec, data: xr.DataArray) -> tuple[np.ndarray, bool]:
        """The input as numpy, looped dims first (in the plan input's order), then the model's axes."""
        axes = [a for a in spec.axes_str if a != "b"]
        missing = [a for a in axes if a not in data.dims]
        if missing:
            raise TilingError(f"input {spec.name!r}: no dims {missing} in the image (dims {list(data.dims)})")
        extra = [d for d in data.dims if d not in axes]
        unknown = [d for d in extra if d not in self.loop_dims]
        if unknown:
            raise TilingError(f"input {spec.name!r}: dims {unknown} are not axes of the model input")
        if extra and len(extra) != len(self.loop_dims):
            raise TilingError(
                f"input {spec.name!r}: dims {extra} must be all of {list(self.loop_dims)} or none of them"
            )
        for d in extra:
            expected = self.loop_sizes[self.loop_dims.index(d)]
            if data.sizes[d] != expected:
                raise TilingError(
                    f"input {spec.name!r}: dim {d} has {data.sizes[d]} entries, the other inputs "
                    f"{expected}; expected equal sizes"
                )
        looped = self.loop_dims if extra else ()
        return np.asarray(data.transpose(*looped, *axes).data), bool(extra)

    # --- the work ----------------------------------------------------------------------------------------

    def items(self) -> list[WorkItem]:
        """Every (sample, tile) pair, sample by sample."""
        tiles = list(self.plan.tiles())
        keys = itertools.product(*(range(n) for n in self.loop_sizes))
        return [WorkItem(key, tile) for key in keys for tile in tiles]

    def batches(self) -> list[list[WorkItem]]:
        """The items grouped by forward pass."""
        work = self.items()
        return [work[i : i + self.batch_size] for i in range(0, len(work), self.batch_size)]

    def run_batch(self, items: Sequence[WorkItem]) -> list[dict[str, np.ndarray]]:
        """One forward pass over ``items``; returns, per item, each output's tile result (no batch axis).

        Touches nothing but the backend: safe to call from another scheduler.
        """
        arrays = [self._batch_input(spec, items) for spec in self.description.inputs]
        try:
            results = self.backend.predict(arrays)
        except (BackendError, TilingError):
            raise
        except Exception as error:
            raise BackendError(f"model {self.description.name!r}: forward pass failed: {error}") from error
        if len(results) != len(self.description.outputs):
            raise BackendError(
                f"model {self.description.name!r}: the network gave {len(results)} outputs, the description "
                f"lists {len(self.description.outputs)}"
            )
        fed = {spec.name: array for spec, array in zip(self.description.inputs, arrays, strict=True)}
        per_item: list[dict[str, np.ndarray]] = [{} for _ in items]
        for spec, result in zip(self.description.outputs, results, strict=True):
            result = np.asarray(result)
            self._check_output(spec, result, fed)
            for i in range(len(items)):
                per_item[i][spec.name] = _take_sample(result, spec.axes_str, i)
        return per_item

    def _check_output(self, spec: TensorSpec, result: np.ndarray, fed: Mapping[str, np.ndarray]) -> None:
        """Raise OutputShapeError when one pass's output contradicts the description's shape rule."""
        if result.ndim != len(spec.axes):
            raise OutputShapeError(
                f"output {spec.name!r}: the network gave {result.ndim} dims {result.shape}, the "
                f"description declares {len(spec.axes)} (axes {spec.axes_str!r})"
            )
        for axis, actual in zip(spec.axes, result.shape, strict=True):
            declared = self._declared_size(spec, axis.id, fed)
            if declared is None:
                continue
            expected, rule = declared
            if not expected(actual):
                raise OutputShapeError(
                    f"output {spec.name!r} axis {axis.id}: the network gave {actual} but the description "
                    f"declares {rule} for this pass (inputs {_shapes_text(fed, self.description)}); "
                    f"output shape {result.shape}, axes {spec.axes_str!r}"
                )

    def _declared_size(
        self, spec: TensorSpec, letter: str, fed: Mapping[str, np.ndarray]
    ) -> tuple[Callable[[int], bool], str] | None:
        """(test of an actual size, the declared rule in words) for one output axis of one pass."""
        if letter == "b":
            # The batch holds what was fed (an offset on it, as some 0.3 files carry, means nothing); an
            # output with a batch axis its input lacks gets one of 1.
            primary = self.description.input(self.plan.input) if self.plan.input else None
            if primary is None or "b" not in primary.axes_str:
                return (lambda n: n == 1), "a batch of 1 (the input has no batch axis)"
            fed_batch = fed[primary.name].shape[primary.axes_str.index("b")]
            return (lambda n: n == fed_batch), f"the batch fed ({fed_batch})"
        mapped = self.plan.outputs[spec.name].maps.get(letter)
        if mapped is not None:
            k = self.plan.axes.index(mapped.input_axis)
            size = mapped.tile_size(self.plan.grids[k].tile)
            return (lambda n: n == size), (
                f"{size} (input {mapped.input_axis} {self.plan.grids[k].tile} * {mapped.scale:g} "
                f"{2 * mapped.offset:+g})"
            )
        rule = spec.axis(letter).size
        if isinstance(rule, FixedSize):
            return (lambda n: n == rule.value), f"exactly {rule.value}"
        if isinstance(rule, ParameterizedSize):
            text = f"exactly {rule.min}" if rule.step == 0 else f"{rule.min} + k*{rule.step}"
            return rule.is_valid, text
        if isinstance(rule, ReferenceSize):
            source = next((s for s in self.description.inputs if s.name == rule.tensor), None)
            if source is None or rule.axis not in source.axes_str:
                return None
            reference = fed[source.name].shape[source.axes_str.index(rule.axis)]
            size = rule.size_for(reference)
            return (lambda n: n == size), (
                f"{size} ({rule.tensor}.{rule.axis} {reference} * {rule.scale:g} {rule.offset:+g})"
            )
        return None

    def _batch_input(self, spec: TensorSpec, items: Sequence[WorkItem]) -> np.ndarray:
        array, looped = self._samples[spec.name]
        axes = "".join(a for a in spec.axes_str if a != "b")
        windowed = spec.name in self.plan.windowed
        transform = self.prepare.get(spec.name)
        dtype = _declared_dtype(spec, array.dtype)
        pieces = []
        for item in items:
            sample = array[item.key] if looped else array
            piece = cut_tile(sample, axes, self.plan, item.tile) if windowed else sample
            if transform is not None:  # on a float copy: the tile may be a view of the caller's image
                work = piece.dtype if piece.dtype.kind == "f" else np.dtype(np.float32)
                piece = transform(np.array(piece, dtype=work), axes, self._position(item.key))
            pieces.append(np.asarray(piece, dtype=dtype))
        rule = spec.axis("b").size if "b" in spec.axes_str else None
        rule = rule if isinstance(rule, (FixedSize, ParameterizedSize)) else None
        while rule is not None and not rule.is_valid(len(pieces)) and len(pieces) < self.batch_size:
            pieces.append(pieces[-1])  # a batch axis of fixed size: fill up, the extra results are dropped
        if "b" not in spec.axes_str:
            return np.ascontiguousarray(pieces[0])
        return np.stack(pieces, axis=spec.axes_str.index("b"))

    def _position(self, key: tuple[int, ...]) -> dict[str, int]:
        return dict(zip(self.loop_dims, key, strict=True))

    def write(self, item: WorkItem, results: Mapping[str, np.ndarray]) -> None:
        """Put one item's tile results in place in the outputs (allocated on the first call)."""
        for spec in self.description.outputs:
            result = results[spec.name]
            if spec.name not in self.outputs:
                self._allocate(spec, result, item.key)
            target, piece, weights = self.valid_piece(item, spec, result)
            array = self.outputs[spec.name]
            if weights is None:
                array[target] = piece
            else:
                array[target] += piece * weights.astype(array.dtype)

    def valid_piece(
        self, item: WorkItem, spec: TensorSpec, result: np.ndarray
    ) -> tuple[tuple, np.ndarray, np.ndarray | None]:
        """(where it goes in the whole output, the piece, its blending weights or None) for one item's
        tile result of output ``spec``: the tile's valid region, per-tile post-processing applied."""
        dest, source = self.plan.output_regions(item.tile, spec.name)
        piece = result[source]
        transform = self.finish.get(spec.name)
        if transform is not None:
            piece = self._finished(transform, piece, spec, item.key)
        return self._target(spec, item.key, dest), piece, self.plan.blend_weights(item.tile, spec.name)

    def _finished(
        self, transform: TileTransform, piece: np.ndarray, spec: TensorSpec, key: tuple[int, ...]
    ) -> np.ndarray:
        # The piece keeps the output's batch axis (size 1); the transform sees the axes without it.
        if "b" in spec.axes_str:
            b = spec.axes_str.index("b")
            axes = spec.axes_str.replace("b", "")
            done = transform(np.array(np.squeeze(piece, axis=b)), axes, self._position(key))
            return np.expand_dims(done, b)
        return transform(np.array(piece), spec.axes_str, self._position(key))

    def _target(self, spec: TensorSpec, key: tuple[int, ...], dest: tuple[slice, ...]) -> tuple:
        """Index in the full output: looped dims in front, a looped batch dim in the output's own b axis."""
        lead: list[int] = []
        batch = 0
        for dim, k in zip(self.loop_dims, key, strict=True):
            if dim == "b" and "b" in spec.axes_str:
                batch = k
            else:
                lead.append(k)
        # The tile result keeps its batch axis (size 1): address it by a one-element slice.
        inner = [slice(batch, batch + 1) if a == "b" else d for a, d in zip(spec.axes_str, dest, strict=True)]
        return (*lead, *inner)

    def _allocate(self, spec: TensorSpec, first: np.ndarray, key: tuple[int, ...]) -> None:
        dtype = first.dtype
        transform = self.finish.get(spec.name)
        if transform is not None:  # the dtype the per-tile post-processing makes (binarize: bool)
            probe = np.zeros((1,) * len(spec.axes_str), dtype=first.dtype)
            dtype = self._finished(transform, probe, spec, key).dtype
        dims, shape, dtype = self.output_layout(spec, first.shape, dtype)
        self.outputs[spec.name] = np.zeros(shape, dtype=dtype)
        self._out_dims[spec.name] = dims

    def output_layout(
        self, spec: TensorSpec, tile_shape: Sequence[int], dtype: np.dtype
    ) -> tuple[tuple[str, ...], tuple[int, ...], np.dtype]:
        """(dims, shape, dtype) of the whole output ``spec``, from the shape of one tile result of it and
        the type its pieces have: looped dims first, then the output's axes; float with blending."""
        out_plan = self.plan.outputs[spec.name]
        lead_dims = [d for d in self.loop_dims if not (d == "b" and "b" in spec.axes_str)]
        lead_sizes = [self.loop_sizes[self.loop_dims.index(d)] for d in lead_dims]
        shape = []
        for letter, size in zip(spec.axes_str, tile_shape, strict=True):
            if letter == "b":
                shape.append(self.loop_sizes[self.loop_dims.index("b")] if "b" in self.loop_dims else 1)
            else:
                shape.append(out_plan.sizes.get(letter, size))
        if self.plan.mode == "blend":
            dtype = np.result_type(dtype, np.float32)
        return (*lead_dims, *spec.axes_str), (*lead_sizes, *shape), np.dtype(dtype)

    def run(self, progress: Progress | None = None) -> dict[str, xr.DataArray]:
        """Run every batch in order and return the outputs as xarray (dims: looped dims, then output axes)."""
        batches = self.batches()
        for done, items in enumerate(batches, start=1):
            for item, results in zip(items, self.run_batch(items), strict=False):
                self.write(item, results)
            if progress is not None:
                progress(done, len(batches))
        return {name: xr.DataArray(array, dims=self._out_dims[name]) for name, array in self.outputs.items()}


def _take_sample(result: np.ndarray, axes: str, i: int) -> np.ndarray:
    if "b" not in axes:
        return result
    b = axes.index("b")
    return np.take(result, [i], axis=b)


def _shapes_text(fed: Mapping[str, np.ndarray], description: ModelDescription) -> str:
    return ", ".join(
        f"{s.name!r} {s.axes_str} {tuple(fed[s.name].shape)}" for s in description.inputs if s.name in fed
    )


def _declared_dtype(spec: TensorSpec, found: np.dtype) -> np.dtype:
    """What the network gets: the declared ``data_type`` (float32 when none is declared)."""
    try:
        return np.dtype(spec.data_type or "float32")
    except TypeError:
        return np.dtype(found)


def _effective_batch(primary: TensorSpec, outputs: Sequence[TensorSpec], requested: int) -> int:
    """The tiles per pass the model's batch axis accepts, at least 1 and at most ``requested`` if it can.

    1 when the input has no batch axis, or an image output has none (its results could not be split).
    """
    if isinstance(requested, bool) or not isinstance(requested, (int, np.integer)) or requested < 1:
        raise TilingError(f"batch_size: expected a positive integer, not {requested!r}")
    if "b" not in primary.axes_str or any("b" not in o.axes_str for o in outputs):
        return 1
    rule = primary.axis("b").size
    if isinstance(rule, FixedSize):
        return rule.value
    if isinstance(rule, ParameterizedSize):
        if rule.is_valid(requested):
            return int(requested)
        return rule.smallest_at_least(requested) or rule.min
    return int(requested)  # any size (no rule, or a reference to another tensor's batch)


def run_tiled(
    backend: Backend,
    plan: TilePlan,
    inputs: Mapping[str, xr.DataArray],
    *,
    batch_size: int = 1,
    progress: Progress | None = None,
    prepare: Mapping[str, TileTransform] | None = None,
    finish: Mapping[str, TileTransform] | None = None,
) -> dict[str, xr.DataArray]:
    """Run a model over every tile of every sample and return the stitched outputs.

    Parameters
    ----------
    backend : Backend
        The loaded network (see :func:`deepij.inference.backends.load_backend`).
    plan : TilePlan
        From :meth:`deepij.inference.tiling.ModelTiling.plan`, for one sample of ``inputs``.
    inputs : mapping of str to xarray.DataArray
        Per model input, the image with named dims (module notes).
    batch_size : int
        Tiles per forward pass (models with a batch axis).
    progress : callable, optional
        Called as ``progress(done, total)`` after each forward pass.
    prepare, finish : mapping of str to TileTransform, optional
        Per-tile processing of inputs and outputs (see :class:`TiledRun`).

    Returns
    -------
    dict of str to xarray.DataArray
        Per output, dims = looped dims (except a batch dim the output has) followed by the output's axes.

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> from deepij.inference.backends import load_backend
    >>> from deepij.inference.tiling import analyse_tiling
    >>> description = open_bundle("examples/nuclei_bundle")
    >>> backend = load_backend(description, "onnx", "cpu")
    >>> plan = analyse_tiling(description).plan({"input": {"c": 1, "y": 200, "x": 200}}, tile=128)
    >>> image = np.random.default_rng(0).random((1, 1, 200, 200), np.float32)
    >>> outputs = run_tiled(backend, plan, {"input": xr.DataArray(image, dims=("b", "c", "y", "x"))})
    >>> plan.n_tiles, outputs["probability"].dims, outputs["probability"].shape
    (9, ('b', 'c', 'y', 'x'), (1, 1, 200, 200))
    """
    return TiledRun(backend, plan, inputs, batch_size, prepare=prepare, finish=finish).run(progress)
