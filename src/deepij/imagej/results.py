"""What a macro run hands back: images, tables, log, return value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import xarray as xr

from deepij.imagej import images as image_conversion
from deepij.imagej import rois, state
from deepij.imagej import tables as table_conversion
from deepij.imagej._java import jc, jstr


@dataclass
class MacroResult:
    """The outcome of :meth:`Session.run_macro`.

    Attributes
    ----------
    images : dict[str, xarray.DataArray]
        Every image open when the macro ended (the ones it made and the inputs it left open), by title, in the
        order they were opened. Repeated titles get `` (2)``, `` (3)``... appended.
    imageplus : dict[str, ij.ImagePlus]
        The same images as ImagePlus objects (no longer open in ImageJ, still usable).
    tables : dict[str, pandas.DataFrame]
        ``"Results"`` (when it has rows) and every named table (``Table.create``...), by title.
    log : str
        What the macro printed to the Log.
    value : str or None
        The macro's ``return`` value, when it has one.
    messages : list of str
        Text of message boxes (``showMessage``, ``exit("...")``) that deepij answered with OK.
    answered : dict[str, str]
        The questions deepij answered from ``answers=`` (prompt or field label -> the value given; fields of
        an answered dialog that had no answer keep the value shown, and are listed too).
    current : str or None
        Key (in ``images``) of the image that was current at the end.
    rois : list of Outline
        The ROIs the ROI Manager held at the end (:class:`deepij.imagej.rois.Outline`: vertices, name,
        position), e.g. the objects StarDist's post-processing leaves there.

    Examples
    --------
    >>> import deepij, numpy as np
    >>> result = deepij.run_macro('run("Invert"); print("inverted");', np.zeros((8, 8), "uint8"))
    >>> result.current, list(result.images), int(result.image.max()), result.log
    ('image', ['image'], 255, 'inverted\\n')
    """

    images: dict[str, xr.DataArray] = field(default_factory=dict)
    imageplus: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    log: str = ""
    value: str | None = None
    messages: list[str] = field(default_factory=list)
    current: str | None = None
    answered: dict[str, str] = field(default_factory=dict)
    rois: list[Any] = field(default_factory=list)

    @property
    def image(self) -> xr.DataArray | None:
        """The image that was current when the macro ended (None when no image was open)."""
        return None if self.current is None else self.images[self.current]

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.images.items()}
        return (f"MacroResult(images={shapes}, tables={list(self.tables)}, current={self.current!r}, "
                f"value={self.value!r}, log={len(self.log)} chars)")


def collect_images(only_ids: set[int] | None = None) -> tuple[dict[str, Any], str | None]:
    """Open images by unique title (oldest first), and the key of the current one."""
    found: dict[str, Any] = {}
    current = jc.WindowManager.getCurrentImage()
    current_key = None
    for image_id in state.open_image_ids():
        if only_ids is not None and image_id not in only_ids:
            continue
        imp = jc.WindowManager.getImage(image_id)
        if imp is None:
            continue
        key = unique_key(jstr(imp.getTitle()) or "image", found)
        found[key] = imp
        if current is not None and int(imp.getID()) == int(current.getID()):
            current_key = key
    return found, current_key


def unique_key(title: str, taken: dict[str, Any]) -> str:
    if title not in taken:
        return title
    number = 2
    while f"{title} ({number})" in taken:
        number += 1
    return f"{title} ({number})"


def collect_tables(headless: bool) -> dict[str, pd.DataFrame]:
    """The Results table (when it has rows or a window) and every named table window, by title."""
    found: dict[str, pd.DataFrame] = {}
    results = jc.ResultsTable.getResultsTable()
    windows = [] if headless else state.table_windows()
    has_results_window = any(jstr(w.getTitle()) == "Results" for w in windows)
    if results is not None and (int(results.size()) > 0 or has_results_window):
        found["Results"] = table_conversion.to_dataframe(results)
    for window in windows:
        title = jstr(window.getTitle()) or "Table"
        if title == "Results":
            continue
        found[unique_key(title, found)] = table_conversion.to_dataframe(window.getResultsTable())
    return found


def build_result(value: str | None, log: str, messages: list[str], headless: bool,
                 only_ids: set[int] | None = None, answered: dict[str, str] | None = None) -> MacroResult:
    """Convert everything the run left open into a :class:`MacroResult` (before ImageJ is cleaned)."""
    imps, current = collect_images(only_ids)
    return MacroResult(
        images={key: image_conversion.to_xarray(imp) for key, imp in imps.items()},
        imageplus=imps,
        tables=collect_tables(headless),
        log=log,
        value=value,
        messages=list(messages),
        current=current,
        answered=dict(answered or {}),
        rois=rois.collect_outlines(),
    )
