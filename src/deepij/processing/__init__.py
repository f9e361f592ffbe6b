"""Pre- and post-processing: the bioimage.io spec ops in numpy, chained with ImageJ macro and Java steps.

>>> from deepij.processing import apply_ops, preprocess, postprocess, OPS
"""

from deepij.processing.ops import OPS
from deepij.processing.spec import apply_ops, postprocess, preprocess

__all__ = ["OPS", "apply_ops", "postprocess", "preprocess"]
