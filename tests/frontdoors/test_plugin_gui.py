"""deepij's plugin in a real, separate ImageJ 1.x with its window (``java -jar ij.jar -macro``, under a
virtual display): the Plugins > deepij menu; DeepImageJ Run's dialog clicked through with java.awt.Robot, the
macro recorder's line replaying that run; outputs as windows; errors in ImageJ's error box (clicked away,
ImageJ goes on); Esc during a run.

One ImageJ runs one driver macro (ImageJ's window stays up between the checks); the driver calls the test
probe ``GuiProbe`` (``support/java_gui``) to note the dialogs, click them and press Esc, and runs the calls
that must stop as sub-macros (``runMacro``), so the driver goes on after them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

import deepij
from support.imagej_process import ImageJProcess, macro_string
from support.plugin_models import FAILING, FLOAT, SEG, WAITING, plugin_imagej

pytestmark = pytest.mark.skipif(not Path("/usr/share/java/ij.jar").is_file(), reason="needs libij-java")


@pytest.fixture(scope="module")
def gui_run(tmp_path_factory, display):
    root = tmp_path_factory.mktemp("plugin_gui")
    imagej = plugin_imagej(root)
    out = root / "out"
    out.mkdir()

    def note(text: str) -> str:
        return f'File.append({text}, {macro_string(out / "driver.txt")});'

    def sub(name: str, code: str) -> str:
        path = root / f"{name}.ijm"
        path.write_text(code)
        return f"runMacro({macro_string(path)});"

    def stopped(options: str) -> str:
        return f'selectImage("cells.tif");\nrun("DeepImageJ Run", "{options}");\nprint("not reached");\n'

    bad = sub("bad", stopped(f"model=[{FLOAT}] bogus=1"))
    failing = sub("failing", stopped(f"model=[{FAILING}]"))
    escape = sub("escape", stopped(f"model=[{WAITING}]"))
    steps = "preprocessing=[per_sample_scale_range.ijm] postprocessing=[no postprocessing]"
    driver = f"""
