"""Apply a tensor's spec pre- or post-processing chain (``TensorSpec.processing``) in numpy.

Steps run in the order given, each on the result of the previous one, and each computes its statistics on
the whole tensor it receives (bioimageio.core computes every statistic of a chain once, on the tensor before
the chain: the two agree whenever statistics ops come first, as in real bundles). ``reference_tensor``
statistics come from the raw inputs (before pre-processing) or, in post-processing, from the network's
outputs before post-processing. Integer images are turned into float32 before the first step; the result
is cast to the tensor's declared ``data_type`` (0.5's implied ``ensure_dtype`` at both ends).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from deepij.bundle.description import ModelDescription, ProcessingOp, TensorSpec
from deepij.processing.chain import prepare_chain


def apply_ops(
    data: xr.DataArray,
    ops: Sequence[ProcessingOp],
    tensor: TensorSpec,
    *,
    where: str,
    descriptor: Path | None = None,
    references: Mapping[str, xr.DataArray] | None = None,
) -> xr.DataArray:
    """Run ``ops`` on one tensor: the chain :func:`~deepij.processing.chain.prepare_chain` prepares on it
    (its parameters, with the statistics read from numpy), applied to the whole tensor.

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> spec = open_bundle("examples/nuclei_bundle").inputs[0]
    >>> image = xr.DataArray(np.array([[[[0, 10], [20, 30]]]], np.uint16), dims=("b", "c", "y", "x"))
    >>> out = apply_ops(image, [ProcessingOp("scale_linear", {"gain": 2.0, "offset": 1.0})], spec,
    ...                 where="inputs['input'].preprocessing")
    >>> out.dtype, out.values.ravel().tolist()  # float32, the input's declared type
    (dtype('float32'), [1.0, 21.0, 41.0, 61.0])
    """
    chain = prepare_chain(data, ops, tensor, where=where, descriptor=descriptor, references=references)
    return chain(data)


def declared_dtype(tensor: TensorSpec) -> np.dtype | None:
    """The tensor's declared ``data_type`` as a numpy dtype (None when it names none numpy knows)."""
    try:
        return np.dtype(tensor.data_type)
    except TypeError:
        return None


def _cast(data: xr.DataArray, tensor: TensorSpec) -> xr.DataArray:
    dtype = declared_dtype(tensor)
    return data if dtype is None or data.dtype == dtype else data.astype(dtype)


def preprocess(description: ModelDescription, inputs: Mapping[str, xr.DataArray]) -> dict[str, xr.DataArray]:
    """Every input's spec pre-processing, statistics on the whole image (never per tile).

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> description = open_bundle("examples/nuclei_bundle")  # scale_range, percentiles 1 and 99.8
    >>> image = np.load("examples/nuclei_bundle/test_input.npy")
    >>> ready = preprocess(description, {"input": xr.DataArray(image, dims=("b", "c", "y", "x"))})
    >>> ready["input"].dtype, [round(float(np.percentile(ready["input"], q)), 3) for q in (1.0, 99.8)]
    (dtype('float32'), [0.0, 1.0])
    """
    raw = dict(inputs)
    result = {}
    for spec in description.inputs:
        where = f"inputs[{spec.name!r}].preprocessing"
        data = apply_ops(
            raw[spec.name],
            spec.processing,
            spec,
            where=where,
            descriptor=description.descriptor,
            references=raw,
        )
        result[spec.name] = _cast(data, spec)
    return result


def postprocess(
    description: ModelDescription,
    outputs: Mapping[str, xr.DataArray],
    raw_inputs: Mapping[str, xr.DataArray] | None = None,
) -> dict[str, xr.DataArray]:
    """Every output's spec post-processing; ``reference_tensor`` may name raw inputs or outputs."""
    references = {**(raw_inputs or {}), **outputs}
    result = {}
    for spec in description.outputs:
        where = f"outputs[{spec.name!r}].postprocessing"
        data = apply_ops(
            outputs[spec.name],
            spec.processing,
            spec,
            where=where,
            descriptor=description.descriptor,
            references=references,
        )
        result[spec.name] = _cast(data, spec)
    return result
