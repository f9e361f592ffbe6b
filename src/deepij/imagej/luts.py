"""Lookup tables inside ImageJ: Fiji's table names served as commands, and the label images' table.

:func:`install` (a session hook, see :data:`deepij.SESSION_HOOKS`) registers ``run("glasbey")``,
``run("glasbey_on_dark")``, ``run("royal")``, ``run("16_colors")``, ``run("mpl-viridis")``... (every name
of :data:`~deepij.imagej.lut_colours.LUT_NAMES` that ImageJ does not have itself: a Fiji's ``luts/`` files
stay what its macros get) on a session. Each does what ImageJ does when it applies a
table from its ``luts`` folder: the current image's table changes (a composite image's current channel; all
channels of a composite shown in grayscale, which becomes colour); with no image open a 256x32 ramp
titled with the table's name opens. RGB images have no table: ImageJ reports it and the macro goes on, so
the command writes that to the Log. A table whose package is missing (colorcet, matplotlib) is reported
in the Log the same way: a display-only line never stops a macro.

:func:`show_labels` gives a label image its table (:data:`~deepij.imagej.lut_colours.LABEL_LUT`, background
black) and the display range StarDist's Fiji plugin gives its ``Label Image`` (0 to the number of objects).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.errors import ExtraMissingError
from deepij.imagej._java import jc, jstr
from deepij.imagej.lut_colours import LABEL_LUT, LUT_NAMES, lut_colours

if TYPE_CHECKING:
    from deepij.imagej.commands import CommandCall
    from deepij.imagej.session import Session

_log = logging.getLogger("deepij.imagej")

#: ImageJ's 16-bit label images hold labels up to this (StarDist's Fiji plugin wraps around after it).
MAX_16BIT_LABEL = 65535


def imagej_lut(colours: np.ndarray) -> Any:
    """An ``ij.process.LUT`` from ``(256, 3)`` uint8 colours."""
    from jpype import JArray, JByte

    table = np.ascontiguousarray(colours, np.uint8).view(np.int8)
    reds, greens, blues = (JArray(JByte)(table[:, k].copy()) for k in range(3))
    return _lut_class()(reds, greens, blues)


def _lut_class() -> Any:
    from jpype import JClass

    return JClass("ij.process.LUT")


def apply_lut(imp: Any, name: str, colours: np.ndarray) -> str | None:
    """Give ``imp`` the table as ImageJ applies one from its ``luts`` folder; returns the reason it could
    not (an RGB image), else None. The table's name is kept in the image's ``LUT.nameKey`` property."""
    if int(imp.getProcessor().getNChannels()) != 1:
        return "lookup tables cannot be assigned to RGB images"
    lut = imagej_lut(colours)
    if bool(imp.isComposite()) and int(imp.getMode()) == int(jc.IJ.GRAYSCALE):
        imp.setMode(jc.IJ.COLOR)
        current = int(imp.getChannel())
        for channel in range(1, int(imp.getNChannels()) + 1):
            imp.setC(channel)
            imp.setChannelLut(lut)
        imp.setC(current)
    elif bool(imp.isComposite()):
        imp.setChannelLut(lut)
    else:
        processor = imp.getProcessor()
        low, high = float(processor.getMin()), float(processor.getMax())
        processor.setColorModel(lut)
        processor.setMinAndMax(low, high)  # a 16/32-bit image keeps what it showed
        if imp.getWindow() is None:
            imp.setProcessor(processor)
        if int(imp.getStackSize()) > 1:
            imp.getStack().setColorModel(lut)
    imp.setProp(_lut_class().nameKey, name)
    imp.updateAndDraw()
    return None


def lut_name(imp: Any) -> str | None:
    """The name of the table last applied to ``imp`` by name (ImageJ's own or deepij's), else None."""
    return jstr(imp.getProp(_lut_class().nameKey))


def ramp_image(name: str, colours: np.ndarray) -> Any:
    """What ImageJ opens when a table is applied with no image open: a 256x32 ramp titled ``name``."""
    ramp = np.tile(np.arange(256, dtype=np.uint8), (32, 1))
    from jpype import JArray, JByte

    processor = jc.ByteProcessor(256, 32, JArray(JByte)(ramp.view(np.int8).ravel()), imagej_lut(colours))
    imp = jc.ImagePlus(name, processor)
    imp.setProp(_lut_class().nameKey, name)
    return imp


def show_labels(imp: Any, count: int) -> None:
    """A label image's table and display range: :data:`LABEL_LUT`, 0 to ``count`` objects (at most
    65535), as StarDist's Fiji plugin shows its ``Label Image``. Without colorcet the image stays gray
    (said in deepij's log)."""
    try:
        colours = lut_colours(LABEL_LUT)
    except ExtraMissingError as error:
        _log.warning("label image %s keeps a gray table: %s", jstr(imp.getTitle()), error)
        return
    apply_lut(imp, LABEL_LUT, colours)
    imp.setDisplayRange(0.0, float(max(1, min(int(count), MAX_16BIT_LABEL))))
    imp.updateAndDraw()


class LutCommand:
    """The handler of ``run("<table name>")``: see the module notes."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, call: CommandCall) -> None:
        try:
            colours = lut_colours(self.name)
        except ExtraMissingError as error:
            jc.IJ.log(f'{self.name}: the lookup table was left as it was: {error}')
            return
        imp = call.image
        if imp is None:
            call.show(ramp_image(self.name, colours))
            return
        refused = apply_lut(imp, self.name, colours)
        if refused is not None:
            jc.IJ.log(f"{self.name}: {refused} ({jstr(imp.getTitle())} is RGB); the macro goes on")


def imagej_has_command(name: str) -> bool:
    """Whether ImageJ's own command table has ``name`` (a Fiji with its ``luts/`` files and plugins does)."""
    commands = jc.Menus.getCommands()
    return commands is not None and bool(commands.containsKey(name))


def imagej_has_lut(name: str) -> bool:
    """Whether ImageJ applies a table of that name itself: a command, or a file in its ``luts/`` folder
    (spelt as ImageJ looks it up: as given, spaces as ``_``, lower case)."""
    if imagej_has_command(name):
        return True
    folder = jstr(jc.IJ.getDirectory("luts"))
    if not folder:
        return False
    from pathlib import Path

    spellings = {name, name.replace(" ", "_"), name.lower().replace(" ", "_")}
    return any((Path(folder) / f"{spelling}.lut").is_file() for spelling in spellings)


def install(session: Session) -> None:
    """Serve every table of :data:`LUT_NAMES` as a command on ``session`` (a session hook), except those
    ImageJ has itself (a Fiji's own ``luts/`` files stay what its macros get)."""
    for name in LUT_NAMES:
        if not imagej_has_lut(name):
            session.commands.register(name, LutCommand(name))
