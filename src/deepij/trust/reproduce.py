"""Reproduce a bundle: ``deepij test BUNDLE`` and :func:`test_bundle` run a bundle on its own test inputs and
compare with the outputs it ships, for each of its weights formats.

What is compared (the *cases*):

- **test tensors**: the spec's test inputs and outputs (0.5 ``test_tensor``, 0.3/0.4 ``test_inputs`` /
  ``test_outputs``). 0.4 and 0.5 run them with the bundle's spec ops, as the zoo's ``bioimageio test`` does;
  0.3 bundles (made by deepImageJ) with their deepImageJ steps, the way deepImageJ made the outputs.
- **deepImageJ example**: ``exampleImage.tif`` through the deepImageJ steps (ImageJ macros, Java) against
  ``resultImage.tif`` and the result table (``resultTable.csv``), as ``config.deepimagej.test_information``
  names them (else those usual names), in bundles with a ``config.deepimagej`` section. The expected image
  is the output or step image of the same shape (same pixel type first, then the closest); the table the
  one with its columns.

Each case runs on the whole image, as the zoo runs it (``tile="image"``: the image as it is; a size the
network cannot take gets one mirror-padded pass), and is judged with the bundle's tolerance
(:mod:`deepij.trust.reproduce_compare`). Then the first case runs tiled as a user would: deepImageJ's default
tile and a small tile (about a third of the image's valid region per tile; ``tile=`` chooses it). The
tiled outputs are compared with the whole-image ones, apart at the image border (where mirrored pixels
replace the network's own padding) and inside, where any difference is a seam: the declared halo is smaller
than the network's receptive field, which is measured and reported too. Seams do not fail the test (the
bundle reproduces its outputs), but they are shown, never hidden.

A bundle with nothing to compare is reported as such (``deepij test`` exits 2); any failed format makes it
exit 1. See :mod:`deepij.trust.reproduce_report` for the report's fields.

Examples
--------
>>> report = deepij.test_bundle("examples/nuclei_bundle")  # doctest: +SKIP
>>> report.status, [f.status for f in report.formats]  # doctest: +SKIP
('passed', ['passed', 'passed'])
>>> print(report.to_text())  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from deepij.errors import ArgumentError, BundleError, DeepijError, SeamWarning, TilingError
from deepij.trust.reproduce_compare import (
    Comparison,
    Pixel,
    Tolerance,
    compare_arrays,
    compare_tables,
    failed_comparison,
    reproduction_tolerance,
)
from deepij.trust.reproduce_report import BundleTestReport, FormatReport, TiledComparison

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from deepij.bundle.description import ModelDescription
    from deepij.imagej.session import Session
    from deepij.inference.backends.base import Backend
    from deepij.inference.plan import TilePlan
    from deepij.inference.tiling import ModelTiling
    from deepij.pipeline import Model, Prediction

TEST_TENSORS = "test tensors"
DEEPIMAGEJ_EXAMPLE = "deepImageJ example"
TILED_LOOSENESS = 10.0
"""Tiled outputs are compared with the whole-image ones at this many times the reproduction tolerance."""
EXAMPLE_INPUTS = ("exampleImage.tif", "exampleImage.tiff")
EXAMPLE_OUTPUTS = ("resultImage.tif", "resultImage.tiff", "resultTable.csv")
"""The names deepImageJ gives a bundle's example files when ``test_information`` does not name them."""
_TABLE_SUFFIXES = (".csv",)
_IMAGE_SUFFIXES = (".npy", ".tif", ".tiff")


@dataclass(frozen=True)
class Expected:
    """A file of expected values: for ``output`` (None: matched by content, deepImageJ examples)."""

    output: str | None
    file: str

    @property
    def is_table(self) -> bool:
        return self.file.lower().endswith(_TABLE_SUFFIXES)


