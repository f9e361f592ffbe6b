"""The run one task of a lazy tiled run (:mod:`deepij.inference.lazy`) makes: a :class:`WindowedRun` holds
only the windows of the input that its tiles read, and gives each tile's finished valid region as a
:data:`Piece` that :mod:`deepij.inference.lazy_chunks` places into the output's chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from deepij.inference.runner import TiledRun, TileTransform, WorkItem

if TYPE_CHECKING:
    from deepij.inference.backends.base import Backend
    from deepij.inference.plan import TilePlan

Layout = Mapping[str, tuple[tuple[str, ...], tuple[int, ...], str]]
"""Per input name: (dims, shape, dtype) of the whole image."""
Piece = tuple[tuple[Any, ...], np.ndarray]
"""Where a tile's valid region goes in the whole output (index), and its values."""


class WindowedRun(TiledRun):
    """A :class:`TiledRun` that holds only the windows one task reads (``windows``: per input, what
    ``_samples`` holds in a whole run), with zero-byte stand-ins for the whole images."""

    def __init__(
        self,
        backend: Backend,
        plan: TilePlan,
        layout: Layout,
        windows: Mapping[str, Any],
        batch_size: int,
        prepare: Mapping[str, TileTransform],
        finish: Mapping[str, TileTransform],
    ) -> None:
        stand_ins = {
            name: xr.DataArray(np.broadcast_to(np.zeros((), dtype=np.dtype(dtype)), shape), dims=dims)
            for name, (dims, shape, dtype) in layout.items()
        }
        super().__init__(backend, plan, stand_ins, batch_size, prepare=prepare, finish=finish)
        for name, window in windows.items():
            self._samples[name] = (window, self._samples[name][1])

    def looped(self, name: str) -> bool:
        return self._samples[name][1]

    def piece(self, item: WorkItem, name: str, result: np.ndarray) -> Piece:
        """One item's valid region of output ``name``, finished and weighted as :meth:`write` would."""
        target, piece, weights = self.valid_piece(item, self.description.output(name), result)
        if weights is not None:
            piece = piece * weights.astype(np.result_type(piece.dtype, np.float32))
        return target, piece

    def target(self, item: WorkItem, name: str) -> tuple[Any, ...]:
        dest, _ = self.plan.output_regions(item.tile, name)
        return self._target(self.description.output(name), item.key, dest)
