"""How a :class:`~deepij.pipeline.outputs.Prediction`'s objects look in ImageJ and in its files.

- Label images (the outputs of instance ops, and images a step gave a lookup table by name) are 16-bit when
  their labels fit (ImageJ has no 32-bit integer images: larger ones are 32-bit, exact up to 2**24), shown
  with a label lookup table from 0 to the number of objects, as StarDist's Fiji plugin shows its
  ``Label Image``; saved TIFFs carry that table, so ImageJ opens them coloured.
- Objects become ROIs in the ROI Manager, emptied first as StarDist's plugin empties it: the polygons of
  the instance ops (label order, placed on their frame when there are several images), then the ROIs
  the ImageJ post-processing left there.

Examples
--------
>>> import numpy as np, xarray as xr
>>> labels_for_imagej(xr.DataArray(np.array([[0, 7]], np.int32), dims=("y", "x"))).dtype
dtype('uint16')
>>> labels_for_imagej(xr.DataArray(np.array([[0, 70000]], np.int64), dims=("y", "x"))).dtype
dtype('float32')
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from deepij.errors import HeadlessError

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr


_EXACT_FLOAT32 = 2**24


class Prediction(Protocol):
    """What the display reads of a :class:`~deepij.pipeline.outputs.Prediction` (that module calls this one:
    a protocol keeps the import one way)."""

    images: dict[str, xr.DataArray]
    instances: dict[str, list[Any]]
    rois: list[Any]


def without_plane(image: xr.DataArray) -> pd.DataFrame | None:
    """An output with no ``y``/``x`` plane (Cellpose's ``style`` vector, ``(b, c)``) as the table ImageJ can
    show instead of an image: a column per channel, a row per position of its other dims; None for images.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> without_plane(xr.DataArray(np.ones((1, 3)), dims=("b", "c"))).columns.tolist()
    ['c0', 'c1', 'c2']
    >>> without_plane(xr.DataArray(np.ones((4, 4)), dims=("y", "x"))) is None
    True
    """
    import pandas as pd

    if "y" in image.dims and "x" in image.dims:
        return None
    rows = [str(d) for d in image.dims if d != "c"]
    values = np.asarray(image.transpose(*rows, *(["c"] if "c" in image.dims else [])).values)
    values = values.reshape(-1, image.sizes["c"] if "c" in image.dims else 1)
    names = [f"c{k}" for k in range(values.shape[1])] if "c" in image.dims else [str(image.name or "value")]
    return pd.DataFrame(values, columns=names)


def labels_for_imagej(image: xr.DataArray) -> xr.DataArray:
    """An integer image as ImageJ holds it: uint16 when its values fit, else float32 (bool, uint8, uint16
    and float images unchanged)."""
    if image.dtype.kind not in "iu" or image.dtype in (np.uint8, np.uint16):
        return image
    low = int(image.min()) if image.size else 0
    high = int(image.max()) if image.size else 0
    if low >= 0 and high <= np.iinfo(np.uint16).max:
        return image.astype(np.uint16)
    return image.astype(np.float32)


def integer_values(values: np.ndarray) -> np.ndarray | None:
    """``values`` as the ImageJ-readable integer type they fit (uint16), None when they do not."""
    if values.dtype.kind not in "iu":
        return None
    if values.size == 0 or (int(values.min()) >= 0 and int(values.max()) <= np.iinfo(np.uint16).max):
        return values.astype(np.uint16, copy=False)
    return None


def label_lut_name(prediction: Prediction, name: str) -> str | None:
    """The lookup table an output is shown and saved with: the label table for an instance output, the
    table a step gave the image (``attrs["lut"]``) when deepij knows it, else None."""
    from deepij.imagej.lut_colours import LABEL_LUT, LUT_NAMES

    if name in prediction.instances:
        return LABEL_LUT
    given = prediction.images[name].attrs.get("lut")
    return given if given in LUT_NAMES else None


def lut_for_tiff(prediction: Prediction, name: str) -> np.ndarray | None:
    """The ``(3, 256)`` uint8 table tifffile writes into an ImageJ TIFF for an output, or None (none, or its
    colour maps are not installed)."""
    from deepij.errors import ExtraMissingError
    from deepij.imagej.lut_colours import lut_colours

    table = label_lut_name(prediction, name)
    if table is None:
        return None
    try:
        return np.ascontiguousarray(lut_colours(table).T)
    except ExtraMissingError:
        return None


def decorate(prediction: Prediction, name: str, imp: Any) -> None:
    """Give an output's ImagePlus its lookup table (a label image's, with its display range)."""
    from deepij.errors import ExtraMissingError
    from deepij.imagej import luts
    from deepij.imagej.lut_colours import lut_colours

    table = label_lut_name(prediction, name)
    if table is None:
        return
    if name in prediction.instances:
        luts.show_labels(imp, _object_count(prediction, name))
        return
    try:
        luts.apply_lut(imp, table, lut_colours(table))
    except ExtraMissingError:
        return


def _object_count(prediction: Prediction, name: str) -> int:
    found = prediction.instances[name]
    return max((int(i.labels.max()) if i.labels.size else 0 for _, i in found), default=0)


def show_rois(prediction: Prediction, imps: Mapping[str, Any]) -> int:
    """Put the prediction's objects into the ROI Manager (module notes); returns how many. ``imps``: the
    ImagePlus each output was shown as (their stack positions place the ROIs of several images)."""
    from deepij.imagej import rois

    found = []
    for name, samples in prediction.instances.items():
        imp = imps.get(name)
        for sample, instances in samples:
            frame = _stack_index(imp, sample) if imp is not None else 0
            for label in sorted(instances.polygons):
                roi = rois.polygon_roi(instances.polygons[label])
                if frame:
                    roi.setPosition(frame)
                found.append(roi)
    found += [rois.outline_roi(o) for o in prediction.rois]
    if not found:
        return 0
    try:
        rois.add_rois(found, reset=True)
    except HeadlessError as error:  # the images are shown all the same
        logging.getLogger("deepij.pipeline").warning("%d objects not shown as ROIs: %s", len(found), error)
        return 0
    return len(found)


def _stack_index(imp: Any, sample: Mapping[str, int]) -> int:
    """The stack position of one looped image (0 when the image is a single plane)."""
    if int(imp.getStackSize()) <= 1 or not sample:
        return 0
    frame = sample.get("t", sample.get("b", 0))
    plane = sample.get("z", 0)
    return int(imp.getStackIndex(1, plane + 1, frame + 1))
