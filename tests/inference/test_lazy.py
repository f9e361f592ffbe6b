"""The tile plan as a Dask graph: the lazy result equals the in-memory tiled run exactly (same windows, same
code), for every layout (deepImageJ's grid, the read-back shift, blending), looped dims, batches of tiles,
other output sizes and per-tile processing; each forward task reads only its tile and halo."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from deepij.inference.lazy import lazy_tiled, tile_window
from deepij.inference.runner import run_tiled
from deepij.inference.tiling import analyse_tiling
from support.numpy_nets import ConvSpec, NumpyConvBackend, conv_description

RNG = np.random.default_rng(11)


def both(spec, description, data, dims, *, chunks, tile, mode="deepimagej", batch_size=1, block=None,
         out_chunks=None, **options):
    """(in-memory result, lazy result, plan, backend) of one plan on one image; ``block`` and
    ``out_chunks``: the lazy run's cells and output chunks."""
    backend = NumpyConvBackend(description, spec)
    sample = {d: n for d, n in zip(dims, data.shape, strict=True) if d in description.inputs[0].axes_str}
    sample.pop("b", None)
    plan = analyse_tiling(description).plan({"raw": sample}, tile=tile, mode=mode)
    eager = run_tiled(backend, plan, {"raw": xr.DataArray(data, dims=dims)}, batch_size=batch_size, **options)
    lazy_input = xr.DataArray(da.from_array(data, chunks=chunks), dims=dims)
    lazy = lazy_tiled(lambda: backend, plan, {"raw": lazy_input}, batch_size=batch_size, block=block,
                      chunks=out_chunks, **options)
    return eager["out"], lazy["out"], plan, backend


BLOCKS = {"a task per pass": None, "cells of 20": {"y": 20, "x": 20}, "rows": {"y": 30, "x": 1000}}


@pytest.mark.parametrize("block", sorted(BLOCKS))
@pytest.mark.parametrize("mode", ["deepimagej", "deepimagej-readback", "blend", "unpadded"])
def test_lazy_equals_in_memory_exactly(mode, block):
    spec = ConvSpec(kernel_sizes=(3, 5), hidden=2)
    description = conv_description(spec, step=4)
    data = RNG.random((1, 1, 70, 53), dtype=np.float32)
    if mode == "unpadded":
        data = np.ascontiguousarray(data[..., :68, :52])  # sizes the network takes: tiles inside the image
    tile = 24 if mode != "deepimagej-readback" else 64
    eager, lazy, plan, _ = both(spec, description, data, ("b", "c", "y", "x"), chunks=(1, 1, 16, 20),
                                tile=tile, mode=mode, block=BLOCKS[block])
    assert plan.n_tiles > 1 or mode == "deepimagej-readback"
    assert isinstance(lazy.data, da.Array) and lazy.dims == eager.dims
    assert lazy.dtype == eager.dtype
    np.testing.assert_array_equal(lazy.values, eager.values)


def test_output_chunks_are_regular_and_follow_the_input_chunks():
    spec = ConvSpec(kernel_sizes=(3,))
    description = conv_description(spec)
    data = RNG.random((1, 1, 50, 41), dtype=np.float32)
    _, lazy, _, _ = both(spec, description, data, ("b", "c", "y", "x"), chunks=(1, 1, 25, 41), tile=18)
    assert lazy.data.chunks[2:] == ((25, 25), (16, 16, 9))  # x: one input chunk, so a tile's valid region
    _, lazy, _, _ = both(spec, description, data, ("b", "c", "y", "x"), chunks=(1, 1, 25, 41), tile=18,
                         block={"y": 16, "x": 32})
    assert lazy.data.chunks[2:] == ((25, 25), (32, 9))  # x: the cells
    _, lazy, _, _ = both(spec, description, data, ("b", "c", "y", "x"), chunks=(1, 1, 25, 41), tile=18,
                         out_chunks={"y": 10, "x": 41})
    assert lazy.data.chunks[2:] == ((10,) * 5, (41,))


