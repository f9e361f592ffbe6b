"""deepij.validate on arrays, files and folders of pairs; its CSV, JSON and PNG; ``deepij validate`` in a
subprocess; and ``run("DeepImageJ Validate", ...)`` in a macro on the real ImageJ. Expected values come
from scikit-image, numpy and scipy computed here, never from deepij's own metrics."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy.spatial import distance
from skimage import metrics as skmetrics

import deepij
from deepij.errors import ArgumentError, InputError, MacroError

REPO = Path(__file__).resolve().parents[2]


def gaussian_ssim(reference: np.ndarray, test: np.ndarray, data_range: float | None = None) -> float:
    spread = data_range if data_range is not None else float(reference.max() - reference.min())
    return float(skmetrics.structural_similarity(reference, test, gaussian_weights=True, sigma=1.5,
                                                 use_sample_covariance=False, data_range=spread))


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    return float(skmetrics.peak_signal_noise_ratio(reference, test, data_range=reference.max()))


def rmse(reference: np.ndarray, test: np.ndarray) -> float:
    return math.sqrt(skmetrics.mean_squared_error(reference, test))


def cells(seed: int, shape: tuple[int, ...] = (40, 48)) -> tuple[np.ndarray, np.ndarray]:
    """A smooth 'ground truth' and a noisy 'prediction' of it (float32, as networks write them)."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    truth = 50 + 40 * np.prod([np.sin((g + 3) / (4.0 + i)) for i, g in enumerate(grid)], axis=0)
    return truth.astype(np.float32), (truth + rng.normal(0, 4, shape)).astype(np.float32)


def as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64)


# --- arrays -------------------------------------------------------------------------------------------------


def test_two_arrays_give_one_row_of_every_image_metric():
    truth, prediction = cells(1)
    result = deepij.validate(truth, prediction)
    assert len(result.table) == 1
    assert list(result.table.columns[:2]) == ["reference", "test"]
    row = result.table.iloc[0]
    assert row["SSIM"] == pytest.approx(gaussian_ssim(as_float(truth), as_float(prediction)))
    assert row["PSNR"] == pytest.approx(psnr(as_float(truth), as_float(prediction)))
    assert row["RMSE"] == pytest.approx(rmse(as_float(truth), as_float(prediction)))
    assert row["NormL1"] == pytest.approx(np.abs(as_float(prediction) - truth).sum())
    # outside [0, 1]: BCE and KLD cannot be computed, and the notes say why
    assert math.isnan(row["BCE"]) and math.isnan(row["KLD"])
    assert any("BCE: reference values must be in [0, 1]" in note for note in result.notes)


def test_a_stack_as_one_volume_and_per_slice():
    truth, prediction = cells(2, (12, 30, 32))
    reference, test = as_float(truth), as_float(prediction)
    volume = deepij.validate(truth, prediction, metrics=["SSIM", "PSNR"])
    assert volume.table.loc[0, "SSIM"] == pytest.approx(gaussian_ssim(reference, test))
    planes = deepij.validate(truth, prediction, metrics=["ssim", "psnr"], per_slice=True)
    assert planes.table["slice"].tolist() == list(range(1, 13))
    for plane in range(12):
        row = planes.table.iloc[plane]
        assert row["SSIM"] == pytest.approx(gaussian_ssim(reference[plane], test[plane]))
        assert row["PSNR"] == pytest.approx(psnr(reference[plane], test[plane]))


def test_label_images():
    reference = np.zeros((32, 32), np.uint16)
    reference[2:12, 2:12] = 1
    reference[16:30, 16:30] = 2
    test = np.zeros_like(reference)
    test[3:13, 2:12] = 1  # shifted by one row: IoU 90 / 110
    test[16:22, 16:30] = 5  # less than half of object 2: no match
    result = deepij.validate(reference, test, metrics="labels")
    row = result.table.iloc[0]
    assert (row["TP"], row["FP"], row["FN"]) == (1, 1, 1)
    assert row["Mean_matched_IoU"] == pytest.approx(90 / 110)
    assert row["F1"] == pytest.approx(2 / 4)
    per_label = result.per_label.set_index("label")
    for label in (1, 2, 5):
        a, b = (reference == label).ravel(), (test == label).ravel()
        assert per_label.loc[label, "Dice"] == pytest.approx(1 - distance.dice(a, b))


