"""A bundle's ``custom`` post-processing op: Python code from whoever made the bundle.

It runs only when all of these hold, and a refusal says which one failed:

- the caller allowed code (``deepij.load(..., allow_code=True)``, the switch that guards architectures);
- the file is inside the bundle (no URL, no path out of the bundle folder) and is there;
- its sha256 is given and matches the file's (whatever ``verify`` says: this is code);
- it imports, and names a callable ``callable``.

The file is imported under a private module name made from its sha256 (``deepij._bundle_code.<file>_<sha>``),
never under a name a user's own modules may have, and without adding the bundle folder to ``sys.path``.
Both styles the spec allows work: a class with ``__call__`` and a factory returning a function;
``op = callable(**kwargs)`` once, then ``op(*arrays)`` per image.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepij.bundle.description import ModelDescription
from deepij.errors import BundleError, ProcessingError, StepError
from deepij.processing.instances.params import CustomParams

CODE_PACKAGE = "deepij._bundle_code"
_loaded: dict[str, Any] = {}


def custom_operator(
    description: ModelDescription, params: CustomParams, *, allow_code: bool, where: str
) -> Callable[..., Any]:
    """The op a ``custom`` step calls per image (``callable(**kwargs)``), after the checks above."""
    code = params.code
    field = f"{where}.source"
    if not allow_code:
        raise ProcessingError(
            f"custom op {code.callable!r} is Python code from the bundle ({code.source}) and runs only when "
            "allowed: pass allow_code=True (deepij.load(..., allow_code=True)) if you trust this bundle, or "
            "predict(..., instances='none') for the network's raw outputs",
            file=description.descriptor,
            field=field,
        )
    path = _bundle_file(description, code.source, field)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != str(code.sha256).lower():
        raise ProcessingError(
            "the custom op's file does not match its sha256: it is not the code the bundle describes",
            file=path,
            field=f"{where}.sha256",
            found=digest,
            expected=str(code.sha256),
        )
    module = _import(path, digest)
    factory = getattr(module, code.callable, None)
    if factory is None or not callable(factory):
        names = sorted(n for n in vars(module) if not n.startswith("_"))
        raise ProcessingError(
            f"{path.name} has no callable {code.callable!r}",
            file=path,
            field=f"{where}.callable",
            found=names,
            expected="a class with __call__ or a factory function",
        )
    try:
        op = factory(**dict(code.kwargs))
    except Exception as error:
        raise StepError(f"{path.name}: {code.callable}(**{dict(code.kwargs)!r}) failed: {error!r}") from error
    if not callable(op):
        raise StepError(
            f"{path.name}: {code.callable}(**kwargs) returned {type(op).__name__!r}; expected a callable "
            "(an instance with __call__, or the function a factory returns)"
        )
    return op


def _bundle_file(description: ModelDescription, source: str, field: str) -> Path:
    from deepij.bundle import resolve_file

    try:
        return resolve_file(description, source, None, verify=False, field=field)
    except BundleError as error:
        raise ProcessingError(
            f"the custom op's file cannot be used: {error}",
            file=description.descriptor,
            field=field,
            found=source,
            expected="a .py file inside the bundle folder",
        ) from error


def _import(path: Path, digest: str) -> Any:
    """The module of ``path`` under a private name; the same file (by sha256) is imported once."""
    if digest in _loaded:
        return _loaded[digest]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    name = f"{CODE_PACKAGE}.{stem}_{digest[:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ProcessingError("cannot be imported as a Python module", file=path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a private name: classes defined in it (dataclasses) can find their module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise ProcessingError(f"importing the custom op's file failed: {error!r}", file=path) from error
    _loaded[digest] = module
    return module
