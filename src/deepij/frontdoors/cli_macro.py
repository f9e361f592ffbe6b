"""``deepij macro`` (users' workshop macros, prompts answered by their text) and ``deepij demo``.

What the macro prints to ImageJ's Log goes to standard output as it comes, as ``ImageJ -batch`` prints it
(and, with ``--output``, into ``<input name>_Log.txt`` there); deepij's own messages (each run's outcome,
the summary, errors) go to standard error. Exit status: 0 when every run was done, 1 when some run failed
or the macro could not be used, 2 for a usage error.

Examples
--------
``deepij macro workshop.ijm --input images/ --answer "Choose the output folder=out/"``

``deepij demo --output out/demo``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deepij.frontdoors.cli_run import USAGE_ERROR

_EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``macro`` and ``demo`` to the ``deepij`` command's subcommands."""
    _add_macro(commands)
    _add_demo(commands)


def _add_macro(commands: argparse._SubParsersAction) -> None:
    macro = commands.add_parser(
        "macro",
        help='run a workshop macro (with its run("DeepImageJ Run", ...) calls), on each file of a folder',
        description=(
            "Run an ImageJ macro unchanged in deepij's ImageJ: once, or once per file of --input with that "
            "file open as the current image. Prompts (getDirectory, getString, getNumber, Dialog fields) are "
            "answered by their text with --answer; an unanswered one stops the run and shows the --answer "
            'that would answer it. run("DeepImageJ Run", ...) finds its models in --models-dir first. '
            "What the macro prints (its Log) goes to standard output as it runs, as with ImageJ -batch; "
            "deepij's own messages to standard error. With --output, the images, tables and Log each run "
            "leaves are written there (TIFF, CSV, <input name>_Log.txt). "
            "Exit status: 0 all done, 1 some failed, 2 usage."
        ),
    )
    macro.add_argument("workflow", metavar="WORKFLOW.ijm", help="the macro file")
    macro.add_argument("--input", "-i", help="an image file or a folder: the macro runs once per file")
    macro.add_argument(
        "--output", "-o", help="write the images, tables and Log each run leaves into this folder"
    )
    macro.add_argument("--models-dir", help='where run("DeepImageJ Run", "model=NAME ...") looks first')
    macro.add_argument(
        "--answer",
        "-a",
        action="append",
        default=[],
        metavar="PROMPT=VALUE",
        help="answer the prompt PROMPT with VALUE (repeat for several)",
    )
    macro.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="seconds per run before it is stopped and reported as failed (default: no limit)",
    )
    macro.set_defaults(handler=_run_macro)


def _run_macro(args: argparse.Namespace) -> int:
    from deepij.errors import ArgumentError, DeepijError
    from deepij.frontdoors.workflow import parse_answers, run_workflow

    try:
        answers = parse_answers(args.answer)
        if args.timeout is not None and not args.timeout > 0:
            raise ArgumentError(f"--timeout {args.timeout:g}: expected a number of seconds > 0")
        report = run_workflow(
            args.workflow,
            inputs=args.input,
            output=args.output,
            models_dir=args.models_dir,
            answers=answers,
            timeout=args.timeout,
            on_log=_print_log_line,
            on_run=_tell_outcome,
        )
    except ArgumentError as error:
        print(f"deepij macro: {error}", file=sys.stderr)
        return USAGE_ERROR
    except DeepijError as error:
        print(f"deepij macro: {error}", file=sys.stderr)
        return 1
    print(report.summary(), file=sys.stderr)
    return report.exit_code


def _print_log_line(line: str) -> None:
    """A line of the macro's Log, on standard output at once (as ImageJ -batch prints it)."""
    print(line, flush=True)


def _tell_outcome(outcome: Any) -> None:
    """One run's outcome, on standard error, as soon as it is known (after the Log lines it printed)."""
    if outcome.status == "failed":
        print(f"deepij macro: {outcome.source.name}: failed: {outcome.error}", file=sys.stderr, flush=True)
    else:
        print(f"deepij macro: {outcome.source.name}: {outcome.status} ({outcome.seconds:.2f} s)",
              file=sys.stderr, flush=True)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the demo (examples/demo.py) of a deepij source checkout",
        description="Run examples/demo.py: the project's nuclei bundle on its example image, with its ImageJ "
        "pre- and post-processing macros; writes TIFF, CSV and a PNG figure.",
    )
    demo.add_argument("--output", default="out/demo", help="output folder (replaced; default out/demo)")
    demo.add_argument("--image", help="a 2-D TIFF of nuclei (default: the bundle's example image)")
    demo.add_argument(
        "--by-hand", action="store_true", help="chain run_macro and predict by hand instead of the pipeline"
    )
    demo.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    import subprocess

    script = _EXAMPLES / "demo.py"
    if not script.is_file():
        print(
            f"deepij demo: {script} not found (the demo ships with deepij's source checkout, not with an "
            "installed package)",
            file=sys.stderr,
        )
        return 1
    # its own process: the demo imports its neighbours in examples/ and owns its ImageJ
    demo_args = ["--output", args.output, *(["--image", args.image] if args.image else [])]
    command = [sys.executable, str(script), *demo_args, *(["--by-hand"] if args.by_hand else [])]
    return subprocess.call(command)