# --- files and folders --------------------------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path):
    """deepij run's way of naming outputs: cells_a.tif -> cells_a_output.tif; one pair as .npy."""
    reference, test = tmp_path / "truth", tmp_path / "predicted"
    reference.mkdir()
    test.mkdir()
    expected = {}
    for seed, name in enumerate(("cells_a", "cells_b", "cells_c")):
        truth, prediction = cells(seed + 10)
        if name == "cells_c":
            np.save(reference / f"{name}.npy", truth)
        else:
            tifffile.imwrite(reference / f"{name}.tif", truth, imagej=True)
        tifffile.imwrite(test / f"{name}_output.tif", prediction[None], imagej=True)  # a 1-plane stack
        expected[name] = (as_float(truth), as_float(prediction))
    return reference, test, expected


def test_folders_are_paired_by_name(folders, tmp_path):
    reference, test, expected = folders
    result = deepij.validate(reference, test, metrics=["SSIM", "RMSE"], test_suffix="_output",
                             figures=tmp_path / "figures")
    assert result.table["reference"].tolist() == ["cells_a.tif", "cells_b.tif", "cells_c.npy"]
    assert result.table["test"].tolist() == [f"cells_{x}_output.tif" for x in "abc"]
    for (name, (truth, prediction)), (_, row) in zip(expected.items(), result.table.iterrows(), strict=True):
        assert row["SSIM"] == pytest.approx(gaussian_ssim(truth, prediction), abs=1e-6), name
        assert row["RMSE"] == pytest.approx(rmse(truth, prediction), rel=1e-6), name
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [f"cells_{x}.png" for x in "abc"]


def test_two_files(folders):
    reference, test, expected = folders
    result = deepij.validate(reference / "cells_b.tif", test / "cells_b_output.tif", metrics="PSNR")
    assert result.table.loc[0, "PSNR"] == pytest.approx(psnr(*expected["cells_b"]), rel=1e-6)


def test_saved_csv_and_json(folders, tmp_path):
    truth = folders[2]["cells_a"][0]
    result = deepij.validate(truth, truth, metrics=["RMSE", "SNR"])  # identical: SNR is infinite
    written = result.save(tmp_path / "report")
    assert [p.name for p in written] == ["validation.csv", "validation.json"]
    table = pd.read_csv(tmp_path / "report" / "validation.csv")
    assert table.loc[0, "RMSE"] == 0.0 and table.loc[0, "SNR"] == math.inf
    document = json.loads((tmp_path / "report" / "validation.json").read_text())
    assert document["metrics"] == [{"reference": "reference", "test": "test", "RMSE": 0.0, "SNR": "inf"}]
    labels = deepij.validate(np.array([[0, 1, 1]]), np.array([[0, 1, 0]]), metrics="labels")
    names = [p.name for p in labels.save(tmp_path / "labels")]
    assert names == ["validation.csv", "validation.json", "validation_labels.csv"]
    assert json.loads((tmp_path / "labels" / "validation.json").read_text())["per_label"][0]["Dice"] == 2 / 3
    assert not list((tmp_path / "report").glob(".*"))  # nothing half-written left behind


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_figures_are_pngs_of_a_sane_size(tmp_path):
    truth, prediction = cells(3, (6, 64, 64))
    result = deepij.validate(truth, prediction)
    width, height = png_size(result.figure(tmp_path / "stack.png"))
    assert 1200 <= width <= 2400 and 300 <= height <= 800
    masks = (truth > 50).astype(np.uint8), (prediction > 50).astype(np.uint8)
    labels = deepij.validate(*masks, metrics="labels")
    width, height = png_size(labels.figure(tmp_path / "labels.png"))
    assert 1200 <= width <= 2400 and 300 <= height <= 800
    assert (tmp_path / "stack.png").stat().st_size > 20_000  # pictures, not an empty canvas


# --- what is refused ----------------------------------------------------------------------------------------


