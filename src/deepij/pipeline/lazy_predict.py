"""``model.predict`` on an image bigger than memory: a dask array, a dask-backed DataArray, or a Zarr /
OME-Zarr path. The result is lazy: its images are dask arrays computed tile by tile
(:mod:`deepij.inference.lazy`), to be written chunk by chunk (:func:`deepij.pipeline.zarr_io.write_ome_zarr`)
or computed in parts.

- Spec ops: statistics are taken with Dask over the whole image first (exact mean/std and percentiles,
  :mod:`deepij.inference.lazy_statistics`); element-wise chains then run on each tile, output chains without
  statistics on each tile result. An output chain with statistics reads the network's whole output, so the
  network runs twice for it (once for the statistics, once for the values).
- ImageJ steps need the whole image in one JVM. An image that fits in memory (``max_memory``, else the RAM
  available) is read and run the ordinary way; a larger one is refused with an
  :class:`~deepij.errors.InputError` that says so and what to do.
- ``tile=None`` takes the tiles the in-memory run would take on this machine, within a worker's memory;
  tasks run rows or blocks of the input's chunk grid, many tiles each (:mod:`deepij.pipeline.lazy_plan`).
  An image small enough for one pass runs in one pass, as in memory.
- ``non_finite``: as in memory (:meth:`~deepij.pipeline.model.Model.predict`). ``"raise"`` counts NaN/inf
  pixels (the same error) in the statistics' first read, or in a read of its own when there are no
  statistics to take (:mod:`deepij.inference.lazy_reads`); ``"ignore"`` reads the image once for the mask,
  its statistics leave those pixels out and the outputs are NaN there (:mod:`deepij.pipeline.non_finite`);
  ``"propagate"`` reads nothing ahead.
- A plain Zarr array or a dask array without dim names is named as a numpy array is (the input's own axis
  order, ``axes=`` for others).

Examples
--------
The demo bundle on a Zarr store of its sample image (the spec's ops; its ImageJ steps need the whole image):

>>> import tempfile
>>> import tifffile
>>> import xarray as xr
>>> import deepij
>>> from deepij.pipeline.zarr_io import write_ome_zarr
>>> folder = tempfile.mkdtemp()
>>> nuclei = xr.DataArray(tifffile.imread("examples/nuclei_bundle/sample_input.tif"), dims=("y", "x"))
>>> store = write_ome_zarr(nuclei.chunk(128), f"{folder}/nuclei.ome.zarr")
>>> result = deepij.load("examples/nuclei_bundle").predict(store, processing="spec")
>>> result.images["probability"].data  # doctest: +ELLIPSIS
dask.array<deepij-output-probability, shape=(1, 1, 256, 256), dtype=float32, ...>
>>> write_ome_zarr(result.images["probability"], f"{folder}/out.ome.zarr").name
'out.ome.zarr'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from deepij.errors import InputError
from deepij.inference.lazy_statistics import is_lazy

if TYPE_CHECKING:
    from deepij.bundle.description import ModelDescription, TensorSpec
    from deepij.pipeline.loaded_model import LoadedModel
    from deepij.pipeline.outputs import Prediction

IMAGEJ_COPIES = 3
"""Copies of an image (as float32) an ImageJ run holds at once: the Python image, the ImagePlus, an output."""


def is_lazy_input(image: Any) -> bool:
    """Whether ``predict`` should run lazily: a dask array, a dask-backed DataArray, a Zarr path or a Zarr
    array (or a mapping of inputs holding one)."""
    from deepij.pipeline.zarr_io import is_zarr

    if isinstance(image, Mapping):
        return any(is_lazy_input(v) for v in image.values())
    return is_zarr(image) or is_lazy(image) or _is_zarr_array(image)


def _is_zarr_array(image: Any) -> bool:
    return type(image).__module__.startswith("zarr.") and hasattr(image, "shape") and hasattr(image, "dtype")


def predict_lazy(model: LoadedModel, image: Any, **options: Any) -> Prediction:
    """:meth:`Model.predict` for a lazy image (module notes); ``options`` are predict's."""
    from deepij.pipeline.predict_parts import check_arguments
    from deepij.pipeline.steps import choose_mode

    mode = check_arguments(
        options["tile"], options["tiling"], options["overlap"], options["batch_size"],
        options["max_memory"], options["non_finite"], options["axes"], options["precision"],
    )
    images, title = _lazy_images(image, model.description, options["axes"])
    processing = choose_mode(model.description, options["processing"])
    if processing == "macros":
        return _in_memory(model, images, title, options)
    return _run_lazy(model, images, title, processing, mode, options)


