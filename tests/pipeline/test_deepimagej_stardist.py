"""A deepImageJ-style StarDist bundle (support.dij_stardist_bundles: a StarDist2D trained here, deepImageJ's
pre-processing macro, the StarDist post-processing macro with ``Command From Macro``) end to end through the
three front doors: ``predict``, ``deepij run`` and ``run("DeepImageJ Run", ...)``.

Oracles: the Keras network itself on the histogram-normalised image (numpy, support.dij_bundles) for what
the network gave, and stardist's own NMS and rasterisation on the maps the macro made from it (ImageJ's
bicubic ``Scale...``: ``scores``, ``distances``) for the objects.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import deepij

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["0.4", "0.3"])
def any_bundle(request, tiny_stardist, tmp_path_factory):
    """The bundle as a 0.4 ``rdf.yaml`` and as deepImageJ 2.1's 0.3 ``model.yaml``."""
    from support.dij_stardist_bundles import write_deepimagej_stardist

    model, image = tiny_stardist
    folder = tmp_path_factory.mktemp(f"dij_stardist_{request.param}") / "tiny"
    return write_deepimagej_stardist(model, folder, image, version=request.param)


@pytest.fixture(scope="module")
def bundle(tiny_stardist, tmp_path_factory):
    from support.dij_stardist_bundles import write_deepimagej_stardist

    model, image = tiny_stardist
    return write_deepimagej_stardist(model, tmp_path_factory.mktemp("dij_stardist") / "tiny", image)


def _nms_labels(scores: np.ndarray, distances: np.ndarray, prob: float) -> np.ndarray:
    stardist = pytest.importorskip("stardist")
    points, probi, disti = stardist.non_maximum_suppression(
        distances, scores, grid=(1, 1), b=2, prob_thresh=prob, nms_thresh=0.4
    )
    return stardist.polygons_to_label(disti, points, prob=probi, shape=scores.shape)


def _check_objects(labels: np.ndarray, scores: np.ndarray, distances: np.ndarray, prob: float) -> None:
    """The label image is StarDist's NMS and rasterisation of the maps (ImageJ fills the polygons, stardist
    draws them: a few pixels along edges may differ)."""
    expected = _nms_labels(scores, distances, prob)
    assert labels.dtype == np.uint16
    assert labels.max() == expected.max() >= 3
    assert np.mean(labels != expected) < 0.005


def test_predict_runs_the_macros_and_leaves_the_objects(tiny_stardist, any_bundle, tmp_path, imagej_session):
    bundle = any_bundle
    from support.dij_bundles import histogram_scale_range

    _, image = tiny_stardist
    result = deepij.load(bundle.folder).predict(image)
    assert {"Label Image", "scores", "distances", "output"} <= set(result.images)
    network = np.asarray(bundle.network(histogram_scale_range(image)[None, :, :, None]))
    np.testing.assert_allclose(result.images["output"].values, network, atol=1e-4)
    labels = result.images["Label Image"].values
    assert labels.shape == image.shape
    scores = result.images["scores"].values
    distances = result.images["distances"].transpose("y", "x", "c").values
    _check_objects(labels, scores, distances, bundle.prob_threshold)
    assert len(result.rois) == labels.max()

    written = {p.name: p for p in result.save(tmp_path)}
    assert tifffile.imread(written["Label Image.tif"]).dtype == np.uint16
    # ImageJ opens the saved labels as a 16-bit image with the label table, shown from 0 to the count
    opened = imagej_session.run_macro(
        f'open("{written["Label Image.tif"]}"); getLut(r, g, b); getMinAndMax(low, high); '
        'return "" + bitDepth() + " " + r[1] + " " + g[1] + " " + b[1] + " " + high;'
    )
    from deepij.imagej.lut_colours import lut_colours

    label_one = lut_colours("glasbey_on_dark")[1].tolist()
    assert opened.value.split() == ["16", *map(str, label_one), str(labels.max())]
    np.testing.assert_array_equal(opened.image.values, labels)


def test_deepimagej_run_leaves_the_label_image_current_and_the_rois(bundle, imagej_session):
    line = (
        f'run("DeepImageJ Run", "model=[tiny StarDist deepImageJ] format=Tensorflow '
        f"preprocessing=[per_sample_scale_range.ijm] postprocessing=[StarDist2D_Post-processing.ijm] "
        f'axes=Y,X,C tile=128,128,1 logging=normal models_dir=[{bundle.folder.parent}]");'
    )
    macro = (
        f'open("{bundle.folder / "exampleImage.tif"}");\n'
        + line
        + '\ngetLut(r, g, b); return getTitle() + " " + bitDepth() + " " + roiManager("count") + " " + r[0];'
    )
    result = imagej_session.run_macro(macro)
    title, depth, count, background = result.value.rsplit(" ", 3)
    labels = result.images["Label Image"].values
    assert (title, depth, background) == ("Label Image", "16", "0")
    assert int(count) == labels.max() == len(result.rois)
    distances = result.images["distances"].transpose("row", "col", "ch").values
    _check_objects(labels, result.images["scores"].values, distances, bundle.prob_threshold)


def test_deepij_run_writes_an_imagej_readable_label_tiff(tiny_stardist, bundle, tmp_path):
    _, image = tiny_stardist
    done = subprocess.run(
        [sys.executable, "-m", "deepij.frontdoors.cli", "run", str(bundle.folder),
         "--input", str(bundle.folder / "exampleImage.tif"), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    labels = tifffile.imread(out / "exampleImage_Label Image.tif")
    assert labels.shape == image.shape
    distances = np.moveaxis(tifffile.imread(out / "exampleImage_distances.tif"), 0, -1)
    _check_objects(labels, tifffile.imread(out / "exampleImage_scores.tif"), distances, bundle.prob_threshold)
