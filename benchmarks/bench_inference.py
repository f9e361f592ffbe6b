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
      - {{type: space, id: y, size: {{min: 72, step: 8}}}}
      - {{type: space, id: x, size: {{min: 72, step: 8}}}}
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
    test_input = np.random.default_rng(1).random((1, 1, 72, 72), dtype=np.float32)
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


# --- workers: one process per contender, loaded once, timed on demand ---------------------------------------


def serve(
    name: str, load: Callable[[], Callable[[], object]], finish: Callable[[], None] | None = None
) -> None:
    """Load, say ``ready``, then time one pass per ``run`` line on stdin; ``quit`` prints the peak RSS.

    Every contender lives in its own process and the driver asks them in turn, round after round, so
    the load of a shared machine falls on all of them alike; each keeps its best time.
    """
    started = time.perf_counter()
    run = load()
    emit(f"{name}_load_s", time.perf_counter() - started, "s")
    started = time.perf_counter()
    run()  # warm-up on the real image: first-call allocations, thread pools, deepij's tile-size probes
    emit(f"{name}_first_call_s", time.perf_counter() - started, "s")
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "run":
            started = time.perf_counter()
            run()
            print(f"time {time.perf_counter() - started:.4f}", flush=True)
        elif line.strip() == "quit":
            break
    if finish is not None:
        finish()
    emit(f"{name}_peak_rss_mb", peak_rss_mb(), "MB")
    print("bye", flush=True)


def _plan(description: object, side: int, tile: int) -> object:
    from deepij.inference.tiling import analyse_tiling

    return analyse_tiling(description).plan({"input": {"c": 1, "y": side, "x": side}}, tile=tile)


def _cut_tiles(description: object, image: np.ndarray, tile: int) -> list[np.ndarray]:
    """The input tiles deepij's deepImageJ grid cuts (the same windows bioimageio.core's blocks have)."""
    from deepij.inference.runner import cut_tile

    plan = _plan(description, image.shape[-1], tile)
    return [np.ascontiguousarray(cut_tile(image[0], "cyx", plan, t)[np.newaxis]) for t in plan.tiles()]


def worker_floor(workdir: Path, engine: str, tile: int, batch: int) -> None:
    """Bare forward passes over pre-cut tiles: torch.jit on the bundle's file, or onnxruntime (default
    session options) on the same net exported by torch.onnx (same seed, same weights)."""
    name = f"floor_{engine}_tile{tile}" + (f"_batch{batch}" if batch > 1 else "")

    def load() -> Callable[[], object]:
        import deepij

        description = deepij.load(workdir / "bundle").description
        tiles = _cut_tiles(description, np.load(workdir / "image.npy"), tile)
        batches = [np.concatenate(tiles[i : i + batch]) for i in range(0, len(tiles), batch)]
        emit(f"{name}_tiles", len(tiles), "tiles")
        if engine == "torch":
            import torch

            scripted = torch.jit.load(str(workdir / "bundle" / "unet.pt")).eval()

            def forward(x: np.ndarray) -> np.ndarray:
                with torch.inference_mode():
                    return scripted(torch.from_numpy(x)).numpy()
        else:
            import onnxruntime

            session = onnxruntime.InferenceSession(
                str(workdir / "unet.onnx"), providers=["CPUExecutionProvider"]
            )

            def forward(x: np.ndarray) -> np.ndarray:
                return session.run(None, {"input": x})[0]

        return lambda: [forward(b) for b in batches]

    serve(name, load)


def worker_deepij(workdir: Path, how: str) -> None:
    """deepij: ``predict-tile256`` (Model.predict, 256 tiles, no batching: the floor's tiling),
    ``runner-native-tile256`` (the tiled runner on torch itself), ``defaults`` (Model.predict as it comes)."""
    name = f"deepij_{how.replace('-', '_')}"
    image = np.load(workdir / "image.npy")
    state: dict[str, object] = {}

    def load() -> Callable[[], object]:
        import deepij

        model = deepij.load(workdir / "bundle")
        if how == "runner-native-tile256":
            import xarray as xr

            from deepij.inference.backends import load_backend
            from deepij.inference.runner import run_tiled

            backend = load_backend(model.description, runtime="native")
            plan = _plan(model.description, image.shape[-1], EQUAL_TILE)
            inputs = {"input": xr.DataArray(image, dims=("b", "c", "y", "x"))}
            return lambda: run_tiled(backend, plan, inputs)
        options = {"tile": EQUAL_TILE, "batch_size": 1} if how == "predict-tile256" else {}

        def run() -> None:
            state["result"] = model.predict(image, **options)

        return run

    def finish() -> None:
        if how == "defaults" and "result" in state:
            result = state["result"]
            np.save(workdir / "image.deepij_defaults.npy", _output_array(result))
            for note in getattr(result, "notes", []) or []:
                print(f"# deepij note: {note}", flush=True)

    serve(name, load, finish)


