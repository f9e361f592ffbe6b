"""The instance ops on their own: kwargs checks, the object table (oracle: scipy.ndimage), StarDist's
post-processing (oracle: the stardist package's own functions), cellpose's dynamics (oracle:
cellpose.dynamics.compute_masks) and the custom op's guards."""

from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from deepij.bundle.description import ArchitectureSpec, ModelDescription, ProcessingOp
from deepij.errors import ProcessingError
from deepij.processing.instances import object_table, outlines, stardist_instances
from deepij.processing.instances.custom import custom_operator
from deepij.processing.instances.params import (
    CustomParams,
    cellpose_params,
    custom_params,
    stardist_params,
)
from deepij.processing.instances.table import grid_upsampled

WHERE = "outputs['labels'].postprocessing[0]"


def _stardist(**kwargs):
    base = {"prob_threshold": 0.5, "nms_threshold": 0.4, "grid": [2, 2], "b": 2}
    return stardist_params(ProcessingOp("stardist_postprocessing", {**base, **kwargs}), where=WHERE)


def test_stardist_kwargs_2d_and_3d():
    assert _stardist(b=[[1, 2], [3, 4]]).b == ((1, 2), (3, 4))
    three = _stardist(grid=[1, 2, 2], n_rays=96, anisotropy=[2, 1, 1], overlap_label=-1)
    assert (three.ndim, three.anisotropy, three.overlap_label) == (3, (2.0, 1.0, 1.0), -1)


@pytest.mark.parametrize(
    ("kwargs", "field", "expected"),
    [
        ({"grid": [2]}, "kwargs.grid", "2 integers"),
        ({"grid": [2, 0]}, "kwargs.grid", "integers >= 1"),
        ({"b": [[1, 2]]}, "kwargs.b", "2 pairs"),
        ({"prob_threshold": 1.5}, "kwargs.prob_threshold", "[0.0, 1.0]"),
        ({"grid": [1, 2, 2]}, "kwargs.n_rays", "integer >= 3"),
        ({"anisotropy": [1, 1, 1]}, "kwargs.anisotropy", "2-int grid"),
        ({"probability": 0.5}, "kwargs", "only prob_threshold"),
    ],
)
def test_stardist_bad_kwargs_name_the_field(kwargs, field, expected):
    with pytest.raises(ProcessingError) as caught:
        _stardist(**kwargs)
    assert f"{WHERE}.{field}" in str(caught.value) and expected in str(caught.value)


def test_cellpose_kwargs_defaults_and_errors():
    params = cellpose_params(ProcessingOp("cellpose_flow_dynamics", {}), where=WHERE)
    assert (params.cellprob_threshold, params.flow_threshold, params.min_size, params.output_dtype) == (
        0.0,
        0.4,
        15,
        "uint16",
    )
    with pytest.raises(ProcessingError, match=r"output_dtype.*uint16 or uint32"):
        cellpose_params(ProcessingOp("cellpose_flow_dynamics", {"output_dtype": "int8"}), where=WHERE)
    with pytest.raises(ProcessingError, match=r"do_3D.*true or false"):
        cellpose_params(ProcessingOp("cellpose_flow_dynamics", {"do_3D": "yes"}), where=WHERE)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (ArchitectureSpec("https://x.org/op.py", "Op", {}, "a" * 64), "inside the bundle"),
        (ArchitectureSpec("op.py", "Op", {}, None), "sha256 of its file"),
        (ArchitectureSpec("op.py", "not a name", {}, "a" * 64), "not a Python name"),
    ],
)
def test_custom_fields_refused(code, message):
    with pytest.raises(ProcessingError, match=message):
        custom_params(ProcessingOp("custom", dict(code.kwargs), code), where=WHERE)


