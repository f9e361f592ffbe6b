"""Model inputs from files of each kind, numpy, xarray and ImagePlus: dims, values and calibration.

Files are written with tifffile / ImageJ itself; what deepij reads is compared with what was written and with
what ImageJ itself reads from the same file.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import xarray as xr

import deepij
from deepij.errors import InputError
from deepij.pipeline import Model
from deepij.pipeline.sources import read_source
from support.dij_bundles import write_scale_linear_bundle_v0_4
from support.models import describe, write_torchscript_convnet

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def model2d(tmp_path_factory):
    """A 2-D one-channel TorchScript model (axes bcyx) with no processing."""
    net = write_torchscript_convnet(tmp_path_factory.mktemp("net2d") / "net.pt")
    return net, Model(describe(net))


@pytest.fixture(scope="module")
def description3d(tmp_path_factory):
    net = write_torchscript_convnet(tmp_path_factory.mktemp("net3d") / "net.pt", ndim=3)
    return describe(net)


def _description(model2d):
    return model2d[1].description


def test_plain_and_imagej_hyperstack_tiffs_keep_axes_and_calibration(imagej_session, tmp_path, model2d):
    description = _description(model2d)
    plain = RNG.integers(0, 4000, (30, 40), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "plain.tif", plain)
    source = read_source(tmp_path / "plain.tif", description)
    assert source.title == "plain.tif" and source.images["input"].dims == ("y", "x")
    assert np.array_equal(source.images["input"].values, plain) and source.calibration.empty

    stack = RNG.random((3, 4, 2, 20, 24), dtype=np.float32)  # T Z C Y X
    path = tmp_path / "hyper stack.tif"
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"axes": "TZCYX", "unit": "micron", "spacing": 1.5, "finterval": 2.0},
    )
    image = read_source(path, description).images["input"]
    assert image.dims == ("t", "z", "y", "x", "c")
    np.testing.assert_array_equal(image.values, np.moveaxis(stack, 2, -1))
    assert image.attrs["unit"] == "micron"
    assert image.attrs["pixel_size"] == pytest.approx({"x": 0.25, "y": 0.25, "z": 1.5})
    # ImageJ itself reads the same file the same way
    opened = imagej_session.run_macro(
        f'open("{path}"); getVoxelSize(w, h, d, unit);'
        'return "" + w + " " + d + " " + unit + " " + Stack.getFrameInterval();'
    )
    width, depth, unit, interval = opened.value.split()
    assert (float(width), float(depth), unit, float(interval)) == (0.25, 1.5, "microns", 2.0)
    assert opened.image.attrs["unit"] == image.attrs["unit"]  # ImageJ says "microns", stores "micron"
    assert opened.image.dims == ("t", "pln", "row", "col", "ch")
    np.testing.assert_array_equal(opened.image.values, image.values)
    assert read_source(path, description).calibration.frame_interval == 2.0


def test_ome_tiff_physical_sizes(tmp_path, model2d):
    volume = RNG.random((5, 16, 18), dtype=np.float32)
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(
        path,
        volume,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.3,
            "PhysicalSizeY": 0.3,
            "PhysicalSizeZ": 1.2,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeYUnit": "µm",
            "PhysicalSizeZUnit": "µm",
        },
    )
    source = read_source(path, _description(model2d))
    assert source.title == "cells.ome.tif" and source.title_stem == "cells"
    assert source.images["input"].dims == ("z", "y", "x")
    np.testing.assert_array_equal(source.images["input"].values, volume)
    assert source.calibration.pixel_size == pytest.approx({"x": 0.3, "y": 0.3, "z": 1.2})
    assert source.calibration.unit == "micron"


def test_png_through_imagej_and_npy(imagej_session, tmp_path, model2d):
    description = _description(model2d)
    grey = RNG.integers(0, 255, (20, 30), dtype=np.uint8)
    imagej_session.run_macro(f'saveAs("PNG", "{tmp_path / "grey.png"}");', image=grey)
    source = read_source(tmp_path / "grey.png", description, session=lambda: imagej_session)
    assert source.title == "grey.png"
    np.testing.assert_array_equal(source.images["input"].values, grey)
    np.save(tmp_path / "test_input.npy", grey[None, None].astype(np.float32))
    array = read_source(tmp_path / "test_input.npy", description).images["input"]
    assert array.dims == ("b", "c", "y", "x") and np.array_equal(array.values[0, 0], grey)


def test_numpy_in_model_order_or_imagej_style(model2d, description3d):
    description = _description(model2d)
    assert read_source(np.zeros((1, 1, 8, 9)), description).images["input"].dims == ("b", "c", "y", "x")
    assert read_source(np.zeros((1, 8, 9)), description).images["input"].dims == ("c", "y", "x")
    assert read_source(np.zeros((8, 9)), description).images["input"].dims == ("y", "x")
    assert read_source(np.zeros((8, 9, 3)), description3d).images["input"].dims == ("y", "x", "c")
    named = read_source(np.zeros((4, 8, 9)), description, axes="zyx").images["input"]
    assert named.dims == ("z", "y", "x")


def test_xarray_with_imagej_dims_and_coordinates(model2d):
    image = xr.DataArray(
        RNG.random((3, 10, 12), dtype=np.float32),
        dims=("t", "row", "col"),
        coords={"row": np.arange(10) * 0.5, "col": np.arange(12) * 0.5},
        attrs={"unit": "micron"},
        name="timelapse.tif",
    )
    source = read_source(image, _description(model2d), input_title="renamed.tif")
    assert source.title == "renamed.tif"
    assert source.images["input"].dims == ("t", "y", "x")
    assert source.calibration.pixel_size == {"y": 0.5, "x": 0.5} and source.calibration.unit == "micron"


def test_imageplus_input_is_copied_and_left_unchanged(imagej_session, tmp_path):
    bundle = write_scale_linear_bundle_v0_4(tmp_path / "lin")
    model = deepij.load(bundle.folder)
    imp = imagej_session.to_imageplus(bundle.test_input[0, 0], title="cells.tif")
    result = model.predict(imp, session=imagej_session, runtime="native", tiling="deepimagej")
    np.testing.assert_allclose(result.images["output"].values, bundle.expected_output, atol=1e-5)
    assert result.input_title == "cells.tif"
    np.testing.assert_array_equal(imagej_session.to_xarray(imp).values, bundle.test_input[0, 0])  # untouched


def test_images_that_do_not_fit_say_what_the_model_needs(model2d, description3d, tmp_path):
    model = model2d[1]
    rgb = xr.DataArray(np.zeros((16, 16, 3), np.uint8), dims=("row", "col", "ch"), attrs={"rgb": True})
    with pytest.raises(InputError, match=r"found an RGB image \(c=3\).*takes 1 channel.*8-bit"):
        model.predict(rgb, processing="none")
    from deepij.pipeline.sources import check_inputs

    flat = read_source(np.zeros((16, 16), np.float32), description3d)
    with pytest.raises(
        InputError, match=r"found a 2-D image \(y=16, x=16\).*is 3-D.*needs axis 'z'.*Z stack"
    ):
        check_inputs(flat.images, description3d)
    with pytest.raises(InputError, match=r"does not exist"):
        read_source(tmp_path / "missing.tif", model.description)
    with pytest.raises(InputError, match=r"shape \(2, 2, 2, 2, 2\) does not fit input 'input'"):
        read_source(np.zeros((2,) * 5), model.description)
