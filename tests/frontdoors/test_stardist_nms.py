"""``run("Command From Macro", "command=[de.csbdresden.stardist.StarDist2DNMS], ...")`` in the real ImageJ.

The probability and distance maps are made by the stardist package from drawn disks (``edt_prob``,
``star_dist``: what a perfect StarDist network would output); the oracles are stardist's own
``non_maximum_suppression``, ``polygons_to_label`` and ``dist_to_coord`` on the same maps, and what ImageJ
itself reports (ROI names, image types, calibration).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

from deepij.errors import MacroError
from deepij.frontdoors.stardist_nms import nms_request, parse_command_args

stardist = pytest.importorskip("stardist")

RAYS = 16
CALL = (
    'run("Command From Macro", "command=[de.csbdresden.stardist.StarDist2DNMS], args=[{args}], '
    'process=[false]");'
)
BOTH = (
    "'prob':'scores', 'dist':'distances', 'probThresh':'0.5', 'nmsThresh':'0.4', 'outputType':'Both', "
    "'excludeBoundary':'2', 'roiPosition':'Stack', 'verbose':'false'"
)



def _maps(size: int = 128, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    from stardist.geometry import star_dist
    from stardist.utils import edt_prob

    from support.stardist_bundles import blob_image

    _, labels = blob_image(size, objects=20, seed=seed)
    return edt_prob(labels).astype(np.float32), star_dist(labels, RAYS).astype(np.float32)


def _images(prob: np.ndarray, dist: np.ndarray, *, pixel: float | None = None) -> dict[str, xr.DataArray]:
    scores = xr.DataArray(prob, dims=("row", "col"))
    if pixel is not None:
        scores.attrs = {"pixel_size": {"row": pixel, "col": pixel}, "unit": "mm"}
    return {"scores": scores, "distances": xr.DataArray(np.moveaxis(dist, -1, 0), dims=("ch", "row", "col"))}


def _stardist_own(prob: np.ndarray, dist: np.ndarray, b: int = 2) -> tuple[np.ndarray, np.ndarray]:
    from stardist.geometry import dist_to_coord

    points, probi, disti = stardist.non_maximum_suppression(
        dist, prob, grid=(1, 1), b=b, prob_thresh=0.5, nms_thresh=0.4
    )
    labels = stardist.polygons_to_label(disti, points, prob=probi, shape=prob.shape)
    return labels, dist_to_coord(disti, points)


def test_both_outputs_are_what_stardist_finds_as_fiji_shows_them(session):
    prob, dist = _maps()
    expected_labels, coords = _stardist_own(prob, dist)
    macro = (
        CALL.format(args=BOTH)
        + 'getLut(r, g, b); getMinAndMax(low, high); getPixelSize(unit, pw, ph);'
        + 'return getTitle() + "|" + bitDepth() + "|" + roiManager("count") + "|" + r[0] + "|" + high '
        + '+ "|" + unit + "|" + pw;'
    )
    result = session.run_macro(macro, image=_images(prob, dist, pixel=0.25))
    title, depth, count, background, high, unit, width = result.value.split("|")
    objects = int(expected_labels.max())
    assert objects >= 15
    assert (title, depth, int(count), background) == ("Label Image", "16", objects, "0")
    assert (float(high), unit, float(width)) == (objects, "mm", 0.25)  # the probability image's calibration
    labels = result.images["Label Image"].values
    assert labels.dtype == np.uint16
    # ImageJ fills the polygons (as the plugin does), stardist rasterises them: the same pixels but at
    # most a few along polygon edges
    assert set(np.unique(labels)) == set(np.unique(expected_labels))
    assert np.mean(labels != expected_labels) < 0.005
    assert len(result.rois) == objects
    for outline, polygon in zip(result.rois, coords, strict=True):
        assert re.fullmatch(r"\d{4}-\d{4}", outline.name)
        expected = np.round(polygon[::-1].T, 2) + 0.5  # (x, y), pixel centres at +0.5 in ImageJ
        np.testing.assert_allclose(outline.points, expected, atol=1e-3)


def test_a_deepimagej_stardist_post_processing_macro_runs_unchanged(session):
    prob, dist = _maps()
    half = np.concatenate([prob[::2, ::2, None], dist[::2, ::2] / 1.0], axis=-1)
    output = xr.DataArray(np.moveaxis(half, -1, 0), dims=("ch", "row", "col"), name="model_output")
    from support.stardist_bundles import stardist_post_processing_macro

    result = session.run_macro(stardist_post_processing_macro(0.5, 0.4), image=output)
    assert sorted(result.images) == ["Label Image", "distances", "scores"]
    assert result.current == "Label Image"
    scores = result.images["scores"].values
    distances = result.images["distances"].transpose("row", "col", "ch").values
    assert scores.shape == (128, 128) and distances.shape == (128, 128, RAYS)
    expected, _ = _stardist_own(scores, distances)
    labels = result.images["Label Image"].values
    assert expected.max() >= 10 and len(result.rois) == expected.max()
    assert np.mean(labels != expected) < 0.005


@pytest.mark.parametrize(
    ("output_type", "images", "rois"),
    [
        ("ROI Manager", ["distances", "scores"], True),
        ("Label Image", ["Label Image", "distances", "scores"], False),
    ],
)
def test_one_output_type_leaves_only_that(session, output_type, images, rois):
    prob, dist = _maps()
    args = BOTH.replace("'Both'", f"'{output_type}'")
    macro = CALL.format(args=args) + 'return "" + roiManager("count");'
    result = session.run_macro(macro, image=_images(prob, dist))
    assert sorted(result.images) == images
    assert (int(result.value) > 0) == rois


@pytest.mark.parametrize("position", ["Stack", "Hyperstack"])
def test_a_time_lapse_numbers_on_across_frames_and_places_the_rois(session, position):
    first, dist1 = _maps(seed=3)
    second, dist2 = _maps(seed=4)
    prob = xr.DataArray(np.stack([first, second]), dims=("t", "row", "col"))
    dist = xr.DataArray(np.moveaxis(np.stack([dist1, dist2]), -1, 1), dims=("t", "ch", "row", "col"))
    args = BOTH.replace("'Stack'", f"'{position}'")
    result = session.run_macro(CALL.format(args=args), image={"scores": prob, "distances": dist})
    counts = [int(_stardist_own(first, dist1)[0].max()), int(_stardist_own(second, dist2)[0].max())]
    labels = result.images["Label Image"]
    assert labels.sizes["t"] == 2
    assert set(np.unique(labels.isel(t=0))) == set(range(counts[0] + 1))
    assert set(np.unique(labels.isel(t=1))) == {0, *range(counts[0] + 1, sum(counts) + 1)}
    frames = [o.hyperstack[2] if position == "Hyperstack" else o.position for o in result.rois]
    assert frames == [1] * counts[0] + [2] * counts[1]


def test_verbose_counts_candidates_and_kept_objects_in_the_log(session):
    prob, dist = _maps()
    args = BOTH.replace("'verbose':'false'", "'verbose':'true'").replace("'0.5'", "'0.6'")
    result = session.run_macro(CALL.format(args=args), image=_images(prob, dist))
    candidates = int(np.count_nonzero(prob[2:-2, 2:-2] > 0.6))
    kept = stardist.non_maximum_suppression(dist, prob, grid=(1, 1), b=2, prob_thresh=0.6, nms_thresh=0.4)
    expected = f"{candidates} polygon candidates, {len(kept[0])} remain after non-maximum suppression"
    assert expected in result.log


@pytest.mark.parametrize(("args", "message"), [
    (BOTH + ", 'probThres':'0.3'", "unknown argument 'probThres'"),
    (BOTH.replace("'distances'", "'nothing open'"), "'dist':'nothing open': no open image has that title"),
    (BOTH.replace("'Stack'", "'Automatic'"), "'roiPosition':'Automatic'; expected one of Stack, Hyperstack"),
    (BOTH.replace("'0.4'", "'high'"), "'nmsThresh':'high'; expected a number"),
    (BOTH.replace("'distances'", "'scores'"), "at least three channels"),
])
def test_bad_arguments_stop_the_macro_naming_them(session, args, message):
    prob, dist = _maps(64)
    with pytest.raises(MacroError, match=re.escape(message)):
        session.run_macro(CALL.format(args=args), image=_images(prob, dist))


def test_other_stardist_commands_are_refused_saying_what_to_run(session):
    line = CALL.replace("StarDist2DNMS", "StarDist2D").format(args="'input':'a'")
    with pytest.raises(MacroError, match=r"not served by deepij.*DeepImageJ StarDist"):
        session.run_macro(line)


def test_args_are_read_as_fiji_reads_them():
    text = "'prob':'my \\'scores\\'', \"dist\": \"d\", 'probThresh':0.7, 'excludeBoundary':2.0, 'label':''"
    args = parse_command_args(text)
    assert args == {
        "prob": "my 'scores'", "dist": "d", "probThresh": "0.7", "excludeBoundary": "2.0", "label": ""
    }
    request = nms_request(args)
    assert (request.prob_thresh, request.exclude_boundary, request.output_type, request.roi_position) == (
        0.7, 2, "Both", "Stack"
    )
