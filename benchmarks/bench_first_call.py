"""The first call of a fresh process: what it costs before its first result, against a warm call.

Each contender is a fresh process (peak memory its own, from ``wait4``), the contenders interleaved round
after round on one machine, each figure the best of ``--rounds``:

- ``predict_warm_cache``: ``deepij.load`` then ``predict`` twice on a 512x512 image of a zoo-sized bundle
  (bench_fast_path.py's: a scripted U-Net, depth 3, base 16, TorchScript and fixed-size ONNX weights), the
  graph cache filled by an earlier process: ``_import_s``, ``_load_s``, ``_first_predict_s``,
  ``_warm_predict_s`` and ``first_over_warm_predict_ratio`` (target <= 2);
- ``predict_cold_cache``: the same with an empty cache, the parts apart: ``_backend_s`` (reading weights,
  conversion to ONNX and its check against torch, the engine probe), ``_first_predict_s`` (memory
  measured, the pass), ``_warm_predict_s``;
- ``macro``: ``deepij macro`` on a macro calling ``run("DeepImageJ Run", ...)`` with the bundle's own
  ImageJ pre- and post-processing macros (the demo bundle's, on the zoo-sized network), over two 512x512
  images: ``macro_first_run_s`` / ``macro_second_run_s`` (per image as deepij macro reports it: the
  first includes finding and loading the model; target <= 3 s), ``macro_total_s`` (the command);
- ``deepij_run`` / ``bioimageio_predict``: each command on one 512x512 image of the TorchScript-only
  bundle (spec ops): ``_first_output_s`` (start to the output file) and ``_total_s``; ``bioimageio_predict``
  only where benchmarks/.venv-bioimageio exists (setup_bioimageio_env.sh).

The children run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed), as an installed package
does: without it every process compiles deepij's sources again (0.8 s on a loaded 2-core machine).

Usage: ``.venv/bin/python benchmarks/bench_first_call.py [--rounds 3] [--no-bioimageio]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import _common as common  # the benchmarks' shared parts, next to this file (on sys.path when it runs)
import numpy as np

HERE = Path(__file__).resolve().parent
DEMO = common.ROOT / "examples" / "nuclei_bundle"
BIOIMAGEIO = common.SIDE_ENV / "bin" / "bioimageio"
SIDE = 512
MACRO_BUNDLE = "zoo sized nuclei U-Net"

PREDICT = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
started = time.perf_counter()
import numpy as np, deepij
imported = time.perf_counter()
model = deepij.load(sys.argv[1])
loaded = time.perf_counter()
if sys.argv[2] == "parts":
    model.backend()
backend = time.perf_counter()
image = np.load(sys.argv[3])
model.predict(image)
first = time.perf_counter()
model.predict(image)
warm = time.perf_counter()
print(json.dumps({"import_s": imported - started, "load_s": loaded - imported, "backend_s": backend - loaded,
                  "first_predict_s": first - backend, "warm_predict_s": warm - first,
                  "frameworks": sorted(m for m in ("torch", "onnx", "openvino", "tensorflow", "dask.array",
                                                   "jpype") if m in sys.modules)}))
"""


def run_measured(command: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str, str]:
    """(wall seconds, peak resident MiB of the process, stdout, stderr) of one command."""
    out, err = cwd / ".stdout", cwd / ".stderr"
    started = time.perf_counter()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise common.ChildFailed(f"{command[0]}: exit {process.returncode}: {err.read_text()[-1500:]}")
    return wall, usage.ru_maxrss / 1024, out.read_text(), err.read_text()


def child_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(DEEPIJ_CACHE_DIR=str(cache), TQDM_DISABLE="1", PYTHONPATH=str(common.ROOT / "src"))
    return env


