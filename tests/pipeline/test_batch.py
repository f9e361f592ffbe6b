"""Running a model over a folder: each image's outputs checked against the network's own forward pass, a
corrupt image reported and skipped, completion records, resume, leftovers of a killed run removed (only
theirs)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

import deepij
from deepij.errors import ArgumentError
from deepij.files import host_name
from deepij.pipeline.batch import MARKERS, image_files, output_prefixes, run_batch
from support.bundles import write_bundle_v0_5, zero_mean_unit_variance

SHAPE = (48, 40)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_bundle_v0_5(tmp_path_factory.mktemp("batch") / "b05", weights=("torchscript",))


@pytest.fixture(scope="module")
def model(bundle):
    loaded = deepij.load(bundle.folder)
    yield loaded
    loaded.close()


def expected_output(bundle, image: np.ndarray) -> np.ndarray:
    """The bundle's processing on the whole image, computed here: zero-mean/unit-variance, the torch
    module's own forward pass, sigmoid (as the 0.5 test bundle declares)."""
    x = zero_mean_unit_variance(image[None, None].astype(np.float32), (2, 3))
    y = bundle.model.forward(x)[0].astype(np.float64)
    return (1.0 / (1.0 + np.exp(-y)))[0, 0]


def write_images(folder, count, *, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = {}
    for index in range(count):
        image = (rng.random(SHAPE) * 1000).astype(np.uint16)
        path = folder / f"cell_{index:02d}.tif"
        tifffile.imwrite(path, image)
        images[path.name] = image
    return images


def read_output(path):
    return np.squeeze(tifffile.imread(path)).astype(np.float64)


def test_folder_with_a_corrupt_image(bundle, model, tmp_path):
    images = write_images(tmp_path / "in", 3)
    (tmp_path / "in" / "cell_01b.tif").write_bytes(b"II*\x00 this is not a TIFF at all")
    (tmp_path / "in" / "notes.txt").write_text("not an image: not picked up")
    report = run_batch(model, tmp_path / "in", tmp_path / "out", progress=False)

    assert [o.source.name for o in report.outcomes] == ["cell_00.tif", "cell_01.tif", "cell_01b.tif",
                                                        "cell_02.tif"]
    assert [o.status for o in report.outcomes] == ["done", "done", "failed", "done"]
    failed = report.failed[0]
    assert failed.source.name == "cell_01b.tif" and failed.error and failed.outputs == []
    assert failed.error.startswith(type(failed.exception).__name__)
    assert report.exit_code == 1
    for outcome in report.outcomes:
        if outcome.status == "done":
            (written,) = outcome.outputs
            assert written.name == f"{outcome.source.stem}_{model.description.outputs[0].name}.tif"
            expected = expected_output(bundle, images[outcome.source.name])
            np.testing.assert_allclose(read_output(written), expected, atol=1e-4)
    assert not list((tmp_path / "out").glob("cell_01b*"))
    summary = report.summary()
    assert "cell_01b.tif  failed" in summary
    assert summary.endswith("4 images: 3 done, 0 already done, 1 failed")
    table = report.table()
    assert table["status"].tolist() == ["done", "done", "failed", "done"]


def test_records_say_what_made_the_outputs_and_what_they_are(bundle, model, tmp_path):
    write_images(tmp_path / "in", 1)
    run_batch(model, tmp_path / "in", tmp_path / "out", progress=False, tile=(48, 40))
    record = json.loads((tmp_path / "out" / MARKERS / "cell_00.json").read_text())
    source = tmp_path / "in" / "cell_00.tif"
    assert record["source"] == {"name": "cell_00.tif", "size": source.stat().st_size,
                                "mtime_ns": source.stat().st_mtime_ns}
    made = record["made by"]
    assert made["bundle"]["descriptor sha256"] == sha256_of(bundle.folder / "rdf.yaml")
    assert made["options"]["tile"] == [48, 40] and made["options"]["processing"] == "auto"
    assert record["weights"] == {"format": "torchscript",
                                 "sha256": sha256_of(bundle.folder / "weights_torchscript.pt")}
    output = tmp_path / "out" / f"cell_00_{model.description.outputs[0].name}.tif"
    assert record["outputs"] == [{"path": output.name, "size": output.stat().st_size,
                                  "sha256": sha256_of(output)}]
    assert not list((tmp_path / "out" / MARKERS).glob("*.lock"))  # the image's lock went with the run


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resume_redoes_exactly_what_is_missing_or_changed(model, tmp_path):
    write_images(tmp_path / "in", 4)
    out = tmp_path / "out"
    first = run_batch(model, tmp_path / "in", out, progress=False)
    assert first.exit_code == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")}

    again = run_batch(model, tmp_path / "in", out, resume=True, progress=False)
    assert [o.status for o in again.outcomes] == ["already done"] * 4
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")} == stamps

    (out / MARKERS / "cell_01.json").unlink()  # stopped after writing the output, before the marker
    (out / f"cell_02_{model.description.outputs[0].name}.tif").unlink()  # an output lost since
    changed = tmp_path / "in" / "cell_03.tif"
    tifffile.imwrite(changed, np.ones(SHAPE, np.uint16))  # the source changed since
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    resumed = run_batch(model, tmp_path / "in", out, resume=True, progress=False)
    assert [o.status for o in resumed.outcomes] == ["already done", "done", "done", "done"]
    notes = [o.note for o in resumed.outcomes]
    assert notes[:2] == [None, None]  # no record: nothing to say
    assert "is missing" in notes[2] and "the image changed since it was done" in notes[3]
    assert "(ran again: the image changed since it was done (" in resumed.summary()

    without = run_batch(model, tmp_path / "in", out, progress=False)  # no resume: everything again
    assert [o.status for o in without.outcomes] == ["done"] * 4


def test_only_the_temporaries_of_dead_processes_of_this_host_are_removed(model, tmp_path):
    write_images(tmp_path / "in", 1)
    out = tmp_path / "out"
    (out / MARKERS).mkdir(parents=True)
    output = f"cell_00_{model.description.outputs[0].name}.tif"
    gone = finished_process_pid()
    host = host_name()
    dead = [out / f".{output}.{gone}-{host}-abcd1234.partial",
            out / MARKERS / f".cell_00.json.{gone}-{host}-abcd1234.partial"]
    kept = [
        out / f".{output}.{os.getpid()}-{host}-abcd1234.partial",  # a live process (this one)
        out / f".{output}.{gone}-someotherhost-abcd1234.partial",  # another host: nobody here can tell
        out / f".{output}.abcd1234.partial",  # no owner in its name
        out / "keep_me.tif",  # the user's own file
    ]
    for path in dead + kept:
        path.write_bytes(b"half")
    run_batch(model, tmp_path / "in", out, resume=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKERS, output, *(p.name for p in kept)])
    assert sorted(p.name for p in (out / MARKERS).iterdir()) == ["cell_00.json"]


