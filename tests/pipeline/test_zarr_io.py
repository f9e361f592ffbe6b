"""Zarr / OME-Zarr in and out, and ``predict`` on a lazy image: metadata kept both ways, the lazy result
equal to the in-memory one, ``deepij run`` from OME-Zarr to OME-Zarr, bundles with ImageJ steps refused
above the memory limit with what to do, and a Zarr run that never replaces the input or what deepij did not
write (exit 2, the files left as they were)."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import deepij
from deepij.errors import ArgumentError, InputError
from deepij.frontdoors.cli import main
from deepij.pipeline.zarr_io import is_zarr, read_zarr, write_ome_zarr
from support.bundles import write_bundle_v0_3, write_bundle_v0_5

OUTPUT = "probability"  # the 0.5 test bundle's output


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_bundle_v0_5(tmp_path_factory.mktemp("zarr") / "b05")


@pytest.fixture(scope="module")
def model(bundle):
    loaded = deepij.load(bundle.folder)
    yield loaded
    loaded.close()


def image(shape=(1, 150, 130), seed=0):
    return (np.random.default_rng(seed).random(shape) * 1000).astype(np.float32)


def test_ome_zarr_round_trip_keeps_axes_scale_and_unit(tmp_path):
    values = image()
    lazy = xr.DataArray(da.from_array(values, chunks=(1, 64, 64)), dims=("c", "y", "x"),
                        attrs={"pixel_size": {"y": 0.25, "x": 0.5}, "unit": "micron"}, name="cells")
    path = write_ome_zarr(lazy, tmp_path / "cells.ome.zarr")
    assert is_zarr(path) and not list(tmp_path.glob(".*partial"))
    # the metadata as OME-Zarr 0.5 readers see it, read here with zarr alone
    group = zarr.open_group(str(path), mode="r")
    multiscales = group.attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in multiscales["axes"]] == ["c", "y", "x"]
    assert [a.get("unit") for a in multiscales["axes"]] == [None, "micrometer", "micrometer"]
    scale = multiscales["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 0.25, 0.5]
    stored = group[multiscales["datasets"][0]["path"]]
    assert stored.chunks == (1, 64, 64)
    np.testing.assert_array_equal(stored[:], values)
    back = read_zarr(path)
    assert back.dims == ("c", "y", "x") and isinstance(back.data, da.Array)
    assert back.attrs == {"pixel_size": {"y": 0.25, "x": 0.5}, "unit": "micrometer"}
    np.testing.assert_array_equal(back.values, values)


def test_an_ome_zarr_0_4_image_and_plain_arrays(tmp_path):
    values = image((5, 40, 30))
    group = zarr.open_group(str(tmp_path / "v04.zarr"), mode="w", zarr_format=2)
    group.create_array("0", data=values, chunks=(1, 20, 30))
    group.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": "z", "type": "space", "unit": "micrometer"}, {"name": "y", "type": "space"},
                 {"name": "x", "type": "space"}],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 0.5, 0.5]}]}
        ],
    }]
    back = read_zarr(tmp_path / "v04.zarr")
    assert back.dims == ("z", "y", "x") and back.attrs["pixel_size"] == {"z": 2.0, "y": 0.5, "x": 0.5}
    np.testing.assert_array_equal(back.values, values)

    named = zarr.create_array(str(tmp_path / "named.zarr"), shape=(40, 30), dtype="uint16",
                              dimension_names=("y", "x"))
    named[:] = 7
    assert read_zarr(tmp_path / "named.zarr").dims == ("y", "x")
    zarr.create_array(str(tmp_path / "bare.zarr"), shape=(40, 30), dtype="uint16")
    with pytest.raises(InputError, match="axes="):
        read_zarr(tmp_path / "bare.zarr")
    assert read_zarr(tmp_path / "bare.zarr", axes="yx").dims == ("y", "x")
    with pytest.raises(InputError, match="not a readable Zarr store"):
        read_zarr(tmp_path / "missing.zarr")
    with pytest.raises(ArgumentError, match="batch of 2"):
        write_ome_zarr(xr.DataArray(np.zeros((2, 4, 4)), dims=("b", "y", "x")), tmp_path / "no.ome.zarr")


def test_lazy_prediction_equals_the_in_memory_one(model, tmp_path):
    values = image((1, 1, 150, 130))
    eager = model.predict(values, tile=48, processing="spec")
    in_memory = eager.images[OUTPUT]
    store = write_ome_zarr(xr.DataArray(da.from_array(values[0], chunks=(1, 50, 50)), dims=("c", "y", "x")),
                           tmp_path / "in.ome.zarr")
    chunked = xr.DataArray(da.from_array(values, chunks=(1, 1, 70, 70)), dims=("b", "c", "y", "x"))
    for given in (store, chunked):
        result = model.predict(given, tile=48, processing="spec")
        lazy = result.images[OUTPUT]
        assert isinstance(lazy.data, da.Array) and lazy.dims == in_memory.dims
        # Statistics (zero-mean/unit-variance over the image) are summed in another order with Dask: the
        # float64 mean and std may differ in their last bits, hence the tolerance of a float32 ulp or two.
        np.testing.assert_allclose(lazy.values, in_memory.values, rtol=2e-7, atol=1e-7)
        assert result.plan.n_tiles == eager.plan.n_tiles > 1


def test_a_plain_zarr_array_is_named_as_a_numpy_array_is(model, tmp_path):
    # no OME metadata, no dim names: the model input's own axis order (batch optional), or axes=, or a 2-D
    # (y, x) image, as for numpy; the same error for a shape that fits none of them
    values = image((1, 1, 72, 64), seed=4)
    expected = model.predict(values, processing="spec").images[OUTPUT].values
    stores = {}
    arrays = {"own": values, "no_batch": values[0], "plane": values[0, 0], "xy": values[0, 0].T}
    for name, data in arrays.items():
        stores[name] = zarr.create_array(str(tmp_path / f"{name}.zarr"), shape=data.shape, dtype=data.dtype,
                                         chunks=tuple(min(n, 40) for n in data.shape))
        stores[name][:] = data
    for name, given in [("own", {}), ("no_batch", {}), ("plane", {}), ("xy", {"axes": "xy"})]:
        path = tmp_path / f"{name}.zarr"
        for source in (path, stores[name]):  # the store's path, and the opened zarr array
            result = model.predict(source, processing="spec", **given)
            lazy = result.images[OUTPUT]
            assert isinstance(lazy.data, da.Array), name
            np.testing.assert_allclose(lazy.values, expected, rtol=2e-7, atol=1e-7, err_msg=name)
    five = np.zeros((1, 1, 1, 8, 8), np.float32)
    zarr.create_array(str(tmp_path / "five.zarr"), shape=five.shape, dtype=five.dtype)[:] = five
    with pytest.raises(InputError) as from_numpy:
        model.predict(five, processing="spec")
    with pytest.raises(InputError) as from_zarr:
        model.predict(tmp_path / "five.zarr", processing="spec")
    after_name = str(from_numpy.value).split(": ", 1)[1]
    assert str(from_zarr.value) == f"image['raw'] {str(tmp_path / 'five.zarr')!r}: {after_name}"


def test_deepij_run_from_ome_zarr_to_ome_zarr(bundle, model, tmp_path):
    values = image((1, 140, 120))
    source = xr.DataArray(da.from_array(values, chunks=(1, 64, 64)), dims=("c", "y", "x"),
                          attrs={"pixel_size": {"y": 0.3, "x": 0.3}, "unit": "micron"})
    write_ome_zarr(source, tmp_path / "big.ome.zarr")
    code = main(["run", str(bundle.folder), "--input", str(tmp_path / "big.ome.zarr"),
                 "--output", str(tmp_path / "out.ome.zarr"), "--processing", "spec", "--tile", "64"])
    assert code == 0
    written = read_zarr(tmp_path / "out.ome.zarr")
    assert written.dims == ("c", "y", "x") and written.attrs["pixel_size"] == {"y": 0.3, "x": 0.3}
    expected = model.predict(values[None], tile=64, processing="spec").images[OUTPUT].values[0]
    np.testing.assert_allclose(written.values, expected, rtol=2e-7, atol=1e-7)
    metadata = json.loads((tmp_path / "out.ome.zarr" / "zarr.json").read_text())
    assert metadata["attributes"]["ome"]["version"] == "0.5"


def test_imagej_steps_on_an_image_above_the_memory_limit_are_refused(tmp_path):
    old = write_bundle_v0_3(tmp_path / "b03")  # deepImageJ 2.x bundle: its processing is ImageJ macros
    loaded = deepij.load(old.folder)
    big = da.zeros((1, 1, 4096, 4096), dtype=np.float32, chunks=(1, 1, 1024, 1024))
    with pytest.raises(InputError) as refused:
        loaded.predict(big, processing="macros", max_memory="64MB")
    message = str(refused.value)
    assert "whole image in one JVM" in message and "processing='spec'" in message and "64" in message
    loaded.close()


def test_a_blended_lazy_prediction_with_a_sigmoid_equals_the_in_memory_one(model):
    # the 0.5 test bundle ends with a sigmoid: on a blended lazy run it used to meet dask data unprepared
    values = image((1, 1, 150, 130), seed=3)
    in_memory = model.predict(values, tile=48, tiling="blend", processing="spec").images[OUTPUT]
    chunked = xr.DataArray(da.from_array(values, chunks=(1, 1, 70, 70)), dims=("b", "c", "y", "x"))
    lazy = model.predict(chunked, tile=48, tiling="blend", processing="spec").images[OUTPUT]
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_allclose(lazy.values, in_memory.values, rtol=2e-7, atol=1e-7)


def run_zarr_command(bundle, source, target, capsys):
    code = main(["run", str(bundle.folder), "--input", str(source), "--output", str(target),
                 "--processing", "spec", "--tile", "64"])
    return code, capsys.readouterr()


def test_a_zarr_run_never_replaces_what_deepij_did_not_write(bundle, model, tmp_path, capsys):
    values = image((1, 80, 72), seed=4)
    source = write_ome_zarr(xr.DataArray(values, dims=("c", "y", "x")), tmp_path / "data" / "big.ome.zarr")
    stored = read_zarr(source).values
    users = tmp_path / "results"
    users.mkdir()
    (users / "thesis.docx").write_bytes(b"a year of work")
    (tmp_path / "notes.txt").write_text("a file")
    refused = {
        source: "is the input itself",
        source / "out.ome.zarr": "lies inside the input",
        tmp_path / "data": "holds the input",
        users: "exists and is a folder deepij did not write (it holds thesis.docx)",
        tmp_path / "notes.txt": "exists and is a file",
    }
    for target, reason in refused.items():
        code, printed = run_zarr_command(bundle, source, target, capsys)
        assert code == 2, printed.err
        assert printed.err.startswith(f"deepij run: output: {str(target)!r} {reason}")
    assert (users / "thesis.docx").read_bytes() == b"a year of work"
    assert (tmp_path / "notes.txt").read_text() == "a file"
    np.testing.assert_array_equal(read_zarr(source).values, stored)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["big.ome.zarr"]

    expected = model.predict(values[None], tile=64, processing="spec").images[OUTPUT].values[0]
    empty = tmp_path / "empty.ome.zarr"
    empty.mkdir()
    for target in (empty, empty):  # an empty folder is taken; the store deepij wrote there is replaced
        code, printed = run_zarr_command(bundle, source, target, capsys)
        assert code == 0 and printed.out == f"wrote {target}\n", printed.err
        np.testing.assert_allclose(read_zarr(target).values, expected, rtol=2e-7, atol=1e-7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "empty.ome.zarr", "notes.txt", "results"]


def test_a_store_is_deepijs_when_its_metadata_says_so(tmp_path):
    store = write_ome_zarr(xr.DataArray(image((1, 8, 8)), dims=("c", "y", "x")), tmp_path / "a.ome.zarr")
    metadata = json.loads((store / "zarr.json").read_text())
    assert metadata["attributes"]["deepij"]["written by"] == "deepij"
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    plain.create_array("0", shape=(4, 4), dtype="uint8")
    with pytest.raises(ArgumentError, match="a folder deepij did not write"):
        write_ome_zarr(xr.DataArray(image((1, 8, 8)), dims=("c", "y", "x")), tmp_path / "plain.zarr")
    assert zarr.open_group(str(tmp_path / "plain.zarr"), mode="r")["0"].shape == (4, 4)
