"""deepij: run deepImageJ bundles and BioImage Model Zoo models from Python, with their ImageJ processing
inside a real ImageJ.

The public entry points are imported lazily, so ``import deepij`` is fast and works without a JVM or any
deep-learning framework installed:

- ``deepij.imagej()`` the process's one ImageJ session; ``deepij.attach(ij)`` adopts a pyimagej gateway;
- ``deepij.run_macro(macro, image)`` runs an ImageJ macro on numpy/xarray data;
- ``deepij.load(bundle)`` reads a bundle into a :class:`~deepij.pipeline.Model`
  (``.description``, ``.predict``);
- ``deepij.find_model(name)`` / ``deepij.install(zip_or_url)`` look up and install bundles;
- ``deepij.run_workflow(macro, inputs=..., answers=...)`` runs a workshop macro over a folder;
- ``deepij.test_bundle(bundle)`` reproduces a bundle's expected outputs from its test inputs;
- ``deepij.gui()`` shows ImageJ's window with Plugins > deepij, served by this process.

Every error deepij raises on purpose is a :class:`DeepijError`, importable from here.
"""

from __future__ import annotations

import importlib
from typing import Any

from deepij.errors import (
    ArchiveError,
    ArgumentError,
    ArgumentTypeError,
    BackendError,
    BundleError,
    ChecksumError,
    CommandNotFoundError,
    DeepijError,
    DeepijWarning,
    DownloadError,
    ExtraMissingError,
    HeadlessError,
    ImageJError,
    InputError,
    MacroError,
    MacroTimeoutError,
    ModelNotFoundError,
    OutputBusyError,
    OutputShapeError,
    ProcessingError,
    SeamWarning,
    StepError,
    TilingError,
)

__version__ = "0.1.0"

__all__ = [
    "ArchiveError",
    "ArgumentError",
    "ArgumentTypeError",
    "BackendError",
    "BundleError",
    "ChecksumError",
    "CommandNotFoundError",
    "DeepijError",
    "DeepijWarning",
    "DownloadError",
    "ExtraMissingError",
    "HeadlessError",
    "ImageJError",
    "InputError",
    "MacroError",
    "MacroTimeoutError",
    "ModelNotFoundError",
    "OutputBusyError",
    "OutputShapeError",
    "ProcessingError",
    "SeamWarning",
    "StepError",
    "TilingError",
    "__version__",
]

# name -> (module, attribute); attribute None means the module itself (deepij.imagej is a callable module).
_LAZY: dict[str, tuple[str, str | None]] = {
    "imagej": ("deepij.imagej", None),
    "attach": ("deepij.imagej", "attach"),
    "run_macro": ("deepij.imagej", "run_macro"),
    "load": ("deepij.pipeline", "load"),
    "Model": ("deepij.pipeline", "Model"),
    "Prediction": ("deepij.pipeline", "Prediction"),
    "find_model": ("deepij.bundle", "find_model"),
    "install": ("deepij.bundle", "install"),
    "run_workflow": ("deepij.frontdoors.workflow", "run_workflow"),
    "gui": ("deepij.frontdoors.gui", "gui"),
    "run_many": ("deepij.pipeline.distributed", "run_many"),
    "test_bundle": ("deepij.trust.reproduce", "test_bundle"),
    "build": ("deepij.trust.build", "build"),
    "validate": ("deepij.trust.validate", "validate"),
}

__all__ += list(_LAZY)

SESSION_HOOKS: list[str] = ["deepij.frontdoors.deepimagej_run:install",
                            "deepij.frontdoors.deepimagej_validate:install",
                            "deepij.imagej.luts:install",
                            "deepij.frontdoors.stardist_nms:install",
                            "deepij.frontdoors.deepimagej_instances:install",
                            "deepij.frontdoors.deepimagej_cellpose:install"]
"""``"module:function"`` names each new ImageJ session calls with itself once it is ready. The session imports
them only then, so ``import deepij`` stays light and the ``imagej`` package never imports what sits above it
(this one registers ``run("DeepImageJ Run", ...)``)."""


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'deepij' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    if attribute is not None:
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
