"""``deepij.validate(reference, test)``: how close a model's outputs are to a reference, in numbers.

It measures what deepImageJ's *DeepImageJ Validate* measures (:mod:`deepij.trust.metrics` for images,
:mod:`deepij.trust.label_metrics` for label images) on arrays, files or folders of pairs matched by name
(:mod:`deepij.trust.validation_pairs`), and gives a table with one row per image pair (or per plane of a
stack, ``per_slice=True``, as deepImageJ lists them), which saves as CSV and JSON, shows in ImageJ as a
ResultsTable (``run("DeepImageJ Validate", ...)``), and draws as PNG figures a person looks at.

Examples
--------
>>> rng = np.random.default_rng(1)
>>> truth = rng.random((64, 64))
>>> result = validate(truth, truth + rng.normal(0, 0.05, truth.shape), metrics=["RMSE", "PSNR", "SSIM"])
>>> result.table.round(2)
   reference  test  RMSE   PSNR  SSIM
0  reference  test  0.05  26.09  0.99
>>> labels = validate(np.array([[0, 1, 1]]), np.array([[0, 1, 0]]), metrics="labels")
>>> labels.table[["Dice", "TP", "FN", "F1"]]
       Dice  TP  FN   F1
0  0.666667   1   0  1.0
>>> result.save("validation/")  # doctest: +SKIP
[PosixPath('validation/validation.csv'), PosixPath('validation/validation.json')]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepij.errors import ArgumentError, ArgumentTypeError, InputError
from deepij.trust.label_metrics import LABEL_METRICS, as_labels, label_metrics
from deepij.trust.metrics import IMAGE_METRICS, image_metrics
from deepij.trust.validation_pairs import ImagePair, image_pairs

METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "images": tuple(IMAGE_METRICS),
    "labels": LABEL_METRICS,
    "all": tuple(IMAGE_METRICS) + LABEL_METRICS,
}
"""Names that stand for several metrics in ``metrics=``."""

_BY_LOWER = {name.lower(): name for name in (*IMAGE_METRICS, *LABEL_METRICS)}
_BY_LOWER |= {"bce": "BCE", "squared_hinge": "Square_Hinge", "logcosh": "Log_Cosh", "iou": "Jaccard"}


def metric_names(metrics: str | Sequence[str] | None) -> list[str]:
    """The metric columns ``metrics=`` asks for, in the order given (a group expands in place).

    Names are case-insensitive (``ssim``, ``normL2``); groups are ``"images"`` (the default),
    ``"labels"`` and ``"all"`` (:data:`METRIC_GROUPS`).

    Examples
    --------
    >>> metric_names(["ssim", "psnr"])
    ['SSIM', 'PSNR']
    >>> metric_names("labels")[:4]
    ['Dice', 'Jaccard', 'Dice_mean', 'Jaccard_mean']
    """
    if metrics is None:
        return list(METRIC_GROUPS["images"])
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, Sequence) or not all(isinstance(m, str) for m in metrics):
        raise ArgumentTypeError(f"metrics: expected metric names or a group name, found {metrics!r}")
    names: list[str] = []
    for given in metrics:
        key = given.strip().lower()
        if key in METRIC_GROUPS:
            found: Sequence[str] = METRIC_GROUPS[key]
        elif key in _BY_LOWER:
            found = [_BY_LOWER[key]]
        else:
            raise ArgumentError(
                f"metrics: unknown metric {given!r} (expected {', '.join(METRIC_GROUPS)} or some of "
                f"{', '.join((*IMAGE_METRICS, *LABEL_METRICS))})"
            )
        names += [n for n in found if n not in names]
    if not names:
        raise ArgumentError("metrics: an empty list (expected at least one metric name)")
    return names


@dataclass
class Validation:
    """The outcome of :func:`validate`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per image pair (per plane with ``per_slice``): ``reference``, ``test`` (file names),
        ``slice`` (1-based, with ``per_slice``), then one column per metric. NaN where a metric is undefined
        for that pair (see :attr:`notes`).
    per_label : pandas.DataFrame
        With label metrics: each label's ``Dice``, ``Jaccard`` and pixel counts, per pair (empty otherwise).
    notes : list of str
        Why a value is NaN (values outside a metric's domain, images smaller than SSIM's window).
    pairs : list of ImagePair
        What was compared (files are read again for :meth:`figure`).
    metrics : list of str
        The metric columns of :attr:`table`, in order.
    pair_rows : list of range
        The rows of :attr:`table` of each pair (several with ``per_slice``).
    """

    table: pd.DataFrame
    per_label: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    pairs: list[ImagePair] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    pair_rows: list[range] = field(default_factory=list, repr=False)

    def to_csv(self, path: str | Path) -> Path:
        """Write :attr:`table` as CSV (``inf`` as ``inf``, NaN as an empty cell), atomically."""
        from deepij.files import write_atomically

        target = Path(path)
        return write_atomically(target, self.table.to_csv(index=False).encode())

    def records(self) -> list[dict[str, Any]]:
        """The rows of :attr:`table` as JSON-ready dicts (NaN ``None``, infinities ``"inf"``/``"-inf"``).

        Examples
        --------
        >>> validate(np.ones((2, 2)), np.ones((2, 2)), metrics=["RMSE", "SNR"]).records()
        [{'reference': 'reference', 'test': 'test', 'RMSE': 0.0, 'SNR': 'inf'}]
        """
        return _records(self.table)

    def to_json(self, path: str | Path) -> Path:
        """Write ``{"metrics": [...rows], "per_label": [...rows], "notes": [...]}`` atomically.

        NaN is ``null``; infinities are the strings ``"inf"`` and ``"-inf"`` (JSON has no number for them).
        """
        from deepij.files import write_atomically

        document = {
            "metrics": _records(self.table),
            "per_label": _records(self.per_label),
            "notes": list(self.notes),
        }
        return write_atomically(Path(path), (json.dumps(document, indent=2) + "\n").encode())

    def save(self, folder: str | Path) -> list[Path]:
        """``validation.csv`` and ``validation.json`` (and ``validation_labels.csv`` with label metrics) in
        ``folder`` (created)."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        written = [self.to_csv(target / "validation.csv"), self.to_json(target / "validation.json")]
        if not self.per_label.empty:
            from deepij.files import write_atomically

            csv = self.per_label.to_csv(index=False).encode()
            written.append(write_atomically(target / "validation_labels.csv", csv))
        return written

    def figure(self, path: str | Path, pair: int | str = 0) -> Path:
        """Draw one pair (by index or name) as a PNG: reference, test, difference, metric values.

        Examples
        --------
        >>> result.figure("cells_01.png", pair="cells_01")  # doctest: +SKIP
        PosixPath('cells_01.png')
        """
        chosen = self._pair(pair)
        reference, test = chosen.load()
        rows = self.table.iloc[list(self.pair_rows[self.pairs.index(chosen)])]
        values = {name: float(rows[name].astype(float).mean()) for name in self.metrics}
        return _draw(chosen, reference, test, values, self.metrics, Path(path))

    def _pair(self, pair: int | str) -> ImagePair:
        if isinstance(pair, str):
            for candidate in self.pairs:
                if candidate.name == pair:
                    return candidate
            raise ArgumentError(f"pair: no pair named {pair!r} (expected one of "
                                f"{', '.join(p.name for p in self.pairs)})")
        if isinstance(pair, bool) or not isinstance(pair, int):
            raise ArgumentTypeError(f"pair: expected an index or a name, found {type(pair).__name__}")
        if not -len(self.pairs) <= pair < len(self.pairs):
            raise ArgumentError(f"pair: index {pair} out of range (there are {len(self.pairs)} pairs)")
        return self.pairs[pair]

    def __repr__(self) -> str:
        return f"Validation of {len(self.pairs)} pair(s)\n{self.table.to_string()}"


