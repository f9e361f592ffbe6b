"""deepij's plugin in a real, separate ImageJ 1.x (``java -jar ij.jar -batch``, its own JVM under a virtual
display, the plugin installed with ``deepij plugin install``): users' macros in each dialect, the results
equal to ``deepij.load(...).predict(...)`` on the same image in this process; errors stop the macro with
deepij's message in the Log; a worker killed between calls and during a call; two ImageJ at once.

The expected values come from this process's deepij (its own ImageJ runs the bundle's macros, the network
runs here), never from the plugin or its worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import deepij
from support.imagej_process import ImageJProcess, macro_string, process_alive, wait_for_file
from support.plugin_models import FAILING, FLOAT, JAVA, SEG, WAITING, plugin_imagej

pytestmark = pytest.mark.skipif(not Path("/usr/share/java/ij.jar").is_file(), reason="needs libij-java")


@pytest.fixture(scope="module")
def imagej(tmp_path_factory):
    return plugin_imagej(tmp_path_factory.mktemp("plugin_batch"))


def _run(imagej, display, macro: str, **kw):
    return ImageJProcess(imagej["folder"], macro, display=display, **kw)


def _predict(bundle, image, **kw):
    return deepij.load(bundle.folder).predict(image, **kw)


def test_the_three_dialects_give_deepij_predict(imagej, display, tmp_path):
    cells, float_model = imagej["root"] / "cells.tif", imagej["bundles"][FLOAT]
    steps = "preprocessing=[per_sample_scale_range.ijm] postprocessing=[no postprocessing]"
    two = f"model=[{FLOAT}] format=Pytorch {steps} axes=C,Y,X tile=1,40,48 logging=normal"
    one = f"model=[{FLOAT}] {steps} patch=48 overlap=8 logging=mute"
    three = f"model_path=[{float_model.folder}] display_output"
    files = (f"modelPath=[{float_model.folder}] inputPath=[{imagej['root'] / 'folder'}] "
             f"outputFolder=[{tmp_path / 'out'}] displayOutput=false")
    macro = f"""
open({macro_string(cells)});
run("DeepImageJ Run", "{two}");
saveAs("Tiff", {macro_string(tmp_path / "two.tif")});
selectImage("cells.tif");
run("DeepImageJ Run", "{one}");
saveAs("Tiff", {macro_string(tmp_path / "one.tif")});
selectImage("cells.tif");
run("DeepImageJ Run", "{three}");
print("title: " + getTitle());
saveAs("Tiff", {macro_string(tmp_path / "three.tif")});
run("DeepImageJ Run", "{files}");
print("images: " + nImages);
"""
    run = _run(imagej, display, macro).finish()
    assert "title: plugin float model_output_cells" in run.stdout, run.stdout + run.stderr
    assert "images: 4" in run.stdout  # cells.tif and the three shown outputs; display_output=false shows none
    image = imagej["image"]
    expected = {
        # a macro's tile= runs deepImageJ's tiling (FORMATS.md section 6)
        "two.tif": _predict(float_model, image, tile={"y": 40, "x": 48}, tiling="deepimagej"),
        "one.tif": _predict(float_model, image, tile={"y": 48, "x": 48}, margin=8, tiling="deepimagej"),
        "three.tif": _predict(float_model, image),
    }
    for file, prediction in expected.items():
        saved = tifffile.imread(tmp_path / file)
        np.testing.assert_array_equal(saved, prediction.images["output"].values[0, 0])
    for name, data in (("a", image), ("b", image[::-1].copy())):
        saved = tifffile.imread(tmp_path / "out" / f"{name}_output.tif")
        np.testing.assert_array_equal(saved, _predict(float_model, data).images["output"].values[0, 0])


def test_post_processing_images_and_tables_are_deepijs(imagej, display, tmp_path):
    cells = imagej["root"] / "cells.tif"
    macro = f"""
setBatchMode(true);
newImage("other", "8-bit ramp", 12, 10, 1);
open({macro_string(cells)});
rename("my cells.tif");
run("DeepImageJ Run", "model=[{SEG}]");
titles = getList("image.titles");
listed = "";
for (i = 0; i < titles.length; i++) listed = listed + titles[i] + "|";
print("listed: " + listed + " current: " + getTitle() + " batch: " + is("batch mode"));
saveAs("Tiff", {macro_string(tmp_path / "mask.tif")});
saveAs("Results", {macro_string(tmp_path / "results.csv")});
selectImage("my cells.tif");
run("DeepImageJ Run", "model=[{JAVA}]");
selectImage("mask");
saveAs("Tiff", {macro_string(tmp_path / "java_mask.tif")});
Table.save({macro_string(tmp_path / "objects.csv")}, "objects");
"""
    run = _run(imagej, display, macro).finish()
    listed = f"listed: other|my cells.tif|{SEG}_output_my cells|mask| current: mask batch: 1"
    assert listed in run.stdout, run.stdout + run.stderr
    image = imagej["image"]
    seg = _predict(imagej["bundles"][SEG], image)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "mask.tif"), seg.images["mask"].values)
    results = pd.read_csv(tmp_path / "results.csv")
    for column in ("Area", "X", "Y"):
        np.testing.assert_allclose(results[column], seg.tables["Results"][column], rtol=1e-6)
    java = _predict(imagej["bundles"][JAVA], image)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "java_mask.tif"), java.images["mask"].values)
    objects = pd.read_csv(tmp_path / "objects.csv")
    assert len(objects) == len(java.tables["objects"]) > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("model=[no such model]", "DeepImageJ Run: model=[no such model]: not found"),
        (f"model=[{FLOAT}] bogus=3", "DeepImageJ Run: bogus=: unknown key"),
        (f"model=[{FAILING}]", f"DeepImageJ Run: bundle '{FAILING}': preprocessing step 1 of 1 (macro "
                               "per_sample_scale_range.ijm), line 3: Undefined variable"),
    ],
)
def test_an_error_stops_the_macro_with_deepijs_message_in_the_log(imagej, display, options, message):
    macro = f"""
