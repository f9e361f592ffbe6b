"""The models a macro will ask ``run("DeepImageJ Run", ...)`` for, loaded while ImageJ starts.

``deepij macro`` starts the JVM and ImageJ (about 2 s) before the macro runs, and the macro's first
``DeepImageJ Run`` then reads its bundle and loads its network (0.5 to several seconds): they wait on
different things, so the models a macro names in literal calls are found and loaded on a thread meanwhile,
into the model cache the command will use (:class:`~deepij.frontdoors.deepimagej_run.ModelCache`). Only
calls whose options are one string literal are read (``"model=[...] format=..."``; options built from
variables are left to the call itself); a model that cannot be found or loaded here is left to the call
too, which reports it as it would have.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deepij.frontdoors.deepimagej_run import ModelCache
    from deepij.frontdoors.run_options import RunRequest

_log = logging.getLogger("deepij.frontdoors")

LITERAL_CALL = re.compile(r'run\s*\(\s*"DeepImageJ Run"\s*,\s*"((?:[^"\\\n]|\\.)*)"\s*\)')
"""``run("DeepImageJ Run", "options")`` with its options as one string literal."""


def literal_run_options(code: str) -> list[str]:
    """The options of the macro's ``DeepImageJ Run`` calls that are one string literal, in order, each
    once; commented-out lines are left out.

    Examples
    --------
    >>> literal_run_options('run("DeepImageJ Run", "model=[a b] format=Pytorch");\\n'
    ...                     '// run("DeepImageJ Run", "model=[old]");\\n'
    ...                     'run("DeepImageJ Run", "model=[" + name + "]");')
    ['model=[a b] format=Pytorch']
    """
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("//"))
    return list(dict.fromkeys(match.group(1) for match in LITERAL_CALL.finditer(code)))


def models_named(code: str, models_dir: str | Path | None) -> list[tuple[Path, RunRequest]]:
    """(bundle, request) of each literal call whose model is found (in ``models_dir`` first, then the
    usual places; ImageJ's own folder is not known before ImageJ runs)."""
    from deepij.errors import DeepijError
    from deepij.frontdoors.deepimagej_run import find_run_model
    from deepij.frontdoors.run_options import parse_run_options

    found = []
    for options in literal_run_options(code):
        try:
            request = parse_run_options(options)
            found.append((find_run_model(request, None, models_dir), request))
        except DeepijError as error:  # the call reports it when it runs
            _log.debug("not loaded ahead: %s: %s", options, error)
    return found


def load_named_models(cache: ModelCache, code: str, models_dir: str | Path | None) -> int:
    """Load into ``cache`` the model of each literal call, with the network its call will run (same weights
    format, default device and runtime); the number loaded."""
    loaded = 0
    for source, request in models_named(code, models_dir):
        try:
            model = cache.get(source, request.weights_format)
            with model.network_turn:
                model.backend(request.weights_format)
            loaded += 1
        except Exception as error:  # the call loads it again and reports it
            _log.debug("not loaded ahead: %s: %s", source, error)
    return loaded


def start_loading(cache: ModelCache, code: str, models_dir: str | Path | None) -> threading.Thread:
    """:func:`load_named_models` on a thread of its own, started (join it before the macro runs)."""
    thread = threading.Thread(
        target=load_named_models, args=(cache, code, models_dir), name="deepij-load-models", daemon=True
    )
    thread.start()
    return thread
