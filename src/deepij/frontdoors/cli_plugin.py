"""``deepij plugin install|uninstall DIR`` and ``deepij serve``: deepij in users' own Fiji and ImageJ.

``deepij plugin install DIR`` (DIR: a Fiji.app, an ImageJ folder, or a plugins folder) puts the deepij plugin
into that ImageJ (:mod:`deepij.frontdoors.plugin_install`): Plugins > deepij > DeepImageJ Run, DeepImageJ
Validate, Install Model, Test Model. The plugin starts ``deepij serve --stdio`` with this Python on first use
(:mod:`deepij.frontdoors.serve`). Exit status: 0 done, 1 it could not be done (the message says why).

Examples
--------
``deepij plugin install ~/Fiji.app``

``deepij plugin uninstall ~/Fiji.app``

>>> from deepij.frontdoors.cli import build_parser
>>> args = build_parser().parse_args(["plugin", "install", "/opt/Fiji.app"])
>>> args.action, args.folder
('install', '/opt/Fiji.app')
"""

from __future__ import annotations

import argparse
import sys

FAILED = 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``plugin`` and ``serve`` to the ``deepij`` command's subcommands."""
    plugin = commands.add_parser(
        "plugin",
        help="install deepij's plugin into a Fiji or ImageJ (Plugins > deepij > DeepImageJ Run...)",
        description=(
            "Install (or update, or remove) deepij's ImageJ plugin in a Fiji.app, an ImageJ folder or a "
            "plugins folder. Users' macros calling run(\"DeepImageJ Run\", ...) then run in their own "
            "ImageJ: the bundle's ImageJ steps there, the network in a deepij worker run by this Python."
        ),
    )
    actions = plugin.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (("install", "install or update the plugin"), ("uninstall", "remove the plugin")):
        parser = actions.add_parser(action, help=text, description=text + ".")
        parser.add_argument("folder", help="a Fiji.app, an ImageJ folder, or a plugins folder")
        parser.set_defaults(handler=_install if action == "install" else _uninstall)
    serve = commands.add_parser(
        "serve",
        help="the worker deepij's ImageJ plugin talks to (started by the plugin)",
        description=(
            "Serve deepij's ImageJ plugin: read requests on standard input, answer on standard output, "
            "pixels through shared files in a private folder. The plugin starts it; it ends with its "
            "input."
        ),
    )
    serve.add_argument("--stdio", action="store_true", required=True,
                       help="talk through standard input and output (the only channel)")
    serve.set_defaults(handler=_serve)


def _install(args: argparse.Namespace) -> int:
    from deepij.errors import DeepijError
    from deepij.frontdoors.plugin_install import install

    try:
        done = install(args.folder)
    except DeepijError as error:
        print(f"deepij plugin install: {error}", file=sys.stderr)
        return FAILED
    names = ", ".join(done.commands.values())
    print(f"installed {done.jar}")
    print(f"  Plugins > deepij > {names}")
    print(f"  the worker runs with {done.python} (started by the plugin on first use)")
    if done.deepimagej is not None:
        print(
            f"  deepImageJ's own plugin is in this ImageJ ({done.deepimagej}): deepij's commands are named "
            f"\"{done.commands['run']}\" and \"{done.commands['validate']}\" (same options); macros calling "
            "\"DeepImageJ Run\" keep running deepImageJ"
        )
    print("  restart ImageJ (or Help > Refresh Menus) to see the commands")
    return 0


def _uninstall(args: argparse.Namespace) -> int:
    from deepij.errors import DeepijError
    from deepij.frontdoors.plugin_install import uninstall

    try:
        removed = uninstall(args.folder)
    except DeepijError as error:
        print(f"deepij plugin uninstall: {error}", file=sys.stderr)
        return FAILED
    print(f"removed {removed}; restart ImageJ to drop the commands")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from deepij.frontdoors.serve import serve_stdio

    return serve_stdio()
