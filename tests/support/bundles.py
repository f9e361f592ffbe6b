"""Write small, valid bundles of every descriptor version, with real weights, for tests.

Each writer makes a complete bundle folder the way its era's tools made them (descriptor YAML written here by
hand, not through deepij's writer, so readers are tested against independent files), with real weights from
:mod:`support.models`, ImageJ macros, test input/output ``.npy`` files and the expected output computed in
numpy from the network's own forward pass:

- :func:`write_bundle_v0_3`: deepImageJ 2.x ``model.yaml`` 0.3.2, ``config.deepimagej`` with TF constant
  names under the misspelled ``tensorflow_siganture_def`` key, quirky ``test_information`` (``"0.3 s s"``,
  ``"1,60E-04 cm"``), pre/post-processing as ImageJ macros (``{spec: ij.IJ::runMacroFile, kwargs: ...}``).
  Weights ``pytorch_script`` (default) or a TF1 SavedModel zipped as ``tensorflow_saved_model_bundle.zip``.
- :func:`write_bundle_v0_4`: zoo ``rdf.yaml`` 0.4.10: the same normalisation twice, as a spec op
  (``zero_mean_unit_variance``) AND as a deepImageJ macro; torchscript (+ onnx, + pytorch_state_dict).
- :func:`write_bundle_v0_5`: ``rdf.yaml`` (or ``bioimageio.yaml``) 0.5.4 with axis objects, size
  references, ``test_tensor``/``sample_tensor`` inside the tensors, spec ops with ``id``, an attachment
  (``training_log.csv``), the test tensors and the attachment with their sha256; torchscript
  (+ onnx, + state dict).
- :func:`zip_bundle` packs any of them (optionally wrapped in a top folder, as zipping a folder does).

The expected output follows the descriptor's processing exactly: 0.3 ``(x - min) / (max - min)``, network,
``* 2``; 0.4 per-sample zero-mean/unit-variance over ``yx`` (population std, eps 1e-6), network;
0.5 the same, network, sigmoid.

Usage in a test (``tmp_path`` is pytest's fixture)::

    bundle = write_bundle_v0_5(tmp_path / "b05")
    description = deepij.load(bundle.folder).description
    np.testing.assert_allclose(run(bundle.test_input), bundle.expected_output, atol=1e-4)
    zipped = zip_bundle(bundle.folder)
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

TEST_SHAPE_YX = (32, 32)
ZMUV_EPS = 1e-6

PRE_MACRO_V0_3 = """// deepImageJ pre-processing: scale the image to [0, 1] by its minimum and maximum
run("32-bit");
getStatistics(area, mean, min, max);
run("Subtract...", "value=" + min);
run("Divide...", "value=" + (max - min));
"""
POST_MACRO_V0_3 = """// deepImageJ post-processing: double the network output
run("Multiply...", "value=2");
"""
ZMUV_MACRO = """// zero mean, unit variance over the image (population standard deviation, eps 1e-6)
run("32-bit");
getStatistics(area, mean, min, max, std);
n = getWidth() * getHeight();
population_std = std * sqrt((n - 1) / n);
run("Subtract...", "value=" + mean);
run("Divide...", "value=" + (population_std + 1e-6));
"""


@dataclass
class WrittenBundle:
    """A bundle written by one of this module's writers.

    Attributes
    ----------
    folder : Path
        The bundle folder.
    descriptor : Path
        Its descriptor file.
    version : str
        ``"0.3"``, ``"0.4"`` or ``"0.5"``.
    name : str
        The descriptor's ``name``.
    weights : dict
        Canonical weights format -> written file (or, for TF, the zip), relative to ``folder``.
    test_input, expected_output : ndarray
        The test tensors as written (``expected_output`` is the test output: the network's forward pass
        on the pre-processed input, then post-processing), in the descriptor's axes.
    input_axes, output_axes : str
        The tensors' axes as the descriptor gives them.
    model : object
        The :class:`support.models.WrittenModel` of the first weights format.
    """

    folder: Path
    descriptor: Path
    version: str
    name: str
    weights: dict[str, str]
    test_input: np.ndarray
    expected_output: np.ndarray
    input_axes: str
    output_axes: str
    model: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _test_image(seed: int, shape: Sequence[int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape, dtype=np.float32) * 200.0 + 10.0).astype(np.float32)


def zero_mean_unit_variance(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The spec op as the zoo computes it (population std, eps 1e-6), in float32."""
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = x.std(axis=axes, keepdims=True, dtype=np.float64)
    return ((x - mean) / (std + ZMUV_EPS)).astype(np.float32)