def test_object_table_against_scipy():
    rng = np.random.default_rng(3)
    labels = ndimage.label(ndimage.gaussian_filter(rng.random((60, 70)), 2) > 0.52)[0]
    probability = rng.random(labels.shape).astype(np.float32)
    table = object_table(labels, probability)
    index = np.unique(labels)[1:]
    assert table["label"].tolist() == index.tolist()
    assert (
        table["area"].tolist() == ndimage.sum_labels(np.ones_like(labels), labels, index).astype(int).tolist()
    )
    centres = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, index))
    np.testing.assert_allclose(table[["centroid_y", "centroid_x"]].to_numpy(), centres, rtol=1e-12)
    np.testing.assert_allclose(table["mean_probability"], ndimage.mean(probability, labels, index), rtol=1e-6)


def test_outlines_enclose_their_objects():
    from skimage.measure import points_in_poly

    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:20] = 1
    labels[25:35, 22:30] = 2
    found = outlines(labels)
    for label, polygon in found.items():
        pixels = np.argwhere(labels == label)
        assert points_in_poly(pixels.astype(float), polygon).all()


def test_grid_upsampled_is_nearest_cell():
    values = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(grid_upsampled(values, (2, 2), (6, 8)), np.kron(values, np.ones((2, 2))))
    assert grid_upsampled(values, (2, 2), (5, 7)).shape == (5, 7)


def _star_prediction(shape=(40, 48), rays=16, seed=0):
    rng = np.random.default_rng(seed)
    prob = ndimage.gaussian_filter(rng.random(shape), 1.5).astype(np.float32)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    dist = (2 + 4 * rng.random((*shape, rays))).astype(np.float32)
    return prob, dist


def test_stardist_2d_equals_stardist_functions():
    stardist = pytest.importorskip("stardist")
    from stardist.geometry import dist_to_coord

    prob, dist = _star_prediction()
    found = stardist_instances(prob, dist, grid=(2, 2), prob_threshold=0.6, nms_threshold=0.3, b=2)
    points, probi, disti = stardist.non_maximum_suppression(
        dist, prob, grid=(2, 2), b=2, prob_thresh=0.6, nms_thresh=0.3
    )
    expected = stardist.polygons_to_label(disti, points, prob=probi, shape=(80, 96))
    assert expected.max() > 5
    np.testing.assert_array_equal(found.labels, expected)
    present = found.table["label"].to_numpy()
    np.testing.assert_allclose(found.table["score"], probi[present - 1])
    coords = dist_to_coord(disti, points)
    np.testing.assert_allclose(found.polygons[1], coords[0].T)
    assert len(found.polygons) == len(points)


def test_stardist_3d_equals_stardist_functions():
    stardist = pytest.importorskip("stardist")
    from stardist.matching import relabel_sequential

    prob, dist = _star_prediction((12, 16, 16), rays=32, seed=1)
    found = stardist_instances(
        prob, dist, grid=(1, 2, 2), prob_threshold=0.7, nms_threshold=0.3, anisotropy=(2.0, 1.0, 1.0)
    )
    rays = stardist.Rays_GoldenSpiral(32, anisotropy=(2.0, 1.0, 1.0))
    points, probi, disti = stardist.non_maximum_suppression_3d(
        dist, prob, rays, grid=(1, 2, 2), b=2, prob_thresh=0.7, nms_thresh=0.3
    )
    raw = stardist.polyhedron_to_label(
        disti, points, rays=rays, prob=probi, shape=(12, 32, 32), verbose=False
    )
    expected = relabel_sequential(raw)[0]
    assert expected.max() > 1
    np.testing.assert_array_equal(found.labels, expected)
    assert list(found.table.columns[:4]) == ["label", "centroid_z", "centroid_y", "centroid_x"]


