"""What ``resume=True`` trusts, on real files: a record made by another bundle or other options, a record
edited to vouch for nothing or for files outside the output folder, a record that is a folder or not JSON,
an output truncated or changed after it was written - each image is run again with the reason, and its
outputs checked against the network's own forward pass. Output names unique and stable, never replacing an
input or another input's outputs, and an image locked by another real process left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import deepij
from deepij.pipeline.batch import MARKERS, run_batch
from support.bundles import write_bundle_v0_5, zero_mean_unit_variance

SHAPE = (48, 40)
OUTPUT = "probability"  # the 0.5 test bundle's output
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    # the same name, other weights: what a user switching bundles between two runs has
    return write_bundle_v0_5(root / "first", seed=0), write_bundle_v0_5(root / "second", seed=1)


@pytest.fixture(scope="module")
def models(bundles):
    loaded = [deepij.load(b.folder) for b in bundles]
    yield loaded
    for model in loaded:
        model.close()


def spec_output(bundle, image):
    """The bundle's spec processing computed here: zero-mean/unit-variance, its torch module, sigmoid."""
    y = bundle.model.forward(zero_mean_unit_variance(image[None, None].astype(np.float32), (2, 3)))[0]
    return (1.0 / (1.0 + np.exp(-y.astype(np.float64))))[0, 0]


def raw_output(bundle, image):
    """No processing: the torch module on the image as it is."""
    return bundle.model.forward(image[None, None].astype(np.float32))[0][0, 0].astype(np.float64)


