"""Reproduce a bundle: ``deepij test BUNDLE`` and :func:`test_bundle` run a bundle on its own test inputs and
compare with the outputs it ships, for each of its weights formats.

The pieces:

- :mod:`deepij.trust.reproduce_cases`: what is compared (the spec's test tensors, deepImageJ's example) and
  the convention each was made with: the zoo's (the image as it is, one unpadded pass) for test tensors,
  deepImageJ's (its default tile, mirror-padded) for a deepImageJ example, each with the other as the
  alternative tried when the first does not reproduce the files;
- :mod:`deepij.trust.reproduce_run`: how a case runs under each convention;
- :mod:`deepij.trust.reproduce_format`: one weights format (skipped when it cannot be had or run here,
  failed when it is there but broken or its outputs differ);
- :mod:`deepij.trust.reproduce_expected` and :mod:`deepij.trust.reproduce_compare`: outputs against files,
  with the bundle's tolerance;
- :mod:`deepij.trust.reproduce_tiled` and :mod:`deepij.trust.reproduce_seams`: the first case tiled as a
  user would (deepImageJ's default tile and a small one, on a window of the input that holds a few tiles)
  against the whole image, apart at the image border and inside, where any difference is a seam: the
  declared halo is smaller than the network's receptive field, which is measured and reported too. Seams
  do not fail the test (the bundle reproduces its outputs), but they are shown, never hidden;
- :mod:`deepij.trust.reproduce_report`: the report, its statuses and exit codes (0 passed, 1 failed, 2
  nothing tested or nothing to compare), as text and JSON.

Examples
--------
>>> import deepij
>>> report = deepij.test_bundle("examples/nuclei_bundle", weights_format="onnx", tiled=False)
>>> report.status, report.exit_code
('passed', 0)
>>> [(c.expected_file, c.passed) for c in report.format("onnx").comparisons]
[('test_output.npy', True), ('resultImage.tif', True), ('resultTable.csv', True)]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from deepij.errors import ArgumentError
from deepij.trust.reproduce_cases import Case, Expected, find_cases
from deepij.trust.reproduce_format import check_format
from deepij.trust.reproduce_report import BundleTestReport
from deepij.trust.reproduce_run import Options
from deepij.trust.reproduce_seams import tiled_difference

if TYPE_CHECKING:
    from deepij.bundle.description import ModelDescription
    from deepij.imagej.session import Session
    from deepij.pipeline import Model


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
    verify: bool = True,
) -> BundleTestReport:
    """Run a bundle on its own test data and compare with the outputs it ships, per weights format.

    Parameters
    ----------
    bundle : path or Model
        A bundle folder, descriptor, zip or URL (loaded and closed here), or a loaded
        :class:`~deepij.pipeline.Model` (its networks are reused and left loaded).
    weights_format : str, optional
        Test only these weights (``"onnx"``, ``"torchscript"``, ``"Pytorch"``...); default every format
        the bundle has. Formats that cannot be had or run here are reported as skipped, with the reason.
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
    verify : bool
        Check the weights and the test files against their sha256 when the bundle is opened (default
        True). False tests a bundle whose files were changed; an expected output that differs from its
        sha256 is still never compared.

    Returns
    -------
    BundleTestReport
        ``status`` (``"passed"``, ``"failed"``, ``"nothing tested"``, ``"nothing to compare"``),
        ``exit_code``, ``formats`` (one :class:`~deepij.trust.reproduce_report.FormatReport` each),
        ``to_text()``, ``to_json()``.

    Raises
    ------
    BundleError
        The bundle cannot be read, a file differs from its sha256 (``ChecksumError``, with ``verify``), or
        it states a tolerance that is not a number.
    ArgumentError
        A weights format the bundle does not have, an unknown processing.
    """
    from deepij.pipeline import Model, load

    model = bundle if isinstance(bundle, Model) else load(bundle, allow_code=allow_code, verify=verify)
    try:
        where = str(bundle if not isinstance(bundle, Model) else model.description.root)
        options = Options(device, runtime, tile, session, tiled)
        return _test_model(model, where, weights_format, processing, allow_code or model.allow_code, options)
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
    options: Options,
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
    report.formats = [check_format(model, fmt, cases, allow_code, options) for fmt in formats]
    _conclude(report)
    return report


def _conclude(report: BundleTestReport) -> None:
    """The bundle's status from its formats': any failed fails it, none tested says so."""
    failed = [f.weights_format for f in report.formats if f.status == "failed"]
    passed = [f for f in report.formats if f.status == "passed"]
    if failed:
        report.status, report.message = "failed", f"failed: {', '.join(failed)}"
    elif not passed:
        skipped = "; ".join(f"{f.weights_format}: {f.error}" for f in report.formats)
        report.status = "nothing tested"
        report.message = f"nothing was tested: every weights format was skipped ({skipped})"
    seams = [f.weights_format for f in report.formats if f.seams_found]
    if seams:
        report.notes.append(
            f"tiles change the output away from the image border ({', '.join(seams)}): the declared halo is "
            "smaller than the network's receptive field; tiling='blend' or larger tiles reduce the seams"
        )


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


__all__ = ["Case", "Expected", "find_cases", "test_bundle", "tiled_difference"]
