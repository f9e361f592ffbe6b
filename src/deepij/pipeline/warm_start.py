"""The network loads while ImageJ starts, when a run needs both.

Starting the JVM and ImageJ (about 2 s, :mod:`deepij.imagej.runtime`) and loading a network (the graph
cache read, the engine's session built, a framework imported: 0.5 to several seconds) wait on different
things, so a run whose bundle has ImageJ steps does them at once: the network on a thread, ImageJ on the
calling one (a JVM is started from the thread that will shut it down). Whatever either raises is left for
the run itself to meet and report as it would have without this (a backend that did not load is loaded
again, and fails there, with the image it failed for).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepij.pipeline.model import Model

_log = logging.getLogger("deepij.pipeline")


def needs_imagej_start(model: Model, options: Mapping[str, Any]) -> bool:
    """Whether a predict with ``options`` will start ImageJ: the bundle's ImageJ steps run, no session was
    given, and none runs yet."""
    from deepij.errors import DeepijError
    from deepij.imagej.runtime import current_session
    from deepij.pipeline.steps import choose_mode, has_imagej_steps

    if options.get("session") is not None or current_session() is not None:
        return False
    try:
        mode = choose_mode(model.description, str(options.get("processing", "auto")))
    except DeepijError:
        return False  # the run refuses the option itself
    return mode == "macros" and has_imagej_steps(model.description)


def load_beside_imagej(model: Model, options: Mapping[str, Any]) -> bool:
    """Load ``model``'s network (as a predict with ``options`` will ask for it) on a thread while ImageJ
    starts on this one, when the run needs both; True when it did."""
    if not needs_imagej_start(model, options):
        return False
    loading = threading.Thread(target=_load, args=(model, options), name="deepij-load-network", daemon=True)
    loading.start()
    from deepij.imagej import imagej

    try:
        imagej()
    except Exception as error:  # each image meets it again and reports it
        _log.debug("ImageJ did not start beside the network: %s", error)
    loading.join()
    return True


def _load(model: Model, options: Mapping[str, Any]) -> None:
    try:
        with model.network_turn:
            model.backend(
                options.get("weights_format"),
                options.get("device"),
                str(options.get("runtime", "auto")),
                str(options.get("precision", "float32")),
            )
    except Exception as error:  # the run loads it again, reports it
        _log.debug("the network did not load beside ImageJ: %s", error)
