"""``deepij.validate(reference, test)``: how close a model's outputs are to a reference, in numbers.

It measures what deepImageJ's *DeepImageJ Validate* measures (:mod:`deepij.trust.metrics` for images,
:mod:`deepij.trust.label_metrics` for label images) on arrays, files or folders of pairs matched by name
(:mod:`deepij.trust.validation_pairs`), and gives a table with one row per image pair (or per plane of a
stack, ``per_slice=True``, as deepImageJ lists them), which saves as CSV and JSON, shows in ImageJ as a
ResultsTable (``run("DeepImageJ Validate", ...)``), and draws as PNG figures a person looks at.

Images on different scales (a 0..255 reference against a 0..1 prediction) make every intensity metric
meaningless (SSIM near 0, a huge RMSE) without anything being wrong with the model. When the value ranges
of a pair differ by 10 times or more (:data:`~deepij.trust.validation_pairs.SCALE_RATIO`), the notes say so
and a ``note`` column gives the ranges on that pair's rows (CSV, JSON, ImageJ's table). Nothing is
rescaled: which image is off, and by how much (255? 65535? a normalisation?), is for the user to say.

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
>>> ramp = np.linspace(0.0, 1.0, 64 * 64).reshape(64, 64)
>>> scaled = validate(ramp * 255, ramp, metrics=["SSIM"])
>>> scaled.table.round(3)
   reference  test   SSIM                                        note
0  reference  test  0.006  scales differ: reference 0..255, test 0..1
>>> print(scaled.notes[0])  # doctest: +ELLIPSIS
reference and test arrays: the reference's values span 0 to 255, the test's 0 to 1 (255 times less)...
>>> import tempfile
>>> [p.name for p in result.save(Path(tempfile.mkdtemp()) / "validation")]
['validation.csv', 'validation.json']
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepij.errors import ArgumentError, ArgumentTypeError, InputError
from deepij.trust.label_metrics import LABEL_METRICS, as_labels, label_metrics
from deepij.trust.metrics import IMAGE_METRICS, image_metrics
from deepij.trust.validation_output import output_folder
from deepij.trust.validation_output import records as table_records
from deepij.trust.validation_pairs import ImagePair, image_pairs, scale_mismatch

METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "images": tuple(IMAGE_METRICS),
    "labels": LABEL_METRICS,
    "all": tuple(IMAGE_METRICS) + LABEL_METRICS,
}
"""Names that stand for several metrics in ``metrics=``."""

NOTE = "note"
"""The column that says, on a pair's rows, that its images are on different scales."""

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
        return table_records(self.table)

    def to_json(self, path: str | Path) -> Path:
        """Write ``{"metrics": [...rows], "per_label": [...rows], "notes": [...]}`` atomically.

        NaN is ``null``; infinities are the strings ``"inf"`` and ``"-inf"`` (JSON has no number for them).
        """
        from deepij.files import write_atomically

        document = {
            "metrics": table_records(self.table),
            "per_label": table_records(self.per_label),
            "notes": list(self.notes),
        }
        return write_atomically(Path(path), (json.dumps(document, indent=2) + "\n").encode())

    def save(self, folder: str | Path) -> list[Path]:
        """``validation.csv`` and ``validation.json`` (and ``validation_labels.csv`` with label metrics) in
        ``folder`` (created)."""
        target = output_folder(folder, "folder")
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
        >>> import tempfile
        >>> truth = np.random.default_rng(2).random((32, 32))
        >>> figure = validate(truth, truth + 0.01, metrics="SSIM").figure(Path(tempfile.mkdtemp()) / "a.png")
        >>> figure.name
        'a.png'
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
    figure_folder = None if figures is None else output_folder(figures, "figures")
    pairs = image_pairs(reference, test, test_suffix=test_suffix)
    measure = _Measure(names, per_slice, data_range, iou_threshold)
    rows: list[dict[str, Any]] = []
    pair_rows: list[range] = []
    label_rows: list[pd.DataFrame] = []
    notes: list[str] = []
    for pair in pairs:
        reference_image, test_image = pair.load()
        found, labelled, said = measure.pair(pair, reference_image, test_image)
        pair_rows.append(range(len(rows), len(rows) + len(found)))
        rows += found
        label_rows += labelled
        notes += said
        if figure_folder is not None:
            shown = _mean_of(found, names)
            _draw(pair, reference_image, test_image, shown, names, figure_folder / f"{pair.name}.png")
    columns = ["reference", "test", *(["slice"] if per_slice else []), *names]
    if any(NOTE in row for row in rows):
        columns.append(NOTE)
    table = pd.DataFrame(rows, columns=columns)
    per_label_table = pd.concat(label_rows, ignore_index=True) if label_rows else pd.DataFrame()
    return Validation(table=table, per_label=per_label_table, notes=notes, pairs=pairs, metrics=names,
                      pair_rows=pair_rows)


@dataclass(frozen=True)
class _Measure:
    """What :func:`validate` measures on each pair."""

    names: list[str]
    per_slice: bool
    data_range: float | None
    iou_threshold: float

    def pair(
        self, pair: ImagePair, reference: np.ndarray, test: np.ndarray
    ) -> tuple[list[dict[str, Any]], list[pd.DataFrame], list[str]]:
        """The pair's rows (one per plane with ``per_slice``), its per-label rows and its notes."""
        wanted_images = [n for n in self.names if n in IMAGE_METRICS]
        wanted_labels = any(n in LABEL_METRICS for n in self.names)
        scale = scale_mismatch(reference, test) if wanted_images else None
        notes = [f"{pair.describe()}: {scale[1]}"] if scale else []
        rows, label_rows = [], []
        for plane, s, g in _planes(reference, test, self.per_slice):
            keys: dict[str, Any] = {"reference": pair.reference_label, "test": pair.test_label}
            if self.per_slice:
                keys["slice"] = plane
            where = pair.describe() + (f", slice {plane}" if self.per_slice else "")
            values: dict[str, float] = {}
            try:
                if wanted_images:
                    image_values, problems = image_metrics(s, g, wanted_images, self.data_range)
                    values |= image_values
                    notes += [f"{where}: {problem}" for problem in problems]
                if wanted_labels:
                    label_values, per_label = label_metrics(s, g, self.iou_threshold)
                    values |= label_values
                    label_rows.append(per_label.assign(**keys)[[*keys, *per_label.columns]])
            except InputError as error:
                raise InputError(f"{where}: {error}") from None
            row = {**keys, **{name: values[name] for name in self.names}}
            rows.append(row | ({NOTE: scale[0]} if scale else {}))
        return rows, label_rows, notes


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
