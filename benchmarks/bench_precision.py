"""Lower precision on the CPU: float32 against int8 (and bfloat16 where the CPU has it), onnxruntime and
OpenVINO, on the zoo-style U-Net.

The network: the scripted zoo-style U-Net of support.zoo_models (depth 3, base 16, sigmoid output), trained
here for ``--train-steps`` Adam steps to segment the bright blobs of :func:`_common.make_image` images (a
network with random weights gives a near-constant output, on which an error figure means nothing), saved as
TorchScript (converted to ONNX by deepij, as for every torch bundle on the CPU) in a 0.5 bundle whose test
input is a 256x256 image of the same kind (the int8 calibration input) and whose reproducibility tolerance is
``--tolerance`` (absolute, on a probability map; default 0.1: int8 is kept, so it is timed. The errors are
printed against bioimage.io's default tolerance too, under which int8 would be refused).

Contenders, each in its own process, asked in turn for ``--repeats`` rounds (the machinery of _common.py),
one image size at a time: ``deepij.load(bundle).predict(image, runtime=ENGINE, precision=P)`` for ENGINE in
onnxruntime, OpenVINO and P in float32, int8 (and bfloat16 where this CPU has bfloat16 arithmetic; it is
refused elsewhere and the reason printed); on x86 CPUs without VNNI, where deepij gives int8 weights 7 bits
against onnxruntime's saturation, also onnxruntime with 8-bit weights (``int8fullrange``: faster or not,
and how wrong). The torch weights are converted to ONNX and quantized once,
before the contenders start (they share the graph cache, as processes on one machine do), so their load
times are warm starts; the load is timed apart from the passes.

Printed figures (``name value unit``) per size S and contender E_P: ``E_P_S_s`` (best time per image),
``E_P_S_peak_rss_mb``, ``E_P_S_load_s``; ``E_P_S_max_abs_error`` and ``E_P_S_mismatched_per_million``
(outside rtol 1e-3, atol 1e-3: bioimage.io's default tolerance) and ``E_P_S_mask_disagreement_per_million``
(pixels on the other side of 0.5, what a segmentation keeps) against onnxruntime's float32 output;
``E_P_over_float32_S_ratio`` (< 1: P faster) and ``best_int8_over_best_float32_S_ratio``. Also the
CPU's VNNI / AMX / bfloat16 flags and OpenVINO's capabilities, and the machine's load.

Usage: ``.venv/bin/python benchmarks/bench_precision.py [--repeats N] [--sizes 512,2048]
[--train-steps 60] [--tolerance 0.1]``.
"""

from __future__ import annotations

import argparse
import os
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

DEPTH, BASE = 3, 16
ENGINES = ("onnxruntime", "openvino")
CONFIG = """\
config:
  bioimageio:
    reproducibility_tolerance:
      - {{absolute_tolerance: {tolerance}, relative_tolerance: 0.0}}
"""

# --- the network and its bundle ---------------------------------------------------------------------------


