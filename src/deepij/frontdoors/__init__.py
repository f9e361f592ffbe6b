"""What people call: the ``deepij`` command, ``run("DeepImageJ Run", ...)`` in ImageJ macros, and users'
workshop macros run over folders.

- :mod:`deepij.frontdoors.deepimagej_run`: the macro command (three dialects), models found by name and kept
  loaded between calls;
- :mod:`deepij.frontdoors.workflow`: ``deepij macro WORKFLOW.ijm`` / :func:`run_workflow`, prompts answered
  by their text;
- :mod:`deepij.frontdoors.cli`: the ``deepij`` command line (``main``), its subcommands in
  :mod:`~deepij.frontdoors.cli_bundle` (info, install), :mod:`~deepij.frontdoors.cli_run` (run) and
  :mod:`~deepij.frontdoors.cli_macro` (macro, demo).

Nothing below this package imports it.
"""

from __future__ import annotations
