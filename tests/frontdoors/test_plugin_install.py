"""``deepij plugin install|uninstall DIR``: the jar in the right plugins folder, with the commands named as
users' macros call them (``deepij Run`` beside deepImageJ's own plugin), the record of which Python runs
deepij, updated in place; refused with a clear message where there is no ImageJ. The commands working in a
real ImageJ are the subject of test_plugin_batch.py and test_plugin_gui.py; here a real ImageJ checks only
that the renamed command is the one that runs."""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

import pytest

import deepij
from deepij.errors import ArgumentError
from deepij.frontdoors.cli import main
from deepij.frontdoors.plugin_install import JAR_NAME, install, plugins_config, uninstall

SETUP = Path(__file__).resolve().parents[2] / "scripts" / "setup.sh"
#: deepImageJ's own jar declares its command like this (a stand-in jar: deepImageJ is not installed here)
DEEPIMAGEJ_CONFIG = 'Plugins>DeepImageJ, "DeepImageJ Run", deepimagej.DeepImageJ_Run\n'


def _config(jar: Path) -> str:
    with zipfile.ZipFile(jar) as archive:
        return archive.read("plugins.config").decode()


def _properties(jar: Path) -> dict[str, str]:
    with zipfile.ZipFile(jar) as archive:
        lines = archive.read("deepij/plugin/install.properties").decode().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _fiji(tmp_path: Path) -> Path:
    folder = tmp_path / "Fiji.app"
    (folder / "plugins").mkdir(parents=True)
    return folder


def test_install_puts_the_jar_into_plugins_with_deepimagejs_names(tmp_path, capsys):
    fiji = _fiji(tmp_path)
    assert main(["plugin", "install", str(fiji)]) == 0
    jar = fiji / "plugins" / JAR_NAME
    config = _config(jar)
    for name, command in (("DeepImageJ Run", "RunCommand"), ("DeepImageJ Validate", "ValidateCommand"),
                          ("Install Model", "InstallCommand"), ("Test Model", "TestCommand"),
                          ("DeepImageJ StarDist", "InstanceCommand"),
                          ("DeepImageJ Cellpose", "InstanceCommand")):
        assert f'Plugins>deepij, "{name}", deepij.plugin.{command}("{name}")' in config
    with zipfile.ZipFile(jar) as archive:
        names = set(archive.namelist())
    assert {"deepij/plugin/RunCommand.class", "deepij/plugin/InstanceCommand.class",
            "deepimagej/processing/PreProcessingInterface.class"} <= names
    out = capsys.readouterr().out
    assert f"installed {jar}" in out and "deepImageJ's own plugin" not in out


def test_the_record_names_this_python_and_where_its_deepij_is(tmp_path):
    done = install(_fiji(tmp_path))
    record = _properties(done.jar)
    assert record["python"] == sys.executable
    assert (Path(record["pythonpath"]) / "deepij" / "__init__.py").samefile(deepij.__file__)
    assert record["version"] == deepij.__version__


def test_installing_again_replaces_the_jar_in_place(tmp_path):
    fiji = _fiji(tmp_path)
    first = install(fiji, python="/old/python")
    second = install(fiji)
    assert first.jar == second.jar and _properties(second.jar)["python"] == sys.executable
    assert sorted(p.name for p in (fiji / "plugins").iterdir()) == [JAR_NAME]  # no partial file left


