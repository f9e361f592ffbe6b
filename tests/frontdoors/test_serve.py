"""``deepij serve``, the worker of the ImageJ plugin: its operations on real bundles, the pixels through the
shared files (written and read by the plugin's own Java class, checked against deepij's in-process ImageJ
conversion), cancelling, and the ``--stdio`` process itself (hello, private files, ping, cancel, the end).

Expected values come from elsewhere: the torch module the test bundle was written from, the bundle's own test
output, deepij's in-process ImagePlus conversion (:mod:`deepij.imagej.images`)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from deepij.frontdoors.exchange import SharedFiles
from deepij.frontdoors.serve import Server
from support.bundles import write_bundle_v0_5, zip_bundle
from support.dij_bundles import histogram_scale_range, write_segmentation_bundle_v0_3

FLOAT = "serve float model"
SPEC = "serve spec model"


@pytest.fixture(scope="module")
def imagej_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve") / "Fiji.app"
    models = folder / "models"
    write_segmentation_bundle_v0_3(models / "float", name=FLOAT, post_macro=None)
    write_bundle_v0_5(models / "spec", name=SPEC)
    return folder


@pytest.fixture
def server():
    answers: list[dict] = []
    made = Server(answers.append)
    made.answers = answers  # type: ignore[attr-defined]
    yield made
    made.close()


def _ask(server, **message):
    server.answers.clear()
    server.handle({"id": 1, **message})
    return server.answers[-1], server.answers[:-1]


def _write_to_worker(files: SharedFiles, image: np.ndarray, title: str) -> dict:
    """The plugin's side for a float32 (y, x) image: its pixels into ``to_worker`` (the documented layout)."""
    files.to_worker.write_bytes(np.ascontiguousarray(image, "<f4").tobytes())
    height, width = image.shape
    return {"title": title, "width": width, "height": height, "channels": 1, "slices": 1, "frames": 1,
            "type": "float32", "offset": 0, "calibration": {"scaled": False}, "display_range": [[0, 1]]}


def _read_from_worker(files: SharedFiles, meta: dict) -> np.ndarray:
    count = meta["width"] * meta["height"] * meta["channels"] * meta["slices"] * meta["frames"]
    data = np.fromfile(files.from_worker, "<f4", count, offset=meta["offset"])
    return data.reshape(meta["frames"] * meta["slices"] * meta["channels"], meta["height"], meta["width"])


# --------------------------------------------------------------------------------------------- operations
def test_the_plan_lists_the_imagej_steps_to_run_in_the_users_imagej(server, imagej_dir):
    answer, _ = _ask(server, op="plan", options=f"model=[{FLOAT}]", imagej_dir=str(imagej_dir),
                     has_image=True)
    assert answer["ok"] and answer["mode"] == "macros" and answer["inputs"] == ["input"]
    (step,) = answer["pre"]
    assert step["kind"] == "macro" and Path(step["file"]).is_absolute()
    assert Path(step["file"]).read_text().startswith("// per_sample_scale_range")
    assert step["where"] == f"bundle '{FLOAT}': preprocessing step 1 of 1 (macro per_sample_scale_range.ijm)"
    assert answer["post"] == [] and answer["display_output"] is True


def test_predict_runs_the_network_on_the_preprocessed_image(server, imagej_dir):
    # the same bundle as the installed one (same seed): its torch module gives the expected output
    bundle = write_segmentation_bundle_v0_3(imagej_dir.parent / "same", name="same", post_macro=None)
    image = bundle.test_input[0, 0]
    scaled = histogram_scale_range(image)  # what the bundle's macro makes, in numpy
    meta = _write_to_worker(server.files, scaled, "cells.tif")
    options = f"model=[{FLOAT}]"
    answer, events = _ask(server, op="predict", options=options, imagej_dir=str(imagej_dir),
                          title="cells.tif", inputs=[meta])
    assert answer["ok"], answer
    (output,) = answer["outputs"]
    assert output["name"] == "output" and output["title"] == f"{FLOAT}_output_cells"
    expected = bundle.model.forward(scaled[None, None])[0][0]  # the torch module the bundle was written from
    np.testing.assert_allclose(_read_from_worker(server.files, output)[0], expected[0], rtol=1e-4, atol=1e-5)
    assert any(e["event"] == "progress" and e["stage"] == "inference" for e in events)


