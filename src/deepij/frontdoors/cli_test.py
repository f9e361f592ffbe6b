"""``deepij test``: reproduce a bundle's own expected outputs (:func:`deepij.test_bundle`).

Each weights format runs the bundle's test inputs as the zoo does and its deepImageJ example as deepImageJ
does, and is compared with the outputs the bundle ships, with the bundle's tolerance; then tiled, to show
how tiles differ from the whole image inside and at the border (seams when the halo is smaller than the
receptive field). Weights that cannot be had or run here are skipped, with the reason.

Exit status: 0 at least one format passed and none failed; 1 a format failed, or the bundle cannot be used
(unreadable, a file that differs from its sha256: ``--no-verify`` tests it anyway); 2 nothing was tested
(every format skipped), nothing to compare, or a usage error. With ``--json`` every outcome, errors
included, is one JSON document on stdout (``status`` ``"error"`` with ``error`` for errors).

Examples
--------
``deepij test examples/nuclei_bundle``

``deepij test my_bundle.zip --weights-format onnx --json``
"""

from __future__ import annotations

import argparse
import json
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
            "border. Exit status: 0 passed (at least one format, none failed), 1 failed or the bundle "
            "cannot be used, 2 nothing tested (every format skipped), nothing to compare, or usage."
        ),
    )
    test.add_argument("bundle", help="bundle folder, descriptor, zip, URL, or installed model name")
    test.add_argument("--weights-format", help="test only these weights (e.g. onnx, torchscript)")
    test.add_argument("--json", action="store_true", help="print the report (or the error) as JSON")
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
    test.add_argument(
        "--no-verify",
        action="store_true",
        help="do not check weights and test files against their sha256 (expected outputs that differ from "
        "theirs are still not compared)",
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
            verify=not args.no_verify,
        )
    except (DeepijError, OSError) as error:
        code = USAGE_ERROR if isinstance(error, ArgumentError) else 1
        _print_error(args, error, code)
        return code
    print(report.to_json() if args.json else report.to_text())
    return report.exit_code


def _print_error(args: argparse.Namespace, error: BaseException, code: int) -> None:
    """The error on stderr, or with ``--json`` as the JSON document on stdout."""
    message, advice = error_text(error)
    if not args.json:
        print(f"deepij test: {message}", file=sys.stderr)
        if advice:
            print(f"deepij test: {advice}", file=sys.stderr)
        return
    detail = {"type": type(error).__name__, "message": message, "advice": advice}
    detail |= {k: getattr(error, k) for k in ("file", "field") if getattr(error, k, None) is not None}
    document = {"bundle": args.bundle, "status": "error", "exit_code": code, "error": detail}
    print(json.dumps(document, indent=2, default=str))


def error_text(error: BaseException) -> tuple[str, str | None]:
    """What went wrong, and what the command can do about it (None: nothing)."""
    from deepij.errors import ChecksumError

    if isinstance(error, ChecksumError):
        where = ": ".join(str(p) for p in (error.file, error.field) if p)
        found = f" (found {error.found}, expected {error.expected})" if error.expected else ""
        message = f"{where + ': ' if where else ''}does not match the sha256 its descriptor gives{found}"
        return message, "--no-verify tests the bundle anyway (the file may be corrupt or replaced)"
    return str(error), None


def _bundle_source(bundle: str, models_dir: str | None) -> str | Path:
    """A path, zip or URL as given; a name that is none of them is looked up among installed models."""
    from deepij.bundle import find_model
    from deepij.bundle.locations import is_url

    if is_url(bundle) or Path(bundle).expanduser().exists():
        return bundle
    return find_model(bundle, models_dir)
