"""Prediction outputs: saved as ImageJ TIFF and CSV (read back with tifffile, pandas and ImageJ itself) and
shown in ImageJ titled as deepImageJ titles them."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import tifffile
import xarray as xr
from scipy import ndimage

import deepij
from deepij.errors import ArgumentError
from deepij.imagej._java import jc
from support.dij_bundles import write_segmentation_bundle_v0_3

PIXEL = 0.5


@pytest.fixture(scope="module")
def calibrated_run(imagej_session, tmp_path_factory):
    """The 0.3 segmentation bundle run (macros) on a calibrated image titled like a file."""
    bundle = write_segmentation_bundle_v0_3(tmp_path_factory.mktemp("seg") / "bundle")
    model = deepij.load(bundle.folder)
    image = xr.DataArray(
        bundle.test_input[0, 0],
        dims=("row", "col"),
        coords={"row": np.arange(40) * PIXEL, "col": np.arange(48) * PIXEL},
        attrs={"unit": "micron"},
        name="cells.tif",
    )
    result = model.predict(image, session=imagej_session, runtime="native", tiling="deepimagej")
    return bundle, result


def test_outputs_keep_the_input_calibration(calibrated_run):
    _, result = calibrated_run
    output = result.images["output"]
    assert output.attrs["pixel_size"] == {"y": PIXEL, "x": PIXEL} and output.attrs["unit"] == "micron"
    np.testing.assert_allclose(output.coords["x"].values, np.arange(48) * PIXEL)
    mask = result.images["mask"]  # made by the post-processing macro from the calibrated output
    assert mask.attrs["pixel_size"] == pytest.approx({"y": PIXEL, "x": PIXEL})
    # Analyze Particles measured in microns: areas are pixel counts times the pixel area
    areas = np.sort(result.tables["Results"]["Area"].to_numpy())
    labels, _ = ndimage.label(mask.values > 0, structure=np.ones((3, 3)))
    pixels = np.sort(np.bincount(labels.ravel())[1:])
    np.testing.assert_allclose(areas, pixels * PIXEL**2)


def test_save_writes_imagej_tiffs_with_provenance_and_csv(calibrated_run, imagej_session, tmp_path):
    bundle, result = calibrated_run
    paths = result.save(tmp_path / "out", prefix="cells")
    assert sorted(p.name for p in paths) == ["cells_Results.csv", "cells_mask.tif", "cells_output.tif"]
    assert not list((tmp_path / "out").glob(".*"))  # no partial files left
    with tifffile.TiffFile(tmp_path / "out" / "cells_output.tif") as tif:
        meta = tif.imagej_metadata
        values = tif.asarray()
        resolution = tif.pages[0].tags["XResolution"].value
    assert values.dtype == np.float32 and values.shape == (40, 48)
    np.testing.assert_array_equal(values, result.images["output"].values[0, 0])
    assert meta["unit"] == "micron" and resolution[1] / resolution[0] == pytest.approx(PIXEL)
    info = meta["Info"]
    weights_sha = hashlib.sha256((bundle.folder / "pytorch_script.pt").read_bytes()).hexdigest()
    for text in (
        bundle.name,
        weights_sha,
        "weights format: torchscript",
        f"deepij version: {deepij.__version__}",
        "tile plan: tile {'y': 40, 'x': 48}",
        "pre 1: macro per_sample_scale_range.ijm",
        "input: cells.tif",
    ):
        assert text in info
    with tifffile.TiffFile(tmp_path / "out" / "cells_mask.tif") as tif:
        assert tif.asarray().dtype == np.uint8
    table = pd.read_csv(tmp_path / "out" / "cells_Results.csv")
    pd.testing.assert_frame_equal(table, result.tables["Results"].reset_index(drop=True), check_dtype=False)
    # ImageJ itself opens the TIFF with its calibration and the provenance in its Info property
    opened = imagej_session.run_macro(
        f'open("{tmp_path / "out" / "cells_output.tif"}"); getPixelSize(unit, w, h);'
        'return unit + "|" + w + "|" + getMetadata("Info");'
    )
    unit, width, imagej_info = opened.value.split("|", 2)
    assert unit == "microns" and float(width) == PIXEL and weights_sha in imagej_info


def test_hyperstack_axes_survive_saving(calibrated_run, tmp_path):
    _, result = calibrated_run
    stack = xr.DataArray(
        np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5),
        dims=("z", "c", "y", "x"),
        attrs={"pixel_size": {"x": 0.2, "y": 0.2, "z": 1.0}, "unit": "micron"},
    )
    result.images["stack"] = stack
    try:
        (path,) = [p for p in result.save(tmp_path) if p.name == "stack.tif"]
    finally:
        del result.images["stack"]
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "ZCYX" and tif.imagej_metadata["spacing"] == 1.0
        np.testing.assert_array_equal(tif.asarray(), stack.values)


def test_a_failing_save_leaves_nothing_behind(calibrated_run, tmp_path):
    _, result = calibrated_run
    result.images["unwritable"] = xr.DataArray(np.zeros((2, 2, 4, 4)), dims=("b", "t", "y", "x"))
    try:
        with pytest.raises(ArgumentError):
            result.save(tmp_path / "out")
    finally:
        del result.images["unwritable"]
    assert list((tmp_path / "out").iterdir()) == []


def test_show_titles_outputs_as_deepimagej_and_fills_results(calibrated_run, imagej_session):
    bundle, result = calibrated_run
    titles = result.show(imagej_session, input_title="cells.tif")
    assert titles == {"output": f"{bundle.name}_output_cells", "mask": "mask", "Results": "Results"}
    shown = jc.WindowManager.getImage(titles["output"])
    assert shown is not None and shown.getWidth() == 48
    assert float(shown.getCalibration().pixelWidth) == PIXEL
    assert int(jc.ResultsTable.getResultsTable().size()) == len(result.tables["Results"])
    imagej_session.run_macro("")  # ImageJ clean again for the next test


def test_predict_and_show_from_a_command_handler_inside_a_macro(calibrated_run, imagej_session, tmp_path):
    # how run("DeepImageJ Run", ...) is served: the steps run nested in the calling macro, and only the
    # outputs (not the steps' intermediate images) are left among the macro's images
    bundle, _ = calibrated_run
    model = deepij.load(bundle.folder)

    def handler(call):
        result = model.predict(
            call.image_xarray(), session=call.session, runtime="native", tiling="deepimagej"
        )
        result.show(call.session, input_title=call.image.getTitle())

    imagej_session.commands.register("deepij test predict", handler)
    try:
        done = imagej_session.run_macro(
            'run("deepij test predict"); titles = "";'
            'for (i = 1; i <= nImages; i++) { selectImage(i); titles = titles + getTitle() + ";"; }'
            "return titles + nResults;",
            image={"cells.tif": bundle.test_input[0, 0]},
        )
    finally:
        imagej_session.commands.unregister("deepij test predict")
    *titles, rows = done.value.split(";")
    assert titles == ["cells.tif", f"{bundle.name}_output_cells", "mask"]
    assert int(rows) > 1
