"""Measuring a network's receptive field through its backend: convnets whose radius is known by construction
(sum of k // 2 over their kernels), other output sizes, valid convolutions, a real TorchScript model."""

from __future__ import annotations

import pytest

from deepij.inference.receptive import measure_receptive_field
from deepij.inference.tiling import analyse_tiling
from deepij.pipeline import Model
from support.models import describe, write_torchscript_convnet
from support.numpy_nets import ConvSpec, NumpyConvBackend, conv_description


def _measure(spec: ConvSpec, **description):
    model = conv_description(spec, **description)
    tiling = analyse_tiling(model)
    shapes = {"raw": {"c": spec.in_channels, **{a: 64 for a in tiling.axes}}}
    return measure_receptive_field(NumpyConvBackend(model, spec), tiling, shapes)


@pytest.mark.parametrize("kernels", [(1,), (3,), (3, 5, 3), (7, 7), (3, 3, 3, 3, 3, 3)])
def test_radius_of_convnets_built_with_a_known_radius(kernels):
    spec = ConvSpec(kernel_sizes=kernels, hidden=3)
    field = _measure(spec, halo=0)
    assert field.radius == {"y": spec.radius, "x": spec.radius}
    assert not any(field.at_least.values())


@pytest.mark.parametrize("scale", [2.0, 0.5])
def test_radius_in_input_pixels_for_other_output_sizes(scale):
    spec = ConvSpec(kernel_sizes=(3, 5), scale=scale)
    field = _measure(spec, min_size=8, step=8)
    assert field.radius == {"y": 3, "x": 3}


def test_radius_of_valid_convolutions():
    spec = ConvSpec(kernel_sizes=(3, 5, 3), padding="valid")
    field = _measure(spec, min_size=16, step=2, halo=0)
    assert field.radius == {"y": 4, "x": 4}
    assert field.exceeds(analyse_tiling(conv_description(spec, halo=0)).pads) == {}  # the offset covers it


def test_a_response_wider_than_every_probe_is_a_lower_bound():
    # A fixed 16-pixel input cannot show a radius of 12 whole: the measurement says "at least".
    spec = ConvSpec(kernel_sizes=(9, 9, 9))
    field = _measure(spec, fixed=16, halo=0)
    assert all(field.at_least.values()) and field.probe == {"y": 16, "x": 16}
    assert "y: >= " in field.describe()


def test_three_d_and_torchscript_models(tmp_path):
    net = write_torchscript_convnet(tmp_path / "net.pt", kernel_sizes=(3, 5, 5), ndim=3)
    model = Model(describe(net, output_halo=2))
    shapes = {"input": {"c": 1, "z": 40, "y": 40, "x": 40}}
    field = measure_receptive_field(model.backend(runtime="native"), model.tiling, shapes)
    assert field.radius == {"z": net.halo, "y": net.halo, "x": net.halo} == {"z": 5, "y": 5, "x": 5}
    assert field.exceeds(model.tiling.pads) == {"z": 5, "y": 5, "x": 5}
