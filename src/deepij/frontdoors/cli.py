"""The ``deepij`` command: the one place its subcommands are put together.

Each group of subcommands lives in a small module of its own, and each subcommand is a small function that
calls the package's public API:

- :mod:`deepij.frontdoors.cli_bundle`: ``deepij info`` and ``deepij install``;
- :mod:`deepij.frontdoors.cli_run`: ``deepij run``;
- :mod:`deepij.frontdoors.cli_macro`: ``deepij macro`` and ``deepij demo``;
- :mod:`deepij.frontdoors.cli_test`: ``deepij test``;
- :mod:`deepij.frontdoors.cli_plugin`: ``deepij plugin install|uninstall`` and ``deepij serve``;
- :mod:`deepij.frontdoors.cli_gui`: ``deepij gui``.

Exit status: 0 when everything was done, 1 when some image (or run) failed or the bundle could not be used,
2 for a usage error (an unknown option, a missing input, a value that cannot be read).

Examples
--------
``deepij info old_bundle.zip``

``deepij run old_bundle.zip --input images/ --output out/ --tile 256,256 --resume``

``deepij macro workshop.ijm --input images/ --answer "Choose the output folder=out/"``

>>> args = build_parser().parse_args(["info", "old_bundle.zip", "--json"])
>>> args.command, args.bundle, args.json
('info', 'old_bundle.zip', True)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deepij.frontdoors import (
    cli_build,
    cli_bundle,
    cli_gui,
    cli_macro,
    cli_plugin,
    cli_run,
    cli_test,
    cli_validate,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``deepij`` parser with every subcommand; each sets ``handler`` (``args -> exit status``)."""
    parser = argparse.ArgumentParser(
        prog="deepij",
        description="Run deepImageJ bundles and BioImage Model Zoo models, with their ImageJ processing.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    cli_bundle.add_commands(commands)  # info, install
    cli_run.add_commands(commands)  # run
    cli_macro.add_commands(commands)  # macro, demo
    cli_test.add_commands(commands)  # test
    cli_build.add_commands(commands)  # build
    cli_validate.add_commands(commands)  # validate
    cli_plugin.add_commands(commands)  # plugin, serve
    cli_gui.add_commands(commands)  # gui
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``deepij`` command on ``argv`` (default: the process's arguments); the exit status.

    Without a subcommand it prints the help and returns 2.
    """
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
