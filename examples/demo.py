"""deepij demo: the project's own nuclei bundle segments its example image, with its ImageJ macros.

1. reads the bundle ``examples/nuclei_bundle`` (``deepij.load``: a 0.5 rdf.yaml with deepImageJ's
   ``config.deepimagej``; the weights' sha256 are checked),
2. runs it on the example image (or ``--image``) with ``model.predict(path, processing="auto")``: the
   bundle's pre-processing macro in ImageJ (percentile normalisation), the U-Net, the post-processing macro
   in ImageJ (threshold, watershed, Analyze Particles); ``--by-hand`` chains those three pieces one by one
   instead (``nuclei_chain.segment``, what made the bundle's expected result),
3. writes ``labels.tif`` and ``probability.tif`` (ImageJ TIFFs), ``Results.csv`` (area, mean probability
   and centroid of each nucleus), ``figure.png`` (input, probability and labels side by side) and ``log.txt``
   into the output folder, and prints how many nuclei it found (and, for the example image, how many the
   synthetic image was drawn with).

Usage: ``python examples/demo.py --output out/demo [--image my_nuclei.tif] [--by-hand]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from nuclei_chain import read_image, save_figure, segment
from nuclei_data import EXAMPLE_COUNT, EXAMPLE_SEED, EXAMPLE_SIZE, synthetic_nuclei

BUNDLE = Path(__file__).with_name("nuclei_bundle")
EXAMPLE = BUNDLE / "exampleImage.tif"


def predict(model: Any, image: Path, by_hand: bool = False) -> Any:
    """The bundle run on an image file, macros included; ``.images``, ``.tables`` and ``.notes``."""
    if by_hand:
        return segment(model, image)
    return model.predict(image, processing="auto")


def run(output: Path, image: Path = EXAMPLE, by_hand: bool = False) -> int:
    import deepij

    started = time.perf_counter()
    model = deepij.load(BUNDLE)
    session = deepij.imagej()
    print(f"loaded {model.name!r} ({model.description.format_version}, weights "
          f"{', '.join(model.description.weights)}) and started ImageJ {session.version} in "
          f"{time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    result = predict(model, image, by_hand)
    labels = np.asarray(result.images["labels"])
    probability = np.asarray(result.images["probability"]).reshape(labels.shape)
    nuclei = result.tables["Results"]
    how = "chained by hand" if by_hand else 'model.predict(processing="auto")'
    print(f"ran the bundle on {image.name} {labels.shape} in {time.perf_counter() - started:.1f} s "
          f"({how}): pre-processing macro, network, post-processing macro")
    for note in result.notes:
        print(f"  {note}")

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        session.save_tiff(labels, staging / "labels.tif", title="labels")
        session.save_tiff(probability, staging / "probability.tif", title="probability")
        nuclei.to_csv(staging / "Results.csv", index=False)
        panels = {image.stem: read_image(image), "probability": probability, "labels": labels}
        save_figure(staging / "figure.png", panels, title=f"{model.name}: {len(nuclei)} nuclei")
        (staging / "notes.txt").write_text("".join(f"{note}\n" for note in result.notes))
        if output.exists():
            shutil.rmtree(output)
        staging.chmod(0o755)  # mkdtemp makes it private
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for name in ("labels.tif", "probability.tif", "Results.csv", "figure.png", "notes.txt"):
        print(f"wrote {output / name}")

    found = f"{len(nuclei)} nuclei, mean area {nuclei['Area'].mean():.0f} px"
    if image.resolve() == EXAMPLE.resolve():
        drawn = synthetic_nuclei(EXAMPLE_SIZE, EXAMPLE_COUNT, seed=EXAMPLE_SEED)
        found += f" (the synthetic image was drawn with {drawn.count}, {drawn.pairs} of them touching pairs)"
    print(f"found {found}; results in {output}/")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("out/demo"), help="output folder (replaced)")
    parser.add_argument("--image", type=Path, default=EXAMPLE, help="a 2-D TIFF of nuclei (default: the "
                        "bundle's example image)")
    parser.add_argument("--by-hand", action="store_true", help="chain run_macro, predict(processing='none') "
                        "and run_macro instead of model.predict(processing='auto')")
    options = parser.parse_args(argv)
    return run(options.output, options.image, options.by_hand)


if __name__ == "__main__":
    sys.exit(main())
