"""Images bigger than memory at the in-memory speed: deepij on an OME-Zarr store, against deepij on the same
image in memory and against bioimageio.core's blockwise predict on the same store.

Networks (``--nets``): ``demo``, the demo bundle (examples/nuclei_bundle: a U-Net of 160 kB, ``scale_range``
before it, so exact percentiles of the whole image; its spec ops, ``processing="spec"``), and ``unet``, a
zoo-sized U-Net (bench_fast_path.py's: depth 3, base 16, fixed-dims ONNX that deepij relaxes; TorchScript for
bioimageio.core), no processing. Images (``--sizes``): :func:`_common.make_image` (float32, 0..1000),
written as OME-Zarr 0.5 with 1024-pixel chunks.

Contenders, each in its own process, timed in interleaved rounds (best of ``--repeats`` after a warm-up
pass), each with its peak resident memory:

- ``memory``: ``model.predict`` on the image read into memory before the timing (the in-memory path);
- ``zarr``: ``model.predict(store)`` and :func:`~deepij.pipeline.zarr_io.write_ome_zarr` of its output to
  another store: store to store, on Dask's threads in the process, never the whole image in memory;
- ``bioimageio_block<N>`` (``--bio-blocks``, unless ``--no-bioimageio``): bioimageio.core has no Dask or
  Zarr path; its runner reads the store whole into memory, runs ``predict`` with ``input_block_shape``
  (fixed N-pixel blocks, halo included, in memory) and writes the output to a Zarr array.

Both deepij contenders run on ``--runtime`` (default onnxruntime, see :data:`RUNTIME`), otherwise with their
defaults (tiles chosen by each, in its own process).

Printed (``name value unit``): per network and size, each contender's seconds (``..._s``), throughput
(``..._mpix_s``) and peak RSS (``..._peak_rss_mb``); ``..._zarr_over_memory_throughput_ratio`` (the target
is >= 0.8) and ``..._zarr_over_bioimageio_block<N>_throughput_ratio``; the largest difference of the
contenders' outputs from the in-memory one on the image's first 1024x1024 pixels (the tests check the lazy
result equal to the in-memory one; here a check that the figures compare like with like); the machine's
load before and after.

Usage: ``.venv/bin/python benchmarks/bench_lazy.py [--nets demo unet] [--sizes 3072 8192] [--repeats 3]
[--bio-blocks 256 1024] [--no-bioimageio] [--runtime auto]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import _common as common  # the benchmarks' shared parts, next to this file (on sys.path when it runs)
import numpy as np

HERE = Path(__file__).resolve().parent
CHUNK = 1024
CORNER = (..., slice(0, 1024), slice(0, 1024))
"""What each contender saves of its output to be compared."""
OPTIONS = {"demo": {"processing": "spec"}, "unet": {}}
"""predict's options per network (the demo bundle's own steps run in ImageJ: its spec ops here)."""
RUNTIME = os.environ.get("DEEPIJ_BENCH_RUNTIME", "onnxruntime")
"""The runtime both deepij contenders use (``--runtime``): one engine for both, as the automatic choice is
a timed probe that may fall either way on a loaded machine (and OpenVINO's numerics make the measured
receptive field of the zoo-sized U-Net exceed its halo, so that the in-memory run then takes the 3k image
in one pass instead of tiles)."""


# --- the bundles and images -----------------------------------------------------------------------------


def prepare(workdir: Path, nets: Sequence[str], sizes: Sequence[int]) -> None:
    """The bundles (``<net>/rdf.yaml`` for deepij, ``<net>_bio/rdf.yaml`` for bioimageio.core) and an
    OME-Zarr store per size."""
    import dask.array as da
    import xarray as xr

    from deepij.pipeline.zarr_io import write_ome_zarr

    if "demo" in nets:
        shutil.copytree(common.ROOT / "examples" / "nuclei_bundle", workdir / "demo")
        shutil.copytree(common.ROOT / "examples" / "nuclei_bundle", workdir / "demo_bio")
    if "unet" in nets:
        import bench_fast_path

        bundle, torchscript_only = bench_fast_path.write_bundles(workdir / "unet_bundles")
        (workdir / "unet").symlink_to(bundle)
        (workdir / "unet_bio").symlink_to(torchscript_only)
    for side in sizes:
        image = da.from_array(common.make_image(side)[0] * 1000, chunks=(1, CHUNK, CHUNK))  # cyx, float32
        write_ome_zarr(xr.DataArray(image, dims=("c", "y", "x")), store(workdir, side))
        del image


def store(workdir: Path, side: int) -> Path:
    return workdir / f"image{side}.ome.zarr"


# --- the contenders (each in its own process) -----------------------------------------------------------


def worker_memory(workdir: Path, net: str, side: int) -> None:
    state: dict[str, object] = {}

    def load() -> Callable[[], object]:
        import deepij
        from deepij.pipeline.zarr_io import read_zarr

        model = deepij.load(workdir / net)
        image = read_zarr(store(workdir, side)).compute()  # in memory before the timing

        def run() -> None:
            state["result"] = model.predict(image, runtime=RUNTIME, **OPTIONS[net])

        return run

    def finish() -> None:
        result = state["result"]
        np.save(workdir / f"{net}{side}.memory.npy", common.output_array(result)[CORNER])
        for note in getattr(result, "notes", []):
            print(f"# memory: {note}", flush=True)

    common.serve(f"{net}_{side}_memory", load, finish)


def worker_zarr(workdir: Path, net: str, side: int) -> None:
    state: dict[str, object] = {}
    out = workdir / f"{net}{side}.out.ome.zarr"

    def load() -> Callable[[], object]:
        import deepij
        from deepij.pipeline.zarr_io import write_ome_zarr

        model = deepij.load(workdir / net)

        def run() -> None:
            result = model.predict(str(store(workdir, side)), runtime=RUNTIME, **OPTIONS[net])
            write_ome_zarr(next(iter(result.images.values())), out)
            state["result"] = result

        return run

    def finish() -> None:
        from deepij.pipeline.zarr_io import read_zarr

        written = read_zarr(out).data[CORNER].compute()
        np.save(workdir / f"{net}{side}.zarr.npy", np.asarray(written, dtype=np.float32))
        for note in getattr(state["result"], "notes", []):
            print(f"# zarr: {note}", flush=True)

    common.serve(f"{net}_{side}_zarr", load, finish)


def bioimageio(workdir: Path, net: str, side: int, blocks: Sequence[int]) -> list:
    """bioimageio.core's contenders on the store (its runner in its own environment); none without it."""
    side_env = common.bioimageio_env()
    if side_env is None:
        return []
    runner = [str(side_env / "bin" / "python"), str(HERE / "bioimageio_core_runner.py")]
    runner += [str(workdir / f"{net}_bio" / "rdf.yaml"), str(store(workdir, side))]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TQDM_DISABLE"] = "1"
    return [
        (f"{net}_{side}_bioimageio_block{b}", [*runner, "--block", str(b), "--label",
                                               f"{net}_{side}_bioimageio_block{b}"], env)
        for b in blocks
    ]


