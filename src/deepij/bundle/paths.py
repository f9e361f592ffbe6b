"""The one check that turns a path a descriptor names into a file path: it must stay inside the bundle.

Descriptors come from strangers. A weights ``source: /etc/passwd``, an attachment ``../../.ssh/id_rsa`` or a
macro that is a symbolic link to a file elsewhere would make deepij hash, print, unpack or run a file the
bundle does not hold. :func:`inside_bundle` is used wherever a descriptor path becomes a file path (weights,
architectures, macros, jars, attachments, test and sample files); readers call it through
:func:`deepij.bundle.checks.check_description` too, so such a bundle is refused when it is opened.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from deepij.errors import BundleError

_EXPECTED = "a path relative to the bundle folder that stays inside it"


def is_url(text: str) -> bool:
    """True for ``http(s)://`` (and other ``scheme://``) references, which are not bundle paths."""
    return "://" in text


def inside_bundle(
    root: str | Path, relative: str, *, descriptor: str | Path | None = None, field: str | None = None
) -> Path:
    """``root / relative``, refusing anything that leads out of ``root``.

    The path is refused when it is absolute (``/etc/passwd``, ``C:/x``, ``//server/share``), or when, with
    ``..`` parts and symbolic links resolved, it ends outside ``root`` (itself resolved). Paths to files
    that do not exist yet are checked as far as they exist.

    Parameters
    ----------
    root : str or Path
        The bundle folder.
    relative : str
        The path as the descriptor gives it (``\\`` taken as ``/``).
    descriptor : str or Path, optional
        The descriptor file, named in the error.
    field : str, optional
        The descriptor field, named in the error.

    Returns
    -------
    Path
        ``root / relative`` (not resolved: the path the user sees).

    Raises
    ------
    BundleError
        Naming the descriptor, the field, the path found and what was expected.

    Examples
    --------
    >>> inside_bundle("bundle", "weights/model.pt")
    PosixPath('bundle/weights/model.pt')
    >>> inside_bundle("bundle", "/etc/passwd", field="weights.onnx.source")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    deepij.errors.BundleError: weights.onnx.source: path leads out of the bundle folder (found '/etc/pa...
    """
    text = relative.replace("\\", "/")
    pure = PurePosixPath(text)
    drive = bool(pure.parts) and pure.parts[0].endswith(":")
    if pure.is_absolute() or drive or "\x00" in text:
        raise _escape(relative, descriptor, field)
    root_path = Path(root)
    candidate = root_path / pure
    try:
        real_root = os.path.realpath(root_path)
        real = os.path.realpath(candidate)
    except (OSError, ValueError):  # a symlink loop, a name the system refuses
        raise _escape(relative, descriptor, field) from None
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise _escape(relative, descriptor, field)
    return candidate


def _escape(relative: str, descriptor: str | Path | None, field: str | None) -> BundleError:
    message = "path leads out of the bundle folder"
    return BundleError(message, file=descriptor, field=field, found=relative, expected=_EXPECTED)
