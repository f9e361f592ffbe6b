"""A tiny StarDist2D trained here with the ``stardist`` package and TensorFlow on synthetic blobs, and the
bundles its exporters write.

stardist 0.9.2 (the release) exports with ``bioimageio.core.build_spec`` (bioimageio.core 0.5, gone) and
with csbdeep's ``export_SavedModel``, which refuses Keras 3 ("Exporting to SavedModel is no longer
supported with Keras 3+"): neither works here, so the bundles are written as the exporters write them:

- :func:`write_stardist_v0_5`: stardist's current exporter (``stardist/bioimageio_utils.py`` on main): the
  network patched to one output (probability + distances clipped by ``ReLU(threshold=1e-3)``, at the grid's
  resolution), output ``instance_labels`` (batch, y, x, one channel, int32) with a
  ``stardist_postprocessing`` op, ``config.stardist``, ``scale_range`` pre-processing with ``eps: 1e-20``.
- :func:`write_stardist_v0_4`: the 0.9.2 exporter: one output ``output`` of ``1 + n_rays`` channels at the
  input's size (``upsample_grid=True``: probability by a ones transposed convolution, distances by
  nearest upsampling), ``config.stardist`` with the thresholds and the model's config, no post-processing.

Weights are a TF2 SavedModel written by Keras 3's ``model.export`` (the ``serve`` endpoint).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from support.bundles import sha256_file

N_RAYS = 16
GRID = (2, 2)
NMS_THRESHOLD = 0.4

# The steps of a deepImageJ StarDist post-processing macro, written here: the network's output (probability
# in channel 1, distances after it, at 1/grid of the image's size) upsampled bicubically, split into a
# probability image and a distance image, coloured, then StarDist's NMS through Command From Macro. The
# thresholds are filled in by stardist_post_processing_macro.
_POST_PROCESSING = """// StarDist post-processing of a deepImageJ bundle
title = getTitle();
grid = @GRID@;
probThresh = @PROB@;
nmsThresh = @NMS@;
getDimensions(width, height, channels, slices, frames);
layers = maxOf(channels, slices);
run("Scale...", "x=" + grid + " y=" + grid + " z=1.0 width=" + grid*width + " height=" + grid*height
    + " depth=" + layers + " interpolation=Bicubic average process create title=upsampled");
selectWindow(title);
close();
selectWindow("upsampled");
rename(title);
run("Make Substack...", "channels=1");
rename("scores");
run("Fire");
selectWindow(title);
run("Delete Slice", "delete=channel");
selectWindow(title);
run("Properties...", "channels=" + layers - 1
    + " slices=1 frames=1 pixel_width=1.0000 pixel_height=1.0000 voxel_depth=1.0000");
rename("distances");
run("royal");
run("Command From Macro", "command=[de.csbdresden.stardist.StarDist2DNMS], args=['prob':'scores', "
    + "'dist':'distances', 'probThresh':'" + probThresh + "', 'nmsThresh':'" + nmsThresh + "', "
    + "'outputType':'Both', 'excludeBoundary':'2', 'roiPosition':'Stack', 'verbose':'false'], "
    + "process=[false]");
"""


def stardist_post_processing_macro(prob: float, nms: float = NMS_THRESHOLD, grid: int = 2) -> str:
    """A deepImageJ-style StarDist post-processing macro with these thresholds and grid."""
    values = {"@GRID@": str(grid), "@PROB@": repr(float(prob)), "@NMS@": repr(float(nms))}
    macro = _POST_PROCESSING
    for key, value in values.items():
        macro = macro.replace(key, value)
    return macro


def blob_image(size: int = 64, *, objects: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bright disks of radius 4-7 on a noisy background, and their labels (disks do not touch)."""
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    image = np.zeros((size, size), np.float32)
    labels = np.zeros((size, size), np.int32)
    for _ in range(objects * 4):
        if labels.max() >= objects:
            break
        radius = int(rng.integers(4, 8))
        centre = rng.integers(radius + 1, size - radius - 1, 2)
        rr, cc = disk((int(centre[0]), int(centre[1])), radius + 2, shape=image.shape)
        if labels[rr, cc].any():
            continue
        rr, cc = disk((int(centre[0]), int(centre[1])), radius, shape=image.shape)
        labels[rr, cc] = labels.max() + 1
        image[rr, cc] = 1.0
    image += 0.15 * rng.standard_normal(image.shape).astype(np.float32)
    return image, labels


