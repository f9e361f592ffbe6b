"""Memory sizes, measuring a real model's memory, and choosing the largest tile that fits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepij.errors import ArgumentError, TilingError
from deepij.inference import meters
from deepij.inference.memory import (
    MemoryEstimate,
    auto_tile,
    choose_tile,
    estimate_memory,
    probe_tiles,
)
from deepij.inference.meters import MEMORY_ENV, _cgroup_room, available_memory, forward_meter
from deepij.inference.tiling import analyse_tiling
from deepij.pipeline import Model
from support.models import describe, write_torchscript_convnet


def _meminfo(field: str) -> int:
    """A field of the kernel's /proc/meminfo, in bytes (read here, independently of psutil)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            number, unit = value.split()
            assert unit == "kB"
            return int(number) * 1024
    raise AssertionError(f"no {field} in /proc/meminfo")


def test_available_memory_is_the_kernels_mem_available(monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)  # the suite plans with an assumed amount (conftest)
    measured = available_memory("cpu")
    # Read on both sides of the call: other processes on this machine move it meanwhile.
    low, high = sorted((_meminfo("MemAvailable"), _meminfo("MemAvailable")))
    assert 0.9 * low - 200e6 < measured < 1.1 * high + 200e6
    assert measured < _meminfo("MemTotal")


def test_an_assumed_amount_replaces_the_reading(monkeypatch):
    monkeypatch.setenv(MEMORY_ENV, "3GiB")
    assert available_memory("cpu") == 3 * 2**30
    monkeypatch.setenv(MEMORY_ENV, "lots")
    with pytest.raises(ArgumentError, match=r"\$DEEPIJ_MEMORY_AVAILABLE: .*'lots'"):
        available_memory("cpu")


