"""After run("DeepImageJ Run", ...) the calling macro sees exactly what deepImageJ leaves: its own images,
unchanged, and the outputs (``<model name>_<output name>_<input title without extension>``, the images and
tables the post-processing made) - none of the copies and intermediate images the steps worked on (the
pre-processed input, the raw network output, a pre-processing decoy), and its batch mode as it was.

The macro lists its open images itself (getList("image.titles"), nImages) after the call and measures its
own images before and after; the expected lists are written here from the bundles' descriptions."""

from __future__ import annotations

import numpy as np
import pytest

from deepij.frontdoors.deepimagej_run import COMMAND
from support.dij_bundles import RENAMING_MACRO, write_java_bundle_v0_3, write_segmentation_bundle_v0_3

LIST_AFTER_THE_CALL = """{setup}
selectImage("my cells.tif");
before = "" + getValue("Mean") + " " + getValue("StdDev");
other_before = -1;
if (isOpen("other")) {{ selectImage("other"); other_before = getValue("Mean"); }}
selectImage("my cells.tif");
batch_before = is("batch mode");
run("{command}", "model_path=[{folder}]");
titles = getList("image.titles");
listed = "";
for (i = 0; i < titles.length; i++) listed = listed + titles[i] + "|";
count = nImages;
batch_after = is("batch mode");
selectImage("my cells.tif");
after = "" + getValue("Mean") + " " + getValue("StdDev");
other_after = -1;
if (isOpen("other")) {{ selectImage("other"); other_after = getValue("Mean"); }}
return listed + "#" + count + "#" + (before == after) + "#" + (other_before == other_after) + "#"
    + batch_before + "=" + batch_after;
"""


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("leaves")
    made = {
        # pre renames the image to "input" (deepImageJ's rule), post leaves a mask and a Results table
        "macros": write_segmentation_bundle_v0_3(root / "seg", name="seg model"),
        # pre leaves two images: "input" and a current decoy
        "decoy": write_segmentation_bundle_v0_3(root / "decoy", name="decoy model", pre_macro=RENAMING_MACRO),
    }
    java = pytest.importorskip("support.java")
    classes = java.compile_steps(root / "classes", ["ScaleFromConfig", "org.example.seg.ThresholdMeasure"])
    jars = {
        "scale.jar": java.pack_jar(classes, ["ScaleFromConfig"], root / "scale.jar"),
        "threshold.jar": java.pack_jar(classes, ["org.example.seg.ThresholdMeasure"], root / "threshold.jar"),
    }
    made["java"] = write_java_bundle_v0_3(root / "java", jars, name="java model")
    return made


def _run(session, bundle, *, batch: bool):
    images = {"my cells.tif": bundle.test_input[0, 0]}
    if batch:
        images = {"other": np.arange(12 * 10, dtype=np.uint8).reshape(10, 12), **images}
    # leaving batch mode shows the current image only (ImageJ drops the other batch-mode images)
    setup = "" if batch else "setBatchMode(false);"
    code = LIST_AFTER_THE_CALL.format(setup=setup, command=COMMAND, folder=bundle.folder)
    result = session.run_macro(code, image=images)
    listed, count, same, other_same, batch_mode = result.value.split("#")
    return listed.rstrip("|").split("|"), int(count), same, other_same, batch_mode, result


@pytest.mark.parametrize(("kind", "made"), [("macros", ["mask"]), ("decoy", ["mask"]), ("java", ["mask"])])
def test_the_calling_macro_sees_its_images_and_the_outputs(session, bundles, kind, made):
    bundle = bundles[kind]
    titles, count, same, other_same, batch_mode, result = _run(session, bundle, batch=True)
    expected = ["other", "my cells.tif", f"{bundle.name}_output_my cells", *made]
    assert titles == expected and count == len(expected)
    assert same == "1" and other_same == "1"  # its own images unchanged
    assert batch_mode == "1=1"
    table = "Results" if kind != "java" else "objects"
    assert table in result.tables  # the post-processing's table, where the macro finds it


@pytest.mark.parametrize("kind", ["macros", "java"])
def test_outside_batch_mode_the_macro_stays_outside(session, bundles, kind):
    bundle = bundles[kind]
    titles, count, same, _, batch_mode, _ = _run(session, bundle, batch=False)
    assert sorted(titles) == sorted(["my cells.tif", f"{bundle.name}_output_my cells", "mask"])
    assert count == 3 and same == "1"
    assert batch_mode == "0=0"  # running the bundle's macros did not switch batch mode on
