"""deepij.axes: ImageJ dims <-> bioimage.io axes (pure numpy/xarray, no JVM)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from deepij.axes import (
    BIOIMAGE_TO_IMAGEJ,
    IMAGEJ_DIMS,
    as_bioimage_array,
    bioimage_to_imagej_dim,
    check_axes,
    imagej_order,
    imagej_to_bioimage_dim,
    to_bioimage_axes,
    to_imagej_dims,
)
from deepij.errors import ArgumentError, ArgumentTypeError


def test_mapping_is_one_to_one():
    assert set(BIOIMAGE_TO_IMAGEJ.values()) == set(IMAGEJ_DIMS)
    for letter, dim in BIOIMAGE_TO_IMAGEJ.items():
        assert imagej_to_bioimage_dim(bioimage_to_imagej_dim(letter)) == letter
        assert bioimage_to_imagej_dim(imagej_to_bioimage_dim(dim)) == dim


def test_unknown_names_are_named_in_the_error():
    with pytest.raises(ValueError, match="'b' has no ImageJ counterpart"):
        bioimage_to_imagej_dim("b")
    with pytest.raises(ValueError, match="'depth' is not an ImageJ dim"):
        imagej_to_bioimage_dim("depth")
    with pytest.raises(ValueError, match="unknown axis letters \\['q'\\]"):
        check_axes("byxq")
    with pytest.raises(ValueError, match="repeated"):
        check_axes("yxy")


def test_bad_arguments_are_argument_errors_naming_the_argument():
    with pytest.raises(ArgumentError, match=r"^axes: expected a non-empty string"):
        check_axes("")
    with pytest.raises(ArgumentError, match=r"^dims of the DataArray: unknown axis letters \['row', 'col'\]"):
        as_bioimage_array(xr.DataArray(np.zeros((2, 2)), dims=("row", "col")))
    with pytest.raises(ArgumentTypeError, match=r"^image: expected an xarray.DataArray .* found ndarray"):
        to_bioimage_axes(np.zeros((2, 2)), "yx")
    stack = xr.DataArray(np.zeros((3, 8, 8)), dims=("pln", "row", "col"))
    with pytest.raises(ArgumentError, match=r"^axes: the image has axes z=3"):
        to_bioimage_axes(stack, "yx")


def test_image_to_model_tensor_adds_batch_and_channel_and_transposes():
    image = xr.DataArray(np.arange(2 * 5 * 6, dtype="float32").reshape(2, 5, 6), dims=("pln", "row", "col"))
    tensor = to_bioimage_axes(image, "bxyzc")
    assert tensor.dims == ("b", "x", "y", "z", "c")
    assert tensor.shape == (1, 6, 5, 2, 1)
    np.testing.assert_array_equal(tensor.values[0, :, :, :, 0], image.values.transpose(2, 1, 0))


def test_rgb_image_to_channels_first_tensor():
    rgb = xr.DataArray(np.random.default_rng(0).integers(0, 255, (8, 4, 3), dtype="uint8"),
                       dims=("row", "col", "ch"))
    tensor = to_bioimage_axes(rgb, "bcyx")
    assert tensor.shape == (1, 3, 8, 4)
    np.testing.assert_array_equal(tensor.values[0, 1], rgb.values[:, :, 1])


def test_singleton_axes_the_model_lacks_are_dropped_but_real_ones_refused():
    single_plane = xr.DataArray(np.zeros((1, 8, 8)), dims=("pln", "row", "col"))
    assert to_bioimage_axes(single_plane, "byx").dims == ("b", "y", "x")
    stack = xr.DataArray(np.zeros((3, 8, 8)), dims=("pln", "row", "col"))
    with pytest.raises(ValueError, match=r"z=3 that 'byxc' cannot hold"):
        to_bioimage_axes(stack, "byxc")


def test_frames_become_the_batch_of_a_model_without_time_and_back():
    movie = xr.DataArray(np.random.default_rng(1).random((4, 6, 5)), dims=("t", "row", "col"))
    tensor = to_bioimage_axes(movie, "byxc")
    assert tensor.dims == ("b", "y", "x", "c") and tensor.shape == (4, 6, 5, 1)
    back = to_imagej_dims(tensor)
    xr.testing.assert_equal(back, movie)


def test_tensor_to_imagej_dims_from_numpy():
    output = np.random.default_rng(2).random((1, 2, 3, 16, 8)).astype("float32")
    image = to_imagej_dims(output, "bczyx")
    assert image.dims == ("pln", "row", "col", "ch")
    np.testing.assert_array_equal(image.values, output[0].transpose(1, 2, 3, 0))


def test_tensor_without_space_axes_or_with_big_index_is_refused():
    with pytest.raises(ValueError, match="needs 'y' and 'x'"):
        to_imagej_dims(np.zeros((1, 4)), "bc")
    with pytest.raises(ValueError, match="axis 'i' of size 3"):
        to_imagej_dims(np.zeros((3, 4, 4)), "iyx")
    with pytest.raises(ValueError, match="batch of 2 and 3 time points"):
        to_imagej_dims(np.zeros((2, 3, 4, 4)), "btyx")
    with pytest.raises(ValueError, match="needs its axes"):
        as_bioimage_array(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="names 3 axes but the array has 2"):
        as_bioimage_array(np.zeros((4, 4)), "byx")


def test_coordinates_and_attributes_follow():
    image = xr.DataArray(np.zeros((4, 3)), dims=("row", "col"), coords={"row": np.arange(4) * 0.5},
                         attrs={"unit": "um"}, name="cells")
    tensor = to_bioimage_axes(image, "byx")
    np.testing.assert_array_equal(tensor.coords["y"].values, np.arange(4) * 0.5)
    assert tensor.attrs == {"unit": "um"} and tensor.name == "cells"


def test_imagej_order():
    assert imagej_order(["ch", "col", "t", "row"]) == ("t", "row", "col", "ch")


_IMAGEJ_LAYOUTS = st.lists(st.sampled_from(["t", "pln", "ch"]), unique=True).map(
    lambda extra: tuple(d for d in IMAGEJ_DIMS if d in (*extra, "row", "col"))
)


@settings(max_examples=40, deadline=None)
@given(layout=_IMAGEJ_LAYOUTS, sizes=st.lists(st.integers(2, 4), min_size=5, max_size=5),
       model_axes=st.permutations("bczyx"))
def test_round_trip_image_model_image_is_exact(layout, sizes, model_axes):
    shape = tuple(sizes[IMAGEJ_DIMS.index(d)] for d in layout)
    image = xr.DataArray(np.random.default_rng(3).random(shape).astype("float32"), dims=layout)
    if "t" in layout:
        model_axes = ["t", *model_axes]
    tensor = to_bioimage_axes(image, "".join(model_axes))
    assert tensor.dims == tuple(model_axes)
    xr.testing.assert_identical(to_imagej_dims(tensor), image)