@dataclass(frozen=True)
class Case:
    """Inputs to run (input name -> bundle-relative file), the processing to run them with, what to expect."""

    kind: str
    inputs: Mapping[str, str]
    expected: tuple[Expected, ...]
    processing: str

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "processing": self.processing,
            "inputs": list(self.inputs.values()),
            "expected": [e.file for e in self.expected],
        }


@dataclass(frozen=True)
class _Options:
    device: str | None
    runtime: str
    tile: Any
    session: Session | None
    tiled: bool


def test_bundle(
    bundle: str | Path | Model,
    *,
    weights_format: str | None = None,
    tile: int | tuple[int, ...] | Mapping[str, int] | None = None,
    device: str | None = None,
    runtime: str = "auto",
    processing: Literal["auto", "macros", "spec", "none"] | None = None,
    session: Session | None = None,
    allow_code: bool = False,
    tiled: bool = True,
) -> BundleTestReport:
    """Run a bundle on its own test data and compare with the outputs it ships, per weights format.

    Parameters
    ----------
    bundle : path or Model
        A bundle folder, descriptor, zip or URL (loaded and closed here), or a loaded
        :class:`~deepij.pipeline.Model` (its networks are reused and left loaded).
    weights_format : str, optional
        Test only these weights (``"onnx"``, ``"torchscript"``, ``"Pytorch"``...); default every format
        the bundle has. Formats deepij cannot run are reported as skipped.
    tile : int, sequence or mapping, optional
        The small tile of the tiled comparison (default about a third of the image per tile).
    device, runtime : str, optional
        As for :meth:`Model.predict <deepij.pipeline.Model.predict>`.
    processing : {"auto", "macros", "spec", "none"}, optional
        Force one processing for every case (default: spec ops for 0.4/0.5 test tensors, the deepImageJ
        steps for 0.3 test tensors and deepImageJ examples).
    session : Session, optional
        The ImageJ session for deepImageJ steps (default ``deepij.imagej()``, started when needed).
    allow_code : bool
        Let ``pytorch_state_dict`` weights run the bundle's Python code (else they are skipped).
    tiled : bool
        Also run tiled and report the difference from the whole-image run (default True).

    Returns
    -------
    BundleTestReport
        ``status`` (``"passed"``, ``"failed"``, ``"nothing to compare"``), ``exit_code``, ``formats`` (one
        :class:`~deepij.trust.reproduce_report.FormatReport` each), ``to_text()``, ``to_json()``.

    Raises
    ------
    BundleError
        The bundle cannot be read (or states a tolerance that is not a number).
    ArgumentError
        A weights format the bundle does not have, an unknown processing.

    Examples
    --------
    >>> report = deepij.test_bundle("my_bundle/", weights_format="onnx")  # doctest: +SKIP
    >>> report.format("onnx").comparisons[0].max_abs_error  # doctest: +SKIP
    1.2e-07
    """
    from deepij.pipeline import Model, load

    model = bundle if isinstance(bundle, Model) else load(bundle, allow_code=allow_code)
    try:
        return _test_model(
            model,
            str(bundle if not isinstance(bundle, Model) else model.description.root),
            weights_format,
            processing,
            allow_code or model.allow_code,
            _Options(device, runtime, tile, session, tiled),
        )
    finally:
        if model is not bundle:
            model.close()


# pytest collects callables named test_* from the modules a test imports: this one is not a test.
test_bundle.__test__ = False  # type: ignore[attr-defined]


