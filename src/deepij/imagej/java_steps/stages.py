"""The two kinds of Java step: the interface each implements and the method deepImageJ calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepij.errors import ArgumentError


@dataclass(frozen=True)
class Stage:
    """One of deepImageJ's processing interfaces."""

    interface: str
    method: str
    label: str


STAGES = {
    "pre": Stage("deepimagej.processing.PreProcessingInterface", "deepimagejPreprocessing",
                 "pre-processing"),
    "post": Stage("deepimagej.processing.PostProcessingInterface", "deepimagejPostprocessing",
                  "post-processing"),
}


def stage_of(stage: Any) -> Stage:
    """The stage named ``"pre"`` or ``"post"`` (ArgumentError for anything else).

    Examples
    --------
    >>> stage_of("post").method
    'deepimagejPostprocessing'
    """
    if stage not in STAGES:
        raise ArgumentError(f"stage: expected 'pre' or 'post', found {stage!r}")
    return STAGES[stage]
