"""``deepij validate REFERENCE TEST``: how close test images are to reference images, in numbers.

REFERENCE and TEST are two image files (TIFF, ``.npy``...) or two folders whose images are paired by name
(``--test-suffix _output`` pairs ``cells.tif`` with ``cells_output.tif``, as ``deepij run`` names outputs).
The table (one row per pair) goes to stdout as text, CSV or JSON; ``--output`` also writes
``validation.csv`` and ``validation.json`` there, ``--figures`` a PNG per pair (both folders; a file there is
refused before anything is measured). Why a value is NaN, and images whose value ranges differ by 10 times
or more (a 0..255 reference against a 0..1 prediction: the ``note`` column says so too), go to stderr.

Exit status: 0 measured, 1 images that cannot be compared (shapes differ, not integer labels, unreadable) or
results that cannot be written, 2 a usage error (unknown metric, missing path, unmatched names, an
``--output`` or ``--figures`` that is a file).

Examples
--------
``deepij validate ground_truth/ predictions/ --test-suffix _output --metrics ssim,psnr,rmse``

``deepij validate masks/ segmented/ --metrics labels --iou 0.5 --output report/ --figures report/figures``
"""

from __future__ import annotations

import argparse
import json
import sys

USAGE_ERROR = 2
INPUT_ERROR = 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``validate`` to the ``deepij`` command's subcommands."""
    parser = commands.add_parser(
        "validate",
        help="measure test images against reference images (SSIM, PSNR, Dice, F1...)",
        description=(
            "Measure test images (a model's outputs) against reference images with deepImageJ Validate's "
            "metrics: two image files, or two folders paired by name. One row per pair (per plane with "
            "--per-slice). Exit status: 0 measured, 1 images that cannot be compared, 2 usage."
        ),
    )
    parser.add_argument("reference", help="the reference (ground truth) image file or folder")
    parser.add_argument("test", help="the test image file or folder (e.g. deepij run's outputs)")
    parser.add_argument(
        "--metrics",
        default="images",
        help="comma-separated metric names (ssim,psnr,rmse,...) or groups: images (default: every image "
        "metric), labels (Dice, Jaccard, matched objects' precision/recall/F1), all",
    )
    parser.add_argument("--per-slice", action="store_true", help="one row per plane of a 3-D stack")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU for two objects to match (default 0.5)")
    parser.add_argument("--data-range", type=float, help="intensity range for PSNR and SSIM "
                        "(default: from the reference)")
    parser.add_argument("--test-suffix", default="", help="folders: a test file's name is the reference's "
                        "plus this (e.g. _output)")
    parser.add_argument("--output", "-o", help="write validation.csv and validation.json into this folder")
    parser.add_argument("--figures", help="write one PNG figure per pair into this folder")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="how the table is printed (default: table)")
    parser.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    from deepij.errors import ArgumentError, DeepijError, InputError
    from deepij.trust.validate import validate
    from deepij.trust.validation_output import check_output_folder

    metrics = [name for name in args.metrics.split(",") if name.strip()]
    try:
        if args.output:
            check_output_folder(args.output, "--output")
        result = validate(
            args.reference,
            args.test,
            metrics=metrics,
            per_slice=args.per_slice,
            data_range=args.data_range,
            iou_threshold=args.iou,
            test_suffix=args.test_suffix,
            figures=args.figures,
        )
        written = result.save(args.output) if args.output else []
    except InputError as error:
        print(f"deepij validate: {error}", file=sys.stderr)
        return INPUT_ERROR
    except ArgumentError as error:
        print(f"deepij validate: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (DeepijError, OSError) as error:
        print(f"deepij validate: {error}", file=sys.stderr)
        return INPUT_ERROR
    for note in result.notes:
        print(f"deepij validate: {note}", file=sys.stderr)
    if args.format == "csv":
        sys.stdout.write(result.table.to_csv(index=False))
    elif args.format == "json":
        print(json.dumps(result.records(), indent=2))
    else:
        print(result.table.to_string(index=False))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