def _blobs(rng: np.random.Generator, batch: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Images made as :func:`_common.make_image` makes them (a blocky layer of 32-pixel blobs, 0.7 of the
    value, plus 0.3 noise) and their masks (the blob layer above 0.55)."""
    coarse = rng.random((batch, 1, side // 32 + 2, side // 32 + 2), dtype=np.float32)
    smooth = np.repeat(np.repeat(coarse, 32, axis=2), 32, axis=3)[:, :, :side, :side]
    shift = rng.integers(0, 32, size=2)  # blob edges anywhere, not only on the 32-pixel grid
    smooth = np.roll(smooth, tuple(shift), axis=(2, 3))
    images = 0.7 * smooth + 0.3 * rng.random((batch, 1, side, side), dtype=np.float32)
    return np.ascontiguousarray(images), (smooth > 0.55).astype(np.float32)


def train(module: object, steps: int, seed: int = 0) -> object:
    """``steps`` Adam steps of binary cross-entropy on 64x64 blob images, batch 4 (seeded)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    module.train()  # type: ignore[attr-defined]
    optimizer = torch.optim.Adam(module.parameters(), lr=2e-3)  # type: ignore[attr-defined]
    loss = torch.nn.BCELoss()
    for step in range(steps):
        images, masks = _blobs(rng, 4, 64)
        optimizer.zero_grad()
        value = loss(module(torch.from_numpy(images)), torch.from_numpy(masks))  # type: ignore[operator]
        value.backward()
        optimizer.step()
        if step % 20 == 0 or step == steps - 1:
            print(f"# training step {step}: loss {value.item():.4f}", flush=True)
    return module.eval()  # type: ignore[attr-defined]


def write_bundle(folder: Path, steps: int, tolerance: float) -> None:
    """The trained zoo-style U-Net as TorchScript in a 0.5 bundle (module notes)."""
    import torch

    from support import zoo_models

    folder.mkdir(parents=True)
    module = train(zoo_models.zoo_unet_module(depth=DEPTH, base=BASE), steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(module).save(str(folder / "unet.pt"))
    test_input = common.make_image(256, seed=1)
    np.save(folder / "test_input.npy", test_input)
    with torch.inference_mode():
        test_output = module(torch.from_numpy(test_input)).numpy()
    np.save(folder / "test_output.npy", test_output)
    quartiles = ", ".join(f"{q:.3f}" for q in np.quantile(test_output, (0, 0.25, 0.5, 0.75, 1)))
    print(f"# the trained network's output on the test input: quantiles 0/25/50/75/100% {quartiles}")
    (folder / "README.md").write_text("Benchmark model written by deepij's benchmarks/bench_precision.py.\n")
    weights = common.TORCHSCRIPT_WEIGHTS.format(source="unet.pt", sha256=common.sha256(folder / "unet.pt"))
    rdf = common.UNET_RDF.format(
        name="deepij precision U-Net",
        description="A zoo-style U-Net trained briefly on blob images, for timing lower precisions.",
        min=96,
        step=16,
        halo=32,
        weights=weights,
    )
    (folder / "rdf.yaml").write_text(rdf + CONFIG.format(tolerance=tolerance))


# --- one contender: its own process -----------------------------------------------------------------------


def worker(workdir: Path, engine: str, precision: str, side: int) -> None:
    """Serve ``predict(image, runtime=engine, precision=precision)`` on the ``side`` image;
    ``int8fullrange``: int8 with 8-bit weights where deepij gives them 7 (module notes)."""
    name = f"{engine}_{precision}_{side}"
    image = np.load(workdir / f"image{side}.npy")
    state: dict[str, object] = {}
    if precision == "int8fullrange":
        from deepij.inference.backends import quantization

        quantization.reduced_weights = lambda: False  # type: ignore[assignment]  # this process only
        precision = "int8"

    def load() -> Callable[[], object]:
        import deepij

        model = deepij.load(workdir / "bundle")
        backend = model.backend(None, None, engine, precision)
        for note in backend.notes:
            print(f"# {name}: {note}", flush=True)
        if precision != "float32" and any("refused" in note for note in backend.notes):
            raise SystemExit(f"{name}: {precision} refused, nothing to time")

        def run() -> None:
            state["result"] = model.predict(image, runtime=engine, precision=precision)

        return run

    def finish() -> None:
        if "result" in state:
            np.save(workdir / f"{name}.npy", common.output_array(state["result"]))

    common.serve(name, load, finish)


# --- the driver --------------------------------------------------------------------------------------------


def prepare(workdir: Path, steps: int, tolerance: float) -> None:
    """In a child process (the driver stays small: a child's peak RSS starts from its parent's size at
    fork): the CPU's description, the bundle, its converted and quantized graphs in the graph cache, and
    the precisions this CPU can run."""
    from deepij.inference.backends.cpu_precision import bfloat16_missing

    describe_machine()
    started = time.perf_counter()
    write_bundle(workdir / "bundle", steps, tolerance)
    print(f"# bundle written in {time.perf_counter() - started:.1f} s", flush=True)
    import deepij

    model = deepij.load(workdir / "bundle")
    for precision in ("float32", "int8"):  # conversion and quantization, once: contenders start warm
        started = time.perf_counter()
        model.backend(None, None, "onnxruntime", precision)
        print(f"# {precision} graph made in {time.perf_counter() - started:.1f} s", flush=True)
    model.close()
    missing = bfloat16_missing()
    if missing is not None:
        print(f"# bfloat16 not measured: {missing}", flush=True)
    from deepij.inference.backends.quantization import reduced_weights

    full_range = " int8fullrange" if reduced_weights() else ""
    print("precisions float32 int8" + full_range + (" bfloat16" if missing is None else ""), flush=True)


def errors(workdir: Path, side: int, figures: dict[str, float]) -> None:
    """Each contender's output against onnxruntime's float32 output on the same image."""
    reference_file = workdir / f"onnxruntime_float32_{side}.npy"
    if not reference_file.is_file():
        return
    reference = np.load(reference_file).astype(np.float64)
    for path in sorted(workdir.glob(f"*_{side}.npy")):
        if path == reference_file or path.name.startswith("image"):
            continue
        got = np.load(path).astype(np.float64)
        outside = ~np.isclose(got, reference, rtol=1e-3, atol=1e-3)
        common.emit(f"{path.stem}_max_abs_error", float(np.abs(got - reference).max()), "1")
        common.emit(f"{path.stem}_mismatched_per_million", outside.mean() * 1e6, "ppm")
        flipped = (got > 0.5) != (reference > 0.5)
        common.emit(f"{path.stem}_mask_disagreement_per_million", flipped.mean() * 1e6, "ppm")
        figures[f"{path.stem}_max_abs_error"] = float(np.abs(got - reference).max())


def ratios(side: int, figures: dict[str, float]) -> None:
    for engine in ENGINES:
        float32 = figures.get(f"{engine}_float32_{side}_s")
        for precision in ("int8", "int8fullrange", "bfloat16"):
            lower = figures.get(f"{engine}_{precision}_{side}_s")
            if lower and float32:
                common.emit(f"{engine}_{precision}_over_float32_{side}_ratio", lower / float32, "x")
    best = {
        p: min((figures[k] for e in ENGINES if (k := f"{e}_{p}_{side}_s") in figures), default=0.0)
        for p in ("int8", "float32")
    }
    if best["int8"] and best["float32"]:
        common.emit(f"best_int8_over_best_float32_{side}_ratio", best["int8"] / best["float32"], "x")


def describe_machine() -> None:
    from deepij.inference.backends.cpu_precision import describe_cpu

    found = describe_cpu()
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in found.items() if isinstance(v, bool))
    print(f"# CPU flags: {flags}; OpenVINO: {found['openvino_capabilities']}", flush=True)
    load_average()


def load_average() -> None:
    with open("/proc/loadavg") as stream:
        print(f"# {os.cpu_count()} cpus, load average {stream.read().split()[:3]}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="512,2048")
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument("--tolerance", type=float, default=0.1)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.worker:
        engine, precision, side = args.worker
        worker(args.workdir, engine, precision, int(side))
        return 0
    if args.prepare:
        prepare(args.workdir, args.train_steps, args.tolerance)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="deepij-precision-"))
    try:
        os.environ["DEEPIJ_CACHE_DIR"] = str(workdir / "cache")  # never the user's cache; children inherit
        me = [sys.executable, str(Path(__file__).resolve()), "--workdir", str(workdir)]
        setup = [*me, "--prepare", "--train-steps", str(args.train_steps), "--tolerance", str(args.tolerance)]
        prepared = subprocess.run(setup, capture_output=True, text=True, check=False)
        lines = prepared.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith("precisions ")), flush=True)
        if prepared.returncode != 0:
            print(f"# preparing failed:\n{prepared.stderr[-2000:]}", flush=True)
            return 1
        precisions = next(line for line in lines if line.startswith("precisions ")).split()[1:]
        me.append("--worker")
        for side in (int(s) for s in args.sizes.split(",")):
            np.save(workdir / f"image{side}.npy", common.make_image(side, seed=7))
            print(f"# image {side}x{side}", flush=True)
            plan = [
                (f"{e}_{p}_{side}", [*me, e, p, str(side)], dict(os.environ))
                for p in precisions
                for e in ENGINES
                if not (p == "bfloat16" and e == "onnxruntime")  # no bfloat16 kernels in onnxruntime
                and not (p == "int8fullrange" and e == "openvino")  # the saturation is onnxruntime's
            ]
            figures = common.run_rounds(plan, workdir, args.repeats)
            errors(workdir, side, figures)
            ratios(side, figures)
            load_average()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
