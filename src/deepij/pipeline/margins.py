"""Tile margins: deepImageJ 1.x's ``overlap=`` (``margin=`` of :meth:`~deepij.pipeline.model.Model.predict`),
the pixels cut from each side of every tile when more than the bundle's declared halo.

Examples
--------
>>> check_margin(None), check_margin(8)
(None, None)
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from deepij.bundle.description import FixedSize
from deepij.errors import TilingError

if TYPE_CHECKING:
    from deepij.inference.tiling import ModelTiling


def check_margin(margin: Any) -> None:
    """Refuse a ``margin`` that is not a whole number of pixels >= 0 (None: no margin)."""
    from deepij.errors import ArgumentError, ArgumentTypeError

    if margin is None:
        return
    if isinstance(margin, bool) or not isinstance(margin, int):
        raise ArgumentTypeError(f"margin: expected a whole number of pixels, not {margin!r}")
    if margin < 0:
        raise ArgumentError(f"margin: expected a whole number of pixels >= 0, not {margin}")


def with_margin(tiling: ModelTiling, margin: int | None) -> ModelTiling:
    """``tiling`` whose tiles keep at least ``margin`` pixels per side (cut from each tile's border).

    Raises
    ------
    TilingError
        A fixed tile size (``margin:`` names the argument) that such a margin leaves nothing of.
    """
    if margin is None or not tiling.tileable or all(p >= margin for p in tiling.pads.values()):
        return tiling
    for axis in tiling.axes:
        rule = tiling.rules[axis]
        if isinstance(rule, FixedSize) and rule.value <= 2 * margin:
            raise TilingError(
                f"margin: {margin} pixels per side leave nothing of the model's fixed tile "
                f"{axis}={rule.value}; expected at most {(rule.value - 1) // 2}"
            )
    return replace(tiling, pads={a: max(p, margin) for a, p in tiling.pads.items()})


def margin_note(tiling: ModelTiling, margin: int) -> str:
    declared = dict(tiling.pads)
    if not tiling.tileable:
        return f"margin {margin}: the model runs in one pass (not tiled), no tile margins are cut"
    if all(p >= margin for p in declared.values()):
        return f"tile margin: the declared halo {declared} pixels per side (margin {margin} is within it)"
    used = {a: max(p, margin) for a, p in declared.items()}
    return f"tile margin {used} pixels per side (margin {margin}; the bundle declares {declared})"
