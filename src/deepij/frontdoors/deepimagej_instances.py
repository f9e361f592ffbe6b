"""deepImageJ 3.1's instance-segmentation commands in every macro deepij runs:
``run("DeepImageJ StarDist", "model=... prob_thresh=... min_percentile=... max_percentile=...")`` here, and
``run("DeepImageJ Cellpose", ...)`` in :mod:`deepij.frontdoors.deepimagej_cellpose`.

Both run on the macro's current image (every frame, or plane, of a stack on its own) with an installed
bundle and leave one new image, titled as deepImageJ titles it (``<title without extension>_mask.tif`` for
StarDist, ``..._labels.tif`` for Cellpose), shown with a label lookup table.

``model=`` is a bundle (folder, descriptor or zip) or the name of an installed one, looked up as
``run("DeepImageJ Run", ...)`` looks up models (descriptor name, then folder name; ``models_dir=``, then
``$DEEPIJ_MODELS_DIR`` and ImageJ's ``models/``). deepImageJ downloads its pretrained models
(``2D_versatile_fluo``, ``cyto3``...) on first use; deepij works offline, so such a name that is not
installed stops the macro saying what to install. Unknown keys stop the macro with an error naming them.

``DeepImageJ StarDist`` (a StarDist bundle: ``stardist_postprocessing`` declared, or StarDist's exporter
bundles): the image is normalised between the ``min_percentile`` and ``max_percentile`` percentiles of each
channel (of each frame), the network runs, and StarDist's NMS keeps the objects above ``prob_thresh`` (the
bundle's own NMS threshold). Defaults: ``prob_thresh=0.5`` (deepImageJ's macro), ``min_percentile=1``,
``max_percentile=99.8`` (deepImageJ's Java API: its macro's default of 0.5 for both is a known bug that
would make the normalisation meaningless; the Log says which values were used). The result is 32-bit, as
deepImageJ gives it.

Two doors run the same code: a macro in deepij's own ImageJ (:func:`run_in_session`, the session's models)
and the plugin in a user's ImageJ (the worker's ``instances`` operation,
:mod:`deepij.frontdoors.serve_instances`). Each command is a :data:`Segment`: the options, the current image
(ImageJ dims) and its title in, the images to show (:class:`Segmented`) out; the door opens them.

Examples
--------
>>> parse_instance_options("DeepImageJ StarDist", "model=[my model] prob_thresh=0.6", STARDIST_KEYS)
{'model': 'my model', 'prob_thresh': '0.6'}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.errors import ArgumentError, InputError, ModelNotFoundError

if TYPE_CHECKING:
    import xarray as xr

    from deepij.imagej.commands import CommandCall
    from deepij.imagej.session import Session
    from deepij.pipeline import Model
    from deepij.processing.instances import InstanceStep

STARDIST = "DeepImageJ StarDist"
STARDIST_KEYS = ("model", "prob_thresh", "min_percentile", "max_percentile", "models_dir")
#: deepImageJ's pretrained StarDist names and the zoo model each downloads.
STARDIST_PRETRAINED = {
    "2D_versatile_fluo": "StarDist Fluorescence Nuclei Segmentation",
    "2D_versatile_he": "StarDist H&E Nuclei Segmentation",
    "StarDist Fluorescence Nuclei Segmentation": "StarDist Fluorescence Nuclei Segmentation",
    "StarDist H&E Nuclei Segmentation": "StarDist H&E Nuclei Segmentation",
}
_TOKEN = re.compile(r"(\w+)=(\[[^\]]*\]|\S*)|(\S+)")


def parse_instance_options(command: str, options: str, keys: tuple[str, ...]) -> dict[str, str]:
    """``key=value`` / ``key=[value with spaces]`` options as ImageJ reads them; ArgumentError names an
    unknown key (or a word without ``=``) and lists the known ones."""
    found: dict[str, str] = {}
    for match in _TOKEN.finditer(options):
        key, value, word = match.group(1), match.group(2), match.group(3)
        if word is not None or key.lower() not in keys:
            raise ArgumentError(
                f"{command}: unknown key {(word or key)!r}; expected {', '.join(k + '=' for k in keys)}"
            )
        found[key.lower()] = value[1:-1] if value.startswith("[") else value
    return found


def number(command: str, options: dict[str, str], key: str, default: float, low: float, high: float) -> float:
    """``options[key]`` as a number in ``[low, high]`` (``default`` when absent)."""
    if key not in options or options[key] == "":
        return default
    try:
        value = float(options[key])
    except ValueError:
        raise ArgumentError(f"{command}: {key}={options[key]}; expected a number") from None
    if not low <= value <= high:
        raise ArgumentError(f"{command}: {key}={options[key]}; expected a number from {low:g} to {high:g}")
    return value


# --- the model -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPlace:
    """Where a command looks models up (``imagej_dir``'s ``models/``, ``models_dir`` first) and how it gets
    one loaded (kept between calls by the door: the session's DeepImageJ Run handler or the worker)."""

    imagej_dir: str | None
    models_dir: Path | None
    load: Callable[[Path], Model]


@dataclass(frozen=True)
class Segmented:
    """An image a command leaves: its title, its pixels in ImageJ dims, and whether it is a label image (shown
    with the label table, 0 to its largest label)."""

    title: str
    image: xr.DataArray
    labels: bool


#: A command's work: ``(options, image or None, title, place, log, session or None)`` -> the images to show.
Segment = Callable[[str, "xr.DataArray | None", str, ModelPlace, Callable[[str], None], Any], list[Segmented]]


def find_bundle(place: ModelPlace, command: str, options: dict[str, str], pretrained: dict[str, str]) -> Path:
    """The bundle ``model=`` names (see the module notes)."""
    from deepij.frontdoors.deepimagej_run import find_run_model
    from deepij.frontdoors.run_options import parse_run_options

    name = options.get("model") or ""
    if not name:
        raise ArgumentError(
            f"{command}: model= is missing (expected a bundle folder or an installed model's name)"
        )
    path = Path(name).expanduser()
    if path.exists():
        if path.suffix == ".pth":
            raise ArgumentError(
                f"{command}: model={name} is a PyTorch weights file; deepij runs bundles (a folder with its "
                "rdf.yaml, or a bundle zip), e.g. the one cellpose's exporter writes for these weights"
            )
        return path
    wanted = pretrained.get(name, name)
    request = parse_run_options(f"model=[{wanted}]" + (f" models_dir=[{options['models_dir']}]"
                                                        if options.get("models_dir") else ""))
    try:
        return find_run_model(request, place.imagej_dir, place.models_dir)
    except ModelNotFoundError as error:
        if name in pretrained:
            raise ModelNotFoundError(
                f"{command}: model={name} is a pretrained model deepImageJ downloads on first use; deepij "
                f"runs offline and found no installed bundle named {wanted!r}. Install its bioimage.io "
                "bundle (deepij install <its zip or URL> --models-dir <a models folder>), or name a bundle "
                f"folder with model=<path>. {error}"
            ) from error
        raise


def session_place(call: CommandCall) -> ModelPlace:
    """Where a macro in deepij's own ImageJ finds models: as its DeepImageJ Run does, kept in its handler's
    cache."""
    from deepij.frontdoors.deepimagej_run import _imagej_dir

    handler = call.session.commands.handlers().get("DeepImageJ Run")
    cache = getattr(handler, "models", None)

    def load(source: Path) -> Model:
        import deepij

        return cache.get(source) if cache is not None else deepij.load(source)

    return ModelPlace(_imagej_dir(call.session), getattr(handler, "models_dir", None), load)


def instance_step(command: str, model: Model, op: str, what: str) -> InstanceStep:
    """The model's instance step of ``op``, or ArgumentError saying the model is not a ``what`` model."""
    for step in model.instance_plan.steps:
        if step.op == op:
            return step
    raise ArgumentError(
        f"{command}: model {model.name!r} is not a {what} bundle (its descriptor declares no {op} and is not "
        f"a {what} exporter's bundle); expected a {what} model"
    )


# --- images ---------------------------------------------------------------------------------------------


def planes(image: xr.DataArray) -> tuple[np.ndarray, tuple[str, ...]]:
    """The current image as ``(n, y, x, c)`` float32: every frame and plane on its own (deepImageJ's
    commands run 2-D models plane by plane), and the dims that were stacked."""
    stacked = tuple(d for d in ("t", "pln") if d in image.dims)
    ordered = image.transpose(*stacked, "row", "col", *(["ch"] if "ch" in image.dims else []))
    values = np.asarray(ordered.values, np.float32)
    if "ch" not in image.dims:
        values = values[..., None]
    return values.reshape(-1, *values.shape[-3:]), stacked


def label_image(labels: np.ndarray, dtype: str) -> xr.DataArray:
    """``(n, y, x)`` labels as one image in ImageJ dims (frames when several)."""
    import xarray as xr

    if len(labels) > 1:
        return xr.DataArray(labels.astype(dtype), dims=("t", "row", "col"))
    return xr.DataArray(labels[0].astype(dtype), dims=("row", "col"))


def label_count(image: xr.DataArray) -> int:
    """The largest label of a label image (0 when empty): the top of its display range."""
    return int(image.max()) if image.size else 0


def run_in_session(call: CommandCall, segment: Segment) -> None:
    """An instance command in deepij's own ImageJ: ``segment`` on the macro's current image, its images
    shown (label images with the label table), the last one current."""
    from deepij.imagej import luts
    from deepij.imagej._java import jc

    imp = call.image
    image = None if imp is None else call.session.to_xarray(imp)
    title = "" if imp is None else str(imp.getTitle())
    for made in segment(call.options, image, title, session_place(call), jc.IJ.log, call.session):
        shown = call.session.to_imageplus(made.image, title=made.title)
        if made.labels:
            luts.show_labels(shown, label_count(made.image))
        call.show(shown)


def output_title(input_title: str, name: str) -> str:
    """deepImageJ's title for a result: the input's title without its extension, ``_name.tif``.

    Examples
    --------
    >>> output_title("cells.tif", "mask"), output_title("blobs", "labels")
    ('cells_mask.tif', 'blobs_labels.tif')
    """
    stem = input_title[: input_title.rfind(".")] if "." in input_title else input_title
    return f"{stem}_{name}.tif"


def required_image(image: xr.DataArray | None, command: str) -> xr.DataArray:
    if image is None:
        raise InputError(
            f"{command}: there is no image open (expected the image to segment open and selected)"
        )
    return image


# --- StarDist ---------------------------------------------------------------------------------------------


def stardist_command(call: CommandCall) -> None:
    """The handler of ``run("DeepImageJ StarDist", ...)`` (module notes)."""
    run_in_session(call, segment_stardist)


def segment_stardist(options_text: str, image: xr.DataArray | None, title: str, place: ModelPlace,
                     log: Callable[[str], None], session: Session | None = None) -> list[Segmented]:
    """What ``run("DeepImageJ StarDist", options_text)`` leaves for ``image`` titled ``title`` (a
    :data:`Segment`; module notes)."""
    options = parse_instance_options(STARDIST, options_text, STARDIST_KEYS)
    prob = number(STARDIST, options, "prob_thresh", 0.5, 0.0, 1.0)
    low = number(STARDIST, options, "min_percentile", 1.0, 0.0, 100.0)
    high = number(STARDIST, options, "max_percentile", 99.8, 0.0, 100.0)
    if low >= high:
        raise ArgumentError(f"{STARDIST}: min_percentile={low:g} and max_percentile={high:g}; expected the "
                            "minimum below the maximum")
    for key, value in (("min_percentile", low), ("max_percentile", high)):
        if key not in options:
            log(f"{STARDIST}: {key} not given: {value:g}, the default of deepImageJ's Java API "
                "(its macro default, 0.5, is a known bug)")
    image = required_image(image, STARDIST)
    model = place.load(find_bundle(place, STARDIST, options, STARDIST_PRETRAINED))
    step = instance_step(STARDIST, model, "stardist_postprocessing", "StarDist")
    labels = run_stardist(model, step, image, prob, (low, high), session)
    return [Segmented(output_title(title, "mask"), label_image(labels, "float32"), True)]


def run_stardist(
    model: Model,
    step: InstanceStep,
    image: xr.DataArray,
    prob_threshold: float,
    percentiles: tuple[float, float],
    session: Session | None = None,
) -> np.ndarray:
    """StarDist on every plane of ``image`` (ImageJ dims): ``(n, y, x)`` labels."""
    import xarray as xr

    from deepij.processing.instances import InstancePlan, run_instances
    from deepij.processing.instances.params import StardistParams

    assert isinstance(step.params, StardistParams)
    chosen = replace(step, params=replace(step.params, prob_threshold=prob_threshold), recognised=False)
    plan = InstancePlan(model.description, model.instance_plan.network, (chosen,))
    stack, _ = planes(image)
    found = []
    for plane in stack:
        normalised = _percentile_normalised(plane, percentiles)
        raw = model.predict(normalised, axes="yxc", processing="none", instances="none", session=session)
        inputs = {model.description.inputs[0].name: xr.DataArray(normalised, dims=("y", "x", "c"))}
        result = run_instances(plan, raw.images, inputs, mode="declared")
        found.append(yx_plane(result.outputs[step.output]))
    return np.stack(found)


def yx_plane(image: xr.DataArray) -> np.ndarray:
    """The ``(y, x)`` plane of an output of one image (its other dims have one element)."""
    others = {d: 0 for d in image.dims if d not in ("y", "x")}
    return np.asarray(image.isel(others).transpose("y", "x").values)


def _percentile_normalised(plane: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Each channel between its two percentiles, as StarDist normalises (csbdeep's ``normalize``)."""
    low, high = np.percentile(plane, percentiles, axis=(0, 1), keepdims=True)
    return ((plane - low) / (high - low + 1e-20)).astype(np.float32)


def install(session: Session) -> None:
    """Serve ``run("DeepImageJ StarDist", ...)`` (a session hook; ``DeepImageJ Cellpose`` has its own, in
    :mod:`deepij.frontdoors.deepimagej_cellpose`)."""
    session.commands.register(STARDIST, stardist_command)