def _output_array(result: object) -> np.ndarray:
    return np.asarray(next(iter(result.images.values())), dtype=np.float32)


def worker_memory(workdir: Path, side: int) -> None:
    """Peak memory of deepij's defaults on a big image, against the input + output it must hold."""
    import deepij

    model = deepij.load(workdir / "bundle")
    model.predict(make_image(256))
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


def run_worker(kind: str, workdir: Path) -> None:
    part, _, rest = kind.partition(":")
    if part == "floor":
        engine, tile, batch = rest.split(":")
        worker_floor(workdir, engine, int(tile), int(batch))
    elif part == "deepij":
        worker_deepij(workdir, rest)
    elif part == "memory":
        worker_memory(workdir, int(rest))
    else:
        raise SystemExit(f"unknown worker {kind!r}")


# --- the driver -------------------------------------------------------------------------------------------


class Contender:
    """A worker process the driver talks to over pipes; its stderr goes to a log file."""

    def __init__(self, label: str, command: Sequence[str], log: Path, figures: dict[str, float], env=None):
        self.label, self.figures, self.log, self.best = label, figures, log, float("inf")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env
        )
        self.alive = self._read_until("ready")

    def _read_until(self, word: str) -> bool:
        for line in self.process.stdout:  # type: ignore[union-attr]
            line = line.strip()
            if line == word or (word == "time" and line.startswith("time ")):
                if word == "time":
                    self.best = min(self.best, float(line.split()[1]))
                return True
            print(line, flush=True)
            match = LINE.match(line)
            if match:
                self.figures[match.group(1)] = float(match.group(2))
        tail = "\n".join(self.log.read_text().splitlines()[-12:])
        print(f"# {self.label} stopped (exit {self.process.wait()}):\n{tail}", flush=True)
        return False

    def run_once(self) -> None:
        if self.alive:
            self.process.stdin.write("run\n")  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
            self.alive = self._read_until("time")

    def finish(self) -> None:
        if self.alive:
            self.process.stdin.write("quit\n")  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
            self._read_until("bye")
        self.process.wait()
        if self.best < float("inf"):
            emit(f"{self.label}_s", self.best, "s")
            self.figures[f"{self.label}_s"] = self.best


def collect(command: Sequence[str], figures: dict[str, float]) -> None:
    """Run a one-shot worker to its end, echo and keep its figures."""
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in completed.stdout.splitlines():
        print(line, flush=True)
        match = LINE.match(line.strip())
        if match:
            figures[match.group(1)] = float(match.group(2))
    if completed.returncode != 0:
        print(f"# {command[-1]} failed:\n" + "\n".join(completed.stderr.splitlines()[-12:]), flush=True)


