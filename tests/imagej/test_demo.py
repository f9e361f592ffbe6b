"""The macro demo (examples/macro_demo.py: a lab macro on an image), run in this process's ImageJ session."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import tifffile

DEMO = Path(__file__).resolve().parents[2] / "examples" / "macro_demo.py"


def _load_demo():
    spec = importlib.util.spec_from_file_location("deepij_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_writes_imagej_tiffs_and_the_results_table(session, tmp_path, capsys):
    output = tmp_path / "demo"
    output.mkdir()
    (output / "stale.txt").write_text("from an earlier run")
    assert _load_demo().main(["--output", str(output)]) == 0
    assert sorted(p.name for p in output.iterdir()) == ["Results.csv", "cells.tif", "log.txt", "mask.tif"]
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no staging folder left behind
    cells = pd.read_csv(output / "Results.csv")
    assert 30 <= len(cells) <= 40  # 40 cells drawn, a few touch the border and are excluded
    with tifffile.TiffFile(output / "mask.tif") as tiff:
        mask = tiff.asarray()
        assert tiff.is_imagej and set(mask.ravel().tolist()) <= {0, 255}
    printed = capsys.readouterr().out
    assert f"{len(cells)} cells" in printed and "cells found:" in printed