def _lazy_images(
    image: Any, description: ModelDescription, axes: str | Mapping[str, str] | None
) -> tuple[dict[str, xr.DataArray], str]:
    """Per input, the image as a lazy DataArray with letter dims; and the input's title."""
    import dask.array as da

    from deepij.pipeline.sources import name_array, to_letters
    from deepij.pipeline.zarr_io import is_zarr, read_zarr, zarr_array_image

    specs = description.inputs
    given = dict(image) if isinstance(image, Mapping) else {specs[0].name: image}
    if len(specs) != len(given) or set(given) != {s.name for s in specs}:
        raise InputError(
            f"image: model {description.name!r} has inputs {[s.name for s in specs]}; expected one image "
            f"for each (found {sorted(given)})"
        )
    per_input = axes if isinstance(axes, Mapping) else {s.name: axes for s in specs}
    images, titles = {}, []
    for spec in specs:
        item, letters = given[spec.name], per_input.get(spec.name)
        argument = f"image[{spec.name!r}]"
        if is_zarr(item):
            named = read_zarr(item, axes=letters, spec=spec, argument=argument)
        elif _is_zarr_array(item):
            named = zarr_array_image(item, axes=letters, spec=spec, argument=argument)
        elif isinstance(item, xr.DataArray) and letters is None:
            named = to_letters(item, argument=argument)
        else:  # an array, or a DataArray with axes= (as in memory: named by the numpy rule)
            values = item.data if isinstance(item, xr.DataArray) else item
            data = values if isinstance(values, da.Array) else da.from_array(np.asarray(values))
            # Name the dims by the numpy rule on a zero-byte stand-in (the image itself is not read).
            stand_in = np.broadcast_to(np.zeros((), dtype=data.dtype), data.shape)
            named = xr.DataArray(data, dims=name_array(stand_in, spec, letters, argument=argument).dims)
        if not is_lazy(named):
            named = named.chunk()
        images[spec.name] = named
        titles.append(str(named.name) if named.name is not None else "image")
    return images, titles[0]


def _memory_limit(max_memory: int | str | None) -> int:
    from deepij.inference.meters import available_memory
    from deepij.sizes import parse_memory_size

    return parse_memory_size(max_memory) if max_memory is not None else available_memory("cpu")


def _in_memory(
    model: LoadedModel, images: dict[str, xr.DataArray], title: str, options: dict[str, Any]
) -> Prediction:
    """ImageJ steps: the whole image in one JVM, when it fits."""
    from deepij.sizes import format_bytes

    needed = sum(int(i.size) * 4 for i in images.values()) * IMAGEJ_COPIES
    limit = _memory_limit(options["max_memory"])
    if needed > limit:
        shapes = {n: dict(i.sizes) for n, i in images.items()}
        raise InputError(
            f"image: model {model.name!r} processes its images in ImageJ, which needs the whole image in one "
            f"JVM: an image of {shapes} needs about {format_bytes(needed)} there ({IMAGEJ_COPIES} float32 "
            f"copies) but the memory limit is {format_bytes(limit)}. Run its spec ops instead "
            "(processing='spec', or deepij run --processing spec) if the bundle declares them, or cut the "
            "image into parts that fit, or raise max_memory on a machine with more memory"
        )
    computed = {
        n: xr.DataArray(np.asarray(i.data), dims=i.dims, attrs=i.attrs, name=i.name)
        for n, i in images.items()
    }
    single = next(iter(computed.values())) if len(computed) == 1 else computed
    prediction = model.predict(single, **{**options, "input_title": options["input_title"] or title})
    prediction.notes.append("a lazy image with ImageJ steps: read whole (it fits in memory), run in ImageJ")
    return prediction


