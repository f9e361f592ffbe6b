"""Model bundles: the normalized description, readers for descriptor 0.3 / 0.4 / 0.5, archives, install,
lookup by name, checks. Imports neither ``deepij.imagej`` nor ``deepij.inference``.

Public entry points:

- :func:`open_bundle` (folder, descriptor, zip or URL -> :class:`ModelDescription`);
- :func:`resolve_weights` (a weights entry -> a local path a framework can load, sha256-checked);
- :func:`write_descriptor` (a description -> ``rdf.yaml``, 0.5 or 0.4);
- :func:`install`, :func:`find_model`, :func:`installed_models`, :func:`default_models_dir`;
- :func:`summarize` (what ``deepij info`` shows);
- :func:`read_tensor_file` (a test or sample tensor the bundle ships -> an array or a table).
"""

from deepij.bundle.description import ModelDescription
from deepij.bundle.info import summarize
from deepij.bundle.install import install
from deepij.bundle.locations import default_models_dir, find_descriptor
from deepij.bundle.lookup import find_model, installed_models
from deepij.bundle.opening import open_bundle
from deepij.bundle.tensor_files import read_tensor_file
from deepij.bundle.weights import resolve_file, resolve_weights
from deepij.bundle.writer import write_descriptor

__all__ = [
    "ModelDescription",
    "default_models_dir",
    "find_descriptor",
    "find_model",
    "install",
    "installed_models",
    "open_bundle",
    "read_tensor_file",
    "resolve_file",
    "resolve_weights",
    "summarize",
    "write_descriptor",
]
