"""A deepImageJ-style StarDist bundle, as deepImageJ 2.x's StarDist bundles are laid out: the tiny StarDist2D
trained by :func:`support.stardist_bundles.train_tiny_stardist`, patched to one output (probability and
distances at half the image's size), a 0.4 ``rdf.yaml`` whose ``config.deepimagej`` runs

- ``per_sample_scale_range.ijm`` (deepImageJ's histogram percentiles,
  :data:`support.dij_bundles.SCALE_RANGE_MACRO`) before the network, and
- ``StarDist2D_Post-processing.ijm`` after it: the steps of deepImageJ's StarDist macro (upsampling by the
  grid, probability and distances split, StarDist's ``StarDist2DNMS`` through ``Command From Macro``), written
  here (:func:`support.stardist_bundles.stardist_post_processing_macro`).

The descriptor also lists ``scale_range`` as a spec op (deepImageJ runs only the macros; the zoo's tools the
op), and no instance op: in deepImageJ the objects come from the macro.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from support.bundles import sha256_file
from support.dij_bundles import SCALE_RANGE_MACRO
from support.stardist_bundles import (
    NMS_THRESHOLD,
    StarDistBundle,
    _normalized,
    _patched,
    _saved_model_zip,
    stardist_post_processing_macro,
)

NAME = "tiny StarDist deepImageJ"
POST_MACRO = "StarDist2D_Post-processing.ijm"
PRE_MACRO = "per_sample_scale_range.ijm"


def write_deepimagej_stardist(
    model: Any, folder: Path, image: np.ndarray, *, version: str = "0.4"
) -> StarDistBundle:
    """The bundle (module notes); ``image`` (``(y, x)``) is its example image. ``version="0.3"`` writes a
    deepImageJ 2.1 ``model.yaml`` (0.3.2) with the same content instead of the 0.4 ``rdf.yaml``.

    The macro's probability threshold is where the network's map of ``image`` (mirror-padded by the
    bundle's margin, as deepImageJ tiles it) has its top 2 %: the tiny network is trained only roughly, and
    its own threshold would leave some runs without objects.
    """
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    network = _patched(model, upsample=False)
    weights = _saved_model_zip(network, folder)
    padded = np.pad(_normalized(image), 16, mode="reflect")[None, :, :, None]
    threshold = float(np.quantile(np.asarray(network(padded))[0, 8:-8, 8:-8, 0], 0.98))
    (folder / PRE_MACRO).write_text(SCALE_RANGE_MACRO)
    (folder / POST_MACRO).write_text(stardist_post_processing_macro(threshold, NMS_THRESHOLD))
    tifffile.imwrite(folder / "exampleImage.tif", image.astype(np.float32), imagej=True)
    np.save(folder / "test_input.npy", image[None, :, :, None].astype(np.float32))
    np.save(folder / "test_output.npy", np.asarray(network(_normalized(image)[None, :, :, None])))
    div_by = int(max(model._axes_div_by("YX")))
    channels = 1 + model.config.n_rays
    data = {
        "format_version": "0.4.9",
        "type": "model",
        "name": NAME,
        "description": "A tiny StarDist2D with deepImageJ's StarDist post-processing macro",
        "authors": [{"name": "deepij tests"}],
        "cite": [{"text": "StarDist", "doi": "10.1007/978-3-030-00934-2_30"}],
        "license": "BSD-3-Clause",
        "documentation": "README.md",
        "tags": ["deepimagej", "stardist", "segmentation"],
        "timestamp": "2021-07-01T00:00:00",
        "inputs": [_input(div_by)],
        "outputs": [
            {
                "name": "output",
                "axes": "byxc",
                "data_type": "float32",
                "data_range": ["-inf", "inf"],
                "halo": [0, 8, 8, 0],
                "shape": {
                    "reference_tensor": "input",
                    "scale": [1.0, 0.5, 0.5, 0.0],
                    "offset": [0.0, 0.0, 0.0, channels / 2],
                },
            }
        ],
        "test_inputs": ["test_input.npy"],
        "test_outputs": ["test_output.npy"],
        "sample_inputs": ["exampleImage.tif"],
        "weights": {
            "tensorflow_saved_model_bundle": {
                "source": weights.name,
                "sha256": sha256_file(weights),
                "tensorflow_version": "2.21",
            }
        },
        "config": {"deepimagej": _deepimagej_config(image.shape)},
    }
    if version == "0.3":
        data = _as_v0_3(data)
    (folder / "README.md").write_text(f"# {NAME}\n")
    descriptor = folder / ("model.yaml" if version == "0.3" else "rdf.yaml")
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False))
    return StarDistBundle(folder, descriptor, network, threshold)


def _as_v0_3(data: dict[str, Any]) -> dict[str, Any]:
    """The 0.4 descriptor in deepImageJ 2.1's 0.3.2 shape: authors as names, ``reference_input``, the
    macros as attachments, no spec ops (deepImageJ 2.1 wrote none)."""
    inputs = [{k: v for k, v in spec.items() if k != "preprocessing"} for spec in data["inputs"]]
    outputs = []
    for spec in data["outputs"]:
        shape = dict(spec["shape"])
        shape["reference_input"] = shape.pop("reference_tensor")
        outputs.append({**spec, "shape": shape})
    return {
        **{k: v for k, v in data.items() if k not in ("type", "sample_inputs")},
        "format_version": "0.3.2",
        "authors": ["deepij tests"],
        "language": "java",
        "framework": "tensorflow",
        "attachments": {"files": [f"./{PRE_MACRO}", f"./{POST_MACRO}"]},
        "inputs": inputs,
        "outputs": outputs,
    }


def _input(div_by: int) -> dict[str, Any]:
    return {
        "name": "input",
        "axes": "byxc",
        "data_type": "float32",
        "data_range": ["-inf", "inf"],
        "shape": {"min": [1, 2 * div_by, 2 * div_by, 1], "step": [0, div_by, div_by, 0]},
        "preprocessing": [
            {
                "name": "scale_range",
                "kwargs": {"mode": "per_sample", "axes": "yx", "min_percentile": 1.0, "max_percentile": 99.8},
            }
        ],
    }


def _deepimagej_config(shape: tuple[int, ...]) -> dict[str, Any]:
    return {
        "pyramidal_model": False,
        "allow_tiling": True,
        "model_keys": {
            "tensorflow_model_tag": "tf.saved_model.tag_constants.SERVING",
            "tensorflow_siganture_def": (
                "tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY"
            ),
        },
        "test_information": {
            "inputs": [
                {
                    "name": "exampleImage.tif",
                    "size": f"{shape[1]} x {shape[0]} x 1 x 1",
                    "pixel_size": {"x": "1.0 pixel", "y": "1.0 pixel", "z": "1.0 pixel"},
                }
            ],
            "memory_peak": "120 Mb",
            "runtime": "1.2 s",
        },
        "prediction": {
            "preprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": PRE_MACRO}],
            "postprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": POST_MACRO}],
        },
    }
