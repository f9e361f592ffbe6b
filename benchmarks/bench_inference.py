"""Inference speed and memory: deepij against the bare framework floor and against bioimageio.core.

One run on this machine, the same TorchScript U-Net (3 poolings, ~0.48 M parameters, declared halo 32, as the
zoo's small nuclei U-Nets) and the same 2048x2048 float32 image for every contender:

- floor: bare forward passes over pre-cut tiles (no cutting, stitching or glue timed), with torch and with
  onnxruntime, at several tile sizes and batch sizes: what makes the floor faster here;
- (a) deepij at equal tiling (256 tiles, halo 32, deepImageJ grid) against the floor of the same engine;
- (b) deepij with its defaults (automatic tile size, tile batching, fastest runtime for the weights) against
  bioimageio.core with its defaults (whole image) and with 256 blocks;
- peak memory of deepij's defaults on an 8192x8192 float32 image, against input + output size.

Every contender runs in its own process (so peak RSS is its own); bioimageio.core runs in its own environment
(benchmarks/.venv-bioimageio, made by setup_bioimageio_env.sh). Each figure is printed as
``name value unit``; ratios are ``*_ratio value x``. Times are the best of ``--repeats`` runs after one
warm-up pass on a small image; model loading is timed apart.

Usage: ``.venv/bin/python benchmarks/bench_inference.py [--repeats N] [--quick] [--no-bioimageio]``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIDE_ENV = HERE / ".venv-bioimageio"
HALO = 32
EQUAL_TILE = 256
LINE = re.compile(r"^(\S+) (\S+) (\S+)$")


# --- the bundle and the image ----------------------------------------------------------------------------

RDF = """\
format_version: 0.5.4
type: model
name: deepij benchmark U-Net
description: A 2-D U-Net (3 poolings, 16 base channels, random weights) for timing inference.
authors: [{{name: deepij benchmark}}]
cite: [{{text: deepij, url: "https://github.com/deepij/deepij"}}]
license: MIT
documentation: README.md
tags: [benchmark]
inputs:
  - id: input
    axes:
      - type: batch
      - type: channel
        channel_names: [raw]
      - {{type: space, id: y, size: {{min: 8, step: 8}}}}
      - {{type: space, id: x, size: {{min: 8, step: 8}}}}
    test_tensor: {{source: test_input.npy}}
    data: {{type: float32}}
outputs:
  - id: output
    axes:
      - type: batch
      - type: channel
        channel_names: [probability]
      - {{type: space, id: y, size: {{tensor_id: input, axis_id: y}}, halo: {halo}}}
      - {{type: space, id: x, size: {{tensor_id: input, axis_id: x}}, halo: {halo}}}
    test_tensor: {{source: test_output.npy}}
    data: {{type: float32}}
weights:
  torchscript:
    source: unet.pt
    sha256: {sha256}
    pytorch_version: "2.13"
"""


def write_bundle(folder: Path) -> Path:
    """The benchmark U-Net as a 0.5 bundle both deepij and bioimageio.core read."""
    import hashlib

    sys.path.insert(0, str(ROOT / "tests"))
    from support.models import write_torchscript_unet

    folder.mkdir(parents=True, exist_ok=True)
    unet = write_torchscript_unet(folder / "unet.pt")
    test_input = np.random.default_rng(1).random((1, 1, 64, 64), dtype=np.float32)
    np.save(folder / "test_input.npy", test_input)
    np.save(folder / "test_output.npy", unet.forward(test_input)[0])
    (folder / "README.md").write_text("Benchmark model written by deepij's benchmarks/bench_inference.py.\n")
    sha256 = hashlib.sha256((folder / "unet.pt").read_bytes()).hexdigest()
    (folder / "rdf.yaml").write_text(RDF.format(halo=HALO, sha256=sha256))
    return folder / "rdf.yaml"


def make_image(side: int, seed: int = 0) -> np.ndarray:
    """A ``bcyx`` float32 image in [0, 1): smooth blobs plus noise, so the network sees structure."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((1, 1, side // 32 + 2, side // 32 + 2), dtype=np.float32)
    smooth = np.repeat(np.repeat(coarse, 32, axis=2), 32, axis=3)[:, :, :side, :side]
    return np.ascontiguousarray(0.7 * smooth + 0.3 * rng.random((1, 1, side, side), dtype=np.float32))


