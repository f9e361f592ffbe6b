"""``predict`` on lazy images (dask arrays) gives what the in-memory run gives, and both give what numpy and
the network's own eager forward pass give: NaN and infinite pixels in each ``non_finite`` mode, spec ops
with statistics before and after the network on chunks that do not follow the tiles, and ``precision``
passed on to the network the tile tasks call."""

from __future__ import annotations

import dataclasses

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from deepij.bundle.description import ProcessingOp
from deepij.errors import DeepijWarning, InputError
from deepij.inference.lazy_statistics import DaskStats
from deepij.pipeline import Model
from deepij.processing.stream import stream_processing
from support.models import describe, write_torchscript_convnet

EPS = 1e-6
OPS = {
    "zero_mean_unit_variance": ProcessingOp("zero_mean_unit_variance", {"mode": "per_sample", "axes": "yx"}),
    "scale_range": ProcessingOp(
        "scale_range", {"mode": "per_sample", "axes": "yx", "min_percentile": 1.0, "max_percentile": 99.0}
    ),
    "scale_linear": ProcessingOp("scale_linear", {"gain": 2.0, "offset": -1.0}),
}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """A TorchScript convnet (receptive radius 2) and its eager torch module (the oracle)."""
    return write_torchscript_convnet(tmp_path_factory.mktemp("lazy") / "net.pt", kernel_sizes=(3, 3))


def with_ops(net, pre=(), post=()) -> Model:
    description = describe(net)
    given = dataclasses.replace(description.inputs[0], processing=tuple(pre))
    made = dataclasses.replace(description.outputs[0], processing=tuple(post))
    return Model(dataclasses.replace(description, inputs=(given,), outputs=(made,)))


@pytest.fixture(scope="module")
def models(net):
    loaded = {name: with_ops(net, [op]) for name, op in OPS.items()}
    yield loaded
    for model in loaded.values():
        model.close()


def lazy(values: np.ndarray, chunks=(1, 1, 24, 40)) -> xr.DataArray:
    return xr.DataArray(da.from_array(values, chunks=chunks), dims=("b", "c", "y", "x"))


def normalised(op: str, image: np.ndarray, ignore: bool) -> np.ndarray:
    """The op in numpy (float64), as the zoo defines it; ``ignore``: statistics of the finite pixels, and 0
    at the others (what the network then sees)."""
    x = image.astype(np.float64)
    values = x[np.isfinite(x)] if ignore else x
    with np.errstate(invalid="ignore"):
        if op == "zero_mean_unit_variance":
            result = (x - values.mean()) / (values.std() + EPS)
        elif op == "scale_range":
            low, high = np.percentile(values, [1.0, 99.0])
            result = (x - low) / (high - low + EPS)
        else:
            result = x * 2.0 - 1.0
    if ignore:
        result[~np.isfinite(image)] = 0.0
    return result.astype(np.float32)


