"""Tables that stay open from one ImageJ processing step to the next, as they do in deepImageJ (one ImageJ
runs every step, so a step's Results and named tables are there for the next one, and the network's table
outputs are shown before the post-processing macros run).

Each macro run of :meth:`Session.run_macro` starts from a clean ImageJ (no tables), so a step macro that
should find tables open starts by opening them: :func:`macro_with_tables` gives the macro's code with a
first statement, on its first line (line numbers stay those of the file), calling a command registered
for that one run, which shows the tables (``"Results"`` as ImageJ's Results table, what ``getResult``
and ``nResults`` read; others as named tables, what ``Table.get(column, row, title)`` reads).

:func:`output_table_title` is the title deepImageJ gives a network table output:
``<model name>_<output name>_<input title without extension>``, as for output images.

Examples
--------
>>> with macro_with_tables(session, Path("count.ijm"), {"Results": frame}) as macro:  # doctest: +SKIP
...     session.run_macro(macro, image=images)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from deepij.imagej.commands import CommandCall
    from deepij.imagej.session import Session

_numbers = itertools.count(1)


def output_table_title(model_name: str, output: str, input_title: str) -> str:
    """The title deepImageJ shows a network table output under.

    Examples
    --------
    >>> output_table_title("Cell counter", "objects", "plate 3.tif")
    'Cell counter_objects_plate 3'
    """
    from deepij.pipeline.sources import strip_extension

    return f"{model_name}_{output}_{strip_extension(input_title)}"


@contextmanager
def macro_with_tables(
    session: Session, path: Path, tables: Mapping[str, pd.DataFrame]
) -> Iterator[str | Path]:
    """The macro to run for the step file ``path`` so that it finds ``tables`` open (by title).

    Yields ``path`` itself when there are no tables; otherwise the file's code whose first line starts by
    opening them (a command registered on ``session`` until the block ends).
    """
    if not tables:
        yield path
        return
    from deepij.imagej.macros import read_macro

    code, _ = read_macro(path)
    command = f"deepij step tables {next(_numbers)}"

    def open_tables(call: CommandCall) -> None:
        for title, frame in tables.items():
            call.show_table(frame, title)

    session.commands.register(command, open_tables)
    try:
        yield _first_statement(code, f'run("{command}"); ')
    finally:
        session.commands.unregister(command)


def _first_statement(code: str, statement: str) -> str:
    """``code`` with ``statement`` put before its first line (after ``#@`` script-parameter lines, which
    must stay whole), so that every line keeps its number.

    Examples
    --------
    >>> _first_statement("// scale\\nrun('32-bit');", "x = 1; ")
    "x = 1; // scale\\nrun('32-bit');"
    """
    lines = code.split("\n")
    at = next((i for i, line in enumerate(lines) if not line.lstrip().startswith("#@")), len(lines))
    if at == len(lines):
        lines.append("")
    lines[at] = statement + lines[at]
    return "\n".join(lines)