# --- deepImageJ 2.x model.yaml 0.3 -----------------------------------------------------------------------


def write_bundle_v0_3(
    folder: str | Path,
    *,
    weights: str = "torchscript",
    name: str = "deepij test 0.3 model",
    seed: int = 0,
) -> WrittenBundle:
    """A deepImageJ 2.x bundle: ``model.yaml`` 0.3.2 with ``config.deepimagej`` and two macros.

    Parameters
    ----------
    folder : str or Path
        Created if needed.
    weights : str
        ``"torchscript"`` (written under the old key ``pytorch_script``, axes ``bcyx``) or
        ``"tensorflow"`` (a TF1 SavedModel under tag ``serve`` / signature ``serving_default``, zipped as
        ``tensorflow_saved_model_bundle.zip``, axes ``byxc``; imports TensorFlow, ~5 s).
    """
    from support import models

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if weights not in ("torchscript", "tensorflow"):
        raise ValueError(f"weights must be 'torchscript' or 'tensorflow', not {weights!r}")
    axes = "byxc" if weights == "tensorflow" else "bcyx"
    shape = [1, *TEST_SHAPE_YX, 1] if axes == "byxc" else [1, 1, *TEST_SHAPE_YX]
    test_input = _test_image(seed, shape)
    scaled = ((test_input - test_input.min()) / (test_input.max() - test_input.min())).astype(np.float32)
    if weights == "tensorflow":
        staging = folder / "_saved_model"
        model = models.write_tf1_saved_model(staging, tag="serve", signature="serving_default", seed=seed)
        network_output = model.forward(scaled)[0]  # a real TF1 session on the saved model
        _zip_folder_contents(staging, folder / "tensorflow_saved_model_bundle.zip")
        shutil.rmtree(staging)
        weights_key, source = "tensorflow_saved_model_bundle", "tensorflow_saved_model_bundle.zip"
    else:
        model = models.write_torchscript_convnet(folder / "pytorch_script.pt", seed=seed)
        network_output = model.forward(scaled)[0]
        weights_key, source = "pytorch_script", "pytorch_script.pt"
    expected = (network_output * 2).astype(np.float32)
    np.save(folder / "exampleImage.npy", test_input)
    np.save(folder / "resultImage.npy", expected)
    (folder / "preprocessing.ijm").write_text(PRE_MACRO_V0_3)
    (folder / "postprocessing.ijm").write_text(POST_MACRO_V0_3)

    min_size, halo = model.min_size, model.halo
    per_axis = {"b": (1, 0), "c": (1, 0), "y": (min_size, 1), "x": (min_size, 1)}
    model_keys = (
        {
            "tensorflow_model_tag": "tf.saved_model.tag_constants.SERVING",
            "tensorflow_siganture_def": (  # sic: the key deepImageJ 2.x writes
                "tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY"
            ),
        }
        if weights == "tensorflow"
        else None
    )
    data = {
        "type": "model",
        "format_version": "0.3.2",
        "name": name,
        "description": "A tiny convolutional network packaged like a deepImageJ 2.1 bundle.",
        "timestamp": "2021-04-07T19:49:30.000301",
        "authors": [{"name": "deepij tests", "affiliation": "nowhere"}],
        "cite": [{"text": "deepij test bundle", "doi": "https://doi.org/10.0000/none"}],
        "documentation": "./README.md",
        "covers": ["./cover.png"],
        "tags": ["deepimagej", "test"],
        "license": "BSD-2-Clause",
        "language": "java",
        "framework": "tensorflow" if weights == "tensorflow" else "pytorch",
        "test_inputs": ["./exampleImage.npy"],
        "test_outputs": ["./resultImage.npy"],
        "sample_inputs": ["./exampleImage.npy"],
        "sample_outputs": ["./resultImage.npy"],
        "attachments": {"files": ["./preprocessing.ijm", "./postprocessing.ijm"]},
        "weights": {weights_key: {"source": f"./{source}", "sha256": sha256_file(folder / source)}},
        "inputs": [
            {
                "name": model.input_names[0],
                "axes": axes,
                "data_type": "float32",
                "data_range": ["-inf", "inf"],
                "shape": {"min": [per_axis[a][0] for a in axes], "step": [per_axis[a][1] for a in axes]},
            }
        ],
        "outputs": [
            {
                "name": model.output_names[0],
                "axes": axes,
                "data_type": "float32",
                "data_range": ["-inf", "inf"],
                "halo": [halo if a in "yx" else 0 for a in axes],
                "shape": {
                    "reference_input": model.input_names[0],
                    "scale": [1.0] * len(axes),
                    "offset": [0] * len(axes),
                },
            }
        ],
        "run_mode": {"name": "deepimagej"},
        "config": {
            "deepimagej": {
                "pyramidal_model": False,
                "allow_tiling": True,
                "model_keys": model_keys,
                "test_information": {
                    "inputs": [
                        {
                            "name": "exampleImage.npy",
                            "size": f"{TEST_SHAPE_YX[1]} x {TEST_SHAPE_YX[0]} x 1 x 1",
                            "pixel_size": {"x": "1,60E-04 cm", "y": "1,60E-04 cm", "z": "1.0 pixel"},
                        }
                    ],
                    "outputs": [{"name": "resultImage.npy", "type": "image", "size": "32 x 32 x 1 x 1"}],
                    "memory_peak": "62.9 Mb",
                    "runtime": "0.3 s s",
                },
                "prediction": {
                    "preprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": "preprocessing.ijm"}],
                    "postprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": "postprocessing.ijm"}],
                },
            }
        },
    }
    descriptor = _write_yaml(folder / "model.yaml", data)
    return WrittenBundle(
        folder=folder,
        descriptor=descriptor,
        version="0.3",
        name=name,
        weights={"torchscript" if weights_key == "pytorch_script" else weights_key: source},
        test_input=test_input,
        expected_output=expected,
        input_axes=axes,
        output_axes=axes,
        model=model,
    )


