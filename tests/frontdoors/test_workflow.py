"""``deepij macro`` / run_workflow: a workshop macro run unchanged over a folder, its getDirectory answered by
text, calling run("DeepImageJ Run", ...) and saving its counts into the answered folder. Counts are checked
against scipy on the network output computed here with the torch module itself. ``--output``: titles that
clean alike each get their own file, a name two runs would share is refused, a file given as the folder is a
usage error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage

from deepij.errors import ArgumentError, InputError
from deepij.frontdoors.workflow import parse_answers, run_workflow
from support.bundles import write_bundle_v0_3

MODEL_NAME = "deepij test 0.3 model"
REPO = Path(__file__).resolve().parents[2]
PROMPT = "Choose the output folder"

# the DeepImageJ Run line is one line in the macro (split here only for the line limit)
WORKSHOP_MACRO = """// Exercise 3: count nuclei with a deep-learning model
// Open an image, then run this macro. The counts go into the folder you choose.
output = getDirectory("Choose the output folder");
title = getTitle();
name = replace(title, ".tif", "");
run("DeepImageJ Run", "model=[deepij test 0.3 model] format=Pytorch preprocessing=[preprocessing.ijm] \
postprocessing=[postprocessing.ijm] axes=C,Y,X tile=1,48,48 logging=normal");
setThreshold(THRESHOLD, 1e30);
run("Analyze Particles...", "display clear");
saveAs("Results", output + File.separator + name + "_nuclei.csv");
print(name + ": " + nResults + " nuclei");
"""


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workflow_models")
    write_bundle_v0_3(folder / "workshop_model", name=MODEL_NAME)
    return folder


@pytest.fixture(scope="module")
def written_model(models_dir):
    return write_bundle_v0_3(models_dir.parent / "reference_copy", name=MODEL_NAME).model


@pytest.fixture(autouse=True)
def no_default_models(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPIJ_MODELS_DIR", str(tmp_path / "empty_models"))  # models_dir must be the one used


def nuclei(seed: int, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size))
    for cy, cx in rng.uniform(8, size - 8, (12, 2)):
        image += 800 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(2, 4) ** 2))
    return (image + rng.normal(100, 20, image.shape)).astype(np.float32)


def network_output(model, image: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (the pre-processing macro), the torch forward pass on the image mirror-padded by its
    receptive radius (as tiles see it), x 2 (the post-processing macro)."""
    x = ((image - image.min()) / (image.max() - image.min())).astype(np.float32)
    r = model.halo
    y = model.forward(np.pad(x, r, mode="reflect")[None, None])[0][0, 0, r:-r, r:-r]
    return (y * 2).astype(np.float64)


def shared_threshold(outputs: list[np.ndarray]) -> float:
    """One threshold for the macro (a constant, as workshop macros have): the middle of the widest gap between
    the pixel values of all outputs near their 85th percentile, so float rounding (about 1e-7 here) cannot
    move a pixel across it."""
    values = np.unique(np.concatenate([o.ravel() for o in outputs]))
    low, high = np.searchsorted(values, np.quantile(values, [0.8, 0.9]))
    at = low + int(np.argmax(np.diff(values[low : high + 1])))
    assert values[at + 1] - values[at] > 2e-6
    return float((values[at] + values[at + 1]) / 2)


def count(output: np.ndarray, threshold: float) -> int:
    return int(ndimage.label(output >= threshold, structure=np.ones((3, 3)))[1])


@pytest.fixture
def workshop(tmp_path, written_model):
    images = {f"nuclei_{i}.tif": nuclei(i) for i in (1, 2)}
    folder = tmp_path / "images"
    folder.mkdir()
    for name, image in images.items():
        tifffile.imwrite(folder / name, image)
    outputs = {name: network_output(written_model, image) for name, image in images.items()}
    threshold = shared_threshold(list(outputs.values()))
    macro = tmp_path / "count_nuclei.ijm"
    macro.write_text(WORKSHOP_MACRO.replace("THRESHOLD", repr(threshold)))
    expected = {Path(name).stem: count(o, threshold) for name, o in outputs.items()}
    assert all(n >= 3 for n in expected.values())
    return macro, folder, expected


