"""run("DeepImageJ Run", ...) in users' macros, in each dialect, on the real ImageJ: the macro goes on to
measure the output the way workshop macros do (threshold, Analyze Particles, nResults), and the count is
checked against scipy on the network output computed here with the torch module itself."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from deepij.errors import CommandNotFoundError, MacroError
from deepij.frontdoors.deepimagej_run import COMMAND, DeepImageJRun
from support.bundles import write_bundle_v0_3
from support.dij_bundles import FAILING_MACRO, write_segmentation_bundle_v0_3

MODEL_NAME = "deepij test 0.3 model"
SIZE = 96
TILE = 48


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frontdoor_models")
    write_bundle_v0_3(folder / "old_bundle", name=MODEL_NAME)
    return folder


@pytest.fixture(scope="module")
def bundle(models_dir):
    return write_bundle_v0_3(models_dir.parent / "same_bundle_outside", name=MODEL_NAME)


@pytest.fixture(autouse=True)
def installed(models_dir, monkeypatch):
    monkeypatch.setenv("DEEPIJ_MODELS_DIR", str(models_dir))


@pytest.fixture(scope="module")
def cells():
    """Bright blobs on a noisy background: after the network, thresholding gives separate particles."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    image = np.zeros((SIZE, SIZE))
    for cy, cx in rng.uniform(8, SIZE - 8, (14, 2)):
        image += 800 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(2, 4) ** 2))
    return (image + rng.normal(100, 20, image.shape)).astype(np.float32)


def network_output(bundle, image: np.ndarray, *, mirrored: bool) -> np.ndarray:
    """What the bundle computes, done here: its pre-processing macro's formula (min-max to [0, 1]), the torch
    module's forward pass, its post-processing macro's formula (x 2).

    ``mirrored``: as tiles see the image (mirror-padded by the receptive radius, which the bundle declares as
    its halo, so every tile's valid part is exact); else one pass on the image as it is.
    """
    x = ((image - image.min()) / (image.max() - image.min())).astype(np.float32)
    radius = bundle.model.halo
    if mirrored:
        x = np.pad(x, radius, mode="reflect")  # deepImageJ's mirroring: the edge pixel is not repeated
    y = bundle.model.forward(x[None, None])[0][0, 0]
    if mirrored:
        y = y[radius:-radius, radius:-radius]
    return (y * 2).astype(np.float64)


def threshold_and_count(output: np.ndarray) -> tuple[float, int]:
    """A threshold in a wide gap between pixel values (so float rounding cannot move a pixel across it)
    near the 85th percentile, and the number of 8-connected particles above it, as Analyze Particles traces
    them."""
    values = np.unique(output)
    low, high = np.searchsorted(values, np.quantile(output, [0.8, 0.9]))
    gaps = np.diff(values[low : high + 1])
    at = low + int(np.argmax(gaps))
    threshold = float((values[at] + values[at + 1]) / 2)
    _, count = ndimage.label(output >= threshold, structure=np.ones((3, 3)))
    assert count >= 3  # a meaningful test: several particles
    return threshold, count


MEASURE = """
selectImage("{title}");
setThreshold({threshold}, 1e30);
run("Analyze Particles...", "display clear");
return "" + nResults;
"""


def test_every_session_serves_the_command(session):
    assert isinstance(session.commands.handlers()[COMMAND], DeepImageJRun)


def test_two_x_line_then_particles_on_the_output(session, bundle, cells):
    threshold, count = threshold_and_count(network_output(bundle, cells, mirrored=True))
    macro = (
        f'run("{COMMAND}", "model=[{MODEL_NAME}] format=Pytorch preprocessing=[preprocessing.ijm] '
        f'postprocessing=[postprocessing.ijm] axes=C,Y,X tile=1,{TILE},{TILE} logging=normal");'
        + MEASURE.format(title=f"{MODEL_NAME}_output_cells", threshold=threshold)
    )
    result = session.run_macro(macro, image={"cells.tif": cells})
    assert int(result.value) == count
    assert result.tables["Results"].shape[0] == count


def test_one_x_line(session, bundle, cells):
    threshold, count = threshold_and_count(network_output(bundle, cells, mirrored=True))
    macro = (
        f'run("{COMMAND}", "model=[{MODEL_NAME}] preprocessing=[preprocessing.ijm] '
        f'postprocessing=[postprocessing.ijm] patch={TILE} overlap=4 logging=mute");'
        + MEASURE.format(title=f"{MODEL_NAME}_output_cells", threshold=threshold)
    )
    assert int(session.run_macro(macro, image={"cells": cells}).value) == count


def test_three_one_line_on_a_folder(session, bundle, cells, tmp_path):
    # 3.1 runs on files and writes the outputs; the macro opens what was written and measures it
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "cells.tif", cells)
    tifffile.imwrite(tmp_path / "in" / "flipped.tif", cells[::-1].copy())
    threshold, count = threshold_and_count(network_output(bundle, cells, mirrored=False))
    out = tmp_path / "out"
    macro = (
        f'run("{COMMAND}", "modelPath=[{bundle.folder}] inputPath=[{tmp_path / "in"}] outputFolder=[{out}] '
        'displayOutput=false");'
        f'open("{out}/cells_output.tif");'
        + MEASURE.format(title="cells_output.tif", threshold=threshold)
    )
    result = session.run_macro(macro)
    assert int(result.value) == count
    assert sorted(p.name for p in out.glob("*.tif")) == ["cells_output.tif", "flipped_output.tif"]
    np.testing.assert_allclose(
        np.squeeze(tifffile.imread(out / "flipped_output.tif")),
        network_output(bundle, cells[::-1].copy(), mirrored=False), atol=1e-4,
    )


