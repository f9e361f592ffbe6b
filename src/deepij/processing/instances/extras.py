"""The optional packages the instance ops need, imported on first use; when one is missing, the error names
deepij's extra that installs it.

Examples
--------
>>> import_extra("numpy", "stardist", "StarDist post-processing").__name__
'numpy'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from deepij.errors import ExtraMissingError

INSTALL = {
    "stardist": "pip install 'deepij[stardist]'",
    "cellpose": "pip install 'deepij[cellpose]' (then, beside a CPU torch whose torchvision cannot be "
    "installed: pip install --no-deps 'cellpose==4.1.1'; see README)",
}


def import_extra(module: str, extra: str, what: str) -> ModuleType:
    """``import module``, or :class:`~deepij.errors.ExtraMissingError` naming ``extra`` and ``what``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ExtraMissingError(
            f"{what} needs the '{module}' package, which cannot be imported ({error}); "
            f"install deepij's '{extra}' extra: {INSTALL.get(extra, f'pip install deepij[{extra}]')}"
        ) from error