def _disk_flows(size=64):
    """Flows pointing to the centres of three disks (as a trained Cellpose net gives them), and a
    cell-probability logit positive inside them."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    flows = np.zeros((2, size, size), np.float32)
    cellprob = np.full((size, size), -6.0, np.float32)
    for cy, cx, r in ((16, 16, 8), (40, 44, 10), (50, 14, 6)):
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        vec = np.stack([cy - yy, cx - xx])
        norm = np.sqrt((vec**2).sum(0)) + 1e-6
        flows[:, inside] = (5 * vec / norm)[:, inside]
        cellprob[inside] = 6.0
    return flows, cellprob


def test_cellpose_equals_cellpose_compute_masks():
    dynamics = pytest.importorskip("cellpose.dynamics")
    from deepij.processing.instances import cellpose_instances

    flows, cellprob = _disk_flows()
    found = cellpose_instances(flows, cellprob)
    expected = dynamics.compute_masks(
        flows, cellprob, niter=200, cellprob_threshold=0.0, flow_threshold=0.4, min_size=15
    )
    expected = expected[0] if isinstance(expected, tuple) else expected
    assert expected.max() == 3
    np.testing.assert_array_equal(found.labels, expected)
    assert found.labels.dtype == np.uint16 and sorted(found.polygons) == [1, 2, 3]
    np.testing.assert_allclose(found.table["mean_probability"], 1 / (1 + np.exp(-6.0)), rtol=1e-6)


# --- custom ------------------------------------------------------------------------------------------------

OP_FILE = """
import numpy as np

class Doubler:
    def __init__(self, factor=2):
        self.factor = factor
    def __call__(self, *arrays):
        return arrays[0] * self.factor

def doubler(factor=2):
    def run(*arrays):
        return arrays[0] * factor
    return run
"""


def _bundle(tmp_path: Path, source: str = "postprocess.py") -> ModelDescription:
    (tmp_path / "postprocess.py").write_text(OP_FILE)
    return ModelDescription(
        name="m",
        format_version="0.5.14",
        root=tmp_path,
        descriptor=tmp_path / "rdf.yaml",
        inputs=(),
        outputs=(),
        weights={},
    )


def _custom(name: str, sha: str, source: str = "postprocess.py", **kwargs) -> CustomParams:
    return CustomParams(ArchitectureSpec(source, name, kwargs, sha))


@pytest.mark.parametrize("name", ["Doubler", "doubler"])
def test_custom_op_both_styles_without_touching_user_modules(tmp_path, monkeypatch, name):
    description = _bundle(tmp_path)
    sha = hashlib.sha256((tmp_path / "postprocess.py").read_bytes()).hexdigest()
    users = types.ModuleType("postprocess")  # a module of the user's with the file's own name
    monkeypatch.setitem(sys.modules, "postprocess", users)
    before = set(sys.modules)
    op = custom_operator(description, _custom(name, sha, factor=3), allow_code=True, where=WHERE)
    np.testing.assert_array_equal(op(np.arange(3)), [0, 3, 6])
    assert sys.modules["postprocess"] is users
    added = set(sys.modules) - before
    assert all(m.startswith("deepij._bundle_code.") for m in added)
    assert str(tmp_path) not in sys.path


def test_custom_op_refusals_say_which_check_failed(tmp_path):
    description = _bundle(tmp_path)
    sha = hashlib.sha256((tmp_path / "postprocess.py").read_bytes()).hexdigest()
    with pytest.raises(ProcessingError, match="allow_code=True"):
        custom_operator(description, _custom("Doubler", sha), allow_code=False, where=WHERE)
    with pytest.raises(ProcessingError, match="does not match its sha256"):
        custom_operator(description, _custom("Doubler", "0" * 64), allow_code=True, where=WHERE)
    with pytest.raises(ProcessingError, match="has no callable 'Missing'"):
        custom_operator(description, _custom("Missing", sha), allow_code=True, where=WHERE)
    with pytest.raises(ProcessingError, match="inside the bundle folder"):
        custom_operator(
            description, _custom("Doubler", sha, source="../outside.py"), allow_code=True, where=WHERE
        )
