"""Instance segmentation: the spec 0.5 ops that turn a network's output into labelled objects.

- ``stardist_postprocessing``: StarDist's NMS and polygon/polyhedron rasterisation (``stardist`` package,
  extra ``deepij[stardist]``), :func:`stardist_instances`;
- ``cellpose_flow_dynamics``: cellpose's flow dynamics (``cellpose`` package, extra ``deepij[cellpose]``),
  :func:`cellpose_instances`;
- ``custom``: the bundle's own Python callable, only with ``allow_code`` and a matching sha256.

They run on the whole stitched output (never one tile): :func:`plan_instances` says which outputs and what
the network gives for them, :func:`run_instances` runs them. Each image gives :class:`Instances`: the label
image, a table of objects (label, centroid, area, mean probability) and the outlines (StarDist's polygons:
the ROIs StarDist's Fiji plugin leaves).

Examples
--------
>>> import numpy as np
>>> prob = np.zeros((32, 32), np.float32); prob[16, 16] = 0.9
>>> found = stardist_instances(prob, np.full((32, 32, 16), 5.0, np.float32), grid=(1, 1),
...                            prob_threshold=0.5, nms_threshold=0.4)
>>> found.table[["label", "centroid_y", "centroid_x"]].round(1).values.tolist()
[[1.0, 16.0, 16.0]]
"""

from deepij.processing.instances.cellpose import cellpose_instances
from deepij.processing.instances.params import INSTANCE_OPS
from deepij.processing.instances.plan import MODES, InstancePlan, InstanceStep, check_mode, plan_instances
from deepij.processing.instances.run import InstanceResult, run_instances
from deepij.processing.instances.stardist import stardist_instances, stardist_polygons
from deepij.processing.instances.table import Instances, object_table, outlines

__all__ = [
    "INSTANCE_OPS",
    "MODES",
    "InstancePlan",
    "InstanceResult",
    "InstanceStep",
    "Instances",
    "cellpose_instances",
    "check_mode",
    "object_table",
    "outlines",
    "plan_instances",
    "run_instances",
    "stardist_instances",
    "stardist_polygons",
]
