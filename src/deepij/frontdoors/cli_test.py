"""``deepij test``: reproduce a bundle's own expected outputs (:func:`deepij.test_bundle`).

Each weights format runs the bundle's test inputs (and its deepImageJ example) on the whole image and is
compared with the outputs the bundle ships, with the bundle's tolerance; then tiled, to show how tiles
differ from the whole image inside and at the border (seams when the halo is smaller than the receptive
field). Exit status: 0 every format passed, 1 one failed (or none could run, or the bundle cannot be read),
2 nothing to compare, or a usage error.

Examples
--------
``deepij test examples/nuclei_bundle``

``deepij test my_bundle.zip --weights-format onnx --json``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

USAGE_ERROR = 2


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``test`` to the ``deepij`` command's subcommands."""
    test = commands.add_parser(
        "test",
        help="reproduce a bundle's expected outputs from its test inputs, per weights format",
        description=(
            "Run a bundle on its own test inputs (spec test tensors, deepImageJ's exampleImage with its "
            "processing) and compare with the outputs it ships (test tensors, resultImage, result table) "
            "with the tolerance it states or the zoo's default, for each weights format; then tiled "
            "(deepImageJ's default tile and a small one) against the whole image, inside and at the "
            "border. Exit status: 0 passed, 1 failed, 2 nothing to compare or usage."
        ),
    )
    test.add_argument("bundle", help="bundle folder, descriptor, zip, URL, or installed model name")
    test.add_argument("--weights-format", help="test only these weights (e.g. onnx, torchscript)")
    test.add_argument("--json", action="store_true", help="print the report as JSON")
    test.add_argument(
        "--tile", help="the small tile of the tiled comparison: 64, 64,64 or y=64,x=64 (default: a third)"
    )
    test.add_argument("--no-tiled", action="store_true", help="compare the whole-image runs only")
    test.add_argument(
        "--processing",
        choices=("auto", "macros", "spec", "none"),
        help="force one processing (default: spec ops for zoo test tensors, deepImageJ's steps otherwise)",
    )
    test.add_argument("--device", help="cpu, cuda, cuda:1 (default: a GPU when there is one)")
    test.add_argument("--runtime", default="auto", help="what runs the network (default: auto)")
    test.add_argument(
        "--allow-code", action="store_true", help="let pytorch_state_dict weights run the bundle's code"
    )
    test.add_argument("--models-dir", help="where to look up a model given by name")
    test.set_defaults(handler=_run_test)


def _run_test(args: argparse.Namespace) -> int:
    import deepij
    from deepij.errors import ArgumentError, DeepijError
    from deepij.frontdoors.cli_run import parse_tile

    try:
        tile = parse_tile(args.tile)
        if isinstance(tile, str):
            raise ArgumentError(f"--tile {args.tile}: expected sizes (64, 64,64 or y=64,x=64)")
        report = deepij.test_bundle(
            _bundle_source(args.bundle, args.models_dir),
            weights_format=args.weights_format,
            tile=tile,
            device=args.device,
            runtime=args.runtime,
            processing=args.processing,
            allow_code=args.allow_code,
            tiled=not args.no_tiled,
        )
    except ArgumentError as error:
        print(f"deepij test: {error}", file=sys.stderr)
        return USAGE_ERROR
    except DeepijError as error:
        print(f"deepij test: {error}", file=sys.stderr)
        return 1
    print(report.to_json() if args.json else report.to_text())
    return report.exit_code


def _bundle_source(bundle: str, models_dir: str | None) -> str | Path:
    """A path, zip or URL as given; a name that is none of them is looked up among installed models."""
    from deepij.bundle import find_model
    from deepij.bundle.locations import is_url

    if is_url(bundle) or Path(bundle).expanduser().exists():
        return bundle
    return find_model(bundle, models_dir)