call("GuiProbe.watch", {macro_string(out / "dialogs.txt")});
call("GuiProbe.answer", "Macro Error", "OK");
call("GuiProbe.escapeWhen", {macro_string(root / "waiting")});
open({macro_string(root / "cells.tif")});
run("DeepImageJ Run", "model=[{FLOAT}] format=Pytorch {steps}");
{note('"window: " + getTitle() + " " + (getImageID() < 0) + " batch " + is("batch mode")')}
saveAs("Tiff", {macro_string(out / "gui.tif")});
close();
{bad}
{failing}
{note('"after errors: " + nImages')}
{escape}
{note('"after escape: " + nImages + " batch " + is("batch mode")')}
run("Record...");
call("GuiProbe.openMenu", "Plugins", "deepij");
call("GuiProbe.screenshot", {macro_string(out / "menu.png")});
call("GuiProbe.closeMenu");
selectImage("cells.tif");
call("GuiProbe.menu", "DeepImageJ Run");
{note('call("GuiProbe.awaitDialog", "DeepImageJ Run")')}
{note('call("GuiProbe.choose", "DeepImageJ Run", "' + SEG + '")')}
call("GuiProbe.screenshotWindow", "DeepImageJ Run", {macro_string(out / "dialog.png")});
{note('call("GuiProbe.click", "DeepImageJ Run", "OK")')}
while (!isOpen("mask")) wait(20);
wait(200);
selectImage("mask");
saveAs("Tiff", {macro_string(out / "dialog_mask.tif")});
close();
recorded = call("GuiProbe.recorderText");
File.saveString(recorded, {macro_string(out / "recorded.txt")});
lines = split(recorded, "\\n");
for (i = 0; i < lines.length; i++) if (startsWith(lines[i], "run(\\"DeepImageJ Run\\"")) line = lines[i];
close("*mask*");
selectImage("cells.tif");
eval(line);
selectImage("mask");
saveAs("Tiff", {macro_string(out / "replayed_mask.tif")});
File.saveString(getInfo("log"), {macro_string(out / "log.txt")});
{note('"done"')}
call("GuiProbe.exit");
"""
    (root / "go").unlink(missing_ok=True)
    process = ImageJProcess(imagej["folder"], driver, display=display, gui=True, name="driver")
    try:
        finished = process.finish()
    finally:
        process.kill()
    return {"out": out, "imagej": imagej, "finished": finished,
            "driver": (out / "driver.txt").read_text() if (out / "driver.txt").exists() else ""}


def _driver(gui_run) -> str:
    return gui_run["driver"] + "\n" + gui_run["finished"].stdout + gui_run["finished"].stderr


def test_a_macro_run_opens_its_output_in_a_window_equal_to_predict(gui_run):
    assert "window: plugin float model_output_cells" in gui_run["driver"], _driver(gui_run)
    assert "batch 0" in gui_run["driver"]
    imagej = gui_run["imagej"]
    expected = deepij.load(imagej["bundles"][FLOAT].folder).predict(imagej["image"]).images["output"]
    np.testing.assert_array_equal(tifffile.imread(gui_run["out"] / "gui.tif"), expected.values[0, 0])


def test_errors_show_deepijs_message_in_imagejs_error_box_and_imagej_goes_on(gui_run):
    dialogs = (gui_run["out"] / "dialogs.txt").read_text()
    # deepij's boxes (the failing step's own box opens first and is closed by deepij at once)
    boxes = [block for block in dialogs.split("=== ") if block.startswith("Macro Error\nDeepImageJ Run:")]
    assert len(boxes) == 2, dialogs
    assert "DeepImageJ Run: bogus=: unknown key" in boxes[0] and "in line 2" in boxes[0]
    assert f"bundle '{FAILING}': preprocessing step 1 of 1" in " ".join(boxes[1].split())
    assert "line 3: Undefined variable" in " ".join(boxes[1].split())
    assert "after errors: 1" in gui_run["driver"], _driver(gui_run)  # only the driver's image is open
    assert "not reached" not in (gui_run["out"] / "log.txt").read_text()


def test_escape_cancels_the_run_and_leaves_imagej_as_it_was(gui_run):
    assert "after escape: 1 batch 0" in gui_run["driver"], _driver(gui_run)


def test_the_dialog_clicked_with_robot_runs_and_the_recorded_line_replays_it(gui_run):
    driver = gui_run["driver"]
    assert "found" in driver and "chosen" in driver and "clicked" in driver, _driver(gui_run)
    recorded = (gui_run["out"] / "recorded.txt").read_text()
    lines = [line for line in recorded.splitlines() if line.startswith('run("DeepImageJ Run"')]
    assert len(lines) == 1, recorded
    assert re.fullmatch(
        r'run\("DeepImageJ Run", "model=\[plugin seg model\] format=Pytorch preprocessing=per_sample_scale_'
        r'range\.ijm postprocessing=\[binarize and count\.ijm\] axes=C,Y,X tile=1,\d+,\d+ logging=normal"\);',
        lines[0],
    ), lines[0]
    dialog = tifffile.imread(gui_run["out"] / "dialog_mask.tif")
    np.testing.assert_array_equal(tifffile.imread(gui_run["out"] / "replayed_mask.tif"), dialog)
    imagej = gui_run["imagej"]
    tile = [int(n) for n in re.search(r"tile=1,(\d+),(\d+)", lines[0]).groups()]
    model = deepij.load(imagej["bundles"][SEG].folder)
    seg = model.predict(imagej["image"], tile=dict(zip("yx", tile, strict=True)), tiling="deepimagej")
    np.testing.assert_array_equal(dialog, seg.images["mask"].values)
    assert "done" in driver


def test_the_menu_and_the_dialog_are_on_screen(gui_run):
    from PIL import Image

    for name in ("menu.png", "dialog.png"):
        with Image.open(gui_run["out"] / name) as shot:
            grey = np.asarray(shot.convert("L"))
            assert grey.shape[1] > 100 and grey.std() > 10  # drawn, not an empty screen