def test_workshop_macro_over_a_folder_with_its_prompt_answered(imagej_session, workshop, models_dir,
                                                                tmp_path):
    macro, folder, expected = workshop
    answered = tmp_path / "counts"
    answered.mkdir()
    report = run_workflow(macro, inputs=folder, models_dir=models_dir, answers={PROMPT: str(answered)},
                          session=imagej_session)
    assert [o.status for o in report.outcomes] == ["done", "done"], report.summary()
    for name, n in expected.items():
        table = pd.read_csv(answered / f"{name}_nuclei.csv")
        assert len(table) == n


def test_output_folder_gets_what_each_run_leaves(imagej_session, workshop, models_dir, tmp_path):
    macro, folder, expected = workshop
    report = run_workflow(macro, inputs=folder / "nuclei_1.tif", output=tmp_path / "out",
                          models_dir=models_dir, answers={PROMPT: str(tmp_path)}, session=imagej_session)
    (outcome,) = report.outcomes
    names = sorted(p.name for p in outcome.outputs)
    assert f"nuclei_1_{MODEL_NAME}_output_nuclei_1.tif" in names and "nuclei_1_Results.csv" in names
    assert len(pd.read_csv(tmp_path / "out" / "nuclei_1_Results.csv")) == expected["nuclei_1"]


def test_unanswered_prompt_is_quoted_with_the_answer_that_answers_it(imagej_session, workshop, models_dir):
    macro, folder, _ = workshop
    report = run_workflow(macro, inputs=folder / "nuclei_2.tif", models_dir=models_dir,
                          session=imagej_session)
    (outcome,) = report.outcomes
    assert outcome.status == "failed" and report.exit_code == 1
    assert PROMPT in outcome.error and "--answer" in outcome.error


def test_deepij_macro_command(workshop, models_dir, tmp_path):
    macro, folder, expected = workshop
    answered = tmp_path / "counts"
    answered.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "deepij.frontdoors.cli", "macro", str(macro), "--input", str(folder),
         "--models-dir", str(models_dir), "--answer", f"{PROMPT}={answered}"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # standard output is the macro's Log (its print() lines), deepij's own messages are on standard error
    assert done.stdout.splitlines() == [f"{name}: {n} nuclei" for name, n in expected.items()]
    assert done.stderr.splitlines()[-1] == "2 images: 2 done, 0 already done, 0 failed"
    for name, n in expected.items():
        assert len(pd.read_csv(answered / f"{name}_nuclei.csv")) == n

    unanswered = subprocess.run(
        [sys.executable, "-m", "deepij.frontdoors.cli", "macro", str(macro), "--input",
         str(folder / "nuclei_1.tif"), "--models-dir", str(models_dir)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert unanswered.returncode == 1
    assert PROMPT in unanswered.stderr and "--answer" in unanswered.stderr


def test_parse_answers():
    assert parse_answers(["a=b=c", "Sigma (px)=2"]) == {"a": "b=c", "Sigma (px)": "2"}
    for bad in ("no equals sign", "=value"):
        with pytest.raises(ArgumentError, match="--answer"):
            parse_answers([bad])


def test_missing_macro(tmp_path):
    with pytest.raises(ArgumentError, match="does not exist"):
        run_workflow(tmp_path / "nope.ijm")


TITLES_THAT_CLEAN_ALIKE = """
titles = newArray("a/b", "a:b", "res", "res.tif");
for (i = 0; i < titles.length; i++) {
    newImage(titles[i], "8-bit black", 8, 8, 1);
    setColor(10 * (i + 1)); fillRect(0, 0, 8, 8);
}
"""


def test_titles_that_clean_alike_are_written_to_files_of_their_own(imagej_session, tmp_path):
    macro = tmp_path / "titles.ijm"
    macro.write_text(TITLES_THAT_CLEAN_ALIKE)
    for out in (tmp_path / "out", tmp_path / "again"):
        report = run_workflow(macro, output=out, session=imagej_session)
        (outcome,) = report.outcomes
        assert outcome.status == "done", outcome.error
        values = sorted(int(tifffile.imread(p).max()) for p in outcome.outputs)
        assert values == [10, 20, 30, 40]  # four images, four files: none lost
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in outcome.outputs)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in (tmp_path / "again").iterdir())  # the same names on every run