def write_macro_bundle(models: Path, zoo: Path) -> str:
    """The demo bundle with its macros, its network replaced by the zoo-sized one (TorchScript only)."""
    import yaml

    name = MACRO_BUNDLE
    folder = models / "zoo_macros"
    shutil.copytree(DEMO, folder)
    for weights in ("weights.onnx", "weights_torchscript.pt"):
        (folder / weights).unlink()
    shutil.copy(zoo / "unet.pt", folder / "unet.pt")
    data = yaml.safe_load((folder / "rdf.yaml").read_text())
    data["name"] = name
    for axis in data["inputs"][0]["axes"][2:]:
        axis["size"] = {"min": 96, "step": 16}
    for axis in data["outputs"][0]["axes"][2:]:
        axis["halo"] = 32
    shutil.copy(zoo / "test_output.npy", folder / "test_output.npy")
    shutil.copy(zoo / "test_input.npy", folder / "test_input.npy")
    for tensor, file in ((data["inputs"][0], "test_input.npy"), (data["outputs"][0], "test_output.npy")):
        tensor["test_tensor"]["sha256"] = common.sha256(folder / file)
    data["weights"] = {"torchscript": {"source": "unet.pt", "sha256": common.sha256(folder / "unet.pt"),
                                       "pytorch_version": "2.13"}}
    (folder / "rdf.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return name


def write_images(folder: Path, count: int) -> list[Path]:
    sys.path.insert(0, str(common.ROOT / "examples"))
    import tifffile
    from nuclei_data import synthetic_nuclei

    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        paths.append(folder / f"nuclei_{index}.tif")
        tifffile.imwrite(paths[-1], synthetic_nuclei(size=SIDE, count=60, seed=index).image)
    return paths


# --- contenders: each a function run once per round ------------------------------------------------------


def predict_contender(work: Path, cold: bool) -> Callable[[], dict[str, float]]:
    label = "predict_cold_cache" if cold else "predict_warm_cache"
    command = [sys.executable, "-c", PREDICT, str(work / "bundle"), "parts" if cold else "whole",
               str(work / "image.npy")]

    def run() -> dict[str, float]:
        cache = work / ("cold-cache" if cold else "cache")
        if cold:
            shutil.rmtree(cache, ignore_errors=True)
        wall, peak, out, _ = run_measured(command, child_env(cache), work)
        parts = json.loads(out.strip().splitlines()[-1])
        print(f"# {label}: frameworks imported {parts.pop('frameworks')}", flush=True)
        figures = {f"{label}_{k}": v for k, v in parts.items()}
        return {**figures, f"{label}_process_s": wall, f"{label}_peak_rss_mb": peak}

    return run


def macro_contender(work: Path, name: str) -> Callable[[], dict[str, float]]:
    macro = work / "deepimagej_run.ijm"
    macro.write_text(
        f'run("DeepImageJ Run", "model=[{name}] format=Pytorch preprocessing=[per_sample_scale_range.ijm] '
        'postprocessing=[threshold_watershed_count.ijm] axes=Y,X logging=normal");\n'
    )
    command = [sys.executable, "-m", "deepij.frontdoors.cli", "macro", str(macro), "--input",
               str(work / "images"), "--models-dir", str(work / "models")]

    def run() -> dict[str, float]:
        wall, peak, out, err = run_measured(command, child_env(work / "cache"), work)
        seconds = [float(s) for s in re.findall(r": done \(([\d.]+) s\)", out + err)]
        if len(seconds) < 2:
            raise common.ChildFailed(f"deepij macro reported {seconds}: {(out + err)[-1500:]}")
        return {"macro_first_run_s": seconds[0], "macro_second_run_s": seconds[1], "macro_total_s": wall,
                "macro_peak_rss_mb": peak}

    return run


def folder_contender(work: Path, label: str, image: Path) -> Callable[[], dict[str, float]]:
    output = work / f"out_{label}"
    if label == "deepij_run":
        command = [sys.executable, "-m", "deepij.frontdoors.cli", "run", str(work / "bundle_ts"), "--input",
                   str(image), "--output", str(output), "--processing", "spec", "--device", "cpu",
                   "--no-progress"]
    else:
        command = [str(BIOIMAGEIO), "predict", "--inputs", json.dumps([str(image)]), "--outputs",
                   str(output / "{sample_id}_{output_id}.tif"), "--weight-format", "torchscript",
                   "--devices", '["cpu"]', str(work / "bundle_ts")]

    def run() -> dict[str, float]:
        shutil.rmtree(output, ignore_errors=True)
        env = child_env(work / "cache")
        if label != "deepij_run":
            env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        started = time.time()
        wall, peak, _, _ = run_measured(command, env, work)
        [written] = sorted(output.glob("*.tif"))
        return {f"{label}_first_output_s": written.stat().st_mtime - started, f"{label}_total_s": wall,
                f"{label}_peak_rss_mb": peak}

    return run


def interleave(plan: Sequence[tuple[str, Callable[[], dict[str, float]]]], rounds: int) -> dict[str, float]:
    """Each contender once per round, in turn; the best (lowest) value of each figure."""
    best: dict[str, float] = {}
    for round_number in range(rounds):
        for label, run in plan:
            try:
                figures = run()
            except common.ChildFailed as error:
                print(f"# {label} failed in round {round_number + 1}: {error}", flush=True)
                continue
            for name, value in figures.items():
                best[name] = min(value, best.get(name, value))
    return best


def main(argv: Sequence[str] | None = None) -> int:
    import bench_fast_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-bioimageio", action="store_true")
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare is not None:  # in a child: torch stays out of the driver, whose size forks inherit
        bench_fast_path.write_bundles(args.prepare)
        np.save(args.prepare / "image.npy", common.make_image(SIDE))
        write_macro_bundle(args.prepare / "models", args.prepare / "bundle")
        write_images(args.prepare / "images", 2)
        return 0
    work = Path(tempfile.mkdtemp(prefix="deepij-first-call-"))
    try:
        subprocess.run([sys.executable, __file__, "--prepare", str(work)], check=True, capture_output=True)
        name, images = MACRO_BUNDLE, sorted((work / "images").glob("*.tif"))
        print(f"# {SIDE}x{SIDE}, {os.cpu_count()} cpus, load {os.getloadavg()}", flush=True)
        warm = predict_contender(work, cold=False)
        warm()  # fills the graph cache (conversion, engine choice, memory estimate), as a machine's first run
        macro_contender(work, name)()  # and the macro bundle's entries
        plan = [("predict_warm_cache", warm), ("predict_cold_cache", predict_contender(work, cold=True)),
                ("macro", macro_contender(work, name)),
                ("deepij_run", folder_contender(work, "deepij_run", images[0]))]
        if not args.no_bioimageio and BIOIMAGEIO.exists():
            plan.append(("bioimageio_predict", folder_contender(work, "bioimageio_predict", images[0])))
        figures = interleave(plan, args.rounds)
        for name_, value in sorted(figures.items()):
            common.emit(name_, value, "MB" if name_.endswith("_mb") else "s")
        ratios = (("first_over_warm_predict_ratio", "predict_warm_cache_first_predict_s",
                   "predict_warm_cache_warm_predict_s"),
                  ("deepij_run_over_bioimageio_first_output_ratio", "deepij_run_first_output_s",
                   "bioimageio_predict_first_output_s"))
        for label, numerator, denominator in ratios:
            if figures.get(numerator) and figures.get(denominator):
                common.emit(label, figures[numerator] / figures[denominator], "x")
        print(f"# load after: {os.getloadavg()}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
