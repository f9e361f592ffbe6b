"""Folder throughput: ``deepij run`` with its images' stages overlapped, against the same one image after the
other, and against ``bioimageio predict`` (bioimageio.core's CLI) on the same bundle and images; each run a
process of its own from start to finish (start-up included), the contenders interleaved round after round,
the best of ``--rounds`` kept, peak memory from ``wait4``.

Prints one machine-readable line per figure: ``name value unit`` (``<case>_<contender>_...``), then a short
summary.

- ``_total_s``: the command from start to exit (interpreter, imports, model load, every image);
- ``_images_per_s``: images / total, what a user waiting for the folder sees;
- ``_first_output_s``: start to the first output file written (start-up plus the first image);
- ``_steady_images_per_s``: (images - 1) / (last output - first output): throughput once started, from the
  files' modification times;
- ``_peak_rss_mb``: the process's peak resident memory;
- ``<case>_overlapped_over_sequential_ratio``: images per second, overlapped / one by one (target >= 1.3);
- ``<case>_identical``: 1 when the overlapped run wrote byte for byte the files (and records) of the
  sequential one;
- ``max_abs_difference`` / ``mean_abs_difference``: between deepij's and bioimageio's outputs on the spec
  case (a check that both did the same work).

Cases: ``demo_spec``: the demo bundle (``examples/nuclei_bundle``, 0.5, a TorchScript U-Net) with its spec
ops (``scale_range`` percentiles per image), what ``bioimageio predict`` runs (both on the CPU, the
torchscript weights, each with its default tiling); ``demo_macros``: the same bundle with its ImageJ macros
(percentile normalisation before, threshold, watershed and measurements after); ``zoo_macros``: those
macros around a zoo-sized network (bench_first_call.py's: a scripted U-Net, depth 3, base 16). The images
are ``examples/nuclei_data.py``'s synthetic nuclei, 16-bit TIFFs of ``--size`` pixels square, one seed each.
The deepij contenders run ``deepij.load`` + ``run_batch`` (what ``deepij run`` does), with
``overlap_stages`` on and off, the graph cache filled by an earlier process.

bioimageio.core lives in the side environment ``benchmarks/.venv-bioimageio`` (make it with
``benchmarks/setup_bioimageio_env.sh``); without it its contender is left out.

Usage: ``.venv/bin/python benchmarks/bench_folder.py [--images 16] [--size 512] [--rounds 2]
[--cases demo_spec,demo_macros,zoo_macros] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
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
BIOIMAGEIO = REPO / "benchmarks" / ".venv-bioimageio" / "bin" / "bioimageio"
WEIGHTS = "torchscript"
CASES = ("demo_spec", "demo_macros", "zoo_macros")

DRIVER = """
import sys, warnings
warnings.simplefilter("ignore")
import deepij
from deepij.pipeline.batch import run_batch
bundle, images, output, processing, overlap = sys.argv[1:6]
model = deepij.load(bundle)
report = run_batch(model, images, output, progress=False, overlap_stages=overlap == "overlapped",
                   processing=processing, weights_format="torchscript", device="cpu")
if report.exit_code:
    print(report.summary(), file=sys.stderr)
sys.exit(report.exit_code)
"""
"""What ``deepij run BUNDLE --input IMAGES --output OUTPUT --processing P`` does, with ``overlap_stages``."""


@dataclass
class Timing:
    """One run over the folder: wall-clock start and end, peak memory, its output TIFFs in name order."""

    name: str
    started: float
    ended: float
    peak_mb: float
    outputs: list[Path]

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def figures(self, images: int) -> dict[str, float]:
        total = self.seconds
        written = sorted(path.stat().st_mtime for path in self.outputs)
        figures = {
            f"{self.name}_total_s": total,
            f"{self.name}_images_per_s": images / total,
            f"{self.name}_first_output_s": written[0] - self.started,
            f"{self.name}_peak_rss_mb": self.peak_mb,
        }
        if images > 1 and written[-1] > written[0]:
            figures[f"{self.name}_steady_images_per_s"] = (images - 1) / (written[-1] - written[0])
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


def write_zoo_macro_bundle(root: Path) -> Path:
    """bench_first_call.py's zoo-sized network inside the demo bundle with its macros (made in a child
    process: torch stays out of this one, whose size every child would start from)."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import bench_fast_path, "
        "bench_first_call; root = Path(sys.argv[2]); bench_fast_path.write_bundles(root); "
        "bench_first_call.write_macro_bundle(root / 'models', root / 'bundle')"
    )
    subprocess.run([sys.executable, "-c", code, str(REPO / "benchmarks"), str(root)], check=True,
                   capture_output=True)
    return root / "models" / "zoo_macros"