@pytest.mark.parametrize(
    ("membership", "files", "expected"),
    [
        # cgroup v2: the group's folder below the mount
        ("0::/job/42\n", {"job/42/memory.max": "4000000000", "job/42/memory.current": "1000000000"}, 3e9),
        ("0::/job/42\n", {"job/42/memory.max": "max", "job/42/memory.current": "1000000000"}, None),
        # cgroup v1 inside a container: the namespace puts the group at the controller's mount
        ("4:memory:/docker/abc\n0::/\n", {"memory/memory.limit_in_bytes": "2147483648",
                                           "memory/memory.usage_in_bytes": "147483648"}, 2e9),
        ("4:memory:/\n", {"memory/memory.limit_in_bytes": "9223372036854771712",
                          "memory/memory.usage_in_bytes": "1"}, None),
        ("0::/gone\n", {}, None),
    ],
)
def test_cgroup_limit_bounds_the_room(tmp_path, membership, files, expected):
    (tmp_path / "cgroup").write_text(membership)
    for name, text in files.items():
        (tmp_path / "fs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / name).write_text(text + "\n")
    assert _cgroup_room(str(tmp_path / "fs"), str(tmp_path / "cgroup")) == expected


def _nvidia_smi_free(index: int) -> int | None:
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    answer = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=memory.free,memory.total",
            "--format=csv,noheader,nounits",
            "-i",
            str(index),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if answer.returncode != 0 or not answer.stdout.strip():
        return None
    return int(float(answer.stdout.split(",")[0]) * 2**20)


def test_gpu_free_memory_is_what_the_driver_reports_or_a_clear_error():
    # Behaviour on whatever this machine has: with a GPU, the driver's own figure; without, the error.
    reported = _nvidia_smi_free(0)
    if reported is None:
        with pytest.raises(TilingError, match=r"device: cannot read the free memory of 'cuda:0'"):
            available_memory("cuda:0")
    else:
        assert abs(available_memory("cuda:0") - reported) < 0.1 * reported + 512 * 2**20


def test_free_memory_meter_measures_the_drop(monkeypatch):
    # No GPU exists on these machines: the GPU's free-memory query is replaced by a fake whose value the
    # measured pass lowers by 300 MB, to check the meter's arithmetic only.
    state = {"free": 8_000_000_000}
    monkeypatch.setattr(meters, "_gpu_free_memory", lambda index: state["free"])
    measure = meters._free_memory_meter(0)
    assert measure(lambda: state.update(free=state["free"] - 300_000_000)) == 300_000_000


@pytest.fixture(scope="module")
def convnet_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("memnet")
    net = write_torchscript_convnet(folder / "net.pt", kernel_sizes=(3, 3, 3), hidden=16)
    return Model(describe(net))


def test_estimate_predicts_the_peak_of_a_larger_tile(convnet_model):
    backend = convnet_model.backend(runtime="native")
    tiling = convnet_model.tiling
    shapes = {"input": {"c": 1, "y": 2000, "x": 2000}}
    assert probe_tiles(tiling, shapes) == [{"y": 128, "x": 128}, {"y": 256, "x": 256}]
    estimate = estimate_memory(backend, tiling, shapes)
    # 16 hidden channels of float32 at least: well above the floor of 2 * (4 + 4) bytes per pixel.
    assert estimate.per_pixel > 64
    assert estimate.output_per_pixel == pytest.approx(4.0)
    tile = np.zeros((1, 1, 700, 700), dtype=np.float32)
    measured = forward_meter(backend)(lambda: backend.predict([tile]))
    predicted = estimate.tile_bytes(700 * 700)
    assert 0.5 < predicted / measured < 2.0, (predicted, measured)


def test_choose_tile_takes_the_largest_that_fits():
    tiling = analyse_tiling(describe(_FakeNet()))  # min 9, step 1, halo 4
    estimate = MemoryEstimate(fixed=1e6, per_pixel=100.0, output_per_pixel=4.0)
    shape = {"y": 5000, "x": 3000}
    tile, need = choose_tile(tiling, shape, estimate, budget=1e6 + 100 * 400 * 400)
    assert need <= 1e6 + 100 * 400 * 400
    # Close to square, and no larger than the same number of tiles needs (balanced).
    assert abs(tile["y"] - tile["x"]) <= 60 and max(tile.values()) <= 401
    counts = {a: math.ceil(shape[a] / (tile[a] - 8)) for a in tile}
    assert all(math.ceil(shape[a] / (tile[a] - 1 - 8)) > counts[a] for a in tile)
    whole, _ = choose_tile(tiling, {"y": 100, "x": 80}, estimate, budget=1e12)
    assert whole == {"y": 108, "x": 88}  # one pass: the image and its padding


def test_auto_tile_refuses_a_cap_below_the_outputs(convnet_model):
    backend = convnet_model.backend(runtime="native")
    estimate = MemoryEstimate(fixed=0.0, per_pixel=100.0, output_per_pixel=4.0)
    shapes = {"input": {"c": 1, "y": 4000, "x": 4000}}
    with pytest.raises(
        TilingError, match=r"max_memory='50MB' cannot hold this run: the outputs take 64.0 MB"
    ):
        auto_tile(backend, convnet_model.tiling, shapes, max_memory="50MB", estimate=estimate)
    choice = auto_tile(
        backend, convnet_model.tiling, shapes, max_memory="100MB", estimate=estimate, batch_sizes=range(2, 9)
    )
    assert not choice.single_pass and choice.predicted <= choice.budget
    assert choice.budget == pytest.approx(0.8 * 100e6 - 64e6)  # SAFETY of the cap, less the outputs


def test_the_minimum_a_refusal_names_is_enough(convnet_model):
    # The message once left the safety factor out: its "at least" was still refused.
    import re

    backend = convnet_model.backend(runtime="native")
    estimate = MemoryEstimate(fixed=5e6, per_pixel=100.0, output_per_pixel=4.0)
    shapes = {"input": {"c": 1, "y": 4000, "x": 4000}}
    with pytest.raises(TilingError) as refused:
        auto_tile(backend, convnet_model.tiling, shapes, max_memory="70MB", estimate=estimate)
    minimum = re.search(r"expected at least ([0-9.]+ [kMG]B)", str(refused.value)).group(1)
    # by hand: outputs 64 MB + the smallest tile (17x17 with 8 pixels padding each side) over 0.8
    assert float(minimum.split()[0]) * 1e6 >= (64e6 + 5e6 + 100 * 17 * 17) / 0.8
    choice = auto_tile(backend, convnet_model.tiling, shapes, max_memory=minimum.replace(" ", ""),
                       estimate=estimate)
    assert choice.predicted <= choice.budget


class _FakeNet:
    """Only the fields :func:`support.models.describe` reads (no weights are loaded in these tests)."""

    def __init__(self) -> None:
        from pathlib import Path

        self.path = Path("/nonexistent/net.pt")
        self.format = "torchscript"
        self.input_names, self.input_axes, self.input_channels = ("input",), ("bcyx",), (1,)
        self.output_names, self.output_axes, self.output_channels = ("output",), ("bcyx",), (1,)
        self.output_scales = (1.0,)
        self.halo, self.offset, self.min_size, self.step = 4, 0, 9, 1
        self.architecture, self.tf_tag, self.tf_signature = None, None, None
