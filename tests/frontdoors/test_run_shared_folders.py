"""``deepij run`` where several processes share an output folder, and where the folder or the cluster named
cannot be used: real ``deepij run`` processes at once on one folder (every image done once, the files of a
clean run, nothing left half-written), another process's in-flight temporaries left alone, and clear errors
(exit 2, no traceback) for a folder that cannot be written and a scheduler address where nobody listens."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from deepij.files import host_name
from support.bundles import write_bundle_v0_5

REPO = Path(__file__).resolve().parents[2]
OUTPUT = "probability"  # the output of the 0.5 test bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_bundle_v0_5(tmp_path_factory.mktemp("shared") / "b05")


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "deepij.frontdoors.cli", *map(str, args)]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src")}


def deepij_command(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=600, cwd=REPO,
                          env=environment())


def write_folder(folder: Path, count: int, size: int = 96) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for index in range(count):
        tifffile.imwrite(folder / f"img_{index:03d}.tif", (rng.random((size, size)) * 4000).astype(np.uint16))


def summary_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """image -> (status, outputs or error) from the summary table."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("img_"):
            name, status, _seconds, detail = re.split(r"\s{2,}", line, maxsplit=3)
            rows[name] = (status, detail)
    return rows


def everything(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_two_runs_at_once_on_one_folder(bundle, tmp_path):
    count = 16
    write_folder(tmp_path / "in", count)
    clean = deepij_command("run", bundle.folder, "-i", tmp_path / "in", "-o", tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr

    shared = tmp_path / "shared"
    arguments = command("run", bundle.folder, "-i", tmp_path / "in", "-o", shared, "--resume")
    runs = [
        subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                         env=environment())
        for _ in range(2)
    ]
    finished = [run.communicate(timeout=600) for run in runs]
    tables = []
    for run, (stdout, stderr) in zip(runs, finished, strict=True):
        assert run.returncode in (0, 1) and "Traceback" not in stderr, stderr
        assert stdout.splitlines()[-1].startswith(f"{count} images: ")
        tables.append(summary_rows(stdout))
    for index in range(count):
        name = f"img_{index:03d}.tif"
        outcomes = [table[name] for table in tables]
        assert any(status in ("done", "already done") for status, _ in outcomes), outcomes
        for status, detail in outcomes:  # the only failure allowed: the image was the other run's
            assert status != "failed" or detail.startswith("OutputBusyError: image img_"), detail

    assert everything(shared) == everything(tmp_path / "clean")  # no temporary, no lock left
    for path in (tmp_path / "clean").glob("*.tif"):
        np.testing.assert_array_equal(tifffile.imread(shared / path.name), tifffile.imread(path))
    again = deepij_command("run", bundle.folder, "-i", tmp_path / "in", "-o", shared, "--resume")
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == (
        f"{count} images: 0 done, {count} already done, 0 failed")


def test_a_live_processs_temporaries_are_left_alone(bundle, tmp_path):
    write_folder(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    # this test's process is alive, and is not the deepij run: its in-flight file must survive
    in_flight = out / f".img_000_{OUTPUT}.tif.{os.getpid()}-{host_name()}-k2j4l1x0.partial"
    abandoned = out / f".img_000_{OUTPUT}.tif.{int(gone.stdout)}-{host_name()}-k2j4l1x0.partial"
    for path in (in_flight, abandoned):
        path.write_bytes(b"half a TIFF")
    done = deepij_command("run", bundle.folder, "-i", tmp_path / "in", "-o", out)
    assert done.returncode == 0, done.stderr
    assert in_flight.read_bytes() == b"half a TIFF" and not abandoned.exists()


def _immutable(folder: Path) -> bool:
    folder.mkdir()
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    return made.returncode == 0


@pytest.mark.parametrize("where", ["immutable", "below a file", "under /proc"])
def test_an_output_folder_that_cannot_be_written(bundle, tmp_path, where):
    write_folder(tmp_path / "in", 1)
    if where == "immutable":
        target = tmp_path / "locked"
        if not _immutable(target):
            pytest.skip("chattr +i is not available here (needs root and a file system that has it)")
        expected = f"output: {str(target)!r} cannot be made or written (PermissionError: "
    elif where == "below a file":
        (tmp_path / "notes.txt").write_text("a file")
        target = tmp_path / "notes.txt" / "out"
        expected = f"output: {str(target)!r} lies below {str(tmp_path / 'notes.txt')!r}, which is a file"
    else:
        target = Path("/proc/deepij-output")
        expected = f"output: {str(target)!r} cannot be made or written (FileNotFoundError: "
    try:
        done = deepij_command("run", bundle.folder, "-i", tmp_path / "in", "-o", target)
    finally:
        if where == "immutable":
            subprocess.run(["chattr", "-i", str(target)], check=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"deepij run: {expected}") and "Traceback" not in done.stderr
    assert "expected a folder deepij can write into" in done.stderr
    assert not os.path.lexists(target) or list(target.iterdir()) == []


def test_a_scheduler_address_where_nobody_listens(bundle, tmp_path):
    write_folder(tmp_path / "in", 1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nobody listens there
    address = f"tcp://127.0.0.1:{port}"
    done = deepij_command("run", bundle.folder, "-i", tmp_path / "in", "-o", tmp_path / "out",
                          "--scheduler", address)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"deepij run: scheduler: nothing listens at {address!r} (")
    assert "tcp://host:8786" in done.stderr