def test_a_bundle_without_imagej_steps_gets_its_spec_ops_here(server, imagej_dir):
    bundle_input = np.load(imagej_dir / "models" / "spec" / "test_input.npy")
    expected = np.load(imagej_dir / "models" / "spec" / "test_output.npy")
    plan, _ = _ask(server, op="plan", options=f"model=[{SPEC}]", imagej_dir=str(imagej_dir), has_image=True)
    assert plan["mode"] == "spec" and plan["pre"] == plan["post"] == []
    meta = _write_to_worker(server.files, bundle_input[0, 0], "test")
    answer, _ = _ask(server, op="predict", options=f"model=[{SPEC}]", imagej_dir=str(imagej_dir),
                     title="test", inputs=[meta])
    assert answer["ok"], answer
    np.testing.assert_allclose(_read_from_worker(server.files, answer["outputs"][0])[0], expected[0, 0],
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("message", "kind", "text"),
    [
        ({"op": "no such op"}, "ArgumentError", "op='no such op': unknown operation"),
        ({"op": "plan", "options": "model=a bogus=1"}, "ArgumentError", "bogus=: unknown key"),
        ({"op": "plan", "options": "model=[nothing here]"}, "ModelNotFoundError", "model=[nothing here]"),
        ({"op": "plan", "options": f"model=[{FLOAT}]", "has_image": False}, "InputError",
         "there is no image open"),
    ],
)
def test_a_failing_request_is_an_answer_and_the_worker_goes_on(server, imagej_dir, message, kind, text):
    answer, _ = _ask(server, imagej_dir=str(imagej_dir), **message)
    assert answer["ok"] is False and answer["kind"] == kind and text in answer["error"]
    again, _ = _ask(server, op="plan", options=f"model=[{FLOAT}]", imagej_dir=str(imagej_dir), has_image=True)
    assert again["ok"]


def test_a_cancel_stops_the_request_at_its_next_progress_point(imagej_dir):
    answers: list[dict] = []

    def send(message: dict) -> None:
        answers.append(message)
        if message.get("event") == "progress":
            server.cancel(1)  # Esc, as the first progress arrives in ImageJ

    server = Server(send)
    try:
        meta = _write_to_worker(server.files, np.ones((40, 48), np.float32), "x")
        server.handle({"id": 1, "op": "predict", "options": f"model=[{FLOAT}] tile=1,16,16",
                       "imagej_dir": str(imagej_dir), "title": "x", "inputs": [meta]})
    finally:
        server.close()
    assert [a["event"] for a in answers if "event" in a][-1] == "cancelling"
    assert answers[-1]["ok"] is False and answers[-1]["kind"] == "Cancelled"


def test_models_lists_what_the_dialog_shows(server, imagej_dir):
    image = {"width": 48, "height": 40, "channels": 1, "slices": 1, "frames": 1}
    answer, _ = _ask(server, op="models", imagej_dir=str(imagej_dir), image=image)
    listed = {m["name"]: m for m in answer["models"]}
    assert set(listed) >= {FLOAT, SPEC}
    entry = listed[FLOAT]
    assert entry["formats"] == ["Pytorch"] and entry["axes"] == "C,Y,X"
    assert entry["pre"] == ["per_sample_scale_range.ijm", "no preprocessing"]
    assert entry["post"] == ["no postprocessing"]
    channels, y, x = (int(v) for v in entry["tile"].split(","))
    assert channels == 1 and y >= 40 and x >= 48  # deepImageJ's default tile holds the image (and its halo)
    assert "input 'input': axes bcyx" in entry["info"] and "torchscript" in entry["info"]
    assert str(imagej_dir / "models") in answer["folders"]


def test_validate_measures_open_images_and_files(server, tmp_path):
    image = np.random.default_rng(3).random((32, 32)).astype(np.float32)
    meta = _write_to_worker(server.files, image, "truth")
    plan, _ = _ask(server, op="validate_plan", options="reference=[truth] test=[truth] ssim",
                   titles=["truth", "other"])
    assert plan["images"] == ["truth"]
    answer, _ = _ask(server, op="validate", options="reference=[truth] test=[truth] ssim table=Results",
                     images=[meta])
    assert answer["ok"], answer
    table = answer["table"]
    assert table["title"] == "Results"
    (ssim,) = [c for c in table["columns"] if c["name"] == "SSIM"]
    assert ssim["values"] == [pytest.approx(1.0)]  # an image against itself