# --- the driver -----------------------------------------------------------------------------------------


def measure(workdir: Path, net: str, side: int, args: argparse.Namespace) -> None:
    me = [sys.executable, str(Path(__file__).resolve()), "--workdir", str(workdir), "--net", net]
    me += ["--side", str(side), "--worker"]
    plan: list[tuple[str, list[str], dict | None]] = [
        (f"{net}_{side}_memory", [*me, "memory"], None),
        (f"{net}_{side}_zarr", [*me, "zarr"], None),
    ]
    if not args.no_bioimageio:
        plan += bioimageio(workdir, net, side, args.bio_blocks)
    print(f"# {net} on {side}x{side}: load before {os.getloadavg()}", flush=True)
    figures = common.run_rounds(plan, workdir, args.repeats)
    pixels = side * side / 1e6
    for label, _, _ in plan:
        if figures.get(f"{label}_s"):
            common.emit(f"{label}_mpix_s", pixels / figures[f"{label}_s"], "Mpixel/s")
    memory = figures.get(f"{net}_{side}_memory_s")
    for label, _, _ in plan[1:]:
        seconds = figures.get(f"{label}_s")
        if memory and seconds:
            contender = label.removeprefix(f"{net}_{side}_")
            common.emit(f"{net}_{side}_{contender}_over_memory_throughput_ratio", memory / seconds, "x")
    zarr = figures.get(f"{net}_{side}_zarr_s")
    for label, _, _ in plan[2:]:
        if zarr and figures.get(f"{label}_s"):
            name = f"{net}_{side}_zarr_over_{label.removeprefix(f'{net}_{side}_')}_throughput_ratio"
            common.emit(name, figures[f"{label}_s"] / zarr, "x")
    differences(workdir, net, side)
    print(f"# {net} on {side}x{side}: load after {os.getloadavg()}", flush=True)


def differences(workdir: Path, net: str, side: int) -> None:
    reference = workdir / f"{net}{side}.memory.npy"
    if not reference.is_file():
        return
    expected = np.load(reference).reshape(-1)
    others = {"zarr": workdir / f"{net}{side}.zarr.npy"}
    others |= {p.name.split(".")[-2]: p for p in workdir.glob(f"image{side}.ome.zarr.{net}_{side}_bio*.npy")}
    for name, path in others.items():
        if path.is_file():
            difference = np.abs(np.load(path).reshape(-1) - expected)
            label = f"{net}_{side}_{name.removeprefix(f'{net}_{side}_')}"
            common.emit(f"{label}_max_abs_diff", float(difference.max()), "1")
            common.emit(f"{label}_mean_abs_diff", float(difference.mean()), "1")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["demo", "unet"], choices=["demo", "unet"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[3072])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bio-blocks", nargs="+", type=int, default=[1024])
    parser.add_argument("--no-bioimageio", action="store_true")
    parser.add_argument("--runtime", default=RUNTIME, help="deepij's runtime for both its contenders")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--net", help=argparse.SUPPRESS)
    parser.add_argument("--side", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.worker == "prepare":
        prepare(args.workdir, args.nets, args.sizes)
        return 0
    if args.worker:
        worker = worker_memory if args.worker == "memory" else worker_zarr
        worker(args.workdir, args.net, args.side)
        return 0
    os.environ["DEEPIJ_BENCH_RUNTIME"] = args.runtime  # the contenders' processes inherit it
    workdir = Path(tempfile.mkdtemp(prefix="deepij-lazy-"))
    try:
        print(f"# {os.cpu_count()} cpus, load {os.getloadavg()}", flush=True)
        os.environ["DEEPIJ_CACHE_DIR"] = str(workdir / "cache")  # never the user's cache; children inherit
        # in a process of its own: a child starts with its parent's peak RSS (ru_maxrss survives exec), so
        # the driver stays small (the bundles import torch, the images are made whole)
        me = [sys.executable, str(Path(__file__).resolve()), "--workdir", str(workdir), "--worker", "prepare"]
        me += ["--nets", *args.nets, "--sizes", *map(str, args.sizes)]
        subprocess.run(me, check=True)
        for side in args.sizes:
            for net in args.nets:
                measure(workdir, net, side, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