def train_tiny_stardist(folder: Path, *, epochs: int = 4, steps: int = 8, rate: float = 3e-3) -> Any:
    """A StarDist2D (16 rays, grid 2, a 2-level U-Net of 8 filters) trained for a few epochs on blobs.

    About 15-30 s of training on 2 cores; thresholds set, not optimised (that takes longer than training).
    """
    import keras
    from stardist.models import Config2D, StarDist2D

    keras.utils.set_random_seed(0)  # weights and stardist's patch sampling (numpy): the same model each run
    pairs = [blob_image(64, seed=s) for s in range(24)]
    images, labels = [p[0] for p in pairs], [p[1] for p in pairs]
    config = Config2D(
        n_rays=N_RAYS,
        grid=GRID,
        n_channel_in=1,
        unet_n_depth=2,
        unet_n_filter_base=8,
        train_patch_size=(64, 64),
        train_batch_size=4,
        train_epochs=epochs,
        train_steps_per_epoch=steps,
        use_gpu=False,
        train_tensorboard=False,
        train_learning_rate=rate,
    )
    model = StarDist2D(config, name="tiny", basedir=str(folder))
    model.train(
        images, labels, validation_data=(images[:2], labels[:2]), epochs=epochs, steps_per_epoch=steps
    )
    # A few steps train it only roughly: the probability threshold is where its map on a held-out image has
    # its top 3 % (some dozens of candidates), so that NMS has work to do whatever the training reached.
    from csbdeep.utils import normalize

    prob, _ = model.predict(normalize(blob_image(128, objects=20, seed=99)[0], 1, 99.8))
    model.thresholds = {"prob": float(np.quantile(prob, 0.97)), "nms": NMS_THRESHOLD}
    return model


def _patched(model: Any, *, upsample: bool) -> Any:
    """The network as stardist's exporters patch it: one output, probability then the clipped distances."""
    import keras

    prob, dist = model.keras_model.outputs[0], model.keras_model.outputs[1]
    grid = tuple(model.config.grid)
    if upsample:
        prob = keras.layers.Conv2DTranspose(
            1, (1, 1), strides=grid, padding="same", kernel_initializer="ones", use_bias=False
        )(prob)
        dist = keras.layers.UpSampling2D(grid)(dist)
    dist = keras.layers.ReLU(threshold=1e-3)(dist)
    return keras.Model(model.keras_model.inputs[0], keras.layers.Concatenate()([prob, dist]))


def _saved_model_zip(network: Any, folder: Path) -> Path:
    export = folder / "tf_saved_model"
    network.export(str(export), format="tf_saved_model", verbose=False)
    target = folder / "TF_SavedModel.zip"
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(export.rglob("*")):
            archive.write(path, path.relative_to(export).as_posix())
    return target


@dataclass
class StarDistBundle:
    folder: Path
    descriptor: Path
    network: Any
    """The patched Keras network in the bundle (``network(x)`` gives what deepij's backend gives)."""
    prob_threshold: float | None = None
    """The probability threshold of the bundle's own post-processing macro (deepImageJ-style bundles)."""


def _config(model: Any) -> dict[str, Any]:
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(model.config).items()}
    return json.loads(json.dumps(config, default=str))


def _test_input(folder: Path, image: np.ndarray) -> dict[str, Any]:
    np.save(folder / "test_input.npy", image[None, :, :, None].astype(np.float32))
    return {"source": "test_input.npy", "sha256": sha256_file(folder / "test_input.npy")}


