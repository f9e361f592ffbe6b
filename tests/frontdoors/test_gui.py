"""``deepij gui`` as a user starts it: a separate ``python -m deepij gui --run DRIVER`` process showing
ImageJ's window on a (virtual, for the test) display, the plugin's commands under Plugins > deepij served
in that process. The ImageJ folder holds the test models and the test probe ``GuiProbe`` but not the plugin
jar: the menu is deepij gui's own.

The driver macro (run in the window by ``--run``, as ImageJ's ``-macro`` runs one) notes what it sees into a
file, runs DeepImageJ Run twice (the second time with the model's weights file moved away: only a model kept
loaded can run), a call with a bad option (its error box answered by the probe), opens the dialog from the
menu and reads its model list, then closes ImageJ's window with its close box. The expected images come from
this process's ``deepij.load(...).predict(...)``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import deepij
from support.imagej_process import macro_string
from support.plugin_models import FLOAT, SEG, plugin_imagej

pytestmark = pytest.mark.skipif(not Path("/usr/share/java/ij.jar").is_file(), reason="needs libij-java")

STEPS = "preprocessing=[per_sample_scale_range.ijm] postprocessing=[no postprocessing]"
OPTIONS = f"model=[{FLOAT}] format=Pytorch {STEPS} axes=C,Y,X tile=1,40,48 logging=normal"


def _gui(args: list[str], *, display: str | None, imagej: Path, timeout: float = 600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "DEEPIJ_IJ_JAR": str(imagej / "ij.jar"),
           "JAVA_TOOL_OPTIONS": f"-Duser.home={imagej / 'home'}"}  # ImageJ's preferences stay in the test
    env.pop("DISPLAY", None)
    if display is not None:
        env["DISPLAY"] = display
    return subprocess.run([sys.executable, "-m", "deepij", "gui", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def gui_run(tmp_path_factory, display):
    root = tmp_path_factory.mktemp("gui")
    imagej = plugin_imagej(root)
    (imagej["folder"] / "plugins" / "deepij_.jar").unlink()  # the menu must be deepij gui's own
    (imagej["folder"] / "home").mkdir(exist_ok=True)
    out = root / "out"
    out.mkdir()
    weights = imagej["bundles"][FLOAT].folder / "pytorch_script.pt"
    moved = weights.with_name("moved_away.pt")

    def note(text: str) -> str:
        return f'File.append({text}, {macro_string(out / "driver.txt")});'

    bad = root / "bad.ijm"
    bad.write_text(f'selectImage("cells.tif");\nrun("DeepImageJ Run", "model=[{FLOAT}] bogus=1");\n'
                   'print("not reached");\n')
    body = f"""
{note('"menu: " + call("GuiProbe.menuItems", "Plugins", "deepij")')}
List.setCommands;
{note('"class: " + List.get("DeepImageJ Run")')}
open({macro_string(root / "cells.tif")});
run("DeepImageJ Run", "{OPTIONS}");
{note('"first: " + getTitle() + " batch " + is("batch mode")')}
saveAs("Tiff", {macro_string(out / "first.tif")});
close();
File.rename({macro_string(weights)}, {macro_string(moved)});
selectImage("cells.tif");
run("DeepImageJ Run", "{OPTIONS}");
{note('"second: " + getTitle()')}
saveAs("Tiff", {macro_string(out / "second.tif")});
close();
File.rename({macro_string(moved)}, {macro_string(weights)});
{note('"status: " + call("deepij.plugin.Worker.status")')}
runMacro({macro_string(bad)});
{note('"after error: " + nImages')}
selectImage("cells.tif");
call("GuiProbe.menu", "DeepImageJ Run");
{note('"dialog: " + call("GuiProbe.awaitDialog", "DeepImageJ Run")')}
{note('"models: " + call("GuiProbe.items", "DeepImageJ Run")')}
{note('"cancel: " + call("GuiProbe.click", "DeepImageJ Run", "Cancel")')}
"""
    (root / "body.ijm").write_text(body)
    # the checks run as a sub-macro: when one fails, the driver still closes the window (the test ends)
    driver = f"""
