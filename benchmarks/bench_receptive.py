"""What measuring the receptive field costs, and what it finds, per probe effort.

:func:`deepij.inference.receptive.measure_receptive_field` runs once per loaded backend in
``Model.predict`` (before a tiled run, to warn of seams) and once in ``deepij build`` (to declare the
halo). For each network: the demo bundle's U-Net (examples/nuclei_bundle, TorchScript and ONNX), the
zoo-style U-Nets of tests/support/zoo_models.py (scripted with reflect padding and crops, traced, a
fixed-size ONNX graph) and the plain 3-pooling U-Net of tests/support/models.py, it prints per effort
(``thorough``, ``quick``) the seconds, the forward passes, the radius found and the true radius where it
is known from the architecture (``5 * (2**depth - 1) + 2**(depth + 1)``).

Figures are printed as ``name value unit``; the time is the best of ``--repeats`` runs, on the CPU, tiles
of 64 pixels to start with (as predict's probe does), growing while the response reaches their border.

Usage: ``.venv/bin/python benchmarks/bench_receptive.py [--repeats N] [--only demo]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEMO = ROOT / "examples" / "nuclei_bundle"


def emit(name: str, value: float, unit: str) -> None:
    print(f"{name} {value:.4g} {unit}", flush=True)


def _networks(folder: Path) -> Iterator[tuple[str, Any, int | None]]:
    """(name, Model, true radius or None) for each network measured."""
    sys.path.insert(0, str(ROOT / "tests"))
    import deepij
    from deepij.pipeline import Model
    from support.models import describe, write_torchscript_unet
    from support.zoo_models import (
        fixed_description,
        multiple_of,
        write_fixed_onnx_unet,
        write_scripted_zoo_unet,
        write_traced_unet,
    )

    for fmt in ("torchscript", "onnx"):
        yield f"demo_{fmt}", (deepij.load(DEMO), fmt), None
    zoo = write_scripted_zoo_unet(folder / "zoo.pt", depth=3)
    yield "zoo_scripted_depth3", (Model(multiple_of(zoo, 8)), None), zoo.halo
    traced = write_traced_unet(folder / "traced.pt", depth=2)
    yield "zoo_traced_depth2", (Model(multiple_of(traced, 4)), None), traced.halo
    fixed = write_fixed_onnx_unet(folder / "fixed.onnx", side=128, depth=2, base=4)
    yield "zoo_fixed_onnx_128", (Model(fixed_description(fixed, 128)), None), fixed.halo
    plain = write_torchscript_unet(folder / "unet.pt", depth=3)
    yield "unet_depth3", (Model(describe(plain, output_halo=0)), None), plain.halo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", help="measure only networks whose name contains this")
    args = parser.parse_args(argv)
    from deepij.inference.receptive import QUICK, THOROUGH, measure_receptive_field

    with tempfile.TemporaryDirectory() as tmp:
        for name, (model, fmt), truth in _networks(Path(tmp)):
            if args.only and args.only not in name:
                continue
            backend = model.backend(fmt, "cpu", "native")
            tiling = model.tiling_for(backend)
            spec = model.description.input(tiling.input)
            shapes = {spec.name: {a: 1 for a in spec.axes_str if a not in ("b", *tiling.axes)}}
            shapes[spec.name].update({a: 64 for a in tiling.axes})
            for effort_name, effort in (("thorough", THOROUGH), ("quick", QUICK)):
                best, field = float("inf"), None
                for _ in range(max(1, args.repeats)):
                    start = time.perf_counter()
                    field = measure_receptive_field(backend, tiling, shapes, effort=effort)
                    best = min(best, time.perf_counter() - start)
                assert field is not None
                emit(f"{name}_{effort_name}_s", best, "s")
                emit(f"{name}_{effort_name}_passes", field.passes, "passes")
                emit(f"{name}_{effort_name}_radius", max(field.radius.values()), "px")
                emit(f"{name}_{effort_name}_probe", max(field.probe.values()), "px")
            if truth is not None:
                emit(f"{name}_true_radius", truth, "px")
            model.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
