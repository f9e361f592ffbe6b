"""What a bundle ships to be reproduced (the *cases* of ``deepij test``), and which tiling convention made it.

- **test tensors**: the spec's test inputs and outputs (0.5 ``test_tensor``, 0.3/0.4 ``test_inputs`` /
  ``test_outputs``). 0.4 and 0.5 run them with the bundle's spec ops, as the zoo's ``bioimageio test`` does;
  0.3 bundles (made by deepImageJ) with their deepImageJ steps, the way deepImageJ made the outputs.
- **deepImageJ example**: ``exampleImage.tif`` through the deepImageJ steps (ImageJ macros, Java) against
  ``resultImage.tif`` and the result table (``resultTable.csv``), as ``config.deepimagej.test_information``
  names them (else those usual names), in bundles with a ``config.deepimagej`` section.

Each case has a *convention* (FORMATS.md section 6, "Two conventions"), the way the files it expects were
made, and may have an *alternative* one, a way the same files were also made by some bundles' tools:

- test tensors: the zoo's convention (the image as it is, one unpadded pass), as bioimageio.core makes and
  checks every ``test_output``. A 0.3/0.4 bundle that deepImageJ 2.x wrote has test tensors from
  deepImageJ's own run (its ``exampleImage.npy`` / ``resultImage.npy``): deepImageJ's convention is their
  alternative.
- deepImageJ example: deepImageJ's convention (its default tile, mirror-padded, see
  :mod:`deepij.trust.reproduce_run`); the zoo's is the alternative (pydeepimagej and other Python
  exporters ran the whole image through their framework to write ``resultImage``).

Examples
--------
>>> Expected(None, "resultTable.csv").is_table
True
>>> Case(TEST_TENSORS, {"raw": "in.npy"}, (Expected("out", "out.npy"),), "spec", ZOO).describe()["convention"]
'zoo'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deepij.errors import ArgumentError, BundleError
from deepij.trust.reproduce_compare import Comparison, Tolerance, failed_comparison

if TYPE_CHECKING:
    from deepij.bundle.description import ModelDescription

TEST_TENSORS = "test tensors"
DEEPIMAGEJ_EXAMPLE = "deepImageJ example"
ZOO = "zoo"
"""The zoo's convention: the image as it is, in one unpadded pass (``tile="image"``)."""
DEEPIMAGEJ = "deepImageJ"
"""deepImageJ's convention: its default tile, mirror-padded (``tile="suggested"``)."""
EXAMPLE_INPUTS = ("exampleImage.tif", "exampleImage.tiff")
EXAMPLE_OUTPUTS = ("resultImage.tif", "resultImage.tiff", "resultTable.csv")
"""The names deepImageJ gives a bundle's example files when ``test_information`` does not name them."""
TABLE_SUFFIXES = (".csv",)
IMAGE_SUFFIXES = (".npy", ".tif", ".tiff")


@dataclass(frozen=True)
class Expected:
    """A file of expected values: for ``output`` (None: matched by content, deepImageJ examples)."""

    output: str | None
    file: str

    @property
    def is_table(self) -> bool:
        return self.file.lower().endswith(TABLE_SUFFIXES)


@dataclass(frozen=True)
class Case:
    """Inputs to run (input name -> bundle-relative file), the processing to run them with, what to expect,
    the convention the expected files were made with and the alternative one (None: no other)."""

    kind: str
    inputs: Mapping[str, str]
    expected: tuple[Expected, ...]
    processing: str
    convention: str
    alternative: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "processing": self.processing,
            "convention": self.convention,
            "alternative": self.alternative,
            "inputs": list(self.inputs.values()),
            "expected": [e.file for e in self.expected],
        }


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
        mode = choose_mode(description, processing or ("auto" if legacy else "spec"))
        alternative = DEEPIMAGEJ if made_by_deepimagej(description) else None
        cases.append(Case(TEST_TENSORS, tensors[0], tensors[1], mode, ZOO, alternative))
    example = _example_case(description, notes)
    if example is not None:
        same = (
            tensors is not None
            and set(example[0].values()) == set(tensors[0].values())
            and {e.file for e in example[1]} <= {e.file for e in tensors[1]}
        )
        if not same:
            mode = choose_mode(description, processing or "auto")
            cases.append(Case(DEEPIMAGEJ_EXAMPLE, example[0], example[1], mode, DEEPIMAGEJ, ZOO))
    return cases, notes


def made_by_deepimagej(description: ModelDescription) -> bool:
    """Whether deepImageJ 2.x may have written the bundle and its test tensors: a 0.3 or 0.4 descriptor with
    deepImageJ's test information or steps (deepImageJ never wrote 0.5 descriptors)."""
    from deepij.pipeline.steps import has_imagej_steps

    old = description.format_version.startswith(("0.3", "0.4"))
    return old and bool(description.deepimagej.test_information or has_imagej_steps(description))


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
    inputs = [f for f in named_inputs or list(EXAMPLE_INPUTS) if in_bundle(description, f)]
    outputs = [f for f in named_outputs or list(EXAMPLE_OUTPUTS) if in_bundle(description, f)]
    lacking = [f for f in (*named_inputs, *named_outputs) if not in_bundle(description, f)]
    if lacking:
        notes.append(f"config.deepimagej.test_information names {lacking}, not in the bundle")
    outputs = [f for f in outputs if f.lower().endswith(TABLE_SUFFIXES + IMAGE_SUFFIXES)]
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


def in_bundle(description: ModelDescription, file: str) -> bool:
    try:
        return description.path(file).is_file()
    except BundleError:
        return False


# --- cases that cannot run ------------------------------------------------------------------------------


def unusable(description: ModelDescription, case: Case) -> list[Comparison]:
    """Failed comparisons for a case whose files are not in the bundle, or differ from the sha256 the
    descriptor gives them (empty when the case can run)."""
    return _missing(description, case) or _mismatched(description, case)


def _missing(description: ModelDescription, case: Case) -> list[Comparison]:
    absent = [
        f for f in (*case.inputs.values(), *(e.file for e in case.expected)) if not in_bundle(description, f)
    ]
    if not absent:
        return []
    return _refused(case, f"not in the bundle: {absent}")


def _mismatched(description: ModelDescription, case: Case) -> list[Comparison]:
    """Even when the model was loaded with ``verify=False``: an expected output that is not the file
    described is no reference, and other inputs give other outputs."""
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
    return _refused(case, "; ".join(problems)) if problems else []


def _refused(case: Case, problem: str) -> list[Comparison]:
    tolerance = Tolerance(math.nan, math.nan, math.nan, "not applied")
    return [failed_comparison(case.kind, e.output or "?", e.file, tolerance, problem) for e in case.expected]


def case_input(description: ModelDescription, case: Case) -> Any:
    """What ``predict`` takes: test tensors as arrays (by input name when several), an example as its file."""
    from deepij.bundle import read_tensor_file

    images = {}
    for name, file in case.inputs.items():
        path = description.path(file)
        # a .npy is read (and refused, naming file and field, when it is not one); an image file is predict's
        images[name] = read_tensor_file(description, file) if path.suffix.lower() == ".npy" else path
    return images if len(images) > 1 else next(iter(images.values()))
