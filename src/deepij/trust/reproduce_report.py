"""What ``deepij test`` reports: per weights format, whether the bundle's own expected outputs were reproduced
(:class:`~deepij.trust.reproduce_compare.Comparison`), how tiled runs differ from the whole-image run
(:class:`TiledComparison`), the runtime and the peak memory; as text for a person and as JSON for a script.

Statuses: a format ``"passed"``, ``"failed"`` (its weights are there but do not load, an output outside
its tolerance, or the run failed) or was ``"skipped"`` (its weights cannot be had or run here: a file
missing or not downloadable, its framework not installed, a format deepij does not run, code that needs
``allow_code``; ``error`` says which). The bundle ``"passed"`` when at least one format passed and none
failed (exit code 0), ``"failed"`` when one failed (1), ``"nothing tested"`` when every format was
skipped (2: no verdict, the message lists why) and ``"nothing to compare"`` when it ships no expected
outputs (2).

Each comparison says the convention its run followed (``"zoo"`` or ``"deepImageJ"``,
:mod:`deepij.trust.reproduce_run`); each case the convention the bundle's files were made with and the
alternative tried when that one does not reproduce them.

Examples
--------
>>> report = BundleTestReport("b/", "a model", "0.5.4", [], [], "nothing to compare",
...                           "no test tensors, no deepImageJ example")
>>> report.exit_code, report.to_dict()["status"]
(2, 'nothing to compare')
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from deepij.trust.reproduce_compare import Comparison, Pixel, Tolerance

FormatStatus = Literal["passed", "failed", "skipped"]
BundleStatus = Literal["passed", "failed", "nothing tested", "nothing to compare"]
EXIT_CODES = {"passed": 0, "failed": 1, "nothing tested": 2, "nothing to compare": 2}


@dataclass(frozen=True)
class TiledComparison:
    """One output of a tiled run against the same output of the whole-image run.

    Attributes
    ----------
    tiling : str
        ``"deepImageJ default tile"`` (what deepImageJ and ``tile="suggested"`` use), ``"small tile"``, or
        ``"tile asked for"``.
    output : str
        The output compared.
    tile : dict of str to int
        Tile size per tiled input axis; ``n_tiles`` tiles.
    seams : dict of str to list of int
        Per tiled input axis, the input pixels where one tile's valid region ends and the next one's begins.
    border : dict of str to int
        Per tiled input axis, how many input pixels from the image border count as the border: the
        network's receptive radius (measured, else the declared padding). There the whole-image run sees the
        network's own padding and a tiled run sees mirrored pixels, so the two differ whatever the halo.
    max_abs_inside, max_abs_border : float
        Largest ``|tiled - whole|`` away from the border and at it.
    mismatched_inside : int
        Inside elements outside ``tolerance`` (the reproduction tolerance, made looser).
    seams_found : bool
        Whether inside elements differ beyond ``tolerance``: tiles change the result away from the border,
        which a halo smaller than the receptive field does at the seams.
    worst_inside : Pixel or None
        The inside element that differs most; ``worst_distance_to_seam`` is its distance (input pixels)
        to the nearest seam (None without seams).
    problem : str or None
        Why the outputs could not be compared (shapes differ, the run failed).
    crop : dict of str to list of int, or None
        Per cropped axis, the ``[start, stop)`` input pixels both runs took instead of the whole input, so
        that the comparison costs a few tiles (None: the whole input); ``seams`` and positions are then
        relative to the crop.
    """

    tiling: str
    output: str
    tile: dict[str, int]
    n_tiles: int
    seams: dict[str, list[int]]
    border: dict[str, int]
    max_abs_inside: float
    max_abs_border: float
    mismatched_inside: int
    seams_found: bool
    tolerance: Tolerance
    worst_inside: Pixel | None = None
    worst_distance_to_seam: int | None = None
    problem: str | None = None
    crop: dict[str, list[int]] | None = None


@dataclass
class FormatReport:
    """How one weights format did.

    ``run_seconds`` is the whole-image runs (pre/post-processing included), ``load_seconds`` loading the
    network; ``peak_memory_bytes`` the peak memory above the start of those runs on their device (resident
    memory on the CPU, the framework's peak on a GPU). ``receptive_radius`` is the measured receptive
    field (input pixels per tiled axis, None when not measured; ``receptive_passes`` the forward passes the
    measure took, 0 when it was known already), ``declared_padding`` what the halo makes tiles keep;
    ``tiled_seconds`` what the tiled comparisons took, the receptive field included.
    """

    weights_format: str
    status: FormatStatus
    runtime: str = ""
    device: str = ""
    load_seconds: float = 0.0
    run_seconds: float = 0.0
    peak_memory_bytes: int = 0
    comparisons: list[Comparison] = field(default_factory=list)
    tiled: list[TiledComparison] = field(default_factory=list)
    receptive_radius: dict[str, int] | None = None
    receptive_passes: int | None = None
    declared_padding: dict[str, int] = field(default_factory=dict)
    tiled_seconds: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def seams_found(self) -> bool:
        return any(t.seams_found for t in self.tiled)


@dataclass
class BundleTestReport:
    """What :func:`deepij.test_bundle` found.

    ``cases`` describes what was compared (inputs, processing, expected files); ``exit_code`` is what
    ``deepij test`` exits with.
    """

    bundle: str
    name: str
    format_version: str
    cases: list[dict[str, Any]]
    formats: list[FormatReport]
    status: BundleStatus
    message: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def format(self, name: str) -> FormatReport:
        """The report of one weights format (KeyError naming the formats tested)."""
        for report in self.formats:
            if report.weights_format == name:
                return report
        tested = [f.weights_format for f in self.formats]
        raise KeyError(f"no weights format {name!r} in this report ({tested})")

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (non-finite numbers as None), what :meth:`to_json` writes."""
        data = _plain(asdict(self))
        data["exit_code"] = self.exit_code
        data["seams_found"] = any(f.seams_found for f in self.formats)
        for report, entry in zip(self.formats, data["formats"], strict=True):
            entry["seams_found"] = report.seams_found
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_text(self) -> str:
        """The report for a person: one block per weights format, seams called out."""
        lines = [f"deepij test: {self.name} ({self.format_version}) {self.bundle}"]
        for case in self.cases:
            expected = ", ".join(case["expected"])
            other = f", else {case['alternative']}" if case.get("alternative") else ""
            lines.append(
                f"  compares {case['kind']} ({case['processing']} processing, {case['convention']} "
                f"convention{other}): {', '.join(case['inputs'])} -> {expected}"
            )
        lines += [f"  note: {n}" for n in self.notes]
        for report in self.formats:
            lines += _format_lines(report)
        total = sum(f.status != "skipped" for f in self.formats)
        lines.append(f"result: {self.status}" + (f" ({self.message})" if self.message else f" ({total} ran)"))
        return "\n".join(lines)


def _format_lines(report: FormatReport) -> list[str]:
    head = f"{report.weights_format}: {report.status.upper()}"
    if report.status == "skipped" or (report.error and not report.comparisons):
        return [f"{head}: {report.error}"]
    lines = [
        f"{head}  run {report.run_seconds:.2f} s (load {report.load_seconds:.2f} s), peak memory "
        f"{report.peak_memory_bytes / 1e6:.0f} MB, {report.runtime} on {report.device}"
    ]
    if report.error:
        lines.append(f"  error: {report.error}")
    for c in report.comparisons:
        mark = "ok  " if c.passed else "FAIL"
        how = f" [{c.convention}]" if c.convention else ""
        lines.append(f"  {mark} {c.case}{how}: {c.output} vs {c.expected_file}: {_figures(c)}")
        for pixel in c.worst if not c.passed else []:
            lines.append(
                f"       at {_position(pixel.position)}: got {pixel.got:.6g}, expected {pixel.expected:.6g}"
            )
    if report.receptive_radius is not None:
        passes = f" ({report.receptive_passes} passes)" if report.receptive_passes else ""
        lines.append(
            f"  receptive radius {_axes(report.receptive_radius)}{passes}; declared padding "
            f"{_axes(report.declared_padding)}"
        )
    if report.tiled:
        lines.append(f"  tiled comparisons: {report.tiled_seconds:.2f} s")
    lines += [f"  note: {n}" for n in report.notes]
    for t in report.tiled:
        lines.append(_tiled_line(t))
    return lines


def _figures(c: Comparison) -> str:
    if c.problem:
        return c.problem
    return (
        f"max abs {c.max_abs_error:.2e}, max rel {c.max_rel_error:.2e}, mismatched "
        f"{c.mismatched_per_million:.1f} per million ({c.mismatched} of {c.elements}; "
        f"{c.tolerance.describe()})"
    )


def _tiled_line(t: TiledComparison) -> str:
    tiles = f"{t.n_tiles} tile{'s' if t.n_tiles != 1 else ''}"
    crop = f" on input {_window(t.crop)}" if t.crop else ""
    where = f"  tiled ({t.tiling} {_axes(t.tile)}, {tiles}{crop}) {t.output}"
    if t.problem:
        return f"{where}: {t.problem}"
    text = (
        f"{where}: inside max abs {t.max_abs_inside:.2e}, border ({_axes(t.border)} px) "
        f"max abs {t.max_abs_border:.2e}"
    )
    if t.seams_found and t.worst_inside is not None:
        seam = f", {t.worst_distance_to_seam} px from a seam" if t.worst_distance_to_seam is not None else ""
        text += (
            f"\n    SEAMS: {t.mismatched_inside} inside elements differ by more than "
            f"atol {t.tolerance.absolute:.0e} + rtol {t.tolerance.relative:.0e} ({t.tolerance.source}); "
            "worst at "
            f"{_position(t.worst_inside.position)}{seam} (tiled {t.worst_inside.got:.6g}, whole "
            f"{t.worst_inside.expected:.6g})"
        )
    return text


def _axes(values: dict[str, int]) -> str:
    return ", ".join(f"{a} {v}" for a, v in values.items()) or "-"


def _window(crop: dict[str, list[int]]) -> str:
    return ", ".join(f"{a} {w[0]}:{w[1]}" for a, w in crop.items())


def _position(position: dict[str, int | str]) -> str:
    return ", ".join(f"{d}={i}" for d, i in position.items())


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
