"""The errors a macro run raises: ImageJ's error text and line made a MacroError that names its macro.

A macro that failed inside another one (a bundle's pre-processing macro run by ``run("DeepImageJ Run",
...)`` in a user's macro) is named by its own file and line, and the error says where it was called from:
``.../per_sample_scale_range.ijm, line 3: ... (called from analyse.ijm, line 6: run("DeepImageJ Run",
...))``.

Examples
--------
>>> error = called_from(MacroError("Undefined variable", line=3, source="pre.ijm"), 6, "user.ijm",
...                     ['a = 1;'] * 5 + ['run("DeepImageJ Run", "model=m");'])
>>> print(error)
pre.ijm, line 3: Undefined variable (called from user.ijm, line 6: run("DeepImageJ Run", "model=m");)
>>> error.line, error.source
(3, 'pre.ijm')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepij.errors import ArgumentError, DeepijError, HeadlessError, MacroError
from deepij.imagej._java import is_macro_canceled, java_name, jc, jstr, private_field
from deepij.imagej.missing_commands import command_not_found, unrecognized_command


def macro_error(message: str, *, line: int | None, source: str | None) -> MacroError:
    """The MacroError for ImageJ's error text: a CommandNotFoundError for ``Unrecognized command``."""
    if unrecognized_command(message) is not None:
        return command_not_found(message, line=line, source=source, luts_dir=_luts_dir())
    return MacroError(message, line=line, source=source)


def _luts_dir() -> str | None:
    """The ``luts/`` folder where this ImageJ finds ``NAME.lut`` for ``run("NAME")``."""
    try:
        return jstr(jc.IJ.getDirectory("luts"))
    except Exception:  # no ImageJ folder known: the hint names the folder in words
        return None


def is_cancel(error: BaseException) -> bool:
    """ImageJ ends a macro by exit() (or an answered cancel) with RuntimeException("Macro canceled")."""
    return is_macro_canceled(error)


def error_line(interp: Any) -> int | None:
    """The line ImageJ reported the error on (kept in a package-private field), else the line it was at."""
    try:
        line = int(private_field("ij.macro.Interpreter", "lineNumber").getInt(interp))
    except Exception:
        line = 0
    return line if line > 0 else current_line(interp)


def current_line(interp: Any) -> int | None:
    """The line the interpreter is at (None before it read any)."""
    if interp is None:
        return None
    try:
        line = int(interp.getLineNumber())
    except Exception:  # before the program is tokenized there is no line yet
        return None
    return line if line > 0 else None


def code_of(lines: Sequence[str], line: int | None) -> str | None:
    """The code of a macro line (1-based), stripped, or None.

    Examples
    --------
    >>> code_of(["a = 1;", "  b = a;  "], 2), code_of(["a = 1;"], 5)
    ('b = a;', None)
    """
    if line is None or not 0 < line <= len(lines):
        return None
    return lines[line - 1].strip()


def stopped_error(error: BaseException, line: int | None, source: str | None,
                  lines: Sequence[str]) -> BaseException:
    """The error to raise for a stopped run, naming the macro line it stopped at (``line`` of ``source``,
    whose code is ``lines``).

    MacroError (and its time-out and not-found kinds) and HeadlessError keep their type. A MacroError that
    names a line already comes from a macro run inside this one (by a command it called): it keeps its own
    file and line, and says it was called from this one (:func:`called_from`). An ArgumentError here is an
    answer from run_macro's ``answers=`` that the question cannot take (a bad argument of the run itself);
    command handlers' errors arrive as MacroErrors (:func:`~deepij.imagej.commands.handler_failure`).
    """
    if isinstance(error, ArgumentError):
        return error
    if isinstance(error, MacroError):
        if line is None:
            return error
        if error.line is not None:
            return called_from(error, line, source, lines)
        return restated(error, error.macro_message, line=line, source=source or error.source)
    if isinstance(error, HeadlessError) and line is not None:
        return type(error)(f"{error} ({source or 'macro'}, line {line})")
    return error


def called_from(error: MacroError, line: int, source: str | None, lines: Sequence[str]) -> MacroError:
    """``error`` (of a macro run by a command) saying the line of the calling macro that ran the command."""
    code = code_of(lines, line)
    caller = f"{source or 'the calling macro'}, line {line}" + (f": {code}" if code else "")
    message = f"{error.macro_message} (called from {caller})"
    return restated(error, message, line=error.line, source=error.source)


def located_inside(error: BaseException) -> MacroError | None:
    """The innermost MacroError naming a file and line in ``error``'s chain of causes (``raise ... from``):
    the macro that failed inside a command, a bundle's step run by DeepImageJ Run; or None."""
    found = None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MacroError) and current.line is not None and current.source is not None:
            found = current
        current = current.__cause__
    return found


def cause(error: BaseException) -> BaseException | None:
    """What a stopped run's error is raised from."""
    return error.__cause__ if isinstance(error, MacroError | HeadlessError | ArgumentError) else error


def java_failure(failure: BaseException, line: int | None, source: str | None) -> DeepijError:
    """The error for a Java exception that ended the macro."""
    name = java_name(failure)
    if "HeadlessException" in name:
        return HeadlessError(
            f"{source or 'macro'}, line {line}: the macro needs a window or dialog, which a headless ImageJ "
            "cannot show (start deepij without headless=True)"
        )
    return MacroError(f"{name}: {failure}", line=line, source=source)


def restated(error: MacroError, message: str, *, line: int | None, source: str | None) -> MacroError:
    """A MacroError of ``error``'s type and attributes (``.command`` of a CommandNotFoundError...), with
    another message and place."""
    made = type(error)(message, line=line, source=source)
    for key, value in vars(error).items():
        if key not in ("macro_message", "line", "source"):
            setattr(made, key, value)
    return made
