"""User images to model tensors: letter, named and ImageJ dims, and the checks that refuse unusable images."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from deepij.bundle.description import AxisSpec, FixedSize, TensorSpec
from deepij.errors import ArgumentError, InputError
from deepij.inference.arrays import as_tensor, count_non_finite

SPEC = TensorSpec("raw", (AxisSpec("b"), AxisSpec("c", FixedSize(3)), AxisSpec("y"), AxisSpec("x")))
RNG = np.random.default_rng(5)


def test_imagej_dims_become_letters_and_rgb_channels_the_channel_axis():
    pixels = RNG.integers(0, 255, (2, 10, 8, 3), dtype=np.uint8)
    movie = xr.DataArray(pixels, dims=("t", "row", "col", "ch"), attrs={"rgb": True})
    tensor = as_tensor(movie, SPEC)
    assert tensor.dims == ("t", "b", "c", "y", "x") and tensor.shape == (2, 1, 3, 10, 8)
    np.testing.assert_array_equal(tensor.values[1, 0, 2], pixels[1, :, :, 2])
    stack = xr.DataArray(np.zeros((4, 6, 5), np.float32), dims=("pln", "row", "col"))
    one_channel = TensorSpec("raw", tuple(AxisSpec(a) for a in "bcyx"))
    assert as_tensor(stack, one_channel).dims == ("z", "b", "c", "y", "x")


def test_count_non_finite_agrees_with_numpy():
    data = RNG.random((3, 50, 40))
    data[1, 7, 9], data[2, 0, 0], data[0, 49, 39] = np.nan, -np.inf, np.inf
    count, first = count_non_finite(data)
    assert count == int((~np.isfinite(data)).sum()) == 3
    assert first == tuple(np.argwhere(~np.isfinite(data))[0]) == (0, 49, 39)
    strided = data[:, ::2, ::3]  # not contiguous
    expected = (int((~np.isfinite(strided)).sum()), tuple(np.argwhere(~np.isfinite(strided))[0]))
    assert count_non_finite(strided) == expected == (1, (2, 0, 0))
    assert count_non_finite(np.ones((4, 4), np.int32)) == (0, ())


def test_non_finite_pixels_named_in_the_image_own_dims():
    image = np.ones((1, 3, 6, 5), np.float32)
    image[0, 2, 4, 1] = np.nan
    with pytest.raises(
        InputError, match=r"^image: 1 pixel is NaN or infinite \(the first at b=0, c=2, y=4, x=1"
    ):
        as_tensor(image, SPEC)
    named = xr.DataArray(image[0].transpose(1, 2, 0), dims=("row", "col", "ch"))
    with pytest.raises(InputError, match=r"the first at row=4, col=1, ch=2"):
        as_tensor(named, SPEC)
    assert as_tensor(image, SPEC, non_finite="ignore").shape == (1, 3, 6, 5)
    with pytest.raises(ArgumentError, match=r"non_finite: unknown value 'skip'"):
        as_tensor(image, SPEC, non_finite="skip")


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (np.zeros((1, 3, 4, 4), np.complex128), "complex values"),
        (np.array([[["a"] * 4] * 4] * 3), "text values"),
        (np.zeros((1, 3, 4, 4), "datetime64[s]"), "date values"),
        (np.zeros((1, 3, 4, 4), bool), "a boolean image for input 'raw', which takes float32"),
        (np.zeros((1, 3, 0, 4), np.float32), r"the image is empty \(y=0"),
        ([[1.0, 2.0]], "expected a numpy array or an xarray.DataArray, not list"),
    ],
)
def test_unusable_images(data, pattern):
    with pytest.raises(InputError, match=pattern):
        as_tensor(data, SPEC)


def test_booleans_for_a_model_that_takes_booleans():
    spec = TensorSpec("mask", tuple(AxisSpec(a) for a in "yx"), data_type="bool")
    assert as_tensor(np.zeros((4, 4), bool), spec).dtype == bool
