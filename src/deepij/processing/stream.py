"""A model's spec processing arranged for a tiled run, so that no processed copy of a whole image is made.

- Inputs: every chain is prepared on the whole raw image (statistics once) and then runs on each tile the
  runner cuts, followed by the cast to the input's declared type. A chain that is not block-safe runs on the
  whole image instead (and that copy is what the run holds in memory).
- Outputs: a chain without statistics (sigmoid, binarize, scale_linear...) runs on each tile result before it
  is written, so outputs are allocated once, in their final type. A chain with statistics
  (zero_mean_unit_variance on an output, scale_range...) runs after stitching, chunk by chunk and in place
  where the type allows. With blending, every output chain runs after stitching (the blend is a weighted sum
  of raw results).
- ``ignore_nan``: statistics leave NaN and infinite pixels out, and those pixels reach the network as 0 (so
  they do not spread through its receptive field); the caller masks them in the outputs again.
- Images bigger than memory: the same arrangement on dask-backed tensors, their statistics taken with Dask
  (``statistics=DaskStats``, :mod:`deepij.inference.lazy_statistics`); output chains after stitching then
  run lazily on the whole (dask) output instead of in place.

Examples
--------
>>> from deepij.bundle import open_bundle
>>> from deepij.inference.backends import load_backend
>>> from deepij.inference.runner import run_tiled
>>> from deepij.inference.tiling import analyse_tiling
>>> description = open_bundle("examples/nuclei_bundle")
>>> image = np.load("examples/nuclei_bundle/test_input.npy")  # (1, 1, 256, 256), uint16 values as float32
>>> raw = {"input": xr.DataArray(image, dims=("b", "c", "y", "x"))}
>>> streamed = stream_processing(description, raw)
>>> sorted(streamed.prepare), streamed.held_bytes  # scale_range runs on each tile: no processed copy
(['input'], 0)
>>> plan = analyse_tiling(description).plan({"input": {"c": 1, "y": 256, "x": 256}}, tile=128)
>>> backend = load_backend(description, "onnx", "cpu")
>>> outputs = run_tiled(backend, plan, streamed.inputs, prepare=streamed.prepare, finish=streamed.finish)
>>> outputs = streamed.post(outputs)
>>> outputs["probability"].shape, outputs["probability"].dtype
((1, 1, 256, 256), dtype('float32'))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from deepij.bundle.description import ModelDescription, TensorSpec
from deepij.processing.chain import Chain, TileTransform, prepare_chain, reads_data
from deepij.processing.spec import declared_dtype
from deepij.processing.statistics import StatsSource

Tensors = dict[str, xr.DataArray]


@dataclass
class StreamedProcessing:
    """What :func:`stream_processing` arranged.

    Attributes
    ----------
    inputs : dict of str to xarray.DataArray
        What the runner receives: the raw image where its chain runs per tile, else the processed image.
    prepare : dict of str to TileTransform
        Per input, the chain (and zero-filling of non-finite pixels) for each tile.
    finish : dict of str to TileTransform
        Per output, the chain and the cast for each tile result.
    held_bytes : int
        Bytes of whole processed inputs the run holds besides the raw images (0 when every chain runs
        per tile).
    statistics : type of StatsSource
        What takes the chains' statistics (see :func:`stream_processing`).
    """

    description: ModelDescription
    raw: Mapping[str, xr.DataArray]
    inputs: Tensors
    prepare: dict[str, TileTransform] = field(default_factory=dict)
    finish: dict[str, TileTransform] = field(default_factory=dict)
    held_bytes: int = 0
    spec_ops: bool = True
    statistics: type[StatsSource] = StatsSource

    def post(self, outputs: Tensors) -> Tensors:
        """The outputs after the post-processing not done per tile, cast to their declared types.

        Every chain is prepared (statistics taken) before any output is changed in place, so a
        ``reference_tensor`` always sees the network's outputs as they came.
        """
        if not self.spec_ops:
            return dict(outputs)  # processing="none": the network's outputs as they are
        pending: dict[str, Chain] = {}
        references = {**self.raw, **outputs}
        for spec in self.description.outputs:
            if spec.name in self.finish:
                continue
            pending[spec.name] = prepare_chain(
                outputs[spec.name],
                spec.processing,
                spec,
                where=f"outputs[{spec.name!r}].postprocessing",
                descriptor=self.description.descriptor,
                references=references,
                statistics=self.statistics,
            )
        result = dict(outputs)
        for spec in self.description.outputs:
            chain = pending.get(spec.name)
            if chain is None:
                continue
            data, dtype = outputs[spec.name], declared_dtype(spec)
            if not chain.steps:
                result[spec.name] = data if dtype is None else data.astype(dtype, copy=False)
            elif chain.block_safe and isinstance(data.data, np.ndarray):
                result[spec.name] = chain.apply_in_place(data, dtype)
            else:  # on the whole output at once (lazily for a dask-backed one)
                done = chain(data).transpose(*data.dims)
                result[spec.name] = done if dtype is None else done.astype(dtype, copy=False)
        return result


def stream_processing(
    description: ModelDescription,
    raw: Mapping[str, xr.DataArray],
    *,
    spec_ops: bool = True,
    ignore_nan: bool = False,
    blend: bool = False,
    statistics: type[StatsSource] = StatsSource,
) -> StreamedProcessing:
    """Prepare a model's spec processing for a tiled run (module notes).

    Parameters
    ----------
    description : ModelDescription
        The model.
    raw : mapping of str to xarray.DataArray
        Per input, the whole image as the model will see it (letter dims, looped dims allowed).
    spec_ops : bool
        False: no ops at all (``processing="none"``); inputs are only cast to their declared type.
    ignore_nan : bool
        Statistics skip non-finite pixels, which reach the network as 0.
    blend : bool
        The run blends overlapping tiles: output chains wait for the stitched outputs.
    statistics : type of StatsSource
        What takes the chains' statistics (:func:`~deepij.processing.chain.prepare_chain`): ``DaskStats``
        for dask-backed images (module notes).
    """
    inputs: Tensors = {}
    prepare: dict[str, TileTransform] = {}
    held = 0
    for spec in description.inputs:
        ops = spec.processing if spec_ops else ()
        chain = prepare_chain(
            raw[spec.name],
            ops,
            spec,
            where=f"inputs[{spec.name!r}].preprocessing",
            descriptor=description.descriptor,
            references=raw,
            ignore_nan=ignore_nan,
            statistics=statistics,
        )
        if chain.block_safe:
            inputs[spec.name] = raw[spec.name]
            if chain.steps or ignore_nan:
                prepare[spec.name] = _tile_input(chain, ignore_nan)
        else:
            whole = chain(raw[spec.name])
            if ignore_nan:
                whole = _whole_zero_non_finite(whole)
            dtype = declared_dtype(spec)
            inputs[spec.name] = whole if dtype is None else whole.astype(dtype, copy=False)
            held += int(inputs[spec.name].nbytes)
    finish: dict[str, TileTransform] = {}
    if spec_ops and not blend:
        referenced = {
            str(op.kwargs.get("reference_tensor"))
            for o in description.outputs
            for op in o.processing
            if op.kwargs and op.kwargs.get("reference_tensor")
        }
        for spec in description.outputs:
            if spec.name not in referenced and not spec.is_table and not reads_data(spec.processing):
                finish[spec.name] = _tile_output(description, spec)
    return StreamedProcessing(description, raw, inputs, prepare, finish, held, spec_ops, statistics)


def _tile_input(chain: Chain, ignore_nan: bool) -> TileTransform:
    transform = chain.tile_transform()

    def prepare(block: np.ndarray, axes: str, sample: Mapping[str, int]) -> np.ndarray:
        done = transform(block, axes, sample) if chain.steps else block
        return _zero_non_finite(done) if ignore_nan else done

    return prepare


def _tile_output(description: ModelDescription, spec: TensorSpec) -> TileTransform:
    """Per-tile post-processing of one output; per-axis values are bound on the first tile (the tile holds
    every channel, so a value per channel binds as on the whole output)."""
    bound: list[Chain] = []
    dtype = declared_dtype(spec)

    def finish(block: np.ndarray, axes: str, sample: Mapping[str, int]) -> np.ndarray:
        data = xr.DataArray(block, dims=tuple(axes))
        if not bound:
            bound.append(
                prepare_chain(
                    data,
                    spec.processing,
                    spec,
                    where=f"outputs[{spec.name!r}].postprocessing",
                    descriptor=description.descriptor,
                )
            )
        done = np.asarray(bound[0](data).values)
        return done if dtype is None else done.astype(dtype, copy=False)

    return finish


def _whole_zero_non_finite(whole: xr.DataArray) -> xr.DataArray:
    """A processed whole image with 0 for its non-finite values: in place for numpy, lazily for dask."""
    if isinstance(whole.data, np.ndarray):
        return xr.DataArray(_zero_non_finite(np.asarray(whole.values)), dims=whole.dims)
    if whole.dtype.kind != "f":
        return whole
    return whole.where(np.isfinite(whole), 0)


def _zero_non_finite(block: np.ndarray) -> np.ndarray:
    if block.dtype.kind != "f":
        return block
    if not block.flags.writeable:
        block = block.copy()
    np.copyto(block, 0, where=~np.isfinite(block))
    return block