def write_stardist_v0_5(model: Any, folder: Path, image: np.ndarray) -> StarDistBundle:
    """A 0.5 bundle with a declared ``stardist_postprocessing`` op, as stardist's current exporter writes it;
    its test output is stardist's own ``predict_instances`` on ``image``."""
    from csbdeep.data import PercentileNormalizer

    folder.mkdir(parents=True, exist_ok=True)
    network = _patched(model, upsample=False)
    weights = _saved_model_zip(network, folder)
    labels, _ = model.predict_instances(
        image, axes="YX", normalizer=PercentileNormalizer(1, 99.8, do_after=False)
    )
    np.save(folder / "test_output_instances.npy", labels[None, :, :, None].astype(np.int32))
    div_by = [int(d) for d in model._axes_div_by("YX")]
    overlap = [int(o) for o in model._axes_tile_overlap("YX")]
    minimum = [d + 2 * o + (-(d + 2 * o)) % d for d, o in zip(div_by, overlap, strict=True)]
    space_in = [
        {"type": "space", "id": a, "size": {"min": m, "step": d}}
        for a, m, d in zip("yx", minimum, div_by, strict=True)
    ]
    space_out = [
        {"type": "space", "id": a, "size": {"tensor_id": "input", "axis_id": a}, "halo": o}
        for a, o in zip("yx", overlap, strict=True)
    ]
    data = {
        "format_version": "0.5.14",
        "type": "model",
        "name": "tiny StarDist 0.5",
        "description": "A tiny StarDist2D trained on synthetic blobs",
        "license": "BSD-3-Clause",
        "authors": [{"name": "deepij tests"}],
        "cite": [{"text": "StarDist", "doi": "10.1007/978-3-030-00934-2_30"}],
        "documentation": "README.md",
        "tags": ["stardist", "instance-segmentation"],
        "inputs": [
            {
                "id": "input",
                "axes": [{"type": "batch"}, *space_in, {"type": "channel", "channel_names": ["intensity"]}],
                "data": {"type": "float32"},
                "test_tensor": _test_input(folder, image),
                "preprocessing": [
                    {
                        "id": "scale_range",
                        "kwargs": {
                            "axes": ["y", "x"],
                            "min_percentile": 1.0,
                            "max_percentile": 99.8,
                            "eps": 1e-20,
                        },
                    },
                    {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                ],
            }
        ],
        "outputs": [
            {
                "id": "instance_labels",
                "axes": [
                    {"type": "batch"},
                    *space_out,
                    {"type": "channel", "channel_names": ["instance_labels"]},
                ],
                "data": {"type": "int32"},
                "test_tensor": {
                    "source": "test_output_instances.npy",
                    "sha256": sha256_file(folder / "test_output_instances.npy"),
                },
                "postprocessing": [
                    {
                        "id": "stardist_postprocessing",
                        "kwargs": {
                            "prob_threshold": model.thresholds.prob,
                            "nms_threshold": NMS_THRESHOLD,
                            "grid": list(model.config.grid),
                            "b": 2,
                            "n_rays": model.config.n_rays,
                        },
                    }
                ],
            }
        ],
        "weights": {
            "tensorflow_saved_model_bundle": {
                "source": weights.name,
                "sha256": sha256_file(weights),
                "tensorflow_version": "2.21",
            }
        },
        "config": {
            "stardist": {
                "thresholds": {"prob": model.thresholds.prob, "nms": NMS_THRESHOLD},
                "config": _config(model),
            }
        },
    }
    return _finish(folder, data, network)


def write_stardist_v0_4(model: Any, folder: Path, image: np.ndarray) -> StarDistBundle:
    """A 0.4 bundle as stardist 0.9.2's exporter writes it: raw maps upsampled to the input's size,
    ``config.stardist``, no post-processing declared."""
    folder.mkdir(parents=True, exist_ok=True)
    network = _patched(model, upsample=True)
    weights = _saved_model_zip(network, folder)
    channels = 1 + model.config.n_rays
    div_by = [int(d) for d in model._axes_div_by("YX")]
    np.save(folder / "test_input.npy", image[None, :, :, None].astype(np.float32))
    np.save(folder / "test_output.npy", np.asarray(network(_normalized(image)[None, :, :, None])))
    data = {
        "format_version": "0.4.10",
        "type": "model",
        "name": "tiny StarDist 0.4",
        "description": "A tiny StarDist2D trained on synthetic blobs",
        "license": "BSD-3-Clause",
        "authors": [{"name": "deepij tests"}],
        "cite": [{"text": "StarDist", "doi": "10.1007/978-3-030-00934-2_30"}],
        "documentation": "README.md",
        "tags": ["stardist"],
        "timestamp": "2024-01-01T00:00:00",
        "inputs": [
            {
                "name": "input",
                "axes": "byxc",
                "data_type": "float32",
                "data_range": ["-inf", "inf"],
                "shape": {"min": [1, 2 * div_by[0], 2 * div_by[1], 1], "step": [0, div_by[0], div_by[1], 0]},
                "preprocessing": [
                    {
                        "name": "scale_range",
                        "kwargs": {
                            "mode": "per_sample",
                            "axes": "yx",
                            "min_percentile": 1.0,
                            "max_percentile": 99.8,
                        },
                    }
                ],
            }
        ],
        "outputs": [
            {
                "name": "output",
                "axes": "byxc",
                "data_type": "float32",
                "data_range": ["-inf", "inf"],
                "halo": [0, 16, 16, 0],
                "shape": {
                    "reference_tensor": "input",
                    "scale": [1.0, 1.0, 1.0, 0.0],
                    "offset": [0.0, 0.0, 0.0, channels / 2],
                },
            }
        ],
        "test_inputs": ["test_input.npy"],
        "test_outputs": ["test_output.npy"],
        "weights": {
            "tensorflow_saved_model_bundle": {
                "source": weights.name,
                "sha256": sha256_file(weights),
                "tensorflow_version": "2.21",
            }
        },
        "config": {
            "stardist": {
                "thresholds": {"prob": model.thresholds.prob, "nms": NMS_THRESHOLD},
                "config": _config(model),
                "stardist_version": "0.9.2",
            }
        },
    }
    return _finish(folder, data, network)


def _normalized(image: np.ndarray) -> np.ndarray:
    """The bundles' ``scale_range`` (1 %, 99.8 %), as csbdeep normalises for stardist."""
    from csbdeep.utils import normalize

    return normalize(image, 1, 99.8, eps=1e-20).astype(np.float32)


def _finish(folder: Path, data: dict[str, Any], network: Any) -> StarDistBundle:
    (folder / "README.md").write_text(f"# {data['name']}\n")
    descriptor = folder / "rdf.yaml"
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False))
    return StarDistBundle(folder, descriptor, network)