call("GuiProbe.watch", {macro_string(out / "dialogs.txt")});
call("GuiProbe.answer", "Macro Error", "OK");
{note('"body: " + runMacro(' + macro_string(root / "body.ijm") + ')')}
File.saveString(getInfo("log"), {macro_string(out / "log.txt")});
{note('"done"')}
call("GuiProbe.closeImageJ");
"""
    (root / "driver.ijm").write_text(driver)
    finished = _gui(["--run", str(root / "driver.ijm")], display=display, imagej=imagej["folder"])
    notes = (out / "driver.txt").read_text() if (out / "driver.txt").exists() else ""
    return {"out": out, "imagej": imagej, "finished": finished, "notes": notes}


def _said(gui_run) -> str:
    return gui_run["notes"] + "\n" + gui_run["finished"].stdout + gui_run["finished"].stderr


def _line(gui_run, key: str) -> str:
    lines = [line for line in gui_run["notes"].splitlines() if line.startswith(key + ": ")]
    assert lines, _said(gui_run)
    return lines[0][len(key) + 2:]


def test_plugins_deepij_holds_the_plugins_commands(gui_run):
    assert _line(gui_run, "menu") == ("DeepImageJ Run|DeepImageJ Validate|Install Model|Test Model|"
                                      "DeepImageJ StarDist|DeepImageJ Cellpose")
    # the plugin's class is the command: one DeepImageJ Run, not deepij's served one
    assert _line(gui_run, "class") == 'deepij.plugin.RunCommand("DeepImageJ Run")'


def test_a_macro_run_gives_predict_and_the_second_run_reuses_the_loaded_model(gui_run):
    assert _line(gui_run, "first") == "plugin float model_output_cells batch 0"
    assert _line(gui_run, "second") == "plugin float model_output_cells", _said(gui_run)
    imagej = gui_run["imagej"]
    model = deepij.load(imagej["bundles"][FLOAT].folder)
    expected = model.predict(imagej["image"], tile={"y": 40, "x": 48}, tiling="deepimagej").images["output"]
    first = tifffile.imread(gui_run["out"] / "first.tif")
    np.testing.assert_array_equal(first, expected.values[0, 0])
    # run with its weights file moved away: only the model loaded by the first run could give it
    np.testing.assert_array_equal(tifffile.imread(gui_run["out"] / "second.tif"), first)
    assert _line(gui_run, "status").startswith("in process exchange ")


def test_a_bad_option_shows_deepijs_message_and_imagej_goes_on(gui_run):
    dialogs = (gui_run["out"] / "dialogs.txt").read_text()
    boxes = [block for block in dialogs.split("=== ") if block.startswith("Macro Error\nDeepImageJ Run:")]
    assert len(boxes) == 1, dialogs
    assert "DeepImageJ Run: bogus=: unknown key" in boxes[0] and "in line 2" in boxes[0]
    assert _line(gui_run, "after error") == "1"  # only the driver's image is open
    assert "not reached" not in (gui_run["out"] / "log.txt").read_text()


def test_the_dialog_without_options_lists_the_models(gui_run):
    assert _line(gui_run, "dialog") == "found"
    models = _line(gui_run, "models").split("|")
    assert FLOAT in models and SEG in models, models
    assert _line(gui_run, "cancel") == "clicked"


def test_closing_the_window_ends_deepij_gui_with_status_0(gui_run):
    assert "done" in gui_run["notes"], _said(gui_run)
    assert "[aborted]" not in _line(gui_run, "body"), _said(gui_run)  # every check of the body ran
    assert gui_run["finished"].returncode == 0, _said(gui_run)


def test_without_a_display_deepij_gui_says_so_and_starts_nothing(tmp_path):
    finished = _gui([], display=None, imagej=tmp_path, timeout=120)
    assert finished.returncode == 1
    assert "deepij gui" in finished.stderr and "DISPLAY is not set" in finished.stderr, finished.stderr


def test_a_missing_startup_macro_is_named(tmp_path, display):
    finished = _gui(["--run", str(tmp_path / "missing.ijm")], display=display, imagej=tmp_path, timeout=120)
    assert finished.returncode == 1
    assert f"macro={str(tmp_path / 'missing.ijm')!r}: no such file" in finished.stderr, finished.stderr
