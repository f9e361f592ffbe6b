"""Peak memory of tiled predictions on a large float32 image (8192 x 8192 by default).

Each configuration (image size, tile size) runs in a fresh child process, whose peak resident memory
(``VmHWM``) is exact. The network is a cheap real one: a TorchScript stack of three 3x3 convolutions
(8 hidden channels), run with deepij's defaults (onnxruntime when the conversion reproduces torch).
Figures printed, one per line, ``name value unit`` (``S_T`` = image size S, tile T):

- ``input_output_mb_S``: the input plus the output array (what any whole-image run must hold);
- ``tiles_S_T``, ``peak_rss_mb_S_T`` (the child's whole peak, Python and framework included),
  ``peak_over_io_S_T`` (that peak over input + output), ``overhead_mb_S_T`` (peak minus the resident size
  just before ``predict`` with the image loaded, minus the output array: what the run adds besides the
  result it returns), ``seconds_S_T``;
- ``overhead_spread_mb_T``: for a fixed tile T over image sizes (so over tile counts), the largest minus
  the smallest overhead: near 0 when memory does not grow with the number of tiles.

Run: ``.venv/bin/python benchmarks/bench_tiling_memory.py [--configs 8192:512 4096:512 ... 8192:auto]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common  # the benchmarks' shared parts, next to this file (on sys.path when it runs)


def child(model_path: Path, size: int, tile: str) -> dict:
    import numpy as np
    import psutil

    from deepij.pipeline import Model

    model = Model(_common.convnet_description(model_path, "bench convnet"))
    model.backend()  # load (and convert) before measuring
    image = np.random.default_rng(0).random((1, 1, size, size), dtype=np.float32)
    before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    request = None if tile == "auto" else int(tile)
    result = model.predict(image, tile=request)
    seconds = time.perf_counter() - start
    peak = _common.peak_rss_mb() * 2**20
    out = result.images["out"]
    return {
        "tile": str(result.plan.tile),
        "tiles": result.plan.n_tiles,
        "peak": peak,
        "before": before,
        "seconds": seconds,
        "io": image.nbytes + out.values.nbytes,
        "output": out.values.nbytes,
        "runtime": result.runtime,
        "batch": result.batch_size,
    }


DEFAULT_CONFIGS = ["2048:512", "4096:512", "8192:512", "8192:256", "8192:1024", "8192:2048", "8192:auto"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", nargs="+", default=DEFAULT_CONFIGS, help="SIZE:TILE pairs (TILE may be auto)"
    )
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "SIZE", "TILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _common.print_child_json(child(Path(args.child[0]), int(args.child[1]), args.child[2]))
        return
    with tempfile.TemporaryDirectory() as folder:
        model_path = _common.write_convnet(Path(folder))
        runs = []
        for config in args.configs:
            size, tile = config.split(":")
            runs.append((int(size), tile, _common.run_child(__file__, str(model_path), size, tile)))
    report(runs)


def report(runs: list[tuple[int, str, dict]]) -> None:
    mb = 1e6
    for size in sorted({size for size, _, _ in runs}):
        io = next(run["io"] for s, _, run in runs if s == size)
        print(f"input_output_mb_{size} {io / mb:.1f} MB")
    overheads: dict[str, list[float]] = {}
    for size, tile, run in runs:
        key = f"{size}_{tile}"
        overhead = run["peak"] - run["before"] - run["output"]
        overheads.setdefault(tile, []).append(overhead)
        print(f"tiles_{key} {run['tiles']} tiles")
        print(f"tile_{key} {run['tile'].replace(' ', '')} px")
        print(f"batch_{key} {run['batch']} tiles")
        print(f"peak_rss_mb_{key} {run['peak'] / mb:.1f} MB")
        print(f"peak_over_io_{key} {run['peak'] / run['io']:.2f} x")
        print(f"overhead_mb_{key} {overhead / mb:.1f} MB")
        print(f"seconds_{key} {run['seconds']:.1f} s")
    for tile, values in overheads.items():
        if len(values) > 1 and tile != "auto":
            print(f"overhead_spread_mb_{tile} {(max(values) - min(values)) / mb:.1f} MB")
    print(f"runtime {runs[0][2]['runtime']} name")


if __name__ == "__main__":
    main()
