"""StarDist's post-processing with the ``stardist`` package: non-maximum suppression of the star-convex
candidates, then polygon (2-D) or polyhedron (3-D) rasterisation, as StarDist2D/3D's
``_instances_from_prediction`` turn a dense prediction into instances.

Inputs are the whole probability map (``prob``, at ``1/grid`` of the image's resolution) and the distances
(``dist``, the rays on the last axis, in image pixels); the labels are drawn at the image's size. In 2-D,
label ``k`` is the ``k``-th polygon NMS kept (by descending probability; the more probable ones are drawn
last, on top), and :attr:`Instances.polygons` holds its vertices: what StarDist's Fiji plugin puts in the
ROI Manager. In 3-D the labels are made sequential as StarDist3D does.

Examples
--------
>>> import numpy as np
>>> prob = np.zeros((16, 16), np.float32); prob[8, 8] = 0.9
>>> dist = np.full((16, 16, 8), 3.0, np.float32)
>>> found = stardist_instances(prob, dist, grid=(1, 1), prob_threshold=0.5, nms_threshold=0.4)
>>> int(found.labels.max()), found.table["label"].tolist(), found.polygons[1].shape
(1, [1], (8, 2))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepij.errors import ArgumentError
from deepij.processing.instances.extras import import_extra
from deepij.processing.instances.params import Border, StardistParams
from deepij.processing.instances.table import Instances, grid_upsampled, object_table


def stardist_instances(
    prob: np.ndarray,
    dist: np.ndarray,
    *,
    grid: Sequence[int],
    prob_threshold: float,
    nms_threshold: float,
    b: Border = 2,
    shape: Sequence[int] | None = None,
    anisotropy: Sequence[float] | None = None,
    overlap_label: int | None = None,
) -> Instances:
    """Labels, object table and polygons from one image's StarDist prediction.

    Parameters
    ----------
    prob : ndarray
        Object probability, ``(Y', X')`` or ``(Z', Y', X')`` at ``1/grid`` of the image's resolution.
    dist : ndarray
        Distances to the boundary along each ray, ``prob.shape + (n_rays,)``, in image pixels.
    grid : sequence of int
        The network's subsampling per spatial axis (2 or 3 ints).
    prob_threshold, nms_threshold : float
        Candidates below ``prob_threshold`` are dropped; NMS drops a candidate that overlaps a kept one by
        more than ``nms_threshold`` (intersection over union).
    b : int or pairs
        Border (in ``prob`` pixels) where candidates are not taken, per side or per axis.
    shape : sequence of int, optional
        The image's size (default ``prob.shape * grid``).
    anisotropy : sequence of float, optional
        3-D only: the rays' anisotropy (z, y, x), as the model was configured (default isotropic).
    overlap_label : int, optional
        3-D only: the label given to pixels where polyhedra overlap.

    Returns
    -------
    Instances
        Labels (int32), the object table (with ``score``: the probability NMS kept each object at) and,
        in 2-D, the polygons by label.
    """
    params = StardistParams(
        tuple(int(g) for g in grid),
        prob_threshold,
        nms_threshold,
        b,
        None,
        None if anisotropy is None else _three(anisotropy),
        overlap_label,
    )
    prob, dist = _checked(np.asarray(prob), np.asarray(dist), params)
    size = (
        tuple(int(s) for s in shape)
        if shape is not None
        else tuple(n * g for n, g in zip(prob.shape, params.grid, strict=True))
    )
    if params.ndim == 2:
        labels, scores, polygons = _instances_2d(prob, dist, params, size)
    else:
        labels, scores, polygons = _instances_3d(prob, dist, params, size)
    probability = grid_upsampled(prob, params.grid, size)
    table = object_table(labels, probability, scores=scores)
    return Instances(labels, table, polygons)


def _three(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) != 3:
        raise ArgumentError(f"anisotropy: expected 3 numbers (z, y, x), not {values!r}")
    return float(values[0]), float(values[1]), float(values[2])


def _checked(prob: np.ndarray, dist: np.ndarray, params: StardistParams) -> tuple[np.ndarray, np.ndarray]:
    ndim = params.ndim
    if prob.ndim != ndim or dist.ndim != ndim + 1 or dist.shape[:-1] != prob.shape:
        raise ArgumentError(
            f"stardist: prob {prob.shape} and dist {dist.shape} do not match a {ndim}-D grid {params.grid}; "
            f"expected prob with {ndim} dims and dist with the same plus the rays"
        )
    if dist.shape[-1] < 3:
        raise ArgumentError(f"stardist: {dist.shape[-1]} rays; expected at least 3")
    # stardist's C code takes float32 (its own predictions are float32)
    return np.ascontiguousarray(prob, np.float32), np.ascontiguousarray(dist, np.float32)


def stardist_polygons(
    prob: np.ndarray,
    dist: np.ndarray,
    *,
    grid: Sequence[int] = (1, 1),
    prob_threshold: float,
    nms_threshold: float,
    b: Border = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """StarDist's 2-D non-maximum suppression alone (no label image).

    Parameters are those of :func:`stardist_instances` (2-D only).

    Returns
    -------
    points : ndarray
        ``(n, 2)`` centres ``(y, x)`` of the kept polygons in image pixels, by descending probability.
    scores : ndarray
        Their probabilities.
    dist : ndarray
        Their ray lengths, ``(n, rays)``.
    polygons : ndarray
        Their vertices, ``(n, rays, 2)`` as ``(y, x)`` (pixel centres at integer coordinates).

    Examples
    --------
    >>> prob = np.zeros((16, 16), np.float32); prob[8, 8] = 0.9
    >>> points, scores, _, polygons = stardist_polygons(
    ...     prob, np.full((16, 16, 4), 3.0, np.float32), prob_threshold=0.5, nms_threshold=0.4)
    >>> points.tolist(), polygons[0].round(3).tolist()
    ([[8, 8]], [[8.0, 11.0], [11.0, 8.0], [8.0, 5.0], [5.0, 8.0]])
    """
    params = StardistParams(tuple(int(g) for g in grid), prob_threshold, nms_threshold, b, None, None, None)
    if params.ndim != 2:
        raise ArgumentError(f"grid: stardist_polygons is 2-D; expected 2 integers, not {tuple(grid)}")
    prob, dist = _checked(np.asarray(prob), np.asarray(dist), params)
    stardist = import_extra("stardist", "stardist", "StarDist post-processing")
    from stardist.geometry import dist_to_coord

    points, probi, disti = stardist.non_maximum_suppression(
        dist,
        prob,
        grid=params.grid,
        b=_nms_border(params.b),
        prob_thresh=params.prob_threshold,
        nms_thresh=params.nms_threshold,
    )
    coords = dist_to_coord(disti, points)  # (n, 2, rays)
    return points, probi, disti, np.ascontiguousarray(np.moveaxis(coords, 1, 2))


def _instances_2d(
    prob: np.ndarray, dist: np.ndarray, params: StardistParams, shape: tuple[int, ...]
) -> tuple[np.ndarray, dict[int, float], dict[int, np.ndarray]]:
    stardist = import_extra("stardist", "stardist", "StarDist post-processing")

    points, probi, disti, coords = stardist_polygons(
        prob,
        dist,
        grid=params.grid,
        prob_threshold=params.prob_threshold,
        nms_threshold=params.nms_threshold,
        b=params.b,
    )
    labels = stardist.polygons_to_label(disti, points, prob=probi, shape=shape)
    polygons = {k + 1: coords[k] for k in range(len(coords))}  # label k is polygon k-1
    scores = {k + 1: float(p) for k, p in enumerate(probi)}
    return labels.astype(np.int32, copy=False), scores, polygons


def _instances_3d(
    prob: np.ndarray, dist: np.ndarray, params: StardistParams, shape: tuple[int, ...]
) -> tuple[np.ndarray, dict[int, float], dict[int, np.ndarray]]:
    stardist = import_extra("stardist", "stardist", "StarDist post-processing")
    from stardist.matching import relabel_sequential

    rays = stardist.Rays_GoldenSpiral(dist.shape[-1], anisotropy=params.anisotropy)
    points, probi, disti = stardist.non_maximum_suppression_3d(
        dist,
        prob,
        rays,
        grid=params.grid,
        b=_nms_border(params.b),
        prob_thresh=params.prob_threshold,
        nms_thresh=params.nms_threshold,
    )
    raw = stardist.polyhedron_to_label(
        disti, points, rays=rays, prob=probi, shape=shape, overlap_label=params.overlap_label, verbose=False
    )
    labels, scores = _sequential_3d(raw, probi, params.overlap_label, relabel_sequential)
    return labels, scores, {}


def _sequential_3d(
    raw: np.ndarray, probi: np.ndarray, overlap_label: int | None, relabel: Any
) -> tuple[np.ndarray, dict[int, float]]:
    """Sequential labels as StarDist3D makes them (a negative overlap label kept as it is), and each
    object's NMS score by its new label."""
    if overlap_label is not None and overlap_label < 0 and overlap_label in raw:
        overlap = raw == overlap_label
        raw = raw.copy()
        raw[overlap] = max(set(np.unique(raw)) - {overlap_label}) + 1
        labels, forward, _ = relabel(raw)
        labels[overlap] = overlap_label
    else:
        labels, forward, _ = relabel(raw)
    scores = {}
    for k, p in enumerate(probi):  # polyhedron k was drawn as label k+1 before relabelling
        new = int(forward[k + 1]) if k + 1 < len(forward) else 0
        if new > 0:
            scores[new] = float(p)
    return labels.astype(np.int32, copy=False), scores


def _nms_border(b: Border) -> Any:
    return b if isinstance(b, int) else tuple(tuple(p) for p in b)
