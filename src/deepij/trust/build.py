"""``deepij.build(...)``: package a trained network as a bundle deepImageJ 2.x and the BioImage Model Zoo
both run.

What is written (one folder, and the same files at the root of ``<folder>.zip``):

- ``rdf.yaml``: a 0.5 descriptor with ``config.deepimagej`` (the prediction macros, ``test_information``
  with the example's size, the measured memory peak and runtime) and ``config.deepij.built_by``;
- the weights with their sha256 (:mod:`.build_sources`), and for torch networks an ONNX copy when it
  reproduces torch's outputs on the example and on another size;
- the pre/post-processing: the macros given, or a named normalisation written as a deepImageJ-style macro
  together with the spec op of the same formula (:mod:`.build_macros`);
- ``exampleImage.tif`` and ``resultImage.tif`` (and ``resultTable.csv`` when post-processing leaves a
  table): the example through the bundle as deepImageJ runs it (macros in ImageJ, deepImageJ's default
  tile); ``test_input.npy`` / ``test_output.npy``: what the zoo's tools reproduce (spec ops and network,
  the image as it is) (:mod:`.build_write`);
- ``README.md`` and ``cover.png``.

The tiling fields (``min``, ``step``, halo) are measured on the network (:mod:`.build_tiling`). The
bundle is built in a staging folder and renamed into place; ``overwrite`` replaces only a bundle deepij
built (:mod:`.build_place`).

Examples
--------
>>> import numpy as np, tempfile, torch
>>> net = torch.nn.Conv2d(1, 1, 5, padding=2)  # a receptive radius of 2
>>> folder = Path(tempfile.mkdtemp())
>>> built = build(net, folder / "bundle", example=np.ones((32, 32), np.float32), name="tiny", zip=False)
>>> built.receptive_radius, built.description.inputs[0].axis("y").size, built.weights
({'y': 2, 'x': 2}, ParameterizedSize(min=5, step=1), ('torchscript', 'onnx'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepij.trust.build_args import (
    axes_asked,
    channel_count,
    checked_metadata,
    example_array,
    layout_of,
    stats_axes,
)
from deepij.trust.build_macros import steps_from, write_step
from deepij.trust.build_place import STAGING_PREFIX, check_target, move_into_place, remove_staging
from deepij.trust.build_sources import write_weights
from deepij.trust.build_tiling import probe_network, tiling_fields
from deepij.trust.build_types import BuildRequest, BuiltBundle, BundleSpec
from deepij.trust.build_write import finish, run_example


def build(
    model: Any,
    output: str | Path,
    *,
    example: Any,
    name: str,
    description: str = "",
    axes: str | None = None,
    output_axes: str | Sequence[str] | None = None,
    input_name: str | None = None,
    output_names: Sequence[str] | None = None,
    preprocessing: str | Path | Sequence[str | Path] | None = None,
    postprocessing: str | Path | Sequence[str | Path] | None = None,
    percentiles: tuple[float, float] = (1.0, 99.8),
    halo: int | None = None,
    min_size: int | None = None,
    allow_tiling: bool = True,
    authors: Sequence[str | Mapping[str, str]] | None = None,
    license: str = "CC-BY-4.0",
    cite: Sequence[Mapping[str, str]] | None = None,
    tags: Sequence[str] = (),
    version: str = "0.1.0",
    onnx: bool | str = "auto",
    tensorflow_tag: str = "serve",
    tensorflow_signature: str = "serving_default",
    zip: bool = True,
    overwrite: bool = False,
) -> BuiltBundle:
    """Build a bundle from a trained network (see the module notes for what is written and found).

    Parameters
    ----------
    model : nn.Module, ScriptModule, keras.Model, str or Path
        The network: a torch module, a TorchScript or ONNX file, a Keras model or ``.h5`` file, or a
        TensorFlow SavedModel folder.
    output : str or Path
        The bundle folder to write (it must not exist unless ``overwrite``); the zip goes next to it.
    example : ndarray, xarray.DataArray, str or Path
        One example image in the network's input axes (batch optional; a 2-D ``(y, x)`` image for a
        one-channel 2-D network), or an ``.npy`` / TIFF file of one. Its size must be one the network takes.
    name : str
        The model's name (what deepImageJ's ``model=`` names).
    description : str
        One or two sentences on what the model does (at most 1024 characters).
    axes : str, optional
        The input's axis letters as the network takes them (default ``"bcyx"`` for torch and ONNX,
        ``"byxc"`` for TensorFlow and Keras; ``z`` added for 5-D examples).
    output_axes : str or sequence of str, optional
        Axis letters of each output (default: the input's).
    input_name, output_names : optional
        Tensor ids (default: the ONNX graph's names, else ``"input"`` and ``"output"``).
    preprocessing : str, Path or list, optional
        ``"per_sample_scale_range"`` or ``"zero_mean_unit_variance"`` (macro and spec op written here), or
        ImageJ macro files; at most two steps.
    postprocessing : str, Path or list, optional
        ImageJ macro files run on the network's outputs (at most two).
    percentiles : (float, float)
        ``min_percentile`` and ``max_percentile`` of ``per_sample_scale_range``.
    halo : int, optional
        The receptive radius (input pixels) to declare instead of the measured one; a smaller one gives a
        :class:`~deepij.errors.SeamWarning` (tiled outputs will differ at tile seams).
    min_size : int, optional
        The smallest tile size to declare (it must be a size the network takes and leave room for the halo).
    allow_tiling : bool
        False for networks that must see the whole image (deepImageJ's ``allow_tiling``): no halo is declared.
    authors, license, cite, tags, version
        The descriptor's metadata; ``authors`` are names or ``{"name": ..., "affiliation": ...}`` mappings
        (default: the account's user name); ``cite`` entries ``{"text": ..., "doi": ...}`` (default: the
        deepImageJ paper).
    onnx : bool or "auto"
        Add an ONNX copy of torch weights: ``"auto"`` when it reproduces the outputs, True insists (an error
        when it does not), False never.
    tensorflow_tag, tensorflow_signature : str
        The SavedModel's tag and signature key (TensorFlow weights).
    zip : bool
        Also write ``<output>.zip``.
    overwrite : bool
        Replace an existing ``output`` folder and zip, when :func:`build` wrote them (``rdf.yaml`` with
        ``config.deepij.built_by``); any other folder or zip is refused (:mod:`.build_place`).

    Returns
    -------
    BuiltBundle

    Raises
    ------
    ArgumentError
        An unusable argument, an example the network does not take, a network whose receptive field is too
        large for its input sizes (the message names the axis, the halo and the sizes allowed), an output
        folder or zip that is there and not a bundle deepij built.
    """
    request = BuildRequest(
        model=model,
        example=example,
        name=name,
        description=description,
        axes=axes,
        output_axes=output_axes,
        input_name=input_name,
        output_names=output_names,
        preprocessing=preprocessing,
        postprocessing=postprocessing,
        percentiles=percentiles,
        halo=halo,
        min_size=min_size,
        allow_tiling=allow_tiling,
        authors=authors,
        license=license,
        cite=cite,
        tags=tags,
        version=version,
        onnx=onnx,
        tensorflow_tag=tensorflow_tag,
        tensorflow_signature=tensorflow_signature,
    )
    sources = {"model": model, "example": example, "preprocessing": preprocessing}
    sources["postprocessing"] = postprocessing
    target = check_target(output, overwrite, zip, sources)
    metadata = checked_metadata(request) | {"folder": target.name}
    from deepij.bundle.staging import make_staging

    staging = make_staging(target.parent, STAGING_PREFIX)
    try:
        spec, array = _measure(request, staging)
        notes = list(spec.written.notes)
        runs = run_example(spec, array, request.onnx, notes)
        final = finish(spec, runs, metadata)
        zipped = move_into_place(staging, target, overwrite, zip)
    except BaseException:
        remove_staging(staging)
        raise
    from deepij.bundle import open_bundle

    return BuiltBundle(
        folder=target,
        zip=zipped,
        description=open_bundle(target),
        receptive_radius=dict(spec.radius),
        network_sizes=dict(spec.sizes.rules),
        halo={o: dict(h) for o, h in spec.halos.items()},
        memory_peak=runs.memory_peak,
        runtime=runs.runtime,
        weights=tuple(final.weights),
        notes=tuple(notes),
    )


def _measure(request: BuildRequest, staging: Path) -> tuple[BundleSpec, np.ndarray]:
    """The weights written into ``staging``, the tensors' layout, the processing steps, the sizes and the
    receptive field probed on the network, the tiling fields declared; and the example as an array."""
    array = example_array(request.example, axes_asked(request.model, request.axes))
    written = write_weights(request.model, staging, example=array)
    layout = layout_of(
        written, array, request.axes, request.output_axes, request.input_name, request.output_names
    )
    stats, percentiles = stats_axes(layout.input_axes), request.percentiles
    pre = steps_from(request.preprocessing, "preprocessing", stats, percentiles)
    post = steps_from(request.postprocessing, "postprocessing", stats, percentiles)
    tensorflow = written.format.startswith("tensorflow")
    tf_keys = (request.tensorflow_tag, request.tensorflow_signature) if tensorflow else None
    sizes, radius = probe_network(staging, request.name, written, layout, array, tf_keys)
    halos, rules = tiling_fields(sizes, radius, layout, request.halo, request.min_size, request.allow_tiling)
    for step in (*pre, *post):
        write_step(step, staging)
    spec = BundleSpec(
        name=request.name,
        root=staging,
        layout=layout,
        written=written,
        sizes=sizes,
        rules=rules,
        halos=halos,
        pre=pre,
        post=post,
        tf_keys=tf_keys,
        channels=channel_count(array, layout.input_axes),
        allow_tiling=request.allow_tiling,
        radius=dict(radius),
    )
    return spec, array


__all__ = ["BuiltBundle", "build"]
