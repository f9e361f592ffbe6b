"""Bundles in the shapes of the BioImage Model Zoo's own example models, made here with real networks.

The zoo's example descriptions (bioimage-io/spec-bioimage-io, ``example_descriptions/models/``) are what its
tools are tested on: their test input, run with default options, gives their test output. Each writer here
makes a bundle of one of those shapes, its descriptor written by hand in the zoo's own layout and its test
output computed from the network's own eager forward pass (pre-processing in numpy), never through deepij:

- :func:`write_nuclei_broad`: ``unet2d_nuclei_broad`` (0.5.11): input fixed at 512x512 with batch size 1,
  output with halo 32, zero-mean/unit-variance over ``x, y`` and a sigmoid declared as ops; a U-Net whose
  receptive field is larger than the halo; weights as ONNX exported at the fixed size, TorchScript
  (scripted) and a ``pytorch_state_dict`` with its architecture file.
- :func:`write_fixed_shape`: ``unet2d_fixed_shape`` (0.4): ``shape: [1, 1, 256, 256]``, halo 8 on ``yx``,
  per-sample normalisation over ``cyx``.
- :func:`write_diff_output_shape`: ``unet2d_diff_output_shape`` (0.5): ``{min: 32, step: 16}``, an output
  at half the input's resolution (``scale: 2.0``: the 0.5 spec's axis scale is the pixel size, so the
  output has half as many pixels; its 0.4 version wrote ``scale: [1, 1, 0.5, 0.5]``).
- :func:`write_multi_tensor`: ``unet2d_multi_tensor`` (0.5): two inputs, two outputs, each output sized
  after its own input.
- :func:`write_upsample`: ``upsample_test_model`` (0.4): ``min [1, 1, 5, 5]``, ``step [0, 0, 5, 5]``, output
  ``scale [1, 0, 4, 4]`` with a channel ``offset`` of 0.5 (one channel).
- :func:`write_expand_output_shape`: ``expand_output_shape`` (0.5): an output with a singleton ``z`` axis
  the input lacks.

Each returns a :class:`support.bundles.WrittenBundle` (``test_input`` and ``expected_output`` are dicts by
tensor id for the two-tensor shape).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from support import models, torch_nets
from support.bundles import WrittenBundle, _write_yaml, sha256_file, zero_mean_unit_variance

AUTHORS = [{"name": "deepij tests", "affiliation": "nowhere"}]
CITE = [{"text": "the zoo's example models", "doi": "10.1007/978-3-319-24574-4_28"}]
ENSURE_FLOAT32 = {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}


def _nuclei_image(side: int, seed: int = 0) -> np.ndarray:
    """A ``(1, 1, side, side)`` picture of bright round nuclei on a noisy background (0..255)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    image = rng.normal(20, 4, (side, side))
    for _ in range(side * side // 2500):
        cy, cx, radius = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(5, 12)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] += rng.uniform(80, 180)
    return np.clip(image, 0, 255).astype(np.float32)[None, None]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def _torch(module: Any) -> Callable[..., list[np.ndarray]]:
    return models._torch_forward(module)


def _script(module: Any, path: Path) -> None:
    import torch

    with models._quiet_torch_warnings():
        torch.jit.script(module).save(str(path))


def _onnx(module: Any, path: Path, shapes: Sequence[tuple[int, ...]], names: Sequence[str],
          outputs: Sequence[str], dynamic: bool) -> None:
    """ONNX with every dim fixed, as many zoo ONNX files were exported, or (``dynamic``) with free batch
    and spatial dims, as exporters write them for descriptors that allow many sizes."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(torch.zeros(s) for s in shapes),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=list(names),
            output_names=list(outputs),
            dynamic_axes={n: {0: "b", 2: "y", 3: "x"} for n in (*names, *outputs)} if dynamic else None,
        )


def _weights(folder: Path, module: Any, formats: Sequence[str], example: Sequence[tuple[int, ...]],
             inputs: Sequence[str], outputs: Sequence[str], architecture: dict | None = None,
             dynamic: bool = False) -> dict:
    """Write ``module`` in each format; the descriptor's ``weights`` section."""
    import torch

    entries: dict[str, Any] = {}
    for fmt in formats:
        if fmt == "torchscript":
            _script(module, folder / "weights.pt")
            entries[fmt] = {"source": "weights.pt", "pytorch_version": "2.13"}
        elif fmt == "onnx":
            _onnx(module, folder / "weights.onnx", example, inputs, outputs, dynamic)
            entries[fmt] = {"source": "weights.onnx", "opset_version": 17}
        elif fmt == "pytorch_state_dict":
            assert architecture is not None
            torch.save(module.state_dict(), folder / "weights.torch")
            shutil.copyfile(torch_nets.__file__, folder / "torch_nets.py")
            entries[fmt] = {
                "source": "weights.torch",
                "architecture": dict(architecture, source="torch_nets.py"),
                "pytorch_version": "2.13",
            }
        else:
            raise ValueError(f"no writer for {fmt!r}")
    for entry in entries.values():
        entry["sha256"] = sha256_file(folder / entry["source"])
        if "architecture" in entry:
            entry["architecture"]["sha256"] = sha256_file(folder / entry["architecture"]["source"])
    return entries


