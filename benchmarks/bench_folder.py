"""Folder throughput: ``deepij run`` against ``bioimageio predict`` (bioimageio.core's CLI) on the same bundle
and the same images, each timed as a subprocess from start to finish, start-up included.

Prints one machine-readable line per figure: ``name value unit``, then a short summary.

- ``<tool>_total_s``: the command from start to exit (interpreter, imports, model load, every image);
- ``<tool>_images_per_s``: images / total, what a user waiting for the folder sees;
- ``<tool>_first_output_s``: start to the first output file written (start-up plus the first image);
- ``<tool>_steady_images_per_s``: (images - 1) / (last output - first output): throughput once started,
  from the files' modification times;
- ``max_abs_difference`` / ``mean_abs_difference``: between the two tools' outputs, image by image (a check
  that both did the same work).

The bundle is the demo's (``examples/nuclei_bundle``, 0.5, a TorchScript U-Net) with its spec ops
(``scale_range`` percentiles per image): ``deepij run --processing spec``, which is what ``bioimageio
predict`` runs. Both on the CPU, both with the torchscript weights, each with its default tiling (deepij:
tiles chosen to fit memory; bioimageio: the whole image); ``--tile whole`` gives deepij the whole image too.
The images are ``examples/nuclei_data.py``'s synthetic nuclei, 16-bit TIFFs of ``--size`` pixels square, one
seed each.

bioimageio.core lives in the side environment ``benchmarks/.venv-bioimageio`` (make it with
``benchmarks/setup_bioimageio_env.sh``).

Usage: ``.venv/bin/python benchmarks/bench_folder.py [--images 100] [--size 512] [--tile whole] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "examples" / "nuclei_bundle"
DEEPIJ = REPO / ".venv" / "bin" / "deepij"
BIOIMAGEIO = REPO / "benchmarks" / ".venv-bioimageio" / "bin" / "bioimageio"
WEIGHTS = "torchscript"


@dataclass
class Timing:
    """One tool's run over the folder: wall-clock start and end, and its output files in name order."""

    name: str
    started: float
    ended: float
    outputs: list[Path]

    def figures(self, images: int) -> list[tuple[str, float, str]]:
        total = self.ended - self.started
        written = sorted(path.stat().st_mtime for path in self.outputs)
        figures = [
            (f"{self.name}_total_s", total, "s"),
            (f"{self.name}_images_per_s", images / total, "images/s"),
            (f"{self.name}_first_output_s", written[0] - self.started, "s"),
        ]
        if images > 1 and written[-1] > written[0]:
            steady = (images - 1) / (written[-1] - written[0])
            figures.append((f"{self.name}_steady_images_per_s", steady, "images/s"))
        return figures


def write_images(folder: Path, count: int, size: int) -> list[Path]:
    sys.path.insert(0, str(REPO / "examples"))
    import tifffile
    from nuclei_data import synthetic_nuclei

    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        path = folder / f"image_{index:04d}.tif"
        tifffile.imwrite(path, synthetic_nuclei(size=size, count=size * size // 4000, seed=index).image)
        paths.append(path)
    return paths


def timed(name: str, command: list[str], output: Path, cwd: Path) -> Timing:
    started = time.time()
    finished = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    ended = time.time()
    if finished.returncode != 0:
        sys.exit(f"{name} failed (exit {finished.returncode}):\n{finished.stdout[-3000:]}\n"
                 f"{finished.stderr[-3000:]}")
    return Timing(name, started, ended, sorted(output.glob("*.tif")))


def run_deepij(images: Path, output: Path, cwd: Path, tile: str | None) -> Timing:
    command = [str(DEEPIJ), "run", str(BUNDLE), "--input", str(images), "--output", str(output),
               "--processing", "spec", "--weights-format", WEIGHTS, "--device", "cpu", "--no-progress"]
    if tile is not None:
        command += ["--tile", tile]
    return timed("deepij", command, output, cwd)


def run_bioimageio(paths: list[Path], output: Path, cwd: Path) -> Timing:
    # bioimageio predict expands no wildcards: it takes the list of inputs as JSON
    command = [str(BIOIMAGEIO), "predict", "--inputs", json.dumps([str(path) for path in paths]),
               "--outputs", str(output / "{sample_id}_{output_id}.tif"), "--weight-format", WEIGHTS,
               "--devices", '["cpu"]', str(BUNDLE)]
    return timed("bioimageio", command, output, cwd)


def differences(first: list[Path], second: list[Path]) -> tuple[float, float]:
    import tifffile

    largest, means = 0.0, []
    for one, other in zip(first, second, strict=True):
        difference = np.abs(tifffile.imread(one).squeeze() - tifffile.imread(other).squeeze())
        largest = max(largest, float(difference.max()))
        means.append(float(difference.mean()))
    return largest, float(np.mean(means))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tile", default=None, help="deepij run's --tile (default: its own choice)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    options = parser.parse_args()
    if not BIOIMAGEIO.exists():
        sys.exit(f"{BIOIMAGEIO} not found: run benchmarks/setup_bioimageio_env.sh first")

    root = Path(tempfile.mkdtemp(prefix="bench_folder_"))
    try:
        paths = write_images(root / "images", options.images, options.size)
        deepij = run_deepij(root / "images", root / "out_deepij", root, options.tile)
        bioimageio = run_bioimageio(paths, root / "out_bioimageio", root)
        for timing in (deepij, bioimageio):
            if len(timing.outputs) != options.images:
                sys.exit(f"{timing.name} wrote {len(timing.outputs)} outputs for {options.images} images")
        figures = deepij.figures(options.images) + bioimageio.figures(options.images)
        largest, mean = differences(deepij.outputs, bioimageio.outputs)
        figures += [("max_abs_difference", largest, ""), ("mean_abs_difference", mean, "")]
        for name, value, unit in figures:
            print(f"{name} {value:.4g} {unit}".rstrip())
        values = {name: value for name, value, _ in figures}
        print(f"# {options.images} images of {options.size}x{options.size}: deepij run "
              f"{values['deepij_images_per_s']:.2f} images/s, bioimageio predict "
              f"{values['bioimageio_images_per_s']:.2f} images/s (start-up included; "
              f"{values['deepij_images_per_s'] / values['bioimageio_images_per_s']:.2f}x)")
        if "deepij_steady_images_per_s" in values and "bioimageio_steady_images_per_s" in values:
            print(f"# once started: deepij {values['deepij_steady_images_per_s']:.2f} images/s, bioimageio "
                  f"{values['bioimageio_steady_images_per_s']:.2f} images/s; first output after "
                  f"{values['deepij_first_output_s']:.2f} s / {values['bioimageio_first_output_s']:.2f} s")
    finally:
        if options.keep:
            print(f"# kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
