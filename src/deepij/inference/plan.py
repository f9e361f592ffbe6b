"""The result of tile planning: tiles, where each tile's results go, blending weights. Pure numpy.

Made by :meth:`deepij.inference.tiling.ModelTiling.plan`; executed by :mod:`deepij.inference.runner`.
A plan describes one image sample; the runner repeats it over batch, time or extra slices.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from deepij.errors import TilingError
from deepij.inference.grid import AxisGrid, blend_ramp


@dataclass(frozen=True)
class OutputAxisMap:
    """How one output axis follows a tiled input axis: ``size = input * scale + 2 * offset``.

    ``offset`` is per side, in output pixels (half the description's total offset). ``unpadded``: the one
    tile is the image as it is (``tile="image"``) and the network gives less than ``input * scale`` for it
    (a negative offset: valid convolutions); the output is then that tile output, whole, smaller than the
    image's by the offsets, as the zoo's tools compute it (its pixel ``j`` stands for image pixel
    ``(j - offset) / scale``). Otherwise the output covers the image (``input * scale``), as deepImageJ's.

    Examples
    --------
    >>> valid = OutputAxisMap("x", "x", 1.0, -2.0)
    >>> valid.full_size(40), valid.regions((0, 40), 0)
    (40, (slice(0, 40, None), slice(-2, 38, None)))
    >>> as_is = OutputAxisMap("x", "x", 1.0, -2.0, unpadded=True)
    >>> as_is.full_size(40), as_is.regions((0, 40), 0)
    (36, (slice(0, 36, None), slice(0, 36, None)))
    """

    axis: str
    input_axis: str
    scale: float
    offset: float
    halo: int = 0
    unpadded: bool = False

    def full_size(self, image_size: int) -> int:
        """The output's size along the axis for an image of ``image_size`` (deepImageJ: ``I * scale``;
        ``unpadded``: what the network gives for the image)."""
        if self.unpadded:
            return self.tile_size(image_size)
        return int(image_size * self.scale)

    def tile_size(self, tile: int) -> int:
        """What the network gives for a tile of ``tile`` pixels."""
        return round(tile * self.scale + 2 * self.offset)

    def image_pixels(self, count: int) -> np.ndarray:
        """The image pixel each of the output's first ``count`` pixels stands for (below 0 or past the
        image for the border pixels of an output larger than ``input * scale``)."""
        shift = self.offset if self.unpadded else 0.0
        return np.floor((np.arange(count) - shift) / self.scale).astype(np.intp)

    def regions(self, write: tuple[int, int], read: int) -> tuple[slice, slice]:
        """(where it goes in the output, where it comes from in the tile output)."""
        if self.unpadded:  # the one tile is the image, from its first pixel: its output is the output
            size = self.tile_size(write[1] - write[0])
            return slice(0, size), slice(0, size)
        start, stop = int(write[0] * self.scale), int(write[1] * self.scale)
        source = int(read * self.scale) + math.floor(self.offset)
        return slice(start, stop), slice(source, source + stop - start)


@dataclass(frozen=True)
class Tile:
    """One tile of a plan: its index in the grid and, per tiled axis, window start, write range and read."""

    index: tuple[int, ...]
    starts: tuple[int, ...]
    write: tuple[tuple[int, int], ...]
    read: tuple[int, ...]


@dataclass(frozen=True)
class OutputPlan:
    """Where one output's tile results go.

    ``maps`` holds the axes that follow a tiled input axis (cut per tile); every other axis is taken whole
    from the tile output (channels, classes, table rows).
    """

    name: str
    axes: str
    maps: Mapping[str, OutputAxisMap]
    sizes: Mapping[str, int]


@dataclass(frozen=True)
class TilePlan:
    """The tiles of one image sample for one model.

    Attributes
    ----------
    input : str
        The input whose spatial axes set the grid.
    grids : tuple of AxisGrid
        One per tiled axis, in that input's axis order.
    tile_shapes : mapping
        Per input name, axis letter -> size of the array the network receives (batch axis excluded).
    windowed : tuple of str
        Inputs cut with the grid (the others are given whole to every tile).
    outputs : mapping
        Per output name, its :class:`OutputPlan`.
    mode : str
        ``"deepimagej"``, ``"deepimagej-readback"`` or ``"blend"``.
    tiled : bool
        False when the model cannot be tiled and runs once on the whole (padded) image.
    """

    input: str
    grids: tuple[AxisGrid, ...]
    tile_shapes: Mapping[str, Mapping[str, int]]
    windowed: tuple[str, ...]
    outputs: Mapping[str, OutputPlan]
    mode: str = "deepimagej"
    tiled: bool = True
    _weights: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def axes(self) -> str:
        """The tiled axis letters."""
        return "".join(g.axis for g in self.grids)

    @property
    def tile(self) -> dict[str, int]:
        """Tile size per tiled axis."""
        return {g.axis: g.tile for g in self.grids}

    @property
    def n_tiles(self) -> int:
        return math.prod(g.n_tiles for g in self.grids)

    def tiles(self) -> Iterator[Tile]:
        """Every tile, the last axis fastest."""
        for index in np.ndindex(*(g.n_tiles for g in self.grids)):
            yield Tile(
                tuple(index),
                tuple(g.starts[k] for g, k in zip(self.grids, index, strict=True)),
                tuple(g.write[k] for g, k in zip(self.grids, index, strict=True)),
                tuple(g.read[k] for g, k in zip(self.grids, index, strict=True)),
            )

    def output_regions(self, tile: Tile, output: str) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """Slices in the output's axes: (destination in the full output, source in the tile output)."""
        out = self.outputs[output]
        dest, source = [], []
        for letter in out.axes:
            m = out.maps.get(letter)
            if m is None:
                dest.append(slice(None))
                source.append(slice(None))
                continue
            k = self.axes.index(m.input_axis)
            d, s = m.regions(tile.write[k], tile.read[k])
            dest.append(d)
            source.append(s)
        return tuple(dest), tuple(source)

    def blend_weights(self, tile: Tile, output: str) -> np.ndarray | None:
        """Per-pixel weights (broadcastable over the output's axes) for ``mode="blend"``; None otherwise.

        The weights of all tiles add up to 1 at every output pixel.
        """
        if self.mode != "blend":
            return None
        out = self.outputs[output]
        weights = np.ones((1,) * len(out.axes), dtype=np.float32)
        for position, letter in enumerate(out.axes):
            m = out.maps.get(letter)
            if m is None:
                continue
            k = self.axes.index(m.input_axis)
            ramp = self._normalised_ramps(output, letter)[tile.index[k]]
            shape = [1] * len(out.axes)
            shape[position] = ramp.size
            weights = weights * ramp.reshape(shape).astype(np.float32)
        return weights

    def _normalised_ramps(self, output: str, letter: str) -> list[np.ndarray]:
        key = (output, letter)
        if key not in self._weights:
            m = self.outputs[output].maps[letter]
            grid = self.grids[self.axes.index(m.input_axis)]
            dest = [m.regions(w, r)[0] for w, r in zip(grid.write, grid.read, strict=True)]
            ramps = []
            for k, d in enumerate(dest):
                left = dest[k - 1].stop - d.start if k > 0 else 0
                right = d.stop - dest[k + 1].start if k + 1 < len(dest) else 0
                ramps.append(blend_ramp(d.stop - d.start, max(left, 0), max(right, 0)))
            total = np.zeros(m.full_size(grid.size))
            for d, r in zip(dest, ramps, strict=True):
                total[d] += r
            self._weights[key] = [r / total[d] for d, r in zip(dest, ramps, strict=True)]
        return self._weights[key]


def check_sources(plan: TilePlan) -> None:
    """Every output region must come from inside the tile output the description promises."""
    for out in plan.outputs.values():
        for letter, m in out.maps.items():
            k = plan.axes.index(m.input_axis)
            grid = plan.grids[k]
            available = m.tile_size(grid.tile)
            for write, read in zip(grid.write, grid.read, strict=True):
                _, source = m.regions(write, read)
                if source.start < 0 or source.stop > available:
                    raise TilingError(
                        f"output {out.name!r} axis {letter}: a {grid.tile} tile gives {available} pixels but "
                        f"its result would be read from [{source.start}, {source.stop}); expected a tile "
                        f"with more margin (padding {grid.pad}, scale {m.scale}, offset {m.offset} per side)"
                    )
