"""The ImageJ plugin's bridge: a call of ``run("DeepImageJ Run", ...)`` in a separate ImageJ 1.x (its own JVM,
the plugin installed with ``deepij plugin install``, its worker already started and the model loaded) against
``Model.predict`` on the same image in this process, at 512 x 512 and 2048 x 2048 (float32).

What the bridge adds is the transfer and the protocol: the plan request, the image copied and written into the
shared memory-mapped file, the worker reading it, the outputs written back and read into an ImagePlus, the
JSON lines. The network and the spec ops cost the same on both sides (one pass on the image, the same
runtime). Rounds alternate (a call in ImageJ, then ``predict`` here) so a busy machine slows both alike; the
figures are medians.

Prints one line per figure, ``name value unit``:

- ``predict_<size>_ms``: ``model.predict(image)`` here, the model loaded;
- ``imagej_call_<size>_ms``: the call in ImageJ, timed by the macro (``getTime()`` around ``run``), the
  second and later calls;
- ``bridge_overhead_<size>_ms`` and ``bridge_overhead_<size>_pct``: the difference, and as a share of
  ``predict`` (target: under 10 % at 2048 x 2048).

The model is the test helpers' 0.5 bundle (``tests/support``: a TorchScript convnet with spec ops), on the
CPU. The separate ImageJ runs ``java -jar /usr/share/java/ij.jar -batch`` under a virtual display.

Usage: ``.venv/bin/python benchmarks/bench_bridge.py [--sizes 512,2048] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

MODEL = "bench bridge model"


def _wait_for(path: Path, process) -> str:
    while not path.exists():
        if process.process.poll() is not None:
            finished = process.finish()
            raise RuntimeError(f"ImageJ ended early:\n{finished.stdout}\n{finished.stderr}")
        time.sleep(0.005)
    time.sleep(0.005)  # the macro writes the file in one go; let it close it
    return path.read_text()


def _macro(image: Path, signals: Path, repeats: int) -> str:
    from support.imagej_process import macro_string

    def signal(name: str) -> str:
        return macro_string(signals / name)

    return f"""
setBatchMode(true);
open({macro_string(image)});
input = getTitle();
run("DeepImageJ Run", "model=[{MODEL}] logging=mute");
close();
File.saveString("ready", {signal("ready")});
for (k = 0; k < {repeats}; k++) {{
    while (!File.exists({macro_string(signals)} + "/go_" + k)) wait(1);
    selectImage(input);
    started = getTime();
    run("DeepImageJ Run", "model=[{MODEL}] logging=mute");
    took = getTime() - started;
    close();
    File.saveString("" + took, {macro_string(signals)} + "/took_" + k);
}}
"""


def measure(size: int, repeats: int, root: Path, display: str) -> tuple[float, float]:
    """Median ms of ``predict`` here and of the call in ImageJ, rounds alternating."""
    import tifffile

    import deepij
    from support.imagej_process import ImageJProcess

    imagej = root / "ImageJ"
    image = np.random.default_rng(size).random((size, size), dtype=np.float32) * 1000
    path = root / f"image_{size}.tif"
    tifffile.imwrite(path, image, imagej=True)
    signals = root / f"signals_{size}"
    signals.mkdir()
    model = deepij.load(imagej / "models" / "bench")
    model.predict(image)  # loads the network here
    process = ImageJProcess(imagej, _macro(path, signals, repeats), display=display, name=f"bench_{size}")
    try:
        _wait_for(signals / "ready", process)  # first call done: worker started, model loaded
        here, there = [], []
        for k in range(repeats):
            started = time.perf_counter()
            model.predict(image)
            here.append((time.perf_counter() - started) * 1e3)
            (signals / f"go_{k}").write_text("")
            there.append(float(_wait_for(signals / f"took_{k}", process)))
        process.finish()
    finally:
        process.kill()
    return statistics.median(here), statistics.median(there)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,2048")
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()

    from deepij.imagej.display import VirtualDisplay
    from support.bundles import write_bundle_v0_5
    from support.imagej_process import make_imagej

    root = Path(tempfile.mkdtemp(prefix="bench_bridge_"))
    imagej = make_imagej(root / "ImageJ")
    write_bundle_v0_5(imagej / "models" / "bench", name=MODEL)
    screen = VirtualDisplay.start()
    try:
        display = screen.wait_ready()
        for size in (int(s) for s in options.sizes.split(",")):
            predict, call = measure(size, options.repeats, root, display)
            print(f"predict_{size}_ms {predict:.1f} ms")
            print(f"imagej_call_{size}_ms {call:.1f} ms")
            print(f"bridge_overhead_{size}_ms {call - predict:.1f} ms")
            print(f"bridge_overhead_{size}_pct {100 * (call - predict) / predict:.1f} %", flush=True)
    finally:
        screen.stop()


if __name__ == "__main__":
    main()