def timed(name: str, command: list[str], output: Path, cwd: Path, env: dict[str, str]) -> Timing:
    shutil.rmtree(output, ignore_errors=True)
    started = time.time()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=(cwd / f"{name}.log").open("w"))
    _, status, usage = os.wait4(process.pid, 0)
    ended = time.time()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{name} failed (exit {code}):\n{(cwd / f'{name}.log').read_text()[-3000:]}")
    return Timing(name, started, ended, usage.ru_maxrss / 1024, sorted(output.glob("*.tif")))


def deepij_command(bundle: Path, images: Path, output: Path, processing: str, mode: str) -> list[str]:
    return [sys.executable, "-c", DRIVER, str(bundle), str(images), str(output), processing, mode]


def bioimageio_command(paths: list[Path], output: Path) -> list[str]:
    # bioimageio predict expands no wildcards: it takes the list of inputs as JSON
    return [str(BIOIMAGEIO), "predict", "--inputs", json.dumps([str(path) for path in paths]),
            "--outputs", str(output / "{sample_id}_{output_id}.tif"), "--weight-format", WEIGHTS,
            "--devices", '["cpu"]', str(BUNDLE)]


def differences(first: list[Path], second: list[Path]) -> tuple[float, float]:
    import tifffile

    largest, means = 0.0, []
    for one, other in zip(first, second, strict=True):
        difference = np.abs(tifffile.imread(one).squeeze() - tifffile.imread(other).squeeze())
        largest = max(largest, float(difference.max()))
        means.append(float(difference.mean()))
    return largest, float(np.mean(means))


def same_files(first: Path, second: Path) -> bool:
    """Whether two output folders hold the same files byte for byte (records included)."""
    def files(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
                if p.is_file()}

    return files(first) == files(second)


def plan_case(case: str, root: Path, images: Path, paths: list[Path]) -> list[tuple[str, list[str], Path]]:
    """(contender, command, output folder) of one case."""
    bundle = write_zoo_macro_bundle(root / "zoo") if case == "zoo_macros" else BUNDLE
    processing = "spec" if case == "demo_spec" else "macros"
    plan = [(f"{case}_{mode}", deepij_command(bundle, images, root / f"out_{case}_{mode}", processing, mode),
             root / f"out_{case}_{mode}") for mode in ("overlapped", "sequential")]
    if case == "demo_spec" and BIOIMAGEIO.exists():
        plan.append((f"{case}_bioimageio", bioimageio_command(paths, root / f"out_{case}_bioimageio"),
                     root / f"out_{case}_bioimageio"))
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_folder_"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed
    env.update(DEEPIJ_CACHE_DIR=str(root / "cache"), TQDM_DISABLE="1", PYTHONPATH=str(REPO / "src"))
    side_env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    try:
        paths = write_images(root / "images", options.images, options.size)
        print(f"# {options.images} images of {options.size}x{options.size}, {os.cpu_count()} cpus, load "
              f"{os.getloadavg()}", flush=True)
        figures: dict[str, float] = {}
        for case in options.cases.split(","):
            plan = plan_case(case, root, root / "images", paths)
            timed("warm-up", plan[1][1], plan[1][2], root, env)  # fills the graph cache, as a machine's first
            best: dict[str, Timing] = {}
            for _ in range(options.rounds):
                for name, command, output in plan:
                    timing = timed(name, command, output, root, side_env if "bioimageio" in name else env)
                    if len(timing.outputs) < options.images:
                        sys.exit(f"{name} wrote {len(timing.outputs)} outputs for {options.images} images")
                    if name not in best or timing.seconds < best[name].seconds:
                        best[name] = timing  # its figures now: the next round writes the files again
                        figures.update(timing.figures(options.images))
            figures[f"{case}_identical"] = float(same_files(root / f"out_{case}_overlapped",
                                                            root / f"out_{case}_sequential"))
            figures[f"{case}_overlapped_over_sequential_ratio"] = (
                figures[f"{case}_overlapped_images_per_s"] / figures[f"{case}_sequential_images_per_s"])
            if f"{case}_bioimageio" in best:
                ours = [p for p in best[f"{case}_overlapped"].outputs if "labels" not in p.name]
                largest, mean = differences(ours, best[f"{case}_bioimageio"].outputs)
                figures.update(max_abs_difference=largest, mean_abs_difference=mean)
            for name, value in figures.items():
                if name.startswith(case) or (name.endswith("_difference") and case == "demo_spec"):
                    unit = "images/s" if "per_s" in name else "s" if name.endswith("_s") else (
                        "MB" if name.endswith("_mb") else "x" if name.endswith("ratio") else "")
                    print(f"{name} {value:.4g} {unit}".rstrip(), flush=True)
        print(f"# load after: {os.getloadavg()}")
    finally:
        if options.keep:
            print(f"# kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
