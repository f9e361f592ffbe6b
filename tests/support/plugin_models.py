"""The models and images the tests of deepij's ImageJ plugin use (see :mod:`support.imagej_process`).

Usage in a test (``tmp_path`` is pytest's fixture)::

    made = plugin_imagej(tmp_path)
    made["bundles"][FLOAT].folder.name  # -> 'float'
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tifffile

from support.dij_bundles import FAILING_MACRO, write_java_bundle_v0_3, write_segmentation_bundle_v0_3
from support.imagej_process import macro_string, make_imagej

FLOAT = "plugin float model"  # pre-processing macro only: the network's float output is the result
SEG = "plugin seg model"  # pre macro, post macro (a mask and a Results table)
JAVA = "plugin java model"  # Java pre and post steps (a mask and an "objects" table)
FAILING = "plugin failing model"
WAITING = "plugin waiting model"  # its pre macro waits for a file: a call the test can act during


def plugin_imagej(root: Path) -> dict:
    """An ImageJ folder with the plugin and the test models; an input image ``cells.tif`` next to it."""
    folder = make_imagej(root / "ImageJ")
    models = folder / "models"
    made = {
        FLOAT: write_segmentation_bundle_v0_3(models / "float", name=FLOAT, post_macro=None),
        SEG: write_segmentation_bundle_v0_3(models / "seg", name=SEG),
        FAILING: write_segmentation_bundle_v0_3(models / "failing", name=FAILING, pre_macro=FAILING_MACRO),
        WAITING: write_segmentation_bundle_v0_3(
            models / "waiting", name=WAITING, post_macro=None,
            pre_macro=(f'File.saveString("", {macro_string(root / "waiting")});\n'
                       f'while (!File.exists({macro_string(root / "go")})) wait(20);\nrun("32-bit");\n'),
        ),
    }
    java = pytest.importorskip("support.java")
    classes = java.compile_steps(root / "classes", ["ScaleFromConfig", "org.example.seg.ThresholdMeasure"])
    jars = {
        "scale.jar": java.pack_jar(classes, ["ScaleFromConfig"], root / "scale.jar"),
        "threshold.jar": java.pack_jar(classes, ["org.example.seg.ThresholdMeasure"], root / "threshold.jar"),
    }
    made[JAVA] = write_java_bundle_v0_3(models / "java", jars, name=JAVA)
    image = made[FLOAT].test_input[0, 0]
    tifffile.imwrite(root / "cells.tif", image, imagej=True)
    (root / "folder").mkdir()
    tifffile.imwrite(root / "folder" / "a.tif", image, imagej=True)
    tifffile.imwrite(root / "folder" / "b.tif", image[::-1].copy(), imagej=True)
    return {"folder": folder, "root": root, "bundles": made, "image": image}