def _test_model(
    model: Model,
    where: str,
    weights_format: str | None,
    processing: str | None,
    allow_code: bool,
    options: _Options,
) -> BundleTestReport:
    description = model.description
    formats = _formats(description, weights_format)
    cases, notes = find_cases(description, processing)
    report = BundleTestReport(
        where,
        description.name,
        description.format_version,
        [c.describe() for c in cases],
        [],
        "passed",
        notes=notes,
    )
    if not cases:
        report.status = "nothing to compare"
        report.message = (
            "the bundle ships no expected outputs: no test tensors (test_inputs/test_outputs, test_tensor) "
            "and no deepImageJ example (exampleImage with resultImage or a result table)"
        )
        return report
    report.formats = [_test_format(model, fmt, cases, allow_code, options) for fmt in formats]
    ran = [f for f in report.formats if f.status != "skipped"]
    failed = [f.weights_format for f in ran if f.status == "failed"]
    if not ran:
        report.status, report.message = "failed", "no weights format could run"
    elif failed:
        report.status, report.message = "failed", f"failed: {', '.join(failed)}"
    seams = [f.weights_format for f in ran if f.seams_found]
    if seams:
        report.notes.append(
            f"tiles change the output away from the image border ({', '.join(seams)}): the declared halo is "
            "smaller than the network's receptive field; tiling='blend' or larger tiles reduce the seams"
        )
    return report


def _formats(description: ModelDescription, weights_format: str | None) -> list[str]:
    from deepij.inference.backends import canonical_format

    if weights_format is None:
        return list(description.weights)
    if not isinstance(weights_format, str):
        raise ArgumentError(f"weights_format: expected a format name, not {weights_format!r}")
    name = canonical_format(weights_format)
    if name not in description.weights:
        raise ArgumentError(
            f"weights_format: the bundle has no {weights_format!r} weights"
            + (f" ({name})" if name != weights_format else "")
            + f"; it has {list(description.weights)}"
        )
    return [name]


# --- what there is to compare ---------------------------------------------------------------------------


def find_cases(description: ModelDescription, processing: str | None = None) -> tuple[list[Case], list[str]]:
    """What a bundle ships to compare with (module notes), and notes on files it names but lacks.

    Raises
    ------
    ArgumentError
        ``processing`` is not one of ``"auto"``, ``"macros"``, ``"spec"``, ``"none"``.
    """
    from deepij.pipeline.steps import MODES, choose_mode

    if processing is not None and processing not in MODES:
        raise ArgumentError(f"processing: unknown value {processing!r}; expected one of {list(MODES)}")
    notes: list[str] = []
    cases = []
    legacy = description.format_version.startswith("0.3")
    tensors = _test_tensor_case(description)
    if tensors is not None:
        mode = processing or ("auto" if legacy else "spec")
        cases.append(Case(TEST_TENSORS, tensors[0], tensors[1], choose_mode(description, mode)))
    example = _example_case(description, notes)
    if example is not None:
        same = (
            tensors is not None
            and set(example[0].values()) == set(tensors[0].values())
            and {e.file for e in example[1]} <= {e.file for e in tensors[1]}
        )
        if not same:
            cases.append(
                Case(
                    DEEPIMAGEJ_EXAMPLE, example[0], example[1], choose_mode(description, processing or "auto")
                )
            )
    return cases, notes


def _test_tensor_case(description: ModelDescription) -> tuple[dict[str, str], tuple[Expected, ...]] | None:
    inputs = {t.name: t.test_tensor for t in description.inputs}
    expected = tuple(Expected(t.name, t.test_tensor) for t in description.outputs if t.test_tensor)
    if not expected or not all(inputs.values()):
        return None
    return {name: str(path) for name, path in inputs.items()}, expected


def _example_case(
    description: ModelDescription, notes: list[str]
) -> tuple[dict[str, str], tuple[Expected, ...]] | None:
    from deepij.pipeline.steps import has_imagej_steps

    info = description.deepimagej.test_information
    # only deepImageJ made these files, with its own steps: without its config they are not a test
    if len(description.inputs) != 1 or not (info or has_imagej_steps(description)):
        return None
    named_inputs = _named_files(info.get("inputs"))
    named_outputs = _named_files(info.get("outputs"))
    inputs = [f for f in named_inputs or list(EXAMPLE_INPUTS) if _in_bundle(description, f)]
    outputs = [f for f in named_outputs or list(EXAMPLE_OUTPUTS) if _in_bundle(description, f)]
    lacking = [f for f in (*named_inputs, *named_outputs) if not _in_bundle(description, f)]
    if lacking:
        notes.append(f"config.deepimagej.test_information names {lacking}, not in the bundle")
    outputs = [f for f in outputs if f.lower().endswith(_TABLE_SUFFIXES + _IMAGE_SUFFIXES)]
    if not inputs or not outputs:
        return None
    return {description.inputs[0].name: inputs[0]}, tuple(Expected(None, f) for f in outputs)


