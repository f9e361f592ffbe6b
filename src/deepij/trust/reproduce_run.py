"""How ``deepij test`` runs a case: under the zoo's convention or deepImageJ's (FORMATS.md section 6).

- ``"zoo"``: the image as it is, one unpadded pass (``tile="image"``), as bioimageio.core makes and checks
  test outputs; an image whose size the network cannot take as it is gets one mirror-padded pass
  (``tile="whole"``), said in a note.
- ``"deepImageJ"``: what deepImageJ 2.x's *Build Bundled Model* test step ran to write ``resultImage``:
  the tile it proposes for the example image (``ArrayOperations.optimalPatch``, the tile field's default;
  the bundle records no other: ``test_information`` holds the example's size, not the tile, and a fixed
  ``shape`` is the tile itself), mirror-padded, tiles laid as deepImageJ lays them and read back as it
  reads them: ``tile="suggested"`` with ``tiling="deepimagej-readback"`` (an image smaller than the tile's
  valid region sits at ``ceil((Q - I)/2)`` but is read back from ``floor((Q - I)/2)``, one pixel off when
  ``Q - I`` is odd, as in every result image deepImageJ made). The suggested tile usually holds the whole
  image: one mirror-padded pass; a fixed-size model smaller than the image takes several tiles.

Examples
--------
>>> print(describe_convention("zoo"))
the image as it is, one unpadded pass (tile="image"), as the zoo's tools run test inputs
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deepij.errors import ArgumentError, SeamWarning, TilingError
from deepij.trust.reproduce_cases import DEEPIMAGEJ, ZOO

if TYPE_CHECKING:
    from deepij.imagej.session import Session
    from deepij.pipeline import Model, Prediction
    from deepij.trust.reproduce_cases import Case

DEEPIMAGEJ_TILING = "deepimagej-readback"
"""The tile layout of deepImageJ's own runs, its read-back shift included."""
_DESCRIPTIONS = {
    ZOO: 'the image as it is, one unpadded pass (tile="image"), as the zoo\'s tools run test inputs',
    DEEPIMAGEJ: (
        "deepImageJ's default tile for the image, mirror-padded, laid and read back as deepImageJ does "
        '(tile="suggested", tiling="deepimagej-readback")'
    ),
}


@dataclass(frozen=True)
class Options:
    """How every run of one ``deepij test`` goes (:func:`deepij.test_bundle`'s arguments)."""

    device: str | None
    runtime: str
    tile: Any
    session: Session | None
    tiled: bool


@dataclass(frozen=True)
class CaseRun:
    """A case's run: the prediction, the convention it followed, a note on how (None: nothing to say)."""

    prediction: Prediction
    convention: str
    note: str | None


def describe_convention(convention: str) -> str:
    """The convention in words (ArgumentError for an unknown one)."""
    if convention not in _DESCRIPTIONS:
        raise ArgumentError(f"convention: unknown {convention!r}; expected {ZOO!r} or {DEEPIMAGEJ!r}")
    return _DESCRIPTIONS[convention]


def run_case(
    model: Model, image: Any, case: Case, fmt: str, options: Options, convention: str
) -> CaseRun:
    """Run ``case`` on ``image`` with ``fmt`` under ``convention`` (module notes)."""
    describe_convention(convention)
    if convention == DEEPIMAGEJ:
        prediction = predict(model, image, case, fmt, options, "suggested", DEEPIMAGEJ_TILING)
        plan = prediction.plan
        tiles = f"{plan.n_tiles} tile{'s' if plan.n_tiles != 1 else ''}"
        tile = ", ".join(f"{a}={q}" for a, q in plan.tile.items()) or "the image"
        return CaseRun(prediction, DEEPIMAGEJ, f"{case.kind}: deepImageJ's default tile {tile} ({tiles})")
    try:
        return CaseRun(predict(model, image, case, fmt, options, "image"), ZOO, None)
    except TilingError as exc:
        note = f"{case.kind}: one mirror-padded pass, the image as it is cannot go through ({exc})"
        return CaseRun(predict(model, image, case, fmt, options, "whole"), ZOO, note)


def predict(
    model: Model,
    image: Any,
    case: Case,
    fmt: str,
    options: Options,
    tile: Any,
    tiling: str | None = None,
) -> Prediction:
    """One run of ``case``'s processing with ``fmt``; a seam warning is not printed (the report shows
    seams)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeamWarning)
        return model.predict(
            image,
            processing=case.processing,
            session=options.session,
            logging="mute",
            tile=tile,
            tiling=tiling,
            device=options.device,
            weights_format=fmt,
            runtime=options.runtime,
            instances="declared",  # what the descriptor declares is what its test outputs hold
        )
