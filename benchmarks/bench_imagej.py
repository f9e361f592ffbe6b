"""ImageJ inside Python: start-up time and pixel conversion throughput.

Prints one machine-readable line per figure: ``name value unit``.

- ``jvm_start_s`` / ``session_start_s``: starting the JVM, and the whole ``deepij.imagej()`` (JVM, Xvfb,
  ImageJ's hidden main window), each in a fresh process; the first start is reported as ``*_cold``, the
  median of the later ones (files in the OS cache) as ``*_warm``.
- ``to_imageplus_*`` / ``to_xarray_*``: GB/s of numpy -> ImagePlus and ImagePlus -> xarray for a 2048x2048
  float32 image and a 64x512x512 float32 stack: the median of repeated conversions after a warm-up (steady
  state), and ``*_first`` for the very first conversion of the process, which also pays for memory the
  JVM and the kernel hand out for the first time (page faults are slow on virtual machines).
- ``run_macro_overhead_ms``: a trivial macro on a small image, end to end (clean state, run, collect).

Usage: ``.venv/bin/python benchmarks/bench_imagej.py [--starts 4] [--repeats 7]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

_START_PROBE = """
import json, time
started = time.perf_counter()
import deepij
session = deepij.imagej()
print(json.dumps({"jvm": session.startup_seconds, "session": time.perf_counter() - started}))
"""


def measure_starts(count: int) -> tuple[list[float], list[float]]:
    """JVM and session start times, each from a fresh interpreter."""
    jvm, whole = [], []
    for _ in range(count):
        done = subprocess.run([sys.executable, "-c", _START_PROBE], capture_output=True, text=True,
                              check=True)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        jvm.append(figures["jvm"])
        whole.append(figures["session"])
    return jvm, whole


def throughput(convert, payload, nbytes: int, repeats: int, warm_up: int = 3) -> tuple[float, float]:
    """(GB/s of the first call, median GB/s of ``repeats`` calls after ``warm_up`` more)."""
    seconds = []
    for _ in range(1 + warm_up + repeats):
        started = time.perf_counter()
        convert(payload)
        seconds.append(time.perf_counter() - started)
    return nbytes / seconds[0] / 1e9, nbytes / statistics.median(seconds[1 + warm_up:]) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=4, help="fresh-process starts to time (default 4)")
    parser.add_argument("--repeats", type=int, default=9, help="timed conversions per figure (default 9)")
    options = parser.parse_args()

    jvm, whole = measure_starts(options.starts)
    print(f"jvm_start_cold_s {jvm[0]:.3f} s")
    print(f"session_start_cold_s {whole[0]:.3f} s")
    if len(jvm) > 1:
        print(f"jvm_start_warm_s {statistics.median(jvm[1:]):.3f} s")
        print(f"session_start_warm_s {statistics.median(whole[1:]):.3f} s")

    import deepij

    session = deepij.imagej()
    rng = np.random.default_rng(0)
    cases = {
        "2048x2048_f32": rng.random((2048, 2048), dtype=np.float32),
        "64x512x512_f32": rng.random((64, 512, 512), dtype=np.float32),
    }
    for name, array in cases.items():
        java_first, to_java = throughput(session.to_imageplus, array, array.nbytes, options.repeats)
        imp = session.to_imageplus(array)
        python_first, to_python = throughput(session.to_xarray, imp, array.nbytes, options.repeats)
        if not np.array_equal(session.to_xarray(imp).values, array):
            raise SystemExit(f"{name}: the round trip changed the pixels")
        print(f"to_imageplus_{name} {to_java:.2f} GB/s")
        print(f"to_xarray_{name} {to_python:.2f} GB/s")
        print(f"to_imageplus_{name}_first {java_first:.2f} GB/s")
        print(f"to_xarray_{name}_first {python_first:.2f} GB/s")

    small = rng.random((64, 64), dtype=np.float32)
    session.run_macro('run("Add...", "value=1");', image=small)
    seconds = []
    for _ in range(options.repeats * 3):
        started = time.perf_counter()
        session.run_macro('run("Add...", "value=1");', image=small)
        seconds.append(time.perf_counter() - started)
    print(f"run_macro_overhead_ms {statistics.median(seconds) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
