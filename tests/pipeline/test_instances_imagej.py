"""Instance outputs in the real ImageJ: ``Prediction.show`` and ``run("DeepImageJ Run", ...)`` leave the
label image (16-bit, a label lookup table shown from 0 to the number of objects) and the objects as ROIs in
the ROI Manager, as StarDist's Fiji plugin leaves them; saved label TIFFs open in ImageJ as 16-bit label
images with that table.

Oracles: stardist's own ``predict_instances`` (labels, polygons), cellpose's ``compute_masks`` on the raw
flows, and ImageJ's own reading of what deepij left.
"""

from __future__ import annotations

import numpy as np
import pytest

import deepij
from deepij.imagej.lut_colours import lut_colours
from support.instance_bundles import blob_pair, write_cellpose_exporter_bundle

READ = (
    'getLut(r, g, b); getMinAndMax(low, high); '
    'return getTitle() + "|" + bitDepth() + "|" + roiManager("count") + "|" + r[1] + " " + g[1] + " " + b[1] '
    '+ "|" + high;'
)


def _stardist_own(model, image):
    from csbdeep.data import PercentileNormalizer

    return model.predict_instances(image, axes="YX", normalizer=PercentileNormalizer(1, 99.8, do_after=False))


def test_deepimagej_run_of_a_stardist_bundle_leaves_labels_and_rois(tiny_stardist, stardist_bundles,
                                                                    imagej_session):
    model, image = tiny_stardist
    expected, details = _stardist_own(model, image)
    bundle = stardist_bundles[0]
    line = (
        'run("DeepImageJ Run", "model=[tiny StarDist 0.5] format=Tensorflow preprocessing=[no preprocessing] '
        f'postprocessing=[no postprocessing] axes=Y,X,C logging=normal model_dir=[{bundle.folder}]");'
    )
    result = imagej_session.run_macro(line + READ, image=image)
    title, depth, count, colour, high = result.value.split("|")
    objects = int(expected.max())
    assert objects >= 3
    assert title == "tiny StarDist 0.5_instance_labels_image"
    assert (depth, int(count), float(high)) == ("16", objects, objects)
    assert colour.split() == [str(v) for v in lut_colours("glasbey_on_dark")[1]]
    np.testing.assert_array_equal(result.images[title].values, expected)
    # the ROIs are stardist's polygons, most probable first, at ImageJ's pixel centres
    assert len(result.rois) == objects
    for outline, polygon in zip(result.rois, details["coord"], strict=True):
        np.testing.assert_allclose(outline.points, np.round(polygon[::-1].T, 2) + 0.5, atol=1e-3)


def test_show_and_save_a_cellpose_label_image(tmp_path, imagej_session):
    dynamics = pytest.importorskip("cellpose.dynamics")
    write_cellpose_exporter_bundle(tmp_path / "cp", declared=True)
    model = deepij.load(tmp_path / "cp")
    image = blob_pair(96)
    flows = model.predict(image, axes="yxc", instances="none").images["labels"].values[0]
    masks = dynamics.compute_masks(flows[:2], flows[2], niter=200, cellprob_threshold=0.0, flow_threshold=0.4,
                                   min_size=15)
    expected = masks[0] if isinstance(masks, tuple) else masks
    result = model.predict(image, axes="yxc")
    [path] = [p for p in result.save(tmp_path / "out") if p.name == "labels.tif"]

    def show(call):
        result.show(call.session, input_title="cells.tif")

    imagej_session.commands.register("Show Cellpose Result", show)
    try:
        shown = imagej_session.run_macro(
            'run("Show Cellpose Result"); selectImage("cellpose-shaped flows_labels_cells");' + READ
        )
    finally:
        imagej_session.commands.unregister("Show Cellpose Result")
    _, depth, count, colour, high = shown.value.split("|")
    objects = int(expected.max())
    assert (depth, int(count), float(high)) == ("16", objects, objects)
    assert len(shown.rois) == objects
    # every outline holds its object: its centre falls on a pixel of that label
    for label, outline in enumerate(shown.rois, start=1):
        x, y = (outline.points.mean(axis=0) - 0.5).round().astype(int)
        assert expected[y, x] == label

    opened = imagej_session.run_macro(f'open("{path}");' + READ)
    _, depth, _, colour, high = opened.value.split("|")
    assert (depth, float(high)) == ("16", objects)
    assert colour.split() == [str(v) for v in lut_colours("glasbey_on_dark")[1]]
    np.testing.assert_array_equal(opened.image.values, expected)


def test_deepimagej_run_of_a_cellpose_exporter_bundle(tmp_path, imagej_session):
    """Its flows become labels and ROIs; its style vector (no image plane) becomes a table."""
    import xarray as xr

    dynamics = pytest.importorskip("cellpose.dynamics")
    write_cellpose_exporter_bundle(tmp_path / "cp")
    image = blob_pair(96)
    flows = deepij.load(tmp_path / "cp").predict(image, axes="yxc", instances="none").images["flow"].values[0]
    masks = dynamics.compute_masks(flows[:2], flows[2], niter=200, cellprob_threshold=0.0, flow_threshold=0.4,
                                   min_size=15)
    expected = masks[0] if isinstance(masks, tuple) else masks
    line = (
        'run("DeepImageJ Run", "model=[cellpose-shaped flows] format=Pytorch '
        "preprocessing=[no preprocessing] postprocessing=[no postprocessing] axes=C,Y,X logging=normal "
        f'model_dir=[{tmp_path / "cp"}]");'
    )
    planes = xr.DataArray(np.moveaxis(image, -1, 0), dims=("ch", "row", "col"))
    result = imagej_session.run_macro(line + 'return "" + roiManager("count");', image=planes)
    assert int(result.value) == expected.max() >= 5
    np.testing.assert_array_equal(result.images["cellpose-shaped flows_flow_image"].values, expected)
    assert result.tables["cellpose-shaped flows_style_image"].shape == (1, 256)


def test_the_calling_macros_own_rois_stay_as_they_are(tmp_path, imagej_session):
    """A bundle with ImageJ macros run from a macro that has ROIs of its own (a rectangle, an oval): they
    are still there afterwards, of their kinds, under their names."""
    from support.dij_bundles import write_segmentation_bundle_v0_3

    bundle = write_segmentation_bundle_v0_3(tmp_path / "seg", name="seg model")
    macro = (
        'makeRectangle(2, 3, 10, 12); roiManager("add"); roiManager("select", 0); '
        'roiManager("rename", "box");'
        'makeOval(20, 4, 8, 8); roiManager("add"); run("Select None");'
        f'run("DeepImageJ Run", "model_path=[{bundle.folder}]");'
        'roiManager("select", 0); a = "" + Roi.getName + " " + selectionType();'
        'roiManager("select", 1); return a + " " + selectionType() + " " + roiManager("count");'
    )
    result = imagej_session.run_macro(macro, image={"cells": bundle.test_input[0, 0]})
    assert result.value == "box 0 1 2"  # ImageJ's selection types: 0 rectangle, 1 oval