setBatchMode(true);
newImage("mine", "32-bit ramp", 48, 40, 1);
run("DeepImageJ Run", "{options}");
print("after the call");
"""
    run = _run(imagej, display, macro).finish()
    assert message in run.stdout, run.stdout + run.stderr
    assert "after the call" not in run.stdout


def test_a_worker_killed_between_calls_is_started_again(imagej, display):
    root = imagej["root"]
    macro = f"""
newImage("a", "32-bit ramp", 48, 40, 1);
run("DeepImageJ Run", "model=[{FLOAT}]");
File.saveString("", {macro_string(root / "first_done")});
while (!File.exists({macro_string(root / "killed")})) wait(20);
selectImage("a");
run("DeepImageJ Run", "model=[{FLOAT}]");
print("second call: " + getTitle());
"""
    process = _run(imagej, display, macro)
    try:
        wait_for_file(root / "first_done", process)
        (first,) = process.worker_pids()
        _kill(first)
        (root / "killed").write_text("")
        run = process.finish()
    finally:
        process.kill()
    assert f"second call: {FLOAT}_output_a" in run.stdout, run.stdout + run.stderr


def test_a_worker_killed_during_a_call_stops_that_macro_with_a_clear_error(imagej, display):
    root = imagej["root"]
    macro = f"""
newImage("a", "32-bit ramp", 48, 40, 1);
run("DeepImageJ Run", "model=[{WAITING}]");
print("not reached");
"""
    (root / "go").unlink(missing_ok=True)
    (root / "waiting").unlink(missing_ok=True)
    process = _run(imagej, display, macro)
    try:
        wait_for_file(root / "waiting", process)  # the pre-processing macro runs: the plan is made
        (worker,) = process.worker_pids()
        _kill(worker)
        (root / "go").write_text("")
        run = process.finish()
    finally:
        process.kill()
        (root / "go").unlink(missing_ok=True)
    assert "DeepImageJ Run: the deepij worker" in run.stdout and "killed by signal 9" in run.stdout
    assert "It is started again on the next call." in run.stdout
    assert "not reached" not in run.stdout


def test_two_imagej_at_once_have_their_own_workers(imagej, display, tmp_path):
    processes = []
    for name in ("one", "two"):
        macro = f"""
newImage("{name}", "32-bit ramp", 48, 40, 1);
run("DeepImageJ Run", "model=[{FLOAT}]");
File.saveString("", {macro_string(tmp_path / name)});
while (!File.exists({macro_string(tmp_path / "both")})) wait(20);
selectImage("{name}");
run("DeepImageJ Run", "model=[{FLOAT}]");
print("done: " + getTitle());
"""
        processes.append(_run(imagej, display, macro, name=name))
    try:
        for name, process in zip(("one", "two"), processes, strict=True):
            wait_for_file(tmp_path / name, process)
        workers = [process.worker_pids() for process in processes]
        (tmp_path / "both").write_text("")
        runs = [process.finish() for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert len(workers[0]) == len(workers[1]) == 1 and workers[0] != workers[1]
    for name, run in zip(("one", "two"), runs, strict=True):
        assert f"done: {FLOAT}_output_{name}" in run.stdout, run.stdout + run.stderr
    for pids in workers:  # ImageJ quit: its worker ended with it
        assert not process_alive(pids[0])


def test_the_worker_ends_when_imagej_is_killed(imagej, display):
    root = imagej["root"]
    macro = f"""
newImage("a", "32-bit ramp", 48, 40, 1);
run("DeepImageJ Run", "model=[{FLOAT}]");
File.saveString(call("deepij.plugin.Worker.status"), {macro_string(root / "started")});
while (true) wait(1000);
"""
    process = _run(imagej, display, macro)
    try:
        wait_for_file(root / "started", process)
        (worker,) = process.worker_pids()
        status = (root / "started").read_text().split()
        assert status[:2] == ["pid", str(worker)] and status[2] == "exchange"
        exchange = Path(status[3])
        assert exchange.is_dir()
        _kill(process.pid)
        process.process.wait()
        _wait_until(lambda: not process_alive(worker))
    finally:
        process.kill()
    assert not exchange.exists()  # the worker removed its private folder on its way out


def _kill(pid: int) -> None:
    import os
    import signal

    os.kill(pid, signal.SIGKILL)


def _wait_until(condition, limit: float = 60) -> None:
    import time

    end = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < end, "it did not happen"
        time.sleep(0.05)
