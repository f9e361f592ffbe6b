"""Metrics of label images: overlap per label (Dice, Jaccard) and matched objects (precision, recall, F1).

Label images hold non-negative integers; 0 is the background. Two readings of the same image:

- **classes** (semantic labels, a mask): :func:`label_overlap` gives each label's Dice and Jaccard, and
  :func:`overlap_scores` the global ones (every label's overlap counted together; for a binary mask the
  usual Dice and Jaccard) and their mean over labels, as deepImageJ's Validate lists them;
- **objects** (instance labels): :func:`match_objects` pairs reference and test objects by intersection over
  union (IoU), one to one, with the Hungarian assignment (``scipy.optimize.linear_sum_assignment``) that
  makes the most pairs at or above the threshold, and reports what StarDist's ``matching`` reports: TP, FP,
  FN, precision ``TP / (TP + FP)``, recall ``TP / (TP + FN)``, F1 ``2 TP / (2 TP + FP + FN)``, accuracy
  ``TP / (TP + FP + FN)`` and the mean IoU of the matched pairs.

Examples
--------
>>> reference = np.array([[1, 1, 0, 2, 2]])
>>> test = np.array([[1, 1, 1, 2, 0]])
>>> scores = overlap_scores(reference, test)
>>> round(scores["Dice"], 4), round(scores["Dice_mean"], 4)
(0.75, 0.7333)
>>> match_objects(reference, test)["TP"], match_objects(reference, test)["F1"]
(2, 1.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from deepij.errors import ArgumentError, ArgumentTypeError, InputError

LABEL_METRICS = (
    "Dice", "Jaccard", "Dice_mean", "Jaccard_mean",
    "N_reference", "N_test", "TP", "FP", "FN", "Precision", "Recall", "F1", "Accuracy", "Mean_matched_IoU",
)
"""The columns label metrics add to a validation table, in order."""


def as_labels(image: Any, argument: str = "labels") -> np.ndarray:
    """An image as an array of non-negative integer labels (int64).

    Integer and boolean images pass; a float image passes when every value is a whole number (a label image
    saved as 32-bit by ImageJ).

    Raises
    ------
    InputError
        Values that are not whole numbers, negative, or not finite (the message names ``argument``).

    Examples
    --------
    >>> as_labels(np.array([[0.0, 2.0]]), "test").dtype
    dtype('int64')
    >>> as_labels(np.array([[0.0, 0.5]]), "test")
    Traceback (most recent call last):
    ...
    deepij.errors.InputError: test: a label image must hold whole numbers, found 0.5 (a float image of ...
    """
    array = np.asarray(getattr(image, "values", image))
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise ArgumentTypeError(f"{argument}: expected a label image of integers, found dtype {array.dtype}")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InputError(f"{argument}: a label image must hold whole numbers, found NaN or infinity")
        fractional = array[array != np.round(array)]
        if fractional.size:
            raise InputError(
                f"{argument}: a label image must hold whole numbers, found {fractional.flat[0]:g} (a float "
                "image of intensities or probabilities? expected labels 0, 1, 2, ... or a thresholded mask)"
            )
    labels = array.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise InputError(f"{argument}: a label image must not hold negative labels, found {labels.min()}")
    return labels


def _pair(reference: Any, test: Any) -> tuple[np.ndarray, np.ndarray]:
    s = as_labels(reference, "reference")
    g = as_labels(test, "test")
    if s.shape != g.shape:
        raise InputError(
            f"test: shape {g.shape} differs from the reference's {s.shape} (expected the same shape)"
        )
    return s, g


def label_overlap(reference: Any, test: Any) -> pd.DataFrame:
    """Dice and Jaccard of each label present in either image (0, the background, left out).

    Returns
    -------
    pandas.DataFrame
        One row per label: ``label``, ``Dice`` ``2 |R n T| / (|R| + |T|)``, ``Jaccard`` ``|R n T| / |R u T|``,
        ``reference_pixels``, ``test_pixels``, ``intersection``.

    Examples
    --------
    >>> label_overlap(np.array([[1, 1, 0, 2]]), np.array([[1, 0, 0, 2]]))
       label      Dice  Jaccard  reference_pixels  test_pixels  intersection
    0      1  0.666667      0.5                 2            1             1
    1      2  1.000000      1.0                 1            1             1
    """
    s, g = _pair(reference, test)
    labels = np.union1d(np.unique(s), np.unique(g))
    labels = labels[labels > 0]
    reference_pixels = _counts(s.ravel(), labels)
    test_pixels = _counts(g.ravel(), labels)
    same = s == g
    intersection = _counts(s[same], labels)
    union = reference_pixels + test_pixels - intersection
    return pd.DataFrame({
        "label": labels,
        "Dice": 2.0 * intersection / (reference_pixels + test_pixels),
        "Jaccard": intersection / union,
        "reference_pixels": reference_pixels,
        "test_pixels": test_pixels,
        "intersection": intersection,
    })


def _counts(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """How many of ``values`` equal each of ``labels`` (labels may be large ids: no bincount)."""
    found, counts = np.unique(values, return_counts=True)
    result = np.zeros(len(labels), np.int64)
    if found.size:
        at = np.searchsorted(found, labels).clip(max=len(found) - 1)
        hit = found[at] == labels
        result[hit] = counts[at[hit]]
    return result


def overlap_scores(reference: Any, test: Any, per_label: pd.DataFrame | None = None) -> dict[str, float]:
    """Global Dice and Jaccard (all labels' overlap counted together) and their mean over labels.

    NaN when neither image has a label (nothing to overlap). ``per_label`` reuses a
    :func:`label_overlap` table of the same pair.

    Examples
    --------
    >>> overlap_scores(np.array([[1, 1, 0]]), np.array([[1, 0, 0]]))
    {'Dice': 0.6666666666666666, 'Jaccard': 0.5, 'Dice_mean': 0.6666666666666666, 'Jaccard_mean': 0.5}
    """
    table = label_overlap(reference, test) if per_label is None else per_label
    if table.empty:
        return dict.fromkeys(("Dice", "Jaccard", "Dice_mean", "Jaccard_mean"), math.nan)
    intersection = float(table["intersection"].sum())
    sizes = float((table["reference_pixels"] + table["test_pixels"]).sum())
    return {
        "Dice": 2.0 * intersection / sizes,
        "Jaccard": intersection / (sizes - intersection),
        "Dice_mean": float(table["Dice"].mean()),
        "Jaccard_mean": float(table["Jaccard"].mean()),
    }


def iou_matrix(reference: Any, test: Any) -> tuple[np.ndarray, np.ndarray, Any]:
    """The IoU of every overlapping (reference object, test object) pair, as a sparse matrix.

    Returns
    -------
    reference_labels, test_labels : numpy.ndarray
        The objects (labels > 0) of each image, sorted: the matrix's rows and columns.
    iou : scipy.sparse.csr_matrix
        ``iou[i, j]`` the IoU of ``reference_labels[i]`` and ``test_labels[j]`` (absent when they do not
        touch).

    Examples
    --------
    >>> rows, columns, iou = iou_matrix(np.array([[1, 1, 0]]), np.array([[0, 5, 5]]))
    >>> rows, columns, iou.toarray()
    (array([1]), array([5]), array([[0.33333333]]))
    """
    from scipy import sparse

    s, g = _pair(reference, test)
    s, g = s.ravel(), g.ravel()
    reference_labels, reference_index = np.unique(s, return_inverse=True)
    test_labels, test_index = np.unique(g, return_inverse=True)
    # index 0 is the background when it is present; drop it from both sides
    reference_offset = int(reference_labels[0] == 0) if reference_labels.size else 0
    test_offset = int(test_labels[0] == 0) if test_labels.size else 0
    both = (s > 0) & (g > 0)
    shape = (len(reference_labels) - reference_offset, len(test_labels) - test_offset)
    intersection = sparse.coo_matrix(
        (np.ones(int(both.sum())),
         (reference_index[both] - reference_offset, test_index[both] - test_offset)),
        shape=shape,
    ).tocsr()
    intersection.sum_duplicates()
    reference_sizes = np.bincount(reference_index, minlength=len(reference_labels))[reference_offset:]
    test_sizes = np.bincount(test_index, minlength=len(test_labels))[test_offset:]
    coo = intersection.tocoo()
    union = reference_sizes[coo.row] + test_sizes[coo.col] - coo.data
    iou = sparse.csr_matrix((coo.data / union, (coo.row, coo.col)), shape=shape)
    return reference_labels[reference_offset:], test_labels[test_offset:], iou


def match_objects(reference: Any, test: Any, iou_threshold: float = 0.5) -> dict[str, float]:
    """Reference and test objects matched one to one at ``IoU >= iou_threshold``; StarDist's counts.

    The matching has the most pairs possible at the threshold (Hungarian assignment; among matchings with
    as many pairs, the highest total IoU). A ratio whose denominator is 0 is 0, as StarDist reports it.

    Parameters
    ----------
    reference, test : array-like
        Instance label images (0 the background; each object one label, not necessarily connected).
    iou_threshold : float
        The IoU a pair needs to count as a match, in (0, 1] (StarDist's default 0.5).

    Returns
    -------
    dict
        ``N_reference``, ``N_test``, ``TP``, ``FP``, ``FN``, ``Precision``, ``Recall``, ``F1``, ``Accuracy``,
        ``Mean_matched_IoU`` (NaN without a match).

    Examples
    --------
    >>> scores = match_objects(np.array([[1, 1, 1, 0, 2]]), np.array([[3, 3, 0, 0, 0]]))
    >>> scores["TP"], scores["FP"], scores["FN"], round(scores["Mean_matched_IoU"], 4)
    (1, 0, 1, 0.6667)
    """
    threshold = _threshold(iou_threshold)
    reference_labels, test_labels, iou = iou_matrix(reference, test)
    pairs = _assign(iou, threshold)
    matched = np.array([iou[i, j] for i, j in pairs], dtype=np.float64)
    tp = len(pairs)
    n_reference, n_test = len(reference_labels), len(test_labels)
    fp, fn = n_test - tp, n_reference - tp
    return {
        "N_reference": n_reference,
        "N_test": n_test,
        "TP": tp,
        "FP": fp,
        "FN": fn,
        "Precision": _ratio(tp, tp + fp),
        "Recall": _ratio(tp, tp + fn),
        "F1": _ratio(2 * tp, 2 * tp + fp + fn),
        "Accuracy": _ratio(tp, tp + fp + fn),
        "Mean_matched_IoU": float(matched.mean()) if tp else math.nan,
    }


def _assign(iou: Any, threshold: float) -> list[tuple[int, int]]:
    """The one-to-one pairs of candidates (IoU >= threshold): the most pairs, then the most IoU."""
    from scipy.optimize import linear_sum_assignment

    candidates = iou.multiply(iou >= threshold).tocoo()
    rows, columns = candidates.row, candidates.col
    if rows.size == 0:
        return []
    # above IoU 0.5 an object has at most one candidate partner: the candidates already are the matching
    if len(np.unique(rows)) == rows.size and len(np.unique(columns)) == columns.size:
        return sorted(zip(rows.tolist(), columns.tolist(), strict=True))
    row_ids, row_at = np.unique(rows, return_inverse=True)
    column_ids, column_at = np.unique(columns, return_inverse=True)
    # a pair weighs more than any IoU sum of fewer pairs, so the assignment first makes the most pairs
    weight = np.zeros((len(row_ids), len(column_ids)))
    weight[row_at, column_at] = (min(weight.shape) + 1) + candidates.data
    chosen_rows, chosen_columns = linear_sum_assignment(weight, maximize=True)
    kept = weight[chosen_rows, chosen_columns] > 0
    return sorted(zip(row_ids[chosen_rows[kept]].tolist(), column_ids[chosen_columns[kept]].tolist(),
                      strict=True))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / denominator if denominator else 0.0


def _threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ArgumentTypeError(f"iou_threshold: expected a number in (0, 1], found {type(value).__name__}")
    if not 0.0 < float(value) <= 1.0:
        raise ArgumentError(f"iou_threshold: expected a number in (0, 1], found {value!r}")
    return float(value)


def label_metrics(reference: Any, test: Any,
                  iou_threshold: float = 0.5) -> tuple[dict[str, float], pd.DataFrame]:
    """Every label metric of one pair (:data:`LABEL_METRICS`) and the per-label table.

    Examples
    --------
    >>> values, per_label = label_metrics(np.array([[1, 0]]), np.array([[1, 0]]))
    >>> values["Dice"], values["F1"], list(per_label["label"])
    (1.0, 1.0, [1])
    """
    per_label = label_overlap(reference, test)
    values: dict[str, float] = {**overlap_scores(reference, test, per_label),
                                **match_objects(reference, test, iou_threshold)}
    return {name: values[name] for name in LABEL_METRICS}, per_label
