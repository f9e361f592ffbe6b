"""ImagePlus <-> xarray against the real ImageJ: every pixel type, stacks, hyperstacks, calibration."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from deepij.axes import IMAGEJ_DIMS
from deepij.errors import ArgumentError, ArgumentTypeError

RNG = np.random.default_rng(7)
LAYOUTS = [
    ("row", "col"),
    ("pln", "row", "col"),
    ("row", "col", "ch"),
    ("t", "row", "col"),
    ("t", "pln", "row", "col", "ch"),
]
SIZES = {"t": 2, "pln": 3, "ch": 4, "row": 17, "col": 11}


def _random(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "float32":
        return (RNG.standard_normal(shape) * 1000).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("layout", LAYOUTS, ids="-".join)
def test_round_trip_every_type_and_layout(session, dtype, layout):
    data = xr.DataArray(_random(dtype, tuple(SIZES[d] for d in layout)), dims=layout, name="img")
    imp = session.to_imageplus(data)
    assert int(imp.getBitDepth()) == {"uint8": 8, "uint16": 16, "float32": 32}[dtype]
    extra = (SIZES[d] if d in layout else 1 for d in ("ch", "pln", "t"))
    expected_dims = [SIZES["col"], SIZES["row"], *extra]
    assert list(imp.getDimensions()) == expected_dims
    back = session.to_xarray(imp)
    assert back.dims == layout and back.dtype == data.dtype and back.name == "img"
    np.testing.assert_array_equal(back.values, data.values)
    xr.testing.assert_identical(session.to_xarray(session.to_imageplus(back)), back)


@pytest.mark.parametrize("layout", [("row", "col", "ch"), ("t", "pln", "row", "col", "ch")], ids="-".join)
def test_rgb_round_trip(session, layout):
    shape = tuple(3 if d == "ch" else SIZES[d] for d in layout)
    data = xr.DataArray(_random("uint8", shape), dims=layout, attrs={"rgb": True})
    imp = session.to_imageplus(data)
    assert int(imp.getBitDepth()) == 24
    assert int(imp.getNFrames()) == (SIZES["t"] if "t" in layout else 1)
    back = session.to_xarray(imp)
    assert back.dims == layout and back.attrs["rgb"] is True
    np.testing.assert_array_equal(back.values, data.values)
    # ImageJ's own view of one pixel: packed 0xRRGGBB
    r, g, b = (int(v) for v in data.values[(0,) * (len(layout) - 3)][2, 5])
    imp.setPosition(1, 1, 1)
    assert int(imp.getProcessor().getPixel(5, 2)) & 0xFFFFFF == (r << 16) | (g << 8) | b


def test_layout_matches_imagej_stack_index(session):
    """Planes land where ImageJ itself says (getStackIndex), independently of our own reshaping."""
    from deepij.imagej._java import jc

    imp = jc.IJ.createHyperStack("h", 5, 4, 2, 3, 4, 16)
    stack = imp.getStack()
    for index in range(1, stack.getSize() + 1):
        stack.getProcessor(index).set(float(index))
    array = session.to_xarray(imp)
    assert array.dims == ("t", "pln", "row", "col", "ch") and array.shape == (4, 3, 4, 5, 2)
    for t in range(4):
        for z in range(3):
            for c in range(2):
                assert array.values[t, z, 0, 0, c] == imp.getStackIndex(c + 1, z + 1, t + 1)


def test_numpy_defaults_and_explicit_dims(session):
    assert session.to_imageplus(np.zeros((4, 6), "uint8")).getStackSize() == 1
    imp = session.to_imageplus(np.zeros((3, 4, 6), "uint8"))
    assert int(imp.getNSlices()) == 3
    imp = session.to_imageplus(np.zeros((4, 6, 2), "float32"), dims=("y", "x", "c"))
    assert int(imp.getNChannels()) == 2 and imp.isComposite()
    with pytest.raises(ValueError, match=r"a numpy array of 4 dims needs dims="):
        session.to_imageplus(np.zeros((2, 3, 4, 6)))
    with pytest.raises(ValueError, match=r"'b' is not an ImageJ dim .*to_imagej_dims"):
        session.to_imageplus(xr.DataArray(np.zeros((1, 4, 4)), dims=("b", "y", "x")))
    with pytest.raises(ValueError, match=r"needs 'row' and 'col'"):
        session.to_imageplus(np.zeros((4, 4)), dims=("pln", "row"))


@pytest.mark.parametrize("arguments, error, says", [
    ({"data": [[1, 2], [3, 4]]}, ArgumentTypeError, "data: expected a numpy array or xarray.DataArray"),
    ({"title": 5}, ArgumentTypeError, r"title: expected a str or None, found 5 \(int\)"),
    ({"dims": 3}, ArgumentTypeError, "dims: expected dim names"),
    ({"dims": ("row", 2)}, ArgumentTypeError, "dims: expected dim names"),
    ({"dims": ("row", "col", "pln")}, ArgumentError, r"dims: .* names 3 dims but the array has 2"),
    ({"rgb": "yes"}, ArgumentTypeError, "rgb: expected True, False or None"),
])
def test_to_imageplus_names_a_bad_argument(session, arguments, error, says):
    call = {"data": np.zeros((4, 4), "uint8"), **arguments}
    with pytest.raises(error, match=says):
        session.to_imageplus(call.pop("data"), **call)


def test_other_dtypes(session):
    imp = session.to_imageplus(np.array([[0, 1], [1, 0]], dtype=bool))
    assert int(imp.getBitDepth()) == 8
    np.testing.assert_array_equal(session.to_xarray(imp).values, [[0, 255], [255, 0]])
    ints = np.array([[-5, 70000], [3, 2**24]], dtype=np.int64)
    back = session.to_xarray(session.to_imageplus(ints))
    np.testing.assert_array_equal(back.values, ints.astype("float32"))
    with pytest.raises(ValueError, match=r"values up to 16777217 cannot be stored exactly"):
        session.to_imageplus(np.array([[2**24 + 1]], dtype=np.int64))
    doubles = np.linspace(0, 1, 12).reshape(3, 4)
    np.testing.assert_array_equal(session.to_xarray(session.to_imageplus(doubles)).values,
                                  doubles.astype("float32"))
    with pytest.raises(ValueError, match="RGB values must be integers 0-255"):
        session.to_imageplus(np.full((2, 2, 3), 300), dims=("row", "col", "ch"), rgb=True)


def test_calibration_round_trip(session):
    data = xr.DataArray(
        np.zeros((3, 10, 12), "float32"), dims=("pln", "row", "col"), name="cal",
        coords={"pln": np.arange(3) * 2.0, "row": 1.0 + np.arange(10) * 0.5, "col": np.arange(12) * 0.25},
        attrs={"unit": "um"},
    )
    imp = session.to_imageplus(data)
    cal = imp.getCalibration()
    assert (cal.pixelWidth, cal.pixelHeight, cal.pixelDepth) == (0.25, 0.5, 2.0)
    assert (cal.xOrigin, cal.yOrigin) == (0.0, -2.0)
    assert str(cal.getUnit()) == "µm"  # ImageJ spells um as µm
    back = session.to_xarray(imp)
    for dim in ("pln", "row", "col"):
        np.testing.assert_allclose(back.coords[dim].values, data.coords[dim].values)
    assert back.attrs["pixel_size"] == {"col": 0.25, "row": 0.5, "pln": 2.0}
    xr.testing.assert_identical(session.to_xarray(session.to_imageplus(back)), back)


def test_uncalibrated_image_has_no_coordinates_and_time_interval_gives_t(session):
    plain = session.to_xarray(session.to_imageplus(np.zeros((4, 4), "uint8")))
    assert not plain.coords and "unit" not in plain.attrs
    movie = xr.DataArray(np.zeros((3, 4, 4), "float32"), dims=("t", "row", "col"),
                         attrs={"frame_interval": 0.5, "time_unit": "s"})
    imp = session.to_imageplus(movie)
    assert imp.getCalibration().frameInterval == 0.5
    back = session.to_xarray(imp)
    np.testing.assert_array_equal(back.coords["t"].values, [0.0, 0.5, 1.0])
    assert back.attrs["time_unit"] == "s"


def test_display_range_and_composite_mode_survive(session):
    data = xr.DataArray(_random("uint16", (2, 8, 8)), dims=("ch", "row", "col"),
                        attrs={"display_range": [(10, 2000), (0, 500)], "composite_mode": "grayscale"})
    imp = session.to_imageplus(data)
    assert int(imp.getMode()) == 3  # IJ.GRAYSCALE
    back = session.to_xarray(imp)
    assert back.attrs["display_range"] == [(10.0, 2000.0), (0.0, 500.0)]
    assert back.attrs["composite_mode"] == "grayscale"
    single = session.to_imageplus(xr.DataArray(_random("uint16", (8, 8)), dims=("row", "col"),
                                               attrs={"display_range": (5, 60)}))
    assert (single.getDisplayRangeMin(), single.getDisplayRangeMax()) == (5.0, 60.0)


def test_pixels_are_read_fresh_after_imagej_changes_them(session):
    """JPype caches array snapshots; each conversion must see ImageJ's current pixels."""
    imp = session.to_imageplus(np.ones((64, 64), "float32"))
    first = session.to_xarray(imp)
    imp.getProcessor().multiply(3.0)
    second = session.to_xarray(imp)
    np.testing.assert_array_equal(first.values, 1.0)
    np.testing.assert_array_equal(second.values, 3.0)


