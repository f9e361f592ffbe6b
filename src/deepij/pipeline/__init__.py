"""The one place that wires bundles, processing, inference and ImageJ together.

``deepij.load(bundle)`` gives a :class:`Model`; ``Model.predict`` runs pre-processing, tiled inference and
post-processing on an image and returns a :class:`Prediction`. The front doors (``deepij run``, the
``DeepImageJ Run`` macro command) sit on top of this package; nothing here imports them.
"""

from __future__ import annotations

from deepij.pipeline.model import Model, load
from deepij.pipeline.outputs import Prediction

__all__ = ["Model", "Prediction", "load"]
