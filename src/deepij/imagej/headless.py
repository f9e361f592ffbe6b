"""The headless mode: what a headless ImageJ 1.x can run faithfully, and refusing the rest.

In a headless JVM ImageJ 1.x cannot build its menus or dialogs. A command whose options are read through a
dialog then either fails or silently runs with its default parameters (measured: ``Gaussian Blur...`` with
``sigma=7`` gave the ``sigma=2`` result, ``Analyze Particles...`` found no particles). So deepij's headless
mode lets through only the commands below, which take no options and were checked to give the same result as
ImageJ's Java API, and refuses every other ``run("...")`` with a :class:`~deepij.errors.HeadlessError` naming
the command. Pure macro-language functions (``getPixel``, ``setResult``, ``newImage``, ``Table.*``...) are not
commands and run normally.

The command table ImageJ builds from its menus does not exist headless; it is filled with just these
commands so that ``IJ.run`` finds them.
"""

from __future__ import annotations

from deepij.errors import HeadlessError
from deepij.imagej._java import jc, private_field

#: Command -> ImageJ class (with its argument), for the commands a headless ImageJ runs faithfully.
HEADLESS_COMMANDS: dict[str, str] = {
    "Invert": 'ij.plugin.filter.Filters("invert")',
    "Smooth": 'ij.plugin.filter.Filters("smooth")',
    "Sharpen": 'ij.plugin.filter.Filters("sharpen")',
    "Find Edges": 'ij.plugin.filter.Filters("edge")',
    "Crop": 'ij.plugin.Resizer("crop")',
    "Fill": 'ij.plugin.filter.Filler("fill")',
    "Clear": 'ij.plugin.filter.Filler("clear")',
    "Clear Outside": 'ij.plugin.filter.Filler("outside")',
    "Draw": 'ij.plugin.filter.Filler("draw")',
    "Select All": 'ij.plugin.Selection("all")',
    "Select None": 'ij.plugin.Selection("none")',
    "Make Inverse": 'ij.plugin.Selection("inverse")',
    "8-bit": 'ij.plugin.Converter("8-bit")',
    "16-bit": 'ij.plugin.Converter("16-bit")',
    "32-bit": 'ij.plugin.Converter("32-bit")',
    "Invert LUT": 'ij.plugin.LutLoader("invert")',
    "Flip Horizontally": 'ij.plugin.filter.Transformer("fliph")',
    "Flip Vertically": 'ij.plugin.filter.Transformer("flipv")',
    "Rotate 90 Degrees Right": 'ij.plugin.filter.Transformer("right")',
    "Rotate 90 Degrees Left": 'ij.plugin.filter.Transformer("left")',
    "Erode": 'ij.plugin.filter.Binary("erode")',
    "Dilate": 'ij.plugin.filter.Binary("dilate")',
    "Open": 'ij.plugin.filter.Binary("open")',
    "Close-": 'ij.plugin.filter.Binary("close")',
    "Outline": 'ij.plugin.filter.Binary("outline")',
    "Fill Holes": 'ij.plugin.filter.Binary("fill")',
    "Skeletonize": 'ij.plugin.filter.Binary("skel")',
    "Measure": "ij.plugin.filter.Analyzer",
    "Clear Results": 'ij.plugin.filter.Analyzer("clear")',
}


def install_command_table(extra: dict[str, str] | None = None) -> None:
    """Give a headless ImageJ a command table holding :data:`HEADLESS_COMMANDS` (and ``extra``).

    ``Menus.pluginsTable`` is private and only filled while building AWT menus, which a headless JVM cannot.
    """
    table = jc.Hashtable()
    for command, class_name in {**HEADLESS_COMMANDS, **(extra or {})}.items():
        table.put(command, class_name)
    private_field("ij.Menus", "pluginsTable").set(None, table)


class HeadlessPolicy:
    """Refuses every command that is neither in :data:`HEADLESS_COMMANDS` nor allowed explicitly."""

    def __init__(self, allowed: set[str] | None = None) -> None:
        self.allowed = set(HEADLESS_COMMANDS) | set(allowed or ())

    def __call__(self, command: str) -> HeadlessError | None:
        if command in self.allowed:
            return None
        return HeadlessError(
            f"run({command!r}) cannot run faithfully in a headless ImageJ: its options would be ignored or "
            "it needs a window; deepij refused it instead of running it with default parameters. Start the "
            "session without headless=True (deepij starts a virtual display when there is no screen), or "
            "register a Python handler for this command"
        )
