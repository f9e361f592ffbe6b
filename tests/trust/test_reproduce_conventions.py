"""``deepij test`` compares each file with the convention that made it (FORMATS.md section 6): a deepImageJ
example with deepImageJ's mirror-padded tiling, the spec's test tensors with the zoo's one unpadded pass.

The deepImageJ-made files come from tests/support/trust_bundles.py: deepImageJ's default tile computed by
its formula, the example mirror-padded with numpy and run through the network's own (eager torch) forward
pass, read back where deepImageJ reads it; never through deepij's tiler. The zoo's results are the same
network on the unpadded image, computed here.
"""

from __future__ import annotations

import numpy as np

import deepij
from deepij.frontdoors.cli import main
from support.trust_bundles import deepimagej_single_tile, write_deepimagej_made_bundle

TOLERANCE = 1e-3  # the zoo's default for 0.3 descriptors, no mismatch allowed


def zoo_result(bundle) -> np.ndarray:
    """The bundle's example the zoo's way: the pre-processed image through the network as it is, ``* 2``."""
    scaled = bundle.extra["scaled"]
    return (bundle.model.forward(scaled[None, None])[0][0, 0] * np.float32(2)).astype(np.float32)


def test_a_deepimagej_made_result_image_reproduces_with_deepimagej_tiling(tmp_path, imagej_session, capsys):
    bundle = write_deepimagej_made_bundle(tmp_path / "dij")
    assert bundle.extra["tile"] == (40, 40)  # ceil((32 + 2*4) / 2) * 2: one tile, 4 mirrored pixels a side
    # the convention matters at the border only: the zoo's unpadded pass differs there, and only there
    difference = np.abs(zoo_result(bundle) - bundle.extra["result"])
    halo = bundle.model.halo
    assert difference.max() > 10 * TOLERANCE
    assert difference[halo:-halo, halo:-halo].max() < 1e-5
    report = deepij.test_bundle(bundle.folder, tiled=False, session=imagej_session)
    assert report.status == "passed", report.to_text()
    example = report.cases[1]
    assert (example["kind"], example["convention"], example["alternative"]) == (
        "deepImageJ example", "deepImageJ", "zoo")
    compared = {c.expected_file: c for c in report.format("torchscript").comparisons}
    assert compared["resultImage.tif"].passed and compared["resultImage.tif"].convention == "deepImageJ"
    assert compared["resultImage.tif"].elements == 32 * 32
    assert compared["resultImage.npy"].convention == "zoo"  # the support writer's test tensors
    notes = report.format("torchscript").notes
    assert "deepImageJ example: deepImageJ's default tile y=40, x=40 (1 tile)" in notes
    code = main(["test", str(bundle.folder), "--no-tiled"])
    text = capsys.readouterr().out
    assert code == 0 and "deepImageJ example [deepImageJ]: " in text and "test tensors [zoo]: " in text


def test_deepimagej_reads_a_tile_with_an_odd_margin_back_one_pixel_early(tmp_path, imagej_session):
    bundle = write_deepimagej_made_bundle(tmp_path / "odd", example_yx=(33, 33))
    assert bundle.extra["tile"] == (42, 42)  # ceil(41 / 2) * 2: a margin of 9, the image 5 pixels in
    # read back from where the image is (5), the result would be one pixel off deepImageJ's
    scaled, forward = bundle.extra["scaled"], bundle.model.forward
    padded = np.pad(scaled, ((5, 4), (5, 4)), mode="reflect")
    from_the_image = forward(padded[None, None])[0][0, 0, 5:38, 5:38] * 2
    assert np.abs(from_the_image - bundle.extra["result"]).max() > 10 * TOLERANCE
    np.testing.assert_allclose(
        deepimagej_single_tile(forward, scaled, (42, 42)) * 2, bundle.extra["result"], atol=1e-6
    )
    report = deepij.test_bundle(bundle.folder, tiled=False, session=imagej_session)
    assert report.status == "passed", report.to_text()
    result = next(c for c in report.format("torchscript").comparisons if c.expected_file == "resultImage.tif")
    assert result.convention == "deepImageJ" and result.max_abs_error < 1e-5


def test_test_tensors_deepimagej_wrote_reproduce_under_its_convention(tmp_path, imagej_session):
    bundle = write_deepimagej_made_bundle(tmp_path / "npy", tensors_by_deepimagej=True)
    report = deepij.test_bundle(bundle.folder, tiled=False, session=imagej_session)
    assert report.status == "passed", report.to_text()
    torchscript = report.format("torchscript")
    tensors = next(c for c in torchscript.comparisons if c.expected_file == "resultImage.npy")
    assert tensors.passed and tensors.convention == "deepImageJ"
    (note,) = [n for n in torchscript.notes if "reproduced under the deepImageJ convention" in n]
    assert note.startswith("test tensors:") and "not the zoo one" in note
    assert "deepImageJ 2.x made these files" in note


def test_a_result_image_neither_convention_gives_fails(tmp_path, imagej_session):
    import tifffile

    bundle = write_deepimagej_made_bundle(tmp_path / "wrong")
    wrong = bundle.extra["result"].copy()
    wrong[0, 0] += 0.5  # a corner pixel: off under both conventions
    tifffile.imwrite(bundle.folder / "resultImage.tif", wrong, imagej=True)
    report = deepij.test_bundle(bundle.folder, tiled=False, session=imagej_session)
    assert report.status == "failed"
    torchscript = report.format("torchscript")
    result = next(c for c in torchscript.comparisons if c.expected_file == "resultImage.tif")
    assert not result.passed and result.convention == "deepImageJ" and result.mismatched == 1
    assert result.worst[0].position == {"y": 0, "x": 0}
    assert any("the zoo convention" in n and "does not reproduce the files either" in n
               for n in torchscript.notes)
