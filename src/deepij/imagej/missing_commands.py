"""Commands a macro runs that this ImageJ lacks: which Fiji component provides them, and how to get it.

Plain ImageJ 1.x (the ``ij.jar`` deepij starts by default) has no Fiji plugins. Workshop and bundle macros
often call some (``run("Morphological Filters", ...)`` from MorphoLibJ, StarDist's ``Command From Macro``, a
Fiji lookup table such as ``run("glasbey")``). ImageJ then stops the macro with ``Unrecognized command``;
:func:`command_not_found` turns that into a :class:`~deepij.errors.CommandNotFoundError` that names the
command, the component that provides it (from :data:`PROVIDERS`, where known) and the way to make it
available that works for that kind of component:

- an ImageJ 1.x plugin (MorphoLibJ, Bio-Formats...): its jar in the ``plugins/`` folder deepij's ImageJ reads
  at start-up, or a local Fiji;
- a lookup table (``glasbey``, ``mpl-viridis``...): a ``.lut`` file, not a jar, in ImageJ's ``luts/`` folder
  (ImageJ 1.x runs ``run("NAME")`` from ``luts/NAME.lut`` when no command has that name), or no line at all
  when it only colours the display;
- an ImageJ2 (SciJava) command (``Command From Macro``: StarDist and CSBDeep): no jar can add it to plain
  ImageJ 1.x; the macro needs Fiji.

Only a command ImageJ reports as unrecognized gets here: a command deepij serves (registered with
``session.commands.register``) is handled before ImageJ looks for it, so it always wins over these hints.

Examples
--------
>>> error = command_not_found('Unrecognized command: "glasbey"', line=3, source="colour.ijm",
...                           luts_dir="/opt/ImageJ/luts/")
>>> error.command, error.component
('glasbey', 'Fiji lookup tables')
>>> print(error)  # doctest: +ELLIPSIS
colour.ijm, line 3: Unrecognized command: "glasbey": ... put the file glasbey.lut (from Fiji's luts/ ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deepij.errors import CommandNotFoundError

#: The kinds of component, each made available its own way (see the module notes).
PLUGIN, LUT, IMAGEJ2 = "plugin", "lut", "imagej2"


@dataclass(frozen=True)
class Provider:
    """A component that provides commands: its name, where to get it, and an ImageJ 1.x alternative.

    ``kind`` says how it is made available: :data:`PLUGIN` (a jar in ``plugins/``), :data:`LUT` (a ``.lut``
    file in ``luts/``) or :data:`IMAGEJ2` (an ImageJ2 command: only Fiji runs it).
    """

    name: str
    where: str
    jar: str | None = None
    alternative: str | None = None
    kind: str = PLUGIN


_MORPHOLIBJ = Provider("MorphoLibJ", 'the Fiji update site "IJPB-plugins"', jar="MorphoLibJ_-<version>.jar")
_STARDIST = Provider("StarDist", 'the Fiji update sites "StarDist", "CSBDeep" and "TensorFlow"', kind=IMAGEJ2)
_THUNDERSTORM = Provider("ThunderSTORM", "the ThunderSTORM plugin (Thunder_STORM.jar)",
                         jar="Thunder_STORM.jar")
_FIJI_LUTS = Provider("Fiji lookup tables", "Fiji, which ships them as .lut files in its luts/ folder",
                      alternative='a built-in lookup table such as run("Fire") or run("Spectrum")', kind=LUT)
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


def command_not_found(message: str, *, line: int | None = None, source: str | None = None,
                      luts_dir: str | None = None) -> CommandNotFoundError:
    """The CommandNotFoundError for ImageJ's ``Unrecognized command`` ``message`` (see the module docstring).

    ``luts_dir`` is the ``luts/`` folder of the running ImageJ (``IJ.getDirectory("luts")``), named in the
    hint for a lookup table. The error carries ``.command`` and ``.component`` (None for a command not in
    :data:`PROVIDERS`).

    Examples
    --------
    >>> print(command_not_found('Unrecognized command: "Command From Macro"'))  # doctest: +ELLIPSIS
    macro: Unrecognized command: "Command From Macro": ... plain ImageJ 1.x, ... cannot run ImageJ2...
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
        text += ". " + _how_to_use(provider, command, luts_dir)
        if provider.alternative:
            text += f" In plain ImageJ 1.x, {provider.alternative} may do instead."
    error = CommandNotFoundError(text, line=line, source=source)
    error.command = command  # type: ignore[attr-defined]
    error.component = None if provider is None else provider.name  # type: ignore[attr-defined]
    return error


_FIJI_ROUTE = 'deepij.imagej(fiji="/path/Fiji.app") (or DEEPIJ_FIJI=/path/Fiji.app)'


def _how_to_use(provider: Provider | None, command: str = "", luts_dir: str | None = None) -> str:
    if provider is not None and provider.kind == LUT:
        folder = luts_dir or "the luts/ folder of the ImageJ deepij starts"
        return (
            f"To use it with deepij, put the file {command}.lut (from Fiji's luts/ folder, or any ImageJ "
            f"lookup table saved under that name) into {folder}: ImageJ runs run(\"{command}\") from that "
            "file when no command has the name, without a restart. A lookup table only changes how the "
            "image is displayed, not its pixel values: when the macro does not convert the image to RGB "
            "afterwards, the line can also be removed."
        )
    if provider is not None and provider.kind == IMAGEJ2:
        return (
            "It is an ImageJ2 (SciJava) command: plain ImageJ 1.x, the ImageJ deepij starts by default, "
            "cannot run ImageJ2 commands, and no jar put into its plugins/ folder can add them. Run this "
            f"macro in Fiji (with {provider.where}), or with deepij on a local Fiji that has them: "
            f"{_FIJI_ROUTE}."
        )
    jar = provider.jar if provider is not None and provider.jar else "the plugin's jar"
    return (
        f"To use it with deepij, start deepij on a local Fiji that has it: {_FIJI_ROUTE}, "
        f"or put {jar} into the plugins/ folder next to the ImageJ jar deepij starts, read when ImageJ "
        "starts: the repository's jars/plugins/ when an ij.jar is in jars/ (a link to "
        "/usr/share/java/ij.jar will do), or the plugins/ folder beside $DEEPIJ_IJ_JAR."
    )