def test_a_task_runs_the_tiles_of_its_cell_and_each_tile_once():
    spec = ConvSpec(kernel_sizes=(5,))
    description = conv_description(spec)
    data = RNG.random((1, 1, 64, 64), dtype=np.float32)
    plan = analyse_tiling(description).plan({"raw": {"c": 1, "y": 64, "x": 64}}, tile=20)  # 16 valid pixels
    passes = []

    class Recording(NumpyConvBackend):
        def predict(self, inputs):
            passes.append(inputs[0].shape)
            return super().predict(inputs)

    backend = Recording(description, spec)
    source = xr.DataArray(da.from_array(data, chunks=(1, 1, 32, 32)), dims=("b", "c", "y", "x"))
    lazy = lazy_tiled(lambda: backend, plan, {"raw": source}, block={"y": 32, "x": 64})["out"]
    tasks = [k for k in lazy.data.__dask_graph__() if str(k).startswith("deepij-tiles-")]
    assert plan.n_tiles == 16 and len(tasks) == 2  # two cells of 32 rows, two rows of four tiles each
    with dask.config.set(scheduler="synchronous"):
        values = lazy.values
    assert len(passes) == plan.n_tiles  # the first (run at once, to learn the outputs) is kept, not redone
    eager = run_tiled(NumpyConvBackend(description, spec), plan, {"raw": source.compute()})["out"]
    np.testing.assert_array_equal(values, eager.values)


def test_looped_dims_batches_and_a_larger_output():
    spec = ConvSpec(kernel_sizes=(3, 3), scale=2.0)
    description = conv_description(spec, min_size=8, step=8, batch=None)
    data = RNG.random((3, 2, 1, 30, 26), dtype=np.float32)  # t, b, c, y, x
    for block in (None, {"t": 2, "b": 2, "y": 100, "x": 100}):  # a task per pass; samples sharing tasks
        eager, lazy, _, _ = both(spec, description, data, ("t", "b", "c", "y", "x"),
                                 chunks=(1, 1, 1, 16, 16), tile=16, batch_size=3, block=block)
        assert lazy.dims == ("t", "b", "c", "y", "x") and lazy.shape == (3, 2, 1, 60, 52)
        np.testing.assert_array_equal(lazy.values, eager.values)
    tasks = [k for k in lazy.data.__dask_graph__() if str(k).startswith("deepij-tiles-")]
    assert len(tasks) == 2  # t = 0, 1 and t = 2, each with both b


def test_per_tile_processing_runs_as_in_memory():
    spec = ConvSpec(kernel_sizes=(3,))
    description = conv_description(spec)
    data = (RNG.random((1, 1, 40, 40)) * 100).astype(np.uint16)

    def prepare(block, axes, sample):
        return (block - 50.0) / 10.0

    def finish(block, axes, sample):
        return (block > 0).astype(np.uint8)

    eager, lazy, _, _ = both(spec, description, data, ("b", "c", "y", "x"), chunks=(1, 1, 20, 20), tile=16,
                             prepare={"raw": prepare}, finish={"out": finish})
    assert lazy.dtype == np.uint8
    np.testing.assert_array_equal(lazy.values, eager.values)


