"""What a fresh process does before its first result: no dask imported for numpy images (nor ImageJ's
packages for a bundle without ImageJ steps), the network loaded
while ImageJ starts when a run needs both; and the log level of runs side by side. Real processes, no
timings."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from deepij.pipeline.progress import Reporter
from support.bundles import write_bundle_v0_5

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "nuclei_bundle"


def _python(code: str, tmp_path: Path) -> list[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
               DEEPIJ_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_a_numpy_image_runs_without_importing_dask_and_dask_arrays_still_work(tmp_path):
    bundle = write_bundle_v0_5(tmp_path / "b05", weights=("torchscript",))
    lines = _python(
        f"""
        import sys, numpy as np, deepij
        model = deepij.load({str(bundle.folder)!r})
        result = model.predict(np.random.default_rng(0).random((40, 48), dtype=np.float32))
        print("dask.array" in sys.modules)  # (xarray's astype imports dask's core, 0.2 s, to ask)
        print([name for name in ("jpype", "deepij.imagej") if name in sys.modules])  # no ImageJ steps
        import dask.array as da, xarray as xr
        print(type(xr.DataArray(da.zeros((4, 4), chunks=2)).data).__name__)
        """,
        tmp_path,
    )
    assert lines == ["False", "[]", "Array"]


def test_the_network_loads_while_imagej_starts(tmp_path):
    """The demo bundle has ImageJ steps: ImageJ starts on the main thread, the network on another; the
    run then uses both (and the process exits cleanly)."""
    lines = _python(
        f"""
        import numpy as np, deepij
        from deepij.imagej.runtime import current_session
        from deepij.pipeline.warm_start import load_beside_imagej
        model = deepij.load({str(DEMO)!r})
        print(load_beside_imagej(model, {{"processing": "spec"}}), len(model._backends))
        print(load_beside_imagej(model, {{}}), len(model._backends), current_session() is not None)
        print(load_beside_imagej(model, {{}}))  # ImageJ runs now: nothing to overlap
        result = model.predict(np.load({str(DEMO / "test_input.npy")!r}))
        print("probability" in result.images, len(model._backends))
        """,
        tmp_path,
    )
    assert lines == ["False 0", "True 1 True", "False", "True 1"]


def test_runs_side_by_side_give_the_level_back_when_the_last_ends():
    logger = logging.getLogger("deepij")
    before = logger.level
    logger.setLevel(logging.WARNING)
    try:
        first, second = Reporter("a", logging="debug", bar=False), Reporter("b", logging="debug", bar=False)
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert logger.level == logging.DEBUG  # the second still runs at its level
        second.__exit__(None, None, None)
        assert logger.level == logging.WARNING
        with Reporter("outer", logging="mute", bar=False):
            with Reporter("inner", logging="debug", bar=False):
                assert logger.level == logging.DEBUG
            assert logger.level == logging.ERROR  # nested: the outer run's level again
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(before)
