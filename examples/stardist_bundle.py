"""A small StarDist bundle made here, offline: a StarDist2D trained with the ``stardist`` package on the
project's synthetic nuclei (``nuclei_data.py``), written as stardist's current exporter writes its bundles.

- the network: StarDist2D, 32 rays, grid 2, a 3-level U-Net of 16 filters, trained on 32 synthetic images
  of 256 x 256 pixels for ``epochs`` of 20 steps (minutes on two CPU cores), thresholds optimised by
  stardist on 8 more;
- the bundle (``rdf.yaml`` 0.5.14): input ``raw`` (percentile normalisation 1 / 99.8 as a spec op), output
  ``labels`` made by the ``stardist_postprocessing`` op (StarDist's NMS with the optimised thresholds), the
  network patched to one output (probability then distances, at half the image's size), TensorFlow
  SavedModel weights, and as test tensors an image and stardist's own ``predict_instances`` of it.

Needs ``pip install 'deepij[stardist,tensorflow]'``. Used by ``stardist_demo.py``, which makes the bundle
once into ``out/stardist_bundle``.

Usage: ``python examples/stardist_bundle.py out/stardist_bundle [--epochs 40]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from nuclei_data import synthetic_nuclei

N_RAYS = 32
GRID = (2, 2)
NAME = "deepij StarDist nuclei (example)"


def train(folder: Path, epochs: int = 40) -> Any:
    """The StarDist2D, trained and its thresholds optimised (module notes)."""
    import keras
    from csbdeep.utils import normalize
    from stardist.models import Config2D, StarDist2D

    keras.utils.set_random_seed(0)
    pairs = [synthetic_nuclei(size=256, count=22, seed=100 + k) for k in range(40)]
    images = [normalize(p.image.astype(np.float32), 1, 99.8) for p in pairs]
    labels = [p.labels for p in pairs]
    config = Config2D(
        n_rays=N_RAYS, grid=GRID, n_channel_in=1, unet_n_depth=3, unet_n_filter_base=16,
        train_patch_size=(128, 128), train_batch_size=4, train_epochs=epochs, train_steps_per_epoch=20,
        use_gpu=False, train_tensorboard=False,
    )
    model = StarDist2D(config, name="nuclei", basedir=str(folder))
    model.train(images[:32], labels[:32], validation_data=(images[32:], labels[32:]), epochs=epochs,
                steps_per_epoch=20)
    model.optimize_thresholds(images[32:], labels[32:])
    return model


def patched(model: Any) -> Any:
    """The network as stardist's exporter patches it: one output, probability then distances (clipped)."""
    import keras

    prob, dist = model.keras_model.outputs[0], model.keras_model.outputs[1]
    dist = keras.layers.ReLU(threshold=1e-3)(dist)
    return keras.Model(model.keras_model.inputs[0], keras.layers.Concatenate()([prob, dist]))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _saved_model(network: Any, folder: Path) -> Path:
    with tempfile.TemporaryDirectory() as temporary:
        export = Path(temporary) / "saved_model"
        network.export(str(export), format="tf_saved_model", verbose=False)
        target = folder / "tf_saved_model.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(export.rglob("*")):
                archive.write(path, path.relative_to(export).as_posix())
    return target


def write_bundle(model: Any, folder: Path) -> Path:
    """The bundle of a trained model (module notes); returns its ``rdf.yaml``."""
    import yaml
    from csbdeep.data import PercentileNormalizer

    folder.mkdir(parents=True, exist_ok=True)
    weights = _saved_model(patched(model), folder)
    test = synthetic_nuclei(size=256, count=22, seed=7).image.astype(np.float32)
    expected, _ = model.predict_instances(test, axes="YX", normalizer=PercentileNormalizer(1, 99.8))
    np.save(folder / "test_input.npy", test[None, :, :, None])
    np.save(folder / "test_output.npy", expected[None, :, :, None].astype(np.int32))
    div_by = [int(d) for d in model._axes_div_by("YX")]
    halo = [int(o) for o in model._axes_tile_overlap("YX")]
    data = _descriptor(model, weights, div_by, halo, folder)
    (folder / "README.md").write_text(f"# {NAME}\n\nMade by deepij's examples/stardist_bundle.py.\n")
    descriptor = folder / "rdf.yaml"
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False))
    return descriptor


def _descriptor(
    model: Any, weights: Path, div_by: list[int], halo: list[int], folder: Path
) -> dict[str, Any]:
    thresholds = {"prob": float(model.thresholds.prob), "nms": float(model.thresholds.nms)}
    space_in = [
        {"type": "space", "id": a, "size": {"min": 4 * d, "step": d}}
        for a, d in zip("yx", div_by, strict=True)
    ]
    space_out = [
        {"type": "space", "id": a, "size": {"tensor_id": "raw", "axis_id": a}, "halo": h}
        for a, h in zip("yx", halo, strict=True)
    ]
    config = json.loads(json.dumps(vars(model.config), default=str))
    return {
        "format_version": "0.5.14",
        "type": "model",
        "name": NAME,
        "description": "StarDist2D for fluorescent nuclei, trained on deepij's synthetic nuclei",
        "license": "BSD-3-Clause",
        "authors": [{"name": "deepij examples"}],
        "cite": [{"text": "Schmidt et al., Cell Detection with Star-convex Polygons, MICCAI 2018",
                  "doi": "10.1007/978-3-030-00934-2_30"}],
        "documentation": "README.md",
        "tags": ["stardist", "instance-segmentation", "nuclei", "fluorescence"],
        "inputs": [{
            "id": "raw",
            "axes": [{"type": "batch"}, *space_in, {"type": "channel", "channel_names": ["nuclei"]}],
            "data": {"type": "float32"},
            "test_tensor": {"source": "test_input.npy", "sha256": _sha256(folder / "test_input.npy")},
            "preprocessing": [{"id": "scale_range", "kwargs": {
                "axes": ["y", "x"], "min_percentile": 1.0, "max_percentile": 99.8, "eps": 1e-20}}],
        }],
        "outputs": [{
            "id": "labels",
            "axes": [{"type": "batch"}, *space_out, {"type": "channel", "channel_names": ["labels"]}],
            "data": {"type": "int32"},
            "test_tensor": {"source": "test_output.npy", "sha256": _sha256(folder / "test_output.npy")},
            "postprocessing": [{"id": "stardist_postprocessing", "kwargs": {
                "prob_threshold": thresholds["prob"], "nms_threshold": thresholds["nms"],
                "grid": [int(g) for g in model.config.grid], "b": 2,
                "n_rays": int(model.config.n_rays)}}],
        }],
        "weights": {"tensorflow_saved_model_bundle": {
            "source": weights.name, "sha256": _sha256(weights), "tensorflow_version": "2.21"}},
        "config": {"stardist": {"thresholds": thresholds, "config": config}},
    }


def make_bundle(folder: Path, epochs: int = 40) -> Path:
    """Train and write the bundle into ``folder`` (replaced only once complete); returns ``rdf.yaml``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model = train(staging / "training", epochs)
        write_bundle(model, staging / "bundle")
        if folder.exists():
            shutil.rmtree(folder)
        (staging / "bundle").rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / "rdf.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the bundle (replaced)")
    parser.add_argument("--epochs", type=int, default=40)
    options = parser.parse_args(argv)
    print(f"wrote {make_bundle(options.folder, options.epochs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
