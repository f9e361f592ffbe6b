"""``run("DeepImageJ Validate", "...")`` in users' macros: deepij's validation, answered as a ResultsTable.

deepImageJ's *Validate* dialog asks for a *Reference image* and a *Test image* among the open images, with
one checkbox per metric; ImageJ records that as ``reference=[title] test=[title]`` followed by the names of
the checked metrics, and shows the results in a table titled ``Loss``. This command reads the same options
(and a few more), measures with :func:`deepij.trust.validate.validate`, and leaves the table where the next
macro lines look for it:

- ``reference=`` / ``test=``: the title of an open image, else a file or a folder (folders: pairs by name);
- metric names as words (case-insensitive: ``ssim psnr norml2``), or ``images`` (the default: every image
  metric), ``labels`` (Dice, Jaccard, matched objects), ``all``;
- ``per_slice``: one row per plane of a stack, as deepImageJ lists stacks;
- ``iou=0.5``, ``data_range=255``, ``suffix=_output`` (a test file's name is the reference's plus this);
- ``table=[Loss]``: the table's title (``table=Results`` puts it in the Results table, for ``getResult``);
- ``decimal=3``: the decimal places the table shows (the values keep full precision);
- ``save=[folder]``: also write ``validation.csv`` and ``validation.json`` there;
  ``figures=[folder]``: a PNG per pair.

Why a value is NaN (a metric outside its domain) is written to ImageJ's Log. A bad option, an image title
that is not open, or images of different shapes stop the macro at that line.

Examples
--------
>>> import deepij, numpy as np
>>> truth = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
>>> result = deepij.imagej().run_macro(
...     'run("DeepImageJ Validate", "reference=[truth] test=[prediction] ssim psnr");'
...     'return "" + Table.get("SSIM", 0, "Loss");', image={"truth": truth, "prediction": truth})
>>> float(result.value)
1.0
>>> parse_validate_options("reference=[my truth] test=out.tif SSIM per_slice iou=0.7").metrics
['SSIM']
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import ArgumentError, InputError

if TYPE_CHECKING:
    from deepij.imagej.commands import CommandCall
    from deepij.imagej.session import Session
    from deepij.trust.validate import Validation

COMMAND = "DeepImageJ Validate"
TABLE_TITLE = "Loss"
"""The title deepImageJ's Validate gives its table."""

_VALUE_KEYS = ("reference", "test", "iou", "data_range", "suffix", "table", "decimal", "save", "figures")
_FLAGS = ("per_slice",)
_TOKEN = re.compile(r"(\w+)=(\[[^\]]*\]|\S*)|(\S+)")


@dataclass
class ValidateRequest:
    """The options of one ``run("DeepImageJ Validate", ...)`` call, read and checked."""

    reference: str
    test: str
    metrics: list[str] = field(default_factory=list)
    per_slice: bool = False
    iou: float = 0.5
    data_range: float | None = None
    suffix: str = ""
    table: str = TABLE_TITLE
    decimal: int | None = None
    save: Path | None = None
    figures: Path | None = None