def _named_files(entries: Any) -> list[str]:
    """File names in ``test_information.inputs`` / ``.outputs`` (a list of ``{name: ...}``, or one)."""
    if isinstance(entries, Mapping):
        entries = [entries]
    if not isinstance(entries, list):
        return []
    names = [e.get("name") for e in entries if isinstance(e, Mapping)]
    return [str(n).strip().removeprefix("./") for n in names if isinstance(n, str) and n.strip()]


def _in_bundle(description: ModelDescription, file: str) -> bool:
    try:
        return description.path(file).is_file()
    except BundleError:
        return False


# --- one weights format ---------------------------------------------------------------------------------


def _test_format(
    model: Model, fmt: str, cases: list[Case], allow_code: bool, options: _Options
) -> FormatReport:
    from deepij.inference.meters import forward_meter

    report = FormatReport(fmt, "failed")
    reason = _cannot_run(fmt, allow_code)
    if reason:
        report.status, report.error = "skipped", reason
        return report
    try:
        started = time.perf_counter()
        backend = model.backend(fmt, options.device, options.runtime)
        report.load_seconds = time.perf_counter() - started
    except DeepijError as exc:
        report.error = f"the weights do not load: {exc}"
        return report
    report.runtime, report.device = backend.runtime, backend.device
    unusable = [_missing(model.description, c) or _mismatched(model.description, c) for c in cases]
    runnable = [c for c, problems in zip(cases, unusable, strict=True) if not problems]
    report.comparisons += [m for problems in unusable for m in problems]
    wholes: list[tuple[Case, Any, Prediction]] = []

    def run_whole_images() -> None:
        for case in runnable:
            image = _case_input(model.description, case)
            prediction, note = _predict_whole(model, image, case, fmt, options)
            wholes.append((case, image, prediction))
            report.notes += [n for n in [note, *prediction.notes] if n and n not in report.notes]

    started = time.perf_counter()
    try:
        report.peak_memory_bytes = forward_meter(backend)(run_whole_images)
    except DeepijError as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    report.run_seconds = time.perf_counter() - started
    for case, _, prediction in wholes:
        report.comparisons += _compare_case(model.description, case, prediction, fmt)
    if options.tiled and wholes:
        _compare_tiled(model, backend, wholes[0], fmt, options, report)
    passed = bool(report.comparisons) and all(c.passed for c in report.comparisons)
    report.status = "passed" if passed and report.error is None else "failed"
    return report


def _cannot_run(fmt: str, allow_code: bool) -> str | None:
    from deepij.inference.backends.selection import ADAPTERS

    if fmt not in ADAPTERS:
        return f"deepij cannot run {fmt} weights (it runs {', '.join(ADAPTERS)})"
    if fmt == "pytorch_state_dict" and not allow_code:
        return (
            "pytorch_state_dict weights run the bundle's Python code: allow_code=True (--allow-code) "
            "lets them"
        )
    return None


def _missing(description: ModelDescription, case: Case) -> list[Comparison]:
    """Failed comparisons for a case whose files are not in the bundle (nothing of it can run)."""
    absent = [
        f for f in (*case.inputs.values(), *(e.file for e in case.expected)) if not _in_bundle(description, f)
    ]
    if not absent:
        return []
    tolerance = Tolerance(math.nan, math.nan, math.nan, "not applied")
    return [
        failed_comparison(case.kind, e.output or "?", e.file, tolerance, f"not in the bundle: {absent}")
        for e in case.expected
    ]


