"""What the whole run costs around the network: reading the input, ImageJ pre/post-processing macros,
saving the outputs.

A deepImageJ 2.1-style bundle (tests/support/dij_bundles.py: a TorchScript convnet, a 256-bin scale-range
macro before it, threshold + Analyze Particles after it) runs on one image, ``--size`` pixels square:

- ``processing="none"`` (the network alone, from a numpy array);
- ``processing="macros"`` (both macros inside ImageJ), from numpy and from an ImageJ TIFF file;
- ``save()`` of that result (ImageJ TIFFs with provenance, CSV).

Best of ``--rounds`` after one warm-up call (ImageJ started, network loaded and converted). Prints seconds.

    .venv/bin/python benchmarks/bench_pipeline.py --size 1024 --rounds 3
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import best_time  # the benchmarks' shared parts (they put tests/ on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import tifffile

    import deepij
    from support.dij_bundles import write_segmentation_bundle_v0_3

    folder = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    bundle = write_segmentation_bundle_v0_3(folder / "bundle", shape_yx=(args.size, args.size))
    model = deepij.load(bundle.folder)
    image = bundle.test_input[0, 0]
    tiff = folder / "input.tif"
    tifffile.imwrite(tiff, image, imagej=True)
    session = deepij.imagej()
    options = {"session": session, "tiling": "deepimagej", "logging": "mute"}
    result = model.predict(image, **options)  # warm-up: ImageJ, the network, its ONNX conversion

    figures = {
        "network only (processing='none')": best_time(
            lambda: model.predict(image, processing="none", **options), args.rounds
        ),
        "with ImageJ macros, numpy input": best_time(lambda: model.predict(image, **options), args.rounds),
        "with ImageJ macros, TIFF file input": best_time(lambda: model.predict(tiff, **options), args.rounds),
        "save() (2 TIFFs + 1 CSV)": best_time(lambda: result.save(folder / "out"), args.rounds),
    }
    print(f"{args.size}x{args.size} float32, {result.plan.n_tiles} tile(s), best of {args.rounds}:")
    for label, seconds in figures.items():
        print(f"  {label:40s} {seconds:7.3f} s")
    macros = figures["with ImageJ macros, numpy input"] - figures["network only (processing='none')"]
    print(f"  {'ImageJ pre + post macros (difference)':40s} {macros:7.3f} s")


if __name__ == "__main__":
    main()
