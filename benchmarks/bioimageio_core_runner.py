"""Run bioimageio.core on a bundle and print its timing: executed by bench_inference.py INSIDE the side
environment benchmarks/.venv-bioimageio (bioimageio.core is not installed in deepij's own environment).

Usage: ``python bioimageio_core_runner.py RDF IMAGE.npy [--block N] [--repeats R]``; prints
``bioimageio_<mode>_load_s``, ``bioimageio_<mode>_s`` (best of the repeats), ``bioimageio_<mode>_peak_rss_mb``
lines, where mode is ``default`` (whole image, as ``bioimageio.core.predict`` does without a block size)
or ``block<N>`` (fixed input blocks of N pixels per spatial axis, halo included, like deepij's tiles).
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rdf")
    parser.add_argument("image")
    parser.add_argument("--block", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from loguru import logger

    logger.remove()  # bioimageio.core logs every block at INFO

    from bioimageio.core import create_prediction_pipeline, load_description, predict

    mode = "default" if args.block is None else f"block{args.block}"
    image = np.load(args.image)
    started = time.perf_counter()
    model = load_description(args.rdf, perform_io_checks=False)
    pipeline = create_prediction_pipeline(model)
    print(f"bioimageio_{mode}_load_s {time.perf_counter() - started:.3f} s", flush=True)
    blocks = None if args.block is None else {"input": {"y": args.block, "x": args.block}}
    warm = np.ascontiguousarray(image[:, :, :256, :256])
    predict(model=pipeline, inputs={"input": warm}, input_block_shape=blocks)  # warm-up
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        result = predict(model=pipeline, inputs={"input": image}, input_block_shape=blocks)
        times.append(time.perf_counter() - started)
    output = next(iter(result.members.values()))
    np.save(args.image.replace(".npy", f".bioimageio_{mode}.npy"), np.asarray(output.data, dtype=np.float32))
    print(f"bioimageio_{mode}_s {min(times):.3f} s", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bioimageio_{mode}_peak_rss_mb {peak:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