def _run_lazy(
    model: LoadedModel,
    images: dict[str, xr.DataArray],
    title: str,
    processing: str,
    mode: Any,
    options: dict[str, Any],
) -> Prediction:
    from deepij.inference.lazy import lazy_tiled
    from deepij.inference.lazy_reads import riding
    from deepij.inference.lazy_statistics import DaskStats
    from deepij.pipeline.lazy_plan import plan_lazy
    from deepij.pipeline.model_ref import BackendRef
    from deepij.pipeline.non_finite import mask_outputs, non_finite_mask
    from deepij.pipeline.predict_parts import make_prediction, with_step_outputs
    from deepij.pipeline.progress import Reporter
    from deepij.pipeline.sources import Calibration, Source
    from deepij.pipeline.steps import Chain
    from deepij.processing.stream import stream_processing

    description = model.instance_plan.network  # instance ops (refused before) leave what the network gives
    engine = (options["weights_format"], options["device"], options["runtime"], options["precision"])
    ignore = options["non_finite"] == "ignore"
    with Reporter(model.name, options["progress"], options["logging"]):
        chain = Chain(description, processing, None, None)
        source = Source(images, options["input_title"] or title, Calibration.of(next(iter(images.values()))))
        named = chain.pre(source)
        checks = _non_finite_checks(named, description, options["non_finite"])
        raw = {s.name: _lazy_tensor(named[s.name], s) for s in description.inputs}
        # Statistics with Dask over the whole image (the NaN/inf count in the same read); what is
        # element-wise runs on each tile.
        with riding([rider for _, rider in checks]):
            streamed = stream_processing(
                description, raw, spec_ops=processing == "spec", ignore_nan=ignore, blend=mode == "blend",
                statistics=DaskStats,
            )
        _raise_non_finite(named, checks)  # before the network loads, as in memory
        backend = model.backend(*engine)
        notes = list(getattr(backend, "notes", []))
        found = non_finite_mask(model.tiling, description, raw) if ignore else None
        cut = plan_lazy(model, backend, streamed.inputs, options, mode, notes)
        plan, batch = cut.plan, cut.batch
        outputs = lazy_tiled(
            BackendRef.of(model, *engine), plan, streamed.inputs, batch_size=batch, prepare=streamed.prepare,
            finish=streamed.finish, block=cut.block,
        )
        outputs = mask_outputs(streamed.post(outputs), plan, found, notes)
        notes.append(f"lazy run: {plan.n_tiles} tiles per sample, output chunks follow the input's")
        finished = chain.post(outputs, raw, spec_applied=True)
        prediction = make_prediction(description, finished.tensors, plan, batch, backend, notes + chain.notes)
        return with_step_outputs(prediction, finished, chain, source.title, description)


def _non_finite_checks(
    images: Mapping[str, xr.DataArray], description: ModelDescription, non_finite: str
) -> list[tuple[TensorSpec, Any]]:
    """For ``non_finite="raise"``, per floating-point input, the count of its NaN/inf pixels, waiting to join
    the first statistics read (:mod:`deepij.inference.lazy_reads`)."""
    from deepij.inference.lazy_reads import Rider
    from deepij.inference.lazy_statistics import non_finite_count

    if non_finite != "raise":
        return []
    checks = []
    for spec in description.inputs:
        counting = non_finite_count(images[spec.name].data)
        if counting is not None:
            checks.append((spec, Rider(counting)))
    return checks


def _raise_non_finite(images: Mapping[str, xr.DataArray], checks: list[tuple[TensorSpec, Any]]) -> None:
    """The in-memory run's error for the first input holding NaN/inf pixels
    (:func:`deepij.inference.arrays.non_finite_error`)."""
    from deepij.inference.arrays import non_finite_error

    for spec, rider in checks:
        count, first, value = rider.result()
        if count:
            dims = [str(d) for d in images[spec.name].dims]
            raise non_finite_error(f"image[{spec.name!r}]", count, dims, first, value)


def _lazy_tensor(image: xr.DataArray, spec: TensorSpec) -> xr.DataArray:
    """The image as the input's tensor: the size-1 axes it lacks added (batch, one channel), its type and
    sizes checked as an in-memory image's are, with the same errors
    (:func:`deepij.inference.arrays.check_values`; its NaN/inf pixels are counted apart,
    :func:`_non_finite_checks`)."""
    from deepij.inference.arrays import check_values

    argument, dims = f"image[{spec.name!r}]", [str(d) for d in image.dims]
    stand_in = np.broadcast_to(np.zeros((), dtype=image.dtype), image.shape)  # what dtype and sizes say
    check_values(stand_in, dims, spec, argument, "propagate")
    for axis in spec.axes:
        if axis.id not in image.dims:
            if axis.id in "zyx":
                raise InputError(
                    f"image[{spec.name!r}]: input {spec.name!r} needs axis {axis.id!r} (axes "
                    f"{spec.axes_str!r}); the image has dims {list(image.dims)}"
                )
            image = image.expand_dims(axis.id)
    order = [a for a in spec.axes_str if a in image.dims]
    return image.transpose(*[d for d in image.dims if d not in order], *order)