def _mismatched(description: ModelDescription, case: Case) -> list[Comparison]:
    """Failed comparisons for a case whose files differ from the sha256 the descriptor gives them, even when
    the model was loaded with ``verify=False``: an expected output that is not the file described is no
    reference, and other inputs give other outputs."""
    from deepij.bundle.checks import files_with_sha256
    from deepij.bundle.weights import cached_sha256

    described = {path: (field, digest) for field, path, digest in files_with_sha256(description)}
    problems = []
    for file in (*case.inputs.values(), *(e.file for e in case.expected)):
        if file not in described:
            continue
        field, digest = described[file]
        actual = cached_sha256(description.path(file))
        if actual != digest:
            problems.append(
                f"{file} does not match the sha256 the descriptor gives it ({field}: found {actual}, "
                f"expected {digest}): not the file described, so not compared"
            )
    if not problems:
        return []
    tolerance = Tolerance(math.nan, math.nan, math.nan, "not applied")
    return [
        failed_comparison(case.kind, e.output or "?", e.file, tolerance, "; ".join(problems))
        for e in case.expected
    ]


def _case_input(description: ModelDescription, case: Case) -> Any:
    """What ``predict`` takes: test tensors as arrays (by input name when several), an example as its file."""
    images = {}
    for name, file in case.inputs.items():
        path = description.path(file)
        images[name] = np.load(path, allow_pickle=False) if path.suffix.lower() == ".npy" else path
    return images if len(images) > 1 else next(iter(images.values()))


def _predict(model: Model, image: Any, case: Case, fmt: str, options: _Options, tile: Any) -> Prediction:
    return model.predict(
        image,
        processing=case.processing,
        session=options.session,
        logging="mute",
        tile=tile,
        device=options.device,
        weights_format=fmt,
        runtime=options.runtime,
        instances="declared",  # what the descriptor declares is what its test outputs hold
    )


def _predict_whole(
    model: Model, image: Any, case: Case, fmt: str, options: _Options
) -> tuple[Prediction, str | None]:
    """The whole image as it is, as the zoo runs it; one mirror-padded pass when the network cannot take its
    size as it is, and for the deepImageJ example of a network whose outputs are smaller than its input
    (valid convolutions: deepImageJ mirror-pads, its result covers the image)."""
    if case.kind == DEEPIMAGEJ_EXAMPLE and _crops_its_border(model):
        note = f"{case.kind}: one mirror-padded pass, as deepImageJ runs a network with valid convolutions"
        return _predict(model, image, case, fmt, options, "whole"), note
    try:
        return _predict(model, image, case, fmt, options, "image"), None
    except TilingError as exc:
        note = f"{case.kind}: one mirror-padded pass, the image as it is cannot go through ({exc})"
        return _predict(model, image, case, fmt, options, "whole"), note


def _crops_its_border(model: Model) -> bool:
    """Whether the network's outputs are smaller than its input (a negative offset: valid convolutions)."""
    return any(m.offset < 0 for maps in model.tiling.output_maps.values() for m in maps.values())


# --- comparing with what the bundle ships ---------------------------------------------------------------


def _compare_case(
    description: ModelDescription, case: Case, prediction: Prediction, fmt: str
) -> list[Comparison]:
    found = []
    for expected in case.expected:
        try:
            values = _read_expected(description, expected.file)
        except (OSError, ValueError) as exc:
            tolerance = reproduction_tolerance(description, fmt, expected.output or "")
            found.append(
                failed_comparison(
                    case.kind, expected.output or "?", expected.file, tolerance, f"cannot read it: {exc}"
                )
            )
            continue
        found.append(_compare_one(description, case, expected, values, prediction, fmt))
    return found


def _read_expected(description: ModelDescription, file: str) -> Any:
    path = description.path(file)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    if suffix == ".csv":
        import pandas as pd

        return pd.read_csv(path)
    raise ValueError(f"expected a .npy, .tif or .csv file, not {path.name}")


