"""The one place that wires bundles, processing, inference and ImageJ together.

``deepij.load(bundle)`` gives a :class:`Model`; ``Model.predict`` reads the input (:mod:`.sources`), runs
the bundle's pre-processing (:mod:`.steps`: ImageJ macros and Java steps inside ImageJ, or spec ops),
tiled inference and post-processing, and returns a :class:`Prediction` (:mod:`.outputs`: xarray and
pandas, ``show`` in ImageJ, ``save`` as ImageJ TIFF and CSV). Progress and log levels: :mod:`.progress`.
The front doors (``deepij run``, the ``DeepImageJ Run`` macro command) sit on top of this package; nothing
here imports them.
"""

from __future__ import annotations

from deepij.pipeline.model import Model, load
from deepij.pipeline.outputs import Prediction
from deepij.pipeline.progress import ProgressEvent
from deepij.pipeline.sources import Calibration, Source, read_source
from deepij.pipeline.steps import MODES, Chain, StepOutputs

__all__ = [
    "MODES",
    "Calibration",
    "Chain",
    "Model",
    "Prediction",
    "ProgressEvent",
    "Source",
    "StepOutputs",
    "load",
    "read_source",
]
