"""One-axis grids: hand-computed deepImageJ 2.x layouts, the seed paper's formulas, mirroring, blending."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepij.errors import TilingError
from deepij.inference.grid import (
    blend_grid,
    blend_ramp,
    deepimagej_grid,
    mirror_indices,
    single_pass_grid,
)


def test_deepimagej_grid_by_hand():
    # I = 100, Q = 48, P = 8: R = 32, N = ceil(100/32) = 4 (paper eq. 4). Tiles 0-2 read [32k - 8, 32k + 40)
    # and write [32k, 32k + 32); the last is pushed back to read [60, 108) and copies only [96, 100), which
    # sits at 36 in the tile (= P + R - (I - 3R) = 8 + 32 - 4).
    grid = deepimagej_grid(100, tile=48, pad=8)
    assert grid.n_tiles == math.ceil(100 / (48 - 2 * 8)) == 4
    assert grid.starts == (-8, 24, 56, 60)
    assert grid.write == ((0, 32), (32, 64), (64, 96), (96, 100))
    assert grid.read == (8, 8, 8, 36)


def test_seed_paper_equation_5_differs_from_the_code():
    # The paper covers I = 100 with N = 4 patches of T = floor(I/N) = 25 (last: I - (N-1)T = 25);
    # deepImageJ's code writes R = 32 per tile and only 4 with the last one.
    grid = deepimagej_grid(100, tile=48, pad=8)
    paper_t = 100 // grid.n_tiles
    assert [paper_t] * 3 + [100 - 3 * paper_t] == [25, 25, 25, 25]
    assert [stop - start for start, stop in grid.write] == [32, 32, 32, 4]


def test_deepimagej_exact_fit_and_no_padding():
    # R == I: one tile reading [-P, I + P).
    grid = deepimagej_grid(32, tile=48, pad=8)
    assert (grid.starts, grid.write, grid.read) == ((-8,), ((0, 32),), (8,))
    # P = 0, I = 64, Q = 32: two tiles side by side, the last not shifted.
    grid = deepimagej_grid(64, tile=32, pad=0)
    assert (grid.starts, grid.write, grid.read) == ((0, 32), ((0, 32), (32, 64)), (0, 0))


def test_deepimagej_single_tile_reads_one_pixel_early_when_the_margin_is_odd():
    # I = 5 in a Q = 8 tile: mirrored 2 left, 1 right (needed 3, ceil on the left): the tile holds image
    # pixels [2 1 0 1 2 3 4 3]; deepImageJ copies from floor(3/2) = 1, i.e. image pixels [1 0 1 2 3].
    grid = deepimagej_grid(5, tile=8, pad=0)
    assert grid.starts == (-2,)
    assert mirror_indices(grid.starts[0], 8, 5).tolist() == [2, 1, 0, 1, 2, 3, 4, 3]
    assert deepimagej_grid(5, tile=8, pad=0, readback=True).read == (1,)
    assert grid.read == (2,)  # the default reads where the image is
    # Even margin: both agree.
    assert deepimagej_grid(6, tile=8, pad=0).read == deepimagej_grid(6, tile=8, pad=0, readback=True).read


def test_tile_without_valid_region_is_refused():
    with pytest.raises(TilingError, match=r"axis y: tile 16 leaves no valid region.*padding 8"):
        deepimagej_grid(100, tile=16, pad=8, axis="y")


def test_single_pass_grid_centres_the_image():
    grid = single_pass_grid(50, tile=64, pad=4)
    assert (grid.starts, grid.write, grid.read) == ((-7,), ((0, 50),), (7,))
    with pytest.raises(TilingError, match="cannot hold"):
        single_pass_grid(70, tile=64)


def test_mirror_does_not_repeat_the_edge_and_keeps_reflecting():
    assert mirror_indices(-3, 11, 4).tolist() == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]
    assert mirror_indices(-2, 4, 1).tolist() == [0, 0, 0, 0]
    image = np.arange(7)
    assert np.array_equal(image[mirror_indices(-4, 15, 7)], np.pad(image, 4, mode="reflect"))


def test_blend_grid_by_hand():
    # R = 32, overlap 8 -> stride 24; N = 1 + ceil((100 - 32)/24) = 4; the last is pushed to 68.
    grid = blend_grid(100, tile=48, pad=8, overlap=8)
    assert grid.write == ((0, 32), (24, 56), (48, 80), (68, 100))
    assert grid.starts == (-8, 16, 40, 60)
    with pytest.raises(TilingError, match="overlap 32 must be"):
        blend_grid(100, tile=48, pad=8, overlap=32)


def test_blend_ramps_add_up_to_one_over_a_shared_run():
    left = blend_ramp(10, 0, 4)[-4:]
    right = blend_ramp(10, 4, 0)[:4]
    assert np.allclose(left + right, 1.0)
    assert blend_ramp(5, 0, 0).tolist() == [1.0] * 5


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 400),
    pad=st.integers(0, 20),
    extra=st.integers(1, 120),
    readback=st.booleans(),
)
def test_deepimagej_grid_writes_every_pixel_exactly_once(size, pad, extra, readback):
    tile = 2 * pad + extra
    grid = deepimagej_grid(size, tile, pad, readback=readback)
    hits = np.zeros(size, dtype=int)
    for start, (w0, w1), read in zip(grid.starts, grid.write, grid.read, strict=True):
        hits[w0:w1] += 1
        assert read >= 0 and read + (w1 - w0) <= tile
        if readback and grid.n_tiles == 1 and (tile - size) % 2:
            assert read == w0 - start - 1  # deepImageJ's one-pixel shift
        else:
            assert read == w0 - start  # the tile pixel at `read` is the image pixel at w0
            assert read >= pad or grid.n_tiles == 1
    assert np.all(hits == 1)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 400), pad=st.integers(0, 20), extra=st.integers(2, 120), data=st.data())
def test_blend_grid_covers_every_pixel_with_overlapping_neighbours(size, pad, extra, data):
    tile = 2 * pad + extra
    overlap = data.draw(st.integers(0, extra - 1))
    grid = blend_grid(size, tile, pad, overlap)
    total = np.zeros(size)
    for k, ((w0, w1), read, start) in enumerate(zip(grid.write, grid.read, grid.starts, strict=True)):
        assert read == w0 - start
        left = grid.write[k - 1][1] - w0 if k else 0
        right = w1 - grid.write[k + 1][0] if k + 1 < grid.n_tiles else 0
        if grid.n_tiles > 1:
            assert min(left if k else overlap, right if k + 1 < grid.n_tiles else overlap) >= overlap
        total[w0:w1] += blend_ramp(w1 - w0, max(left, 0), max(right, 0))
    # Every pixel gets a positive weight; TilePlan normalises the sums to 1 (tested in test_tiling).
    assert np.all(total > 0)
