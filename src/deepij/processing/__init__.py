"""Pre- and post-processing: the bioimage.io spec ops in numpy, chained with ImageJ macro and Java steps.

>>> from deepij.processing import apply_ops, preprocess, postprocess, OPS
"""

from deepij.dask_on_demand import keep_dask_unloaded
from deepij.processing.ops import OPS
from deepij.processing.spec import apply_ops, postprocess, preprocess

keep_dask_unloaded()  # the ops' DataArrays would import dask otherwise

__all__ = ["OPS", "apply_ops", "postprocess", "preprocess"]
