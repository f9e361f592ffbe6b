"""Objects as ImageJ ROIs: polygons into the ROI Manager, the ROI Manager's ROIs out as plain outlines,
and label images drawn from polygons the way ImageJ fills them.

Coordinates: deepij's polygons (StarDist's, :mod:`deepij.processing.instances`) are ``(y, x)`` with pixel
centres at integer positions; ImageJ puts pixel ``(x, y)``'s centre at ``(x + 0.5, y + 0.5)``, so a vertex
moves by half a pixel on its way in, as StarDist's Fiji plugin moves its own. :class:`Outline` is what
leaves ImageJ: numpy vertices in ImageJ's coordinates, a name and a stack position, so results that hold
ROIs stay picklable (Dask workers) and can be put back into any ImageJ (:func:`outline_roi`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepij.imagej._java import jc, jstr

#: ImageJ's ROI types that are polygons (``Roi.POLYGON``, ``FREEROI``, ``TRACED_ROI``) keep their type.
_POLYGON_TYPES = {2: "polygon", 3: "freehand", 4: "traced"}
_TYPE_CODES = {name: code for code, name in _POLYGON_TYPES.items()}


@dataclass(frozen=True)
class Outline:
    """An ROI outside ImageJ.

    Attributes
    ----------
    name : str
        The ROI's name in the ROI Manager.
    points : ndarray
        ``(n, 2)`` float vertices ``(x, y)`` in ImageJ's coordinates (pixel centres at ``+0.5``).
    kind : str
        ``"polygon"``, ``"freehand"`` or ``"traced"``; any other ImageJ ROI (rectangle, oval...) leaves as
        the polygon of its outline.
    position : int
        Its stack position (0: all slices).
    hyperstack : tuple of int
        Its (channel, slice, frame) position when it has one, else (0, 0, 0).
    """

    name: str
    points: np.ndarray
    kind: str = "polygon"
    position: int = 0
    hyperstack: tuple[int, int, int] = (0, 0, 0)


def polygon_roi(vertices_yx: np.ndarray, *, digits: int | None = 2) -> Any:
    """An ``ij.gui.PolygonRoi`` from ``(n, 2)`` vertices ``(y, x)`` at pixel centres (deepij's polygons).

    ``digits``: vertices are rounded to this many decimals first (StarDist's Fiji plugin keeps 0.01 pixel);
    None keeps them as they are.
    """
    vertices = np.asarray(vertices_yx, np.float64)
    if digits is not None:
        vertices = np.round(vertices, digits)
    return _roi(vertices[:, 1] + 0.5, vertices[:, 0] + 0.5, _TYPE_CODES["polygon"])


def _roi(xs: np.ndarray, ys: np.ndarray, code: int) -> Any:
    from jpype import JArray, JClass, JFloat

    x = JArray(JFloat)(np.ascontiguousarray(xs, np.float32))
    y = JArray(JFloat)(np.ascontiguousarray(ys, np.float32))
    return JClass("ij.gui.PolygonRoi")(x, y, len(xs), code)


def set_position(roi: Any, frame: int, how: str = "Stack") -> None:
    """Place ``roi`` on a stack position (``"Stack"``) or a hyperstack frame (``"Hyperstack"``), as
    StarDist's Fiji plugin places the ROIs of a time-lapse."""
    if how == "Hyperstack":
        roi.setPosition(0, 0, int(frame))
    else:
        roi.setPosition(int(frame))


def roi_manager(*, reset: bool) -> Any:
    """The ROI Manager objects go to (``reset``: emptied first): the open one; else the hidden one of a
    batch-mode macro that has used one already; else a new one.

    Plugins in Fiji take a batch-mode macro's hidden manager even when the macro has none yet, and ImageJ
    drops that one when the macro ends. deepij runs every macro in batch mode, so a new manager here is a
    real one (never shown under deepij's virtual display): the running macro's ``roiManager(...)`` calls
    see it, and the ROIs outlive the macro (:attr:`MacroResult.rois <deepij.imagej.results.MacroResult>`).
    """
    manager = jc.RoiManager.getRawInstance()
    if manager is None and bool(jc.Interpreter.isBatchModeRoiManager()):
        manager = jc.Interpreter.getBatchModeRoiManager()
    if manager is None:
        manager = _new_manager()
    if reset:
        manager.reset()
    return manager


def _new_manager() -> Any:
    """A real ROI Manager, also from inside a batch-mode macro (where ImageJ would make a hidden one that
    the macro's end drops).

    Raises
    ------
    HeadlessError
        In a headless ImageJ: the ROI Manager is a window, and there is none without a display.
    """
    if bool(jc.GraphicsEnvironment.isHeadless()):
        from deepij.errors import HeadlessError

        raise HeadlessError(
            "the ROI Manager is a window, which a headless ImageJ cannot make; start deepij with its virtual "
            "display (the default where there is no DISPLAY) to get the objects as ROIs"
        )
    batch = bool(jc.Interpreter.batchMode)
    jc.Interpreter.batchMode = False  # the constructor hands out the batch-mode manager otherwise
    try:
        manager = jc.RoiManager()
    finally:
        jc.Interpreter.batchMode = batch
    # It stays ImageJ's ROI Manager without being painted: its list is filled from the macro's thread,
    # which Swing's painting (on its own thread) is not made for.
    manager.setVisible(False)
    return manager


def add_rois(rois: Iterable[Any], *, reset: bool = True) -> Any:
    """Add ROIs to the ROI Manager in order, named by ImageJ as an unnamed ROI is named (its centre,
    ``yyyy-xxxx``); returns the manager."""
    manager = roi_manager(reset=reset)
    for roi in rois:
        manager.add(roi, -1)
    return manager


def fill_labels(processor: Any, rois: Sequence[Any], first: int = 1, *, wrap: int = 65535) -> int:
    """Draw ``rois`` into ``processor`` as labels ``first``, ``first + 1``... with ImageJ's polygon
    filling, the last ROI first so that earlier ones (the more probable, for StarDist) lie on top where
    they overlap. Labels wrap after ``wrap`` (a 16-bit image's largest). Returns the next label."""
    for index in range(len(rois) - 1, -1, -1):
        processor.setValue(float(1 + (first - 1 + index) % wrap))
        processor.fill(rois[index])
    return 1 + (first - 1 + len(rois)) % wrap


def _managers() -> list[Any]:
    found = []
    shown = jc.RoiManager.getRawInstance()
    if shown is not None:
        found.append(shown)
    # asking for the batch-mode manager makes one: only when the running macro has one already
    batch = jc.Interpreter.getBatchModeRoiManager() if bool(jc.Interpreter.isBatchModeRoiManager()) else None
    if batch is not None and (shown is None or not bool(batch.equals(shown))):
        found.append(batch)
    return found


def collect_outlines() -> list[Outline]:
    """The ROIs of the ROI Manager (the shown one and a batch-mode macro's), as :class:`Outline`."""
    outlines: list[Outline] = []
    for manager in _managers():
        for roi in manager.getRoisAsArray():
            outlines.append(roi_outline(roi))
    return outlines


def roi_outline(roi: Any) -> Outline:
    """One ImageJ ROI as an :class:`Outline`."""
    polygon = roi.getFloatPolygon()
    count = int(polygon.npoints)
    xs = np.asarray(polygon.xpoints, np.float64)[:count]
    ys = np.asarray(polygon.ypoints, np.float64)[:count]
    kind = _POLYGON_TYPES.get(int(roi.getType()), "polygon")
    hyperstack = (0, 0, 0)
    if bool(roi.hasHyperStackPosition()):
        hyperstack = (int(roi.getCPosition()), int(roi.getZPosition()), int(roi.getTPosition()))
    name = jstr(roi.getName()) or ""
    return Outline(name, np.stack([xs, ys], axis=1), kind, int(roi.getPosition()), hyperstack)


def outline_roi(outline: Outline) -> Any:
    """An :class:`Outline` back as an ImageJ ROI (a polygon of its kind, its name and position)."""
    roi = _roi(outline.points[:, 0], outline.points[:, 1], _TYPE_CODES.get(outline.kind, 2))
    if outline.name:
        roi.setName(outline.name)
    if any(outline.hyperstack):
        roi.setPosition(*outline.hyperstack)
    elif outline.position:
        roi.setPosition(int(outline.position))
    return roi


def show_outlines(outlines: Sequence[Outline], *, reset: bool = True) -> Any:
    """Put outlines into the ROI Manager under their own names (``reset`` empties it first)."""
    manager = roi_manager(reset=reset)
    for outline in outlines:
        roi = outline_roi(outline)
        manager.add(roi, -1)
    return manager
