"""The PNG figure of one validated pair: reference, test, their difference, and the metric values.

Drawn with matplotlib's Agg canvas directly (no pyplot, no global backend switch), so it works on servers
without a display and from any thread. A 3-D stack shows its middle plane.

- intensity images: reference and test in the same grey scale (the reference's 0.5-99.5 percentiles), so
  what differs looks different; the difference ``test - reference`` in a blue-white-red scale symmetric
  about 0;
- label images: each label in its own colour (0 black); the difference map colours agreement (grey),
  reference-only pixels (missed, magenta), test-only pixels (extra, green) and pixels both label but
  differently (orange).

Examples
--------
>>> import tempfile
>>> truth = np.random.default_rng(0).random((32, 32))
>>> png = validation_figure(truth, truth + 0.05, {"SSIM": 0.93}, Path(tempfile.mkdtemp()) / "pair.png")
>>> png.name, png.read_bytes()[:4]
('pair.png', b'\x89PNG')
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from deepij.errors import ArgumentError

LINES_PER_COLUMN = 18
_AGREEMENT = {
    "background": (0.0, 0.0, 0.0),
    "same label": (0.62, 0.62, 0.62),
    "reference only (missed)": (0.85, 0.1, 0.75),
    "test only (extra)": (0.15, 0.8, 0.2),
    "different labels": (1.0, 0.55, 0.0),
}


def validation_figure(reference: np.ndarray, test: np.ndarray, values: dict[str, float], path: Path, *,
                      title: str = "", names: tuple[str, str] = ("reference", "test"),
                      labels: bool = False) -> Path:
    """Draw the figure (see the module docstring) and write it to ``path`` as PNG, atomically.

    Parameters
    ----------
    reference, test : numpy.ndarray
        2-D images or 3-D stacks of the same shape.
    values : dict
        Metric name -> value, listed in the last panel in this order.
    path : Path
        The PNG file to write (its folder must exist).
    title : str
        The figure's title (the pair's name).
    names : (str, str)
        How the reference and test panels are titled (their file names).
    labels : bool
        Draw label images (colours per label, an agreement map) instead of intensities.

    Raises
    ------
    ArgumentError
        matplotlib is not installed (``pip install matplotlib``, or deepij's ``plot`` extra).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ArgumentError("figures: drawing needs matplotlib (pip install matplotlib)") from None
    from deepij.files import write_atomically

    s, g, where = _shown_plane(reference), _shown_plane(test), _plane_note(reference)
    columns = max(1, math.ceil(len(values) / LINES_PER_COLUMN))
    figure = Figure(figsize=(12.0 + 2.4 * columns, 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    widths = [1.0, 1.0, 1.0, 0.55 * columns]
    axes = figure.subplots(1, 4, gridspec_kw={"width_ratios": widths})
    if labels:
        _draw_labels(figure, axes, s, g, names, where)
    else:
        _draw_intensities(figure, axes, s, g, names, where)
    _draw_values(axes[3], values, columns)
    if title:
        figure.suptitle(title, fontsize=12)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return write_atomically(Path(path), buffer.getvalue())


def _shown_plane(image: np.ndarray) -> np.ndarray:
    return image[image.shape[0] // 2] if image.ndim == 3 else image


def _plane_note(image: np.ndarray) -> str:
    return f" (plane {image.shape[0] // 2 + 1} of {image.shape[0]})" if image.ndim == 3 else ""


def _draw_intensities(figure: Any, axes: Any, s: np.ndarray, g: np.ndarray, names: tuple[str, str],
                      where: str) -> None:
    s = s.astype(np.float64)
    g = g.astype(np.float64)
    low, high = np.percentile(s, [0.5, 99.5])
    if high <= low:
        low, high = float(min(s.min(), g.min())), float(max(s.max(), g.max()))
        high = high if high > low else low + 1.0
    for axis, image, name in ((axes[0], s, names[0]), (axes[1], g, names[1])):
        shown = axis.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        figure.colorbar(shown, ax=axis, shrink=0.8)
        _frame(axis, f"{name}{where}")
    difference = g - s
    limit = float(np.percentile(np.abs(difference), 99.5)) or float(np.abs(difference).max()) or 1.0
    shown = axes[2].imshow(difference, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    figure.colorbar(shown, ax=axes[2], shrink=0.8)
    _frame(axes[2], "test - reference")


def _draw_labels(figure: Any, axes: Any, s: np.ndarray, g: np.ndarray, names: tuple[str, str],
                 where: str) -> None:
    from matplotlib.patches import Patch

    for axis, image, name in ((axes[0], s, names[0]), (axes[1], g, names[1])):
        axis.imshow(_label_colours(image), interpolation="nearest")
        _frame(axis, f"{name}{where}: {len(np.unique(image[image > 0]))} labels")
    agreement = np.zeros((*s.shape, 3))
    masks = {
        "same label": (s > 0) & (s == g),
        "reference only (missed)": (s > 0) & (g == 0),
        "test only (extra)": (s == 0) & (g > 0),
        "different labels": (s > 0) & (g > 0) & (s != g),
    }
    for kind, mask in masks.items():
        agreement[mask] = _AGREEMENT[kind]
    axes[2].imshow(agreement, interpolation="nearest")
    _frame(axes[2], "agreement")
    handles = [Patch(color=_AGREEMENT[kind], label=kind) for kind in masks]
    axes[2].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=7,
                   frameon=False)


def _label_colours(image: np.ndarray) -> np.ndarray:
    """Each label in one of 18 distinct colours (neighbouring ids differ), the background black."""
    from matplotlib import colormaps

    # tab20 without its two greys, which the agreement map uses for "same label"
    palette = np.delete(colormaps["tab20"](np.arange(20))[:, :3], [14, 15], axis=0)
    # a multiplier coprime with 18 spreads consecutive labels over the palette
    colours = palette[(image.astype(np.int64) * 7) % len(palette)]
    colours[image == 0] = 0.0
    return colours


def _draw_values(axis: Any, values: dict[str, float], columns: int) -> None:
    axis.axis("off")
    items = list(values.items())
    for column in range(columns):
        chunk = items[column * LINES_PER_COLUMN:(column + 1) * LINES_PER_COLUMN]
        text = "\n".join(f"{name:<19}{_format(value)}" for name, value in chunk)
        axis.text(column / columns, 1.0, text, va="top", ha="left", family="monospace", fontsize=9,
                  transform=axis.transAxes)
    axis.set_title("metrics", fontsize=10)


def _format(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e9:
        return f"{int(value)}"
    return f"{value:.4g}"


def _frame(axis: Any, title: str) -> None:
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