def finished_process_pid() -> int:
    """The pid of a process that ran and ended (so no process of this host has it now)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    return int(done.stdout)


def test_a_list_of_files_and_options_passed_to_predict(bundle, model, tmp_path):
    images = write_images(tmp_path / "in", 2)
    files = sorted((tmp_path / "in").glob("*.tif"))
    seen = []
    report = run_batch(model, files[:1], tmp_path / "out", progress=False, tile="whole",
                       on_image=seen.append)
    assert seen == report.outcomes and len(seen) == 1
    # one mirror-padded pass: the same as the whole image except near the borders (zero vs mirror padding)
    result = read_output(report.outcomes[0].outputs[0])
    halo = bundle.model.halo
    inner = (slice(halo, -halo), slice(halo, -halo))
    expected = expected_output(bundle, images["cell_00.tif"])
    np.testing.assert_allclose(result[inner], expected[inner], atol=1e-4)


def test_unknown_predict_option_fails_every_image_with_its_message(model, tmp_path):
    write_images(tmp_path / "in", 2)
    report = run_batch(model, tmp_path / "in", tmp_path / "out", progress=False, tile=(0, 0))
    assert report.exit_code == 1 and all(o.status == "failed" for o in report.outcomes)
    assert all("tile" in o.error for o in report.outcomes)


def test_bad_inputs_and_outputs(model, tmp_path):
    with pytest.raises(ArgumentError, match="does not exist"):
        image_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden.tif").write_bytes(b"")
    with pytest.raises(ArgumentError, match="holds no image file"):
        image_files(tmp_path / "empty")
    write_images(tmp_path / "in", 1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArgumentError, match="is a file"):
        run_batch(model, tmp_path / "in", tmp_path / "file", progress=False)
    with pytest.raises(ArgumentError, match="no image"):
        run_batch(model, [], tmp_path / "out", progress=False)


def test_output_prefixes_when_names_collide(tmp_path):
    files = [tmp_path / "a.tif", tmp_path / "a.TIFF", tmp_path / "b.ome.tif", tmp_path / "c.npy"]
    assert list(output_prefixes(files).values()) == ["a_tif", "a_TIFF", "b", "c"]
    # the rule depends on the set of names, never on their order
    assert output_prefixes(files[::-1]) == output_prefixes(files)
    with pytest.raises(ArgumentError, match=r"'a.tif' is given 2 times .* would have the same names"):
        output_prefixes([tmp_path / "day1" / "a.tif", tmp_path / "day2" / "a.tif"])