def validate(
    reference: Any,
    test: Any,
    *,
    metrics: str | Sequence[str] | None = None,
    per_slice: bool = False,
    data_range: float | None = None,
    iou_threshold: float = 0.5,
    test_suffix: str = "",
    figures: str | Path | None = None,
) -> Validation:
    """Measure test images against reference images with deepImageJ Validate's metrics.

    Parameters
    ----------
    reference, test : array, xarray, str or Path
        Two images (numpy/xarray), two image files (TIFF, ``.npy``...), or two folders whose images are
        paired by name (see :mod:`deepij.trust.validation_pairs`). 2-D images or 3-D stacks.
    metrics : str or sequence of str, optional
        Metric names and groups (:func:`metric_names`): default ``"images"``, every image metric;
        ``"labels"`` for label images (Dice, Jaccard, matched objects); ``"all"``.
    per_slice : bool
        One row per plane of a 3-D stack (its first axis), each measured in 2-D, as deepImageJ lists stacks;
        by default a stack is measured as one 3-D image.
    data_range : float, optional
        The intensity range for PSNR's peak and SSIM (default: from the reference, see
        :func:`~deepij.trust.metrics.psnr` and :func:`~deepij.trust.metrics.ssim`).
    iou_threshold : float
        The IoU that makes two objects a match (default 0.5, as StarDist).
    test_suffix : str
        For folders: a test image's name is the reference's plus this (e.g. ``"_output"``).
    figures : str or Path, optional
        A folder to draw one PNG per pair into (``<pair name>.png``; needs matplotlib).

    Returns
    -------
    Validation
        ``.table`` (a DataFrame, one row per pair), ``.per_label``, ``.notes``; ``.save(folder)``,
        ``.to_csv``, ``.to_json``, ``.figure``.

    Raises
    ------
    ArgumentError
        Unknown metrics, paths that do not exist, empty folders, images without a partner of the same name.
    InputError
        Images whose shapes differ, that are not 2-D or 3-D, hold NaN, or label images that are not integer
        (the message names the files).
    """
    names = metric_names(metrics)
    if not isinstance(per_slice, bool):
        raise ArgumentTypeError(f"per_slice: expected True or False, found {per_slice!r}")
    pairs = image_pairs(reference, test, test_suffix=test_suffix)
    wanted_images = [n for n in names if n in IMAGE_METRICS]
    wanted_labels = any(n in LABEL_METRICS for n in names)
    figure_folder = None if figures is None else Path(figures)
    if figure_folder is not None:
        figure_folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    pair_rows: list[range] = []
    label_rows: list[pd.DataFrame] = []
    notes: list[str] = []
    for pair in pairs:
        reference_image, test_image = pair.load()
        first_row = len(rows)
        for plane, s, g in _planes(reference_image, test_image, per_slice):
            keys: dict[str, Any] = {"reference": pair.reference_label, "test": pair.test_label}
            if per_slice:
                keys["slice"] = plane
            where = pair.describe() + (f", slice {plane}" if per_slice else "")
            values: dict[str, float] = {}
            try:
                if wanted_images:
                    image_values, problems = image_metrics(s, g, wanted_images, data_range)
                    values |= image_values
                    notes += [f"{where}: {problem}" for problem in problems]
                if wanted_labels:
                    label_values, per_label = label_metrics(s, g, iou_threshold)
                    values |= label_values
                    label_rows.append(per_label.assign(**keys)[[*keys, *per_label.columns]])
            except InputError as error:
                raise InputError(f"{where}: {error}") from None
            rows.append({**keys, **{name: values[name] for name in names}})
        pair_rows.append(range(first_row, len(rows)))
        if figure_folder is not None:
            shown = _mean_of(rows[first_row:], names)
            _draw(pair, reference_image, test_image, shown, names, figure_folder / f"{pair.name}.png")
    columns = ["reference", "test", *(["slice"] if per_slice else []), *names]
    table = pd.DataFrame(rows, columns=columns)
    per_label_table = pd.concat(label_rows, ignore_index=True) if label_rows else pd.DataFrame()
    return Validation(table=table, per_label=per_label_table, notes=notes, pairs=pairs, metrics=names,
                      pair_rows=pair_rows)


_KEYS = ("reference", "test", "slice")


def _planes(reference: np.ndarray, test: np.ndarray,
            per_slice: bool) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(plane number from 1, reference, test)``: each plane of a stack with ``per_slice``, else all."""
    if per_slice and reference.ndim == 3:
        for plane in range(reference.shape[0]):
            yield plane + 1, reference[plane], test[plane]
    else:
        yield 1, reference, test


def _mean_of(rows: list[dict[str, Any]], names: list[str]) -> dict[str, float]:
    return {name: float(np.mean([float(r[name]) for r in rows])) for name in names}


def _draw(pair: ImagePair, reference: np.ndarray, test: np.ndarray, values: dict[str, float],
          names: list[str], path: Path) -> Path:
    from deepij.trust.figures import validation_figure

    labels = any(n in LABEL_METRICS for n in names) and not any(n in IMAGE_METRICS for n in names)
    if labels:
        reference, test = as_labels(reference, "reference"), as_labels(test, "test")
    return validation_figure(reference, test, values, path, title=pair.name,
                             names=(pair.reference_label, pair.test_label), labels=labels)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value
