"""What validating costs: each image metric on one ``--size`` x ``--size`` float32 pair, the label metrics on
a label image of ``--objects`` objects, and ``deepij.validate`` over a folder of ``--pairs`` TIFF pairs
(reading included), with and without figures.

Best of ``--rounds`` after one warm-up call (scikit-image, scipy and matplotlib imported). Prints seconds and
megapixels per second.

    .venv/bin/python benchmarks/bench_validate.py --size 2048 --objects 2000 --pairs 8 --rounds 3
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _common import best_time  # the benchmarks' shared parts, next to this file


def label_image(size: int, objects: int, rng: np.random.Generator) -> np.ndarray:
    """Square objects on a grid, each jittered, ``objects`` of them."""
    labels = np.zeros((size, size), np.int32)
    side = int(np.ceil(np.sqrt(objects)))
    cell = size // side
    for index in range(objects):
        row, column = divmod(index, side)
        y, x = row * cell + rng.integers(0, cell // 4 + 1), column * cell + rng.integers(0, cell // 4 + 1)
        labels[y : y + cell // 2, x : x + cell // 2] = index + 1
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import deepij
    from deepij.trust import label_metrics
    from deepij.trust.metrics import IMAGE_METRICS

    rng = np.random.default_rng(0)
    megapixels = args.size * args.size / 1e6
    truth = rng.random((args.size, args.size)).astype(np.float32)
    prediction = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1).astype(np.float32)
    print(f"image metrics on {args.size}x{args.size} float32 ({megapixels:.1f} MP)")
    total = 0.0
    for name, metric in IMAGE_METRICS.items():
        seconds = best_time(lambda metric=metric: metric(truth, prediction, None), args.rounds, warm_up=True)
        total += seconds
        print(f"  {name:<18} {seconds:8.3f} s  {megapixels / seconds:8.1f} MP/s")
    print(f"  {'all':<18} {total:8.3f} s")

    reference = label_image(args.size, args.objects, rng)
    test = np.roll(reference, 3, axis=1)
    seconds = best_time(lambda: label_metrics.label_metrics(reference, test), args.rounds, warm_up=True)
    print(f"label metrics, {args.objects} objects on {args.size}x{args.size}: {seconds:.3f} s")

    with tempfile.TemporaryDirectory() as folder:
        import tifffile

        root = Path(folder)
        (root / "truth").mkdir()
        (root / "test").mkdir()
        for index in range(args.pairs):
            tifffile.imwrite(root / "truth" / f"image_{index}.tif", truth, imagej=True)
            tifffile.imwrite(root / "test" / f"image_{index}.tif", prediction, imagej=True)
        seconds = best_time(lambda: deepij.validate(root / "truth", root / "test"), args.rounds, warm_up=True)
        print(f"validate a folder of {args.pairs} pairs, every image metric: {seconds:.3f} s "
              f"({seconds / args.pairs:.3f} s a pair)")
        seconds = best_time(lambda: deepij.validate(root / "truth", root / "test", metrics=["SSIM", "PSNR"],
                                               figures=root / "figures"), args.rounds, warm_up=True)
        print(f"validate a folder of {args.pairs} pairs, SSIM + PSNR + a PNG each: {seconds:.3f} s "
              f"({seconds / args.pairs:.3f} s a pair)")


if __name__ == "__main__":
    main()
