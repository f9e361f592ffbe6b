"""Instance segmentation through ``deepij.load(...).predict``: a tiny StarDist2D trained here with stardist
package (oracle: stardist's own ``predict_instances`` on the same image), Cellpose-shaped bundles (oracle:
cellpose's ``compute_masks`` on the same flows) and a ``custom`` op (oracle: scipy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import deepij
from deepij.errors import ArgumentError, ProcessingError
from support.instance_bundles import blob_pair, write_cellpose_exporter_bundle, write_custom_op_bundle


def _stardist_own(model, image):
    from csbdeep.data import PercentileNormalizer

    return model.predict_instances(image, axes="YX", normalizer=PercentileNormalizer(1, 99.8, do_after=False))


def test_stardist_0_5_declared_op_equals_predict_instances(tiny_stardist, stardist_bundles):
    model, image = tiny_stardist
    expected, details = _stardist_own(model, image)
    assert expected.max() >= 3
    result = deepij.load(stardist_bundles[0].folder).predict(image)
    labels = result.images["instance_labels"]
    assert labels.dims == ("b", "y", "x", "c") and labels.dtype == np.int32
    np.testing.assert_array_equal(labels.values[0, :, :, 0], expected)
    table = result.tables["instance_labels_objects"]
    assert table["label"].tolist() == sorted(set(np.unique(expected)) - {0})
    np.testing.assert_allclose(table["score"], details["prob"][table["label"].to_numpy() - 1], rtol=1e-5)
    ((_sample, found),) = result.instances["instance_labels"]
    np.testing.assert_allclose(found.polygons[1], details["coord"][0].T, rtol=1e-5)


def test_stardist_0_5_raw_maps_on_request(tiny_stardist, stardist_bundles):
    from support.stardist_bundles import _normalized

    _model, image = tiny_stardist
    bundle = stardist_bundles[0]
    raw = deepij.load(bundle.folder).predict(image, instances="none").images["instance_labels"]
    assert (
        raw.shape == (1, 64, 64, 17)
        and "instance_labels_objects"
        not in deepij.load(bundle.folder).predict(image, instances="none").tables
    )
    expected = np.asarray(bundle.network(_normalized(image)[None, :, :, None]))
    np.testing.assert_allclose(raw.values, expected, atol=1e-5)


def test_stardist_tiles_are_stitched_before_nms(tiny_stardist, stardist_bundles):
    """Tiles of 104 on a 128 image: the op runs once on the stitched maps. Oracle: stardist's NMS and
    rasterisation on the stitched raw maps deepij gives with instances='none'."""
    stardist = pytest.importorskip("stardist")

    model = deepij.load(stardist_bundles[0].folder)
    _, image = tiny_stardist
    raw = model.predict(image, tile=(104, 104), instances="none")
    assert raw.plan.n_tiles > 1
    maps = raw.images["instance_labels"].values[0]
    kwargs = model.description.outputs[0].processing[0].kwargs
    points, probi, disti = stardist.non_maximum_suppression(
        maps[..., 1:],
        maps[..., 0],
        grid=(2, 2),
        b=2,
        prob_thresh=kwargs["prob_threshold"],
        nms_thresh=kwargs["nms_threshold"],
    )
    expected = stardist.polygons_to_label(disti, points, prob=probi, shape=(128, 128))
    labels = model.predict(image, tile=(104, 104)).images["instance_labels"].values[0, :, :, 0]
    np.testing.assert_array_equal(labels, expected)


def test_stardist_0_4_exporter_bundle_is_recognised(tiny_stardist, stardist_bundles):
    model, image = tiny_stardist
    expected, _ = _stardist_own(model, image)
    loaded = deepij.load(stardist_bundles[1].folder)
    result = loaded.predict(image)
    np.testing.assert_array_equal(result.images["output"].values[0, :, :, 0], expected)
    assert any("recognised from config.stardist" in n for n in result.notes)
    raw = loaded.predict(image, instances="declared").images["output"]
    assert raw.shape == (1, 128, 128, 17) and raw.dtype == np.float32


def test_stardist_bundle_reproduces_its_test_output(stardist_bundles):
    from deepij.trust.reproduce import test_bundle as run_bundle_test

    report = run_bundle_test(stardist_bundles[0].folder)
    assert report.status == "passed", report


def test_bad_stardist_kwargs_fail_at_load(tmp_path, stardist_bundles):
    import shutil

    import yaml

    folder = tmp_path / "bad"
    shutil.copytree(stardist_bundles[0].folder, folder)
    data = yaml.safe_load((folder / "rdf.yaml").read_text())
    data["outputs"][0]["postprocessing"][0]["kwargs"]["grid"] = [2, 2, 2, 2]
    (folder / "rdf.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(
        ProcessingError, match=r"outputs\['instance_labels'\]\.postprocessing\[0\]\.kwargs\.grid"
    ):
        deepij.load(folder)


def test_lazy_image_with_instance_op_is_refused_with_what_to_do(stardist_bundles, tiny_stardist):
    da = pytest.importorskip("dask.array")
    _, image = tiny_stardist
    with pytest.raises(ArgumentError, match="instances='none'"):
        deepij.load(stardist_bundles[0].folder).predict(da.from_array(image))


# --- Cellpose ----------------------------------------------------------------------------------------------


def _compute_masks(flows: np.ndarray) -> np.ndarray:
    dynamics = pytest.importorskip("cellpose.dynamics")
    masks = dynamics.compute_masks(
        flows[:2], flows[2], niter=200, cellprob_threshold=0.0, flow_threshold=0.4, min_size=15
    )
    return masks[0] if isinstance(masks, tuple) else masks


@pytest.mark.parametrize("declared", [False, True], ids=["exporter-bundle", "declared-op"])
def test_cellpose_flows_in_labels_out(tmp_path: Path, declared: bool):
    pytest.importorskip("cellpose.dynamics")
    write_cellpose_exporter_bundle(tmp_path, declared=declared)
    name = "labels" if declared else "flow"
    image = blob_pair(96)
    model = deepij.load(tmp_path)
    flows = model.predict(image, axes="yxc", instances="none").images[name].values[0]
    assert flows.shape == (3, 96, 96)
    expected = _compute_masks(flows)
    assert expected.max() >= 5
    result = model.predict(image, axes="yxc")
    labels = result.images[name]
    assert labels.dtype == np.uint16 and labels.shape == (1, 1, 96, 96)
    np.testing.assert_array_equal(labels.values[0, 0], expected)
    assert len(result.tables[f"{name}_objects"]) == expected.max()


# --- custom ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("callable_name", ["ThresholdLabels", "threshold_labels"])
def test_custom_op_runs_with_allow_code(tmp_path: Path, callable_name: str):
    write_custom_op_bundle(tmp_path, callable_name=callable_name, threshold=0.6)
    image = blob_pair(96, seed=4)
    with pytest.raises(ProcessingError, match="allow_code=True"):
        deepij.load(tmp_path).predict(image, axes="yxc")
    model = deepij.load(tmp_path, allow_code=True)
    probability = model.predict(image, axes="yxc", instances="none").images["labels"].values[0, 0]
    expected = ndimage.label(probability > 0.6)[0]
    result = model.predict(image, axes="yxc")
    np.testing.assert_array_equal(result.images["labels"].values[0, 0], expected)
    assert result.images["labels"].dtype == np.uint16


def test_custom_op_with_wrong_sha256_is_refused(tmp_path: Path):
    write_custom_op_bundle(tmp_path, sha256="0" * 64)
    with pytest.raises(ProcessingError, match="does not match its sha256"):
        deepij.load(tmp_path, allow_code=True).predict(blob_pair(64), axes="yxc")


def test_info_shows_the_ops(tmp_path: Path):
    from deepij.bundle import open_bundle
    from deepij.bundle.info import format_summary, summarize

    write_custom_op_bundle(tmp_path)
    text = format_summary(summarize(open_bundle(tmp_path)))
    assert "custom(ThresholdLabels from my_labels.py, threshold=0.5)" in text
