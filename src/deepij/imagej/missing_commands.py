"""Commands a macro runs that this ImageJ lacks: which Fiji component provides them, and how to get it.

Plain ImageJ 1.x (the ``ij.jar`` deepij starts by default) has no Fiji plugins. Workshop and bundle macros
often call some (``run("Morphological Filters", ...)`` from MorphoLibJ, StarDist's ``Command From Macro``, a
Fiji lookup table such as ``run("glasbey")``). ImageJ then stops the macro with ``Unrecognized command``;
:func:`command_not_found` turns that into a :class:`~deepij.errors.CommandNotFoundError` that names the
command, the component that provides it (from :data:`PROVIDERS`, where known) and the ways to make it
available to deepij.

Examples
--------
>>> error = command_not_found('Unrecognized command: "glasbey"', line=3, source="colour.ijm")
>>> error.command, error.component
('glasbey', 'Fiji lookup tables (luts/ folder)')
>>> print(error)  # doctest: +ELLIPSIS
colour.ijm, line 3: Unrecognized command: "glasbey": this ImageJ has no such command; it comes with Fiji ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deepij.errors import CommandNotFoundError


@dataclass(frozen=True)
class Provider:
    """A component that provides commands: its name, where to get it, and an ImageJ 1.x alternative."""

    name: str
    where: str
    jar: str | None = None
    alternative: str | None = None


_MORPHOLIBJ = Provider("MorphoLibJ", 'the Fiji update site "IJPB-plugins"', jar="MorphoLibJ_-<version>.jar")
_STARDIST = Provider("StarDist", 'the Fiji update sites "StarDist", "CSBDeep" and "TensorFlow"',
                     jar="StarDist_-<version>.jar and CSBDeep-<version>.jar")
_THUNDERSTORM = Provider("ThunderSTORM", "the ThunderSTORM plugin (Thunder_STORM.jar)",
                         jar="Thunder_STORM.jar")
_FIJI_LUTS = Provider("Fiji lookup tables (luts/ folder)", "Fiji, which ships them as .lut files in luts/",
                      alternative='a built-in lookup table such as run("Fire") or run("Spectrum")')
_BIO_FORMATS = Provider("Bio-Formats", "Fiji (built in) or the bioformats_package.jar",
                        jar="bioformats_package.jar",
                        alternative="open(path) for TIFF and the formats ImageJ reads")
_FIJI = Provider("Fiji", "Fiji (built in)")

#: Command name -> the component that provides it (commands of plain ImageJ 1.x are never listed).
PROVIDERS: dict[str, Provider] = {
    **dict.fromkeys([
        "Morphological Filters", "Morphological Filters (3D)", "Select Label(s)",
        "Connected Components Labeling",
        "Distance Transform Watershed", "Distance Transform Watershed 3D", "Marker-controlled Watershed",
        "Classic Watershed", "Remove Border Labels", "Label Size Filtering", "Analyze Regions",
        "Analyze Regions 3D", "Kill Borders", "Fill Holes (Binary/Gray)", "Extended Min & Max",
        "Regional Min & Max", "Chamfer Distance Map", "Set Label Map", "Morphological Reconstruction",
        "Geodesic Distance Map", "Gray Scale Attribute Filtering", "Directional Filtering",
        "Morphological Segmentation", "Keep Largest Label", "Remove Largest Label", "Label Boundaries",
        "Replace/Remove Label(s)", "Intensity Measurements 2D/3D", "Label Morphological Filters",
    ], _MORPHOLIBJ),
    "Command From Macro": _STARDIST,
    **dict.fromkeys(
        ["Camera setup", "Run analysis", "Show results table", "Export results", "Import results"],
        _THUNDERSTORM,
    ),
    **dict.fromkeys([
        "glasbey", "glasbey_on_dark", "glasbey_inverted", "royal", "16_colors", "5_ramps", "6_shades",
        "Thermal", "mpl-viridis", "mpl-magma", "mpl-inferno", "mpl-plasma", "Green Fire Blue", "HiLo",
        "phase", "Rainbow RGB", "edges", "gem", "smart", "sepia", "thal", "physics", "Orange Hot",
        "Cyan Hot", "Magenta Hot", "Yellow Hot", "Red Hot", "cool", "brgbcmyw", "unionjack",
    ], _FIJI_LUTS),
    **dict.fromkeys(["Bio-Formats Importer", "Bio-Formats Exporter", "Bio-Formats Windowless Importer",
                     "Bio-Formats Macro Extensions", "Bio-Formats"], _BIO_FORMATS),
    "Manual Threshold...": Provider("Fiji", "Fiji", alternative="setThreshold(lower, upper) in the macro"),
    "Auto Threshold": Provider("Auto Threshold", "Fiji (built in)",
                               alternative='setAutoThreshold("Otsu dark") and the other built-in methods'),
    "Auto Local Threshold": Provider("Auto Local Threshold", "Fiji (built in)"),
    "Enhance Local Contrast (CLAHE)": Provider("CLAHE", "Fiji (built in)"),
    "Trainable Weka Segmentation": Provider("Trainable Weka Segmentation", "Fiji (built in)"),
    **dict.fromkeys(["Skeletonize (2D/3D)", "Analyze Skeleton (2D/3D)"],
                    Provider("Skeletonize3D / AnalyzeSkeleton", "Fiji (built in)",
                             alternative='run("Skeletonize") for 2-D masks')),
    "3D Objects Counter": Provider("3D Objects Counter", "Fiji (built in)"),
    "Coloc 2": Provider("Coloc 2", "Fiji (built in)"),
    "TrackMate": Provider("TrackMate", "Fiji (built in)"),
    **dict.fromkeys(["Tubeness", "Frangi Vesselness", "Directionality", "Non-local Means Denoising",
                     "Anisotropic Diffusion 2D", "Local Thickness (complete process)", "StackReg",
                     "Linear Stack Alignment with SIFT", "Correct 3D Drift"], _FIJI),
}

_UNRECOGNIZED = re.compile(r'Unrecognized command: "(?P<command>[^"]*)"')


def unrecognized_command(message: str) -> str | None:
    """The command named in ImageJ's ``Unrecognized command: "..."`` error text, else None.

    Examples
    --------
    >>> unrecognized_command('Unrecognized command: "Select Label(s)"'), unrecognized_command("other")
    ('Select Label(s)', None)
    """
    match = _UNRECOGNIZED.search(message)
    return None if match is None else match["command"]


def command_not_found(message: str, *, line: int | None = None, source: str | None = None
                      ) -> CommandNotFoundError:
    """The CommandNotFoundError for ImageJ's ``Unrecognized command`` ``message`` (see the module docstring).

    The error carries ``.command`` and ``.component`` (None for a command not in :data:`PROVIDERS`).
    """
    command = unrecognized_command(message) or message
    provider = PROVIDERS.get(command)
    if provider is None:
        text = (f'Unrecognized command: "{command}": this ImageJ has no such command, and deepij does not '
                "know which plugin provides it (check its spelling, or find the Fiji plugin that adds it). "
                + _how_to_use(None))
    else:
        text = f'Unrecognized command: "{command}": this ImageJ has no such command; it comes with '
        text += provider.name
        if provider.where != provider.name:
            text += f" (from {provider.where})"
        text += ". " + _how_to_use(provider)
        if provider.alternative:
            text += f" In plain ImageJ 1.x, {provider.alternative} may do instead."
    error = CommandNotFoundError(text, line=line, source=source)
    error.command = command  # type: ignore[attr-defined]
    error.component = None if provider is None else provider.name  # type: ignore[attr-defined]
    return error


def _how_to_use(provider: Provider | None) -> str:
    jar = provider.jar if provider is not None and provider.jar else "the plugin's jar"
    return (
        "To use it with deepij, start deepij on a local Fiji that has it: "
        'deepij.imagej(fiji="/path/Fiji.app") (or DEEPIJ_FIJI=/path/Fiji.app), '
        f"or put {jar} into the plugins/ folder next to the ImageJ jar deepij starts, read when ImageJ "
        "starts: the repository's jars/plugins/ when an ij.jar is in jars/ (a link to "
        "/usr/share/java/ij.jar will do), or the plugins/ folder beside $DEEPIJ_IJ_JAR."
    )
