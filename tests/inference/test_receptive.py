"""Measuring a network's receptive field through its backend: convnets whose radius is known by construction
(sum of k // 2 over their kernels), other output sizes, valid convolutions, real TorchScript models, and a
2-pooling U-Net whose radius is the support of its linearised network (ReLUs removed, max pooling made
average pooling, weights made positive: no path can cancel), computed here in float64 torch."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from deepij.inference.receptive import QUICK, THOROUGH, measure_receptive_field
from deepij.inference.tiling import analyse_tiling
from deepij.pipeline import Model
from support.models import describe, unet_module, write_torchscript_convnet, write_torchscript_unet
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


@pytest.mark.parametrize("kernels", [(3,), (5, 3), (3, 7, 5), (9, 1, 3)])
def test_thorough_probe_finds_the_radius_of_torchscript_convnets(tmp_path, kernels):
    net = write_torchscript_convnet(tmp_path / "net.pt", kernel_sizes=kernels)
    model = Model(describe(net, output_halo=0))
    shapes = {"input": {"c": 1, "y": 64, "x": 64}}
    field = measure_receptive_field(model.backend(runtime="native"), model.tiling, shapes, effort=THOROUGH)
    assert field.radius == {"y": net.halo, "x": net.halo} == {a: sum(k // 2 for k in kernels) for a in "yx"}
    assert not any(field.at_least.values()) and field.effort == THOROUGH
    # one background pass and one per impulse position (step 1: one position), per background
    assert field.passes == THOROUGH.backgrounds * 2


def _linearised_radius(module, grid: int, side: int = 96) -> int:
    """How far the linearised U-Net's impulse response reaches (in float64), over every impulse position
    of the pooling grid: the architecture's receptive radius."""
    import torch
    from torch import nn

    linear = copy.deepcopy(module).double().eval()
    for child in list(linear.modules()):
        for key, sub in list(child.named_children()):
            if isinstance(sub, nn.ReLU):
                setattr(child, key, nn.Identity())
            elif isinstance(sub, nn.MaxPool2d):
                setattr(child, key, nn.AvgPool2d(2))
    with torch.no_grad():
        for parameter_name, parameter in linear.named_parameters():
            parameter.copy_(parameter.abs() if parameter_name.endswith("weight") else 0 * parameter)
        reached = 0
        for py in range(grid):
            for px in range(grid):
                cy, cx = side // 2 + py, side // 2 + px
                image = torch.zeros((1, 1, side, side), dtype=torch.float64)
                image[0, 0, cy, cx] = 1.0
                changed = np.argwhere(linear(image)[0, 0].numpy() - 0.5 > 0)  # sigmoid(0) elsewhere
                reached = max(reached, int(np.abs(changed - [cy, cx]).max()))
    return reached


def test_thorough_probe_finds_the_whole_field_of_a_two_pooling_unet(tmp_path):
    # The single-impulse probe of old found 13 of these 23 pixels: max pooling and ReLUs hide part of the
    # field from any one impulse.
    net = write_torchscript_unet(tmp_path / "unet.pt", depth=2, base=4)
    truth = _linearised_radius(unet_module(depth=2, base=4), grid=4)
    assert truth == net.halo == 23  # and by hand: 5 * (2**2 - 1) + 2**3
    model = Model(describe(net, output_halo=0))
    shapes = {"input": {"c": 1, "y": 64, "x": 64}}
    backend = model.backend(runtime="native")
    field = measure_receptive_field(backend, model.tiling, shapes, effort=THOROUGH)
    assert field.radius == {"y": truth, "x": truth} and not any(field.at_least.values())
    assert field.passes == THOROUGH.passes(4) and field.probe == {"y": 64, "x": 64}  # 4 grid positions
    quick = measure_receptive_field(backend, model.tiling, shapes, effort=QUICK)
    assert all(quick.radius[a] <= truth for a in "yx") and quick.passes == field.passes // 4
