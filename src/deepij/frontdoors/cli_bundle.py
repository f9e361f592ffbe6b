"""``deepij info`` and ``deepij install``: the bundle commands.

``deepij info BUNDLE`` summarizes a bundle (folder, descriptor, zip or URL), ``--json`` for a machine;
``deepij install ZIP_OR_URL`` checks, unpacks and installs one into a models folder.

Examples
--------
``deepij info old_bundle.zip --json``

``deepij install https://zenodo.org/record/.../files/model.zip --models-dir ~/Fiji.app/models``
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``info`` and ``install`` to the ``deepij`` command's subcommands."""
    _add_info_command(commands)
    _add_install_command(commands)


def _add_info_command(commands: argparse._SubParsersAction) -> None:
    info = commands.add_parser(
        "info",
        help="summarize a bundle: tensors, shape rules, processing, weights",
        description="Summarize a bundle (folder, descriptor, zip or URL): name, format version, inputs and "
        "outputs with axes and shape rules, processing steps, and each weights format's state "
        "(verified against its sha256, present, missing, remote).",
    )
    info.add_argument("bundle", help="bundle folder, descriptor file, zip or URL")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.add_argument(
        "--no-verify", action="store_true", help="do not check weights and other files against their sha256"
    )
    info.set_defaults(handler=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from deepij.bundle import open_bundle, summarize
    from deepij.bundle.info import format_summary, printable, summary_json
    from deepij.errors import DeepijError

    try:
        # the summary reports mismatching weights itself, so opening does not stop at them
        summary = summarize(open_bundle(args.bundle, verify=False), verify=not args.no_verify)
    except DeepijError as exc:
        _print_out(f"deepij info: {printable(str(exc))}", sys.stderr)
        return 1
    return _print_out(summary_json(summary) if args.json else format_summary(summary), sys.stdout)


def _print_out(text: str, stream: TextIO) -> int:
    """Write a line of ``deepij info``/``install`` output: 0, or 141 when the reader has gone
    (``deepij info X | head -1``), without a traceback; characters the terminal's encoding lacks
    (``PYTHONIOENCODING=ascii``) come out as ``\\xf3`` escapes."""
    import contextlib
    import os

    with contextlib.suppress(AttributeError, ValueError, OSError):
        stream.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):  # so the interpreter's last flush does not fail too
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        return 141  # 128 + SIGPIPE, as a shell tool stopped by a closed pipe
    return 0


def _add_install_command(commands: argparse._SubParsersAction) -> None:
    install = commands.add_parser(
        "install",
        help="install a bundle zip (file or URL) into a models folder",
        description="Check, unpack and install a bundle into a models folder (default: $DEEPIJ_MODELS_DIR "
        "or ~/.deepij/models; an ImageJ/Fiji folder or its models/ folder works too). URLs are "
        "downloaded with resume. Nothing is left behind when something fails.",
    )
    install.add_argument("source", metavar="ZIP_OR_URL", help="bundle zip, http(s) URL of one, or folder")
    install.add_argument("--models-dir", help="models folder to install into")
    install.add_argument("--force", action="store_true", help="replace an installed bundle of that name")
    install.add_argument(
        "--no-verify", action="store_true", help="do not check weights and other files against their sha256"
    )
    install.set_defaults(handler=_run_install)


def _run_install(args: argparse.Namespace) -> int:
    from deepij.bundle import install
    from deepij.bundle.download import print_progress
    from deepij.bundle.info import printable
    from deepij.bundle.staging import Terminated
    from deepij.errors import DeepijError

    try:
        folder = install(
            args.source,
            args.models_dir,
            overwrite=args.force,
            verify=not args.no_verify,
            progress=print_progress(),
        )
    except DeepijError as exc:
        _print_out(f"deepij install: {printable(str(exc))}", sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated): the staging was removed
        _print_out("deepij install: stopped; nothing was installed", sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    return _print_out(printable(f"installed {folder}"), sys.stdout)