def bioimageio_python() -> Path | None:
    setup = HERE / "setup_bioimageio_env.sh"
    completed = subprocess.run(["bash", str(setup)], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        print(f"# bioimageio.core environment could not be made: {completed.stderr[-500:]}", flush=True)
        return None
    return SIDE_ENV / "bin" / "python"


def contenders(args: argparse.Namespace, workdir: Path) -> list[tuple[str, list[str], dict | None]]:
    me = [sys.executable, str(Path(__file__).resolve()), "--workdir", str(workdir), "--worker"]
    t = EQUAL_TILE
    plan: list[tuple[str, list[str], dict | None]] = [
        (f"floor_torch_tile{t}", [*me, f"floor:torch:{t}:1"], None),
        (f"floor_onnxruntime_tile{t}", [*me, f"floor:onnxruntime:{t}:1"], None),
        (f"deepij_predict_tile{t}", [*me, "deepij:predict-tile256"], None),
        (f"deepij_runner_native_tile{t}", [*me, "deepij:runner-native-tile256"], None),
        ("deepij_defaults", [*me, "deepij:defaults"], None),
    ]
    if not args.quick:
        plan += [
            (f"floor_onnxruntime_tile{t}_batch4", [*me, f"floor:onnxruntime:{t}:4"], None),
            ("floor_torch_tile512", [*me, "floor:torch:512:1"], None),
            ("floor_onnxruntime_tile512", [*me, "floor:onnxruntime:512:1"], None),
            ("floor_torch_tile1024", [*me, "floor:torch:1024:1"], None),
            ("floor_onnxruntime_tile1024", [*me, "floor:onnxruntime:1024:1"], None),
        ]
    side = None if args.no_bioimageio else bioimageio_python()
    if side is not None:
        runner = [str(side), str(HERE / "bioimageio_core_runner.py"), str(workdir / "bundle" / "rdf.yaml")]
        runner += [str(workdir / "image.npy")]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["TQDM_DISABLE"] = "1"
        plan += [
            ("bioimageio_default", runner, env),
            (f"bioimageio_block{t}", [*runner, "--block", str(t)], env),
        ]
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all contenders (best is kept)")
    parser.add_argument(
        "--quick", action="store_true", help="one round, no floor variants, 4096 memory image"
    )
    parser.add_argument("--no-bioimageio", action="store_true", help="skip bioimageio.core")
    parser.add_argument("--size", type=int, default=2048, help="side of the timed image")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.worker:
        run_worker(args.worker, args.workdir)
        return 0
    repeats = 1 if args.quick else args.repeats

    workdir = Path(tempfile.mkdtemp(prefix="deepij-bench-"))
    try:
        rdf = write_bundle(workdir / "bundle")
        from support.models import write_onnx_unet

        write_onnx_unet(workdir / "unet.onnx")  # the floor's ONNX: same seed, same weights as unet.pt
        np.save(workdir / "image.npy", make_image(args.size))
        print(
            f"# image {args.size}x{args.size} float32, bundle {rdf}, {os.cpu_count()} cpus, {repeats} rounds"
        )
        print(f"# load average before: {os.getloadavg()}", flush=True)
        figures: dict[str, float] = {}
        running = [
            Contender(label, command, workdir / f"{label}.log", figures, env)
            for label, command, env in contenders(args, workdir)
        ]
        for _ in range(repeats):
            for contender in running:
                contender.run_once()
        for contender in running:
            contender.finish()
        print(f"# load average after: {os.getloadavg()}", flush=True)
        side = 4096 if args.quick else 8192
        me = [sys.executable, str(Path(__file__).resolve()), "--workdir", str(workdir), "--worker"]
        collect([*me, f"memory:{side}"], figures)
        report(figures, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


RATIOS = (
    # name, numerator, denominator: the (a), (b) and the floor findings
    ("onnxruntime_over_torch_floor_tile256_ratio", "floor_onnxruntime_tile256_s", "floor_torch_tile256_s"),
    ("onnxruntime_over_torch_floor_tile512_ratio", "floor_onnxruntime_tile512_s", "floor_torch_tile512_s"),
    (
        "onnxruntime_tile1024_over_tile256_floor_ratio",
        "floor_onnxruntime_tile1024_s",
        "floor_onnxruntime_tile256_s",
    ),
    (
        "onnxruntime_batch4_over_batch1_floor_ratio",
        "floor_onnxruntime_tile256_batch4_s",
        "floor_onnxruntime_tile256_s",
    ),
    (
        "a_deepij_tile256_over_floor_same_engine_ratio",
        "deepij_predict_tile256_s",
        "floor_onnxruntime_tile256_s",
    ),
    (
        "a_deepij_runner_torch_tile256_over_torch_floor_ratio",
        "deepij_runner_native_tile256_s",
        "floor_torch_tile256_s",
    ),
    ("b_deepij_defaults_over_bioimageio_default_ratio", "deepij_defaults_s", "bioimageio_default_s"),
    ("b_deepij_defaults_over_bioimageio_block256_ratio", "deepij_defaults_s", "bioimageio_block256_s"),
    (
        "b_deepij_defaults_peak_rss_over_bioimageio_default_ratio",
        "deepij_defaults_peak_rss_mb",
        "bioimageio_default_peak_rss_mb",
    ),
    ("deepij_defaults_over_torch_floor_tile256_ratio", "deepij_defaults_s", "floor_torch_tile256_s"),
    ("bioimageio_block256_over_torch_floor_tile256_ratio", "bioimageio_block256_s", "floor_torch_tile256_s"),
)


def report(figures: dict[str, float], workdir: Path) -> None:
    """The ratios the issue asks for, from the figures the workers printed (below 1: the first is better)."""
    print("# ratios (< 1: the first is faster or smaller)")
    for name, numerator, denominator in RATIOS:
        if figures.get(numerator) and figures.get(denominator):
            emit(name, figures[numerator] / figures[denominator], "x")
    ours, theirs = workdir / "image.deepij_defaults.npy", workdir / "image.bioimageio_default.npy"
    if ours.is_file() and theirs.is_file():
        diff = float(np.abs(np.load(ours).reshape(-1) - np.load(theirs).reshape(-1)).max())
        emit("deepij_defaults_vs_bioimageio_default_max_abs_diff", diff, "1")


if __name__ == "__main__":
    sys.exit(main())