def test_install_puts_a_zip_into_imagejs_models(server, tmp_path):
    bundle = write_bundle_v0_5(tmp_path / "made", name="installed here")
    archive = zip_bundle(bundle.folder)
    fiji = tmp_path / "Fiji.app"
    fiji.mkdir()
    answer, _ = _ask(server, op="install", source=str(archive), imagej_dir=str(fiji))
    assert answer["ok"], answer
    assert answer["name"] == "installed here"
    assert Path(answer["folder"]).parent == fiji / "models"
    assert zipfile.is_zipfile(archive)  # the source is left as it was


def test_open_reads_a_tiff_as_deepij_does_and_leaves_other_formats_to_imagej(server, tmp_path):
    import tifffile

    image = np.arange(6 * 5, dtype=np.uint16).reshape(6, 5)
    tifffile.imwrite(tmp_path / "a.tif", image, imagej=True)
    answer, _ = _ask(server, op="open", path=str(tmp_path / "a.tif"))
    (meta,) = answer["images"]
    assert (meta["type"], meta["width"], meta["height"], meta["title"]) == ("uint16", 5, 6, "a.tif")
    data = np.fromfile(server.files.from_worker, "<u2", 30, offset=meta["offset"]).reshape(6, 5)
    np.testing.assert_array_equal(data, image)
    png, _ = _ask(server, op="open", path=str(tmp_path / "a.png"))
    assert png["imagej"] is True


def test_test_model_reproduces_the_bundles_outputs(server, imagej_dir):
    answer, _ = _ask(server, op="test", model=SPEC, imagej_dir=str(imagej_dir))
    assert answer["ok"], answer
    assert answer["status"] == "passed" and "deepij test" in answer["report"]
    passed = next(c for c in answer["table"]["columns"] if c["name"] == "passed")
    assert passed["values"] and all(v == 1.0 for v in passed["values"])