def test_three_one_refuses_a_folder_with_a_truncated_tiff_before_running_any(session, bundle, cells,
                                                                              tmp_path):
    # the check of deepij run: the truncated file is named, and no file of the call was run
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a_cells.tif", cells)
    tifffile.imwrite(tmp_path / "whole.tif", cells[::-1].copy())
    whole = (tmp_path / "whole.tif").read_bytes()
    (tmp_path / "in" / "b_cut.tif").write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    macro = (
        'print("before");\n'
        f'run("{COMMAND}", "model_path=[{bundle.folder}] input_path=[{tmp_path / "in"}] '
        f'output_folder=[{out}] display_output=false");\nprint("after");'
    )
    with pytest.raises(MacroError) as caught:
        session.run_macro(macro)
    message = str(caught.value)
    assert caught.value.line == 2 and "1 of 2 files cannot be read" in message
    assert repr(str(tmp_path / "in" / "b_cut.tif")) in message and "truncated" in message
    assert not out.exists() or not any(out.iterdir())


def test_the_model_stays_loaded_between_calls(session, models_dir, cells):
    handler = session.commands.handlers()[COMMAND]
    handler.models.clear()
    line = f'run("{COMMAND}", "model=[{MODEL_NAME}] format=Pytorch axes=C,Y,X tile=1,{TILE},{TILE}");'
    session.run_macro(line, image=cells)
    (model,) = list(handler.models._models.values())
    session.run_macro(line + "\n" + line, image=cells)
    assert list(handler.models._models.values()) == [model]
    assert len(model._backends) == 1


def test_outputs_are_where_the_macro_looks(session, cells):
    macro = (
        f'run("{COMMAND}", "model=[{MODEL_NAME}] format=Pytorch preprocessing=[preprocessing.ijm] '
        f'postprocessing=[postprocessing.ijm] axes=C,Y,X tile=1,{TILE},{TILE} logging=normal");'
        'output = getTitle();\nselectImage("my cells.tif");\nreturn output + "|" + getWidth();'
    )
    result = session.run_macro(macro, image={"my cells.tif": cells})
    # the output is the current image, titled as deepImageJ titles it; the input is still open
    assert result.value == f"{MODEL_NAME}_output_my cells|{SIZE}"
    assert result.images[f"{MODEL_NAME}_output_my cells"].shape == (SIZE, SIZE)


def test_no_image_open(session):
    with pytest.raises(MacroError, match="there is no image open"):
        session.run_macro(f'run("{COMMAND}", "model=[{MODEL_NAME}] format=Pytorch");')


def test_unknown_model_names_where_it_looked(session, models_dir, cells):
    with pytest.raises(MacroError, match=r"model=\[No Such Model\]: not found; looked in") as caught:
        session.run_macro(f'run("{COMMAND}", "model=[No Such Model] format=Pytorch");', image=cells)
    assert str(models_dir) in str(caught.value) and caught.value.line == 1


def test_contradictory_options_stop_the_macro_at_that_line(session, cells):
    line = f'run("{COMMAND}", "model=[{MODEL_NAME}] tile=1,48,48 patch=48");'
    macro = f'print("before");\n{line}\nprint("after");'
    with pytest.raises(MacroError, match="patch=") as caught:
        session.run_macro(macro, image=cells)
    assert caught.value.line == 2


FAILURES_ON_LINE_3 = {  # a bundle's pre-processing macro failing on its line 3, three ways ImageJ reports it
    "interpreter error": (FAILING_MACRO, MacroError, "Undefined variable", "undefinedVariable"),
    "error box": ('// opens a file that is not there\nrun("32-bit");\nopen("/nonexistent/deepij/a.tif");\n',
                  MacroError, "File not found", 'open("/nonexistent/deepij/a.tif");'),
    "missing command": ('// a Fiji plugin\nrun("32-bit");\nrun("Morphological Filters", "radius=2");\n',
                        CommandNotFoundError, 'Unrecognized command: "Morphological Filters"', "MorphoLibJ"),
}


@pytest.mark.parametrize("kind", FAILURES_ON_LINE_3)
def test_an_error_in_a_bundle_macro_names_that_macro_and_the_calling_line(session, cells, tmp_path, kind):
    pre_macro, error_type, says, shows = FAILURES_ON_LINE_3[kind]
    bundle = write_segmentation_bundle_v0_3(tmp_path / "bundle", pre_macro=pre_macro, post_macro=None)
    user_macro = tmp_path / "analyse.ijm"
    call = f'run("{COMMAND}", "model_path=[{bundle.folder}] format=Pytorch");'
    user_macro.write_text(f'// my analysis\nprint("start");\nw = getWidth();\nh = getHeight();\n{call}\n')
    with pytest.raises(error_type) as caught:
        session.run_macro(user_macro, image=cells)
    error = caught.value
    assert error.source == str(bundle.folder / "per_sample_scale_range.ijm") and error.line == 3
    assert str(error).startswith(f"{bundle.folder / 'per_sample_scale_range.ijm'}, line 3: ")
    assert says in str(error) and shows in str(error)
    assert str(error).endswith(f"(called from {user_macro}, line 5: {call})")
    if kind == "missing command":
        assert error.command == "Morphological Filters" and error.component == "MorphoLibJ"
    assert session.run_macro('print("next");').log.strip() == "next"  # the session goes on
