"""The inputs a lower precision is calibrated and checked on: the bundle's own, pre-processed, where it can.

``precision="int8"`` takes its activation ranges from real inputs, and both it and ``"bfloat16"`` are kept
only when they reproduce float32 on them (:mod:`.cpu_precision`). The inputs, in order of preference:

- the bundle's test input of every model input (else its sample input), after the bundle's spec
  pre-processing (the network sees pre-processed data), cast to the declared data type. The held-out input
  of the check is the same image mirrored along its spatial axes: other content in the same value range;
- random data (standard normal: what a normalising pre-processing gives), 128 pixels a side (32 for 3-D),
  and another random draw one size up as the held-out input, when the bundle ships no test or sample input,
  when one cannot be read or does not fit the input's axes, or when the bundle pre-processes in ImageJ
  (macros and Java steps run in the pipeline's ImageJ; the backends never start one). The note says which
  and why: activation ranges from random data may not fit real images, which the check on real images
  would then catch only at run time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from deepij.bundle.description import ModelDescription, TensorSpec
from deepij.errors import DeepijError

RANDOM_SIDE = 128
"""Target size of each spatial axis of random calibration data (2-D; 32 for 3-D)."""


@dataclass(frozen=True)
class CalibrationInputs:
    """Inputs in the descriptor's axes and types: ``inputs`` to calibrate and check on, ``held_out`` to
    check on too, and ``source`` / ``held_out_source`` saying in words where they come from."""

    inputs: list[np.ndarray]
    held_out: list[np.ndarray]
    source: str
    held_out_source: str

    def digest(self) -> str:
        """sha256 of the calibration inputs (shape, dtype and bytes): part of a quantized graph's key."""
        digest = hashlib.sha256()
        for array in self.inputs:
            digest.update(f"{array.shape} {array.dtype}\n".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


class _NoBundleInputs(Exception):
    """Why the bundle's own inputs cannot be used (the note's words)."""


def calibration_inputs(description: ModelDescription) -> CalibrationInputs:
    """The bundle's test (or sample) inputs after its spec pre-processing, else random data (module notes);
    ``source`` says which, e.g. ``"the bundle's test input after its spec pre-processing"``."""
    try:
        arrays, kind = _bundle_inputs(description)
        ready = _preprocessed(description, arrays)
    except (_NoBundleInputs, DeepijError, OSError, ValueError, KeyError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return _random(description, reason)
    mirrored = [np.ascontiguousarray(_mirror(a, s)) for a, s in zip(ready, description.inputs, strict=True)]
    processed = " after its spec pre-processing" if any(s.processing for s in description.inputs) else ""
    return CalibrationInputs(
        ready, mirrored, f"the bundle's {kind} input{processed}", "the same image mirrored"
    )


def _bundle_inputs(description: ModelDescription) -> tuple[list[np.ndarray], str]:
    from deepij.bundle.tensor_files import read_tensor_file

    if description.deepimagej.preprocess:
        raise _NoBundleInputs("the bundle pre-processes in ImageJ, which the backends do not run")
    kinds = {"test" if s.test_tensor else "sample" for s in description.inputs}
    arrays = []
    for spec in description.inputs:
        relative = spec.test_tensor or spec.sample_tensor
        if relative is None:
            raise _NoBundleInputs(f"the bundle ships no test or sample input for {spec.name!r}")
        array = read_tensor_file(description, relative)
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            raise _NoBundleInputs(f"{relative} is not a numeric array")
        arrays.append(_in_axes(array, spec, relative))
    return arrays, " and ".join(sorted(kinds, reverse=True))


def _in_axes(array: np.ndarray, spec: TensorSpec, relative: str) -> np.ndarray:
    """``array`` in the tensor's axes: as stored, or with the batch axis the file leaves out."""
    axes = spec.axes_str
    if array.ndim == len(axes) - 1 and axes.startswith("b"):
        array = array[np.newaxis]
    if array.ndim != len(axes):
        raise _NoBundleInputs(f"{relative} has shape {array.shape}, which does not fit axes {axes!r}")
    return array


def _preprocessed(description: ModelDescription, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The arrays after the inputs' spec pre-processing, in their declared data types."""
    if not any(spec.processing for spec in description.inputs):
        return [_declared(a, s) for a, s in zip(arrays, description.inputs, strict=True)]
    import xarray as xr

    from deepij.processing.spec import preprocess

    raw = {
        s.name: xr.DataArray(a, dims=tuple(s.axes_str))
        for a, s in zip(arrays, description.inputs, strict=True)
    }
    ready = preprocess(description, raw)
    return [_declared(np.asarray(ready[s.name].values), s) for s in description.inputs]


def _declared(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    try:
        dtype = np.dtype(spec.data_type)
    except TypeError:
        dtype = np.dtype(np.float32)
    return np.ascontiguousarray(array, dtype=dtype)


def _mirror(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    spatial = tuple(i for i, letter in enumerate(spec.axes_str) if letter in "zyx")
    return np.flip(array, axis=spatial) if spatial else array


def _random(description: ModelDescription, reason: str) -> CalibrationInputs:
    from deepij.inference.backends.probes import probe_inputs

    three_d = any(sum(a.id in "zyx" for a in s.axes) == 3 for s in description.inputs)
    side = None if three_d else RANDOM_SIDE
    return CalibrationInputs(
        probe_inputs(description, seed=11, side=side),
        probe_inputs(description, larger=True, seed=12, side=side),
        f"random data ({reason})",
        "another random draw",
    )
