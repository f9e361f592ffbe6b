"""``deepij test`` against ``bioimageio test`` on the same 0.5 bundle, in one run.

The bundle is the project's demo nuclei U-Net (examples/nuclei_bundle: 0.5.4, TorchScript + ONNX, a 256 x 256
test tensor; valid for bioimageio.spec 0.5.12 as committed), copied without its ``config.deepimagej``
section, so that both tools test the same thing: the test tensors, with the torchscript weights
(bioimageio's side environment has no onnxruntime).

What each command does in that time:

- ``deepij test B --weights-format torchscript``: loads the bundle and the network, reproduces the test
  output with the spec ops on the whole image, measures the receptive field, runs the image tiled twice
  (deepImageJ's default tile, a small tile) and compares with the whole image;
- ``--no-tiled``: the reproduction alone;
- ``bioimageio test B --weight-format torchscript``: validates the descriptor and its files, reproduces the
  test output, then runs the network on inputs of 3 sizes and 2 batch sizes, checking output shapes.

Also timed: ``deepij test`` on the demo bundle as committed (test tensors, then the deepImageJ example through
its ImageJ macros, including starting ImageJ, and the tiled runs, for torchscript).

Each command runs in its own process (imports and start-up included, as a person types it); the figure is
the best of ``--repeats`` wall times, the first run apart (``*_first_s``). Figures are printed as
``name value unit``; bioimageio.core runs in benchmarks/.venv-bioimageio (made by setup_bioimageio_env.sh).

Usage: ``.venv/bin/python benchmarks/bench_test.py [--repeats N] [--no-bioimageio]``.
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
from collections.abc import Sequence
from pathlib import Path

import yaml
from _common import bioimageio_env, emit  # the benchmarks' shared parts, next to this file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEMO = ROOT / "examples" / "nuclei_bundle"
WEIGHTS = "torchscript"


def zoo_copy(target: Path) -> Path:
    """The demo bundle without its deepImageJ section (what the zoo's tools test, nothing more)."""
    shutil.copytree(DEMO, target)
    descriptor = target / "rdf.yaml"
    data = yaml.safe_load(descriptor.read_text(encoding="utf-8"))
    data["config"].pop("deepimagej", None)
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target


def timed(command: Sequence[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    started = time.perf_counter()
    done = subprocess.run(list(command), capture_output=True, text=True, cwd=cwd, env=env, check=False)
    return time.perf_counter() - started, done


def measure(
    label: str, command: Sequence[str], cwd: Path, repeats: int, best: dict[str, float]
) -> subprocess.CompletedProcess | None:
    """Run ``command`` ``repeats`` times; print the first and the best wall time (kept in ``best``). The
    last run is returned (None when a run failed: an exit status other than the test's 0 or 1)."""
    times, last = [], None
    for _ in range(repeats):
        seconds, last = timed(command, cwd)
        times.append(seconds)
        if last.returncode not in (0, 1):
            print(f"# {label}: exit {last.returncode}\n# " + "\n# ".join(last.stderr.splitlines()[-8:]))
            return None
    emit(f"{label}_first_s", times[0], "s")
    emit(f"{label}_s", min(times), "s")
    best[label] = min(times)
    return last


def deepij(bundle: Path, *options: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "deepij.frontdoors.cli",
        "test",
        str(bundle),
        "--weights-format",
        WEIGHTS,
        "--json",
        *options,
    ]


def report_figures(label: str, done: subprocess.CompletedProcess | None) -> None:
    if done is None:
        return
    report = json.loads(done.stdout)
    (entry,) = report["formats"]
    print(f"# {label}: {report['status']} ({entry['runtime']} on {entry['device']})", flush=True)
    emit(f"{label}_load_s", entry["load_seconds"], "s")
    emit(f"{label}_whole_image_runs_s", entry["run_seconds"], "s")
    if entry.get("tiled"):
        emit(f"{label}_tiled_comparisons_s", entry["tiled_seconds"], "s")
    emit(f"{label}_peak_memory_mb", entry["peak_memory_bytes"] / 1e6, "MB")


def bioimageio_command() -> Path | None:
    side = bioimageio_env()
    return None if side is None else side / "bin" / "bioimageio"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per command (default 2)")
    parser.add_argument("--no-bioimageio", action="store_true", help="time deepij test only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_test_") as tmp:
        work = Path(tmp)
        bundle = zoo_copy(work / "nuclei_zoo")
        best: dict[str, float] = {}
        zoo = measure("deepij_test", deepij(bundle), work, args.repeats, best)
        report_figures("deepij_test", zoo)
        measure("deepij_test_no_tiled", deepij(bundle, "--no-tiled"), work, args.repeats, best)
        demo = measure("deepij_test_demo_bundle", deepij(DEMO), work, args.repeats, best)
        report_figures("deepij_test_demo_bundle", demo)
        tool = None if args.no_bioimageio else bioimageio_command()
        if tool is not None:
            command = [str(tool), "test", str(bundle), "--weight-format", WEIGHTS]
            done = measure("bioimageio_test", command, work, args.repeats, best)
            if done is not None:
                print(f"# bioimageio_test: {'passed' if done.returncode == 0 else 'failed'}", flush=True)
            for mine in ("deepij_test", "deepij_test_no_tiled"):
                if mine in best and "bioimageio_test" in best:
                    emit(f"bioimageio_test_over_{mine}_ratio", best["bioimageio_test"] / best[mine], "x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