def _seeded(factory: Callable[[], Any], seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    return factory().eval()


def _tensor(folder: Path, name: str, array: np.ndarray) -> dict[str, str]:
    np.save(folder / name, array)
    return {"source": name, "sha256": sha256_file(folder / name)}


def _space(axis_id: str | None, size: Any, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "space", "size": size, **extra}
    if axis_id is not None:  # the zoo's nuclei descriptor leaves x's id to its default
        entry["id"] = axis_id
    return entry


def _channel(name: str = "channel0") -> dict[str, Any]:
    return {"type": "channel", "channel_names": [name]}


def _descriptor_v0_5(folder: Path, name: str, inputs: list, outputs: list, weights: dict) -> Path:
    (folder / "README.md").write_text(f"# {name}\n")
    data = {
        "name": name,
        "description": f"made by deepij's tests in the shape of the zoo's {name}",
        "authors": AUTHORS,
        "cite": CITE,
        "license": "MIT",
        "format_version": "0.5.11",
        "type": "model",
        "documentation": {"source": "README.md"},
        "inputs": inputs,
        "outputs": outputs,
        "timestamp": "2021-09-12T14:18:58+00:00",
        "weights": weights,
    }
    return _write_yaml(folder / "bioimageio.yaml", data)


def _descriptor_v0_4(folder: Path, name: str, inputs: list, outputs: list, weights: dict) -> Path:
    (folder / "README.md").write_text(f"# {name}\n")
    data = {
        "format_version": "0.4.10",
        "type": "model",
        "name": name,
        "description": f"made by deepij's tests in the shape of the zoo's {name}",
        "authors": AUTHORS,
        "cite": CITE,
        "license": "CC-BY-4.0",
        "documentation": "README.md",
        "tags": ["test"],
        "inputs": inputs,
        "outputs": outputs,
        "test_inputs": ["test_input.npy"],
        "test_outputs": ["test_output.npy"],
        "timestamp": "2021-09-12T14:04:52Z",
        "weights": {fmt: {k: v for k, v in e.items() if k != "opset_version"} for fmt, e in weights.items()},
    }
    return _write_yaml(folder / "rdf.yaml", data)


def _bundle(folder: Path, descriptor: Path, name: str, formats: Sequence[str], test_input: Any,
            expected: Any, axes: str, model: Any = None) -> WrittenBundle:
    return WrittenBundle(
        folder=folder,
        descriptor=descriptor,
        version="0.5" if descriptor.name == "bioimageio.yaml" else "0.4",
        name=name,
        weights={fmt: fmt for fmt in formats},
        test_input=test_input,
        expected_output=expected,
        input_axes=axes,
        output_axes=axes,
        model=model,
    )


# --- the shapes ------------------------------------------------------------------------------------------


NUCLEI_FORMATS = ("onnx", "torchscript", "pytorch_state_dict")


def write_nuclei_broad(
    folder: str | Path, *, side: int = 512, formats: Sequence[str] = NUCLEI_FORMATS, seed: int = 0
) -> WrittenBundle:
    """``unet2d_nuclei_broad``: a U-Net (3 poolings, receptive radius 51) fixed at ``side``, halo 32."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = _seeded(lambda: torch_nets.UNet(1, 1, base=8, depth=3, sigmoid=False), seed)
    architecture = {"callable": "UNet", "kwargs": {"in_channels": 1, "out_channels": 1, "base": 8,
                                                   "depth": 3, "sigmoid": False}}
    weights = _weights(folder, module, formats, [(1, 1, side, side)], ["raw"], ["probability"], architecture)
    test_input = _nuclei_image(side, seed)
    expected = _sigmoid(_torch(module)(zero_mean_unit_variance(test_input, (2, 3)))[0])
    inputs = [{
        "id": "raw",
        "description": "raw input",
        "axes": [
            {"type": "batch", "size": 1}, _channel("raw_intensity"), _space("y", side), _space(None, side)
        ],
        "test_tensor": _tensor(folder, "test_input.npy", test_input),
        "preprocessing": [
            ENSURE_FLOAT32,
            {"id": "zero_mean_unit_variance", "kwargs": {"axes": ["x", "y"]}},
            ENSURE_FLOAT32,
        ],
    }]
    reference = {"tensor_id": "raw"}
    outputs = [{
        "id": "probability",
        "description": "probability in [0,1]",
        "axes": [
            {"type": "batch"},
            _channel("probability"),
            _space("y", dict(reference, axis_id="y"), halo=32),
            _space(None, dict(reference, axis_id="x"), halo=32),
        ],
        "test_tensor": _tensor(folder, "test_output.npy", expected),
        "data": {"range": [0.0, 1.0]},
        "postprocessing": [{"id": "sigmoid"}, ENSURE_FLOAT32],
    }]
    descriptor = _descriptor_v0_5(folder, "UNet 2D Nuclei Broad", inputs, outputs, weights)
    return _bundle(folder, descriptor, "UNet 2D Nuclei Broad", formats, test_input, expected, "bcyx", module)


def write_fixed_shape(folder: str | Path, *, side: int = 256, seed: int = 1) -> WrittenBundle:
    """``unet2d_fixed_shape`` (0.4): ``shape: [1, 1, side, side]``, halo 8, normalisation over ``cyx``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = _seeded(lambda: torch_nets.ConvNet(kernel_sizes=(3, 5, 3), hidden=8), seed)
    weights = _weights(folder, module, ["torchscript"], [], ["input"], ["output"])
    test_input = _nuclei_image(side, seed)
    expected = _torch(module)(zero_mean_unit_variance(test_input, (1, 2, 3)))[0]
    np.save(folder / "test_input.npy", test_input)
    np.save(folder / "test_output.npy", expected)
    shape = [1, 1, side, side]
    inputs = [{
        "axes": "bcyx", "data_range": [float("-inf"), float("inf")], "data_type": "float32", "name": "input",
        "preprocessing": [
            {"kwargs": {"axes": "cyx", "mode": "per_sample"}, "name": "zero_mean_unit_variance"}
        ],
        "shape": shape,
    }]
    outputs = [{
        "axes": "bcyx", "data_range": [float("-inf"), float("inf")], "data_type": "float32",
        "halo": [0, 0, 8, 8], "name": "output", "shape": shape,
    }]
    descriptor = _descriptor_v0_4(folder, "Fixed-shape", inputs, outputs, weights)
    return _bundle(folder, descriptor, "Fixed-shape", ["torchscript"], test_input, expected, "bcyx", module)


def _min_step_input(tensor_id: str, folder: Path, source: str, array: np.ndarray) -> dict[str, Any]:
    rule = {"min": 32, "step": 16}
    return {
        "id": tensor_id,
        "axes": [{"type": "batch"}, _channel(), _space("y", rule), _space(None, rule)],
        "test_tensor": _tensor(folder, source, array),
        "preprocessing": [
            ENSURE_FLOAT32,
            {"id": "zero_mean_unit_variance", "kwargs": {"axes": ["channel", "y", "x"]}},
            ENSURE_FLOAT32,
        ],
    }


def _following_output(tensor_id: str, reference: str, folder: Path, source: str, array: np.ndarray,
                      scale: float = 1.0) -> dict[str, Any]:
    extra = {"scale": scale} if scale != 1.0 else {}
    return {
        "id": tensor_id,
        "axes": [
            {"type": "batch"},
            _channel(),
            _space("y", {"tensor_id": reference, "axis_id": "y"}, **extra),
            _space(None, {"tensor_id": reference, "axis_id": "x"}, **extra),
        ],
        "test_tensor": _tensor(folder, source, array),
        "postprocessing": [ENSURE_FLOAT32],
    }


def write_diff_output_shape(folder: str | Path, *, side: int = 256, seed: int = 2) -> WrittenBundle:
    """``unet2d_diff_output_shape`` (0.5): sizes ``32 + 16k``, an output of half the input's size."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = _seeded(lambda: torch_nets.ConvNet(kernel_sizes=(3, 3), hidden=4, scale=0.5), seed)
    formats = ("torchscript", "onnx")
    weights = _weights(folder, module, formats, [(1, 1, side, side)], ["input"], ["output"])
    test_input = _nuclei_image(side, seed)
    expected = _torch(module)(zero_mean_unit_variance(test_input, (1, 2, 3)))[0]
    inputs = [_min_step_input("input", folder, "test_input.npy", test_input)]
    outputs = [_following_output("output", "input", folder, "test_output.npy", expected, scale=2.0)]
    descriptor = _descriptor_v0_5(folder, "Diff-output-shape", inputs, outputs, weights)
    return _bundle(folder, descriptor, "Diff-output-shape", formats, test_input, expected, "bcyx", module)


def write_multi_tensor(folder: str | Path, *, side: int = 64, seed: int = 3) -> WrittenBundle:
    """``unet2d_multi_tensor`` (0.5): inputs ``input0``/``input1``, outputs each sized after its own input.
    ``test_input``/``expected_output`` are dicts by tensor id."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = _seeded(torch_nets.PairNet, seed)
    formats = ("torchscript", "onnx")
    weights = _weights(folder, module, formats, [(1, 1, side, side)] * 2, ["input0", "input1"],
                       ["output0", "output1"], dynamic=True)
    first, second = _nuclei_image(side, seed), _nuclei_image(side, seed + 10)
    out0, out1 = _torch(module)(
        zero_mean_unit_variance(first, (1, 2, 3)), zero_mean_unit_variance(second, (1, 2, 3))
    )
    inputs = [
        _min_step_input("input0", folder, "test_input_0.npy", first),
        _min_step_input("input1", folder, "test_input_1.npy", second),
    ]
    outputs = [
        _following_output("output0", "input0", folder, "test_output_0.npy", out0),
        _following_output("output1", "input1", folder, "test_output_1.npy", out1),
    ]
    descriptor = _descriptor_v0_5(folder, "Multi-tensor", inputs, outputs, weights)
    return _bundle(folder, descriptor, "Multi-tensor", formats, {"input0": first, "input1": second},
                   {"output0": out0, "output1": out1}, "bcyx", module)


def write_upsample(folder: str | Path, *, shape: tuple[int, int] = (20, 15), seed: int = 4) -> WrittenBundle:
    """``upsample_test_model`` (0.4): sizes ``5k`` on ``yx``, output ``4x`` with a channel offset of 0.5."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = _seeded(torch_nets.Upsample4, seed)
    weights = _weights(folder, module, ["torchscript"], [], ["input"], ["output"])
    test_input = np.random.default_rng(seed).standard_normal((1, 1, *shape)).astype(np.float32)
    expected = _torch(module)(test_input)[0]
    np.save(folder / "test_input.npy", test_input)
    np.save(folder / "test_output.npy", expected)
    inputs = [{
        "axes": "bcyx", "data_range": [float("-inf"), float("inf")], "data_type": "float32", "name": "input",
        "shape": {"min": [1, 1, 5, 5], "step": [0, 0, 5, 5]},
    }]
    outputs = [{
        "axes": "bcyx", "data_range": [float("-inf"), float("inf")], "data_type": "float32",
        "halo": [0, 0, 0, 0], "name": "output",
        "shape": {"offset": [0.0, 0.5, 0.0, 0.0], "reference_tensor": "input", "scale": [1.0, 0.0, 4.0, 4.0]},
    }]
    descriptor = _descriptor_v0_4(folder, "Test_scaling", inputs, outputs, weights)
    return _bundle(folder, descriptor, "Test_scaling", ["torchscript"], test_input, expected, "bcyx", module)


def write_expand_output_shape(folder: str | Path, *, side: int = 512, seed: int = 5) -> WrittenBundle:
    """``expand_output_shape`` (0.5): input fixed at ``side``, output ``b, c, z (1), y, x``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = _seeded(torch_nets.WithZ, seed)
    weights = _weights(folder, module, ["torchscript"], [], ["raw"], ["probability"])
    test_input = _nuclei_image(side, seed)
    expected = _sigmoid(_torch(module)(zero_mean_unit_variance(test_input, (2, 3)))[0])
    inputs = [{
        "id": "raw",
        "axes": [{"type": "batch"}, _channel(), _space("y", side, scale=1.0), _space("x", side, scale=1.0)],
        "data": {"type": "float32"},
        "test_tensor": _tensor(folder, "test_input.npy", test_input),
        "preprocessing": [
            ENSURE_FLOAT32,
            {"id": "zero_mean_unit_variance", "kwargs": {"axes": ["y", "x"], "eps": 1e-06}},
            ENSURE_FLOAT32,
        ],
    }]
    reference = {"tensor_id": "raw", "offset": 0}
    outputs = [{
        "id": "probability",
        "axes": [
            {"type": "batch"},
            _channel(),
            _space("z", 1, scale=1.0),
            _space("y", dict(reference, axis_id="y"), halo=32, scale=1.0),
            _space("x", dict(reference, axis_id="x"), halo=32, scale=1.0),
        ],
        "data": {"type": "float32"},
        "test_tensor": _tensor(folder, "test_output_expanded.npy", expected),
        "postprocessing": [{"id": "sigmoid"}, ENSURE_FLOAT32],
    }]
    descriptor = _descriptor_v0_5(folder, "UNet 2D Nuclei Broad", inputs, outputs, weights)
    name = "UNet 2D Nuclei Broad"
    return _bundle(folder, descriptor, name, ["torchscript"], test_input, expected, "bcyx", module)


WRITERS = {
    "unet2d_nuclei_broad": write_nuclei_broad,
    "unet2d_fixed_shape": write_fixed_shape,
    "unet2d_diff_output_shape": write_diff_output_shape,
    "unet2d_multi_tensor": write_multi_tensor,
    "upsample_test_model": write_upsample,
    "expand_output_shape": write_expand_output_shape,
}
"""The zoo example each writer stands for, by the example's folder name."""
