"""Does ``max_memory=`` hold? Peak resident memory of ``predict`` above its baseline, against the cap.

An 8192 x 8192 float32 image (268 MB) through a model with spec pre- and post-processing, the way zoo
bundles declare them: ``scale_range`` (1 / 99.8 percentiles per sample) before the network, ``sigmoid``
after; the network a TorchScript stack of three 3x3 convolutions (8 hidden channels, halo 3), run with
deepij's defaults. Each cap runs in a fresh child process. The baseline is the resident size just before
``predict`` (model loaded, image in memory); the peak is the kernel's high-water mark of the process reset
at that moment (``/proc/self/clear_refs``), so model loading does not count and nothing between samples is
missed. Everything ``predict`` allocates counts: statistics, tiles, the framework's working memory, the
output it returns.

Figures printed, one per line, ``name value unit``:

- ``image_mb``, ``output_mb``: the input image and the returned output;
- ``peak_above_baseline_mb_<cap>``, ``cap_mb_<cap>``, ``peak_over_cap_<cap>`` (at most 1 when the cap holds),
  ``tiles_<cap>``, ``seconds_<cap>``.

Run: ``.venv/bin/python benchmarks/bench_memory_cap.py [--size 8192] [--caps 500MB 1GB 2GB] [--runtime R]``
(``--runtime onnxruntime`` / ``openvino`` fixes the engine; ``auto`` lets the load-time probe choose).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common  # the benchmarks' shared parts, next to this file (on sys.path when it runs)


def child(model_path: Path, size: int, cap: str, runtime: str = "auto") -> dict:
    import gc

    import numpy as np
    import psutil

    from deepij.bundle.description import ProcessingOp
    from deepij.pipeline import Model

    normalise = ProcessingOp(
        "scale_range", {"mode": "per_sample", "axes": "yx", "min_percentile": 1.0, "max_percentile": 99.8}
    )
    sigmoid = ProcessingOp("sigmoid", {})
    model = Model(_common.convnet_description(model_path, "bench memory cap", [normalise], [sigmoid]))
    model.backend(runtime=runtime)  # load (and convert) before measuring
    image = (np.random.default_rng(0).random((1, 1, size, size), dtype=np.float32) * 4000).astype(np.float32)
    gc.collect()
    before = psutil.Process().memory_info().rss
    _common.reset_high_water()
    start = time.perf_counter()
    result = model.predict(image, processing="spec", max_memory=cap, runtime=runtime)
    seconds = time.perf_counter() - start
    peak = _common.high_water_bytes()
    out = result.images["out"]
    return {
        "peak_above": peak - before,
        "tiles": result.plan.n_tiles,
        "tile": result.plan.tile,
        "seconds": seconds,
        "runtime": result.runtime,
        "image": image.nbytes,
        "output": out.values.nbytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--caps", nargs="+", default=["500MB", "1GB", "2GB"])
    parser.add_argument("--runtime", default="auto", help="what runs the network (auto, onnxruntime...)")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "SIZE", "CAP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, size, cap = args.child
        _common.print_child_json(child(Path(model), int(size), cap, args.runtime))
        return
    from deepij.sizes import parse_memory_size

    with tempfile.TemporaryDirectory() as folder:
        model = _common.write_convnet(Path(folder))
        first = True
        for cap in args.caps:
            try:
                run = _common.run_child(__file__, str(model), str(args.size), cap, "--runtime", args.runtime)
            except _common.ChildFailed as failed:
                print(f"# cap {cap} failed: {failed}")
                continue
            if first:
                print(f"image_mb {run['image'] / 1e6:.1f} MB")
                print(f"output_mb {run['output'] / 1e6:.1f} MB")
                first = False
            limit = parse_memory_size(cap)
            print(f"peak_above_baseline_mb_{cap} {run['peak_above'] / 1e6:.1f} MB")
            print(f"cap_mb_{cap} {limit / 1e6:.1f} MB")
            print(f"peak_over_cap_{cap} {run['peak_above'] / limit:.2f} ratio")
            print(f"tiles_{cap} {run['tiles']} tiles  # tile {run['tile']}, runtime {run['runtime']}")
            print(f"seconds_{cap} {run['seconds']:.1f} s")


if __name__ == "__main__":
    main()