def test_results_are_copies(session):
    source = np.zeros((8, 8), "float32")
    imp = session.to_imageplus(source)
    source[:] = 5
    assert float(imp.getProcessor().getf(0, 0)) == 0.0
    out = session.to_xarray(imp)
    out.values[:] = 9
    assert float(imp.getProcessor().getf(0, 0)) == 0.0


@settings(max_examples=25, deadline=None)
@given(
    layout=st.lists(st.sampled_from(["t", "pln", "ch"]), unique=True).map(
        lambda extra: tuple(d for d in IMAGEJ_DIMS if d in (*extra, "row", "col"))),
    sizes=st.lists(st.integers(2, 5), min_size=5, max_size=5),
    dtype=st.sampled_from(["uint8", "uint16", "float32"]),
    order=st.randoms(use_true_random=False),
)
def test_round_trip_any_layout_and_dim_order(imagej_session, layout, sizes, dtype, order):
    shape = tuple(sizes[IMAGEJ_DIMS.index(d)] for d in layout)
    data = xr.DataArray(_random(dtype, shape), dims=layout)
    shuffled = list(layout)
    order.shuffle(shuffled)
    back = imagej_session.to_xarray(imagej_session.to_imageplus(data.transpose(*shuffled)))
    xr.testing.assert_equal(back, data)


def test_save_tiff_writes_an_imagej_hyperstack(session, tmp_path):
    import tifffile

    data = xr.DataArray(_random("uint16", (2, 3, 8, 6)), dims=("t", "pln", "row", "col"),
                        coords={"row": np.arange(8) * 0.25, "col": np.arange(6) * 0.25}, attrs={"unit": "um"})
    path = session.save_tiff(data, tmp_path / "stack.tif", title="stack")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]
    with tifffile.TiffFile(path) as tiff:
        assert tiff.is_imagej
        assert tiff.imagej_metadata["frames"] == 2 and tiff.imagej_metadata["slices"] == 3
        np.testing.assert_array_equal(tiff.asarray(), data.values)
        assert tiff.pages[0].tags["XResolution"].value == (4000000, 1000000)  # 4 pixels per µm
    imp = session.to_imageplus(data, title="kept")
    session.save_tiff(imp, tmp_path / "other.tif")
    assert str(imp.getTitle()) == "kept"
    with pytest.raises(Exception, match=r"folder '.*missing' does not exist"):
        session.save_tiff(data, tmp_path / "missing" / "x.tif")