def _compare_one(
    description: ModelDescription,
    case: Case,
    expected: Expected,
    values: Any,
    prediction: Prediction,
    fmt: str,
) -> Comparison:
    import pandas as pd

    kind, file = case.kind, expected.file
    if isinstance(values, pd.DataFrame):
        name, table = _named_or_matching_table(expected.output, values, prediction.tables)
        tolerance = reproduction_tolerance(description, fmt, name or "")
        if table is None:
            return failed_comparison(
                kind,
                expected.output or "?",
                file,
                tolerance,
                f"no table output to compare with (tables: {sorted(prediction.tables)})",
            )
        return compare_tables(table, values, tolerance, case=kind, output=name or "?", expected_file=file)
    if expected.output is not None and description.output(expected.output).is_table:
        tolerance = reproduction_tolerance(description, fmt, expected.output)
        frame = prediction.tables.get(expected.output)
        if frame is None:
            return failed_comparison(kind, expected.output, file, tolerance, "the run gave no such table")
        return _compare_table_tensor(description, expected.output, frame, values, tolerance, kind, file)
    if expected.output is not None:
        tolerance = reproduction_tolerance(description, fmt, expected.output)
        image = prediction.images.get(expected.output)
        if image is None:
            return failed_comparison(
                kind,
                expected.output,
                file,
                tolerance,
                f"the run gave no such image (images: {sorted(prediction.images)})",
            )
        return _compare_image(image, values, tolerance, kind, expected.output, file)
    name, image = _matching_image(values, prediction.images)
    tolerance = reproduction_tolerance(description, fmt, name or "")
    if image is None:
        shapes = {n: tuple(i.shape) for n, i in prediction.images.items()}
        return failed_comparison(
            kind, "?", file, tolerance, f"no image of its shape {values.shape} among the outputs {shapes}"
        )
    return _compare_image(image, values, tolerance, kind, name or "?", file)


def _compare_image(
    image: xr.DataArray, values: np.ndarray, tolerance: Tolerance, kind: str, name: str, file: str
) -> Comparison:
    """Element by element; when shapes differ only by dims of size 1 (an ``.npy`` saved without batch, a
    TIFF's squeezed planes), on the squeezed arrays."""
    got = np.asarray(image.values)
    dims = [str(d) for d in image.dims]
    if got.shape != values.shape and _squeezed(got.shape) == _squeezed(values.shape):
        dims = [d for d, n in zip(dims, got.shape, strict=True) if n != 1]
        got, values = got.reshape(_squeezed(got.shape)), values.reshape(_squeezed(values.shape))
    return compare_arrays(got, values, dims, tolerance, case=kind, output=name, expected_file=file)


def _compare_table_tensor(
    description: ModelDescription,
    name: str,
    frame: pd.DataFrame,
    values: np.ndarray,
    tolerance: Tolerance,
    kind: str,
    file: str,
) -> Comparison:
    """A table output against its test tensor: the table's value columns against the tensor's rows (``i``)
    and channels, dims of size 1 left out."""
    from deepij.bundle.description import AXIS_LETTERS

    columns = [c for c in frame.columns if str(c) not in AXIS_LETTERS]
    axes = description.output(name).axes_str
    kept = [a for a, n in zip(axes, values.shape, strict=False) if n != 1 or a in "ic"]
    rows = values.reshape([n for a, n in zip(axes, values.shape, strict=False) if n != 1 or a in "ic"])
    if kept[:2] == ["c", "i"]:
        rows = np.swapaxes(rows, 0, 1)
    rows = rows.reshape(rows.shape[0], -1) if rows.ndim else rows.reshape(1, 1)
    import pandas as pd

    expected = pd.DataFrame(rows, columns=columns if rows.shape[1] == len(columns) else None)
    return compare_tables(frame, expected, tolerance, case=kind, output=name, expected_file=file)


def _named_or_matching_table(
    output: str | None, expected: pd.DataFrame, tables: Mapping[str, pd.DataFrame]
) -> tuple[str | None, pd.DataFrame | None]:
    if output is not None:
        return output, tables.get(output)
    if len(tables) == 1:
        return next(iter(tables.items()))
    columns = set(map(str, expected.columns))
    for name, table in tables.items():
        if columns <= set(map(str, table.columns)) and len(table) == len(expected):
            return name, table
    return None, None


