"""The ``deepij`` command. Each subcommand is a small function here that calls the package's public API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepij",
        description="Run deepImageJ bundles and BioImage Model Zoo models, with their ImageJ processing.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_info_command(commands)
    _add_install_command(commands)
    from deepij.frontdoors.cli import add_commands

    add_commands(commands)  # run, macro, demo
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    return int(args.handler(args) or 0)


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
    info.add_argument("--no-verify", action="store_true", help="do not check weights against their sha256")
    info.set_defaults(handler=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    import json

    from deepij.bundle import open_bundle, summarize
    from deepij.bundle.info import format_summary
    from deepij.errors import DeepijError

    try:
        # the summary reports mismatching weights itself, so opening does not stop at them
        summary = summarize(open_bundle(args.bundle, verify=False), verify=not args.no_verify)
    except DeepijError as exc:
        print(f"deepij info: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, ensure_ascii=False) if args.json else format_summary(summary))
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
    install.add_argument("--no-verify", action="store_true", help="do not check weights against sha256")
    install.set_defaults(handler=_run_install)


def _run_install(args: argparse.Namespace) -> int:
    from deepij.bundle import install
    from deepij.bundle.download import print_progress
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
        print(f"deepij install: {exc}", file=sys.stderr)
        return 1
    print(f"installed {folder}")
    return 0


def _version() -> str:
    from deepij import __version__

    return f"deepij {__version__}"


if __name__ == "__main__":
    sys.exit(main())
