"""Many images and big images on a real ``dask.distributed.LocalCluster`` of 2 worker processes: a folder
run equal to the single-process run (a corrupt image reported and skipped, resume), a worker killed mid-run
(no image lost, none written twice or half), and an OME-Zarr image larger than a worker's memory limit
(peak resident memory of each worker checked)."""

from __future__ import annotations

import dataclasses
import os
import signal

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
import tifffile
import xarray as xr
from dask.distributed import Client, LocalCluster

import deepij
from deepij.pipeline.batch import MARKERS, run_batch
from deepij.pipeline.distributed import framework_threads, run_many, run_zarr
from deepij.pipeline.zarr_io import read_zarr, write_ome_zarr
from support import dask_workers
from support.bundles import write_bundle_v0_5

cloudpickle.register_pickle_by_value(dask_workers)
OUTPUT = "probability"
WORKER_LIMIT = 320e6


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    # ONNX weights run by onnxruntime: a worker holds no torch (a smaller process for the memory test)
    return write_bundle_v0_5(tmp_path_factory.mktemp("dist") / "b05", weights=("onnx",))


@pytest.fixture(scope="module")
def model(bundle):
    loaded = deepij.load(bundle.folder)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def client():
    # Dask's own pause/terminate at the memory limit are off: the test measures the peak itself.
    settings = {"distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": False}
    with dask.config.set(settings), LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit=WORKER_LIMIT, dashboard_address=None
    ) as cluster, Client(cluster) as connected:
        yield connected