def _matching_image(
    values: np.ndarray, images: Mapping[str, xr.DataArray]
) -> tuple[str | None, xr.DataArray | None]:
    """The image of the expected one's shape (dims of size 1 aside): the same pixel type first, then the
    closest values."""
    shape = _squeezed(values.shape)
    candidates = [(n, i) for n, i in images.items() if _squeezed(i.shape) == shape]
    if not candidates:
        return None, None

    def rank(item: tuple[str, xr.DataArray]) -> tuple[bool, bool, float]:
        data = np.asarray(item[1].values)
        with np.errstate(invalid="ignore", over="ignore"):
            distance = float(
                np.nanmax(np.abs(data.reshape(shape).astype(np.float64) - values.reshape(shape)))
            )
        return data.dtype != values.dtype, data.dtype.kind != values.dtype.kind, distance

    name, image = min(candidates, key=rank)
    return name, image


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n for n in shape if n != 1)


# --- tiled against whole --------------------------------------------------------------------------------


def _compare_tiled(
    model: Model,
    backend: Backend,
    whole_run: tuple[Case, Any, Prediction],
    fmt: str,
    options: _Options,
    report: FormatReport,
) -> None:
    from deepij.inference.receptive import measure_receptive_field

    case, image, whole = whole_run
    tiling = model.tiling
    if not tiling.tileable:
        report.notes.append(f"not tiled: the model runs in one pass ({tiling.reason})")
        return
    if any(m.unpadded for out in whole.plan.outputs.values() for m in out.maps.values()):
        # the image as it is gave outputs smaller than it (valid convolutions); tiles cover the image, as
        # the mirror-padded whole pass does
        whole = _predict_quietly(model, image, case, fmt, options, "whole")
    shape = {g.axis: g.size for g in whole.plan.grids}
    report.declared_padding = dict(tiling.pads)
    field = measure_receptive_field(backend, tiling, whole.plan.tile_shapes)
    report.receptive_radius = dict(field.radius) if field is not None else None
    border = {a: field.radius[a] if field is not None else tiling.pads[a] for a in tiling.axes}
    for label, tile in _tile_settings(tiling, shape, options.tile):
        try:
            tiled = _predict_quietly(model, image, case, fmt, options, tile)
        except DeepijError as exc:
            tolerance = reproduction_tolerance(model.description, fmt, "")
            report.tiled.append(
                TiledComparison(
                    label,
                    "-",
                    _tile_dict(tile),
                    0,
                    {},
                    border,
                    math.nan,
                    math.nan,
                    0,
                    False,
                    tolerance,
                    problem=str(exc),
                )
            )
            continue
        for spec in model.description.outputs:
            if spec.is_table or spec.name not in whole.images or spec.name not in tiled.images:
                continue
            tolerance = reproduction_tolerance(model.description, fmt, spec.name).looser(
                TILED_LOOSENESS, f"{TILED_LOOSENESS:g} x the reproduction tolerance"
            )
            report.tiled.append(
                tiled_difference(
                    label,
                    spec.name,
                    whole.images[spec.name],
                    tiled.images[spec.name],
                    tiled.plan,
                    border,
                    tolerance,
                )
            )


def _predict_quietly(
    model: Model, image: Any, case: Case, fmt: str, options: _Options, tile: Any
) -> Prediction:
    """A tiled run; its seam warning is what the report shows, so it is not printed as well."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeamWarning)
        return _predict(model, image, case, fmt, options, tile)


def _tile_settings(tiling: ModelTiling, shape: Mapping[str, int], asked: Any) -> list[tuple[str, Any]]:
    """deepImageJ's default tile, and a small one (``asked``, else about a third of the image per tile)."""
    suggested = tiling.suggested_tile(shape)
    settings: list[tuple[str, Any]] = [("deepImageJ default tile", suggested)]
    if asked is not None:
        settings.append(("tile asked for", asked))
        return settings
    small = {}
    for a in tiling.axes:
        region = max(1, math.ceil(shape[a] / 3))
        small[a] = (
            tiling.smallest_valid(a, 2 * tiling.pads[a] + region) or tiling.largest_valid(a) or suggested[a]
        )
    if small != suggested:
        settings.append(("small tile", small))
    return settings


