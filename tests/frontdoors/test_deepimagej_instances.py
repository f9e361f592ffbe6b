"""deepImageJ 3.1's ``run("DeepImageJ StarDist", ...)`` and ``run("DeepImageJ Cellpose", ...)`` in the real
ImageJ, on bundles written by the tests.

Oracles: stardist's own ``predict_instances`` of the trained StarDist2D (with the same percentiles and
threshold), and for Cellpose the cellpose package's own steps (``normalize99``, ``resize_image``,
``compute_masks``) around the network module itself.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

from deepij.errors import MacroError
from support.instance_bundles import blob_pair, flow_module, write_cellpose_exporter_bundle


@pytest.fixture(scope="module")
def stardist_bundle(tiny_stardist, tmp_path_factory):
    from support.stardist_bundles import write_stardist_v0_5

    model, image = tiny_stardist
    return write_stardist_v0_5(model, tmp_path_factory.mktemp("dij31") / "tiny_sd", image)


@pytest.fixture(scope="module")
def cellpose_bundle(tmp_path_factory):
    pytest.importorskip("cellpose.dynamics")
    folder = tmp_path_factory.mktemp("dij31") / "cp"
    write_cellpose_exporter_bundle(folder)
    return folder


def _stardist_own(model, image, prob, low=1.0, high=99.8):
    from csbdeep.data import PercentileNormalizer

    normalizer = PercentileNormalizer(low, high, do_after=False)
    return model.predict_instances(image, axes="YX", normalizer=normalizer, prob_thresh=prob)[0]


def test_stardist_is_stardists_own_prediction(tiny_stardist, stardist_bundle, imagej_session):
    model, image = tiny_stardist
    prob = float(model.thresholds.prob)
    line = (
        f'run("DeepImageJ StarDist", "model=[{stardist_bundle.folder}] prob_thresh={prob} '
        'min_percentile=2 max_percentile=99.5");'
    )
    result = imagej_session.run_macro(line + 'return getTitle() + " " + bitDepth();',
                                      image=xr.DataArray(image, dims=("row", "col"), name="cells.tif"))
    assert result.value == "cells_mask.tif 32"
    expected = _stardist_own(model, image, prob, 2.0, 99.5)
    assert expected.max() >= 3
    np.testing.assert_array_equal(result.images["cells_mask.tif"].values, expected)


def test_stardist_defaults_are_the_java_apis_and_the_log_says_so(tiny_stardist, stardist_bundle,
                                                                  imagej_session):
    model, image = tiny_stardist
    line = (
        f'run("DeepImageJ StarDist", "model=[tiny StarDist 0.5] '
        f'models_dir=[{stardist_bundle.folder.parent}] prob_thresh={model.thresholds.prob}");'
    )
    result = imagej_session.run_macro(line, image=image)
    assert "max_percentile not given: 99.8, the default of deepImageJ's Java API" in result.log
    assert "min_percentile not given: 1," in result.log
    expected = _stardist_own(model, image, float(model.thresholds.prob))
    np.testing.assert_array_equal(result.image.values, expected)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("model=2D_versatile_fluo", "model=2D_versatile_fluo is a pretrained model deepImageJ downloads"),
        ("model=[{folder}] prob_threshold=0.4", "unknown key 'prob_threshold'"),
        ("model=[{folder}] min_percentile=99 max_percentile=1", "expected the minimum below the maximum"),
        ("model=[{cellpose}]", "is not a StarDist bundle"),
    ],
)
def test_stardist_refusals_stop_the_macro_saying_why(
    stardist_bundle, cellpose_bundle, imagej_session, options, message
):
    options = options.format(folder=stardist_bundle.folder, cellpose=cellpose_bundle)
    macro = f'run("DeepImageJ StarDist", "{options}");'
    with pytest.raises(MacroError, match=re.escape(message)):
        imagej_session.run_macro(macro, image=np.ones((64, 64), np.float32))


# --- Cellpose ----------------------------------------------------------------------------------------------


def _cellpose_own(channels: np.ndarray, diameter: float | None) -> np.ndarray:
    """Cellpose's steps around the bundle's network (its module, untraced)."""
    import torch
    from cellpose import dynamics, transforms

    height, width = channels.shape[:2]
    image = np.stack([transforms.normalize99(channels[..., k]) for k in range(channels.shape[-1])], axis=-1)
    scaling = 30.0 / diameter if diameter else 1.0
    if scaling != 1.0:
        image = transforms.resize_image(image, Ly=int(height * scaling), Lx=int(width * scaling))
    with torch.no_grad():
        flow = flow_module()(torch.from_numpy(np.moveaxis(image, -1, 0)[None].copy()))[0][0].numpy()
    maps = np.moveaxis(flow, 0, -1)
    if scaling != 1.0:
        maps = transforms.resize_image(maps, Ly=height, Lx=width)
    masks = dynamics.compute_masks(np.moveaxis(maps[..., :2], -1, 0), maps[..., 2], niter=int(200 / scaling),
                                   cellprob_threshold=0.0, flow_threshold=0.4, min_size=15)
    return masks[0] if isinstance(masks, tuple) else masks


@pytest.mark.parametrize("diameter", [None, 15.0])
def test_cellpose_on_a_grayscale_image_is_cellposes_own_steps(cellpose_bundle, imagej_session, diameter):
    gray = blob_pair(96)[..., 0] * 200 + 10
    size = f" diameter={diameter:g}" if diameter else ""
    line = f'run("DeepImageJ Cellpose", "model=[{cellpose_bundle}] cyto_color=gray nuclei_color=gray{size}");'
    result = imagej_session.run_macro(line + 'return getTitle() + " " + bitDepth();',
                                      image=xr.DataArray(gray, dims=("row", "col"), name="blobs.tif"))
    assert result.value == "blobs_labels.tif 16"
    expected = _cellpose_own(np.stack([gray, np.zeros_like(gray)], axis=-1), diameter)
    assert expected.max() >= 5
    np.testing.assert_array_equal(result.images["blobs_labels.tif"].values, expected)
    assert ("no diameter given" in result.log) == (diameter is None)


def test_cellpose_takes_the_named_colours_of_an_rgb_image_and_shows_all(cellpose_bundle, imagej_session):
    disks = (blob_pair(96, seed=2)[..., 0] * 200 + 10).astype(np.uint8)
    rgb = np.stack([np.full_like(disks, 50), disks, disks // 2], axis=-1)  # cyto green, nuclei blue
    line = (f'run("DeepImageJ Cellpose", "model=[{cellpose_bundle}] cyto_color=Green nuclei_color=blue '
            'display_all=true");')
    result = imagej_session.run_macro(line, image=xr.DataArray(rgb, dims=("row", "col", "ch"), name="rgb"),
                                      )
    expected = _cellpose_own(np.stack([disks, disks // 2], axis=-1).astype(np.float32), None)
    np.testing.assert_array_equal(result.images["rgb_labels.tif"].values, expected)
    shown = {k: v.shape for k, v in result.images.items() if k.startswith("rgb_")}
    assert shown == {
        "rgb_labels.tif": (96, 96), "rgb_flows_0.tif": (96, 96, 3), "rgb_flows_1.tif": (96, 96, 2),
        "rgb_flows_2.tif": (96, 96), "rgb_image_dn.tif": (96, 96, 2),
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("model=cyto3 cyto_color=gray nuclei_color=gray", "model=cyto3 is a pretrained model deepImageJ"),
        ("model=[{folder}] cyto_color=gray nuclei_color=red", "gray is for grayscale images"),
        ("model=[{folder}] nuclei_color=gray", "cyto_color= is missing"),
        ("model=[{folder}] cyto_color=red nuclei_color=blue", "needs an RGB or 3-channel image; found 1"),
        ("model=[{folder}] cyto_color=gray nuclei_color=gray display_all=yes", "display_all=yes"),
    ],
)
def test_cellpose_refusals_stop_the_macro_saying_why(cellpose_bundle, imagej_session, options, message):
    options = options.format(folder=cellpose_bundle)
    macro = f'run("DeepImageJ Cellpose", "{options}");'
    with pytest.raises(MacroError, match=re.escape(message)):
        imagej_session.run_macro(macro, image=np.ones((64, 64), np.float32))


def test_a_pth_weights_file_is_refused_saying_what_deepij_runs(tmp_path, imagej_session):
    weights = tmp_path / "cyto3.pth"
    weights.write_bytes(b"not a bundle")
    line = f'run("DeepImageJ Cellpose", "model=[{weights}] cyto_color=gray nuclei_color=gray");'
    with pytest.raises(MacroError, match="is a PyTorch weights file; deepij runs bundles"):
        imagej_session.run_macro(line, image=np.ones((64, 64), np.float32))
