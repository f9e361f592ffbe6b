"""Reading tiling rules from descriptions and planning tiles: hand-computed plans and coverage properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from deepij.bundle.description import (
    AxisSpec,
    DeepImageJConfig,
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ReferenceSize,
    TensorSpec,
)
from deepij.errors import TilingError
from deepij.inference.tiling import analyse_tiling


def describe(
    *,
    min_size: int = 16,
    step: int = 16,
    scale: float = 1.0,
    offset: float = 0.0,
    halo: int = 0,
    axes: str = "bcyx",
    out_axes: str | None = None,
    allow_tiling: bool = True,
    pyramidal: bool = False,
    fixed: int | None = None,
    out_channels: int = 1,
) -> ModelDescription:
    """A one-input one-output description; ``offset`` is the TOTAL offset as the description stores it."""

    def in_axis(a: str) -> AxisSpec:
        if a == "b":
            return AxisSpec("b", FixedSize(1))
        if a == "c":
            return AxisSpec("c", FixedSize(1))
        return AxisSpec(a, FixedSize(fixed) if fixed else ParameterizedSize(min_size, step))

    def out_axis(a: str) -> AxisSpec:
        if a == "b":
            return AxisSpec("b", ReferenceSize("raw", "b"))
        if a == "c":
            return AxisSpec("c", FixedSize(out_channels))
        return AxisSpec(a, ReferenceSize("raw", a, scale, offset), halo=halo)

    root = Path("/nonexistent")
    return ModelDescription(
        name="m",
        format_version="0.4.10",
        root=root,
        descriptor=root / "rdf.yaml",
        inputs=(TensorSpec("raw", tuple(in_axis(a) for a in axes)),),
        outputs=(TensorSpec("out", tuple(out_axis(a) for a in (out_axes or axes))),),
        weights={},
        deepimagej=DeepImageJConfig(pyramidal_model=pyramidal, allow_tiling=allow_tiling),
    )


def shape(y: int, x: int, c: int = 1) -> dict[str, dict[str, int]]:
    return {"raw": {"c": c, "y": y, "x": x}}


# --- padding, as deepImageJ's findTotalPadding computes it -----------------------------------------------


def test_padding_from_halo_offset_and_scale():
    # P = ceil(-b/a) + ceil(halo/a), b the per-side offset (the description stores 2b).
    assert analyse_tiling(describe(halo=8)).pads == {"y": 8, "x": 8}
    assert analyse_tiling(describe(offset=-8)).pads == {"y": 4, "x": 4}
    assert analyse_tiling(describe(scale=2, halo=16)).pads == {"y": 8, "x": 8}
    assert analyse_tiling(describe(scale=2, halo=15)).pads == {"y": 8, "x": 8}  # ceil(7.5)
    assert analyse_tiling(describe(scale=0.5, halo=3, offset=-2)).pads == {"y": 2 + 6, "x": 8}
    assert analyse_tiling(describe(halo=8, pyramidal=True)).pads == {"y": 0, "x": 0}


def test_super_resolution_x2_plan_by_hand():
    # I = 100, Q = 48, output x2 with a halo of 16 output pixels -> P = 8, R = 32 input pixels.
    tiling = analyse_tiling(describe(scale=2, halo=16, min_size=16, step=16))
    plan = tiling.plan(shape(100, 100), tile=48)
    assert plan.grids[0].write == ((0, 32), (32, 64), (64, 96), (96, 100))
    assert plan.outputs["out"].sizes == {"y": 200, "x": 200}
    tiles = list(plan.tiles())
    dest, source = plan.output_regions(tiles[0], "out")
    # axes bcyx: b and c whole; y/x written to [0, 64) from 2*8 = 16 in the 96-pixel tile output.
    assert dest == (slice(None), slice(None), slice(0, 64), slice(0, 64))
    assert source == (slice(None), slice(None), slice(16, 80), slice(16, 80))
    dest, source = plan.output_regions(tiles[-1], "out")
    assert dest[2:] == (slice(192, 200), slice(192, 200))
    assert source[2:] == (slice(72, 80), slice(72, 80))  # read 36 -> 72


def test_half_size_and_valid_convolution_outputs_by_hand():
    plan = analyse_tiling(describe(scale=0.5, halo=4, min_size=32, step=16)).plan(shape(100, 60), tile=48)
    # P = ceil(4/0.5) = 8, R = 32: y tiles write 32, 32, 32, 4 input pixels -> 16, 16, 16, 2 output pixels.
    assert plan.outputs["out"].sizes == {"y": 50, "x": 30}
    ys = [plan.output_regions(t, "out")[0][2] for t in plan.tiles() if t.index[1] == 0]
    assert ys == [slice(0, 16), slice(16, 32), slice(32, 48), slice(48, 50)]
    # Valid convolutions: output = input - 2*4; P = 4; the tile result starts at int(read) - 4.
    plan = analyse_tiling(describe(offset=-8, min_size=16, step=8)).plan(shape(40, 40), tile=24)
    first = next(plan.tiles())
    assert plan.grids[0].write[0] == (0, 16) and plan.grids[0].read[0] == 4
    assert plan.output_regions(first, "out")[1][2] == slice(0, 16)


def test_the_image_as_it_is_through_valid_convolutions_gives_the_smaller_output():
    # tile="image" on output = input - 2*4: one 40x32 tile, unpadded; the network's 32x24 result is the
    # output, whole (the zoo's way). Other tiles keep covering the image (40x32, as deepImageJ's).
    tiling = analyse_tiling(describe(offset=-8, min_size=16, step=8))
    plan = tiling.plan(shape(40, 32), tile="image")
    assert plan.tile == {"y": 40, "x": 32} and plan.n_tiles == 1 and plan.grids[0].pad == 0
    assert plan.outputs["out"].sizes == {"y": 32, "x": 24}
    dest, source = plan.output_regions(next(plan.tiles()), "out")
    assert dest[2:] == source[2:] == (slice(0, 32), slice(0, 24))
    assert plan.outputs["out"].maps["y"].image_pixels(3).tolist() == [4, 5, 6]  # output 0 is input 4
    assert tiling.plan(shape(40, 32), tile="whole").outputs["out"].sizes == {"y": 40, "x": 32}


def test_channels_absent_from_the_input_take_the_tile_output():
    tiling = analyse_tiling(describe(axes="byx", out_axes="bcyx", out_channels=3, halo=2))
    plan = tiling.plan({"raw": {"y": 64, "x": 64}}, tile=32)
    assert tiling.tileable and "c" not in plan.outputs["out"].maps
    dest, source = plan.output_regions(next(plan.tiles()), "out")
    assert dest[1] == slice(None) and source[1] == slice(None)


# --- tile sizes ------------------------------------------------------------------------------------------


def test_suggested_tile_follows_deepimagej_optimal_patch():
    # ceil((I + 2*halo)/step)*step = ceil(116/16)*16 = 128 <= 3I -> 128.
    assert analyse_tiling(describe(halo=8)).suggested_tile({"y": 100, "x": 100}) == {"y": 128, "x": 128}
    # I = 10: ceil(26/16)*16 = 32 > 30 -> one step less: 16.
    assert analyse_tiling(describe(halo=8, min_size=16)).suggested_tile({"y": 10, "x": 10})["y"] == 32
    # ... but 16 leaves nothing after P = 8 on each side: the smallest valid size > 2P is taken (32).
    assert analyse_tiling(describe(halo=0, min_size=16)).suggested_tile({"y": 10, "x": 10})["y"] == 16


def test_suggested_tile_that_deepimagej_gets_wrong_uses_the_paper_equation_3():
    # min 24, step 16: deepImageJ suggests 128, which is not 24 + 16k; equation 3 gives the smallest
    # valid size >= I + 2P = 116: 120.
    tiling = analyse_tiling(describe(halo=8, min_size=24, step=16))
    assert tiling.suggested_tile({"y": 100, "x": 100}) == {"y": 120, "x": 120}


def test_fixed_size_model_tiles_at_its_size():
    tiling = analyse_tiling(describe(fixed=64, halo=8))
    plan = tiling.plan(shape(100, 50))
    # R = 64 - 16 = 48: 3 tiles along y (100), 2 along x (50).
    assert plan.tile == {"y": 64, "x": 64} and plan.n_tiles == 6
    assert plan.grids[0].write == ((0, 48), (48, 96), (96, 100))
    with pytest.raises(TilingError, match=r"tile: y=48 is not a valid size.*expected exactly 64"):
        tiling.plan(shape(100, 50), tile=48)


def test_fixed_size_model_tiles_larger_and_mirrors_smaller_images_at_its_size():
    # The zoo's nuclei U-Net case: a fixed 512 input with a halo, and a 2048 image. deepImageJ tiles at 512.
    tiling = analyse_tiling(describe(fixed=512, halo=32))
    assert tiling.tileable
    for request in (None, "whole", "suggested"):
        plan = tiling.plan(shape(2048, 2048), tile=request)
        # R = 512 - 64 = 448: ceil(2048 / 448) = 5 tiles per axis.
        assert plan.tile == {"y": 512, "x": 512} and plan.n_tiles == 25
    small = tiling.plan(shape(40, 300), tile="whole")
    assert small.tile == {"y": 512, "x": 512}
    # y: the 40 rows sit in the middle of the 512 tile (236 mirrored above); x: 1 tile (448 >= 300).
    assert small.grids[0].starts == (-236,) and small.grids[0].read == (236,)
    assert small.n_tiles == 1


def test_requested_tile_is_validated_with_a_clear_error():
    tiling = analyse_tiling(describe(min_size=64, step=16, halo=8))
    expected = r"y=100 is not a valid size for input 'raw': expected 64 \+ k\*16.*112"
    with pytest.raises(TilingError, match=expected):
        tiling.plan(shape(200, 200), tile={"y": 100, "x": 96})
    with pytest.raises(TilingError, match=r"axes \['q'\] are not tiled axes"):
        tiling.plan(shape(200, 200), tile={"q": 64})
    with pytest.raises(TilingError, match="got 3 sizes"):
        tiling.plan(shape(200, 200), tile=(64, 64, 64))
    with pytest.raises(TilingError, match="unknown value 'big'"):
        tiling.plan(shape(200, 200), tile="big")
    with pytest.raises(TilingError, match="unknown tiling mode 'fancy'"):
        tiling.plan(shape(200, 200), mode="fancy")
    with pytest.raises(TilingError, match=r"overlap: expected a whole number of pixels >= 0, not -1"):
        tiling.plan(shape(200, 200), mode="blend", overlap=-1)
    plan = tiling.plan(shape(200, 200), tile={"y": 96})  # x from the suggestion
    assert plan.tile == {"y": 96, "x": 224}


def test_padding_larger_than_the_tile_is_refused():
    tiling = analyse_tiling(describe(min_size=16, step=16, halo=8))
    with pytest.raises(TilingError, match="leaves nothing valid after padding 8"):
        tiling.plan(shape(100, 100), tile=16)


def test_image_channels_are_checked_against_the_model():
    expected = r"input 'raw' axis c: the image has 3 but the model takes exactly 1"
    with pytest.raises(TilingError, match=expected):
        analyse_tiling(describe()).plan(shape(64, 64, c=3))


# --- models that cannot be tiled -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"allow_tiling": False}, "allow_tiling: false"),
        ({"pyramidal": True}, "pyramidal_model: true"),
    ],
)
def test_untileable_models_run_once_on_the_smallest_valid_size(options, reason):
    tiling = analyse_tiling(describe(min_size=16, step=16, halo=4, **options))
    assert not tiling.tileable and tiling.reason == reason
    plan = tiling.plan(shape(100, 70))
    # smallest 16 + 16k >= I + 2P (P = 4; 0 for pyramidal models, same sizes here)
    assert plan.n_tiles == 1 and plan.tile == {"y": 112, "x": 80}
    assert plan.grids[0].starts == (-6,) and plan.grids[0].read == (6,)
    with pytest.raises(TilingError, match=r"y=64 is smaller than the image \(100\)"):
        tiling.plan(shape(100, 70), tile=64)


def test_fixed_untileable_model_refuses_larger_images():
    tiling = analyse_tiling(describe(fixed=64, allow_tiling=False))
    with pytest.raises(TilingError, match=r"axis y: the image has 100 pixels but the model takes exactly 64"):
        tiling.plan(shape(100, 50))


def test_outputs_that_are_not_images_of_the_input_make_the_model_untileable():
    tiling = analyse_tiling(describe(axes="bcyx", out_axes="bc"))
    assert not tiling.tileable and "does not follow input axes 'yx'" in tiling.reason
    plan = tiling.plan(shape(40, 40))
    assert plan.n_tiles == 1 and plan.outputs["out"].maps == {}


# --- coverage properties ---------------------------------------------------------------------------------


@st.composite
def tiling_cases(draw):
    scale = draw(st.sampled_from([0.5, 1.0, 2.0, 4.0]))
    even = 2 if scale == 0.5 else 1  # half-size models take even sizes only
    min_size = draw(st.integers(1, 40)) * even
    step = draw(st.integers(0, 24)) * even
    offset = -2 * draw(st.integers(0, 6)) if scale == 1.0 else 0.0
    halo = draw(st.integers(0, 12))
    y, x = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    mode = draw(st.sampled_from(["deepimagej", "deepimagej-readback", "blend"]))
    k = draw(st.integers(0, 12))
    return describe(min_size=min_size, step=step, scale=scale, offset=offset, halo=halo), y, x, k, mode


@settings(max_examples=150, deadline=None)
@given(case=tiling_cases())
def test_tiles_cover_every_output_pixel(case):
    description, y, x, k, mode = case
    tiling = analyse_tiling(description)
    rule = tiling.rules["y"]
    first = tiling.smallest_valid("y", 2 * tiling.pads["y"] + 1)
    assume(first is not None)
    q = first + k * rule.step
    plan = tiling.plan(shape(y, x), tile=q, mode=mode)
    assume(plan.n_tiles <= 2000)  # keeps the test quick; tiny tiles add nothing new
    out = plan.outputs["out"]
    hits = np.zeros((out.sizes["y"], out.sizes["x"]))
    available = [m.tile_size(q) for m in (out.maps["y"], out.maps["x"])]
    for tile in plan.tiles():
        dest, source = plan.output_regions(tile, "out")
        for s, n in zip(source[2:], available, strict=True):
            assert s.start >= 0 and s.stop <= n
        weights = plan.blend_weights(tile, "out")
        hits[dest[2:]] += 1 if weights is None else weights[0, 0]
    assert np.allclose(hits, 1.0)


def test_a_tile_far_larger_than_the_image_is_refused_before_any_allocation():
    # predict(tile=100000) once asked the engine for a 100000^2 mirrored tile: gigabytes, then a traceback
    tiling = analyse_tiling(describe(min_size=16, step=16, halo=8))
    shapes = {"raw": {"c": 1, "y": 100, "x": 60}}
    with pytest.raises(TilingError, match=r"tile: y=100000 is far larger than any tile .* at most 1024"):
        tiling.plan(shapes, 100000)
    assert tiling.plan(shapes, (1024, 1024)).n_tiles == 1  # mirrored, as deepImageJ mirrors small images
    big = {"raw": {"c": 1, "y": 2000, "x": 60}}
    with pytest.raises(TilingError, match=r"tile: y=9008 .* expected at most 8064"):  # 4 * (2000 + 2 * 8)
        tiling.plan(big, (9008, 64))
    # a fixed size larger than three times a small image stays allowed: it is the only size there is
    fixed = analyse_tiling(describe(fixed=512, halo=8))
    assert fixed.plan({"raw": {"c": 1, "y": 100, "x": 60}}, 512).n_tiles == 1
