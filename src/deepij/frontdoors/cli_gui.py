"""``deepij gui``: ImageJ's own window, with Plugins > deepij served by this process (see
:mod:`deepij.frontdoors.gui`).

Exit status: 0 once the window was closed, 1 when it could not be shown (no display: the message says why).

Examples
--------
``deepij gui``

``deepij gui --fiji ~/Fiji.app --run workshop.ijm``

>>> from deepij.frontdoors.cli import build_parser
>>> args = build_parser().parse_args(["gui", "--run", "start.ijm"])
>>> args.command, args.fiji, args.run
('gui', None, 'start.ijm')
"""

from __future__ import annotations

import argparse
import sys

FAILED = 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``gui`` to the ``deepij`` command's subcommands."""
    gui = commands.add_parser(
        "gui",
        help="ImageJ's window with Plugins > deepij (DeepImageJ Run...), run by this Python",
        description=(
            "Show ImageJ's own window on your display, with every ImageJ command, the macro editor, the "
            "recorder and Plugins > deepij > DeepImageJ Run, DeepImageJ Validate, Install Model, Test Model "
            "(the plugin's commands, served in this process: a model stays loaded between runs). Returns "
            "when the window is closed."
        ),
    )
    gui.add_argument("--fiji", metavar="DIR", help="a local Fiji.app: its window instead of ImageJ 1.x's")
    gui.add_argument("--run", metavar="MACRO",
                     help="an ImageJ macro file to run in the window once it is up (as ImageJ's -macro)")
    gui.set_defaults(handler=_gui)


def _gui(args: argparse.Namespace) -> int:
    from deepij.errors import DeepijError
    from deepij.frontdoors.gui import gui

    try:
        return gui(args.fiji, macro=args.run)
    except DeepijError as error:
        print(f"deepij gui: {error}", file=sys.stderr)
        return FAILED
