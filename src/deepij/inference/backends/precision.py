"""Lower precision (``precision=``): an opt-in, checked at load against float32, never silent.

- ``"float16"``: half precision on GPU runtimes. On a GPU, float16 weights and activations halve the memory
  of a pass and run on the tensor cores; on a CPU they are slower than float32 (no fp16 arithmetic in these
  engines' CPU kernels), so only torch on CUDA takes it: the module's floating-point parameters are cast to
  float16 (inputs follow; outputs are cast back to the declared type); the float32 weights are restored
  when the check fails. onnxruntime, TensorFlow, Keras, OpenVINO: not offered (their fp16 paths need a
  converted graph).
- ``"int8"`` and ``"bfloat16"``: on the CPU, for ONNX graphs run by onnxruntime or OpenVINO (the bundle's
  own, or torch weights converted): see :mod:`.cpu_precision`.

A network may not survive a lower precision (float16 activations past 65504 overflow, small differences
vanish, int8 steps are coarse), so at load the lower-precision network runs on a probe input next to the
float32 one, and it is kept only when its outputs reproduce float32 within the bundle's own reproduction
tolerance (``config.bioimageio.reproducibility_tolerance``; default rtol 1e-3, atol 1e-3, 100 mismatched
elements per million, as bioimage.io's tests use). Otherwise the model runs in float32 and a note (also a
:class:`~deepij.errors.DeepijWarning`) says why.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepij.bundle.description import ModelDescription
from deepij.errors import BackendError, DeepijWarning
from deepij.inference.backends.base import Backend

PRECISIONS = ("float32", "float16", "bfloat16", "int8")
"""Values of ``precision=``."""


@dataclass(frozen=True)
class Tolerance:
    """How far outputs may be from the reference: ``|got - ref| <= absolute + relative * |ref|`` for all
    but ``mismatched_per_million`` elements per million."""

    relative: float = 1e-3
    absolute: float = 1e-3
    mismatched_per_million: float = 100.0

    def accepts(self, reference: np.ndarray, candidate: np.ndarray) -> tuple[bool, str]:
        """Whether ``candidate`` reproduces ``reference``, and the figures in words.

        Examples
        --------
        >>> Tolerance().accepts(np.ones(1000), np.ones(1000) + 5e-4)
        (True, '0 of 1000 elements outside rtol 0.001, atol 0.001 (max |diff| 0.0005)')
        >>> Tolerance().accepts(np.ones(10), np.full(10, np.inf))[0]
        False
        """
        reference = np.asarray(reference, dtype=np.float64)
        candidate = np.asarray(candidate, dtype=np.float64)
        if reference.shape != candidate.shape:
            return False, f"shape {candidate.shape} instead of {reference.shape}"
        close = np.isclose(candidate, reference, rtol=self.relative, atol=self.absolute, equal_nan=True)
        outside = int(close.size - np.count_nonzero(close))
        with np.errstate(invalid="ignore"):
            diff = np.abs(candidate - reference)
        worst = float(np.nanmax(diff)) if diff.size and not np.isnan(diff).all() else 0.0
        allowed = self.mismatched_per_million * close.size / 1e6
        text = (
            f"{outside} of {close.size} elements outside rtol {self.relative:g}, atol {self.absolute:g} "
            f"(max |diff| {worst:.3g})"
        )
        return outside <= allowed, text


def reproduction_tolerance(description: ModelDescription, weights_format: str | None = None) -> Tolerance:
    """The bundle's ``config.bioimageio.reproducibility_tolerance`` entry for these weights (the first
    whose ``weights_formats`` is empty or names them), else the bioimage.io defaults.

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> reproduction_tolerance(open_bundle("examples/nuclei_bundle"))  # its config.bioimageio sets atol
    Tolerance(relative=0.001, absolute=0.0001, mismatched_per_million=100.0)
    """
    config = description.config if isinstance(description.config, Mapping) else {}
    bioimageio = config.get("bioimageio", {})
    entries = bioimageio.get("reproducibility_tolerance", ()) if isinstance(bioimageio, Mapping) else ()
    if isinstance(entries, Mapping):
        entries = [entries]
    for entry in entries if isinstance(entries, Sequence) else ():
        if not isinstance(entry, Mapping):
            continue
        formats = entry.get("weights_formats") or ()
        if formats and weights_format not in formats:
            continue
        default = Tolerance()
        return Tolerance(
            float(entry.get("relative_tolerance", default.relative)),
            float(entry.get("absolute_tolerance", default.absolute)),
            float(entry.get("mismatched_elements_per_million", default.mismatched_per_million)),
        )
    return Tolerance()


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise BackendError(f"precision={precision!r} is not known (expected one of {list(PRECISIONS)})")


def compare(
    expected: Sequence[Sequence[np.ndarray]],
    candidate: Backend,
    probes: Sequence[Sequence[np.ndarray]],
    tolerance: Tolerance,
) -> tuple[bool, str]:
    """Whether ``candidate``'s outputs on each probe (a list of inputs) reproduce the ``expected`` float32
    outputs on it within ``tolerance``, and the figures in words (only those that fail, when one does).
    """
    verdicts = []
    for reference, probe in zip(expected, probes, strict=True):
        try:
            got = candidate.predict(probe)
        except BackendError as error:
            return False, str(error).splitlines()[0]
        verdicts += [tolerance.accepts(r, g) for r, g in zip(reference, got, strict=True)]
    ok = all(accepted for accepted, _ in verdicts)
    return ok, "; ".join(text for accepted, text in verdicts if ok or not accepted)


def half_if_it_reproduces(backend: Any) -> Backend:
    """A torch backend switched to float16 when that reproduces its float32 outputs on a probe within the
    bundle's tolerance; else the float32 one, with the reason in its notes. (Runs on any torch device: the
    check is the same arithmetic; :func:`~deepij.inference.backends.precision_choice.apply_precision`
    offers it on CUDA only.)"""
    from deepij.inference.backends.probes import probe_inputs

    probe = probe_inputs(backend.description, larger=True, seed=7)
    reference = backend.predict(probe)
    saved = {k: v.detach().clone() for k, v in backend.module.state_dict().items()}
    backend.use_half(True)
    tolerance = reproduction_tolerance(backend.description, backend.weights.format)
    ok, figures = compare([reference], backend, [probe], tolerance)
    if ok:
        backend.notes.append(f"precision float16: checked against float32 on a probe ({figures})")
        return backend
    backend.use_half(False)
    backend.module.load_state_dict(saved)  # the float32 weights as they were, not a round trip
    return refused(
        backend, "float16", f"its outputs on a probe leave the bundle's reproduction tolerance ({figures})"
    )


def refused(backend: Backend, precision: str, reason: str) -> Backend:
    """``backend`` (float32) with a note and a :class:`~deepij.errors.DeepijWarning` saying why
    ``precision`` was refused."""
    note = f"precision={precision!r} refused, float32 runs: {reason}"
    backend.notes.append(note)
    warnings.warn(f"{backend.description.name}: {note}", DeepijWarning, stacklevel=4)
    return backend