# --- zoo rdf.yaml 0.4 ------------------------------------------------------------------------------------


def _torch_weights(folder: Path, formats: Sequence[str], seed: int) -> tuple[Any, dict[str, Any]]:
    """Write the same convnet in each format; the first one's WrittenModel and per-format info."""
    from support import models

    written: dict[str, Any] = {}
    for fmt in formats:
        if fmt == "torchscript":
            written[fmt] = models.write_torchscript_convnet(folder / "weights_torchscript.pt", seed=seed)
        elif fmt == "onnx":
            written[fmt] = models.write_onnx_convnet(folder / "weights.onnx", seed=seed)
        elif fmt == "pytorch_state_dict":
            written[fmt] = models.write_state_dict_convnet(folder, seed=seed)
        else:
            raise ValueError(f"unsupported weights format for these bundles: {fmt!r}")
    return written[formats[0]], written


def write_bundle_v0_4(
    folder: str | Path,
    *,
    weights: Sequence[str] = ("torchscript",),
    name: str = "deepij test 0.4 model",
    seed: int = 0,
) -> WrittenBundle:
    """A zoo ``rdf.yaml`` 0.4.10 with spec ops and the same normalisation as a deepImageJ macro.

    ``weights`` is any of ``torchscript``, ``onnx``, ``pytorch_state_dict`` (the first gives the test output).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, written = _torch_weights(folder, weights, seed)
    test_input = _test_image(seed + 1, [1, 1, *TEST_SHAPE_YX])
    expected = model.forward(zero_mean_unit_variance(test_input, (2, 3)))[0].astype(np.float32)
    np.save(folder / "test_input.npy", test_input)
    np.save(folder / "test_output.npy", expected)
    (folder / "zero_mean_unit_variance.ijm").write_text(ZMUV_MACRO)
    (folder / "README.md").write_text(f"# {name}\n\nA test bundle.\n")

    weights_data: dict[str, Any] = {}
    for fmt, info in written.items():
        entry: dict[str, Any] = {"source": info.path.name, "sha256": sha256_file(info.path)}
        if fmt == "pytorch_state_dict":
            arch = info.architecture
            entry.update(
                architecture=f"{arch.source}:{arch.callable}",
                architecture_sha256=sha256_file(folder / arch.source),
                kwargs=dict(arch.kwargs),
                pytorch_version="2.13",
            )
        elif fmt == "torchscript":
            entry["pytorch_version"] = "2.13"
        elif fmt == "onnx":
            entry["opset_version"] = 17
        weights_data[fmt] = entry
    halo = model.halo
    data = {
        "format_version": "0.4.10",
        "type": "model",
        "name": name,
        "description": "A tiny convolutional network in a zoo 0.4 rdf.yaml with deepImageJ macros.",
        "authors": [{"name": "deepij tests", "affiliation": "nowhere"}],
        "cite": [{"text": "deepij test bundle", "url": "https://example.com/"}],
        "license": "MIT",
        "documentation": "README.md",
        "covers": [],
        "tags": ["test", "deepimagej"],
        "timestamp": "2019-12-11T12:22:32Z",
        "inputs": [
            {
                "name": "input",
                "description": "raw input",
                "axes": "bcyx",
                "data_type": "float32",
                "data_range": [float("-inf"), float("inf")],
                "shape": {"min": [1, 1, model.min_size, model.min_size], "step": [0, 0, 1, 1]},
                "preprocessing": [
                    {"name": "zero_mean_unit_variance", "kwargs": {"mode": "per_sample", "axes": "yx"}}
                ],
            }
        ],
        "outputs": [
            {
                "name": "output",
                "axes": "bcyx",
                "data_type": "float32",
                "data_range": [float("-inf"), float("inf")],
                "halo": [0, 0, halo, halo],
                "shape": {
                    "reference_tensor": "input",
                    "scale": [1.0, 0.0, 1.0, 1.0],
                    "offset": [0, 0.5, 0, 0],
                },
            }
        ],
        "test_inputs": ["test_input.npy"],
        "test_outputs": ["test_output.npy"],
        "sample_inputs": ["test_input.npy"],
        "sample_outputs": ["test_output.npy"],
        "weights": weights_data,
        "config": {
            "deepimagej": {
                "pyramidal_model": False,
                "allow_tiling": True,
                "model_keys": None,
                "test_information": {
                    "inputs": [{"name": "test_input.npy", "size": "32 x 32 x 1 x 1"}],
                    "memory_peak": None,
                    "runtime": "0.1 s",
                },
                "prediction": {
                    "preprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": "zero_mean_unit_variance.ijm"}],
                    "postprocess": [{"spec": None}],
                },
            }
        },
    }
    descriptor = _write_yaml(folder / "rdf.yaml", data)
    return WrittenBundle(
        folder=folder,
        descriptor=descriptor,
        version="0.4",
        name=name,
        weights={fmt: info.path.name for fmt, info in written.items()},
        test_input=test_input,
        expected_output=expected,
        input_axes="bcyx",
        output_axes="bcyx",
        model=model,
    )


# --- rdf.yaml 0.5 ----------------------------------------------------------------------------------------


TRAINING_LOG = "training_log.csv"
TRAINING_LOG_TEXT = "epoch,loss,val_loss\n1,0.693,0.690\n2,0.412,0.431\n3,0.298,0.322\n"
"""The 0.5 bundle's attachment, as zoo bundles attach their training records."""


