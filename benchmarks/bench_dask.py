"""Scaling out on Dask: images per second with 1 and 2 workers, peak memory per worker on a Zarr image
larger than a worker's memory limit, and the time to the first output.

The project's 0.5 test bundle (tests/support/bundles.py: a small convnet, zero-mean/unit-variance before it,
sigmoid after it), ONNX weights run by onnxruntime:

- a folder of ``--images`` TIFFs of ``--size`` pixels square through :func:`deepij.run_many` on a
  ``LocalCluster`` of 1 and then 2 worker processes (one thread each): images/s, the scaling efficiency
  (2-worker rate / (2 x 1-worker rate)), and the time from the call to the first image's files being in
  place (cluster start and model loading included);
- an OME-Zarr image ``--factor`` times a worker's ``--limit`` (float64) through :func:`run_zarr` on 2
  workers with that memory limit: each worker's peak resident memory (sampled every 5 ms), its baseline,
  and the seconds.

    .venv/bin/python benchmarks/bench_dask.py                      # the full measurement (minutes)
    .venv/bin/python benchmarks/bench_dask.py --images 8 --size 256 --factor 1.1 --limit 320MB   # brief
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def folder_rate(model, folder: Path, out: Path, workers: int) -> tuple[float, float]:
    """(images per second once the workers hold the model, seconds from a cold start to the first image
    done: cluster start and model loading included)."""
    from dask.distributed import Client, LocalCluster

    from deepij.pipeline.distributed import run_many

    started = time.perf_counter()
    first: list[float] = []
    options = {"runtime": "onnxruntime", "processing": "spec"}
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        # a cold start: the cluster, the workers loading the model, the first image
        run_many(model, sorted(folder.glob("warm*.tif")), out / "warm", client=client, progress=False,
                 on_image=lambda outcome: first.append(time.perf_counter()), **options)
        timed = time.perf_counter()
        report = run_many(model, sorted(folder.glob("img*.tif")), out / f"w{workers}", client=client,
                          progress=False, **options)
        seconds = time.perf_counter() - timed
    assert report.exit_code == 0, report.summary()
    return len(report.outcomes) / seconds, first[0] - started


def zarr_peak(model, folder: Path, limit: float, factor: float) -> None:
    import cloudpickle
    import dask
    import dask.array as da
    import xarray as xr
    from dask.distributed import Client, LocalCluster

    from deepij.pipeline.distributed import run_zarr
    from deepij.pipeline.zarr_io import write_ome_zarr
    from support import dask_workers

    cloudpickle.register_pickle_by_value(dask_workers)
    side = int(math.sqrt(limit * factor / 8)) + 1
    image = (da.random.default_rng(1).random((1, side, side), chunks=(1, 1024, 1024)) * 10).astype("float64")
    write_ome_zarr(xr.DataArray(image, dims=("c", "y", "x")), folder / "big.ome.zarr")
    settings = {"distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": False}
    with dask.config.set(settings), LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit=limit, dashboard_address=":0"
    ) as cluster, Client(cluster) as client:
        baseline = client.run(dask_workers.start_peak_sampler)
        started = time.perf_counter()
        run_zarr(model, folder / "big.ome.zarr", folder / "out.ome.zarr", client=client, tile=512,
                 runtime="onnxruntime", processing="spec")
        seconds = time.perf_counter() - started
        peaks = client.run(dask_workers.stop_peak_sampler)
    rate = side * side / seconds / 1e6
    print(f"zarr image {side}x{side} float64 = {image.nbytes / 1e6:.0f} MB, {image.nbytes / limit:.1f}x the "
          f"worker limit of {limit / 1e6:.0f} MB: {seconds:.1f} s, {rate:.2f} Mpixel/s")
    for worker, peak in peaks.items():
        print(f"  worker {worker}: baseline {baseline[worker] / 1e6:.0f} MB, peak {peak / 1e6:.0f} MB "
              f"({peak / limit:.2f} of the limit)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--limit", default="400MB", help="memory limit of each worker in the Zarr run")
    parser.add_argument("--factor", type=float, default=8.0, help="Zarr image size / worker limit")
    args = parser.parse_args()

    import numpy as np
    import tifffile

    import deepij
    from deepij.sizes import parse_memory_size
    from support.bundles import write_bundle_v0_5

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        bundle = write_bundle_v0_5(folder / "bundle", weights=("onnx",))
        model = deepij.load(bundle.folder)
        rng = np.random.default_rng(0)
        for index in range(args.images):
            tifffile.imwrite(folder / f"img_{index:03d}.tif", (rng.random((args.size, args.size)) * 4000)
                             .astype(np.uint16))
        for index in range(2):
            tifffile.imwrite(folder / f"warm_{index}.tif", np.zeros((args.size, args.size), np.uint16))
        rates = {}
        for workers in (1, 2):
            rate, first = folder_rate(model, folder, folder, workers)
            rates[workers] = rate
            print(f"{workers} worker(s): {rate:.2f} images/s ({rate * args.size ** 2 / 1e6:.2f} Mpixel/s), "
                  f"first output {first:.1f} s after a cold start")
        print(f"scaling efficiency 2 workers: {rates[2] / (2 * rates[1]):.2f}")
        zarr_peak(model, folder, float(parse_memory_size(args.limit)), args.factor)


if __name__ == "__main__":
    main()
