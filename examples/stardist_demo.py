"""deepij's StarDist demo: a StarDist bundle segments nuclei, in Python and in ImageJ.

1. makes the bundle on first run (``stardist_bundle.py``: a StarDist2D trained offline on the project's
   synthetic nuclei; minutes on two CPU cores, 12 on a busy one) into ``out/stardist_bundle``, then reuses
   it;
2. ``deepij.load(bundle).predict(image)`` on the nuclei demo's example image: the network, then StarDist's
   NMS (the bundle's ``stardist_postprocessing`` op, run by the stardist package) on the whole output:
   the label image, a table of the objects (label, centroid, area, mean probability) and their polygons;
3. the same bundle in ImageJ, from a macro: ``run("DeepImageJ Run", ...)`` leaves the label image (16-bit,
   a glasbey lookup table) and the objects as ROIs in the ROI Manager, as StarDist's Fiji plugin does;
4. compares the objects with the ground truth the synthetic image was drawn with (stardist's ``matching``,
   IoU 0.5) and writes ``labels.tif`` (16-bit, opens in ImageJ with its colours), ``labels_objects.csv``
   (the table) and ``figure.png`` (the image, the polygons on it, the labels) into the output folder.

Needs ``pip install 'deepij[stardist,tensorflow,plot]'``.

Usage: ``python examples/stardist_demo.py [--output out/stardist_demo] [--bundle out/stardist_bundle]
[--figure docs/stardist_figure.png]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from nuclei_data import EXAMPLE_COUNT, EXAMPLE_SEED, EXAMPLE_SIZE, synthetic_nuclei

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / "nuclei_bundle" / "exampleImage.tif"


def bundle_folder(folder: Path) -> Path:
    """The bundle, made on first use."""
    if not (folder / "rdf.yaml").is_file():
        from stardist_bundle import make_bundle

        started = time.perf_counter()
        print(f"making the StarDist bundle into {folder} (first run only)...", flush=True)
        make_bundle(folder)
        print(f"  trained and written in {time.perf_counter() - started:.0f} s")
    return folder


def in_imagej(bundle: Path) -> str:
    """The bundle run from an ImageJ macro: what ImageJ then holds."""
    import deepij

    macro = (
        f'open("{EXAMPLE}");\n'
        f'run("DeepImageJ Run", "model=[{bundle.name}] format=Tensorflow preprocessing=[no preprocessing] '
        f'postprocessing=[no postprocessing] axes=Y,X,C logging=normal models_dir=[{bundle.parent}]");\n'
        'return getTitle() + ": " + bitDepth() + "-bit, " + roiManager("count") + " ROIs in the ROI Manager";'
    )
    return str(deepij.imagej().run_macro(macro).value)


def figure(
    path: Path, image: np.ndarray, labels: np.ndarray, polygons: dict[int, np.ndarray], title: str
) -> None:
    """The image, the polygons on it and the labels with the label lookup table, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.colors import ListedColormap

    from deepij.imagej.lut_colours import LABEL_LUT, lut_colours

    colours = lut_colours(LABEL_LUT) / 255.0
    low, high = np.percentile(image, (1, 99.8))
    panels, axes = plt.subplots(1, 3, figsize=(12, 4.5))
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        ax.set_axis_off()
    for label, vertices in polygons.items():
        closed = np.vstack([vertices, vertices[:1]])
        axes[1].plot(closed[:, 1], closed[:, 0], color=colours[1 + (label - 1) % 255], linewidth=1.2)
    axes[2].imshow(np.where(labels > 0, 1 + (labels - 1) % 255, 0), cmap=ListedColormap(colours), vmin=0,
                   vmax=255, interpolation="nearest")
    for ax, name in zip(axes, ("image", "StarDist polygons (ROIs)", "label image"), strict=True):
        ax.set_title(name, fontsize=11)
    panels.suptitle(title, fontsize=12)
    panels.tight_layout(rect=(0.0, 0.0, 1.0, 0.94))
    panels.savefig(path, dpi=80)
    plt.close(panels)


def run(output: Path, bundle: Path, figure_copy: Path | None) -> int:
    import tifffile
    from stardist.matching import matching

    import deepij

    model = deepij.load(bundle_folder(bundle))
    image = tifffile.imread(EXAMPLE).astype(np.float32)
    started = time.perf_counter()
    result = model.predict(image)
    labels = np.asarray(result.images["labels"]).reshape(image.shape)
    objects = result.tables["labels_objects"]
    ((_, found),) = result.instances["labels"]
    print(f"predict: {len(objects)} nuclei in {time.perf_counter() - started:.1f} s")
    for note in result.notes:
        print(f"  {note}")
    print(f"in ImageJ: {in_imagej(bundle)}")

    truth = synthetic_nuclei(EXAMPLE_SIZE, EXAMPLE_COUNT, seed=EXAMPLE_SEED)
    scores = matching(truth.labels, labels, thresh=0.5)
    summary = (f"{len(objects)} nuclei found, {truth.count} drawn: precision {scores.precision:.2f}, "
               f"recall {scores.recall:.2f}, F1 {scores.f1:.2f} at IoU 0.5")
    print(summary)

    if output.exists():
        shutil.rmtree(output)
    written = result.save(output)
    figure(output / "figure.png", image, labels, found.polygons, f"{model.name}: {summary}")
    for path in [*written, output / "figure.png"]:
        print(f"wrote {path}")
    if figure_copy is not None:
        shutil.copyfile(output / "figure.png", figure_copy)
        print(f"wrote {figure_copy}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("out/stardist_demo"),
                        help="output folder (replaced)")
    parser.add_argument("--bundle", type=Path, default=Path("out/stardist_bundle"),
                        help="the StarDist bundle (made there on first run)")
    parser.add_argument("--figure", type=Path,
                        help="also copy the figure here (e.g. docs/stardist_figure.png)")
    options = parser.parse_args(argv)
    return run(options.output, options.bundle, options.figure)


if __name__ == "__main__":
    sys.exit(main())