def write_images(folder, count, shape=(96, 80)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    for index in range(count):
        tifffile.imwrite(folder / f"img_{index:02d}.tif", (rng.random(shape) * 4000).astype(np.uint16))


def outputs_of(folder):
    return {p.name: tifffile.imread(p) for p in sorted(folder.glob("*.tif"))}


OPTIONS = {"runtime": "onnxruntime", "processing": "spec", "tile": 48}


def test_a_folder_on_two_workers_equals_the_single_process_run(model, client, tmp_path):
    write_images(tmp_path / "in", 6)
    (tmp_path / "in" / "img_03b.tif").write_bytes(b"II*\x00 not a TIFF")
    single = run_batch(model, tmp_path / "in", tmp_path / "single", progress=False, **OPTIONS)
    seen = []
    report = run_many(model, tmp_path / "in", tmp_path / "many", client=client, progress=False,
                      on_image=seen.append, **OPTIONS)
    assert [o.status for o in report.outcomes] == [o.status for o in single.outcomes]
    assert [o.source.name for o in report.failed] == ["img_03b.tif"]
    assert report.failed[0].error.startswith("InputError")
    assert len(seen) == 7 and report.exit_code == 1
    assert report.summary().endswith("7 images: 6 done, 0 already done, 1 failed")
    many, expected = outputs_of(tmp_path / "many"), outputs_of(tmp_path / "single")
    assert many.keys() == expected.keys() and len(many) == 6
    for name in expected:
        np.testing.assert_array_equal(many[name], expected[name])
    # every worker loaded the network once and kept it: the plugin is registered, each has the model
    loaded = client.run(_loaded_models)
    assert len(loaded) == 2 and all(count == 1 for count in loaded.values())
    again = run_many(model, tmp_path / "in", tmp_path / "many", client=client, progress=False, resume=True,
                     **OPTIONS)
    assert [o.status for o in again.outcomes].count("already done") == 6


def _loaded_models():
    from deepij.pipeline.model_ref import LOADED

    return sum(len(m._backends) for m in LOADED.values())


def test_a_worker_killed_mid_run_loses_no_image(model, client, tmp_path):
    write_images(tmp_path / "in", 10, shape=(160, 160))
    before = set(client.run(dask_workers.pid).values())
    killed = []

    def kill_one_worker(outcome):
        if not killed:  # the other worker is busy with an image now: kill it mid-image
            victim = sorted(before)[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    report = run_many(model, tmp_path / "in", tmp_path / "out", client=client, progress=False,
                      on_image=kill_one_worker, **OPTIONS)
    assert killed and report.exit_code == 0, report.summary()
    assert [o.status for o in report.outcomes] == ["done"] * 10
    client.wait_for_workers(2, timeout=60)
    assert set(client.run(dask_workers.pid).values()) != before  # the nanny started a new worker
    files = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file())
    assert files == [f"img_{i:02d}_{OUTPUT}.tif" for i in range(10)]  # each once, no leftover
    assert len(list((tmp_path / "out" / MARKERS).glob("*.json"))) == 10
    single = run_batch(model, tmp_path / "in", tmp_path / "single", progress=False, **OPTIONS)
    assert single.exit_code == 0
    for name, values in outputs_of(tmp_path / "single").items():
        np.testing.assert_array_equal(outputs_of(tmp_path / "out")[name], values)


@pytest.mark.parametrize("tile", [512, None])  # as asked; and chosen for the workers' memory
def test_a_zarr_image_larger_than_a_workers_memory(bundle, model, client, tmp_path, tile):
    side = 6400  # float64: 328 MB, above the 320 MB limit of each worker
    rng = da.random.default_rng(1)
    image = (rng.random((1, side, side), chunks=(1, 1024, 1024)) * 10).astype(np.float64)
    write_ome_zarr(xr.DataArray(image, dims=("c", "y", "x"), attrs={"pixel_size": {"y": 0.2, "x": 0.2}}),
                   tmp_path / "big.ome.zarr")
    assert int(np.prod(image.shape)) * 8 > WORKER_LIMIT
    baseline = client.run(dask_workers.start_peak_sampler)
    run_zarr(model, tmp_path / "big.ome.zarr", tmp_path / "out.ome.zarr", client=client, tile=tile,
             runtime="onnxruntime", processing="none", non_finite="propagate")
    peaks = client.run(dask_workers.stop_peak_sampler)
    assert all(baseline[w] < peaks[w] < WORKER_LIMIT for w in peaks), (baseline, peaks)
    written = read_zarr(tmp_path / "out.ome.zarr")
    assert written.shape == (1, side, side) and written.attrs["pixel_size"] == {"y": 0.2, "x": 0.2}
    # A corner against the network's own forward pass (torch, zero-padded: compared 4 pixels, the halo, off
    # its inner borders and the image's).
    corner = read_zarr(tmp_path / "big.ome.zarr").data[:, :300, :300].compute().astype(np.float32)[None]
    expected = bundle.model.forward(corner)[0][0]
    np.testing.assert_allclose(written.data[:, 4:296, 4:296].compute(), expected[:, 4:296, 4:296], atol=2e-5)


def test_a_model_is_found_again_by_its_token(model):
    from deepij.pipeline.model_ref import LOADED, ModelRef

    ref = ModelRef.of(model)
    assert ref.token == model.token and ref.model() is model
    # In a process that never saw the model (a Dask worker), the reference loads it once, under its token.
    elsewhere = dataclasses.replace(ref, token="loaded-in-another-process")
    loaded = elsewhere.model()
    assert loaded is not model and loaded.token == elsewhere.token and elsewhere.model() is loaded
    assert ModelRef.of(loaded) == elsewhere
    LOADED.pop(elsewhere.token).close()


def test_framework_threads_share_the_cores():
    assert framework_threads(2, cores=2) == 1 and framework_threads(3, cores=16) == 5


def test_a_lazy_run_plans_with_the_workers_memory(client):
    # the active client's workers: their memory limit (less what they hold now, a share kept as margin)
    # and threads, what the lazy run sizes its tiles and tasks with
    from deepij.inference.memory import SAFETY
    from deepij.pipeline.lazy_plan import active_client, workers_here

    assert active_client() is client
    found = workers_here(None)
    assert found.count == 2 and found.threads == 1
    assert 0 < found.memory < WORKER_LIMIT * SAFETY  # what the workers hold already is taken off
    assert workers_here("100MB").memory < 100e6 * SAFETY
    with dask.config.set(scheduler="threads"):  # Dask's threads here, not the cluster
        assert active_client() is None
