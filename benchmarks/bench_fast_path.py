"""The fast path on zoo-style weights: deepij's defaults on a bundle made as zoo bundles are.

The stand-in for the zoo's nuclei U-Net bundle: a ``torch.jit.script``-ed U-Net with control flow and type
annotations (support.zoo_models, depth 3, base 16) and the same network as ONNX exported with fixed 512x512
dims, under a descriptor allowing any multiple of 16. deepij relaxes the ONNX dims (verified), chooses
onnxruntime or OpenVINO by a timed probe, and tiles automatically; bioimageio.core (its own environment,
made by setup_bioimageio_env.sh) runs the TorchScript weights whole-image (its default) and with 256 blocks.

Printed figures (``name value unit``), each contender in its own process, best of ``--repeats``
interleaved rounds (the contender machinery of _common.py, as bench_inference.py):

- ``deepij_defaults_s`` / ``_peak_rss_mb``; ``torch_whole_image_s`` / ``_peak_rss_mb`` (a bare torch pass
  over the whole image: the whole-image floor when bioimageio.core is not installed);
  ``bioimageio_default_s``, ``bioimageio_block256_s`` and their peaks; ratios against the targets
  (>= 2x the whole-image default, >= 2.5x the 256 blocks, <= 1/3 of the whole-image peak memory);
- per engine (onnxruntime, OpenVINO, torch): seconds per 512x512 pass and achieved GFLOP/s (multiply-adds
  of Conv/ConvTranspose/MatMul/Gemm counted from the ONNX graph at that size, 2 FLOP each) against the CPU's
  FP32 FMA peak (from /proc/cpuinfo flags and clock);
- start-up: a fresh process's first prediction (512x512) with a cold and a warm graph cache.

Usage: ``.venv/bin/python benchmarks/bench_fast_path.py [--repeats N] [--size 2048] [--no-bioimageio]
[--warm-cache]`` (``--warm-cache``: the graph cache filled by an earlier process, as every run after a
machine's first finds it; without it deepij converts in the timed process and imports torch there).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import _common as common  # the benchmarks' shared parts, next to this file (on sys.path when it runs)
import numpy as np

HERE = Path(__file__).resolve().parent

FIXED = 512
DEPTH, BASE = 3, 16

ONNX_ENTRY = """\
  onnx:
    source: unet_fixed512.onnx
    sha256: {sha}
    opset_version: 17
