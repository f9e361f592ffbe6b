"""What one ImageJ processing step leaves for the next, and the titles the network's outputs have there, as in
deepImageJ (one ImageJ runs every step, so a step's Results and named tables are there for the next one, and
the network's outputs are open, under deepImageJ's titles, when the post-processing macros run).

Each run of :meth:`Session.run_macro` starts from a clean ImageJ, so the chain hands every macro step the
images and tables the previous step left (``image=`` and ``tables=``). Inside the chain they are kept by
output name; :func:`output_title` is the title a post-processing macro sees a network output under, the one
deepImageJ 2.x gives an output (image or table) as soon as the network made it, before its post-processing
runs: ``<model name>_<output name>_<input title without extension>``, the title it keeps at the end.

Examples
--------
>>> titles = {"output": output_title("Nuclei", "output", "cells.tif")}
>>> titles
{'output': 'Nuclei_output_cells'}
>>> by_name({"Nuclei_output_cells": 1, "mask": 2}, titles)
{'output': 1, 'mask': 2}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

Item = TypeVar("Item")


def output_title(model_name: str, output: str, input_title: str) -> str:
    """The title deepImageJ shows a network output (image or table) under.

    Examples
    --------
    >>> output_title("Cell counter", "objects", "plate 3.tif")
    'Cell counter_objects_plate 3'
    """
    from deepij.pipeline.sources import strip_extension

    return f"{model_name}_{output}_{strip_extension(input_title)}"


def by_title(items: Mapping[str, Item], titles: Mapping[str, str]) -> dict[str, Item]:
    """``items`` (by output name or title) as ImageJ shows them: the outputs in ``titles`` (output name ->
    title) under their titles, in the same order.

    Examples
    --------
    >>> by_title({"output": 1, "Results": 2}, {"output": "Nuclei_output_cells"})
    {'Nuclei_output_cells': 1, 'Results': 2}
    """
    return {titles.get(key, key): item for key, item in items.items()}


def names_of(found: Iterable[str], titles: Mapping[str, str]) -> dict[str, str]:
    """Title -> key by output name for what a macro left open (``found``, titles in order), undoing
    :func:`by_title`: an output's title becomes its name; anything else keeps its title, unless a step
    titled it as the bare name of an output that is open too (then it is ``"<title> (2)"``).

    Examples
    --------
    >>> names_of(["output", "Nuclei_output_cells", "mask"], {"output": "Nuclei_output_cells"})
    {'output': 'output (2)', 'Nuclei_output_cells': 'output', 'mask': 'mask'}
    """
    found = list(found)
    names = {title: name for name, title in titles.items()}
    open_outputs = {names[title] for title in found if title in names}
    taken = set(found) | open_outputs
    keys: dict[str, str] = {}
    for title in found:
        if title in names:
            keys[title] = names[title]
        elif title in open_outputs:  # the bare name of an output open under its own title
            number = 2
            while f"{title} ({number})" in taken:
                number += 1
            keys[title] = f"{title} ({number})"
            taken.add(keys[title])
        else:
            keys[title] = title
    return keys


def by_name(items: Mapping[str, Item], titles: Mapping[str, str]) -> dict[str, Item]:
    """``items`` by title (what a macro left open) by output name instead (see :func:`names_of`).

    Examples
    --------
    >>> by_name({"Nuclei_output_cells": 1, "Results": 2}, {"output": "Nuclei_output_cells"})
    {'output': 1, 'Results': 2}
    """
    keys = names_of(items, titles)
    return {keys[title]: item for title, item in items.items()}


def tables_imagej_holds(
    tables: Mapping[str, Item], *, headless: bool
) -> tuple[dict[str, Item], dict[str, Item]]:
    """(the tables a macro step can be given, those kept aside for the steps after it).

    A headless ImageJ has no table windows, so it holds only ``Results``: named tables then stay with the
    chain (they are still outputs) instead of being opened.

    Examples
    --------
    >>> tables_imagej_holds({"Results": 1, "stats": 2}, headless=True)
    ({'Results': 1}, {'stats': 2})
    >>> tables_imagej_holds({"Results": 1, "stats": 2}, headless=False)
    ({'Results': 1, 'stats': 2}, {})
    """
    if not headless:
        return dict(tables), {}
    shown = {title: table for title, table in tables.items() if title == "Results"}
    kept = {title: table for title, table in tables.items() if title != "Results"}
    return shown, kept
