"""One-dimensional tile grids and mirror padding: the arithmetic under :mod:`deepij.inference.tiling`.

Everything here works along one axis, in input pixels. A grid says, for each tile, where its input window
starts in image coordinates (it may start before 0 or end after the image: those pixels are mirrored), which
part of the image the tile writes (``write``, image coordinates) and where that part starts inside the tile
(``read``). See :mod:`deepij.inference.tiling` for how deepImageJ 2.x lays its tiles and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deepij.errors import TilingError


@dataclass(frozen=True)
class AxisGrid:
    """The tiles along one axis.

    Attributes
    ----------
    axis : str
        The input axis letter (``"x"``, ``"y"``, ``"z"``).
    size : int
        The image size ``I`` along the axis.
    tile : int
        The tile (patch) size ``Q`` the network receives.
    pad : int
        The padding ``P`` (input pixels) a tile loses on each side.
    starts : tuple of int
        Per tile, the image coordinate of the tile's first pixel (negative or past the end: mirrored).
    write : tuple of (int, int)
        Per tile, the ``[start, stop)`` image range whose result the tile provides.
    read : tuple of int
        Per tile, the position inside the tile of the pixel that lands on ``write[k][0]``.

    Examples
    --------
    >>> g = deepimagej_grid(90, tile=48, pad=8)
    >>> g.starts, g.write, g.read
    ((-8, 24, 50), ((0, 32), (32, 64), (64, 90)), (8, 8, 14))
    """

    axis: str
    size: int
    tile: int
    pad: int
    starts: tuple[int, ...]
    write: tuple[tuple[int, int], ...]
    read: tuple[int, ...]

    @property
    def n_tiles(self) -> int:
        return len(self.starts)


def _valid_region(size: int, tile: int, pad: int, axis: str) -> int:
    region = tile - 2 * pad
    if region <= 0:
        raise TilingError(
            f"axis {axis}: tile {tile} leaves no valid region after removing the padding {pad} on each "
            f"side (tile - 2*padding = {region}); expected a tile larger than {2 * pad}"
        )
    return region


def deepimagej_grid(size: int, tile: int, pad: int, *, axis: str = "?", readback: bool = False) -> AxisGrid:
    """The grid deepImageJ 2.x uses (``RunnerTf`` / ``RunnerPt``), read back where the image really is.

    Parameters
    ----------
    size, tile, pad : int
        Image size ``I``, tile size ``Q`` and padding ``P`` along the axis.
    axis : str
        The axis letter, for messages.
    readback : bool
        deepImageJ places an image smaller than the valid region ``R = Q - 2P`` at
        ``ceil((Q-I)/2)`` inside the tile but reads the result back from ``floor((Q-I)/2)``: when ``Q - I``
        is odd its output is shifted by one pixel. False (the default) reads from where the image is;
        True reproduces deepImageJ's shift (to match result images deepImageJ made).

    Returns
    -------
    AxisGrid

    Examples
    --------
    >>> deepimagej_grid(5, tile=8, pad=0).read  # the image sits at 2 in the tile
    (2,)
    >>> deepimagej_grid(5, tile=8, pad=0, readback=True).read  # deepImageJ reads from 1
    (1,)
    """
    region = _valid_region(size, tile, pad, axis)
    if region >= size:
        margin = tile - size
        left = math.ceil(margin / 2)
        first = margin // 2 if readback else left
        return AxisGrid(axis, size, tile, pad, (-left,), ((0, size),), (first,))
    count = math.ceil(size / region)
    starts: list[int] = []
    write: list[tuple[int, int]] = []
    read: list[int] = []
    for k in range(count - 1):
        starts.append(k * region - pad)
        write.append((k * region, (k + 1) * region))
        read.append(pad)
    # The last tile is pushed back so that it ends at the border; only its unwritten part is copied.
    first_unwritten = (count - 1) * region
    starts.append(size - region - pad)
    write.append((first_unwritten, size))
    read.append(pad + region - (size - first_unwritten))
    return AxisGrid(axis, size, tile, pad, tuple(starts), tuple(write), tuple(read))


def blend_grid(size: int, tile: int, pad: int, overlap: int, *, axis: str = "?") -> AxisGrid:
    """A grid whose valid regions overlap by at least ``overlap`` pixels, for blending.

    Each tile writes its whole valid region ``[start + P, start + Q - P)``; neighbours share at least
    ``overlap`` pixels (the last tile, pushed back to the border, may share more).

    Examples
    --------
    >>> g = blend_grid(100, tile=48, pad=8, overlap=8)
    >>> g.write
    ((0, 32), (24, 56), (48, 80), (68, 100))
    """
    region = _valid_region(size, tile, pad, axis)
    if region >= size:
        left = math.ceil((tile - size) / 2)
        return AxisGrid(axis, size, tile, pad, (-left,), ((0, size),), (left,))
    if not 0 <= overlap < region:
        raise TilingError(
            f"axis {axis}: blending overlap {overlap} must be at least 0 and smaller than the valid region "
            f"{region} of a {tile} tile with padding {pad}"
        )
    stride = region - overlap
    count = 1 + math.ceil((size - region) / stride)
    valid_starts = [k * stride for k in range(count - 1)] + [size - region]
    return AxisGrid(
        axis,
        size,
        tile,
        pad,
        tuple(s - pad for s in valid_starts),
        tuple((s, s + region) for s in valid_starts),
        (pad,) * count,
    )


def unpadded_grid(size: int, tile: int, pad: int, *, align: int = 1, axis: str = "?") -> AxisGrid:
    """Tiles inside the image, none padded: the zoo's convention, tiled.

    The first tile starts at the image's first pixel and the last one ends at its last, so the image border
    is seen as a one-pass run sees it (no mirrored pixels); neighbours overlap by at least ``2 * pad`` and
    each writes up to the middle of the overlap, so every written pixel lies at least ``pad`` pixels inside
    its tile. Tile starts are multiples of ``align`` (a U-Net's pooling grid, its ``step``) wherever the
    last one allows: then a network that pools gives what one pass gives, seam pixels included, when its
    receptive radius is within ``pad``. A ``tile`` at least as large as the image is the image as it is.

    Examples
    --------
    >>> g = unpadded_grid(100, tile=48, pad=8, align=8)
    >>> g.starts, g.write, g.read
    ((0, 32, 52), ((0, 40), (40, 66), (66, 100)), (0, 8, 14))
    >>> unpadded_grid(40, tile=64, pad=8).write
    ((0, 40),)
    """
    if tile >= size:
        return AxisGrid(axis, size, size, pad, (0,), ((0, size),), (0,))
    region = _valid_region(size, tile, pad, axis)
    stride = region // align * align if region >= align else region
    last = size - tile
    starts = [*range(0, last, stride), last]
    bounds = [0, *((starts[k] + starts[k + 1] + tile) // 2 for k in range(len(starts) - 1)), size]
    write = tuple((bounds[k], bounds[k + 1]) for k in range(len(starts)))
    read = tuple(bounds[k] - starts[k] for k in range(len(starts)))
    return AxisGrid(axis, size, tile, pad, tuple(starts), write, read)


def single_pass_grid(size: int, tile: int, pad: int = 0, *, axis: str = "?") -> AxisGrid:
    """One tile holding the whole image, mirrored up to ``tile`` and centred (``ceil`` of the margin left).

    Used for models that cannot be tiled; ``tile`` must be at least ``size``.
    """
    if tile < size:
        raise TilingError(f"axis {axis}: a single tile of {tile} cannot hold the image size {size}")
    left = math.ceil((tile - size) / 2)
    return AxisGrid(axis, size, tile, pad, (-left,), ((0, size),), (left,))


def mirror_indices(start: int, length: int, size: int) -> np.ndarray:
    """Image indices for positions ``start .. start+length-1``, mirrored without repeating the edge pixel.

    The reflection has period ``2*size - 2`` (``... 2 1 | 0 1 2 ... n-1 | n-2 ...``), so windows reaching
    more than one image size past a border keep reflecting, as deepImageJ's ``CompactMirroring`` does.

    Examples
    --------
    >>> mirror_indices(-3, 10, 5).tolist()
    [3, 2, 1, 0, 1, 2, 3, 4, 3, 2]
    """
    positions = np.arange(start, start + length)
    if size == 1:
        return np.zeros(length, dtype=np.intp)
    period = 2 * size - 2
    folded = np.mod(positions, period)
    return np.where(folded < size, folded, period - folded).astype(np.intp)


def blend_ramp(length: int, left_overlap: int, right_overlap: int) -> np.ndarray:
    """Weights over a tile's written range: linear ramps across the parts shared with its neighbours.

    Two neighbours' ramps over a shared run of ``L`` pixels are ``(m + 0.5)/L`` and ``(L - m - 0.5)/L``:
    they add up to 1, so blended seams keep the intensity. Weights never reach 0.

    Examples
    --------
    >>> blend_ramp(6, 0, 4).tolist()
    [1.0, 1.0, 0.875, 0.625, 0.375, 0.125]
    """
    j = np.arange(length, dtype=np.float64)
    weights = np.ones(length)
    if left_overlap > 0:
        weights = np.minimum(weights, (j + 0.5) / left_overlap)
    if right_overlap > 0:
        weights = np.minimum(weights, (length - j - 0.5) / right_overlap)
    return weights
