"""The colours of the lookup tables Fiji ships as ``luts/*.lut`` files, made here from well-kept colour maps.

Plain ImageJ 1.x has only its built-in tables (Fire, Grays, Ice, Spectrum...). Macros written in Fiji apply
others by name, mostly for display (``run("glasbey_on_dark")`` on a label image, ``run("royal")``), so deepij
serves those names (:mod:`deepij.imagej.luts`) with tables it builds itself, never from Fiji's files:

======================  ==================================================================================
name                    made from
======================  ==================================================================================
``glasbey``             white for 0, then colorcet's ``glasbey`` (distinct colours, for a light background)
``glasbey_on_dark``     black for 0, then colorcet's ``glasbey_light`` (distinct colours seen on black)
``glasbey_inverted``    black for 0, then colorcet's ``glasbey`` with its colours inverted
``mpl-viridis`` ...     matplotlib's ``viridis``, ``magma``, ``inferno``, ``plasma``, ``cividis`` (the same
                        maps Fiji's ``mpl-*`` tables hold)
``royal``               colorcet's ``bmy`` (blue - magenta - yellow), standing in for Fiji's table
``16_colors``           16 bands of 16 entries: black, 14 colours of colorcet's ``rainbow4``, white
``Thermal``             colorcet's ``fire`` (black - red - yellow - white), standing in for Fiji's table
``phase``               colorcet's ``colorwheel`` (cyclic), standing in for Fiji's table
``Red Hot`` ...         black -> the colour -> white, linear (``Red``, ``Orange``, ``Yellow``, ``Cyan``,
                        ``Magenta Hot``)
``HiLo``                grays with 0 blue and 255 red (what the name promises: low and high values marked)
``cool``                cyan -> magenta, linear
======================  ==================================================================================

Only the glasbey tables, ``mpl-*`` and the formula-made ones match Fiji's in purpose and look; ``royal``,
``16_colors``, ``Thermal`` and ``phase`` are deepij's stand-ins of the same kind (a display line keeps
working, its colours are close, not identical). colorcet is deepij's ``luts`` extra, matplotlib its
``plot`` extra; :func:`lut_colours` raises :class:`~deepij.errors.ExtraMissingError` without them.

Examples
--------
>>> table = lut_colours("HiLo")
>>> table.shape, table[0].tolist(), table[128].tolist(), table[255].tolist()
((256, 3), [0, 0, 255], [128, 128, 128], [255, 0, 0])
>>> bands = lut_colours("16_colors")
>>> bands[15].tolist(), bands[255].tolist(), len(np.unique(bands, axis=0))
([0, 0, 0], [255, 255, 255], 16)
>>> "glasbey_on_dark" in LUT_NAMES
True
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from deepij.errors import ArgumentError, ExtraMissingError

Table = np.ndarray
"""A lookup table: ``(256, 3)`` uint8, red, green, blue per entry."""


def _colorcet_palette(name: str) -> list[str]:
    try:
        import colorcet
    except ImportError as error:
        raise ExtraMissingError(
            f"the lookup table made from colorcet's {name!r} needs the 'colorcet' package ({error}); "
            "install deepij's 'luts' extra: pip install 'deepij[luts]'"
        ) from error
    return list(colorcet.palette[name])


def _hex_table(colours: list[str]) -> Table:
    return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colours], np.uint8)


def _sampled(colours: Table, count: int = 256) -> Table:
    """``count`` entries spread evenly over a colour map of any length (linear interpolation)."""
    positions = np.linspace(0, len(colours) - 1, count)
    channels = [np.interp(positions, np.arange(len(colours)), colours[:, k]) for k in range(3)]
    return np.rint(np.stack(channels, axis=1)).astype(np.uint8)


def _glasbey(palette: str, first: tuple[int, int, int], *, inverted: bool = False) -> Table:
    colours = _hex_table(_colorcet_palette(palette))[:255]
    if inverted:
        colours = 255 - colours
    return np.concatenate([np.array([first], np.uint8), colours])


def _colorcet_map(name: str) -> Table:
    return _sampled(_hex_table(_colorcet_palette(name)))


def _matplotlib_map(name: str) -> Table:
    try:
        from matplotlib import colormaps
    except ImportError as error:
        raise ExtraMissingError(
            f"the lookup table made from matplotlib's {name!r} needs the 'matplotlib' package ({error}); "
            "install deepij's 'plot' extra: pip install 'deepij[plot]'"
        ) from error
    rgba = colormaps[name](np.linspace(0.0, 1.0, 256))
    return np.rint(rgba[:, :3] * 255).astype(np.uint8)


def _bands() -> Table:
    """16 flat bands: black, 14 rainbow colours, white."""
    rainbow = _hex_table(_colorcet_palette("rainbow4"))
    colours = np.concatenate([[(0, 0, 0)], _sampled(rainbow, 14), [(255, 255, 255)]]).astype(np.uint8)
    return np.repeat(colours, 16, axis=0)


def _hot(colour: tuple[int, int, int]) -> Table:
    """Black -> ``colour`` over the first half, ``colour`` -> white over the second."""
    ramp = np.linspace(0.0, 1.0, 128)[:, None]
    target = np.array(colour, np.float64)[None, :]
    low = ramp * target
    high = target + ramp * (255.0 - target)
    return np.rint(np.concatenate([low, high])).astype(np.uint8)


def _hilo() -> Table:
    grays = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    grays[0] = (0, 0, 255)
    grays[255] = (255, 0, 0)
    return grays


def _cool() -> Table:
    ramp = np.arange(256, dtype=np.float64)
    return np.stack([ramp, 255 - ramp, np.full(256, 255.0)], axis=1).astype(np.uint8)


_MAKERS: dict[str, Callable[[], Table]] = {
    "glasbey": lambda: _glasbey("glasbey", (255, 255, 255)),
    "glasbey_on_dark": lambda: _glasbey("glasbey_light", (0, 0, 0)),
    "glasbey_inverted": lambda: _glasbey("glasbey", (0, 0, 0), inverted=True),
    **{f"mpl-{n}": partial(_matplotlib_map, n) for n in ("viridis", "magma", "inferno", "plasma", "cividis")},
    "royal": lambda: _colorcet_map("bmy"),
    "16_colors": _bands,
    "Thermal": lambda: _colorcet_map("fire"),
    "phase": lambda: _colorcet_map("colorwheel"),
    "Red Hot": lambda: _hot((255, 0, 0)),
    "Orange Hot": lambda: _hot((255, 128, 0)),
    "Yellow Hot": lambda: _hot((255, 255, 0)),
    "Cyan Hot": lambda: _hot((0, 255, 255)),
    "Magenta Hot": lambda: _hot((255, 0, 255)),
    "HiLo": _hilo,
    "cool": _cool,
}

#: The lookup table names deepij serves as commands, in Fiji's spelling.
LUT_NAMES: tuple[str, ...] = tuple(_MAKERS)

#: The table deepij gives label images (0 black, then distinct colours).
LABEL_LUT = "glasbey_on_dark"


def lut_colours(name: str) -> Table:
    """The ``(256, 3)`` uint8 colours of the lookup table ``name`` (one of :data:`LUT_NAMES`).

    Raises
    ------
    ArgumentError
        An unknown name (the message lists the known ones).
    ExtraMissingError
        The package the table is made from is not installed (colorcet, matplotlib).
    """
    maker = _MAKERS.get(name)
    if maker is None:
        raise ArgumentError(f"lookup table {name!r}: unknown; expected one of {', '.join(LUT_NAMES)}")
    return maker()