def test_beside_deepimagejs_own_plugin_the_commands_are_deepij_run(tmp_path, capsys):
    fiji = _fiji(tmp_path)
    theirs = fiji / "plugins" / "DeepImageJ_-3.1.0.jar"
    with zipfile.ZipFile(theirs, "w") as archive:
        archive.writestr("plugins.config", DEEPIMAGEJ_CONFIG)
    assert main(["plugin", "install", str(fiji)]) == 0
    config = _config(fiji / "plugins" / JAR_NAME)
    assert '"deepij Run", deepij.plugin.RunCommand("deepij Run")' in config
    assert '"deepij Validate"' in config and '"DeepImageJ Run"' not in config
    for name in ("deepij StarDist", "deepij Cellpose"):  # deepImageJ 3.1 has these commands too
        assert f'"{name}", deepij.plugin.InstanceCommand("{name}")' in config
    assert '"DeepImageJ StarDist"' not in config and '"DeepImageJ Cellpose"' not in config
    out = capsys.readouterr().out
    assert f"deepImageJ's own plugin is in this ImageJ ({theirs})" in out and '"deepij Run"' in out


def test_deepimagej_is_recognised_by_its_commands_whatever_its_jar_is_called(tmp_path):
    fiji = _fiji(tmp_path)
    (fiji / "plugins" / "jars").mkdir()
    with zipfile.ZipFile(fiji / "plugins" / "jars" / "dij_core.jar", "w") as archive:
        archive.writestr("plugins.config", 'Plugins>DeepImageJ, "DeepImageJ Run", deepimagej.Run\n')
    assert install(fiji).commands["run"] == "deepij Run"


def test_an_imagej_folder_with_ij_jar_alone_gets_a_plugins_folder(tmp_path):
    folder = tmp_path / "ImageJ"
    folder.mkdir()
    (folder / "ij.jar").write_bytes(b"")
    assert install(folder).jar == folder / "plugins" / JAR_NAME


def test_a_plugins_folder_itself_is_taken_as_it_is(tmp_path):
    plugins = _fiji(tmp_path) / "plugins"
    assert install(plugins).jar == plugins / JAR_NAME


@pytest.mark.parametrize("kind", ["missing", "no imagej"])
def test_a_folder_without_imagej_is_refused_and_nothing_is_written(tmp_path, capsys, kind):
    folder = tmp_path / "elsewhere"
    if kind == "no imagej":
        folder.mkdir()
    assert main(["plugin", "install", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"deepij plugin install: {folder}:")
    assert "expected a Fiji.app" in err
    assert not any(tmp_path.rglob("*.jar"))


def test_uninstall_removes_the_jar_and_says_when_there_is_none(tmp_path, capsys):
    fiji = _fiji(tmp_path)
    install(fiji)
    assert main(["plugin", "uninstall", str(fiji)]) == 0
    assert not (fiji / "plugins" / JAR_NAME).exists()
    with pytest.raises(ArgumentError, match="the deepij plugin is not installed there"):
        uninstall(fiji)


def test_setup_sh_packs_the_same_plugins_config():
    """scripts/setup.sh writes the default plugins.config of jars/build/deepij_.jar itself (it runs before
    Python is set up): it must be the one the installer writes."""
    text = SETUP.read_text()
    written = re.search(r"<<'CONFIG'\n(.*?)CONFIG\n", text, re.S)
    assert written is not None
    assert written.group(1) == plugins_config(deepimagej_present=False)


def test_in_a_real_imagej_the_renamed_command_is_deepijs(tmp_path, display):
    """Beside deepImageJ, ``run("deepij Run", ...)`` runs deepij's plugin (same options)."""
    from support.imagej_process import ImageJProcess, macro_string
    from support.plugin_models import FLOAT, plugin_imagej

    made = plugin_imagej(tmp_path)
    folder = made["folder"]
    with zipfile.ZipFile(folder / "plugins" / "DeepImageJ_-3.1.0.jar", "w") as archive:
        archive.writestr("plugins.config", DEEPIMAGEJ_CONFIG)
    assert install(folder).commands["run"] == "deepij Run"  # installed again, now beside deepImageJ
    macro = f"""
open({macro_string(tmp_path / "cells.tif")});
run("deepij Run", "model=[{FLOAT}]");
print("output: " + getTitle());
"""
    run = ImageJProcess(folder, macro, display=display).finish()
    assert f"output: {FLOAT}_output_cells" in run.stdout, run.stdout + run.stderr