def write_images(folder, names, *, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = {}
    for name in names:
        image = (rng.random(SHAPE) * 1000).astype(np.uint16)
        if name.endswith(".npy"):
            np.save(folder / name, image)
        else:
            tifffile.imwrite(folder / name, image)
        images[name] = image
    return images


def output_of(folder, prefix):
    return np.squeeze(tifffile.imread(folder / f"{prefix}_{OUTPUT}.tif")).astype(np.float64)


def edit_record(folder, prefix, change):
    path = folder / MARKERS / f"{prefix}.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def statuses(report):
    return [o.status for o in report.outcomes]


def test_another_bundle_or_other_options_redo_every_image_and_say_why(bundles, models, tmp_path):
    images = write_images(tmp_path / "in", ["a.tif", "b.tif"])
    out = tmp_path / "out"
    first = run_batch(models[0], tmp_path / "in", out, progress=False, processing="spec")
    assert statuses(first) == ["done", "done"]

    other_options = run_batch(models[0], tmp_path / "in", out, resume=True, progress=False, processing="none")
    assert statuses(other_options) == ["done", "done"]
    assert all(o.note == "options changed: processing 'spec' -> 'none'" for o in other_options.outcomes)
    assert "(ran again: options changed: processing 'spec' -> 'none')" in other_options.summary()
    for name, image in images.items():
        np.testing.assert_allclose(output_of(out, name[:-4]), raw_output(bundles[0], image), atol=1e-3)

    other_bundle = run_batch(models[1], tmp_path / "in", out, resume=True, progress=False, processing="none")
    assert statuses(other_bundle) == ["done", "done"]
    assert all(o.note.startswith("made by another bundle: descriptor sha256 ") for o in other_bundle.outcomes)
    for name, image in images.items():
        np.testing.assert_allclose(output_of(out, name[:-4]), raw_output(bundles[1], image), atol=1e-3)
        assert not np.allclose(raw_output(bundles[0], image), raw_output(bundles[1], image), atol=1e-2)

    same = run_batch(models[1], tmp_path / "in", out, resume=True, progress=False, processing="none")
    assert statuses(same) == ["already done", "already done"] and all(o.note is None for o in same.outcomes)


def test_records_that_vouch_for_nothing_or_for_files_elsewhere_are_not_trusted(bundles, models, tmp_path):
    names = ["a.tif", "b.tif", "c.tif", "d.tif", "e.tif", "f.tif"]
    images = write_images(tmp_path / "in", names)
    out = tmp_path / "out"
    run_batch(models[0], tmp_path / "in", out, progress=False, processing="spec")
    outside = tmp_path / "outside.tif"
    outside.write_bytes(b"not deepij's")
    (out / "link.tif").symlink_to(outside)

    def name_outputs(*paths):
        entries = [{"path": p, "size": 12, "sha256": "0" * 64} for p in paths]
        return lambda record: record.update(outputs=entries)

    edit_record(out, "a", lambda record: record.update(outputs=[]))
    edit_record(out, "b", name_outputs("../../etc/hostname"))
    edit_record(out, "c", name_outputs(str(outside)))
    edit_record(out, "d", name_outputs("link.tif"))
    (out / MARKERS / "e.json").write_text("{ not json")
    edit_record(out, "f", lambda record: record.update({"deepij record": 1}))  # as an older deepij wrote it

    report = run_batch(models[0], tmp_path / "in", out, resume=True, progress=False, processing="spec")
    assert statuses(report) == ["done"] * 6, report.summary()
    notes = [o.note for o in report.outcomes]
    assert notes[0] == "its record lists no outputs"
    assert notes[1] == "its record names '../../etc/hostname', which is not a file inside the output folder"
    assert notes[2] == f"its record names {str(outside)!r}, which is not a file inside the output folder"
    assert notes[3] == "its record names 'link.tif', a link out of the output folder"
    assert notes[4].startswith("its record e.json cannot be used (")
    assert "an older deepij wrote it" in notes[5]
    assert outside.read_bytes() == b"not deepij's"
    for name, image in images.items():
        np.testing.assert_allclose(output_of(out, name[:-4]), spec_output(bundles[0], image), atol=1e-4)
    again = run_batch(models[0], tmp_path / "in", out, resume=True, progress=False, processing="spec")
    assert statuses(again) == ["already done"] * 6


def test_outputs_changed_after_they_were_written_are_redone(bundles, models, tmp_path):
    images = write_images(tmp_path / "in", ["a.tif", "b.tif", "c.tif"])
    out = tmp_path / "out"
    run_batch(models[0], tmp_path / "in", out, progress=False, processing="spec")
    truncated, changed = out / f"a_{OUTPUT}.tif", out / f"b_{OUTPUT}.tif"
    size = truncated.stat().st_size
    with open(truncated, "r+b") as stream:
        stream.truncate(size - 100)
    data = bytearray(changed.read_bytes())
    data[-1] ^= 0xFF  # the same size, one pixel byte changed
    changed.write_bytes(bytes(data))

    report = run_batch(models[0], tmp_path / "in", out, resume=True, progress=False, processing="spec")
    assert statuses(report) == ["done", "done", "already done"]
    note = f"its output a_{OUTPUT}.tif is {size - 100} bytes, its record says {size}"
    assert report.outcomes[0].note == note
    assert "changed since it was written (sha256 differs" in report.outcomes[1].note
    for name, image in images.items():
        np.testing.assert_allclose(output_of(out, name[:-4]), spec_output(bundles[0], image), atol=1e-4)


def test_a_record_that_is_a_folder_never_stops_the_batch(models, tmp_path):
    write_images(tmp_path / "in", ["a.tif", "b.tif", "c.tif"])
    out = tmp_path / "out"
    (out / MARKERS / "a.json").mkdir(parents=True)  # empty: deepij can put its record there
    (out / MARKERS / "b.json").mkdir()
    (out / MARKERS / "b.json" / "notes.txt").write_text("someone's file")
    for resume in (True, False):
        report = run_batch(models[0], tmp_path / "in", out, resume=resume, progress=False, processing="spec")
        assert statuses(report)[1] == "failed"
        error = report.outcomes[1].error
        assert error.startswith("ArgumentError: record: ") and "is a folder with files in it" in error
    assert statuses(report) == ["done", "failed", "done"]
    assert json.loads((out / MARKERS / "a.json").read_text())["source"]["name"] == "a.tif"
    assert (out / MARKERS / "b.json" / "notes.txt").read_text() == "someone's file"
    assert not (out / f"b_{OUTPUT}.tif").exists()


def test_names_that_clean_alike_get_their_own_files_on_every_run(bundles, models, tmp_path):
    names = ["a.tif", "a.npy", "a_tif.npy", "well#1.tif", "well_1.tif"]
    images = write_images(tmp_path / "in", names)
    first = run_batch(models[0], tmp_path / "in", tmp_path / "out", progress=False, processing="spec")
    assert statuses(first) == ["done"] * 5, first.summary()
    written = {o.source.name: o.outputs for o in first.outcomes}
    files = [p for outputs in written.values() for p in outputs]
    assert len({p.name.casefold() for p in files}) == 5  # five images, five files
    for name, (path,) in written.items():
        expected = spec_output(bundles[0], images[name])
        np.testing.assert_allclose(np.squeeze(tifffile.imread(path)), expected, atol=1e-4)
    again = run_batch(models[0], tmp_path / "in", tmp_path / "again", progress=False, processing="spec")
    assert [o.outputs[0].name for o in again.outcomes] == [o.outputs[0].name for o in first.outcomes]
    resumed = run_batch(models[0], tmp_path / "in", tmp_path / "out", resume=True, progress=False,
                        processing="spec")
    assert statuses(resumed) == ["already done"] * 5


def test_an_output_never_replaces_an_input_or_another_inputs_outputs(models, tmp_path):
    folder = tmp_path / "both"
    write_images(folder, ["a.tif", f"a_{OUTPUT}.tif"])
    kept = (folder / f"a_{OUTPUT}.tif").read_bytes()
    report = run_batch(models[0], folder, folder, progress=False, processing="spec")  # output = input
    assert statuses(report) == ["failed", "done"]
    assert f"'a_{OUTPUT}.tif' would replace the input file of that name" in report.outcomes[0].error
    assert (folder / f"a_{OUTPUT}.tif").read_bytes() == kept

    # a later run whose input takes the name an earlier run's input had: refused, the earlier outputs kept
    write_images(tmp_path / "tif", ["a.tif"])
    write_images(tmp_path / "npy", ["a.npy"], seed=3)
    out = tmp_path / "out"
    run_batch(models[0], tmp_path / "tif", out, progress=False, processing="spec")
    earlier = (out / f"a_{OUTPUT}.tif").read_bytes()
    later = run_batch(models[0], tmp_path / "npy", out, progress=False, processing="spec")
    assert statuses(later) == ["failed"]
    assert "are the outputs of 'a.tif'" in later.outcomes[0].error
    assert (out / f"a_{OUTPUT}.tif").read_bytes() == earlier


def test_an_image_another_process_is_writing_is_left_to_it(bundles, models, tmp_path):
    images = write_images(tmp_path / "in", ["a.tif", "b.tif"])
    out = tmp_path / "out"
    (out / MARKERS).mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out / MARKERS / "b.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        report = run_batch(models[0], tmp_path / "in", out, progress=False, processing="spec")
    finally:
        holder.communicate("", timeout=60)  # the holder ends: its lock goes with it
    assert statuses(report) == ["done", "failed"]
    error = report.outcomes[1].error
    assert error.startswith("OutputBusyError: image b.tif: another process is writing it now")
    assert f"pid {holder.pid} on host " in error and "b.lock" in error
    assert not (out / f"b_{OUTPUT}.tif").exists()
    resumed = run_batch(models[0], tmp_path / "in", out, resume=True, progress=False, processing="spec")
    assert statuses(resumed) == ["already done", "done"]
    np.testing.assert_allclose(output_of(out, "b"), spec_output(bundles[0], images["b.tif"]), atol=1e-4)


HOLD_LOCK = """
import sys
from deepij.files import exclusive_lock
with exclusive_lock(sys.argv[1], "test"):
    print("held", flush=True)
    sys.stdin.read()
"""