def emit(name: str, value: float, unit: str) -> None:
    print(f"{name} {value:.4g} {unit}", flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_time(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


# --- parts (each runs in its own process) ----------------------------------------------------------------


def _plan(description: object, side: int, tile: int) -> object:
    from deepij.inference.tiling import analyse_tiling

    return analyse_tiling(description).plan({"input": {"c": 1, "y": side, "x": side}}, tile=tile)


def _cut_tiles(description: object, image: np.ndarray, tile: int) -> list[np.ndarray]:
    """The input tiles deepij's deepImageJ grid cuts (the same windows bioimageio.core's blocks have)."""
    from deepij.inference.runner import cut_tile

    plan = _plan(description, image.shape[-1], tile)
    sample = image[0]
    return [np.ascontiguousarray(cut_tile(sample, "cyx", plan, t)[np.newaxis]) for t in plan.tiles()]


def part_floor(workdir: Path, repeats: int, quick: bool) -> None:
    """Bare forward passes (torch.jit and onnxruntime on the same net) over pre-cut tiles."""
    import onnxruntime
    import torch

    import deepij

    description = deepij.load(workdir / "bundle").description
    image = np.load(workdir / "image.npy")
    scripted = torch.jit.load(str(workdir / "bundle" / "unet.pt")).eval()
    sys.path.insert(0, str(ROOT / "tests"))
    from support.models import write_onnx_unet

    write_onnx_unet(workdir / "unet.onnx")  # same seed, same weights as the bundle's TorchScript
    session = onnxruntime.InferenceSession(str(workdir / "unet.onnx"), providers=["CPUExecutionProvider"])

    def torch_pass(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return scripted(torch.from_numpy(batch)).numpy()

    def ort_pass(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {"input": batch})[0]

    configs = [("torch", EQUAL_TILE, 1), ("onnxruntime", EQUAL_TILE, 1)]
    if not quick:
        configs += [("onnxruntime", EQUAL_TILE, 4), ("torch", 512, 1), ("onnxruntime", 512, 1)]
        configs += [("onnxruntime", 1024, 1), ("torch", 1024, 1)]
    for engine, tile, batch in configs:
        forward = torch_pass if engine == "torch" else ort_pass
        tiles = _cut_tiles(description, image, tile)
        batches = [np.concatenate(tiles[i : i + batch]) for i in range(0, len(tiles), batch)]
        forward(batches[0])  # warm-up: first-call allocations
        seconds = best_time(lambda f=forward, bs=batches: [f(b) for b in bs], repeats)
        suffix = f"tile{tile}" + (f"_batch{batch}" if batch > 1 else "")
        emit(f"floor_{engine}_{suffix}_s", seconds, "s")
        emit(f"floor_{engine}_{suffix}_tiles", len(tiles), "tiles")


def _timed_predict(model: object, image: np.ndarray, repeats: int, **options: object) -> tuple[float, object]:
    model.predict(image[:, :, :256, :256], **options)  # warm-up
    result = None

    def run() -> None:
        nonlocal result
        result = model.predict(image, **options)

    return best_time(run, repeats), result


def _output_array(result: object) -> np.ndarray:
    return np.asarray(next(iter(result.images.values())), dtype=np.float32)


def part_deepij(workdir: Path, repeats: int, quick: bool) -> None:
    """deepij at the floor's tiling (both engines), and with its defaults."""
    import deepij
    from deepij.inference.backends import load_backend
    from deepij.inference.runner import run_tiled

    started = time.perf_counter()
    model = deepij.load(workdir / "bundle")
    image = np.load(workdir / "image.npy")
    description = model.description
    import xarray as xr

    for runtime in ("auto", "native"):
        started = time.perf_counter()
        backend = load_backend(description, runtime=runtime)
        emit(f"deepij_load_{backend.runtime}_s", time.perf_counter() - started, "s")
        plan = _plan(description, image.shape[-1], EQUAL_TILE)
        inputs = {"input": xr.DataArray(image, dims=("b", "c", "y", "x"))}
        run_tiled(backend, _plan(description, 256, EQUAL_TILE), {"input": inputs["input"][:, :, :256, :256]})
        seconds = best_time(lambda b=backend, p=plan, i=inputs: run_tiled(b, p, i), repeats)
        emit(f"deepij_runner_{backend.runtime}_tile{EQUAL_TILE}_s", seconds, "s")
        backend.close()
    if not hasattr(model, "predict"):
        print("# deepij Model.predict is not there yet: skipping deepij_predict_* figures", flush=True)
        return
    seconds, _ = _timed_predict(model, image, repeats, tile=EQUAL_TILE)
    emit(f"deepij_predict_tile{EQUAL_TILE}_s", seconds, "s")
    seconds, result = _timed_predict(model, image, repeats)
    emit("deepij_predict_defaults_s", seconds, "s")
    np.save(workdir / "image.deepij_defaults.npy", _output_array(result))
    emit("deepij_predict_peak_rss_mb", peak_rss_mb(), "MB")


def part_memory(workdir: Path, repeats: int, quick: bool) -> None:
    """Peak memory of deepij's defaults on a big image, against the input + output it must hold."""
    import deepij

    side = 4096 if quick else 8192
    model = deepij.load(workdir / "bundle")
    if not hasattr(model, "predict"):
        print("# deepij Model.predict is not there yet: skipping the memory figures", flush=True)
        return
    small = make_image(256)
    model.predict(small)
    baseline = peak_rss_mb()
    image = make_image(side, seed=2)
    started = time.perf_counter()
    result = model.predict(image)
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    io_mb = (image.nbytes + _output_array(result).nbytes) / 2**20
    emit(f"memory_{side}_predict_s", seconds, "s")
    emit(f"memory_{side}_baseline_rss_mb", baseline, "MB")
    emit(f"memory_{side}_peak_rss_mb", peak, "MB")
    emit(f"memory_{side}_input_plus_output_mb", io_mb, "MB")
    emit(f"memory_{side}_peak_above_baseline_over_io_ratio", (peak - baseline) / io_mb, "x")


PARTS = {"floor": part_floor, "deepij": part_deepij, "memory": part_memory}


# --- the driver -------------------------------------------------------------------------------------------


def run_child(command: Sequence[str], figures: dict[str, float], env: dict[str, str] | None = None) -> None:
    """Run one part, echo its lines and keep its figures."""
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    for line in completed.stdout.splitlines():
        print(line, flush=True)
        match = LINE.match(line.strip())
        if match:
            figures[match.group(1)] = float(match.group(2))
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.splitlines()[-15:])
        print(f"# part {' '.join(command[1:3])} failed (exit {completed.returncode}):\n{tail}", flush=True)


def ratio(figures: dict[str, float], name: str, numerator: str, denominator: str) -> None:
    if numerator in figures and denominator in figures and figures[denominator] > 0:
        emit(name, figures[numerator] / figures[denominator], "x")


def bioimageio_python() -> Path | None:
    setup = HERE / "setup_bioimageio_env.sh"
    completed = subprocess.run(["bash", str(setup)], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        print(f"# bioimageio.core environment could not be made: {completed.stderr[-500:]}", flush=True)
        return None
    return SIDE_ENV / "bin" / "python"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per figure (best is kept)")
    parser.add_argument("--quick", action="store_true", help="fewer floor variants, 4096 memory image")
    parser.add_argument("--no-bioimageio", action="store_true", help="skip bioimageio.core")
    parser.add_argument("--size", type=int, default=2048, help="side of the timed image")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.part:
        PARTS[args.part](args.workdir, args.repeats, args.quick)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="deepij-bench-"))
    try:
        rdf = write_bundle(workdir / "bundle")
        np.save(workdir / "image.npy", make_image(args.size))
        print(f"# image {args.size}x{args.size} float32, U-Net bundle {rdf}, cpu cores {os.cpu_count()}")
        figures: dict[str, float] = {}
        me = [sys.executable, str(Path(__file__).resolve())]
        flags = ["--workdir", str(workdir), "--repeats", str(args.repeats)] + (
            ["--quick"] if args.quick else []
        )
        for part in ("floor", "deepij"):
            run_child([*me, "--part", part, *flags], figures)
        side = None if args.no_bioimageio else bioimageio_python()
        if side is not None:
            runner = [
                str(side),
                str(HERE / "bioimageio_core_runner.py"),
                str(rdf),
                str(workdir / "image.npy"),
            ]
            runner += ["--repeats", str(args.repeats)]
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
            run_child(runner, figures, env)
            run_child([*runner, "--block", str(EQUAL_TILE)], figures, env)
        run_child([*me, "--part", "memory", *flags], figures)
        report(figures, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(figures: dict[str, float], workdir: Path) -> None:
    """The ratios the issue asks for, from the figures the parts printed."""
    t = EQUAL_TILE
    print("# ratios (< 1: the first is faster or smaller)")
    ratio(
        figures,
        "onnxruntime_over_torch_floor_tile256_ratio",
        f"floor_onnxruntime_tile{t}_s",
        f"floor_torch_tile{t}_s",
    )
    ratio(
        figures,
        "deepij_predict_tile256_over_onnxruntime_floor_ratio",
        f"deepij_predict_tile{t}_s",
        f"floor_onnxruntime_tile{t}_s",
    )
    ratio(
        figures,
        "deepij_runner_onnxruntime_tile256_over_floor_ratio",
        f"deepij_runner_onnxruntime_tile{t}_s",
        f"floor_onnxruntime_tile{t}_s",
    )
    ratio(
        figures,
        "deepij_runner_torch_tile256_over_floor_ratio",
        f"deepij_runner_torch_tile{t}_s",
        f"floor_torch_tile{t}_s",
    )
    ratio(
        figures,
        "deepij_defaults_over_bioimageio_default_ratio",
        "deepij_predict_defaults_s",
        "bioimageio_default_s",
    )
    ratio(
        figures,
        "deepij_defaults_over_bioimageio_block256_ratio",
        "deepij_predict_defaults_s",
        f"bioimageio_block{t}_s",
    )
    ratio(
        figures,
        "bioimageio_block256_over_torch_floor_ratio",
        f"bioimageio_block{t}_s",
        f"floor_torch_tile{t}_s",
    )
    ratio(
        figures,
        "deepij_peak_rss_over_bioimageio_default_ratio",
        "deepij_predict_peak_rss_mb",
        "bioimageio_default_peak_rss_mb",
    )
    ours, theirs = workdir / "image.deepij_defaults.npy", workdir / "image.bioimageio_default.npy"
    if ours.is_file() and theirs.is_file():
        diff = float(np.abs(np.load(ours).reshape(-1) - np.load(theirs).reshape(-1)).max())
        emit("deepij_defaults_vs_bioimageio_default_max_abs_diff", diff, "1")


if __name__ == "__main__":
    sys.exit(main())
