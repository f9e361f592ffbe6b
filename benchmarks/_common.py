"""What the benchmarks share: figures printed as ``name value unit``, best-of timing, peak memory (of this
process, and of a child process started for one measurement), contender processes timed in turn, the
bioimageio.core side environment, and the small models and bundles they time.

Importing it puts ``tests/`` on ``sys.path`` (the benchmarks' models come from ``tests/support``).

Examples
--------
>>> emit("predict_s", 0.123456, "s")
predict_s 0.1235 s
>>> best_time(lambda: None, 3) < 1.0
True
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIDE_ENV = HERE / ".venv-bioimageio"
"""bioimageio.core's own environment (made by setup_bioimageio_env.sh)."""
LINE = re.compile(r"^(\S+) (\S+) (\S+)$")
"""A figure line: ``name value unit``."""

if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))


# --- figures and timing ---------------------------------------------------------------------------------


def emit(name: str, value: float, unit: str) -> None:
    """Print one figure as ``name value unit``."""
    print(f"{name} {value:.4g} {unit}", flush=True)


def best_time(run: Callable[[], object], repeats: int, *, warm_up: bool = False) -> float:
    """The best of ``repeats`` timed calls of ``run`` (after one untimed call with ``warm_up``)."""
    if warm_up:
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


# --- peak memory ----------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB: the kernel's high-water mark (``VmHWM``), not
    ``ru_maxrss``, which a child process starts with at its parent's peak (it survives fork and exec: a
    contender started by a driver that had made a 1.5 GB image reported 1.5 GB whatever it used)."""
    return high_water_bytes() / 2**20


def high_water_bytes() -> int:
    """The kernel's resident high-water mark of this process (``VmHWM``), since the last reset."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_high_water() -> None:
    """Start the high-water mark again from the resident size now (``/proc/self/clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")


class ChildFailed(RuntimeError):
    """A measuring child process exited with an error (the message ends with its last stderr lines)."""


def run_child(script: str | Path, *arguments: str) -> dict[str, Any]:
    """Run ``python script --child ARGUMENTS...`` in a fresh process (its peak memory is its own) and
    return the JSON object it prints last.

    Raises
    ------
    ChildFailed
        The child exited with an error.
    """
    command = [sys.executable, str(script), "--child", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-3:])
        raise ChildFailed(f"{' '.join(arguments)}: exit {done.returncode}: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_child_json(result: dict[str, Any]) -> None:
    """What a child process prints for :func:`run_child`."""
    print(json.dumps(result))


# --- contenders: one process each, loaded once, timed on demand -----------------------------------------


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


class Contender:
    """A :func:`serve` process the driver talks to over pipes; its stderr goes to a log file."""

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


def run_rounds(
    plan: Sequence[tuple[str, Sequence[str], dict | None]], workdir: Path, repeats: int
) -> dict[str, float]:
    """Start each contender of ``plan`` (label, command, environment), time one pass of each in turn for
    ``repeats`` rounds, then stop them: the figures they printed, each one's best time as ``<label>_s``."""
    figures: dict[str, float] = {}
    running = [Contender(name, command, workdir / f"{name}.log", figures, env) for name, command, env in plan]
    for _ in range(repeats):
        for contender in running:
            contender.run_once()
    for contender in running:
        contender.finish()
    return figures


def emit_ratios(
    ratios: Sequence[tuple[str, str, str]], figures: dict[str, float], workdir: Path, difference: str
) -> None:
    """Each ratio (name, numerator, denominator) of figures that are there, and as ``difference`` the
    largest difference between deepij's defaults' and bioimageio.core's whole-image outputs when both saved
    theirs."""
    print("# ratios (< 1: the first is faster or smaller)", flush=True)
    for name, numerator, denominator in ratios:
        if figures.get(numerator) and figures.get(denominator):
            emit(name, figures[numerator] / figures[denominator], "x")
    ours, theirs = workdir / "image.deepij_defaults.npy", workdir / "image.bioimageio_default.npy"
    if ours.is_file() and theirs.is_file():
        emit(difference, float(np.abs(np.load(ours).reshape(-1) - np.load(theirs).reshape(-1)).max()), "1")


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


def output_array(result: object) -> np.ndarray:
    """A prediction's first image output as float32 numpy."""
    return np.asarray(next(iter(result.images.values())), dtype=np.float32)  # type: ignore[attr-defined]


# --- bioimageio.core ------------------------------------------------------------------------------------