def test_each_forward_pass_reads_only_its_window():
    spec = ConvSpec(kernel_sizes=(5,))
    description = conv_description(spec)
    data = RNG.random((1, 1, 64, 64), dtype=np.float32)
    sample = {"c": 1, "y": 64, "x": 64}
    plan = analyse_tiling(description).plan({"raw": sample}, tile=24)
    seen = []

    class Recording(NumpyConvBackend):
        def predict(self, inputs):
            seen.append(inputs[0].shape)
            return super().predict(inputs)

    backend = Recording(description, spec)
    read = []

    def reader(block, block_info=None):
        read.append(block_info[0]["array-location"])
        return block

    source = da.from_array(data, chunks=(1, 1, 8, 8)).map_blocks(reader, dtype=data.dtype)
    chunks = {"y": 20, "x": 20}  # output chunks the tiles' write regions (a task per pass, of one tile)
    lazy = lazy_tiled(lambda: backend, plan, {"raw": xr.DataArray(source, dims=("b", "c", "y", "x"))},
                      chunks=chunks)["out"]
    assert seen == [(1, 1, 24, 24)]  # one forward pass so far: the first batch, to learn the outputs
    read.clear()
    with dask.config.set(scheduler="synchronous"):
        first_chunk = lazy.data.blocks[0, 0, 0, 0].compute()
    # The first chunk is the first tile's (computed already, to learn the outputs' types): nothing read.
    assert first_chunk.shape == (1, 1, 24 - 2 * plan.grids[0].pad, 24 - 2 * plan.grids[1].pad)
    assert read == []
    with dask.config.set(scheduler="synchronous"):
        lazy.data.blocks[0, 0, 1, 1].compute()
    tile = list(plan.tiles())[plan.grids[1].n_tiles + 1]
    window = tile_window(plan, "cyx", 3, tile)
    rows = {(loc[2][0], loc[2][1]) for loc in read}
    assert min(r[0] for r in rows) == window[1].start // 8 * 8
    assert max(r[1] for r in rows) <= -(-window[1].stop // 8) * 8  # the 8-pixel chunks holding the window
    assert len(read) < (64 // 8) ** 2 / 2
    assert seen == [(1, 1, 24, 24)] * 2


def test_a_graph_culled_to_its_output_keeps_every_forward_pass():
    # Dask finds a task's dependencies among its arguments and inside lists, not inside tuples. The chunk
    # tasks once named their forward passes inside tuples: culling (a lazy run with output statistics, e.g.
    # scale_range before and zero_mean_unit_variance after the network) dropped those passes, and a chunk
    # task got a key's text instead of its pieces ("string indices must be integers" in _assemble).
    spec = ConvSpec(kernel_sizes=(3, 3))
    description = conv_description(spec)
    data = RNG.random((1, 1, 150, 130), dtype=np.float32)
    eager, lazy, plan, _ = both(spec, description, data, ("b", "c", "y", "x"), chunks=(1, 1, 70, 70), tile=48)
    assert plan.n_tiles > 1
    # as a zero_mean_unit_variance after the network applies its statistics: per channel, an array
    shifted = (lazy - xr.DataArray(np.ones(1, np.float32), dims=("c",))).data
    keys = list(dask.core.flatten(shifted.__dask_keys__()))
    culled = shifted.__dask_graph__().cull(set(keys))
    forward = [k for k in shifted.__dask_graph__().to_dict() if str(k).startswith("deepij-tiles-")]
    assert len(forward) == plan.n_tiles and set(forward) <= set(culled.to_dict())
    computed = dict(zip(keys, dask.get(culled.to_dict(), keys), strict=True))
    nested = shifted.__dask_keys__()
    whole = np.block([[[[computed[k] for k in row] for row in plane] for plane in b] for b in nested])
    np.testing.assert_array_equal(whole, eager.values - 1.0)


# --- statistics of spec ops with Dask -------------------------------------------------------------------

def signed_zeros(rng, shape):
    """-0.0 and 0.0 (apart in their keys, equal in value) among a few small integers."""
    zeros = np.where(rng.random(shape) < 0.5, -0.0, 0.0)
    return np.where(rng.random(shape) < 0.6, zeros, rng.integers(-2, 2, shape).astype(np.float64))


KINDS = {
    "float": lambda rng: rng.standard_normal((2, 60, 70)).astype(np.float32),
    "ties": lambda rng: rng.integers(0, 4, (2, 60, 70)).astype(np.float32),
    "uint16": lambda rng: rng.integers(0, 65535, (2, 60, 70)).astype(np.uint16),
    "uint8": lambda rng: rng.integers(0, 255, (2, 60, 70)).astype(np.uint8),
    "int16": lambda rng: rng.integers(-30000, 30000, (2, 60, 70)).astype(np.int16),
    "int32": lambda rng: rng.integers(-(2**31), 2**31 - 1, (2, 60, 70)).astype(np.int32),
    "narrow": lambda rng: (1.0 + rng.random((2, 60, 70)) * 1e-6).astype(np.float32),
    "float64": lambda rng: rng.standard_normal((2, 60, 70)) * 1e6,
    "signs": lambda rng: signed_zeros(rng, (2, 60, 70)),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("digit", [16, 3])
def test_percentiles_are_numpys_exactly(kind, digit, monkeypatch):
    from deepij.inference import lazy_percentiles
    from deepij.inference.lazy_statistics import DaskStats

    # 3 bits per read and 50 values sorted at most: the search refines many times and gathers
    monkeypatch.setattr(lazy_percentiles, "DIGIT", digit)
    monkeypatch.setattr(lazy_percentiles, "EXACT_BELOW", 50 if digit == 3 else 1 << 20)
    values = KINDS[kind](np.random.default_rng(3))
    image = xr.DataArray(da.from_array(values, chunks=(1, 25, 30)), dims=("c", "y", "x"))
    qs = (0.0, 1.0, 37.5, 99.8, 100.0)
    found = DaskStats(image).percentiles(("y", "x"), qs)
    expected = np.percentile(values, qs, axis=(1, 2))
    for q, f, e in zip(qs, found, expected, strict=True):
        assert f.dims == ("c",)
        np.testing.assert_array_equal(f.values, e.astype(np.float64), err_msg=f"percentile {q}")


@pytest.mark.parametrize("ignore_nan", [False, True])
def test_percentiles_of_nan_and_infinity_are_numpys(ignore_nan):
    # NaN in a channel makes numpy's percentiles NaN (non_finite="propagate"); with ignore_nan NaN and
    # infinity are left out (non_finite="ignore", np.nanpercentile). Channel 1 holds an infinity only.
    from deepij.inference.lazy_statistics import DaskStats

    values = np.random.default_rng(5).random((3, 40, 30)).astype(np.float32)
    values[0, 3, 4] = np.nan
    values[1, 20, 7] = np.inf
    image = xr.DataArray(da.from_array(values, chunks=(1, 15, 20)), dims=("c", "y", "x"))
    qs = (0.0, 2.0, 50.0, 99.0, 100.0)
    found = DaskStats(image, ignore_nan=ignore_nan).percentiles(("y", "x"), qs)
    if ignore_nan:
        expected = np.nanpercentile(np.where(np.isfinite(values), values, np.nan), qs, axis=(1, 2))
    else:
        with np.errstate(invalid="ignore"):
            expected = np.percentile(values, qs, axis=(1, 2))
    assert np.isnan(expected[:, 0]).all() != ignore_nan
    for q, f, e in zip(qs, found, expected, strict=True):
        np.testing.assert_array_equal(f.values, e.astype(np.float64), err_msg=f"percentile {q}")


def test_mean_and_std_over_the_whole_image():
    from deepij.inference.lazy_statistics import DaskStats

    values = np.random.default_rng(4).random((3, 50, 40)) * 1000
    image = xr.DataArray(da.from_array(values.astype(np.float32), chunks=(1, 20, 20)), dims=("t", "y", "x"))
    mean, std = DaskStats(image).mean_std(("y", "x"))
    as_float = values.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(mean.values, as_float.mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std.values, as_float.std(axis=(1, 2)), rtol=1e-10)


@pytest.mark.parametrize(("dtype", "reads"), [("uint16", 1), ("float32", 2), ("float64", 2)])
def test_percentiles_read_the_image_once_per_16_bits_and_the_nan_count_rides_along(dtype, reads):
    # 8/16-bit values are found by their first 16 bits, float32 by a second read of the next 16; float64
    # values sharing their first 16 bits are few here (under EXACT_BELOW): the second read gathers them. The
    # NaN/inf count of non_finite="raise" joins the first read.
    from deepij.inference.lazy_reads import Rider, riding
    from deepij.inference.lazy_statistics import DaskStats, non_finite_count

    values = (np.random.default_rng(6).random((1, 90, 80)) * 60000).astype(dtype)
    if dtype != "uint16":
        values[0, 5, 7] = np.inf
    read = []

    def reader(block, block_info=None):
        read.append(tuple(block_info[0]["array-location"]))
        return block

    source = da.from_array(values, chunks=(1, 30, 40)).map_blocks(reader, dtype=values.dtype)
    counting = [Rider(c) for c in [non_finite_count(source)] if c is not None]
    with riding(counting):
        found = DaskStats(xr.DataArray(source, dims=("c", "y", "x"))).percentiles(("y", "x"), (1.0, 99.8))
    expected = np.percentile(values, (1.0, 99.8), axis=(1, 2))
    np.testing.assert_array_equal([f.values for f in found], expected)
    assert len(read) == reads * 6 and len(set(read)) == 6  # every block, once per read
    if counting:
        assert counting[0].done and counting[0].result() == (1, (0, 5, 7), np.inf)
