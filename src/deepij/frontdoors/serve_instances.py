"""``run("DeepImageJ StarDist", ...)`` and ``run("DeepImageJ Cellpose", ...)`` from a user's ImageJ: the
worker's ``instances`` operation.

The plugin sends the current image (through the shared files) with the options as given; the worker runs
the command's :data:`~deepij.frontdoors.deepimagej_instances.Segment`, the one the in-process command runs,
with the worker's models (``imagej_dir``'s ``models/``, kept loaded between calls), and answers the images to
open, titled as deepImageJ titles them. A label image carries its display range (0 to its largest label)
and the answer carries the label table's colours (``label_lut``: ``name``, ``reds``, ``greens``, ``blues``,
256 each), which the plugin applies, as :func:`deepij.imagej.luts.show_labels` does in process. The lines the
command writes to ImageJ's Log travel as ``log`` events of level ``IJ`` (written as they are).

Request: ``{"op": "instances", "command": "DeepImageJ StarDist", "options": "model=... prob_thresh=...",
"imagej_dir": "...", "title": "cells.tif", "inputs": [image]}`` (``inputs`` empty when no image is open).
Answer: ``{"outputs": [image with "labels": true|false], "label_lut": {...} or null}``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import ArgumentError, ExtraMissingError

if TYPE_CHECKING:
    from deepij.frontdoors.deepimagej_instances import Segment, Segmented
    from deepij.frontdoors.serve_request import Request, Served
    from deepij.pipeline import Model

_log = logging.getLogger("deepij.frontdoors")


def instances(server: Served, request: Request) -> dict[str, Any]:
    """One instance command on the image in ``to_worker``; its images into ``from_worker``."""
    from deepij.frontdoors.deepimagej_instances import ModelPlace

    segment = _segment(request.text("command"))
    described = request.message.get("inputs") or []
    if not isinstance(described, list):
        raise ArgumentError(f"instances: inputs={described!r} (expected a list of image descriptions)")
    image = server.files.read_images(described)[0] if described else None
    title = request.text("title") or ("" if image is None else str(image.name))

    def load(source: Path) -> Model:
        return server.runs.models.get(source)

    place = ModelPlace(request.text("imagej_dir"), None, load)
    made = segment(request.text("options", "") or "", image, title, place,
                   lambda line: request.log("IJ", line), None)
    written = server.files.write_images([(m.title, _shown(m)) for m in made])
    outputs = [{**meta, "labels": m.labels} for meta, m in zip(written, made, strict=True)]
    return {"outputs": outputs, "label_lut": _label_lut() if any(m.labels for m in made) else None}


def _segment(command: str | None) -> Segment:
    from deepij.frontdoors.deepimagej_cellpose import CELLPOSE, segment_cellpose
    from deepij.frontdoors.deepimagej_instances import STARDIST, segment_stardist

    commands: dict[str, Segment] = {STARDIST: segment_stardist, CELLPOSE: segment_cellpose}
    if command not in commands:
        raise ArgumentError(f"instances: command={command!r} (expected one of {', '.join(commands)})")
    return commands[command]


def _shown(made: Segmented) -> Any:
    """The image as the plugin opens it: a label image with its display range (0 to its largest label)."""
    from deepij.frontdoors.deepimagej_instances import label_count
    from deepij.imagej.luts import MAX_16BIT_LABEL

    if not made.labels:
        return made.image
    top = float(max(1, min(label_count(made.image), MAX_16BIT_LABEL)))
    return made.image.assign_attrs(display_range=(0.0, top))


def _label_lut() -> dict[str, Any] | None:
    """The label table's colours, or None (the label image stays gray, said in the Log) without colorcet."""
    from deepij.imagej.lut_colours import LABEL_LUT, lut_colours

    try:
        colours = lut_colours(LABEL_LUT)
    except ExtraMissingError as error:
        _log.warning("the label image keeps a gray table: %s", error)
        return None
    return {"name": LABEL_LUT, **{key: colours[:, k].astype(int).tolist()
                                  for k, key in enumerate(("reds", "greens", "blues"))}}


OPERATIONS = {"instances": instances}
