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
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    return int(args.handler(args) or 0)


def _version() -> str:
    from deepij import __version__

    return f"deepij {__version__}"


if __name__ == "__main__":
    sys.exit(main())
