"""The ImageJ inside the Python process: runtime (start/attach, Xvfb), images, tables, macros, commands.

``deepij.imagej`` is this package and is also callable: ``deepij.imagej()`` returns the process's one
:class:`~deepij.imagej.session.Session`, starting ImageJ on first use.

Examples
--------
>>> import deepij, numpy as np
>>> session = deepij.imagej()
>>> result = deepij.run_macro('run("Invert");', np.zeros((8, 8), "uint8"))
>>> int(result.image.max())
255
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from deepij.imagej.results import MacroResult
from deepij.imagej.runtime import attach, current_session, get_session, shutdown
from deepij.imagej.session import Session

__all__ = ["MacroResult", "Session", "attach", "current_session", "imagej", "run_macro", "shutdown"]


def imagej(
    ij_jar: str | os.PathLike[str] | None = None,
    *,
    fiji: str | os.PathLike[str] | None = None,
    headless: bool | None = None,
    virtual_display: bool | None = None,
    max_memory: str | int | None = None,
    jvm_options: Sequence[str] = (),
) -> Session:
    """The process's ImageJ session, started on first use (later calls return the same session).

    Parameters
    ----------
    ij_jar : path, optional
        The ImageJ 1.x jar. Default: ``DEEPIJ_IJ_JAR``, else an ``ij*.jar`` in the repository's ``jars/``,
        else ``/usr/share/java/ij.jar`` (Debian's libij-java).
    fiji : path, optional
        A Fiji.app folder to start instead, through pyimagej (default: ``DEEPIJ_FIJI``).
    headless : bool, optional
        True: a headless JVM; commands that cannot run faithfully there are refused with HeadlessError.
        Default: a display is used (a private Xvfb when ``DISPLAY`` is not set).
    virtual_display : bool, optional
        True: always use a private Xvfb, even when ``DISPLAY`` is set (nothing appears on your screen).
    max_memory : str or int, optional
        Maximum Java heap, read by :func:`deepij.sizes.parse_memory_size` as everywhere in deepij:
        ``"8g"`` (Java's letters) and ``"8GiB"`` are 8 GiB (8 * 1024**3 bytes), ``"2GB"`` is 2e9 bytes, an
        int is bytes. Default: the JVM's own (a quarter of the RAM).
    jvm_options : sequence of str
        More JVM options.

    Raises
    ------
    ArgumentTypeError, ArgumentError
        An argument of the wrong type or value (named in the message): ``headless="yes"``, a jar or Fiji.app
        path that does not exist, ``max_memory="lots"``, contradicting options.
    ImageJError
        No jar / Java / Xvfb found, ``DEEPIJ_IJ_JAR`` / ``DEEPIJ_FIJI`` naming nothing usable, or settings
        that differ from the session already running (a JVM cannot restart within one process).

    Examples
    --------
    >>> import deepij
    >>> session = deepij.imagej()
    >>> session is deepij.imagej()  # one per process
    True
    >>> session.version  # doctest: +ELLIPSIS
    '1...'
    """
    return get_session(ij_jar, fiji=fiji, headless=headless, virtual_display=virtual_display,
                       max_memory=max_memory, jvm_options=jvm_options)


def run_macro(macro: str | Path, image: Any = None, args: str | Mapping[str, Any] | None = None,
              timeout: float | None = None, answers: Mapping[str, Any] | None = None,
              tables: Mapping[str, Any] | None = None,
              on_log: Callable[[str], object] | None = None) -> MacroResult:
    """Run an ImageJ macro in the process's session (started if needed). See :meth:`Session.run_macro`.

    Examples
    --------
    A macro file on an image:

    >>> import deepij, tempfile, numpy as np, pandas as pd
    >>> macro = Path(tempfile.mkdtemp()) / "double.ijm"
    >>> _ = macro.write_text('run("Multiply...", "value=2");')
    >>> deepij.run_macro(macro, np.full((4, 4), 3, "uint8")).image.values.tolist()[0]
    [6, 6, 6, 6]

    A prompt the macro asks (``getString``, ``getDirectory``, dialogs...) answered by its text:

    >>> macro = 'print(getString("Name of the experiment", "exp1"));'
    >>> deepij.run_macro(macro, answers={"Name of the experiment": "day 2"}).log
    'day 2\\n'

    Tables the macro finds open, and gets back:

    >>> measured = pd.DataFrame({"Area": [1.0, 2.0]})
    >>> result = deepij.run_macro('setResult("Area", nResults, 3);', tables={"Results": measured})
    >>> result.tables["Results"]["Area"].tolist()
    [1.0, 2.0, 3.0]
    """
    return get_session().run_macro(macro, image=image, args=args, timeout=timeout, answers=answers,
                                   tables=tables, on_log=on_log)


class _CallableModule(types.ModuleType):
    """``deepij.imagej`` must be a package (it has submodules) and a function (``deepij.imagej()``).

    Importing ``deepij.imagej.x`` sets the attribute ``imagej`` of the ``deepij`` package to this module
    object, so a plain function of that name would be overwritten. Making the module itself callable keeps
    both meanings, whatever gets imported first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Session:
        return imagej(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