def bioimageio_env() -> Path | None:
    """bioimageio.core's environment, made (or found) by setup_bioimageio_env.sh; None when it cannot be."""
    setup = HERE / "setup_bioimageio_env.sh"
    completed = subprocess.run(["bash", str(setup)], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        print(f"# bioimageio.core environment could not be made: {completed.stderr[-500:]}", flush=True)
        return None
    return SIDE_ENV


def bioimageio_contenders(
    rdf: Path, image: Path, blocks: Sequence[int] = (256,)
) -> list[tuple[str, list[str], dict | None]]:
    """bioimageio.core's contenders on ``image`` (its whole-image default, then each block size), run by
    bioimageio_core_runner.py in the side environment; none when that cannot be made."""
    side = bioimageio_env()
    if side is None:
        return []
    runner = [str(side / "bin" / "python"), str(HERE / "bioimageio_core_runner.py"), str(rdf), str(image)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TQDM_DISABLE"] = "1"
    plan: list[tuple[str, list[str], dict | None]] = [("bioimageio_default", runner, env)]
    plan += [(f"bioimageio_block{b}", [*runner, "--block", str(b)], env) for b in blocks]
    return plan


# --- images, models and bundles -------------------------------------------------------------------------


def make_image(side: int, seed: int = 0) -> np.ndarray:
    """A ``bcyx`` float32 image in [0, 1): smooth blobs plus noise, so the network sees structure."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((1, 1, side // 32 + 2, side // 32 + 2), dtype=np.float32)
    smooth = np.repeat(np.repeat(coarse, 32, axis=2), 32, axis=3)[:, :, :side, :side]
    return np.ascontiguousarray(0.7 * smooth + 0.3 * rng.random((1, 1, side, side), dtype=np.float32))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


UNET_RDF = """\
format_version: 0.5.4
type: model
name: {name}
description: {description}
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
      - {{type: space, id: y, size: {{min: {min}, step: {step}}}}}
      - {{type: space, id: x, size: {{min: {min}, step: {step}}}}}
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
{weights}"""
"""A 0.5 descriptor of a one-channel 2-D U-Net both deepij and bioimageio.core read."""

TORCHSCRIPT_WEIGHTS = """\
  torchscript:
    source: {source}
    sha256: {sha256}
    pytorch_version: "2.13"
"""


def write_unet_files(folder: Path, forward: Callable[[np.ndarray], Any], side: int, script: str) -> None:
    """A benchmark bundle's test tensors (a ``side`` square random input, the network's output on it) and
    README, next to its weights in ``folder``."""
    test_input = np.random.default_rng(1).random((1, 1, side, side), dtype=np.float32)
    np.save(folder / "test_input.npy", test_input)
    np.save(folder / "test_output.npy", forward(test_input)[0])
    (folder / "README.md").write_text(f"Benchmark model written by deepij's benchmarks/{script}.\n")


def write_convnet(folder: Path) -> Path:
    """The memory benchmarks' network: TorchScript, three 3x3 convolutions, 8 hidden channels (halo 3)."""
    from support.models import write_torchscript_convnet

    return write_torchscript_convnet(folder / "convnet.pt", kernel_sizes=(3, 3, 3), hidden=8).path


def convnet_description(
    model_path: Path, name: str, preprocessing: Sequence[Any] = (), postprocessing: Sequence[Any] = ()
) -> Any:
    """A 0.5 description of :func:`write_convnet`'s network (input ``raw``, output ``out``, ``bcyx``, any
    size from 8, halo 3) with the given spec ops."""
    from deepij.bundle.description import (
        AxisSpec,
        FixedSize,
        ModelDescription,
        ParameterizedSize,
        ReferenceSize,
        TensorSpec,
        WeightsEntry,
    )

    spatial = ParameterizedSize(8, 1)
    inputs = (
        TensorSpec(
            "raw",
            (AxisSpec("b"), AxisSpec("c", FixedSize(1)), AxisSpec("y", spatial), AxisSpec("x", spatial)),
            processing=tuple(preprocessing),
        ),
    )
    outputs = (
        TensorSpec(
            "out",
            (
                AxisSpec("b"),
                AxisSpec("c", FixedSize(1)),
                AxisSpec("y", ReferenceSize("raw", "y"), halo=3),
                AxisSpec("x", ReferenceSize("raw", "x"), halo=3),
            ),
            processing=tuple(postprocessing),
        ),
    )
    return ModelDescription(
        name,
        "0.5.3",
        model_path.parent,
        model_path.parent / "rdf.yaml",
        inputs,
        outputs,
        {"torchscript": WeightsEntry("torchscript", model_path.name)},
    )
