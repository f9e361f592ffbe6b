"""deepImageJ 1.x's ``overlap=`` in run("DeepImageJ Run", ...): the margin cut from each side of every
patch. On a bundle that declares no halo for a network that looks 4 pixels far, ``patch=48 overlap=4``
gives the exact result (one pass on the mirror-padded image, computed here with the network module; the
bundle's macros min-max scale before and double after), ``overlap=0`` does not, and an overlap that leaves
nothing of the patch stops the macro naming overlap=."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from deepij.errors import MacroError, SeamWarning
from deepij.frontdoors.deepimagej_run import COMMAND
from support.bundles import write_bundle_v0_3

NAME = "no halo 1.x model"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    written = write_bundle_v0_3(tmp_path_factory.mktemp("overlap") / "bundle", name=NAME)
    data = yaml.safe_load(written.descriptor.read_text())
    data["outputs"][0]["halo"] = [0 for _ in data["outputs"][0]["halo"]]  # as if its author left it out
    written.descriptor.write_text(yaml.safe_dump(data, sort_keys=False))
    return written


@pytest.fixture(scope="module")
def cells():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:96, :96]
    return (np.sin(yy / 6.0) + np.cos(xx / 4.0) * 50 + rng.normal(100, 5, (96, 96))).astype(np.float32)


def expected_output(bundle, image):
    x = ((image - image.min()) / (image.max() - image.min())).astype(np.float32)  # preprocessing.ijm
    radius = bundle.model.halo
    padded = np.pad(x, radius, mode="reflect")
    y = bundle.model.forward(padded[None, None])[0][0, 0, radius:-radius, radius:-radius]
    return 2 * y  # postprocessing.ijm


def _line(overlap):
    return (
        f'run("{COMMAND}", "model=[{NAME}] preprocessing=[preprocessing.ijm] '
        f'postprocessing=[postprocessing.ijm] patch=48 overlap={overlap} logging=normal");'
    )


def _run(session, bundle, cells, overlap):
    handler = session.commands.handlers()[COMMAND]
    handler.models_dir = bundle.folder.parent
    try:
        result = session.run_macro(_line(overlap), image={"cells.tif": cells})
    finally:
        handler.models_dir = None
    return result.images[f"{NAME}_output_cells"].values


def test_overlap_is_the_margin_of_every_patch(session, bundle, cells):
    expected = expected_output(bundle, cells)
    np.testing.assert_allclose(_run(session, bundle, cells, bundle.model.halo), expected, atol=1e-4)
    with pytest.warns(SeamWarning):  # the declared (no) halo: seams
        seams = _run(session, bundle, cells, 0)
    assert np.abs(seams - expected).max() > 1e-3


def test_the_margin_is_in_the_notes(session, bundle, cells):
    handler = session.commands.handlers()[COMMAND]
    model = handler.models.get(bundle.folder)
    from deepij.frontdoors.run_options import parse_run_options

    request = parse_run_options(f"model=[{NAME}] patch=48 overlap=4")
    prediction = handler.predict(model, cells, request, session, "cells.tif")
    assert "overlap=4 (deepImageJ 1.x) was taken as the tiles' margin" in prediction.notes
    assert any(note.startswith("tile margin {'y': 4, 'x': 4} pixels per side") for note in prediction.notes)


def test_an_overlap_that_leaves_nothing_of_the_patch_stops_the_macro(session, bundle, cells):
    with pytest.raises(MacroError, match=r"overlap=24: a margin of 24 pixels on each side leaves nothing"):
        _run(session, bundle, cells, 24)