"""


def _rdf(weights: str) -> str:
    return common.UNET_RDF.format(
        name="deepij fast-path U-Net",
        description="A scripted zoo-style U-Net with fixed-dims ONNX weights (random weights) for timing.",
        min=96,
        step=16,
        halo=32,
        weights=weights,
    )


def write_bundles(workdir: Path) -> tuple[Path, Path]:
    """``bundle/`` (both weights, for deepij) and ``bundle_ts/`` (TorchScript only, for bioimageio.core,
    which would pick the ONNX file and fail on every size but 512)."""
    from support import zoo_models

    bundle = workdir / "bundle"
    bundle.mkdir(parents=True)
    scripted = zoo_models.write_scripted_zoo_unet(bundle / "unet.pt", depth=DEPTH, base=BASE)
    module = zoo_models.zoo_unet_module(depth=DEPTH, base=BASE)
    zoo_models._export_fixed(module, bundle / "unet_fixed512.onnx", FIXED)
    common.write_unet_files(bundle, scripted.forward, 96, "bench_fast_path.py")  # 96: > 2 halos
    ts_entry = common.TORCHSCRIPT_WEIGHTS.format(source="unet.pt", sha256=common.sha256(bundle / "unet.pt"))
    onnx_entry = ONNX_ENTRY.format(sha=common.sha256(bundle / "unet_fixed512.onnx"))
    (bundle / "rdf.yaml").write_text(_rdf(onnx_entry + ts_entry))
    torchscript_only = workdir / "bundle_ts"
    shutil.copytree(bundle, torchscript_only)
    (torchscript_only / "unet_fixed512.onnx").unlink()
    (torchscript_only / "rdf.yaml").write_text(_rdf(ts_entry))
    return bundle, torchscript_only


# --- FLOPs and the CPU's peak -----------------------------------------------------------------------------


def multiply_adds(model_path: Path, side: int) -> int:
    """Multiply-adds of Conv, ConvTranspose, MatMul and Gemm in the ONNX graph for a 1x1xside x side input."""
    import onnx

    proto = onnx.load(str(model_path))
    for value in proto.graph.input:
        dims = value.type.tensor_type.shape.dim
        for position, dim in enumerate(dims):
            dim.Clear()
            dim.dim_value = 1 if position < 2 else side
    for value in proto.graph.output:
        for dim in value.type.tensor_type.shape.dim:
            dim.Clear()
    del proto.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {}
    for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        shapes[value.name] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    for init in proto.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for node in inferred.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            weight = shapes[node.input[1]]  # Conv: (out, in/g, k...), ConvTranspose: (in, out/g, k...)
            kernel = int(np.prod(weight[2:]))
            if node.op_type == "Conv":
                total += int(np.prod(shapes[node.output[0]])) * weight[1] * kernel
            else:
                total += int(np.prod(shapes[node.input[0]])) * weight[1] * kernel
        elif node.op_type in ("MatMul", "Gemm"):
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            total += int(np.prod(out)) * a[-1]
    return total


def cpu_peak_gflops() -> tuple[float, str]:
    """FP32 FMA peak of the cores this process may use: cores x 2 FMA units x lanes x 2 FLOP x base GHz."""
    text = Path("/proc/cpuinfo").read_text()
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())  # type: ignore[union-attr]
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags and "fma" in flags else 4
    base = Path("/sys/devices/system/cpu/cpu0/cpufreq/base_frequency")
    if base.is_file():
        ghz = int(base.read_text()) / 1e6
    else:
        ghz = max(float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)) / 1e3
    cores = len(os.sched_getaffinity(0))
    peak = cores * 2 * lanes * 2 * ghz
    return peak, f"{cores} cores x 2 FMA units x {lanes} fp32 lanes x 2 FLOP x {ghz:.2f} GHz"


# --- workers ---------------------------------------------------------------------------------------------


def worker_deepij(workdir: Path) -> None:
    image = np.load(workdir / "image.npy")
    state: dict[str, object] = {}

    def load() -> Callable[[], object]:
        import deepij

        model = deepij.load(workdir / "bundle")

        def run() -> None:
            state["result"] = model.predict(image)

        return run

    def finish() -> None:
        result = state.get("result")
        if result is not None:
            np.save(workdir / "image.deepij_defaults.npy", common.output_array(result))
            for note in getattr(result, "notes", []) or []:
                print(f"# deepij note: {note}", flush=True)

    common.serve("deepij_defaults", load, finish)


def worker_torch_whole(workdir: Path) -> None:
    def load() -> Callable[[], object]:
        import torch

        module = torch.jit.load(str(workdir / "bundle" / "unet.pt")).eval()
        image = torch.from_numpy(np.load(workdir / "image.npy"))

        def run() -> None:
            with torch.inference_mode():
                module(image)

        return run

    common.serve("torch_whole_image", load)


def worker_engines(workdir: Path, repeats: int) -> None:
    """Seconds per 512x512 pass and GFLOP/s per engine, on the graph deepij made (relaxed ONNX) and torch."""
    import deepij
    from deepij.inference.backends import load_backend

    description = deepij.load(workdir / "bundle").description
    image = common.make_image(FIXED)
    flops = 2 * multiply_adds(workdir / "bundle" / "unet_fixed512.onnx", FIXED)
    peak, how = cpu_peak_gflops()
    common.emit("forward_512_gflop", flops / 1e9, "GFLOP")
    common.emit("cpu_fp32_peak_gflops", peak, "GFLOP/s")
    print(f"# peak: {how}", flush=True)
    engines = {
        "onnxruntime": load_backend(description, runtime="onnxruntime"),
        "openvino": load_backend(description, runtime="openvino"),
        "torch": load_backend(description, weights_format="torchscript", runtime="native"),
    }
    for backend in engines.values():
        backend.predict([image])
    best = {name: float("inf") for name in engines}
    for _ in range(repeats):
        for name, backend in engines.items():
            started = time.perf_counter()
            backend.predict([image])
            best[name] = min(best[name], time.perf_counter() - started)
    for name, seconds in best.items():
        common.emit(f"engine_{name}_512_pass_s", seconds, "s")
        common.emit(f"engine_{name}_gflops", flops / seconds / 1e9, "GFLOP/s")
        common.emit(f"engine_{name}_of_peak_ratio", flops / seconds / 1e9 / peak, "x")


STARTUP = """
import time, sys, warnings
warnings.simplefilter("ignore")
started = time.perf_counter()
import numpy as np, deepij
model = deepij.load(sys.argv[1])
result = model.predict(np.random.default_rng(0).random((1, 1, 512, 512), dtype=np.float32))
print(f"{time.perf_counter() - started:.4f}")
print(" | ".join(result.notes))
"""


def startup(workdir: Path, figures: dict[str, float]) -> None:
    cache = workdir / "startup-cache"
    env = dict(os.environ, DEEPIJ_CACHE_DIR=str(cache))
    for label in ("cold", "warm"):
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-c", STARTUP, str(workdir / "bundle")], capture_output=True, text=True, env=env
        )
        wall = time.perf_counter() - started
        if completed.returncode != 0:
            print(f"# start-up ({label}) failed:\n{completed.stderr[-1500:]}", flush=True)
            return
        inside, notes = [*completed.stdout.splitlines(), "", ""][:2]
        common.emit(f"startup_{label}_cache_first_prediction_s", wall, "s")
        common.emit(f"startup_{label}_cache_after_imports_s", float(inside), "s")
        figures[f"startup_{label}_s"] = wall
        print(f"# {label}: {notes[:400]}", flush=True)


# --- the driver -------------------------------------------------------------------------------------------

RATIOS = (
    ("target_2x_deepij_over_whole_image_default_ratio", "deepij_defaults_s", "bioimageio_default_s"),
    ("target_2.5x_deepij_over_bioimageio_block256_ratio", "deepij_defaults_s", "bioimageio_block256_s"),
    (
        "target_third_deepij_peak_over_whole_image_peak_ratio",
        "deepij_defaults_peak_rss_mb",
        "bioimageio_default_peak_rss_mb",
    ),
    ("deepij_over_bare_torch_whole_image_ratio", "deepij_defaults_s", "torch_whole_image_s"),
    (
        "deepij_peak_over_bare_torch_whole_image_peak_ratio",
        "deepij_defaults_peak_rss_mb",
        "torch_whole_image_peak_rss_mb",
    ),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--no-bioimageio", action="store_true")
    parser.add_argument(
        "--warm-cache",
        action="store_true",
        help="fill deepij's graph cache in an earlier process first, as later runs on a machine find it",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.worker == "deepij":
        worker_deepij(args.workdir)
        return 0
    if args.worker == "torch":
        worker_torch_whole(args.workdir)
        return 0
    if args.worker == "engines":
        worker_engines(args.workdir, args.repeats)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="deepij-fast-path-"))
    try:
        write_bundles(workdir)
        np.save(workdir / "image.npy", common.make_image(args.size))
        print(f"# image {args.size}x{args.size}, {os.cpu_count()} cpus, load {os.getloadavg()}", flush=True)
        os.environ["DEEPIJ_CACHE_DIR"] = str(workdir / "cache")  # never the user's cache; children inherit
        env = dict(os.environ)
        me = [sys.executable, str(Path(__file__).resolve()), "--workdir", str(workdir), "--repeats"]
        me += [str(args.repeats), "--worker"]
        plan: list[tuple[str, list[str], dict | None]] = [
            ("deepij_defaults", [*me, "deepij"], env),
            ("torch_whole_image", [*me, "torch"], env),
        ]
        if not args.no_bioimageio:
            plan += common.bioimageio_contenders(workdir / "bundle_ts" / "rdf.yaml", workdir / "image.npy")
        if args.warm_cache:  # the conversion happens once per machine; later processes import no torch
            subprocess.run([sys.executable, "-c", STARTUP, str(workdir / "bundle")], env=env, check=True,
                           capture_output=True)
            print("# deepij's graph cache was filled by an earlier process", flush=True)
        figures = common.run_rounds(plan, workdir, args.repeats)
        common.collect([*me, "engines"], figures)
        startup(workdir, figures)
        common.emit_ratios(RATIOS, figures, workdir, "deepij_vs_bioimageio_default_max_abs_diff")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
