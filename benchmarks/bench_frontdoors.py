"""The front doors: what ``run("DeepImageJ Run", ...)`` costs in a macro, first call and later calls, against
``Model.predict`` on the same image; and ``deepij run`` over a folder, per image.

Prints one machine-readable line per figure: ``name value unit``.

- ``predict_ms``: ``model.predict(image)`` on a loaded model (median of the repeats), the floor (rounds
  alternate with the macro calls below);
- ``macro_first_call_ms``: a macro calling ``run("DeepImageJ Run", "model=[...] ...")`` once, the model not
  loaded yet (finding it by name, reading the bundle, loading the network, running);
- ``macro_next_call_ms``: the same macro again (the model stays loaded), median of the repeats;
- ``macro_overhead_ms``: ``macro_next_call_ms - predict_ms``: what the front door adds (the macro run, the
  option parsing, the image into and the outputs out of ImageJ);
- ``batch_per_image_ms``: ``run_batch`` over a folder of TIFFs (read, predict, write TIFF atomically, mark).

The model is the test helpers' 0.5 bundle (``tests/support``: a TorchScript convnet, spec ops), on a
512 x 512 image, on the CPU.

Usage: ``.venv/bin/python benchmarks/bench_frontdoors.py [--size 512] [--repeats 7] [--images 8]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def milliseconds(action, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--images", type=int, default=8)
    options = parser.parse_args()

    import tifffile

    import deepij
    from deepij.pipeline.batch import run_batch
    from support.bundles import write_bundle_v0_5

    root = Path(tempfile.mkdtemp(prefix="bench_frontdoors_"))
    name = "bench front door model"
    models = root / "models"
    bundle = write_bundle_v0_5(models / "bench_model", name=name)
    image = np.random.default_rng(0).random((options.size, options.size), dtype=np.float32) * 1000

    model = deepij.load(bundle.folder)
    model.predict(image)  # loads the network

    os.environ["DEEPIJ_MODELS_DIR"] = str(models)
    session = deepij.imagej()
    macro = f'run("DeepImageJ Run", "model=[{name}] format=Pytorch logging=mute");'
    first = milliseconds(lambda: session.run_macro(macro, image=image), 1)[0]
    # interleaved rounds, so a busy machine slows both alike
    direct, through_macro = [], []
    for _ in range(options.repeats):
        direct += milliseconds(lambda: model.predict(image), 1)
        through_macro += milliseconds(lambda: session.run_macro(macro, image=image), 1)
    predict, later = statistics.median(direct), statistics.median(through_macro)

    folder = root / "images"
    folder.mkdir()
    for index in range(options.images):
        tifffile.imwrite(folder / f"image_{index:02d}.tif", image)
    started = time.perf_counter()
    report = run_batch(model, folder, root / "out", progress=False)
    per_image = (time.perf_counter() - started) * 1e3 / options.images
    assert report.exit_code == 0, report.summary()

    print(f"predict_ms {predict:.1f} ms")
    print(f"macro_first_call_ms {first:.1f} ms")
    print(f"macro_next_call_ms {later:.1f} ms")
    print(f"macro_overhead_ms {later - predict:.1f} ms")
    print(f"batch_per_image_ms {per_image:.1f} ms")


if __name__ == "__main__":
    main()
