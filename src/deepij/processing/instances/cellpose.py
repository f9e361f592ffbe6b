"""Cellpose's flow dynamics with the ``cellpose`` package: pixels whose cell probability passes the
threshold follow the flows (``niter`` steps), end points that gather are one object, objects whose flows
disagree with the flows their own mask would give (the flow error) are removed, then objects smaller than
``min_size`` (holes filled). This is ``cellpose.dynamics.compute_masks``, what cellpose's own models run
after the network.

Inputs: the flows, ``(2, Y, X)`` as ``(dy, dx)`` (``(3, Z, Y, X)`` as ``(dz, dy, dx)`` with ``do_3D``), and
the cell-probability logit, ``(Y, X)`` (``(Z, Y, X)``); the network gives them as channels 0-1 (0-2) and
2 (3).
"""

from __future__ import annotations

import numpy as np

from deepij.errors import ArgumentError
from deepij.processing.instances.extras import import_extra
from deepij.processing.instances.table import Instances, object_table, outlines

NITER = 200
"""Flow-following steps, cellpose's default at the network's own scale (its models scale it with resizing)."""


def cellpose_instances(
    flows: np.ndarray,
    cellprob: np.ndarray,
    *,
    cellprob_threshold: float = 0.0,
    flow_threshold: float = 0.4,
    do_3D: bool = False,
    min_size: int = 15,
    output_dtype: str = "uint16",
    niter: int = NITER,
) -> Instances:
    """Labels, object table and outlines from one image's Cellpose flows and cell probability.

    Parameters
    ----------
    flows : ndarray
        ``(2, Y, X)`` (``dy``, ``dx``) or, with ``do_3D``, ``(3, Z, Y, X)``.
    cellprob : ndarray
        The cell-probability logit at the same size (``mean_probability`` in the table is its sigmoid).
    cellprob_threshold, flow_threshold : float
        Pixels above ``cellprob_threshold`` are followed; objects whose flow error exceeds
        ``flow_threshold`` are removed (2-D; 0 keeps them all).
    min_size : int
        Objects below this many pixels are removed (0 keeps them all).
    output_dtype : {"uint16", "uint32"}
        The label image's type.
    """
    flows, cellprob = _checked(np.asarray(flows), np.asarray(cellprob), do_3D)
    import_extra("cellpose", "cellpose", "Cellpose flow dynamics")
    dynamics = import_extra("cellpose.dynamics", "cellpose", "Cellpose flow dynamics")
    masks = dynamics.compute_masks(
        flows,
        cellprob,
        niter=niter,
        cellprob_threshold=cellprob_threshold,
        flow_threshold=flow_threshold,
        do_3D=do_3D,
        min_size=min_size,
    )
    if isinstance(masks, tuple):  # cellpose 3 returns (masks, p)
        masks = masks[0]
    if int(np.max(masks, initial=0)) > np.iinfo(output_dtype).max:
        raise ArgumentError(
            f"cellpose: {int(np.max(masks))} objects do not fit output_dtype {output_dtype!r}; "
            "expected uint32"
        )
    labels = np.asarray(masks).astype(output_dtype, copy=False)
    probability = 1.0 / (1.0 + np.exp(-cellprob.astype(np.float64)))
    return Instances(labels, object_table(labels, probability), outlines(labels))


def _checked(flows: np.ndarray, cellprob: np.ndarray, do_3d: bool) -> tuple[np.ndarray, np.ndarray]:
    ndim = 3 if do_3d else 2
    if flows.shape != (ndim, *cellprob.shape) or cellprob.ndim != ndim:
        raise ArgumentError(
            f"cellpose: flows {flows.shape} and cellprob {cellprob.shape}; expected flows ({ndim}, *S) and "
            f"cellprob S with {ndim} spatial dims" + (" (do_3D)" if do_3d else "")
        )
    return np.ascontiguousarray(flows, np.float32), np.ascontiguousarray(cellprob, np.float32)
