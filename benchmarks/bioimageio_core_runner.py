"""bioimageio.core as a benchmark contender: run by bench_inference.py INSIDE the side environment
benchmarks/.venv-bioimageio (bioimageio.core is not installed in deepij's own environment, and this file
imports nothing from deepij).

Usage: ``python bioimageio_core_runner.py RDF IMAGE [--block N] [--label LABEL]``. It loads the model once,
prints ``<label>_load_s`` and ``ready``, then times one ``bioimageio.core.predict`` per ``run`` line read
on stdin (answering ``time SECONDS``); ``quit`` saves the last output next to the image and prints the peak
RSS. ``mode`` is ``default`` (no block size: one pass on the whole, halo-padded image, as
``bioimageio.core.predict`` does by default) or ``block<N>`` (fixed input blocks of N pixels per spatial axis,
halo included, as deepij's tiles); ``label`` defaults to ``bioimageio_<mode>``.

``IMAGE`` is a ``.npy`` array, or an OME-Zarr store (``.zarr``): bioimageio.core has no Zarr or Dask path, so
each timed run reads the store's full-resolution array into memory (zarr), predicts on it blockwise and
writes the output to a Zarr array next to it (``<store>.<label>.zarr``, chunks of 1024 pixels).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rdf")
    parser.add_argument("image")
    parser.add_argument("--block", type=int, default=None)
    parser.add_argument("--label", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from loguru import logger

    logger.remove()  # bioimageio.core logs every block
    from bioimageio.core import create_prediction_pipeline, load_description, predict

    mode = "default" if args.block is None else f"block{args.block}"
    label = args.label or f"bioimageio_{mode}"
    store = args.image.rstrip("/").endswith(".zarr")
    image = None if store else np.load(args.image)
    started = time.perf_counter()
    pipeline = create_prediction_pipeline(load_description(args.rdf, perform_io_checks=False))
    print(f"{label}_load_s {time.perf_counter() - started:.4g} s", flush=True)
    blocks = None if args.block is None else {"input": {"y": args.block, "x": args.block}}

    def run():
        given = read_store(args.image) if store else image
        result = predict(model=pipeline, inputs={"input": given}, input_block_shape=blocks)
        if store:
            write_store(f"{args.image.rstrip('/')}.{label}.zarr", next(iter(result.members.values())).data)
        return result

    started = time.perf_counter()
    result = run()
    print(f"{label}_first_call_s {time.perf_counter() - started:.4g} s", flush=True)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "run":
            started = time.perf_counter()
            result = run()
            print(f"time {time.perf_counter() - started:.4f}", flush=True)
        elif line.strip() == "quit":
            break
    output = np.asarray(next(iter(result.members.values())).data, dtype=np.float32)
    if store:  # a corner to compare, not the whole output
        np.save(f"{args.image.rstrip('/')}.{label}.npy", output[..., :1024, :1024])
    else:
        np.save(args.image.replace(".npy", f".bioimageio_{mode}.npy"), output)
    peak = high_water_mb()
    print(f"{label}_peak_rss_mb {peak:.0f} MB", flush=True)
    print("bye", flush=True)


def high_water_mb() -> float:
    """This process's peak resident memory (``VmHWM``; ``ru_maxrss`` would start at the driver's peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_store(path: str) -> np.ndarray:
    """An OME-Zarr image's full-resolution array, whole, with a batch axis (``bcyx`` for a ``cyx`` image)."""
    import zarr

    group = zarr.open_group(path, mode="r")
    attributes = group.attrs.asdict()
    level = attributes.get("ome", attributes)["multiscales"][0]["datasets"][0]["path"]
    return np.asarray(group[level][...])[None]


def write_store(path: str, values) -> None:
    """An output as a Zarr array of 1024-pixel chunks (replacing the last run's)."""
    import zarr

    values = np.asarray(values)
    chunks = (*values.shape[:-2], *(min(1024, n) for n in values.shape[-2:]))
    array = zarr.open_array(path, mode="w", shape=values.shape, chunks=chunks, dtype=values.dtype)
    array[...] = values


if __name__ == "__main__":
    main()