def test_an_output_another_input_already_wrote_fails_that_run(imagej_session, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.tif", "a_b.tif"):
        tifffile.imwrite(images / name, np.full((8, 8), 5, np.uint8))
    macro = tmp_path / "rename.ijm"  # a_ + b_x and a_b_ + x: one file name for two runs
    macro.write_text('t = getTitle(); close("*");\n'
                     'if (t == "a.tif") newImage("b_x", "8-bit white", 8, 8, 1);\n'
                     'else newImage("x", "8-bit black", 8, 8, 1);\n')
    report = run_workflow(macro, inputs=images, output=tmp_path / "out", session=imagej_session)
    assert [o.status for o in report.outcomes] == ["done", "failed"]
    assert "'a_b_x.tif' is already an output of 'a.tif' in this run" in report.outcomes[1].error
    assert tifffile.imread(tmp_path / "out" / "a_b_x.tif").min() == 255  # a.tif's, kept


def test_an_output_folder_that_is_a_file(tmp_path):
    macro = tmp_path / "nothing.ijm"
    macro.write_text('print("never runs");\n')
    (tmp_path / "out.txt").write_text("a file")
    with pytest.raises(ArgumentError, match=r"output: '.*out.txt' is a file \(expected a folder deepij"):
        run_workflow(macro, output=tmp_path / "out.txt")
    done = subprocess.run(
        [sys.executable, "-m", "deepij.frontdoors.cli", "macro", str(macro), "--output",
         str(tmp_path / "out.txt")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"deepij macro: output: {str(tmp_path / 'out.txt')!r} is a file")
    assert (tmp_path / "out.txt").read_text() == "a file"


def test_a_truncated_tiff_is_reported_and_skipped_as_deepij_run_does(imagej_session, tmp_path):
    # ImageJ itself would open the cut file with zeros in its missing rows and measure it
    folder = tmp_path / "images"
    folder.mkdir()
    image = nuclei(3)
    tifffile.imwrite(folder / "a_whole.tif", image)
    whole = (folder / "a_whole.tif").read_bytes()
    (folder / "b_cut.tif").write_bytes(whole[: len(whole) // 2])
    macro = tmp_path / "measure.ijm"
    macro.write_text('getStatistics(area, mean);\nprint(getTitle() + " " + mean);\n')
    report = run_workflow(macro, inputs=folder, session=imagej_session)
    assert [o.status for o in report.outcomes] == ["done", "failed"] and report.exit_code == 1
    failed = report.outcomes[1]
    assert isinstance(failed.exception, InputError) and repr(str(folder / "b_cut.tif")) in failed.error
    assert "truncated: the pixel data of page 0" in failed.error


def test_deepij_macro_prints_the_log_as_it_comes_and_writes_it_with_output(tmp_path):
    # the macro waits for a file this test makes only once it has read the macro's first line on the
    # command's standard output: that line must come while the macro runs (the --timeout ends the wait if
    # it never comes, and the run then fails)
    folder = tmp_path / "images"
    folder.mkdir()
    image = nuclei(4)
    tifffile.imwrite(folder / "a.tif", image)
    whole = (folder / "a.tif").read_bytes()
    (folder / "b_cut.tif").write_bytes(whole[: len(whole) // 2])
    go = tmp_path / "go"
    macro = tmp_path / "wait_then_measure.ijm"
    macro.write_text(
        'title = getTitle();\nprint("opened " + title);\n'
        f'while (!File.exists("{go}")) {{ wait(20); }}\n'
        'getStatistics(area, mean);\nprint(title + " mean " + d2s(mean, 3));\n'
    )
    command = [sys.executable, "-m", "deepij.frontdoors.cli", "macro", str(macro), "--input", str(folder),
               "--output", str(tmp_path / "out"), "--timeout", "120"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        first = process.stdout.readline()
        go.touch()
        rest, errors = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 1, first + rest + errors  # b_cut.tif failed
    logged = [first.rstrip("\n"), *rest.splitlines()]
    assert len(logged) == 2 and logged[0] == "opened a.tif" and logged[1].startswith("a.tif mean ")
    assert float(logged[1].split()[-1]) == pytest.approx(image.astype(np.float64).mean(), abs=2e-3)
    assert (tmp_path / "out" / "a_Log.txt").read_text() == "\n".join(logged) + "\n"
    assert not (tmp_path / "out" / "b_cut_Log.txt").exists()  # refused before ImageJ opened it
    told = errors.splitlines()
    assert told[0].startswith("deepij macro: a.tif: done (")
    cut = str(folder / "b_cut.tif")
    assert told[1].startswith(f"deepij macro: b_cut.tif: failed: InputError: image: file {cut!r}")
    assert "truncated" in told[1]
    assert told[-1] == "2 images: 1 done, 0 already done, 1 failed"
