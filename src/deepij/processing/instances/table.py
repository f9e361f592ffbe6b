"""What an instance op gives for one image: the label image, a table of its objects and their outlines.

The table has one row per label present in the image: ``label``, ``centroid_z`` (3-D), ``centroid_y``,
``centroid_x`` (pixel coordinates, the mean of the object's pixel positions), ``area`` (pixels, voxels in
3-D) and ``mean_probability`` (the mean over the object's pixels of the probability map at the image's
resolution, when the op has one), plus what the op adds (StarDist's ``score``). Outlines are polygons of
``(y, x)`` vertices by label: StarDist's own polygons, or traced around each label (2-D).

Examples
--------
>>> import numpy as np
>>> labels = np.zeros((6, 6), np.int32); labels[1:3, 1:4] = 1; labels[4:6, 4:6] = 2
>>> object_table(labels, np.full((6, 6), 0.5, np.float32)).to_dict("list")
... # doctest: +NORMALIZE_WHITESPACE
{'label': [1, 2], 'centroid_y': [1.5, 4.5], 'centroid_x': [2.0, 4.5], 'area': [6, 4],
 'mean_probability': [0.5, 0.5]}
>>> sorted(outlines(labels))
[1, 2]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

_AXES = ("z", "y", "x")


@dataclass
class Instances:
    """One image's instances.

    Attributes
    ----------
    labels : ndarray
        Integer label image at the image's size (0 is background).
    table : pandas.DataFrame
        One row per object (see the module notes).
    polygons : dict of int to ndarray
        2-D outlines by label, ``(n, 2)`` vertices ``(y, x)`` in pixel coordinates (empty in 3-D).
    """

    labels: np.ndarray
    table: pd.DataFrame
    polygons: dict[int, np.ndarray] = field(default_factory=dict)


def object_table(
    labels: np.ndarray,
    probability: np.ndarray | None = None,
    *,
    scores: Mapping[int, float] | None = None,
) -> pd.DataFrame:
    """One row per label present in ``labels`` (negative and zero values are not objects)."""
    flat = np.where(labels > 0, labels, 0).ravel().astype(np.intp, copy=False)
    counts = np.bincount(flat)
    present = np.flatnonzero(counts)
    present = present[present > 0]
    area = counts[present]
    columns: dict[str, np.ndarray] = {"label": present.astype(np.int64)}
    names = _AXES[-labels.ndim :]
    for axis, name in enumerate(names):
        shape = [1] * labels.ndim
        shape[axis] = labels.shape[axis]
        position = np.broadcast_to(
            np.arange(labels.shape[axis], dtype=np.float64).reshape(shape), labels.shape
        )
        sums = np.bincount(flat, weights=position.ravel(), minlength=len(counts))
        columns[f"centroid_{name}"] = sums[present] / area
    columns["area"] = area.astype(np.int64)
    if probability is not None:
        sums = np.bincount(flat, weights=np.asarray(probability, np.float64).ravel(), minlength=len(counts))
        columns["mean_probability"] = sums[present] / area
    if scores is not None:
        columns["score"] = np.array([scores.get(int(k), np.nan) for k in present], np.float64)
    return pd.DataFrame(columns)


def grid_upsampled(values: np.ndarray, grid: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """``values`` at ``1/grid`` resolution brought to ``shape``: pixel ``p`` reads ``values[p // grid]``
    (the grid cell it lies in; the last cell repeats where ``shape`` is larger)."""
    index = tuple(
        np.minimum(np.arange(n) // g, values.shape[a] - 1).reshape(
            [-1 if i == a else 1 for i in range(len(shape))]
        )
        for a, (n, g) in enumerate(zip(shape, grid, strict=True))
    )
    return values[index]


def outlines(labels: np.ndarray) -> dict[int, np.ndarray]:
    """The outline of every object of a 2-D label image, ``(n, 2)`` vertices ``(y, x)``: the longest
    iso-contour at half height around the object's pixels (marching squares on its own mask)."""
    from scipy import ndimage
    from skimage.measure import find_contours

    found: dict[int, np.ndarray] = {}
    if labels.ndim != 2:
        return found
    for index, box in enumerate(ndimage.find_objects(np.where(labels > 0, labels, 0)), start=1):
        if box is None:
            continue
        mask = np.pad(labels[box] == index, 1).astype(np.float32)
        contours = find_contours(mask, 0.5)
        if contours:
            longest = max(contours, key=len)
            found[index] = longest + np.array([box[0].start - 1, box[1].start - 1], np.float64)
    return found