def test_shapes_that_differ_name_both_files(folders):
    reference, test, _ = folders
    tifffile.imwrite(test / "small.tif", np.zeros((10, 10), np.float32))
    expected = r"'.*small\.tif' has shape \(10, 10\), the reference '.*cells_a\.tif' has \(40, 48\)"
    with pytest.raises(InputError, match=expected):
        deepij.validate(reference / "cells_a.tif", test / "small.tif")


def test_unmatched_names_are_listed(folders):
    reference, test, _ = folders
    listed = r"no test image in .* for cells_a\.tif, cells_b\.tif, cells_c\.npy"
    with pytest.raises(ArgumentError, match=listed):
        deepij.validate(reference, test)  # without the suffix, no name matches
    (test / "cells_a_output.tif").unlink()
    with pytest.raises(ArgumentError, match=r"unmatched images: no test image in .* for cells_a\.tif"):
        deepij.validate(reference, test, test_suffix="_output")


def test_empty_folders_and_missing_paths(tmp_path, folders):
    reference, _, _ = folders
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArgumentError, match=r"test: folder '.*empty' holds no image file"):
        deepij.validate(reference, tmp_path / "empty")
    with pytest.raises(ArgumentError, match=r"reference: '.*nowhere' does not exist"):
        deepij.validate(tmp_path / "nowhere", reference)
    with pytest.raises(ArgumentError, match=r"is a file but the reference .* is a folder"):
        deepij.validate(reference, reference / "cells_a.tif")
    with pytest.raises(ArgumentError, match="unknown metric 'SIMM'"):
        deepij.validate(np.zeros((4, 4)), np.zeros((4, 4)), metrics=["SIMM"])


def test_label_images_must_be_integer(tmp_path):
    tifffile.imwrite(tmp_path / "mask.tif", np.array([[0, 1], [1, 0]], np.uint8))
    tifffile.imwrite(tmp_path / "probability.tif", np.array([[0.1, 0.9], [0.7, 0.2]], np.float32))
    with pytest.raises(InputError, match=r"test '.*probability\.tif'.*a label image must hold whole numbers"):
        deepij.validate(tmp_path / "mask.tif", tmp_path / "probability.tif", metrics="labels")


def test_non_finite_pixels_and_wrong_dimensions(tmp_path):
    broken = np.ones((8, 8), np.float32)
    broken[2, 2] = np.nan
    np.save(tmp_path / "broken.npy", broken)
    np.save(tmp_path / "good.npy", np.ones((8, 8), np.float32))
    with pytest.raises(InputError, match=r"'.*broken\.npy' holds NaN or infinite pixels"):
        deepij.validate(tmp_path / "good.npy", tmp_path / "broken.npy")
    with pytest.raises(InputError, match=r"has shape \(2, 3, 4, 5\) \(expected a 2-D image or a 3-D stack"):
        deepij.validate(np.zeros((2, 3, 4, 5)), np.zeros((2, 3, 4, 5)))


# --- deepij validate in a subprocess ------------------------------------------------------------------------


