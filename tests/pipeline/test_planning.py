"""Planning a run: the zoo's convention by default, the seam check bounded by the run and kept on disk.

Networks are real TorchScript files written by the tests; references are their own forward passes on the
image as it is (what one pass gives) or mirror-padded in numpy (what deepImageJ's tiles give).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from deepij.errors import SeamWarning
from deepij.inference.grid import unpadded_grid
from deepij.pipeline import Model
from support.models import describe, write_torchscript_convnet, write_torchscript_unet

RNG = np.random.default_rng(11)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPIJ_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """A U-Net of 3 poolings (receptive radius 51) described with a halo of 8: far short of its reach."""
    return write_torchscript_unet(tmp_path_factory.mktemp("unet") / "unet.pt", base=4, depth=3)


def _probe_note(notes):
    [note] = [n for n in notes if n.startswith("receptive radius measured")]
    return note


def test_the_seam_check_looks_no_further_than_the_run_tiles(unet):
    # A seam check that grew its probe to 1024^2 took 1,180 s on a run of 64-pixel tiles (3 s before).
    model = Model(describe(unet, output_halo=8))
    image = RNG.random((1, 1, 256, 256), dtype=np.float32)
    with pytest.warns(SeamWarning):
        result = model.predict(image, tile=64, runtime="native")
    note = _probe_note(result.notes)
    probe = re.search(r"passes on tiles of \{'y': (\d+), 'x': (\d+)\}", note)
    assert probe and max(map(int, probe.groups())) <= 64, note
    # the quick probe: 4 backgrounds, each one pass plus one per position of the 8-pixel pooling grid
    assert re.search(r"the quick probe, (\d+) passes", note).group(1) == str(4 * (1 + 8))


def test_the_measured_field_is_kept_for_the_next_process(unet, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        sys.path[:0] = [{str(ROOT / "tests")!r}]
        import numpy as np
        from support import models
        from deepij.pipeline import Model
        written = models.WrittenModel(
            __import__("pathlib").Path({str(unet.path)!r}), "torchscript", ("input",), ("bcyx",), (1,),
            ("output",), ("bcyx",), (1,), forward=None, min_size=8, step=8)
        model = Model(models.describe(written, output_halo=8))
        result = model.predict(np.zeros((1, 1, 128, 128), "float32"), tile=64, runtime="native")
        print([n for n in result.notes if n.startswith("receptive radius")][0])
        """
    )
    import os

    env = dict(os.environ, DEEPIJ_CACHE_DIR=str(tmp_path / "cache"))
    first, second = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        for _ in range(2)
    )
    assert "passes on tiles of" in first.stdout
    assert "from the cache" in second.stdout
    radius = re.compile(r"measured: (y: [0-9>= ]+, x: [0-9>= ]+) pixels")
    assert radius.search(first.stdout).group(1) == radius.search(second.stdout).group(1), (first, second)


def test_no_tile_asked_and_a_short_halo_runs_one_pass_when_it_fits(unet, monkeypatch):
    # On a CPU a large pass is slower than tiles, but tiles would differ from the one pass at their seams
    # when the network looks beyond its halo: the default keeps the one pass (the zoo's result).
    import deepij.inference.memory as memory

    monkeypatch.setattr(memory, "CPU_TILE_BYTES", 2e6)  # so that this small image counts as a large pass
    model = Model(describe(unet, output_halo=8))
    image = RNG.random((1, 1, 512, 512), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeamWarning)
        result = model.predict(image, runtime="native")
    assert result.plan.n_tiles == 1 and result.plan.tile == {"y": 512, "x": 512}
    assert any("so the image runs in one pass, unpadded" in n for n in result.notes)
    np.testing.assert_allclose(result.images["output"].values, unet.forward(image)[0], atol=1e-5)


def test_no_tile_asked_and_a_covering_halo_tiles_inside_the_image(tmp_path, monkeypatch):
    # The same choice with a halo that covers the network's reach: tiles, and they give the one pass.
    import deepij.inference.memory as memory

    monkeypatch.setattr(memory, "CPU_TILE_BYTES", 2e6)
    net = write_torchscript_convnet(tmp_path / "net.pt", kernel_sizes=(3, 5, 3))  # radius 4, halo 4
    model = Model(describe(net))
    image = RNG.random((1, 1, 700, 600), dtype=np.float32)
    result = model.predict(image, runtime="native")
    assert result.plan.n_tiles > 1 and result.plan.mode == "unpadded"
    np.testing.assert_allclose(result.images["output"].values, net.forward(image)[0], atol=1e-5)


@pytest.mark.parametrize(
    ("size", "tile", "pad", "align"),
    [(100, 48, 8, 8), (700, 400, 8, 1), (257, 64, 20, 16), (64, 64, 8, 8), (1000, 17, 8, 1)],
)
def test_unpadded_tiles_cover_the_image_once_and_keep_their_pad(size, tile, pad, align):
    grid = unpadded_grid(size, tile, pad, align=align)
    covered = np.zeros(size, int)
    for start, (w0, w1), read in zip(grid.starts, grid.write, grid.read, strict=True):
        covered[w0:w1] += 1
        assert start >= 0 and start + grid.tile <= size  # inside the image: nothing mirrored
        assert read == w0 - start
        # every written pixel keeps `pad` pixels of context inside its tile, except at the image border
        assert w0 == 0 or w0 - start >= pad
        assert w1 == size or start + grid.tile - w1 >= pad
    assert (covered == 1).all()
    assert all(s % align == 0 for s in grid.starts[:-1])
