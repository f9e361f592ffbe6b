"""``run("DeepImageJ Cellpose", "model=... cyto_color=... nuclei_color=... diameter=... display_all=...")``,
deepImageJ 3.1's Cellpose command, in every macro deepij runs (see
:mod:`deepij.frontdoors.deepimagej_instances` for what the two commands share: the model lookup, offline
refusal of pretrained names, unknown keys).

The bundle is a Cellpose network (``cellpose_flow_dynamics`` declared, or cellpose's exporter bundle). On
each plane of the current image, as Cellpose's own ``eval`` does with the cellpose package's functions:

1. the network's channels are made from the image's: ``cyto_color`` and ``nuclei_color`` name the channel of
   an RGB (or 3-channel) image holding each (``red``, ``green``, ``blue``), or ``gray`` for both on a
   grayscale image (the nuclei channel then empty); channels the network takes beyond these stay empty;
2. each channel is normalised between its 1st and 99th percentiles (``cellpose.transforms.normalize99``);
3. with ``diameter=`` the image is resized so that objects of that diameter become Cellpose's 30 pixels
   (``config.cellpose.diam_mean`` of the bundle when it gives one), the flows are resized back, and the
   dynamics follow them for ``200 * diameter / 30`` steps, as Cellpose scales them; without it (deepImageJ
   would estimate it with Cellpose's size model, which a bundle does not hold) the image runs at its own size
   and the Log says so;
4. the flows become labels with the bundle's thresholds
   (:func:`~deepij.processing.instances.cellpose_instances`).

It leaves ``<title>_labels.tif`` (16-bit); with ``display_all=true`` also ``_flows_0.tif`` (the flows as
colours, cellpose's ``dx_to_circ``), ``_flows_1.tif`` (the two flow components), ``_flows_2.tif`` (the cell
probability) and ``_image_dn.tif`` (the network's input), as deepImageJ shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.errors import ArgumentError
from deepij.frontdoors.deepimagej_instances import (
    ModelPlace,
    Segmented,
    find_bundle,
    instance_step,
    label_image,
    number,
    output_title,
    parse_instance_options,
    planes,
    required_image,
    run_in_session,
    yx_plane,
)

if TYPE_CHECKING:
    import xarray as xr

    from deepij.imagej.commands import CommandCall
    from deepij.imagej.session import Session
    from deepij.pipeline import Model
    from deepij.processing.instances import InstanceStep

CELLPOSE = "DeepImageJ Cellpose"
CELLPOSE_KEYS = ("model", "cyto_color", "nuclei_color", "diameter", "display_all", "models_dir")
COLOURS = ("gray", "red", "green", "blue")
#: Cellpose's pretrained model names (deepImageJ downloads them).
CELLPOSE_PRETRAINED = {
    name: name
    for name in (
        "cyto", "cyto2", "cyto3", "nuclei", "cpsam", "tissuenet_cp3", "livecell_cp3", "yeast_PhC_cp3",
        "yeast_BF_cp3", "bact_phase_cp3", "bact_fluor_cp3", "deepbacs_cp3", "cyto2_cp3",
    )
}
_DIAMETER = 30.0


def cellpose_command(call: CommandCall) -> None:
    """The handler of ``run("DeepImageJ Cellpose", ...)`` (module notes)."""
    run_in_session(call, segment_cellpose)


def segment_cellpose(options_text: str, image: xr.DataArray | None, title: str, place: ModelPlace,
                     log: Callable[[str], None], session: Session | None = None) -> list[Segmented]:
    """What ``run("DeepImageJ Cellpose", options_text)`` leaves for ``image`` titled ``title`` (a
    :data:`~deepij.frontdoors.deepimagej_instances.Segment`; module notes)."""
    options = parse_instance_options(CELLPOSE, options_text, CELLPOSE_KEYS)
    colours = _colours(options)
    diameter = number(CELLPOSE, options, "diameter", 0.0, 0.0, float("inf"))
    display_all = _flag(options, "display_all")
    image = required_image(image, CELLPOSE)
    model = place.load(find_bundle(place, CELLPOSE, options, CELLPOSE_PRETRAINED))
    step = instance_step(CELLPOSE, model, "cellpose_flow_dynamics", "Cellpose")
    if not diameter:
        log(f"{CELLPOSE}: no diameter given: the image runs at its own size (deepImageJ estimates the "
            "diameter with Cellpose's size model, which a bundle does not hold)")
    stack, _ = planes(image)
    results = [run_cellpose(model, step, plane, colours, diameter, session) for plane in stack]
    labels = label_image(np.stack([r["labels"] for r in results]), "uint16")
    made = [Segmented(output_title(title, "labels"), labels, True)]
    if display_all:
        made += [Segmented(output_title(title, n), _plain_image(np.stack([r[n] for r in results])), False)
                 for n in ("flows_0", "flows_1", "flows_2", "image_dn")]
    return made


def _colours(options: dict[str, str]) -> tuple[str, str]:
    found = []
    for key in ("cyto_color", "nuclei_color"):
        value = options.get(key, "").lower()
        if not value:
            raise ArgumentError(f"{CELLPOSE}: {key}= is missing (expected one of {', '.join(COLOURS)})")
        if value not in COLOURS:
            raise ArgumentError(f"{CELLPOSE}: {key}={options[key]}; expected one of {', '.join(COLOURS)}")
        found.append(value)
    if (found[0] == "gray") != (found[1] == "gray"):
        raise ArgumentError(
            f"{CELLPOSE}: cyto_color={found[0]} nuclei_color={found[1]}: gray is for grayscale images and "
            "names both channels; expected both gray, or two colours"
        )
    return found[0], found[1]


def _flag(options: dict[str, str], key: str) -> bool:
    value = options.get(key, "false").lower()
    if value not in ("true", "false"):
        raise ArgumentError(f"{CELLPOSE}: {key}={options[key]}; expected true or false")
    return value == "true"


def network_channels(plane: np.ndarray, colours: tuple[str, str], count: int) -> np.ndarray:
    """The network's ``count`` channels ``(y, x, count)`` from an image plane ``(y, x, c)``: cyto, nuclei,
    then empty ones (module notes).

    Examples
    --------
    >>> rgb = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    >>> network_channels(rgb, ("green", "blue"), 2)[0, 0].tolist()
    [1.0, 2.0]
    >>> network_channels(rgb[..., :1], ("gray", "gray"), 2)[0, 1].tolist()
    [3.0, 0.0]
    """
    empty = np.zeros(plane.shape[:2], np.float32)
    if colours[0] == "gray":
        if plane.shape[-1] != 1:
            raise ArgumentError(
                f"{CELLPOSE}: cyto_color=gray needs a grayscale image; found {plane.shape[-1]} channels "
                "(name the cyto and nuclei colours instead)"
            )
        chosen = [plane[..., 0], empty]
    else:
        if plane.shape[-1] != 3:
            raise ArgumentError(f"{CELLPOSE}: cyto_color={colours[0]} needs an RGB or 3-channel image; found "
                                f"{plane.shape[-1]} channel(s) (use gray for a grayscale image)")
        chosen = [plane[..., COLOURS.index(c) - 1] for c in colours]
    channels = (chosen + [empty] * count)[:count]
    return np.stack(channels, axis=-1).astype(np.float32)


def run_cellpose(
    model: Model,
    step: InstanceStep,
    plane: np.ndarray,
    colours: tuple[str, str],
    diameter: float,
    session: Any = None,
) -> dict[str, np.ndarray]:
    """Cellpose on one plane ``(y, x, c)``: labels and the maps ``display_all`` shows (module notes)."""
    from deepij.processing.instances import cellpose_instances
    from deepij.processing.instances.extras import import_extra
    from deepij.processing.instances.params import CellposeParams

    transforms = import_extra("cellpose.transforms", "cellpose", "DeepImageJ Cellpose")
    params = step.params
    assert isinstance(params, CellposeParams)
    height, width = plane.shape[:2]
    count = _input_channels(model)
    image = network_channels(plane, colours, count)
    image = np.stack([transforms.normalize99(image[..., k]) for k in range(count)], axis=-1)
    scaling = _diam_mean(model) / diameter if diameter else 1.0
    if scaling != 1.0:
        image = transforms.resize_image(image, Ly=int(height * scaling), Lx=int(width * scaling))
    raw = model.predict(image, axes="yxc", processing="none", instances="none", session=session)
    flows = raw.images[step.output]
    maps = np.stack([yx_plane(flows.isel(c=k)) for k in range(3)], axis=-1)
    if scaling != 1.0:
        maps = transforms.resize_image(maps, Ly=height, Lx=width)
    found = cellpose_instances(
        np.moveaxis(maps[..., :2], -1, 0), maps[..., 2], cellprob_threshold=params.cellprob_threshold,
        flow_threshold=params.flow_threshold, min_size=params.min_size, output_dtype=params.output_dtype,
        niter=int(200 / scaling),
    )
    return {"labels": found.labels, **_shown_maps(maps, image, height, width, transforms)}


def _shown_maps(
    maps: np.ndarray, image: np.ndarray, height: int, width: int, transforms: Any
) -> dict[str, Any]:
    from deepij.processing.instances.extras import import_extra

    plot = import_extra("cellpose.plot", "cellpose", "DeepImageJ Cellpose display_all")
    flows = np.moveaxis(maps[..., :2], -1, 0)
    if image.shape[:2] != (height, width):
        image = transforms.resize_image(image, Ly=height, Lx=width)
    return {
        "flows_0": np.asarray(plot.dx_to_circ(flows), np.uint8),
        "flows_1": flows.astype(np.float32),
        "flows_2": maps[..., 2].astype(np.float32),
        "image_dn": np.asarray(image, np.float32),
    }


def _input_channels(model: Model) -> int:
    from deepij.bundle.description import FixedSize

    axis = model.description.inputs[0].axis("c")
    if axis.channel_names:
        return len(axis.channel_names)
    return axis.size.value if isinstance(axis.size, FixedSize) else 2


def _diam_mean(model: Model) -> float:
    config = model.description.config.get("cellpose")
    value = config.get("diam_mean") if isinstance(config, dict) else None
    return float(value) if isinstance(value, int | float) and value > 0 else _DIAMETER


def _plain_image(stack: np.ndarray) -> xr.DataArray:
    """One display_all map as deepImageJ shows it: planes as frames, channels as channels."""
    import xarray as xr

    names = {3: ("row", "col"), 4: ("row", "col", "ch")}
    data = stack[0] if len(stack) == 1 else stack
    dims = names[stack.ndim] if len(stack) == 1 else ("t", *names[stack.ndim])
    if stack.ndim == 4 and stack.shape[1] == 2:  # flows_1: (n, 2, y, x)
        dims = ("ch", "row", "col") if len(stack) == 1 else ("t", "ch", "row", "col")
    return xr.DataArray(data, dims=dims)


def install(session: Session) -> None:
    """Serve ``run("DeepImageJ Cellpose", ...)`` (a session hook)."""
    session.commands.register(CELLPOSE, cellpose_command)
