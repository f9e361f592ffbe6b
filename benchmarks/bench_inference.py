"""Inference speed and memory: deepij against the bare framework floor and against bioimageio.core.

One run on this machine, the same TorchScript U-Net (3 poolings, ~0.48 M parameters, declared halo 32, as the
zoo's small nuclei U-Nets) and the same 2048x2048 float32 image for every contender:

- floor: bare forward passes over pre-cut tiles (no cutting, stitching or glue timed), with torch and with
  onnxruntime, at several tile sizes and batch sizes: what makes the floor faster here;
- (a) deepij at equal tiling (256 tiles, halo 32, deepImageJ grid) against the floor of the same engine;
- (b) deepij with its defaults (automatic tile size, tile batching, fastest runtime for the weights) against
  bioimageio.core with its defaults (whole image) and with 256 blocks;
- peak memory of deepij's defaults on an 8192x8192 float32 image, against input + output size.

Every contender runs in its own process (so peak RSS is its own; the machinery is in _common.py);
bioimageio.core runs in its own environment (benchmarks/.venv-bioimageio, made by setup_bioimageio_env.sh).
Each figure is printed as ``name value unit``; ratios are ``*_ratio value x``. Times are the best of
``--repeats`` runs after one warm-up pass on a small image; model loading is timed apart.

Usage: ``.venv/bin/python benchmarks/bench_inference.py [--repeats N] [--quick] [--no-bioimageio]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# the benchmarks' shared parts, next to this file (on sys.path when it runs)
from _common import (
    TORCHSCRIPT_WEIGHTS,
    UNET_RDF,
    bioimageio_contenders,
    collect,
    emit,
    emit_ratios,
    make_image,
    output_array,
    peak_rss_mb,
    run_rounds,
    serve,
    sha256,
    write_unet_files,
)

HALO = 32
EQUAL_TILE = 256


# --- the bundle ------------------------------------------------------------------------------------------


def write_bundle(folder: Path) -> Path:
    """The benchmark U-Net (3 poolings, 16 base channels, random weights) as a 0.5 bundle both deepij and
    bioimageio.core read."""
    from support.models import write_torchscript_unet

    folder.mkdir(parents=True, exist_ok=True)
    unet = write_torchscript_unet(folder / "unet.pt")
    write_unet_files(folder, unet.forward, 72, "bench_inference.py")
    weights = TORCHSCRIPT_WEIGHTS.format(source="unet.pt", sha256=sha256(folder / "unet.pt"))
    (folder / "rdf.yaml").write_text(
        UNET_RDF.format(
            name="deepij benchmark U-Net",
            description="A 2-D U-Net (3 poolings, 16 base channels, random weights) for timing inference.",
            min=72,
            step=8,
            halo=HALO,
            weights=weights,
        )
    )
    return folder / "rdf.yaml"


# --- workers: one process per contender (_common.serve) -------------------------------------------------


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
            np.save(workdir / "image.deepij_defaults.npy", output_array(result))
            for note in getattr(result, "notes", []) or []:
                print(f"# deepij note: {note}", flush=True)

    serve(name, load, finish)


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
    io_mb = (image.nbytes + output_array(result).nbytes) / 2**20
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
    if not args.no_bioimageio:
        plan += bioimageio_contenders(workdir / "bundle" / "rdf.yaml", workdir / "image.npy", [t])
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
        figures = run_rounds(contenders(args, workdir), workdir, repeats)
        print(f"# load average after: {os.getloadavg()}", flush=True)
        side = 4096 if args.quick else 8192
        me = [sys.executable, str(Path(__file__).resolve()), "--workdir", str(workdir), "--worker"]
        collect([*me, f"memory:{side}"], figures)
        emit_ratios(RATIOS, figures, workdir, "deepij_defaults_vs_bioimageio_default_max_abs_diff")
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



if __name__ == "__main__":
    sys.exit(main())
