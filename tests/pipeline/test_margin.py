"""``margin=``: tiles that keep more than the bundle's declared halo (deepImageJ 1.x's overlap=, the pixels
cut from each side of every patch). A network that looks 4 pixels far, described with no halo at all, is
tiled exactly when the margin covers its reach: the tiles then equal one pass on the mirror-padded image,
computed here with the network module itself."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from deepij.errors import ArgumentError, SeamWarning, TilingError
from deepij.pipeline import Model
from support.models import describe, write_torchscript_convnet

SIZE, TILE = 96, 48


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return write_torchscript_convnet(tmp_path_factory.mktemp("margin") / "net.pt")


@pytest.fixture(scope="module")
def model(net):
    return Model(describe(net, name="no halo", output_halo=0))  # looks net.halo = 4 pixels far


@pytest.fixture(scope="module")
def image():
    yy, xx = np.mgrid[:SIZE, :SIZE]
    noise = np.random.default_rng(2).normal(0, 0.1, (SIZE, SIZE))
    return (np.sin(yy / 5.0) * np.cos(xx / 7.0) + noise).astype(np.float32)


def mirrored_pass(net, image, radius):
    """One pass on the image mirror-padded by ``radius`` (the edge pixel not repeated), cropped back."""
    padded = np.pad(image, radius, mode="reflect")
    return net.forward(padded[None, None])[0][0, 0, radius:-radius, radius:-radius]


def test_a_margin_covering_the_reach_makes_tiles_exact(net, model, image):
    expected = mirrored_pass(net, image, net.halo)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeamWarning)  # the margin covers the reach: no seam warning
        result = model.predict(image, tile=TILE, margin=net.halo, runtime="native")
    assert result.plan.n_tiles > 1
    np.testing.assert_allclose(result.images["output"].values[0, 0], expected, atol=1e-5)
    note = "tile margin {'y': 4, 'x': 4} pixels per side (margin 4; the bundle declares {'y': 0, 'x': 0})"
    assert note in result.notes


def test_without_the_margin_the_tiles_show_seams(net, model, image):
    expected = mirrored_pass(net, image, net.halo)
    with pytest.warns(SeamWarning):
        result = model.predict(image, tile=TILE, runtime="native")
    assert np.abs(result.images["output"].values[0, 0] - expected).max() > 1e-3


def test_a_margin_within_the_declared_halo_keeps_the_halo(net, image):
    declared = Model(describe(net, name="halo 4"))
    result = declared.predict(image, tile=TILE, margin=2, runtime="native")
    assert "tile margin: the declared halo {'y': 4, 'x': 4} pixels per side (margin 2 is within it)" in (
        result.notes
    )
    np.testing.assert_allclose(result.images["output"].values[0, 0], mirrored_pass(net, image, 4), atol=1e-5)


def test_a_single_pass_is_mirror_padded_by_the_margin(net, model, image):
    # no tile asked, the image fits: one pass, padded by the margin rather than run as it is
    small = image[:40, :44]
    result = model.predict(small, margin=net.halo, runtime="native")
    assert result.plan.n_tiles == 1
    np.testing.assert_allclose(result.images["output"].values[0, 0], mirrored_pass(net, small, 4), atol=1e-5)


def test_margins_that_cannot_be_kept(model, image):
    with pytest.raises(TilingError, match="tile: y=48 leaves nothing valid after padding 24"):
        model.predict(image, tile=TILE, margin=24, runtime="native")
    with pytest.raises(ArgumentError, match="margin: expected a whole number of pixels >= 0"):
        model.predict(image, margin=-1)
