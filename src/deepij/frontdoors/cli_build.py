"""``deepij build``: package a trained network as a bundle (:func:`deepij.build`).

The network is a TorchScript, ONNX or Keras ``.h5`` file or a TensorFlow SavedModel folder; ``--example`` is
one input image (``.npy`` or TIFF) of a size the network takes. The tiling fields are measured on the
network (``min``/``step`` from the sizes it runs on, the halo from its receptive field) and printed.
``--overwrite`` replaces only a bundle (and zip) ``deepij build`` wrote, never another folder or zip. Exit
status: 0 built, 1 the network or an argument could not be used (nothing is left behind), 2 usage error.

Examples
--------
``deepij build unet.pt my_bundle --example cells.tif --name "U-Net" --preprocessing per_sample_scale_range``

``deepij build model.onnx my_bundle --example test.npy --name denoiser --postprocessing mask.ijm --json``
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``build`` to the ``deepij`` command's subcommands."""
    build = commands.add_parser(
        "build",
        help="package a trained network (TorchScript, ONNX, Keras, SavedModel) as a bundle",
        description="Write a bundle that deepImageJ 2.x and the BioImage Model Zoo run: 0.5 rdf.yaml with "
        "config.deepimagej, weights with sha256 (and an ONNX copy of torch weights when it reproduces "
        "them), pre/post-processing macros, example and expected result, README, cover and zip. min, "
        "step and halo are measured on the network.",
    )
    build.add_argument(
        "model", help="TorchScript (.pt), ONNX (.onnx) or Keras (.h5) file, or SavedModel folder"
    )
    build.add_argument("output", help="the bundle folder to write (the zip goes next to it)")
    build.add_argument("--example", required=True, help="one input image (.npy or TIFF) the network takes")
    build.add_argument("--name", required=True, help="the model's name")
    build.add_argument("--description", default="", help="one or two sentences on what it does")
    build.add_argument("--axes", help="the input's axes as the network takes them (default bcyx / byxc)")
    build.add_argument(
        "--preprocessing",
        action="append",
        help="per_sample_scale_range, zero_mean_unit_variance or a macro file (up to two)",
    )
    build.add_argument("--postprocessing", action="append", help="a macro file (up to two)")
    build.add_argument("--halo", type=int, help="declare this receptive radius instead of the measured one")
    build.add_argument("--min-size", type=int, help="the smallest tile size to declare")
    build.add_argument("--no-tiling", action="store_true", help="the network must see the whole image")
    build.add_argument("--author", action="append", help="an author's name (repeat for several)")
    build.add_argument("--license", default="CC-BY-4.0", help="SPDX license id (default CC-BY-4.0)")
    build.add_argument("--no-onnx", action="store_true", help="no ONNX copy of torch weights")
    build.add_argument("--no-zip", action="store_true", help="write the folder only")
    build.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a bundle folder and zip deepij build wrote (never another folder or zip)",
    )
    build.add_argument("--json", action="store_true", help="print what was built as JSON")
    build.set_defaults(handler=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    import deepij
    from deepij.errors import DeepijError

    try:
        built = deepij.build(
            args.model,
            args.output,
            example=args.example,
            name=args.name,
            description=args.description,
            axes=args.axes,
            preprocessing=args.preprocessing,
            postprocessing=args.postprocessing,
            halo=args.halo,
            min_size=args.min_size,
            allow_tiling=not args.no_tiling,
            authors=args.author,
            license=args.license,
            onnx=False if args.no_onnx else "auto",
            zip=not args.no_zip,
            overwrite=args.overwrite,
        )
    except DeepijError as error:
        print(f"deepij build: {error}", file=sys.stderr)
        return 1
    summary = summary_of(built)
    print(json.dumps(summary) if args.json else format_summary(summary))
    return 0


def summary_of(built: Any) -> dict[str, Any]:
    """What :func:`deepij.build` returned, as plain data."""
    spec = built.description.inputs[0]
    return {
        "folder": str(built.folder),
        "zip": str(built.zip) if built.zip else None,
        "name": built.description.name,
        "weights": list(built.weights),
        "receptive_radius": built.receptive_radius,
        "network_sizes": {a: _rule(r) for a, r in built.network_sizes.items()},
        "declared_sizes": {a.id: _rule(a.size) for a in spec.axes if a.id in built.network_sizes},
        "halo": built.halo,
        "memory_peak_bytes": built.memory_peak,
        "runtime_s": round(built.runtime, 3),
        "notes": list(built.notes),
    }


def _rule(rule: Any) -> dict[str, int]:
    if hasattr(rule, "step"):
        return {"min": rule.min, "step": rule.step}
    return {"min": rule.value, "step": 0}


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"built {summary['name']!r} in {summary['folder']}"
        + (f" and {summary['zip']}" if summary["zip"] else "")
    ]
    lines.append(f"  weights: {', '.join(summary['weights'])}")
    for axis, radius in summary["receptive_radius"].items():
        net, declared = summary["network_sizes"][axis], summary["declared_sizes"][axis]
        lines.append(
            f"  {axis}: receptive radius {radius}; the network takes {net['min']} + k*{net['step']}, "
            f"declared min {declared['min']} step {declared['step']}"
        )
    for output, halos in summary["halo"].items():
        lines.append(f"  halo of {output}: " + ", ".join(f"{a} {h}" for a, h in halos.items()))
    lines.append(
        f"  example: {summary['runtime_s']} s through the bundle, memory peak "
        f"{summary['memory_peak_bytes'] / 1e6:.1f} MB per forward pass"
    )
    lines += [f"  note: {n}" for n in summary["notes"]]
    return "\n".join(lines)