# --------------------------------------------------------------------------------------------- shared files
def test_the_worker_folder_is_private(server):
    folder = server.files.folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("to_worker", "from_worker"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600


@pytest.fixture
def java(imagej_session):
    """The plugin's Java classes, in deepij's own ImageJ (its jar of jars/src is on the class path)."""
    import jpype

    return {name: jpype.JClass(f"{package}.{name}") for package, name in
            (("deepij.plugin", "SharedFiles"), ("deepij.plugin", "Json"), ("java.util", "ArrayList"))}


def _hyperstack() -> xr.DataArray:
    values = np.random.default_rng(1).random((2, 3, 24, 20, 2)).astype(np.float32)
    return xr.DataArray(values, dims=("t", "pln", "row", "col", "ch"), name="stack",
                        attrs={"unit": "micron", "pixel_size": {"col": 0.5, "row": 0.5, "pln": 2.0},
                               "frame_interval": 3.0, "time_unit": "sec", "composite_mode": "color"})


@pytest.mark.parametrize("kind", ["uint8", "uint16 stack", "float hyperstack", "rgb", "float planes of 9 MB"])
def test_pixels_from_the_plugin_arrive_as_deepij_reads_the_imageplus(imagej_session, java, kind):
    from deepij.imagej import images

    made = {
        "uint8": xr.DataArray(np.arange(30, dtype=np.uint8).reshape(5, 6), dims=("row", "col"), name="a"),
        "uint16 stack": xr.DataArray(np.arange(4 * 7 * 9, dtype=np.uint16).reshape(4, 7, 9),
                                     dims=("pln", "row", "col"), name="b"),
        "float hyperstack": _hyperstack(),
        "rgb": xr.DataArray(np.random.default_rng(2).integers(0, 255, (8, 10, 3), dtype=np.uint8),
                            dims=("row", "col", "ch"), name="c", attrs={"rgb": True}),
        # planes larger than the plugin's 8 MiB buffer cross in pieces
        "float planes of 9 MB": xr.DataArray(np.random.default_rng(3).random((2, 1500, 1537), np.float32),
                                             dims=("pln", "row", "col"), name="d"),
    }[kind]
    imp = images.to_imageplus(made)
    files = SharedFiles()
    try:
        listed = java["ArrayList"]()
        listed.add(imp)
        described = json.loads(str(java["Json"].write(java["SharedFiles"](str(files.folder)).write(listed))))
        (arrived,) = files.read_images(described)
    finally:
        files.close()
    xr.testing.assert_identical(arrived, images.to_xarray(imp))


def test_outputs_from_the_worker_open_as_prediction_show_opens_them(imagej_session, java):
    from deepij.axes import BIOIMAGE_TO_IMAGEJ, to_imagej_dims
    from deepij.imagej import images

    # planes of 1540 x 1500: more than the plugin's 8 MiB buffer each, read in pieces
    values = np.random.default_rng(4).random((1, 2, 2, 1540, 1500)).astype(np.float32)
    output = xr.DataArray(values, dims=("b", "c", "z", "y", "x"), name="output",
                          attrs={"unit": "micron", "pixel_size": {"x": 0.25, "y": 0.25, "z": 1.5}})
    files = SharedFiles()
    try:
        described = files.write_images([("model_output_cells", output)])
        (imp,) = java["SharedFiles"](str(files.folder)).read(java["Json"].parse(json.dumps(described)))
        arrived = images.to_xarray(imp)
    finally:
        files.close()
    as_imagej = to_imagej_dims(output)  # what Prediction.show hands to ImageJ (deepij.pipeline.outputs)
    as_imagej.attrs["pixel_size"] = {BIOIMAGE_TO_IMAGEJ[k]: v for k, v in output.attrs["pixel_size"].items()}
    shown = images.to_imageplus(as_imagej, title="model_output_cells")
    xr.testing.assert_identical(arrived, images.to_xarray(shown))
    assert str(imp.getTitle()) == "model_output_cells"


# --------------------------------------------------------------------------------------------- the process
class Worker:
    """``deepij serve --stdio`` as the plugin starts it, talked to through its pipes."""

    def __init__(self, tmp_path: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
               "DEEPIJ_CACHE_DIR": str(tmp_path / "cache")}
        self.log = tmp_path / "worker.log"  # its stderr, as the plugin keeps it (never a pipe nobody reads)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "deepij", "serve", "--stdio"], env=env,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        self.hello = self.read()

    def send(self, message: dict) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def read(self) -> dict:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, self.log.read_text()
        return json.loads(line)

    def until(self, key: str, value: object) -> dict:
        """The next message whose ``key`` is ``value`` (an unexpected answer fails the test at once)."""
        while (message := self.read()).get(key) != value:
            assert "ok" not in message or key in ("ok", "id"), message
        return message

    def close(self) -> int:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
        return self.process.wait(timeout=120)


def test_the_stdio_worker_says_hello_answers_ping_and_ends_with_its_input(tmp_path):
    worker = Worker(tmp_path)
    try:
        hello = worker.hello
        assert hello["hello"] == "deepij" and hello["protocol"] == 1 and hello["pid"] == worker.process.pid
        folder = Path(hello["exchange"])
        assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o700
        worker.send({"op": "ping", "id": 5})
        assert worker.read() == {"id": 5, "ok": True, "busy": None}
    finally:
        status = worker.close()
    assert status == 0
    assert not folder.exists()  # the private folder goes with the worker


def test_a_cancel_reaches_a_busy_stdio_worker(tmp_path):
    """An endless download keeps the worker busy: the cancel is acknowledged at once (ping shows it busy
    meanwhile) and the request ends Cancelled; the worker then serves the next request."""
    from support.http import LocalServer

    worker = Worker(tmp_path)
    try:
        with LocalServer({"/model.zip": b""}, endless_limit=1 << 40) as http:
            http.endless("/model.zip")
            worker.send({"op": "install", "id": 1, "source": http.url("/model.zip"),
                         "imagej_dir": str(tmp_path / "Fiji.app")})
            worker.until("event", "progress")  # downloading
            worker.send({"op": "ping", "id": 2})
            assert worker.until("id", 2)["busy"] == 1
            worker.send({"op": "cancel", "id": 1})
            assert worker.until("event", "cancelling")["id"] == 1
            answer = worker.until("ok", False)
        assert answer["id"] == 1 and answer["kind"] == "Cancelled"
        worker.send({"op": "ping", "id": 3})
        assert worker.until("id", 3) == {"id": 3, "ok": True, "busy": None}
        models = tmp_path / "Fiji.app" / "models"
        assert not models.exists() or not any(models.iterdir())  # nothing half-installed
    finally:
        worker.close()
