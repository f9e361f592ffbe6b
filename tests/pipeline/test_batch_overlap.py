"""Folders with the images' stages overlapped (deepij.pipeline.batch_overlap): the same files, records and
outcomes, in the same order, as one image after the other; a bad image reported at its place; a stop
(KeyboardInterrupt) writes nothing more and leaves no lock behind. No timings: what is compared is what
the runs wrote."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import deepij
from deepij.pipeline.batch import MARKERS, run_batch
from support.bundles import write_bundle_v0_5

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "nuclei_bundle"


def nuclei_images(folder: Path, count: int, size: int = 128) -> list[Path]:
    """Synthetic nuclei (examples/nuclei_data.py), the kind of image the demo bundle is made for."""
    sys.path.insert(0, str(ROOT / "examples"))
    from nuclei_data import synthetic_nuclei

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"nuclei_{index:02d}.tif"
        tifffile.imwrite(path, synthetic_nuclei(size=size, count=12, seed=index).image)
        paths.append(path)
    return paths


def written_files(folder: Path) -> dict[str, bytes]:
    """Every file of an output folder (records included, locks and temporaries would show too)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def summary(report) -> list[tuple[str, str, list[str], str | None]]:
    return [(o.source.name, o.status, [p.name for p in o.outputs], o.error) for o in report.outcomes]


@pytest.fixture(scope="module")
def demo_model():
    model = deepij.load(DEMO)
    yield model
    model.close()


def test_demo_bundle_with_macros_writes_what_a_sequential_run_writes(imagej_session, demo_model, tmp_path):
    """The demo bundle: an ImageJ pre-processing macro, the network, a post-processing macro that
    thresholds, watersheds and measures (an image and a table per input)."""
    nuclei_images(tmp_path / "images", 4)
    (tmp_path / "images" / "nuclei_02.tif").write_bytes(b"II*\0 not a TIFF")  # fails at its place
    seen: list[str] = []
    sequential = run_batch(demo_model, tmp_path / "images", tmp_path / "one_by_one", progress=False,
                           overlap_stages=False, processing="macros")
    overlapped = run_batch(demo_model, tmp_path / "images", tmp_path / "overlapped", progress=False,
                           processing="macros", on_image=lambda outcome: seen.append(outcome.source.name))
    assert summary(overlapped) == summary(sequential)
    assert [o.status for o in overlapped.outcomes] == ["done", "done", "failed", "done"]
    assert seen == [f"nuclei_{i:02d}.tif" for i in range(4)]  # reported in input order
    expected = written_files(tmp_path / "one_by_one")
    assert any(name.endswith(".csv") for name in expected)  # the post-processing macro's tables
    assert written_files(tmp_path / "overlapped") == expected  # byte for byte, records included


def test_spec_bundle_resumed_overlapped_writes_what_a_sequential_run_writes(tmp_path):
    bundle = write_bundle_v0_5(tmp_path / "b05", weights=("torchscript",))
    model = deepij.load(bundle.folder)
    rng = np.random.default_rng(3)
    (tmp_path / "images").mkdir()
    for index in range(5):
        image = (rng.random((40, 48)) * 900).astype("uint16")
        tifffile.imwrite(tmp_path / "images" / f"cell_{index}.tif", image)
    try:
        sequential = run_batch(model, tmp_path / "images", tmp_path / "one_by_one", progress=False,
                               overlap_stages=False)
        run_batch(model, tmp_path / "images", tmp_path / "overlapped", progress=False)
        (tmp_path / "overlapped" / "cell_3_probability.tif").unlink()  # as if lost: redone on resume
        resumed = run_batch(model, tmp_path / "images", tmp_path / "overlapped", progress=False, resume=True)
    finally:
        model.close()
    assert [o.status for o in resumed.outcomes] == ["already done"] * 3 + ["done", "already done"]
    assert "cell_3_probability.tif" in resumed.outcomes[3].note  # why it ran again
    assert [p.name for o in resumed.outcomes for p in o.outputs] == [
        p.name for o in sequential.outcomes for p in o.outputs
    ]
    assert written_files(tmp_path / "overlapped") == written_files(tmp_path / "one_by_one")


def test_a_stop_writes_nothing_more_and_leaves_no_lock(tmp_path):
    """KeyboardInterrupt (Ctrl-C) raised while the first image is reported: the images in prediction then
    are not written, none after them starts, no lock or temporary is left, and the first image's files
    and record are whole."""
    bundle = write_bundle_v0_5(tmp_path / "b05", weights=("torchscript",))
    model = deepij.load(bundle.folder)
    rng = np.random.default_rng(4)
    (tmp_path / "images").mkdir()
    for index in range(6):
        image = (rng.random((40, 48)) * 900).astype("uint16")
        tifffile.imwrite(tmp_path / "images" / f"cell_{index}.tif", image)

    def stop(outcome):
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            run_batch(model, tmp_path / "images", tmp_path / "out", progress=False, on_image=stop)
    finally:
        model.close()
    left = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    assert left == [MARKERS, f"{MARKERS}/cell_0.json", "cell_0_probability.tif"]
    resumed = run_batch(deepij.load(bundle.folder), tmp_path / "images", tmp_path / "out", progress=False,
                        resume=True)
    assert [o.status for o in resumed.outcomes] == ["already done"] + ["done"] * 5
