"""``deepij run``: a bundle on an image or on each image of a folder.

Outputs are ImageJ TIFFs and CSV tables named after each image, written atomically; ``--resume`` redoes only
the images whose completion record does not check out (:mod:`deepij.pipeline.run_records`). Exit status: 0
all done, 1 some image failed or the bundle could not be used, 2 a usage error (an output folder that cannot
be written, a Zarr output that would replace the input or what deepij did not write, a scheduler address
where nobody answers). ``--workers N`` (a local Dask cluster) or ``--scheduler ADDRESS`` (a running
one) spread the images over worker processes (:mod:`deepij.pipeline.distributed`); a Zarr / OME-Zarr input
is an image bigger than memory, run tile by tile and written as OME-Zarr chunk by chunk.

Examples
--------
``deepij run old_bundle.zip --input images/ --output out/ --tile 256,256 --resume``

``deepij run bundle/ --input images/ --output out/ --workers 4``

``deepij run bundle/ --input big.ome.zarr --output out.ome.zarr --processing spec``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

USAGE_ERROR = 2


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``run`` to the ``deepij`` command's subcommands."""
    _add_run(commands)


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run",
        help="run a bundle on an image or on each image of a folder",
        description=(
            "Run a bundle (folder, descriptor, zip, URL, or the name of an installed model) on an image or "
            "each image of a folder, with its pre- and post-processing. Outputs are ImageJ TIFFs and CSV "
            "tables named after each image (names unique and the same on every run); every file is written "
            "atomically, and --resume after a stop (even kill -9) redoes only the images whose record does "
            "not check out: not finished, made by another bundle or other options, or an output changed "
            "since (the summary says why). Several runs may share an output folder: an image another run is "
            "writing is reported busy. A bad image is reported and skipped. A Zarr output never replaces "
            "the input or a path deepij did not write. Exit status: 0 all done, 1 some failed, 2 usage."
        ),
    )
    run.add_argument("bundle", help="bundle folder, descriptor, zip, URL, or installed model name")
    run.add_argument("--input", "-i", required=True, help="an image file or a folder of images")
    run.add_argument("--output", "-o", required=True, help="the folder to write the outputs into")
    run.add_argument(
        "--tile",
        help="tile size: 256, 256,256 (the input's tiled axes in order), y=256,x=512, "
        "or suggested / whole / image (default: chosen to fit in memory)",
    )
    run.add_argument("--device", help="cpu, cuda, cuda:1 (default: a GPU when there is one)")
    run.add_argument(
        "--processing",
        default="auto",
        choices=("auto", "macros", "spec", "none"),
        help="the bundle's ImageJ steps, its spec ops, or none (default: auto, what the bundle declares)",
    )
    run.add_argument("--weights-format", help="which of the bundle's weights to run (e.g. onnx, torchscript)")
    run.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="seconds each ImageJ pre/post-processing step (macro or Java step) may run; a step that runs "
        "longer is stopped and its image reported as failed, the others still run (default: no limit)",
    )
    run.add_argument(
        "--precision",
        help="float32 (default), float16 (GPU), int8 or bfloat16 (CPU): kept only where it reproduces "
        "float32 within the bundle's tolerance, else float32 with a note",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="skip the images an earlier run finished with this bundle and these options (checked: outputs "
        "by size and sha256); redo the others, saying why",
    )
    run.add_argument("--models-dir", help="where to look up a model given by name")
    scale = run.add_mutually_exclusive_group()
    scale.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run on a local Dask cluster of N worker processes (each loads the model once)",
    )
    scale.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on the Dask cluster at ADDRESS (tcp://host:8786)"
    )
    progress = run.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar (default: on a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    run.set_defaults(handler=_run_bundle)


def parse_tile(text: str | None) -> Any:
    """``--tile`` as :meth:`Model.predict` takes it.

    Examples
    --------
    >>> parse_tile("256"), parse_tile("128,256"), parse_tile("y=128,x=256"), parse_tile("suggested")
    (256, (128, 256), {'y': 128, 'x': 256}, 'suggested')
    """
    from deepij.errors import ArgumentError

    if text is None:
        return None
    value = text.strip()
    if value in ("suggested", "whole", "image"):
        return value
    parts = [p.strip() for p in value.split(",") if p.strip()]
    try:
        if parts and all("=" in p for p in parts):
            sizes: Any = {k.strip().lower(): int(v) for k, v in (p.split("=", 1) for p in parts)}
            numbers = list(sizes.values())
        else:
            numbers = [int(p) for p in parts]
            sizes = numbers[0] if len(numbers) == 1 else tuple(numbers)
    except ValueError:
        numbers = []
    if not numbers or any(n < 1 for n in numbers):
        raise ArgumentError(f"--tile {text}: expected 256, 256,256, y=256,x=256, suggested, whole or image")
    return sizes


def _check_precision(precision: str | None) -> None:
    """``--precision``: one of the values ``predict(precision=...)`` takes (a usage error otherwise)."""
    from deepij.errors import ArgumentError
    from deepij.inference.backends.precision import PRECISIONS

    if precision is not None and precision not in PRECISIONS:
        raise ArgumentError(f"--precision {precision}: expected one of {', '.join(PRECISIONS)}")


def _run_bundle(args: argparse.Namespace) -> int:
    import deepij
    from deepij.errors import ArgumentError, DeepijError
    from deepij.pipeline.batch import image_files, run_batch
    from deepij.pipeline.zarr_io import is_zarr

    try:
        tile = parse_tile(args.tile)
        if args.timeout is not None and not args.timeout > 0:
            raise ArgumentError(f"--timeout {args.timeout:g}: expected a number of seconds > 0")
        _check_precision(args.precision)
        if args.workers is not None and args.workers < 1:
            raise ArgumentError(f"--workers {args.workers}: expected a positive number of worker processes")
        files = [] if is_zarr(args.input) else image_files(args.input)
        model = deepij.load(_bundle_source(args.bundle, args.models_dir))
    except ArgumentError as error:
        print(f"deepij run: {error}", file=sys.stderr)
        return USAGE_ERROR
    except DeepijError as error:
        print(f"deepij run: {error}", file=sys.stderr)
        return 1
    options = {
        "tile": tile,
        "device": args.device,
        "processing": args.processing,
        "weights_format": args.weights_format,
        "step_timeout": args.timeout,
        "precision": args.precision,
    }
    chosen = {k: v for k, v in options.items() if v is not None}
    scale_out = {"workers": args.workers, "scheduler": args.scheduler}
    try:
        if not files:
            return _run_zarr(model, args, chosen, scale_out)
        if args.workers is not None or args.scheduler is not None:
            from deepij.pipeline.distributed import run_many

            report = run_many(
                model, files, args.output, resume=args.resume, progress=args.progress, **scale_out, **chosen
            )
        else:
            report = run_batch(
                model, files, args.output, resume=args.resume, progress=args.progress, **chosen
            )
    except ArgumentError as error:
        print(f"deepij run: {error}", file=sys.stderr)
        return USAGE_ERROR
    finally:
        model.close()
    print(report.summary())
    return report.exit_code


def _run_zarr(
    model: Any, args: argparse.Namespace, options: dict[str, Any], scale_out: dict[str, Any]
) -> int:
    """A Zarr / OME-Zarr input: the outputs written as OME-Zarr, chunk by chunk."""
    from deepij.errors import DeepijError
    from deepij.pipeline.distributed import run_zarr

    try:
        written = run_zarr(model, args.input, args.output, **scale_out, **options)
    except DeepijError as error:
        if isinstance(error, ValueError):
            raise  # an argument error: the caller's usage error
        print(f"deepij run: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


def _bundle_source(bundle: str, models_dir: str | None) -> str | Path:
    """A path, zip or URL as given; a name that is none of them is looked up among installed models."""
    from deepij.bundle.locations import is_url

    if is_url(bundle) or Path(bundle).expanduser().exists():
        return bundle
    from deepij.bundle import find_model

    return find_model(bundle, models_dir)
