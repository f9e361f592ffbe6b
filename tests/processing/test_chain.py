"""Prepared chains: statistics read chunk by chunk equal numpy's on the whole array, a chain applied tile by
tile or in place equals the chain on the whole tensor, NaN-aware statistics, and how a model's processing is
arranged for a tiled run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from deepij.bundle.description import AxisSpec, ModelDescription, ProcessingOp, TensorSpec
from deepij.processing import statistics
from deepij.processing.chain import prepare_chain
from deepij.processing.statistics import StatsSource
from deepij.processing.stream import stream_processing

RNG = np.random.default_rng(11)
SPEC = TensorSpec("raw", tuple(AxisSpec(a) for a in "bcyx"))


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 1000 elements, so that the test arrays are read in many chunks."""
    monkeypatch.setattr(statistics, "CHUNK_ELEMENTS", 1000)
    from deepij.processing import chain

    monkeypatch.setattr(chain, "CHUNK_ELEMENTS", 1000)


def test_chunked_statistics_equal_numpy_on_the_whole_array(small_chunks):
    values = (RNG.standard_normal((2, 3, 70, 50)) * 40 + 1000).astype(np.float32)
    source = StatsSource(xr.DataArray(values, dims=tuple("tcyx")))
    mean, std = source.mean_std(("y", "x"))
    assert mean.dims == ("t", "c")
    np.testing.assert_allclose(mean.values, values.mean(axis=(2, 3), dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(std.values, values.std(axis=(2, 3), dtype=np.float64), rtol=1e-10)
    low, high = source.percentiles(("t", "y", "x"), (1.0, 99.8))
    np.testing.assert_allclose(low.values, np.percentile(values, 1.0, axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(high.values, np.percentile(values, 99.8, axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(values, source.data.values)  # percentiles never reorder the image


def test_nan_aware_statistics_leave_non_finite_pixels_out():
    values = RNG.random((1, 1, 20, 20)).astype(np.float32)
    values[0, 0, 3, 4], values[0, 0, 10, 1] = np.nan, np.inf
    finite = values[np.isfinite(values)].astype(np.float64)
    mean, std = StatsSource(xr.DataArray(values, dims=tuple("bcyx")), ignore_nan=True).mean_std(("y", "x"))
    np.testing.assert_allclose(mean.values.ravel(), [finite.mean()], rtol=1e-12)
    np.testing.assert_allclose(std.values.ravel(), [finite.std()], rtol=1e-10)
    (low,) = StatsSource(xr.DataArray(values, dims=tuple("bcyx")), ignore_nan=True).percentiles(
        ("y", "x"), (5,)
    )
    np.testing.assert_allclose(low.values.ravel(), [np.percentile(finite, 5)], rtol=1e-6)


CHAIN = [
    ProcessingOp("scale_linear", {"gain": [1.0, 3.0], "offset": 5.0, "axes": "yx"}),
    ProcessingOp("zero_mean_unit_variance", {"mode": "per_sample", "axes": "yx"}),
    ProcessingOp("clip", {"min": -1.5, "max": 2.0}),
    ProcessingOp("scale_range", {"axes": "yx", "min_percentile": 2, "max_percentile": 98}),
]


def _by_hand(sample: np.ndarray) -> np.ndarray:
    """CHAIN on one (c, y, x) sample, step by step in numpy, each statistic on the previous step's result."""
    x = sample.astype(np.float64) * np.array([1.0, 3.0])[:, None, None] + 5.0
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    x = np.clip((x - mean) / (std + 1e-6), -1.5, 2.0)
    low = np.percentile(x, 2, axis=(1, 2), keepdims=True)
    high = np.percentile(x, 98, axis=(1, 2), keepdims=True)
    return (x - low) / (high - low + 1e-6)


def test_chain_statistics_follow_the_earlier_steps(small_chunks):
    values = RNG.random((2, 2, 40, 30)).astype(np.float32) * 100
    data = xr.DataArray(values, dims=("t", "c", "y", "x"))
    spec = TensorSpec("raw", tuple(AxisSpec(a) for a in "cyx"))
    chain = prepare_chain(data, CHAIN, spec, where="inputs['raw'].preprocessing")
    assert chain.block_safe
    whole = chain(data)
    for t in range(2):
        np.testing.assert_allclose(whole.values[t], _by_hand(values[t]), atol=2e-5)


def test_chain_on_tiles_and_in_place_equals_the_chain_on_the_whole_tensor(small_chunks):
    values = RNG.random((2, 2, 40, 30)).astype(np.float32) * 100
    data = xr.DataArray(values, dims=("t", "c", "y", "x"))
    spec = TensorSpec("raw", tuple(AxisSpec(a) for a in "cyx"))
    chain = prepare_chain(data, CHAIN, spec, where="inputs['raw'].preprocessing")
    whole = chain(data).values
    transform = chain.tile_transform()
    for t, rows, cols in [(0, slice(0, 16), slice(5, 30)), (1, slice(30, 40), slice(0, 7))]:
        tile = transform(values[t][:, rows, cols].copy(), "cyx", {"t": t})
        np.testing.assert_allclose(tile, whole[t][:, rows, cols], rtol=1e-6, atol=1e-6)
    buffer = values.copy()
    done = chain.apply_in_place(xr.DataArray(buffer, dims=data.dims))
    assert np.shares_memory(done.values, buffer)  # no second copy of the tensor
    np.testing.assert_allclose(done.values, whole, rtol=1e-6, atol=1e-6)
    cast = chain.apply_in_place(xr.DataArray(values.copy(), dims=data.dims), np.dtype(np.float16))
    assert cast.dtype == np.float16


def test_statistics_over_channels_only_are_not_block_safe():
    data = xr.DataArray(RNG.random((1, 3, 8, 8)).astype(np.float32), dims=tuple("bcyx"))
    chain = prepare_chain(
        data, [ProcessingOp("zero_mean_unit_variance", {"axes": "c"})], SPEC, where="inputs['raw']"
    )
    assert not chain.block_safe  # its mean differs at every pixel


def _description(pre, post) -> ModelDescription:
    root = Path("/nonexistent")
    raw = TensorSpec("raw", tuple(AxisSpec(a) for a in "bcyx"), processing=tuple(pre))
    out = TensorSpec("out", tuple(AxisSpec(a) for a in "bcyx"), data_type="uint8", processing=tuple(post))
    return ModelDescription("m", "0.4.10", root, root / "rdf.yaml", (raw,), (out,), {})


def test_model_processing_for_a_tiled_run():
    image = xr.DataArray(RNG.random((1, 1, 16, 16)).astype(np.float32), dims=tuple("bcyx"))
    zmuv = ProcessingOp("zero_mean_unit_variance", {"axes": "yx"})
    streamed = stream_processing(
        _description([zmuv], [ProcessingOp("binarize", {"threshold": 0.0})]), {"raw": image}
    )
    # The raw image goes to the runner as it is; the normalisation runs per tile; binarize per tile result.
    assert streamed.inputs["raw"] is image and streamed.held_bytes == 0
    tile = streamed.prepare["raw"](image.values[0, :, :4, :4].copy(), "cyx", {"b": 0})
    expected = (image.values - image.values.mean()) / (image.values.std() + 1e-6)
    np.testing.assert_allclose(tile, expected[0, :, :4, :4], rtol=1e-5)
    piece = streamed.finish["out"](np.array([[[-1.0, 2.0]]], dtype=np.float32), "cyx", {"b": 0})
    assert piece.dtype == np.uint8 and piece.ravel().tolist() == [0, 1]
    # Statistics over channels only: the whole image is processed first, and the run holds that copy.
    per_pixel = stream_processing(
        _description([ProcessingOp("zero_mean_unit_variance", {"axes": "c"})], []), {"raw": image}
    )
    assert per_pixel.held_bytes == image.nbytes and "raw" not in per_pixel.prepare
    # Statistics on an output: after stitching, in place.
    later = stream_processing(_description([], [zmuv]), {"raw": image})
    assert "out" not in later.finish
    network = xr.DataArray(np.arange(4.0, dtype=np.float32).reshape(1, 1, 2, 2) * 50, dims=tuple("bcyx"))
    done = later.post({"out": network})["out"]
    x = np.arange(4.0) * 50
    assert done.dtype == np.uint8
    np.testing.assert_array_equal(done.values.ravel(), ((x - x.mean()) / (x.std() + 1e-6)).astype(np.uint8))


def test_ignore_nan_statistics_and_zero_filled_tiles():
    values = RNG.random((1, 1, 12, 12)).astype(np.float32)
    values[0, 0, 2, 3] = np.nan
    image = xr.DataArray(values, dims=tuple("bcyx"))
    zmuv = ProcessingOp("zero_mean_unit_variance", {"axes": "yx"})
    streamed = stream_processing(_description([zmuv], []), {"raw": image}, ignore_nan=True)
    tile = streamed.prepare["raw"](values[0].copy(), "cyx", {"b": 0})
    finite = values[np.isfinite(values)].astype(np.float64)
    expected = (values[0] - finite.mean()) / (finite.std() + 1e-6)
    assert tile[0, 2, 3] == 0.0
    mask = np.isfinite(values[0])
    np.testing.assert_allclose(tile[mask], expected[mask], rtol=1e-5)