def oracle(net, op: str, image: np.ndarray, mode: str) -> np.ndarray:
    ignore = mode == "ignore"
    expected = net.forward(normalised(op, image, ignore))[0]
    if ignore:
        expected[~np.isfinite(image)] = np.nan
    return expected


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("mode", ["raise", "ignore", "propagate"])
def test_non_finite_pixels_in_memory_and_lazy_agree_with_numpy(models, net, op, bad, mode):
    image = (np.random.default_rng(7).random((1, 1, 64, 64)) * 100).astype(np.float32)
    image[0, 0, 10, 20] = bad
    model = models[op]
    if mode == "raise":
        with pytest.raises(InputError) as in_memory:
            model.predict(image, processing="spec")
        with pytest.raises(InputError) as lazily:
            model.predict(lazy(image), processing="spec")
        assert str(lazily.value) == str(in_memory.value)
        assert "1 pixel is NaN or infinite (the first at b=0, c=0, y=10, x=20" in str(lazily.value)
        return
    eager = model.predict(image, processing="spec", non_finite=mode)
    result = model.predict(lazy(image), processing="spec", non_finite=mode)
    values = result.images["output"]
    assert isinstance(values.data, da.Array)
    expected = oracle(net, op, image, mode)
    reached = ~np.isfinite(expected)
    # NaN everywhere where a whole-image statistic becomes NaN, else within the receptive field only
    statistic_nan = op == "zero_mean_unit_variance" or (op == "scale_range" and np.isnan(bad))
    assert reached.any() and reached.all() == (mode == "propagate" and statistic_nan)
    np.testing.assert_allclose(eager.images["output"].values, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(values.values, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.isnan(values.values), np.isnan(eager.images["output"].values))
    if mode == "ignore":
        assert [n for n in result.notes if "non_finite='ignore'" in n] == [
            "non_finite='ignore': 1 non-finite input pixels were left out of the statistics and run as 0"
        ]


def test_openvino_keeps_nan_in_memory_and_lazily(net):
    pytest.importorskip("openvino")
    model = with_ops(net, [OPS["zero_mean_unit_variance"]])
    image = (np.random.default_rng(8).random((1, 1, 48, 40)) * 100).astype(np.float32)
    image[0, 0, 3, 30] = np.nan
    for given in (image, lazy(image)):
        result = model.predict(given, processing="spec", non_finite="propagate", runtime="openvino")
        assert result.runtime == "openvino"
        assert np.isnan(result.images["output"].values).all()  # as numpy and torch give (the statistics)
    model.close()


def test_statistics_before_and_after_the_network_on_chunks_apart_from_the_tiles(net):
    # scale_range before the network and zero_mean_unit_variance after it (statistics of the output) once
    # failed lazily with "string indices must be integers" (the graph lost forward passes when culled)
    kinds = [
        ProcessingOp("scale_range", {"mode": "per_sample", "axes": "yx", "max_percentile": 99.8}),
        ProcessingOp("scale_range", {"mode": "per_dataset", "axes": "byx", "min_percentile": 1}),
    ]
    post = [ProcessingOp("zero_mean_unit_variance", {"mode": "per_sample", "axes": "cyx"})]
    image = (np.random.default_rng(9).random((1, 1, 150, 130)) * 1000).astype(np.float32)
    for pre in kinds:
        model = with_ops(net, [pre], post)
        for tiling in ("deepimagej", "blend"):
            eager = model.predict(image, tile=48, tiling=tiling, processing="spec")
            result = model.predict(lazy(image, (1, 1, 70, 33)), tile=48, tiling=tiling, processing="spec")
            assert result.plan.n_tiles == eager.plan.n_tiles > 1
            np.testing.assert_allclose(
                result.images["output"].values, eager.images["output"].values, rtol=1e-5, atol=1e-5
            )
        model.close()


def test_a_small_image_runs_in_one_pass_as_in_memory(models):
    # tile=None: the in-memory run takes an image this small as it is; the lazy one did mirror-pad it
    model = models["zero_mean_unit_variance"]
    image = (np.random.default_rng(10).random((1, 1, 70, 50)) * 100).astype(np.float32)
    eager = model.predict(image, processing="spec")
    result = model.predict(lazy(image), processing="spec")
    assert result.plan.n_tiles == eager.plan.n_tiles == 1
    assert "one pass (the image as it is)" in result.notes
    np.testing.assert_allclose(result.images["output"].values, eager.images["output"].values, atol=1e-6)


def test_precision_reaches_the_network_of_a_lazy_run(net, monkeypatch):
    # float16 is for GPU runtimes: on the CPU the backend refuses it and runs float32, with a note and a
    # warning, which can only come from a backend asked for float16 (deepij.inference.backends.precision)
    asked: list[str] = []
    backend = Model.backend

    def recording(self, weights_format=None, device=None, runtime="auto", precision="float32", **kw):
        asked.append(precision)  # what the run and every tile task ask for; the real backend answers
        return backend(self, weights_format, device, runtime, precision, **kw)

    monkeypatch.setattr(Model, "backend", recording)
    model = with_ops(net, [OPS["scale_linear"]])
    image = (np.random.default_rng(11).random((1, 1, 300, 280))).astype(np.float32)
    with pytest.warns(DeepijWarning, match="precision='float16' refused, float32 runs"):
        result = model.predict(lazy(image), processing="spec", precision="float16", device="cpu", tile=96)
    values = result.images["output"].values
    # the run's own backend and every task's (tasks of several tiles each)
    assert result.plan.n_tiles > 1 and set(asked) == {"float16"} and len(asked) > 2
    assert any("precision='float16' refused, float32 runs: it applies to GPU runtimes only" in n
               for n in result.notes)
    assert values.dtype == np.float32
    expected = net.forward(normalised("scale_linear", image, ignore=False))[0]
    inside = (..., slice(2, -2), slice(2, -2))  # the tiled run mirrors the border, the network pads zeros
    np.testing.assert_allclose(values[inside], expected[inside], rtol=1e-4, atol=1e-4)
    model.close()


def test_ignore_with_statistics_per_pixel(tmp_path):
    # statistics over channels only vary along y and x: the chain runs on the whole (lazy) image, not per
    # tile, and the non-finite pixels are zeroed there
    net = write_torchscript_convnet(tmp_path / "two.pt", kernel_sizes=(3, 3), in_channels=2)
    model = with_ops(net, [ProcessingOp("zero_mean_unit_variance", {"axes": "c"})])
    image = (np.random.default_rng(12).random((1, 2, 60, 50)) * 100).astype(np.float32)
    image[0, 0, 7, 9] = np.nan
    image[0, 1, 40, 30] = -np.inf
    finite = np.where(np.isfinite(image), image, np.nan).astype(np.float64)
    mean, std = np.nanmean(finite, axis=1, keepdims=True), np.nanstd(finite, axis=1, keepdims=True)
    ready = (finite - mean) / (std + EPS)
    expected = net.forward(np.nan_to_num(ready, nan=0.0).astype(np.float32))[0]
    expected[:, :, [7, 40], [9, 30]] = np.nan
    eager = model.predict(image, processing="spec", non_finite="ignore").images["output"].values
    result = model.predict(lazy(image, (1, 2, 25, 20)), processing="spec", non_finite="ignore")
    np.testing.assert_allclose(eager, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.images["output"].values, expected, rtol=1e-4, atol=1e-4)
    # the zeroed whole image stays lazy (it is never held in memory)
    raw = {"input": lazy(image)}
    streamed = stream_processing(model.description, raw, ignore_nan=True, statistics=DaskStats)
    assert "input" not in streamed.prepare and isinstance(streamed.inputs["input"].data, da.Array)
    model.close()


def test_tasks_of_many_tiles_equal_the_in_memory_run_with_the_same_tiles(net):
    # the lazy run groups tiles into tasks by cells of the input's chunk grid; each tile goes through the
    # same code as in memory, so the same tiles give the same values, to the last bit
    model = with_ops(net, [OPS["scale_linear"]])
    image = np.random.default_rng(13).random((1, 1, 400, 352)).astype(np.float32)
    eager = model.predict(image, processing="spec", tile=96)
    result = model.predict(lazy(image, (1, 1, 128, 128)), processing="spec", tile=96)
    assert result.plan == eager.plan and result.plan.n_tiles > 8
    cells = [n for n in result.notes if n.startswith("lazy tasks: cells of")]
    assert cells, result.notes
    values = result.images["output"].data
    tasks = [k for k in values.__dask_graph__() if str(k).startswith("deepij-tiles-")]
    assert 1 < len(tasks) < result.plan.n_tiles  # several tiles per task
    assert values.chunks[2:] == ((128, 128, 128, 16), (128, 128, 96))  # the input's chunks
    np.testing.assert_array_equal(values.compute(), eager.images["output"].values)
    model.close()
