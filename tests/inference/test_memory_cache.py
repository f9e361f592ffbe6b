"""Memory estimates kept on disk (deepij.inference.memory_cache): a later model (or process) reads what an
earlier one measured instead of spending probe passes; another engine setting is another entry; a corrupt
entry is measured again."""

from __future__ import annotations

import pytest

from deepij.inference.backends import graph_cache
from deepij.inference.memory_cache import MEMORY_OPERATION, keep_memory_estimate, read_memory_estimate
from deepij.pipeline import Model
from deepij.pipeline.planning import fixed_sizes
from support.models import describe, write_torchscript_convnet

SHAPES = {"input": {"c": 1, "y": 2000, "x": 2000}}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPIJ_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / graph_cache.FOLDER


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    folder = tmp_path_factory.mktemp("memcache")
    return write_torchscript_convnet(folder / "net.pt", kernel_sizes=(3, 3), hidden=8)


class CountingPasses:
    """The backend's own predict, counted (to see whether probe passes ran)."""

    def __init__(self, backend):
        self.backend, self.passes = backend, 0
        self.original = backend.predict

        def counted(inputs):
            self.passes += 1
            return self.original(inputs)

        backend.predict = counted


def _estimate(model, threads=None):
    backend = model.backend(runtime="native", threads=threads)
    counter = CountingPasses(backend)
    estimate, left_behind = model.measurements.estimate(backend, model.tiling, SHAPES)
    return estimate, left_behind, counter.passes


def test_a_second_model_reads_the_estimate_without_probe_passes(cache, network):
    first, _, passes = _estimate(Model(describe(network)))
    assert passes >= 3  # a warm-up and two probes
    [entry] = list(cache.glob(f"*{graph_cache.SUFFIX}"))
    again, left_behind, passes_again = _estimate(Model(describe(network)))
    assert passes_again == 0 and left_behind == 0
    assert again == first  # every field, probes included, as measured
    assert len(list(cache.glob(f"*{graph_cache.SUFFIX}"))) == 1 and entry.exists()


def test_other_threads_are_another_entry(cache, network):
    _estimate(Model(describe(network)), threads=1)
    _, _, passes = _estimate(Model(describe(network)), threads=2)
    assert passes >= 3
    assert len(list(cache.glob(f"*{graph_cache.SUFFIX}"))) == 2


def test_a_corrupt_entry_is_measured_again(cache, network):
    model = Model(describe(network))
    backend = model.backend(runtime="native")
    sizes = fixed_sizes(model.tiling, SHAPES)
    first, _, _ = _estimate(model)
    [entry] = list(cache.glob(f"*{graph_cache.SUFFIX}"))
    entry.write_bytes(entry.read_bytes()[:-3] + b"}}}")  # its sha256 no longer matches
    assert read_memory_estimate(backend, sizes) is None and not entry.exists()
    keep_memory_estimate(backend, sizes, first)
    assert read_memory_estimate(backend, sizes) == first
    assert MEMORY_OPERATION.startswith("memory-estimate")
