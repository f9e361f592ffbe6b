"""``deepij run`` as people run it: a real subprocess on a folder, exit codes, and a run killed with SIGKILL
halfway, then resumed, ending with exactly the files of a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from deepij.frontdoors.cli_run import parse_tile
from deepij.pipeline.batch import MARKERS
from support.bundles import write_bundle_v0_5

REPO = Path(__file__).resolve().parents[2]
OUTPUT = "probability"  # the output of the 0.5 test bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_bundle_v0_5(tmp_path_factory.mktemp("cli") / "b05", name="CLI test model")


def deepij_command(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepij.frontdoors.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, env=_environment())


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src")}


def write_folder(folder: Path, count: int, size: int = 64) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for index in range(count):
        tifffile.imwrite(folder / f"img_{index:03d}.tif", (rng.random((size, size)) * 4000).astype(np.uint16))


def pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: tifffile.imread(p) for p in sorted(folder.glob("*.tif"))}


def test_folder_with_a_corrupt_image_exits_1_and_reports_it(bundle, tmp_path):
    write_folder(tmp_path / "in", 2)
    (tmp_path / "in" / "img_000b.tif").write_bytes(b"MM\x00*garbage")
    done = deepij_command("run", bundle.folder, "--input", tmp_path / "in", "--output", tmp_path / "out")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("img_000b.tif") and "failed" in line for line in lines)
    assert lines[-1] == "3 images: 2 done, 0 already done, 1 failed"
    assert sorted(pixels(tmp_path / "out")) == [f"img_000_{OUTPUT}.tif", f"img_001_{OUTPUT}.tif"]
    assert "\r" not in done.stderr  # no progress bar when standard error is not a terminal


def test_usage_errors_exit_2(bundle, tmp_path):
    missing = deepij_command("run", bundle.folder, "-i", tmp_path / "nowhere", "--output", tmp_path / "o")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    no_output = deepij_command("run", bundle.folder, "--input", tmp_path)
    assert no_output.returncode == 2 and "--output" in no_output.stderr
    write_folder(tmp_path / "in", 1)
    bad_tile = deepij_command("run", bundle.folder, "-i", tmp_path / "in", "-o", tmp_path / "o", "--tile=a")
    assert bad_tile.returncode == 2 and "--tile a:" in bad_tile.stderr


def test_an_installed_model_by_name(bundle, tmp_path):
    write_folder(tmp_path / "in", 1)
    models = tmp_path / "models"
    models.mkdir()
    (models / "cli_model").symlink_to(bundle.folder, target_is_directory=True)
    done = deepij_command("run", "CLI test model", "--models-dir", models, "-i", tmp_path / "in",
                          "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert list(pixels(tmp_path / "out")) == [f"img_000_{OUTPUT}.tif"]


def test_killed_halfway_then_resumed_gives_the_clean_run_files(bundle, tmp_path):
    count = 40
    write_folder(tmp_path / "in", count, size=256)
    clean = deepij_command("run", bundle.folder, "-i", tmp_path / "in", "-o", tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr

    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "deepij.frontdoors.cli", "run", str(bundle.folder), "-i", str(tmp_path / "in"),
         "-o", str(out)], cwd=REPO, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def finished_images() -> int:
        return len(list((out / MARKERS).glob("*.json"))) if (out / MARKERS).is_dir() else 0

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and finished_images() < 3:
        time.sleep(0.002)
    assert process.poll() is None, "the run ended before it could be killed halfway"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    finished = finished_images()
    assert 0 < finished < count

    resumed = deepij_command("run", bundle.folder, "-i", tmp_path / "in", "-o", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[-1] == (
        f"{count} images: {count - finished} done, {finished} already done, 0 failed"
    )
    expected, found = pixels(tmp_path / "clean"), pixels(out)
    assert sorted(found) == sorted(expected)
    for name, image in expected.items():
        np.testing.assert_array_equal(found[name], image, err_msg=name)
    everything = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert everything == sorted(p.relative_to(tmp_path / "clean").as_posix()
                                for p in (tmp_path / "clean").rglob("*"))


def test_parse_tile_refuses_what_it_cannot_read():
    from deepij.errors import ArgumentError

    for text in ("", "0", "a,b", "y=a", "256,-1"):
        with pytest.raises(ArgumentError, match="--tile"):
            parse_tile(text)


ENDLESS_MACRO = """// post-processing that never ends
n = 0;
while (true) {
    n = n + 1;
}
"""


def test_a_step_that_never_ends_is_stopped_at_the_timeout_and_the_batch_goes_on(tmp_path):
    # two images, each stopped in its post-processing macro; the process then exits by itself (the
    # subprocess timeout is the bound, far above the two time limits: nothing here measures speed)
    from support.dij_bundles import write_segmentation_bundle_v0_3

    bundle = write_segmentation_bundle_v0_3(tmp_path / "endless", post_macro=ENDLESS_MACRO)
    (tmp_path / "in").mkdir()
    for index in range(2):
        tifffile.imwrite(tmp_path / "in" / f"img_{index}.tif", bundle.test_input[0, 0] * (index + 1))
    done = deepij_command("run", bundle.folder, "--input", tmp_path / "in", "--output", tmp_path / "out",
                          "--timeout", "5", timeout=5 * 2 + 240)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for index in range(2):
        (line,) = [row for row in lines if row.startswith(f"img_{index}.tif")]
        assert "failed" in line and "postprocessing step 1 of 1" in line and "time limit of 5 s" in line
    assert lines[-1] == "2 images: 0 done, 0 already done, 2 failed"


def test_timeout_must_be_positive(bundle, tmp_path):
    write_folder(tmp_path / "in", 1)
    done = deepij_command("run", bundle.folder, "--input", tmp_path / "in", "--output", tmp_path / "out",
                          "--timeout", "0")
    assert done.returncode == 2 and "--timeout 0: expected a number of seconds > 0" in done.stderr


def test_precision_reaches_the_model_and_unknown_values_are_usage_errors(bundle, tmp_path):
    write_folder(tmp_path / "in", 1)
    unknown = deepij_command("run", bundle.folder, "-i", tmp_path / "in", "-o", tmp_path / "o",
                             "--precision", "float8")
    assert unknown.returncode == 2 and "--precision float8: expected one of" in unknown.stderr
    plain = deepij_command("run", bundle.folder, "-i", tmp_path / "in", "-o", tmp_path / "float32")
    int8 = deepij_command("run", bundle.folder, "-i", tmp_path / "in", "-o", tmp_path / "int8",
                          "--precision", "int8")
    assert plain.returncode == 0 and int8.returncode == 0, int8.stderr
    # the bundle's tolerance (atol 1e-4) is tighter than int8 gets: refused, said, and float32 runs
    assert "precision='int8' refused, float32 runs" in int8.stderr
    for name, image in pixels(tmp_path / "int8").items():
        np.testing.assert_array_equal(image, pixels(tmp_path / "float32")[name])
