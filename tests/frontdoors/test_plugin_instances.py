"""``run("DeepImageJ StarDist", ...)`` and ``run("DeepImageJ Cellpose", ...)`` through deepij's plugin in a
real, separate ImageJ 1.x (``java -jar ij.jar -batch`` under a virtual display, the plugin installed with
``deepij plugin install``): the label image, its title, type, display range and table are what deepij's
own ImageJ gives for the same macro line on the same image; a bad option stops the macro with deepij's
message in the Log.

The expected values come from this process's deepij (the command served in its own ImageJ session, on
the same pixels), never from the plugin or its worker; test_deepimagej_instances.py checks that command
against stardist's and cellpose's own code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import xarray as xr

from deepij.imagej.lut_colours import LABEL_LUT, lut_colours
from support.imagej_process import ImageJProcess, macro_string, make_imagej
from support.instance_bundles import blob_pair, write_cellpose_exporter_bundle

pytestmark = pytest.mark.skipif(not Path("/usr/share/java/ij.jar").is_file(), reason="needs libij-java")

_REPORT = """
Stack.getDimensions(width, height, channels, slices, frames);
print("result: " + getTitle() + " " + bitDepth() + " frames " + frames);
getMinAndMax(low, high);
getLut(reds, greens, blues);
print("range: " + low + " " + high + " colour1: " + reds[1] + "," + greens[1] + "," + blues[1]);
saveAs("Tiff", {path});
"""


@pytest.fixture(scope="module")
def imagej(tmp_path_factory):
    return make_imagej(tmp_path_factory.mktemp("plugin_instances") / "ImageJ")


@pytest.fixture(scope="module")
def stardist_bundle(tiny_stardist, tmp_path_factory):
    from support.stardist_bundles import write_stardist_v0_5

    model, image = tiny_stardist
    return write_stardist_v0_5(model, tmp_path_factory.mktemp("plugin_sd") / "tiny_sd", image)


def _in_process(session, line: str, image: xr.DataArray):
    """What deepij's own ImageJ leaves for the same line on the same pixels: pixels, range, table colour 1."""
    report = ('getMinAndMax(low, high); getLut(r, g, b); '
              'return "" + low + " " + high + " " + r[1] + "," + g[1] + "," + b[1];')
    result = session.run_macro(line + "\n" + report, image=image)
    return result.image.values, result.value


def _line(stdout: str, key: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith(key + ": ")]
    assert lines, stdout
    return lines[0][len(key) + 2:]


def test_stardist_gives_deepijs_own_label_image(imagej, display, tiny_stardist, stardist_bundle,
                                                imagej_session, tmp_path):
    model, image = tiny_stardist
    tifffile.imwrite(tmp_path / "cells.tif", image.astype(np.float32), imagej=True)
    prob = float(model.thresholds.prob)
    line = (f'run("DeepImageJ StarDist", "model=[{stardist_bundle.folder}] prob_thresh={prob} '
            'min_percentile=2 max_percentile=99.5");')
    macro = f"open({macro_string(tmp_path / 'cells.tif')});\n{line}\n" + _REPORT.format(
        path=macro_string(tmp_path / "mask.tif"))
    run = ImageJProcess(imagej, macro, display=display).finish()
    assert _line(run.stdout, "result") == "cells_mask.tif 32 frames 1", run.stdout + run.stderr
    expected, shown = _in_process(imagej_session, line, xr.DataArray(image.astype(np.float32),
                                                                      dims=("row", "col"), name="cells.tif"))
    assert expected.max() >= 3
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "mask.tif"), expected)
    low, high, colour = shown.split()
    assert _line(run.stdout, "range") == f"{low} {high} colour1: {colour}"
    assert colour == ",".join(str(int(v)) for v in lut_colours(LABEL_LUT)[1])


def test_cellpose_on_frames_gives_deepijs_own_label_image(imagej, display, imagej_session, tmp_path):
    pytest.importorskip("cellpose.dynamics")
    write_cellpose_exporter_bundle(imagej / "models" / "cp")  # found by name in this ImageJ's models/
    frames = np.stack([blob_pair(96, seed=s)[..., 0] * 200 + 10 for s in (0, 3)]).astype(np.float32)
    tifffile.imwrite(tmp_path / "blobs.tif", frames[:, None, None, :, :, None], imagej=True)  # TZCYXS
    line = 'run("DeepImageJ Cellpose", "model=cp cyto_color=gray nuclei_color=gray diameter=15");'
    macro = f"open({macro_string(tmp_path / 'blobs.tif')});\n{line}\n" + _REPORT.format(
        path=macro_string(tmp_path / "labels.tif"))
    run = ImageJProcess(imagej, macro, display=display).finish()
    assert _line(run.stdout, "result") == "blobs_labels.tif 16 frames 2", run.stdout + run.stderr
    in_process = line.replace("model=cp", f"model=[{imagej / 'models' / 'cp'}]")
    expected, shown = _in_process(imagej_session, in_process,
                                  xr.DataArray(frames, dims=("t", "row", "col"), name="blobs.tif"))
    assert expected.shape == (2, 96, 96) and expected[1].max() >= 5
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), expected)
    low, high, colour = shown.split()
    assert _line(run.stdout, "range") == f"{low} {high} colour1: {colour}"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('run("DeepImageJ StarDist", "model=[{sd}] prob_threshold=0.4");',
         "DeepImageJ StarDist: unknown key 'prob_threshold'; expected model=, prob_thresh="),
        ('run("DeepImageJ Cellpose", "model=[{sd}] cyto_color=gray nuclei_color=red");',
         "DeepImageJ Cellpose: cyto_color=gray nuclei_color=red: gray is for grayscale images"),
        ('run("DeepImageJ StarDist", "model=[no such model]");',
         "DeepImageJ StarDist: model=[no such model]"),
    ],
)
def test_a_bad_option_stops_the_macro_with_deepijs_message(imagej, display, stardist_bundle, line, message):
    macro = f"""
setBatchMode(true);
newImage("mine", "32-bit ramp", 48, 40, 1);
{line.format(sd=stardist_bundle.folder)}
print("after the call");
"""
    run = ImageJProcess(imagej, macro, display=display).finish()
    assert message in run.stdout, run.stdout + run.stderr
    assert "after the call" not in run.stdout
    assert "DeepImageJ StarDist: DeepImageJ" not in run.stdout and "Cellpose: DeepImageJ" not in run.stdout
