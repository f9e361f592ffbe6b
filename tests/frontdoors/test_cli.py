"""The ``deepij`` command as installed: one entry point, in the front-door package, with every subcommand."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUBCOMMANDS = ("info", "install", "run", "macro", "demo", "test", "build", "validate", "plugin", "serve",
               "gui")


def test_the_installed_entry_point_is_the_front_door_cli() -> None:
    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "deepij"]
    assert script.value == "deepij.frontdoors.cli:main"
    from deepij.frontdoors import cli

    assert script.load() is cli.main


def test_the_old_module_is_gone() -> None:
    assert importlib.util.find_spec("deepij.cli") is None


@pytest.mark.skipif(
    shutil.which("deepij", path=str(Path(sys.executable).parent)) is None,
    reason="the deepij script is not installed next to this Python",
)
def test_the_deepij_script_lists_every_subcommand() -> None:
    script = shutil.which("deepij", path=str(Path(sys.executable).parent))
    assert script is not None
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^    (\S+)", done.stdout, flags=re.MULTILINE)  # wrapped help lines indent more
    assert tuple(listed) == SUBCOMMANDS


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_has_its_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from deepij.frontdoors.cli import main

    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: deepij {command}")


def test_no_subcommand_prints_the_help_and_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from deepij.frontdoors.cli import main

    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
