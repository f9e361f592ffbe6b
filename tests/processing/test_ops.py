"""Spec processing ops against hand-computed values, modes, per-channel kwargs and error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from deepij.bundle.description import (
    AxisSpec,
    ModelDescription,
    ProcessingOp,
    TensorSpec,
)
from deepij.errors import ProcessingError
from deepij.processing import apply_ops, postprocess, preprocess

SPEC = TensorSpec("raw", tuple(AxisSpec(a) for a in "bcyx"))


def tensor(values, dims="bcyx") -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=np.float32), dims=tuple(dims))


def run(data, name, spec=SPEC, references=None, **kwargs):
    return apply_ops(
        data, [ProcessingOp(name, kwargs)], spec, where="inputs['raw'].preprocessing", references=references
    )


def test_binarize_scalar_and_per_channel():
    data = tensor([[[[0.2, 0.7]], [[0.2, 0.7]]]])  # b=1, c=2, y=1, x=2
    assert run(data, "binarize", threshold=0.5).values.tolist() == [[[[False, True]], [[False, True]]]]
    per_channel = run(data, "binarize", threshold=[0.5, 0.1], axis="channel")
    assert per_channel.values.tolist() == [[[[False, True]], [[True, True]]]]


def test_clip_and_scale_linear():
    data = tensor([[[[-1.0, 0.5, 3.0]]]])
    assert run(data, "clip", min=0, max=1).values.ravel().tolist() == [0.0, 0.5, 1.0]
    assert run(data, "clip", max=0).values.ravel().tolist() == [-1.0, 0.0, 0.0]
    np.testing.assert_allclose(run(data, "scale_linear", gain=2, offset=1).values.ravel(), [-1, 2, 7])
    # 0.4 style: gain per channel, the joint axes "yx" leave the channel axis for the list.
    three = tensor(np.ones((1, 3, 1, 2)))
    scaled = run(three, "scale_linear", gain=[1, 2, 3], offset=[0, 0, 1], axes="yx")
    assert scaled.values[0, :, 0, 0].tolist() == [1.0, 2.0, 4.0]
    assert scaled.dtype == np.float32


def test_sigmoid_and_softmax():
    data = tensor([[[[0.0, np.log(3.0)]]]])
    np.testing.assert_allclose(run(data, "sigmoid").values.ravel(), [0.5, 0.75], rtol=1e-6)
    logits = tensor([[[[1.0]], [[2.0]], [[3.0]]]])  # c = 3
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(run(logits, "softmax").values.ravel(), e / e.sum(), rtol=1e-6)


def test_zero_mean_unit_variance_per_sample_and_per_dataset():
    data = tensor([[[[1, 2, 3, 4]]], [[[10, 10, 10, 30]]]])  # b=2
    std0 = np.sqrt(1.25)  # population std of 1..4
    out = run(data, "zero_mean_unit_variance", mode="per_sample", axes="yx")
    np.testing.assert_allclose(out.values[0].ravel(), (np.arange(1, 5) - 2.5) / (std0 + 1e-6), rtol=1e-6)
    np.testing.assert_allclose(
        out.values[1].ravel(), (np.array([10, 10, 10, 30]) - 15) / (np.sqrt(75) + 1e-6), rtol=1e-6
    )
    everything = np.array([1, 2, 3, 4, 10, 10, 10, 30], dtype=np.float64)
    dataset = run(data, "zero_mean_unit_variance", mode="per_dataset", axes="yx")
    np.testing.assert_allclose(
        dataset.values.ravel(), (everything - everything.mean()) / (everything.std() + 1e-6), rtol=1e-5
    )
    # 0.5: no axes -> the whole tensor jointly; batch named -> the same.
    np.testing.assert_allclose(run(data, "zero_mean_unit_variance").values, dataset.values, rtol=1e-6)
    np.testing.assert_allclose(
        run(data, "zero_mean_unit_variance", axes="byx").values, dataset.values, rtol=1e-6
    )


def test_looped_dims_are_separate_samples_unless_per_dataset():
    data = xr.DataArray(
        np.array([[[[[0, 2]]]], [[[[10, 30]]]]], dtype=np.float32), dims=("t", "b", "c", "y", "x")
    )
    out = run(data, "zero_mean_unit_variance", mode="per_sample", axes="yx")
    np.testing.assert_allclose(out.values.ravel(), [-1, 1, -1, 1], atol=1e-5)
    pooled = run(data, "zero_mean_unit_variance", mode="per_dataset", axes="yx")
    values = np.array([0, 2, 10, 30.0])
    np.testing.assert_allclose(
        pooled.values.ravel(), (values - values.mean()) / (values.std() + 1e-6), rtol=1e-5
    )


def test_fixed_normalisation_per_channel():
    data = tensor([[[[3.0]], [[6.0]]]])  # c = 2
    out = run(data, "fixed_zero_mean_unit_variance", mean=[1, 2], std=[2, 4], axis="channel")
    np.testing.assert_allclose(out.values.ravel(), [2 / (2 + 1e-6), 4 / (4 + 1e-6)], rtol=1e-6)
    legacy = run(data, "zero_mean_unit_variance", mode="fixed", mean=[1, 2], std=[2, 4], axes="yx")
    np.testing.assert_allclose(legacy.values, out.values)


def test_scale_range_linear_percentiles_no_clipping():
    data = tensor(np.arange(11.0).reshape(1, 1, 1, 11))
    out = run(data, "scale_range", mode="per_sample", axes="yx", min_percentile=10, max_percentile=90)
    np.testing.assert_allclose(out.values.ravel(), (np.arange(11.0) - 1) / (8 + 1e-6), rtol=1e-6)
    assert out.values.min() < 0 and out.values.max() > 1
    # Linear interpolation between ranks: the 50th percentile of [0, 1, 2, 3] is 1.5.
    four = tensor(np.arange(4.0).reshape(1, 1, 1, 4))
    half = run(four, "scale_range", axes="yx", min_percentile=50, max_percentile=100)
    np.testing.assert_allclose(half.values.ravel(), (np.arange(4.0) - 1.5) / (1.5 + 1e-6), rtol=1e-6)
    # Per channel (channel not among the joint axes).
    two = tensor(np.array([[[[0, 1]], [[0, 10]]]]))
    per_channel = run(two, "scale_range", axes="yx")
    np.testing.assert_allclose(per_channel.values.ravel(), [0, 1, 0, 1], atol=1e-6)


def test_scale_range_and_scale_mean_variance_with_a_reference_tensor():
    data = tensor(np.array([[[[0.0, 2.0]]]]))
    reference = tensor(np.array([[[[10.0, 20.0]]]]))
    out = run(data, "scale_range", axes="yx", reference_tensor="ref", references={"ref": reference})
    np.testing.assert_allclose(out.values.ravel(), [-10 / (10 + 1e-6), -8 / (10 + 1e-6)], rtol=1e-6)
    matched = run(
        data, "scale_mean_variance", axes="yx", reference_tensor="ref", references={"ref": reference}
    )
    # (x - 1)/(1 + eps) * (5 + eps) + 15
    np.testing.assert_allclose(matched.values.ravel(), [10.0, 20.0], rtol=1e-5)


def test_ensure_dtype_casts():
    out = run(tensor([[[[1.7, 300.0]]]]), "ensure_dtype", dtype="uint8")
    assert out.dtype == np.uint8 and out.values.ravel()[0] == 1


@pytest.mark.parametrize(
    ("name", "kwargs", "pattern"),
    [
        ("normalise", {}, r"inputs\['raw'\].preprocessing\[0\].name: unknown processing op 'normalise'"),
        ("scale_linear", {"gain": "two"}, r"\[0\].kwargs.gain: scale_linear on tensor 'raw': not a number"),
        ("scale_linear", {"gain": [1, 2, 3, 4]}, r"kwargs.gain: .*4 values but no single axis"),
        ("clip", {}, r"kwargs.min: clip on tensor 'raw': needs min, max or both"),
        ("clip", {"min": 2, "max": 1}, r"kwargs.max: .*max is not above min"),
        ("scale_range", {"mode": "sometimes"}, r"kwargs.mode: .*unknown mode \(found 'sometimes'"),
        ("scale_range", {"min_percentile": 90, "max_percentile": 10}, r"percentiles out of order"),
        ("scale_range", {"reference_tensor": "nope"}, r"kwargs.reference_tensor: .*no such tensor"),
        ("scale_range", {"axes": "zyx"}, r"kwargs.axes: .*names axes the tensor does not have"),
        ("zero_mean_unit_variance", {"gain": 1}, r"kwargs.gain: .*unknown kwarg"),
        ("scale_mean_variance", {}, r"kwargs.reference_tensor: .*missing kwarg"),
        ("ensure_dtype", {"dtype": "float128x"}, r"kwargs.dtype: .*unknown data type"),
        ("softmax", {"axis": "z"}, r"kwargs.axis: .*no such axis"),
    ],
)
def test_bad_ops_and_kwargs_name_tensor_op_and_kwarg(name, kwargs, pattern):
    with pytest.raises(ProcessingError, match=pattern):
        run(tensor(np.ones((1, 1, 2, 2))), name, **kwargs)


def test_model_chains_cast_to_declared_types():
    raw = TensorSpec(
        "raw",
        tuple(AxisSpec(a) for a in "bcyx"),
        data_type="float32",
        processing=(ProcessingOp("scale_linear", {"gain": 0.5}),),
    )
    out = TensorSpec(
        "out",
        tuple(AxisSpec(a) for a in "bcyx"),
        data_type="uint8",
        processing=(ProcessingOp("binarize", {"threshold": 1.0}),),
    )
    root = Path("/nonexistent")
    description = ModelDescription("m", "0.4.10", root, root / "rdf.yaml", (raw,), (out,), {})
    image = xr.DataArray(np.array([[[[2, 4]]]], dtype=np.uint16), dims=tuple("bcyx"))
    ready = preprocess(description, {"raw": image})
    assert ready["raw"].dtype == np.float32 and ready["raw"].values.ravel().tolist() == [1.0, 2.0]
    done = postprocess(description, {"out": ready["raw"]}, {"raw": image})
    assert done["out"].dtype == np.uint8 and done["out"].values.ravel().tolist() == [0, 1]
