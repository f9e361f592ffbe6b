"""``deepij validate``: images on different scales are said to be, and an output that is a file is refused
with a clear error (API, ``deepij validate`` in a subprocess, ``run("DeepImageJ Validate", ...)`` in the
real ImageJ). Expected values come from scikit-image and numpy computed here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import metrics as skmetrics

import deepij
from deepij.errors import ArgumentError, MacroError

REPO = Path(__file__).resolve().parents[2]


def cells(seed: int, shape: tuple[int, ...] = (40, 48)) -> tuple[np.ndarray, np.ndarray]:
    """A smooth 'ground truth' and a noisy 'prediction' of it (float32, as networks write them)."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    truth = 50 + 40 * np.prod([np.sin((g + 3) / (4.0 + i)) for i, g in enumerate(grid)], axis=0)
    return truth.astype(np.float32), (truth + rng.normal(0, 4, shape)).astype(np.float32)


def deepij_command(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepij.frontdoors.cli", "validate", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})


def scaled_pair() -> tuple[np.ndarray, np.ndarray]:
    """A 0..255 reference and a 0..1 prediction of it: the same picture on two scales."""
    truth, prediction = cells(11, (48, 48))
    low, high = truth.min(), truth.max()
    reference = ((truth - low) / (high - low) * 255).astype(np.float32)
    return reference, np.clip((prediction - low) / (high - low), 0, 1).astype(np.float32)


# --- different scales -------------------------------------------------------------------------------------


def test_a_0_255_reference_against_a_0_1_test_is_noted(tmp_path):
    reference, test = scaled_pair()
    result = deepij.validate(reference, test, metrics=["SSIM", "RMSE"])
    expected = skmetrics.structural_similarity(
        reference.astype(np.float64), test.astype(np.float64), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=float(np.ptp(reference)))
    assert result.table.loc[0, "SSIM"] == pytest.approx(expected, abs=1e-9) and expected < 0.05
    (note,) = result.notes
    assert note.startswith("reference and test arrays: the reference's values span 0 to 255, the test's ")
    assert "times less" in note and "different scales" in note and "the reference by about 1/" in note
    assert list(result.table.columns) == ["reference", "test", "SSIM", "RMSE", "note"]
    assert result.table.loc[0, "note"].startswith("scales differ: reference 0..255, test ")
    result.save(tmp_path / "report")
    saved = pd.read_csv(tmp_path / "report" / "validation.csv")
    assert saved.loc[0, "note"] == result.table.loc[0, "note"]
    document = json.loads((tmp_path / "report" / "validation.json").read_text())
    assert document["notes"] == [note] and document["metrics"][0]["note"] == saved.loc[0, "note"]


def test_images_on_one_scale_get_no_note_and_no_column():
    truth, prediction = cells(12)
    result = deepij.validate(truth, prediction, metrics=["SSIM"])
    assert result.notes == [] and list(result.table.columns) == ["reference", "test", "SSIM"]
    # label metrics compare labels, not intensities: no note either
    labels = deepij.validate(np.array([[0, 255, 255]]), np.array([[0, 1, 1]]), metrics="labels")
    assert "note" not in labels.table.columns


def test_the_cli_prints_the_scale_note(tmp_path):
    reference, test = scaled_pair()
    tifffile.imwrite(tmp_path / "reference.tif", reference)
    tifffile.imwrite(tmp_path / "test.tif", test)
    done = deepij_command(tmp_path / "reference.tif", tmp_path / "test.tif", "--metrics", "ssim",
                          "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "the reference's values span 0 to 255" in done.stderr and "different scales" in done.stderr
    (row,) = json.loads(done.stdout)
    assert row["note"].startswith("scales differ")


def test_the_macro_command_notes_the_scales_in_the_table_and_the_log(imagej_session):
    reference, test = scaled_pair()
    macro = (
        'run("DeepImageJ Validate", "reference=truth test=prediction ssim");\n'
        'return "" + Table.getString("note", 0, "Loss");'
    )
    result = imagej_session.run_macro(macro, image={"truth": reference, "prediction": test})
    assert result.value.startswith("scales differ: reference 0..255")
    assert "different scales" in result.log


# --- outputs that are files -------------------------------------------------------------------------------


def test_saving_into_a_file_is_a_clear_error(tmp_path):
    truth, prediction = cells(13)
    existing = tmp_path / "report.csv"
    existing.write_text("keep me")
    result = deepij.validate(truth, prediction, metrics="RMSE")
    with pytest.raises(ArgumentError, match=r"folder: '.*report\.csv' is a file \(expected a folder"):
        result.save(existing)
    with pytest.raises(ArgumentError, match=r"figures: '.*report\.csv' is a file"):
        deepij.validate(truth, prediction, metrics="RMSE", figures=existing)
    with pytest.raises(ArgumentError, match=r"'.*report\.csv' is a file \(in the way of"):
        result.save(existing / "inside")
    assert existing.read_text() == "keep me"


def test_the_cli_refuses_an_output_that_is_a_file_before_measuring(tmp_path):
    truth, prediction = cells(14)
    tifffile.imwrite(tmp_path / "reference.tif", truth)
    tifffile.imwrite(tmp_path / "test.tif", prediction)
    (tmp_path / "report").write_text("keep me")
    done = deepij_command(tmp_path / "reference.tif", tmp_path / "test.tif", "--output", tmp_path / "report")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"--output: '{tmp_path / 'report'}' is a file (expected a folder to write into)" in done.stderr
    assert done.stdout == ""  # refused before anything was measured
    done = deepij_command(tmp_path / "reference.tif", tmp_path / "test.tif", "--figures", tmp_path / "report")
    assert done.returncode == 2 and "figures: " in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "report").read_text() == "keep me"


def test_the_macro_command_stops_at_a_save_that_is_a_file(imagej_session, tmp_path):
    truth, prediction = cells(15, (16, 16))
    (tmp_path / "report").write_text("keep me")
    macro = f'run("DeepImageJ Validate", "reference=a test=b rmse save=[{tmp_path / "report"}]");'
    with pytest.raises(MacroError, match="is a file"):
        imagej_session.run_macro(macro, image={"a": truth, "b": prediction})
    assert (tmp_path / "report").read_text() == "keep me"
