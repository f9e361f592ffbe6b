"""Write the demo bundle's example image, its expected result, its cover and its descriptor (``rdf.yaml``).

Needs the weights and test tensors ``train_demo_model.py`` writes. Then:

1. ``exampleImage.tif``: the synthetic image of seed ``nuclei_data.EXAMPLE_SEED`` (512 x 512, 16-bit,
   written with ImageJ's own TIFF writer); ``sample_input.tif`` and ``sample_output.tif``: the test tensors
   as 32-bit ImageJ TIFFs (the zoo reads sample tensors as images, never ``.npy``);
2. ``rdf.yaml``: the 0.5 descriptor, with the sha256 of the weights, test and sample tensors;
3. the expected result, chaining deepij's pieces by hand (``nuclei_chain.segment``): the pre-processing
   macro in ImageJ, the network with ``processing="none"`` (TorchScript weights), the post-processing macro
   in ImageJ; written as ``resultImage.tif`` (the labels, 16-bit) and ``resultTable.csv`` (the Results);
4. ``cover.png``: the example image and its labels;
5. ``rdf.yaml`` again, with the measured runtime in ``config.deepimagej.test_information``.

The descriptor is valid for bioimageio.spec 0.5 (space axes without a unit: ``pixel`` is not one of its
units; tensor descriptions of at most 128 characters; image sample tensors) and keeps ``config.deepimagej``
for deepImageJ. ``--descriptor-only`` rewrites the sample tensors and ``rdf.yaml`` alone (steps 1 and 5,
keeping the runtime ``rdf.yaml`` records) from the files already in the bundle: the example image, its
expected result and the cover stay as they are.

Usage: ``python examples/make_expected.py [--bundle examples/nuclei_bundle] [--descriptor-only]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from nuclei_chain import POSTPROCESSING, PREPROCESSING, save_figure, segment
from nuclei_data import EXAMPLE_COUNT, EXAMPLE_SEED, EXAMPLE_SIZE, HISTOGRAM_BINS, synthetic_nuclei
from train_demo_model import ONNX, SPEC_PERCENTILES, TEST_INPUT, TEST_OUTPUT, TORCHSCRIPT

BUNDLE = Path(__file__).with_name("nuclei_bundle")
EXAMPLE_IMAGE, RESULT_IMAGE, RESULT_TABLE = "exampleImage.tif", "resultImage.tif", "resultTable.csv"
COVER = "cover.png"
SAMPLE_INPUT, SAMPLE_OUTPUT = "sample_input.tif", "sample_output.tif"
SAMPLES = {TEST_INPUT: SAMPLE_INPUT, TEST_OUTPUT: SAMPLE_OUTPUT}
"""Each test tensor and the image written from it as its sample tensor."""
NAME = "deepij demo nuclei U-Net"
HALO = 24
"""The network's receptive field reaches 23 pixels; the halo is the next multiple of 4 (2 poolings)."""
TIMESTAMP = "2025-06-01T00:00:00Z"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _space_axis(axis: str, size: Any, halo: int = 0) -> dict[str, Any]:
    # no unit: the 0.5 spec knows lengths (micrometer, ...) only, and these synthetic pixels have none
    entry: dict[str, Any] = {"type": "space", "id": axis, "size": size}
    if halo:
        entry["halo"] = halo
    return entry


def _file(folder: Path, name: str) -> dict[str, str]:
    return {"source": name, "sha256": sha256(folder / name)}


