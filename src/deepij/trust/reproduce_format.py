"""One weights format in ``deepij test``: load it, run every case, compare, then tiled against whole.

Weights that cannot be had or run here are *skipped*, with the reason: a format deepij does not run, code
that needs ``allow_code``, a weights file missing from the bundle or a remote one that cannot be
downloaded, a framework that is not installed. Weights that are there but do not load (a file that is not
the one its sha256 describes, a broken graph) and runs whose outputs differ from the bundle's *fail*.

A case whose outputs do not reproduce under the convention its files were made with is run once more under
its alternative (:mod:`deepij.trust.reproduce_cases`); when that reproduces every file, the comparisons that
count are those, their convention says so and a note says what the first convention gave.

Examples
--------
>>> load_outcome(ImportError("No module named 'tensorflow'", name="tensorflow"))[0]
'skipped'
>>> from deepij.errors import ChecksumError
>>> load_outcome(ChecksumError("file does not match the sha256 its descriptor gives"))[0]
'failed'
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from deepij.errors import BundleError, ChecksumError, DeepijError
from deepij.trust.reproduce_cases import case_input, unusable
from deepij.trust.reproduce_expected import compare_case
from deepij.trust.reproduce_report import FormatReport, FormatStatus
from deepij.trust.reproduce_run import CaseRun, Options, describe_convention, run_case
from deepij.trust.reproduce_tiled import compare_tiled

if TYPE_CHECKING:
    from deepij.inference.backends.base import Backend
    from deepij.pipeline import Model
    from deepij.trust.reproduce_cases import Case
    from deepij.trust.reproduce_compare import Comparison


def check_format(
    model: Model, fmt: str, cases: list[Case], allow_code: bool, options: Options
) -> FormatReport:
    """Run and judge every case with the ``fmt`` weights (module notes)."""
    report = FormatReport(fmt, "failed")
    reason = cannot_run(fmt, allow_code)
    if reason:
        report.status, report.error = "skipped", reason
        return report
    backend = _load(model, fmt, options, report)
    if backend is None:
        return report
    problems = [unusable(model.description, c) for c in cases]
    report.comparisons += [m for found in problems for m in found]
    runnable = [c for c, found in zip(cases, problems, strict=True) if not found]
    runs = _run_cases(model, backend, fmt, runnable, options, report)
    for case, image, run in runs:
        report.comparisons += _judge(model, fmt, (case, image, run), options, report)
    if options.tiled and runs:
        compare_tiled(model, backend, runs[0], fmt, options, report)
    passed = bool(report.comparisons) and all(c.passed for c in report.comparisons)
    report.status = "passed" if passed and report.error is None else "failed"
    return report



def cannot_run(fmt: str, allow_code: bool) -> str | None:
    """Why deepij does not even try ``fmt`` weights (None: it tries)."""
    from deepij.inference.backends.selection import ADAPTERS

    if fmt not in ADAPTERS:
        return f"deepij cannot run {fmt} weights (it runs {', '.join(ADAPTERS)})"
    if fmt == "pytorch_state_dict" and not allow_code:
        return (
            "pytorch_state_dict weights run the bundle's Python code: allow_code=True (--allow-code) "
            "lets them"
        )
    return None


def load_outcome(error: BaseException) -> tuple[FormatStatus, str]:
    """Whether weights that raised ``error`` while loading are ``"skipped"`` (they cannot be had or run
    here) or ``"failed"`` (they are there and broken), with the reason."""
    chain = _causes(error)
    if any(isinstance(e, ChecksumError) for e in chain):
        return "failed", f"the weights are not the file the descriptor describes: {error}"
    if any(isinstance(e, ImportError) for e in chain):
        return "skipped", f"cannot run here: {error}"
    if any(isinstance(e, BundleError) for e in chain):
        return "skipped", f"the weights cannot be had here: {error}"
    if "allow_code=True" in str(error):
        return "skipped", f"the weights need the bundle's code: {error}"
    return "failed", f"the weights do not load: {error}"


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _load(model: Model, fmt: str, options: Options, report: FormatReport) -> Backend | None:
    """The loaded network, or None with ``report`` skipped or failed and the reason."""
    try:
        started = time.perf_counter()
        backend = model.backend(fmt, options.device, options.runtime)
        report.load_seconds = time.perf_counter() - started
    except (DeepijError, ImportError) as exc:
        report.status, report.error = load_outcome(exc)
        return None
    report.runtime, report.device = backend.runtime, backend.device
    return backend


def _run_cases(
    model: Model, backend: Backend, fmt: str, cases: list[Case], options: Options, report: FormatReport
) -> list[tuple[Case, Any, CaseRun]]:
    """Each case under its convention; the peak memory and the seconds of these runs go to ``report``."""
    from deepij.inference.meters import forward_meter

    runs: list[tuple[Case, Any, CaseRun]] = []

    def run_all() -> None:
        for case in cases:
            image = case_input(model.description, case)
            run = run_case(model, image, case, fmt, options, case.convention)
            runs.append((case, image, run))
            notes = [run.note, *run.prediction.notes]
            report.notes += [n for n in notes if n and n not in report.notes]

    started = time.perf_counter()
    try:
        report.peak_memory_bytes = forward_meter(backend)(run_all)
    except DeepijError as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    report.run_seconds = time.perf_counter() - started
    return runs


def _judge(
    model: Model, fmt: str, ran: tuple[Case, Any, CaseRun], options: Options, report: FormatReport
) -> list[Comparison]:
    """The case's comparisons under its convention, or under its alternative when only that reproduces."""
    case, image, run = ran
    found = compare_case(model.description, case, run.prediction, fmt, run.convention)
    if all(c.passed for c in found) or case.alternative is None:
        return found
    try:
        other = run_case(model, image, case, fmt, options, case.alternative)
    except DeepijError as exc:
        report.notes.append(f"{case.kind}: the {case.alternative} convention could not run either ({exc})")
        return found
    again = compare_case(model.description, case, other.prediction, fmt, other.convention)
    if not all(c.passed for c in again):
        report.notes.append(
            f"{case.kind}: the {case.alternative} convention ({describe_convention(case.alternative)}) "
            "does not reproduce the files either"
        )
        return found
    report.notes.append(
        f"{case.kind}: reproduced under the {case.alternative} convention "
        f"({describe_convention(case.alternative)}), not the {case.convention} one ({_misses(found)}): "
        f"{_who_made(case)}"
    )
    return again


def _misses(found: list[Comparison]) -> str:
    """What did not reproduce: per file, the elements off and the largest error (or the problem)."""
    missed = []
    for c in found:
        if c.passed:
            continue
        if c.problem:
            missed.append(f"{c.expected_file}: {c.problem}")
        else:
            off = f"{c.mismatched} of {c.elements} elements off, max abs {c.max_abs_error:.3g}"
            missed.append(f"{c.expected_file}: {off}")
    return "; ".join(missed)


def _who_made(case: Case) -> str:
    from deepij.trust.reproduce_cases import DEEPIMAGEJ

    if case.alternative == DEEPIMAGEJ:
        return "deepImageJ 2.x made these files with its own tiling"
    return "a tool that runs the whole image (pydeepimagej, another exporter) made these files"