def write_bundle_v0_5(
    folder: str | Path,
    *,
    weights: Sequence[str] = ("torchscript",),
    name: str = "deepij test 0.5 model",
    descriptor_name: str = "rdf.yaml",
    seed: int = 0,
) -> WrittenBundle:
    """A 0.5.4 descriptor with axis objects (batch, channel with names, space with size references).

    ``descriptor_name`` may be ``bioimageio.yaml`` or ``something.bioimageio.yaml`` too.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, written = _torch_weights(folder, weights, seed)
    test_input = _test_image(seed + 2, [1, 1, *TEST_SHAPE_YX])
    net_out = model.forward(zero_mean_unit_variance(test_input, (2, 3)))[0]
    expected = (1.0 / (1.0 + np.exp(-net_out.astype(np.float64)))).astype(np.float32)
    np.save(folder / "test_input.npy", test_input)
    np.save(folder / "test_output.npy", expected)
    (folder / TRAINING_LOG).write_text(TRAINING_LOG_TEXT)

    weights_data: dict[str, Any] = {}
    for fmt, info in written.items():
        entry: dict[str, Any] = {"source": info.path.name, "sha256": sha256_file(info.path)}
        if fmt == "pytorch_state_dict":
            arch = info.architecture
            entry["architecture"] = {
                "source": arch.source,
                "sha256": sha256_file(folder / arch.source),
                "callable": arch.callable,
                "kwargs": dict(arch.kwargs),
            }
            entry["pytorch_version"] = "2.13"
        elif fmt == "torchscript":
            entry["pytorch_version"] = "2.13"
        else:
            entry["opset_version"] = 17
        if fmt != "pytorch_state_dict" and "pytorch_state_dict" in written:
            entry["parent"] = "pytorch_state_dict"
        weights_data[fmt] = entry
    halo = model.halo
    data = {
        "format_version": "0.5.4",
        "type": "model",
        "name": name,
        "description": "A tiny convolutional network in a 0.5 descriptor.",
        "authors": [{"name": "deepij tests", "affiliation": "nowhere", "github_user": "deepij"}],
        "cite": [{"text": "deepij test bundle", "doi": "10.5281/zenodo.0000000"}],
        "license": "MIT",
        "documentation": {"source": "README.md"},
        "tags": ["test"],
        "attachments": [{"source": TRAINING_LOG, "sha256": sha256_file(folder / TRAINING_LOG)}],
        "inputs": [
            {
                "id": "raw",
                "description": "raw intensities",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["intensity"]},
                    {
                        "type": "space",
                        "id": "y",
                        "size": {"min": model.min_size, "step": 1},
                        "unit": "micrometer",
                    },
                    {
                        "type": "space",
                        "id": "x",
                        "size": {"min": model.min_size, "step": 1},
                        "unit": "micrometer",
                    },
                ],
                "test_tensor": {"source": "test_input.npy", "sha256": sha256_file(folder / "test_input.npy")},
                "sample_tensor": {"source": "test_input.npy"},
                "data": {"type": "float32"},
                "preprocessing": [
                    {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                    {"id": "zero_mean_unit_variance", "kwargs": {"axes": ["y", "x"]}},
                ],
            }
        ],
        "outputs": [
            {
                "id": "probability",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["probability"]},
                    {
                        "type": "space",
                        "id": "y",
                        "size": {"tensor_id": "raw", "axis_id": "y"},
                        "halo": halo,
                        "unit": "micrometer",
                    },
                    {
                        "type": "space",
                        "id": "x",
                        "size": {"tensor_id": "raw", "axis_id": "x"},
                        "halo": halo,
                        "unit": "micrometer",
                    },
                ],
                "test_tensor": {
                    "source": "test_output.npy",
                    "sha256": sha256_file(folder / "test_output.npy"),
                },
                "data": {"type": "float32", "range": [0.0, 1.0]},
                "postprocessing": [{"id": "sigmoid"}, {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}],
            }
        ],
        "weights": weights_data,
        "config": {"bioimageio": {"reproducibility_tolerance": [{"absolute_tolerance": 1e-4}]}},
        "timestamp": "2024-01-01T00:00:00Z",
    }
    (folder / "README.md").write_text(f"# {name}\n")
    descriptor = _write_yaml(folder / descriptor_name, data)
    return WrittenBundle(
        folder=folder,
        descriptor=descriptor,
        version="0.5",
        name=name,
        weights={fmt: info.path.name for fmt, info in written.items()},
        test_input=test_input,
        expected_output=expected,
        input_axes="bcyx",
        output_axes="bcyx",
        model=model,
    )


WRITERS = {"0.3": write_bundle_v0_3, "0.4": write_bundle_v0_4, "0.5": write_bundle_v0_5}


def write_bundle(version: str, folder: str | Path, **kwargs: Any) -> WrittenBundle:
    """``write_bundle("0.4", folder)`` = :func:`write_bundle_v0_4` (``folder``, ...)."""
    return WRITERS[version](folder, **kwargs)


# --- zips ------------------------------------------------------------------------------------------------


def _zip_folder_contents(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return zip_path


def zip_bundle(
    folder: str | Path, zip_path: str | Path | None = None, *, wrap_in_folder: bool = False
) -> Path:
    """Pack a bundle folder into a zip (default: ``<folder>.zip`` beside it).

    ``wrap_in_folder=True`` puts everything under ``<folder name>/`` inside the zip, as zipping a folder
    from a file manager does.
    """
    folder = Path(folder)
    zip_path = Path(zip_path) if zip_path is not None else folder.with_suffix(".zip")
    prefix = f"{folder.name}/" if wrap_in_folder else ""
    return _zip_folder_contents(folder, zip_path, prefix)
