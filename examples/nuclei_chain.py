"""The demo bundle run on an image by chaining deepij's pieces by hand, and the figure of a result.

:func:`segment` does what deepImageJ does with the bundle, one piece at a time: the pre-processing macro in
ImageJ (``deepij.run_macro``), the network without any processing of its own
(``model.predict(..., processing="none")``), the post-processing macro in ImageJ. It makes the bundle's
expected result (``make_expected.py``) and runs the demo (``demo.py``). deepij's pipeline,
``model.predict(path, processing="auto")``, runs the same steps from the descriptor and must give the same
result; the object returned here has the attributes its result has (``.images``, ``.tables``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PREPROCESSING = "per_sample_scale_range.ijm"
POSTPROCESSING = "threshold_watershed_count.ijm"
WEIGHTS = "torchscript"


@dataclass
class ChainedPrediction:
    """What :func:`segment` found.

    Attributes
    ----------
    images : dict of str to xarray.DataArray
        ``"probability"`` (the network's output, ``(b, c, y, x)``) and ``"labels"`` (one grey value per
        nucleus, ``(row, col)``, uint16).
    tables : dict of str to pandas.DataFrame
        ``"Results"``: Area, Mean (mean probability) and centroid X, Y of each nucleus, in pixels.
    seconds : float
        How long the three steps took.
    log : str
        What the macros printed.
    notes : list of str
        What the network run decided (its ``Prediction.notes``), then the macros' log lines.
    """

    images: dict[str, Any]
    tables: dict[str, Any]
    seconds: float
    log: str = ""
    notes: list[str] = field(default_factory=list)


def read_image(path: str | Path) -> np.ndarray:
    """The image of a TIFF file as a 2-D array (as ImageJ opens it: the first plane)."""
    import tifffile

    image = tifffile.imread(path)
    return image if image.ndim == 2 else image.reshape(-1, *image.shape[-2:])[0]


def segment(model: Any, image: str | Path | np.ndarray, weights_format: str = WEIGHTS) -> ChainedPrediction:
    """Run the bundle's pre-processing macro, its network and its post-processing macro on an image.

    Parameters
    ----------
    model : deepij.Model
        The demo bundle, from ``deepij.load``.
    image : str, Path or ndarray
        A TIFF file, or the image itself (2-D).
    weights_format : str
        Which of the bundle's weights run the network.

    Returns
    -------
    ChainedPrediction

    Examples
    --------
    >>> result = segment(deepij.load("examples/nuclei_bundle"), "examples/nuclei_bundle/exampleImage.tif")
    ... # doctest: +SKIP
    >>> len(result.tables["Results"])  # doctest: +SKIP
    67
    """
    import deepij

    pixels = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
    folder = Path(model.description.root)
    started = time.perf_counter()
    normalised = deepij.run_macro(folder / PREPROCESSING, pixels)
    # tile="image": one pass over the whole image as it is (512 x 512 is a valid input size), as the zoo's
    # tools and deepij's default run an image that fits
    network = model.predict(np.asarray(normalised.image)[None, None], processing="none", tile="image",
                            weights_format=weights_format)
    probability = network.images["probability"]
    post = deepij.run_macro(folder / POSTPROCESSING, np.asarray(probability.isel(b=0, c=0)))
    seconds = time.perf_counter() - started
    return ChainedPrediction(
        images={"probability": probability, "labels": post.images["labels"]},
        tables={"Results": post.tables["Results"]},
        seconds=seconds,
        log=normalised.log + post.log,
        notes=[*network.notes, *(f"ImageJ log: {line}" for line in (normalised.log + post.log).splitlines())],
    )


def save_figure(path: str | Path, panels: dict[str, np.ndarray], *, title: str = "",
                width: float = 4.0, height: float | None = None, dpi: int = 80) -> Path:
    """Images side by side as a PNG: grey for intensities, a colour per object for a labels image.

    A panel whose name contains "labels" is drawn with one colour per label (background black), one named
    "probability" on a fixed 0-1 scale, others in grey from their 1 % to their 99.8 % percentile.
    ``width`` and ``height`` are inches per panel and of the figure (default: room for the panel titles).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    from matplotlib import pyplot as plt

    size = (width * len(panels), height or width + (0.7 if title else 0.4))
    figure, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    for ax, (name, pixels) in zip(axes[0], panels.items(), strict=True):
        pixels = np.asarray(pixels)
        if "labels" in name:
            ax.imshow(_label_colours(pixels), interpolation="nearest")
        elif "probability" in name:
            ax.imshow(pixels, cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            low, high = np.percentile(pixels, (1, 99.8))
            ax.imshow(pixels, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(name, fontsize=11)
        ax.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=12)
    figure.tight_layout(rect=(0.0, 0.0, 1.0, 0.93) if title else None)
    path = Path(path)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def _label_colours(labels: np.ndarray) -> np.ndarray:
    """An RGB image with a fixed pseudo-random colour per label and black background."""
    palette = np.random.default_rng(0).uniform(0.25, 1.0, (int(labels.max()) + 1, 3))
    palette[0] = 0.0
    return palette[labels.astype(np.int64)]
