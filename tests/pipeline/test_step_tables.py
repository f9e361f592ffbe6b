"""Tables between ImageJ processing steps, as in deepImageJ's one ImageJ: a pre-processing macro's Results is
there for the next macro, and a post-processing macro reads the network's table output, shown as the table
deepImageJ titles ``<model name>_<output name>_<input title without extension>``.

Expected values come from numpy on the input (the statistics ImageJ's Measure and the network compute) and
from the network module run here; the macros are written the way bundle authors write them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from deepij.bundle.description import (
    AxisSpec,
    DeepImageJConfig,
    FixedSize,
    ImageJStep,
    TensorSpec,
    WeightsEntry,
)
from deepij.errors import StepError
from deepij.pipeline import Model
from support.models import describe, write_torchscript_convnet

RNG = np.random.default_rng(21)
MEASURE_MEAN = """// step 1: measure the image's mean into the Results table
run("Set Measurements...", "mean redirect=None decimal=9");
run("Measure");
"""
SUBTRACT_MEASURED_MEAN = """// step 2: subtract the mean step 1 measured (read from the Results table)
run("32-bit");
mean = getResult("Mean", nResults - 1);
run("Subtract...", "value=" + mean);
"""
NAMED_TABLE_STEP = """// step 1 leaves a named table too
Table.create("plate layout");
Table.set("well", 0, "B2");
Table.set("dilution", 0, 4);
Table.update("plate layout");
"""
USE_NAMED_TABLE = """// step 2 reads it
dilution = Table.get("dilution", 0, "plate layout");
run("32-bit");
run("Multiply...", "value=" + dilution);
"""


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return write_torchscript_convnet(tmp_path_factory.mktemp("net") / "net.pt")


def _with_steps(net, name, macros, pre=(), post=()):
    """``net`` described with macro steps (``macros``: file name -> code, written next to the weights)."""
    for file_name, text in macros.items():
        (net.path.parent / file_name).write_text(text)
    config = DeepImageJConfig(
        preprocess=tuple(ImageJStep("macro", f) for f in pre),
        postprocess=tuple(ImageJStep("macro", f) for f in post),
    )
    return Model(describe(net, name=name, deepimagej=config))


def test_results_of_one_pre_step_are_the_next_steps_results(net, imagej_session):
    macros = {"measure mean.ijm": MEASURE_MEAN, "subtract mean.ijm": SUBTRACT_MEASURED_MEAN}
    model = _with_steps(net, "measure then subtract", macros, pre=tuple(macros))
    image = (RNG.random((40, 48)) * 300 + 20).astype(np.float32)
    result = model.predict(image, session=imagej_session, runtime="native", tile="image")
    centred = (image - image.astype(np.float64).mean()).astype(np.float32)
    expected = net.forward(centred[None, None])[0]
    np.testing.assert_allclose(result.images["output"].values, expected, atol=1e-4)
    # the Results the steps left open is an output, as ImageJ shows it at the end
    assert result.tables["Results"]["Mean"].iloc[-1] == pytest.approx(image.astype(np.float64).mean())
    assert result.provenance["steps"] == ["pre 1: macro measure mean.ijm", "pre 2: macro subtract mean.ijm"]


def test_a_named_table_of_one_step_is_there_for_the_next(net, imagej_session):
    macros = {"layout.ijm": NAMED_TABLE_STEP, "use layout.ijm": USE_NAMED_TABLE}
    model = _with_steps(net, "named table", macros, pre=tuple(macros))
    image = RNG.random((32, 32)).astype(np.float32)
    result = model.predict(image, session=imagej_session, runtime="native", tile="image")
    np.testing.assert_allclose(result.images["output"].values, net.forward((4 * image)[None, None])[0],
                               atol=1e-4)
    assert result.tables["plate layout"].to_dict("list") == {"well": ["B2"], "dilution": [4.0]}


def test_without_the_carried_table_the_second_step_fails(net, imagej_session):
    # the second step alone: nothing measured, so its getResult fails (the test above needs the carry). It
    # once read the table the test above left instead: ImageJ's getResult falls back to the front table,
    # and a late activation of that (closed) table window had made it the front one again; cleaning ImageJ
    # now drops such references (tests/imagej/test_macros.py shows it with the activation done by hand)
    macros = {"subtract mean.ijm": SUBTRACT_MEASURED_MEAN}
    model = _with_steps(net, "subtract only", macros, pre=tuple(macros))
    with pytest.raises(StepError, match=r"subtract mean.ijm\).*No results found"):
        model.predict(np.ones((32, 32), np.float32), session=imagej_session, runtime="native")


# --- the network's image output in post-processing macros, under deepImageJ's title ----------------------

SELECT_OUTPUT_BY_TITLE = """// post-processing for deepImageJ: select the output by its deepImageJ title
selectWindow("titled model_output_plate 3");
run("Add...", "value=100");
Table.create("seen");
Table.set("title", 0, getTitle());
Table.set("bare name open", 0, isOpen("output"));
Table.update("seen");
run("Duplicate...", "title=output");
"""


def test_a_post_macro_selects_the_network_output_by_its_deepimagej_title(net, imagej_session):
    model = _with_steps(net, "titled model", {"select output.ijm": SELECT_OUTPUT_BY_TITLE},
                        post=("select output.ijm",))
    image = RNG.random((32, 40)).astype(np.float32)
    result = model.predict(image, session=imagej_session, runtime="native", input_title="plate 3.tif")
    network = net.forward(image[None, None])[0]
    output = result.images["output"]
    np.testing.assert_allclose(np.squeeze(output.values), np.squeeze(network) + 100, atol=1e-4)
    assert output.name == "output"
    seen = result.tables["seen"]
    assert seen["title"].tolist() == ["titled model_output_plate 3"]
    assert seen["bare name open"].tolist() == [0.0]  # deepImageJ has no image titled just "output"
    # an image the macro titled with the bare output name is another image, not the network's output
    np.testing.assert_allclose(np.squeeze(result.images["output (2)"].values), np.squeeze(output.values))
    assert result.title("output") == "titled model_output_plate 3"  # the final title, as before


# --- the network's table output in post-processing macros ---------------------------------------------------

STATS_MODEL_NAME = "stats model"
USE_NETWORK_TABLE = """// post-processing: subtract the mean the network reported in its table output
stats = "stats model_stats_{stem}";
mean = Table.get("value", 0, stats);
rows = Table.size(stats);
run("Subtract...", "value=" + mean);
setResult("network mean", 0, mean);
setResult("rows", 0, rows);
updateResults();
"""


@pytest.fixture(scope="module")
def stats_model(tmp_path_factory):
    """A network with an image output (``doubled``: 2x) and a table output (``stats``: mean, max, min of the
    input), and a post-processing macro that uses the table."""
    import torch

    folder = tmp_path_factory.mktemp("stats")

    class DoubleAndStats(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            stats = torch.stack([x.mean((1, 2, 3)), x.amax((1, 2, 3)), x.amin((1, 2, 3))], dim=1)
            return x * 2, stats[:, :, None]

    torch.jit.script(DoubleAndStats()).save(str(folder / "stats.pt"))
    image_net = write_torchscript_convnet(folder / "shape_donor.pt")
    description = describe(image_net, name=STATS_MODEL_NAME)
    doubled = replace(description.outputs[0], name="doubled")
    stats = TensorSpec(
        "stats",
        (AxisSpec("b"), AxisSpec("i", FixedSize(3)), AxisSpec("c", FixedSize(1), channel_names=("value",))),
    )
    (folder / "use stats cells.ijm").write_text(USE_NETWORK_TABLE.format(stem="cells"))
    return lambda stem: Model(
        replace(
            description,
            outputs=(doubled, stats),
            weights={"torchscript": WeightsEntry("torchscript", "stats.pt")},
            deepimagej=DeepImageJConfig(postprocess=(ImageJStep("macro", f"use stats {stem}.ijm"),)),
        )
    )


def _check_stats_run(result, image):
    mean = float(image.astype(np.float64).mean())
    np.testing.assert_allclose(np.squeeze(result.images["doubled"].values), 2 * image - mean, atol=1e-4)
    assert result.tables["Results"]["network mean"].iloc[0] == pytest.approx(mean, rel=1e-6)
    assert result.tables["Results"]["rows"].iloc[0] == 3
    np.testing.assert_allclose(result.tables["stats"]["value"], [mean, image.max(), image.min()], rtol=1e-6)


def test_a_post_macro_reads_the_network_table_output(stats_model, imagej_session):
    image = RNG.random((30, 36)).astype(np.float32)
    model = stats_model("cells")
    result = model.predict(image, session=imagej_session, runtime="native", input_title="cells.tif")
    _check_stats_run(result, image)


def test_a_post_macro_reads_it_when_the_run_is_served_inside_a_macro(stats_model, imagej_session):
    # how run("DeepImageJ Run", ...) runs: the steps nested in the calling macro
    image = RNG.random((30, 36)).astype(np.float32)
    model = stats_model("cells")
    results = []

    def handler(call):
        results.append(model.predict(call.image, session=call.session, runtime="native"))
        results[-1].show(call.session, input_title=str(call.image.getTitle()))

    imagej_session.commands.register("deepij test stats", handler)
    try:
        done = imagej_session.run_macro(
            'run("deepij test stats"); return "" + Table.size("stats model_stats_cells") + " " + nImages;',
            image={"cells.tif": image},
        )
    finally:
        imagej_session.commands.unregister("deepij test stats")
    _check_stats_run(results[0], image)
    assert done.value == "3 2"  # the network's table under deepImageJ's title; the input and "doubled"