def _tile_dict(tile: Any) -> dict[str, int]:
    return {str(a): int(q) for a, q in tile.items()} if isinstance(tile, Mapping) else {}


def tiled_difference(
    label: str,
    name: str,
    whole: xr.DataArray,
    tiled: xr.DataArray,
    plan: TilePlan,
    border: Mapping[str, int],
    tolerance: Tolerance,
) -> TiledComparison:
    """How a tiled output differs from the whole-image one, inside and at the image border.

    ``border`` is, per tiled input axis, how many input pixels from the edge count as the border; an output
    pixel maps to input pixel ``floor(j / scale)``. Seams are where one tile's valid region meets the next.
    """
    seams = {g.axis: [w[0] for w in g.write[1:]] for g in plan.grids}
    sizes = {g.axis: g.size for g in plan.grids}
    nan = math.nan
    unmeasured = TiledComparison(
        label, name, dict(plan.tile), plan.n_tiles, seams, dict(border), nan, nan, 0, False, tolerance
    )
    if whole.dims != tiled.dims or whole.shape != tiled.shape:
        return replace(unmeasured, problem=f"shape {dict(tiled.sizes)}, whole {dict(whole.sizes)}")
    got = np.asarray(tiled.values, dtype=np.float64)
    reference = np.asarray(whole.values, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(got - reference)
        agree = np.isnan(got) & np.isnan(reference)
        difference[agree] = 0.0
    inside = np.ones(got.shape, dtype=bool)
    positions: dict[int, tuple[str, np.ndarray]] = {}
    maps = plan.outputs[name].maps
    for k, dim in enumerate(whole.dims):
        m = maps.get(str(dim))
        if m is None:
            continue
        pixel = np.floor(np.arange(got.shape[k]) / m.scale).astype(np.int64)
        radius = int(border.get(m.input_axis, 0))
        along = (pixel >= radius) & (pixel < sizes[m.input_axis] - radius)
        inside &= along.reshape([-1 if j == k else 1 for j in range(got.ndim)])
        positions[k] = (m.input_axis, pixel)
    with np.errstate(invalid="ignore"):
        allowed = tolerance.absolute + tolerance.relative * np.abs(reference)
        beyond = inside & ~agree & ~(difference <= allowed)
    inner = np.where(inside, np.nan_to_num(difference, nan=np.inf), -1.0)
    worst, distance = None, None
    if inside.any():
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(inner)), got.shape))
        worst = Pixel(
            {str(d): int(i) for d, i in zip(whole.dims, where, strict=True)},
            float(got[where]),
            float(reference[where]),
            float(difference[where]),
        )
        distance = _distance_to_seam(where, positions, seams)
    outside = np.where(inside, 0.0, difference)
    return replace(
        unmeasured,
        max_abs_inside=float(np.max(inner, initial=0.0)),
        max_abs_border=float(np.nanmax(outside, initial=0.0)) if outside.size else 0.0,
        mismatched_inside=int(beyond.sum()),
        seams_found=bool(beyond.any()),
        worst_inside=worst,
        worst_distance_to_seam=distance,
    )


def _distance_to_seam(
    where: tuple[int, ...], positions: Mapping[int, tuple[str, np.ndarray]], seams: Mapping[str, list[int]]
) -> int | None:
    """Input pixels from the pixel at ``where`` to the nearest seam (0: it touches one)."""
    distances = []
    for k, (axis, pixel) in positions.items():
        x = int(pixel[where[k]])
        distances += [int(abs(x + 0.5 - s)) for s in seams.get(axis, [])]
    return min(distances) if distances else None
