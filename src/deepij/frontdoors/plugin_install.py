"""Putting deepij's ImageJ plugin into a user's Fiji or ImageJ (``deepij plugin install DIR``), and taking it
out again.

The plugin is one jar, ``deepij_.jar`` (ImageJ loads jars with an underscore in their name from its
``plugins/`` folder): the classes built from ``jars/src`` (the plugin and deepImageJ's processing interfaces,
so Java steps run in an ImageJ without deepImageJ), plus

- ``plugins.config``: the commands under Plugins > deepij. They are named as deepImageJ names them
  (``DeepImageJ Run``, ``DeepImageJ Validate``, ``DeepImageJ StarDist``, ``DeepImageJ Cellpose``) so users'
  macros run unchanged, except when deepImageJ's own plugin is in that ImageJ: then ``deepij Run``,
  ``deepij Validate``, ``deepij StarDist`` and ``deepij Cellpose`` (same options), and deepImageJ keeps its
  names;
- ``deepij/plugin/install.properties``: which deepij the plugin starts (the Python this command runs in, and
  where its ``deepij`` package is).

Installing again replaces the jar in place (a new file renamed over the old one).

Examples
--------
>>> plugins_config(deepimagej_present=False).splitlines()[1]
'Plugins>deepij, "DeepImageJ Run", deepij.plugin.RunCommand("DeepImageJ Run")'
>>> command_names(deepimagej_present=True)["run"]
'deepij Run'
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from deepij.errors import ArgumentError

JAR_NAME = "deepij_.jar"
_CONFIG = "plugins.config"
_PROPERTIES = "deepij/plugin/install.properties"
_COMMANDS = (
    ("run", "Run", "deepij.plugin.RunCommand"),
    ("validate", "Validate", "deepij.plugin.ValidateCommand"),
    ("install", "Install Model", "deepij.plugin.InstallCommand"),
    ("test", "Test Model", "deepij.plugin.TestCommand"),
    ("stardist", "StarDist", "deepij.plugin.InstanceCommand"),
    ("cellpose", "Cellpose", "deepij.plugin.InstanceCommand"),
)
#: The commands named as deepImageJ names its own (``DeepImageJ Run``...), ``deepij ...`` beside deepImageJ.
_DEEPIMAGEJ_NAMED = ("run", "validate", "stardist", "cellpose")


@dataclass(frozen=True)
class Installed:
    """What ``install`` did: the jar written, the commands' names, and deepImageJ's jar when one was found."""

    jar: Path
    commands: dict[str, str]
    deepimagej: Path | None
    python: str


def command_names(*, deepimagej_present: bool) -> dict[str, str]:
    """The menu names of the plugin's commands in an ImageJ with or without deepImageJ's own plugin."""
    prefix = "deepij" if deepimagej_present else "DeepImageJ"
    return {key: f"{prefix} {label}" if key in _DEEPIMAGEJ_NAMED else label for key, label, _ in _COMMANDS}


def menu_commands(*, deepimagej_present: bool) -> list[tuple[str, str]]:
    """The commands under Plugins > deepij: (menu name, the plugin class called with its argument, as
    ImageJ's ``plugins.config`` writes it). The jar's ``plugins.config`` and ``deepij gui``'s menu both come
    from here.

    Examples
    --------
    >>> menu_commands(deepimagej_present=False)[0]
    ('DeepImageJ Run', 'deepij.plugin.RunCommand("DeepImageJ Run")')
    """
    names = command_names(deepimagej_present=deepimagej_present)
    return [(names[key], f'{cls}("{names[key]}")') for key, _, cls in _COMMANDS]


def plugins_config(*, deepimagej_present: bool) -> str:
    """The jar's ``plugins.config``: one line per command under Plugins > deepij."""
    lines = ["# deepij: deepImageJ bundles and zoo models (written by `deepij plugin install`)"]
    lines += [f'Plugins>deepij, "{name}", {plugin}'
              for name, plugin in menu_commands(deepimagej_present=deepimagej_present)]
    return "\n".join(lines) + "\n"


def plugins_folder(folder: str | os.PathLike[str]) -> Path:
    """The ``plugins/`` folder of a Fiji.app, an ImageJ folder or a plugins folder itself.

    An ImageJ folder without one (``ij.jar`` alone) gets one: ImageJ reads ``plugins/`` next to its jar.

    Raises
    ------
    ArgumentError
        Not a folder, or a folder with neither ``plugins/`` nor an ImageJ in it.
    """
    given = Path(folder).expanduser()
    if not given.is_dir():
        raise ArgumentError(
            f"{given}: no such folder (expected a Fiji.app, an ImageJ folder or its plugins/)"
        )
    if (given / "plugins").is_dir():
        return given / "plugins"
    if given.name == "plugins":
        return given
    if any(given.glob("ij*.jar")) or any(given.glob("ImageJ*")):
        (given / "plugins").mkdir()
        return given / "plugins"
    raise ArgumentError(
        f"{given}: no plugins/ folder and no ImageJ here (expected a Fiji.app, a folder holding ij.jar, or a "
        "plugins folder)"
    )


def find_deepimagej(plugins: Path) -> Path | None:
    """deepImageJ's own plugin jar in a plugins folder (or a subfolder, as ImageJ loads them), if any."""
    candidates = [*plugins.glob("*.jar"), *plugins.glob("*/*.jar")]
    for jar in sorted(candidates):
        if jar.name == JAR_NAME:
            continue
        if jar.name.lower().startswith("deepimagej"):
            return jar
        try:
            with zipfile.ZipFile(jar) as archive:
                names = archive.namelist()
                config = archive.read(_CONFIG).decode("utf-8", "replace") if _CONFIG in names else ""
        except (OSError, zipfile.BadZipFile):
            continue
        if '"DeepImageJ Run"' in config:
            return jar
    return None


def install(folder: str | os.PathLike[str], *, python: str | None = None) -> Installed:
    """Put the plugin jar into ``folder``'s plugins (replacing an older one) and record which deepij it
    starts (default: this Python). The jar is built first when ``jars/build`` lacks an up-to-date one.

    Examples
    --------
    >>> import tempfile
    >>> imagej = Path(tempfile.mkdtemp())
    >>> (imagej / "plugins").mkdir()
    >>> installed = install(imagej)
    >>> installed.jar == imagej / "plugins" / "deepij_.jar", installed.commands["run"]
    (True, 'DeepImageJ Run')
    >>> uninstall(imagej) == installed.jar
    True
    """
    from deepij.imagej.java_steps.interfaces_jar import processing_jar

    plugins = plugins_folder(folder)
    deepimagej = find_deepimagej(plugins)
    classes = processing_jar()  # every class of jars/src: the plugin and deepImageJ's interfaces
    interpreter = python or sys.executable
    target = plugins / JAR_NAME
    descriptor, partial = tempfile.mkstemp(prefix=".deepij_", suffix=".partial", dir=plugins)
    os.close(descriptor)
    try:
        _write_jar(Path(partial), classes, deepimagej is not None, interpreter)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    names = command_names(deepimagej_present=deepimagej is not None)
    return Installed(target, names, deepimagej, interpreter)


def uninstall(folder: str | os.PathLike[str]) -> Path:
    """Remove the plugin jar from ``folder``'s plugins; the path removed.

    Raises
    ------
    ArgumentError
        The plugin is not installed there.
    """
    target = plugins_folder(folder) / JAR_NAME
    if not target.is_file():
        raise ArgumentError(f"{target}: the deepij plugin is not installed there (nothing to remove)")
    target.unlink()
    return target


def _write_jar(target: Path, classes: Path, deepimagej_present: bool, python: str) -> None:
    import deepij

    package_parent = Path(deepij.__file__).resolve().parents[1]
    properties = "\n".join([
        "# which deepij the plugin starts: <python> -m deepij serve --stdio (PYTHONPATH gets pythonpath)",
        f"python={_escape(python)}",
        f"pythonpath={_escape(str(package_parent))}",
        f"version={deepij.__version__}",
        f"installed={time.strftime('%Y-%m-%dT%H:%M:%S')}",
    ]) + "\n"
    with zipfile.ZipFile(classes) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as jar:
        for item in source.infolist():
            if item.filename not in (_CONFIG, _PROPERTIES):
                jar.writestr(item, source.read(item.filename))
        jar.writestr(_CONFIG, plugins_config(deepimagej_present=deepimagej_present))
        jar.writestr(_PROPERTIES, properties)


def _escape(value: str) -> str:
    r"""A value as java.util.Properties reads it back (backslashes, and leading spaces, escaped).

    Examples
    --------
    >>> print(_escape("C:\\Python"))
    C:\\Python
    """
    escaped = value.replace("\\", "\\\\")
    return "\\" + escaped if escaped.startswith(" ") else escaped