def descriptor(folder: Path, runtime: str | None = None) -> dict[str, Any]:
    """The 0.5 ``rdf.yaml`` content of the bundle in ``folder``."""
    size = f"{EXAMPLE_SIZE} x {EXAMPLE_SIZE} x 1 x 1"
    return {
        "format_version": "0.5.4",
        "type": "model",
        "name": NAME,
        "version": "0.1.0",
        "description": "Nuclei segmentation of 2-D fluorescence images: a small U-Net predicts the "
        "probability of each pixel to lie inside a nucleus; ImageJ macros normalise the image before and "
        "threshold, watershed and measure the nuclei after. Trained on synthetic images by deepij's "
        "examples/train_demo_model.py; a demonstration, not a model for real data.",
        "authors": [{"name": "deepij developers", "affiliation": "deepij project"}],
        "cite": [
            {"text": "Ronneberger, Fischer and Brox. U-Net: Convolutional Networks for Biomedical Image "
             "Segmentation. MICCAI 2015.", "doi": "10.1007/978-3-319-24574-4_28"},
            {"text": "Gómez-de-Mariscal et al. DeepImageJ: A user-friendly environment to run deep learning "
             "models in ImageJ. Nature Methods 2021.", "doi": "10.1038/s41592-021-01262-9"},
        ],
        "license": "BSD-2-Clause",
        "documentation": "README.md",
        "covers": [COVER],
        "tags": ["nuclei", "segmentation", "instance-segmentation", "unet", "2d",
                 "fluorescence-light-microscopy", "deepimagej", "pytorch", "onnx", "synthetic-data"],
        "attachments": [{"source": f} for f in (PREPROCESSING, POSTPROCESSING, EXAMPLE_IMAGE, RESULT_IMAGE,
                                                RESULT_TABLE)],
        "timestamp": TIMESTAMP,
        "inputs": [
            {
                "id": "input",
                "description": "Nuclear stain, one channel, any intensity range; normalised by "
                "per_sample_scale_range.ijm in ImageJ or by the scale_range op.",  # 128 characters at most
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["nuclei"]},
                    _space_axis("y", {"min": 64, "step": 16}),
                    _space_axis("x", {"min": 64, "step": 16}),
                ],
                "test_tensor": _file(folder, TEST_INPUT),
                "sample_tensor": _file(folder, SAMPLE_INPUT),
                "data": {"type": "float32"},
                "preprocessing": [
                    {"id": "scale_range", "kwargs": {"axes": ["y", "x"],
                                                     "min_percentile": SPEC_PERCENTILES[0],
                                                     "max_percentile": SPEC_PERCENTILES[1]}},
                ],
            }
        ],
        "outputs": [
            {
                "id": "probability",
                "description": "Probability of each pixel to lie inside a nucleus.",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["nucleus_probability"]},
                    _space_axis("y", {"tensor_id": "input", "axis_id": "y"}, HALO),
                    _space_axis("x", {"tensor_id": "input", "axis_id": "x"}, HALO),
                ],
                "test_tensor": _file(folder, TEST_OUTPUT),
                "sample_tensor": _file(folder, SAMPLE_OUTPUT),
                "data": {"type": "float32", "range": [0.0, 1.0]},
            }
        ],
        "weights": {
            "torchscript": {"source": TORCHSCRIPT, "sha256": sha256(folder / TORCHSCRIPT),
                            "pytorch_version": "2.13"},
            "onnx": {"source": ONNX, "sha256": sha256(folder / ONNX), "opset_version": 17,
                     "parent": "torchscript"},
        },
        "config": {
            "bioimageio": {
                "reproducibility_tolerance": [{"absolute_tolerance": 1e-4, "relative_tolerance": 1e-3}]
            },
            "deepimagej": {
                "pyramidal_model": False,
                "allow_tiling": True,
                "model_keys": None,
                "test_information": {
                    "inputs": [{"name": EXAMPLE_IMAGE, "size": size,
                                "pixel_size": {"x": "1 pixel", "y": "1 pixel", "z": "1 pixel"}}],
                    "outputs": [{"name": RESULT_IMAGE, "type": "image", "size": size},
                                {"name": RESULT_TABLE, "type": "ResultsTable"}],
                    "memory_peak": None,
                    "runtime": runtime,
                },
                "prediction": {
                    "preprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": PREPROCESSING}],
                    "postprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": POSTPROCESSING}],
                },
            },
        },
    }


def write_descriptor(folder: Path, runtime: str | None = None) -> Path:
    """``rdf.yaml``, written atomically."""
    text = yaml.safe_dump(descriptor(folder, runtime), sort_keys=False, allow_unicode=True, width=110)
    return _write_atomically(folder / "rdf.yaml", text.encode())


def write_sample_tensors(session: Any, folder: Path) -> None:
    """``sample_input.tif`` and ``sample_output.tif``: the test tensors' ``(y, x)`` planes, 32-bit, with
    ImageJ's writer (the values unchanged)."""
    for test, sample in SAMPLES.items():
        plane = np.load(folder / test)[0, 0]
        session.save_tiff(plane, folder / sample, title=Path(sample).stem)


def recorded_runtime(folder: Path) -> str | None:
    """The runtime the bundle's ``rdf.yaml`` records in ``config.deepimagej.test_information``."""
    recorded = yaml.safe_load((folder / "rdf.yaml").read_text(encoding="utf-8"))
    runtime: str | None = recorded["config"]["deepimagej"]["test_information"]["runtime"]
    return runtime


def _write_atomically(path: Path, data: bytes) -> Path:
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(partial, 0o644)  # mkstemp makes it private
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help="the bundle folder (weights written)")
    parser.add_argument("--descriptor-only", action="store_true",
                        help="rewrite only the sample tensors and rdf.yaml (the shipped result stays)")
    options = parser.parse_args(argv)
    folder = options.bundle
    import deepij

    session = deepij.imagej()
    write_sample_tensors(session, folder)
    if options.descriptor_only:
        write_descriptor(folder, runtime=recorded_runtime(folder))
        print(f"wrote {SAMPLE_INPUT}, {SAMPLE_OUTPUT} and rdf.yaml in {folder}")
        return 0
    nuclei = synthetic_nuclei(EXAMPLE_SIZE, EXAMPLE_COUNT, seed=EXAMPLE_SEED)
    session.save_tiff(nuclei.image, folder / EXAMPLE_IMAGE, title="exampleImage")
    write_descriptor(folder)
    model = deepij.load(folder)
    result = segment(model, folder / EXAMPLE_IMAGE)
    labels, table = result.images["labels"], result.tables["Results"]
    session.save_tiff(np.asarray(labels), folder / RESULT_IMAGE, title="labels")
    _write_atomically(folder / RESULT_TABLE, table.to_csv(index=False).encode())
    probability = np.asarray(result.images["probability"].isel(b=0, c=0))
    save_figure(folder / COVER, {"exampleImage": nuclei.image, "labels": np.asarray(labels)}, width=4.0,
                height=4.0, dpi=80)  # 640 x 320: the 2:1 the zoo asks of covers
    write_descriptor(folder, runtime=f"{result.seconds:.1f} s")
    print(f"{EXAMPLE_IMAGE}: {nuclei.count} nuclei drawn ({nuclei.pairs} touching pairs); found "
          f"{len(table)} ({int(labels.max())} labels), mean area {table['Area'].mean():.0f} px, "
          f"probability range {probability.min():.3f}..{probability.max():.3f}, in {result.seconds:.1f} s "
          f"(histogram bins {HISTOGRAM_BINS})")
    print(f"wrote {RESULT_IMAGE}, {RESULT_TABLE}, {COVER}, {SAMPLE_INPUT}, {SAMPLE_OUTPUT} and rdf.yaml in "
          f"{folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
