"""The exceptions deepij raises: one place, so callers can catch by concern.

Every message names what was wrong (file, field or argument), what was found and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class DeepijError(Exception):
    """Base class of every error deepij raises on purpose."""


class ArgumentError(DeepijError, ValueError):
    """A public function's argument with a value it cannot take (the message names the argument)."""


class ArgumentTypeError(ArgumentError, TypeError):
    """A public function's argument of a type it cannot take (the message names the argument)."""


class OutputBusyError(DeepijError, RuntimeError):
    """An output another process is writing now (it holds the output's lock); the message names the lock
    file and the process (pid, host) that holds it."""


class InputError(ArgumentError):
    """An image given to a model that cannot be used: its dtype, its values (NaN, inf) or its axes."""


class BundleError(DeepijError):
    """A bundle (descriptor, weights, archive) that cannot be used as it is.

    Not a ValueError: a broken file is not a bad argument, and code that catches ValueError from the
    libraries it calls (zipfile, yaml) must never swallow it.

    Parameters
    ----------
    message : str
        What is wrong, in words.
    file : str or Path, optional
        The file the problem is in.
    field : str, optional
        The descriptor field, as a dotted path (``inputs[0].shape.min``).
    found : object, optional
        What was found there.
    expected : str, optional
        What would have been accepted.

    Examples
    --------
    >>> str(BundleError("wrong axes", file="rdf.yaml", field="inputs[0].axes", found="bxyq",
    ...                 expected="letters from 'bitczyx'"))
    "rdf.yaml: inputs[0].axes: wrong axes (found 'bxyq', expected letters from 'bitczyx')"
    """

    _unset = object()

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        found: Any = _unset,
        expected: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.field = field
        self.found = None if found is BundleError._unset else found
        self.expected = expected
        where = ": ".join(p for p in (self.file, field) if p)
        detail = []
        if found is not BundleError._unset:
            detail.append(f"found {found!r}")
        if expected is not None:
            detail.append(f"expected {expected}")
        text = f"{where}: {message}" if where else message
        if detail:
            text += f" ({', '.join(detail)})"
        super().__init__(text)


class ChecksumError(BundleError):
    """A weights (or other) file whose sha256 differs from the one the descriptor gives."""


class ArchiveError(BundleError):
    """A zip archive that is unsafe or broken (path escape, links, size or file-count limits)."""


class ProcessingError(BundleError):
    """A spec processing step that cannot run: unknown op, missing or bad kwargs.

    ``field`` names the tensor, the step and the kwarg (``inputs['raw'].preprocessing[0].kwargs.gain``).
    """


class DownloadError(BundleError):
    """A download that failed, was cut short, or does not match its expected length or sha256."""


class ModelNotFoundError(DeepijError, LookupError):
    """No installed model matches a name, or several do."""


class ImageJError(DeepijError, RuntimeError):
    """The ImageJ session could not start or do what was asked."""


class HeadlessError(ImageJError):
    """A command that a headless ImageJ 1.x cannot run faithfully (its options would be ignored)."""


class MacroError(ImageJError):
    """An ImageJ macro failed.

    Attributes
    ----------
    macro_message : str
        ImageJ's own error text.
    line : int or None
        The macro line the error is on, when ImageJ tells it.
    source : str or None
        The macro file, when it came from one.
    """

    def __init__(
        self, macro_message: str, *, line: int | None = None, source: str | None = None
    ) -> None:
        self.macro_message = macro_message
        self.line = line
        self.source = source
        where = source or "macro"
        if line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: {macro_message}")


class MacroTimeoutError(MacroError):
    """A macro that ran past its time limit, or waited for a user who will never answer."""


class CommandNotFoundError(MacroError):
    """A macro ran a command this ImageJ does not have (``Unrecognized command``); the message names the
    component that provides it where known, and how to make it available to deepij."""


class StepError(DeepijError):
    """A bundle's pre- or post-processing step (macro, Java step or spec op) failed; the message names the
    bundle, the step and, for macros, the file and line."""


class ExtraMissingError(DeepijError, ImportError):
    """A feature that needs an optional package that is not installed; the message names deepij's extra
    (``pip install 'deepij[stardist]'``) and what needs it."""


class TilingError(ArgumentError):
    """No valid tiling exists for this image and model, or a requested tile size is invalid."""


class BackendError(DeepijError, RuntimeError):
    """A framework could not load or run a model's weights."""


class OutputShapeError(BackendError):
    """A network output whose shape contradicts the descriptor's rule.

    The message names the tensor, the axis, the declared size and the actual one.
    """


class DeepijWarning(UserWarning):
    """Base class of the warnings deepij gives (filter them with ``warnings.filterwarnings``)."""


class SeamWarning(DeepijWarning):
    """A tiled run whose declared halo is smaller than the network's measured receptive field: tile seams
    can differ from a whole-image pass."""