def deepij_command(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepij.frontdoors.cli", "validate", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})


def test_cli_on_folders(folders, tmp_path):
    reference, test, expected = folders
    done = deepij_command(reference, test, "--test-suffix", "_output", "--metrics", "ssim,rmse", "--output",
                          tmp_path / "report", "--figures", tmp_path / "figures", "--format", "csv")
    assert done.returncode == 0, done.stderr
    printed = pd.read_csv(pd.io.common.StringIO(done.stdout))
    saved = pd.read_csv(tmp_path / "report" / "validation.csv")
    pd.testing.assert_frame_equal(printed, saved)
    for (truth, prediction), ssim in zip(expected.values(), saved["SSIM"], strict=True):
        assert ssim == pytest.approx(gaussian_ssim(truth, prediction), abs=1e-6)
    assert len(list((tmp_path / "figures").glob("*.png"))) == 3


def test_cli_exit_codes(folders):
    reference, test, _ = folders
    unmatched = deepij_command(reference, test)
    assert unmatched.returncode == 2 and "no test image in" in unmatched.stderr
    unknown = deepij_command(reference, test, "--metrics", "nope")
    assert unknown.returncode == 2 and "unknown metric 'nope'" in unknown.stderr
    tifffile.imwrite(test / "small.tif", np.zeros((10, 10), np.float32))
    shapes = deepij_command(reference / "cells_a.tif", test / "small.tif")
    assert shapes.returncode == 1 and "has shape (10, 10)" in shapes.stderr


# --- run("DeepImageJ Validate", ...) on the real ImageJ -----------------------------------------------------


@pytest.fixture
def session(imagej_session):
    return imagej_session


def test_every_session_serves_the_command(session):
    from deepij.frontdoors.deepimagej_validate import COMMAND, DeepImageJValidate

    assert isinstance(session.commands.handlers()[COMMAND], DeepImageJValidate)


def test_macro_on_open_images_reads_the_loss_table(session):
    truth, prediction = cells(5, (48, 48))
    macro = (
        'run("DeepImageJ Validate", '
        '"reference=[ground truth] test=[prediction] ssim psnr norml1 decimal=4");\n'
        'return d2s(Table.get("SSIM", 0, "Loss"), 9) + "|" + d2s(Table.get("PSNR", 0, "Loss"), 9) + "|" '
        '+ Table.getString("reference", 0, "Loss") + "|" + Table.size("Loss");'
    )
    result = session.run_macro(macro, image={"ground truth": truth, "prediction": prediction})
    ssim, peak, name, rows = result.value.split("|")
    # ImageJ's images hold float32 pixels: the expected values are computed on those
    expected_ssim = gaussian_ssim(as_float(truth), as_float(prediction))
    assert float(ssim) == pytest.approx(expected_ssim, abs=1e-8)
    assert float(peak) == pytest.approx(psnr(as_float(truth), as_float(prediction)), abs=1e-8)
    assert (name, rows) == ("ground truth", "1")
    table = result.tables["Loss"]
    assert list(table.columns) == ["reference", "test", "SSIM", "PSNR", "NormL1"]
    assert table.loc[0, "SSIM"] == pytest.approx(expected_ssim, abs=1e-12)  # decimal= shows 4, keeps all


def test_macro_on_folders_into_the_results_table(session, folders, tmp_path):
    reference, test, expected = folders
    macro = (
        f'run("DeepImageJ Validate", "reference=[{reference}] test=[{test}] suffix=_output rmse '
        f'table=Results save=[{tmp_path / "saved"}]");\n'
        'return "" + nResults + "|" + d2s(getResult("RMSE", 2), 9);'
    )
    rows, last = session.run_macro(macro).value.split("|")
    assert rows == "3"
    assert float(last) == pytest.approx(rmse(*expected["cells_c"]), rel=1e-5)
    assert (tmp_path / "saved" / "validation.csv").is_file()


def test_macro_on_a_stack_per_slice_with_labels(session):
    reference = np.zeros((3, 24, 24), np.uint8)
    reference[:, 4:12, 4:12] = 1
    test = reference.copy()
    test[1] = 0  # the middle plane misses the object
    macro = (
        'run("DeepImageJ Validate", "reference=truth test=masks labels per_slice");\n'
        'return "" + Table.get("F1", 0, "Loss") + "|" + Table.get("F1", 1, "Loss") + "|" '
        '+ Table.get("Dice", 1, "Loss") + "|" + Table.get("slice", 2, "Loss");'
    )
    values = session.run_macro(macro, image={"truth": reference, "masks": test}).value.split("|")
    assert [float(v) for v in values] == [1.0, 0.0, 0.0, 3.0]


def test_macro_errors_stop_at_the_line(session):
    truth, prediction = cells(6, (16, 16))
    missing = 'print("before");\nrun("DeepImageJ Validate", "reference=[nothing open] test=prediction");'
    not_open = r"reference=\[nothing open\]: no open image has this title"
    with pytest.raises(MacroError, match=not_open) as caught:
        session.run_macro(missing, image={"prediction": prediction})
    assert caught.value.line == 2
    with pytest.raises(MacroError, match="unknown metric 'wobble'"):
        session.run_macro('run("DeepImageJ Validate", "reference=a test=b wobble");',
                          image={"a": truth, "b": prediction})
    with pytest.raises(MacroError, match="shape"):
        session.run_macro('run("DeepImageJ Validate", "reference=a test=b");',
                          image={"a": truth, "b": prediction[:8]})
