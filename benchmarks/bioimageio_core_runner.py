"""bioimageio.core as a benchmark contender: run by bench_inference.py INSIDE the side environment
benchmarks/.venv-bioimageio (bioimageio.core is not installed in deepij's own environment, and this file
imports nothing from deepij).

Usage: ``python bioimageio_core_runner.py RDF IMAGE.npy [--block N]``. It loads the model once, prints
``bioimageio_<mode>_load_s`` and ``ready``, then times one ``bioimageio.core.predict`` per ``run`` line read
on stdin (answering ``time SECONDS``); ``quit`` saves the last output next to the image and prints the peak
RSS. ``mode`` is ``default`` (no block size: one pass on the whole, halo-padded image, as
``bioimageio.core.predict`` does by default) or ``block<N>`` (fixed input blocks of N pixels per spatial axis,
halo included, as deepij's tiles).
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
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from loguru import logger

    logger.remove()  # bioimageio.core logs every block
    from bioimageio.core import create_prediction_pipeline, load_description, predict

    mode = "default" if args.block is None else f"block{args.block}"
    image = np.load(args.image)
    started = time.perf_counter()
    pipeline = create_prediction_pipeline(load_description(args.rdf, perform_io_checks=False))
    print(f"bioimageio_{mode}_load_s {time.perf_counter() - started:.4g} s", flush=True)
    blocks = None if args.block is None else {"input": {"y": args.block, "x": args.block}}

    def run():
        return predict(model=pipeline, inputs={"input": image}, input_block_shape=blocks)

    started = time.perf_counter()
    result = run()
    print(f"bioimageio_{mode}_first_call_s {time.perf_counter() - started:.4g} s", flush=True)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "run":
            started = time.perf_counter()
            result = run()
            print(f"time {time.perf_counter() - started:.4f}", flush=True)
        elif line.strip() == "quit":
            break
    output = next(iter(result.members.values()))
    np.save(args.image.replace(".npy", f".bioimageio_{mode}.npy"), np.asarray(output.data, dtype=np.float32))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bioimageio_{mode}_peak_rss_mb {peak:.0f} MB", flush=True)
    print("bye", flush=True)


if __name__ == "__main__":
    main()
