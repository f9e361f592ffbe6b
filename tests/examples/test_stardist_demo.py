"""The StarDist demo (examples/stardist_demo.py) and the bundle writer it uses (examples/stardist_bundle.py),
run on the tests' tiny StarDist2D (training the demo's own model takes minutes): the bundle reproduces
its test output (stardist's own ``predict_instances``), and the demo writes what it says.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples"))  # the examples import one another as scripts do


@pytest.fixture(scope="module")
def demo_bundle(tiny_stardist, tmp_path_factory):
    import stardist_bundle

    model, _ = tiny_stardist
    folder = tmp_path_factory.mktemp("demo") / "stardist_bundle"
    stardist_bundle.write_bundle(model, folder)
    return folder


def test_the_written_bundle_reproduces_stardists_own_output(demo_bundle):
    from deepij.trust.reproduce import test_bundle as run_bundle_test

    report = run_bundle_test(demo_bundle)
    assert report.status == "passed", report


def test_the_demo_writes_labels_objects_and_figure(demo_bundle, tmp_path, capsys):
    import stardist_demo

    assert stardist_demo.run(tmp_path / "out", demo_bundle, tmp_path / "figure.png") == 0
    printed = capsys.readouterr().out
    labels = tifffile.imread(tmp_path / "out" / "labels.tif")
    objects = pd.read_csv(tmp_path / "out" / "labels_objects.csv")
    assert labels.dtype == np.uint16
    assert objects["label"].tolist() == sorted(set(np.unique(labels)) - {0})
    shown = f"in ImageJ: deepij StarDist nuclei (example)_labels_exampleImage: 16-bit, {len(objects)} ROIs"
    assert shown in printed
    assert (tmp_path / "figure.png").stat().st_size > 10_000