def parse_validate_options(options: str) -> ValidateRequest:
    """Read the option string (see the module docstring) into a request.

    As ImageJ reads options, a value ends at the first space unless brackets ``[...]`` wrap it; words
    without ``=`` are checkboxes (metric names, ``per_slice``).

    Raises
    ------
    ArgumentError
        A missing ``reference=`` or ``test=``, an unknown key or word, a key given twice, or a number that is
        not one.

    Examples
    --------
    >>> request = parse_validate_options("reference=[truth 1] test=prediction norml2 ssim decimal=4")
    >>> request.reference, request.test, request.metrics, request.decimal
    ('truth 1', 'prediction', ['NormL2', 'SSIM'], 4)
    """
    from deepij.trust.validate import metric_names

    values: dict[str, str] = {}
    words: list[str] = []
    flags: set[str] = set()
    for match in _TOKEN.finditer(options or ""):
        key, value, word = match.group(1), match.group(2), match.group(3)
        if word is not None:
            if word.lower() in _FLAGS:
                flags.add(word.lower())
            else:
                words.append(word)
            continue
        key = key.lower()
        if key not in _VALUE_KEYS:
            raise ArgumentError(f"{key}=: unknown key in {options!r} (expected "
                                + ", ".join(f"{k}=" for k in _VALUE_KEYS) + ", metric names or per_slice)")
        if key in values:
            raise ArgumentError(f"{key}=: given twice in {options!r} (expected it once)")
        values[key] = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    for key in ("reference", "test"):
        if not values.get(key):
            raise ArgumentError(
                f"{key}=: missing in {options!r} (expected {key}=[image title, file or folder])"
            )
    request = ValidateRequest(reference=values["reference"], test=values["test"],
                              metrics=metric_names(words) if words else [], per_slice="per_slice" in flags)
    if "iou" in values:
        request.iou = _number("iou", values["iou"])
    if "data_range" in values:
        request.data_range = _number("data_range", values["data_range"])
    if "decimal" in values:
        request.decimal = int(_number("decimal", values["decimal"], whole=True))
    request.suffix = values.get("suffix", "")
    request.table = values.get("table") or TABLE_TITLE
    for key in ("save", "figures"):
        if values.get(key):
            setattr(request, key, Path(values[key]).expanduser())
    return request


def _number(key: str, text: str, *, whole: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (whole and not value.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise ArgumentError(f"{key}={text}: expected {kind}")
    return value


class DeepImageJValidate:
    """The handler of ``run("DeepImageJ Validate", ...)`` (one per session)."""

    def __call__(self, call: CommandCall) -> None:
        # what it raises (a bad option, an image not open) stops the macro as a MacroError at the calling line
        self.run(call)

    def run(self, call: CommandCall) -> Validation:
        """What the command does (see the module docstring); returns the validation."""
        from deepij.trust.validate import validate

        request = parse_validate_options(call.options)
        reference = _image_or_path(call.session, request.reference, "reference")
        test = _image_or_path(call.session, request.test, "test")
        result = validate(
            reference, test, metrics=request.metrics or None, per_slice=request.per_slice,
            data_range=request.data_range, iou_threshold=request.iou, test_suffix=request.suffix,
            figures=request.figures,
        )
        table = call.session.to_resultstable(result.table)
        if request.decimal is not None:
            table.setPrecision(int(request.decimal))
        call.session.publish_table(table, request.table)
        if request.save is not None:
            result.save(request.save)
        _log_notes(result.notes)
        return result


def _image_or_path(session: Session, value: str, key: str) -> Any:
    """The open image titled ``value`` (as an xarray), else the file or folder of that path."""
    from deepij.imagej._java import jc, jstr

    imp = jc.WindowManager.getImage(value)
    if imp is not None:
        return session.to_xarray(imp).rename(value)
    path = Path(value).expanduser()
    if path.exists():
        return path
    titles = [jstr(t) or "" for t in (jc.WindowManager.getImageTitles() or [])]
    raise InputError(
        f"{key}=[{value}]: no open image has this title and no such file or folder exists (expected the "
        f"title of an open image, a file or a folder; open images: {', '.join(titles) or 'none'})"
    )


def _log_notes(notes: list[str]) -> None:
    if not notes:
        return
    from deepij.imagej._java import jc

    for note in notes:
        jc.IJ.log(f"{COMMAND}: {note}")


def install(session: Session) -> DeepImageJValidate:
    """Serve ``run("DeepImageJ Validate", ...)`` on ``session`` from now on; returns the handler.

    A second call keeps the handler already installed.

    Examples
    --------
    >>> import deepij
    >>> handler = install(deepij.imagej())
    >>> install(deepij.imagej()) is handler
    True
    """
    current = session.commands.handlers().get(COMMAND)
    if isinstance(current, DeepImageJValidate):
        return current
    handler = DeepImageJValidate()
    session.commands.register(COMMAND, handler)
    return handler
