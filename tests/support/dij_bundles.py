"""deepImageJ-style bundles with ImageJ macro pre/post-processing, written the way deepImageJ 2.x made them.

- :func:`write_segmentation_bundle_v0_3`: ``model.yaml`` 0.3.2 as deepImageJ 2.1's bundler wrote it, with a
  TorchScript network under the old key ``pytorch_script``, and ``config.deepimagej.prediction`` in the
  shapes real files have: ``kwargs`` as a list, ``{spec: null}`` entries, macro file names with spaces.
  Pre-processing: ``per_sample_scale_range.ijm`` (1 % / 99.8 % percentiles from a 256-bin histogram, as
  deepImageJ's own macro computes them, ending with ``rename("input")``). Post-processing:
  ``binarize and count.ijm`` (a threshold at the image mean, a mask, Analyze Particles into Results).
- The macros are deepImageJ-style ImageJ macro code written here (not copied from anywhere).
- :func:`histogram_scale_range` is the same percentile computation in numpy (ImageJ's 32-bit histogram:
  256 bins between the image's min and max), so tests know what the macro must give.

Usage in a test (``tmp_path`` is pytest's fixture)::

    bundle = write_segmentation_bundle_v0_3(tmp_path / "seg")
    result = deepij.load(bundle.folder).predict(bundle.test_input)
    result.tables["Results"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from support.bundles import WrittenBundle, sha256_file

SCALE_RANGE_MACRO = """// per_sample_scale_range: intensities scaled to [0, 1] between two percentiles
// (deepImageJ style: the percentiles come from a 256-bin histogram of the 32-bit image)
min_percentile = 1;
max_percentile = 99.8;
nBins = 256;

run("32-bit");
getHistogram(values, counts, nBins);
total = 0;
for (i = 0; i < nBins; i++) {
    total = total + counts[i];
}
lowLimit = total * min_percentile / 100;
highLimit = total * max_percentile / 100;
cumulative = 0;
low = values[0];
high = values[nBins - 1];
lowFound = false;
for (i = 0; i < nBins; i++) {
    cumulative = cumulative + counts[i];
    if (!lowFound && cumulative >= lowLimit) {
        low = values[i];
        lowFound = true;
    }
    if (cumulative >= highLimit) {
        high = values[i];
        i = nBins;
    }
}
run("Subtract...", "value=" + low);
run("Divide...", "value=" + (high - low + 1e-6));
rename("input");
"""

BINARIZE_AND_COUNT_MACRO = """// post-processing: binarize the network output at its mean, count objects
getStatistics(area, mean, min, max);
setThreshold(mean, max);
setOption("BlackBackground", true);
run("Convert to Mask");
rename("mask");
run("Set Measurements...", "area centroid redirect=None decimal=6");
run("Analyze Particles...", "size=0-Infinity display clear");
"""

FAILING_MACRO = """// a macro with a mistake on line 3
run("32-bit");
x = undefinedVariable + 1;
"""

RENAMING_MACRO = """// leaves two images: the scaled input titled "input", and a current decoy
run("32-bit");
run("Divide...", "value=2");
rename("input");
newImage("decoy", "32-bit black", getWidth(), getHeight(), 1);
"""


def histogram_scale_range(
    image: np.ndarray, low_percentile: float = 1.0, high_percentile: float = 99.8, bins: int = 256
) -> np.ndarray:
    """:data:`SCALE_RANGE_MACRO` in numpy: ImageJ's 32-bit histogram has ``bins`` bins from the image's
    min to its max, bin ``i`` starting at ``min + i * (max - min) / bins`` (the maximum falls in the last)."""
    values = image.astype(np.float64)
    low_value, high_value = float(values.min()), float(values.max())
    width = (high_value - low_value) / bins
    index = np.clip(((values - low_value) / width).astype(np.int64), 0, bins - 1)
    counts = np.bincount(index.ravel(), minlength=bins)
    cumulative = np.cumsum(counts)
    starts = low_value + np.arange(bins) * width
    low = starts[np.argmax(cumulative >= counts.sum() * low_percentile / 100)]
    high = starts[np.argmax(cumulative >= counts.sum() * high_percentile / 100)]
    return ((values - low) / (high - low + 1e-6)).astype(np.float32)


def write_segmentation_bundle_v0_3(
    folder: str | Path,
    *,
    name: str = "deepij segmentation 0.3",
    seed: int = 5,
    shape_yx: tuple[int, int] = (40, 48),
    pre_macro: str = SCALE_RANGE_MACRO,
    post_macro: str | None = BINARIZE_AND_COUNT_MACRO,
) -> WrittenBundle:
    """A deepImageJ 2.1-era bundle: TorchScript ``bcyx`` network, ``model.yaml`` 0.3.2, macros.

    ``expected_output`` is the network on the numpy version of the pre-processing (before the
    post-processing macro, which makes a mask and a table).
    """
    from support import models

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net = models.write_torchscript_convnet(folder / "pytorch_script.pt", seed=seed)
    rng = np.random.default_rng(seed)
    test_input = (rng.gamma(2.0, 40.0, (1, 1, *shape_yx)) + 5).astype(np.float32)
    expected = net.forward(histogram_scale_range(test_input))[0].astype(np.float32)
    np.save(folder / "exampleImage.npy", test_input)
    np.save(folder / "resultImage.npy", expected)
    (folder / "per_sample_scale_range.ijm").write_text(pre_macro)
    post_files = []
    if post_macro is not None:
        (folder / "binarize and count.ijm").write_text(post_macro)
        post_files = ["binarize and count.ijm"]
    halo = net.halo
    data: dict[str, Any] = {
        "format_version": "0.3.2",
        "name": name,
        "description": "Segmentation of bright objects, exported with deepImageJ 2.1.",
        "timestamp": "2021-06-01T10:00:00.000001",
        "authors": ["deepij tests"],
        "cite": [{"text": "deepij", "doi": "https://doi.org/10.0000/none"}],
        "documentation": "./README.md",
        "covers": [],
        "tags": ["deepimagej", "segmentation"],
        "license": "BSD-2-Clause",
        "language": "java",
        "framework": "pytorch",
        "test_inputs": ["./exampleImage.npy"],
        "test_outputs": ["./resultImage.npy"],
        "attachments": {"files": ["./per_sample_scale_range.ijm", *(f"./{f}" for f in post_files)]},
        "weights": {
            "pytorch_script": {
                "source": "./pytorch_script.pt",
                "sha256": sha256_file(folder / "pytorch_script.pt"),
            }
        },
        "inputs": [
            {
                "name": "input",
                "axes": "bcyx",
                "data_type": "float32",
                "data_range": ["-inf", "inf"],
                "shape": {"min": [1, 1, 2 * halo + 1, 2 * halo + 1], "step": [0, 0, 1, 1]},
            }
        ],
        "outputs": [
            {
                "name": "output",
                "axes": "bcyx",
                "data_type": "float32",
                "data_range": ["-inf", "inf"],
                "halo": [0, 0, halo, halo],
                "shape": {"reference_input": "input", "scale": [1, 1, 1, 1], "offset": [0, 0, 0, 0]},
            }
        ],
        "config": {
            "deepimagej": {
                "pyramidal_model": False,
                "allow_tiling": True,
                "model_keys": None,
                "test_information": {
                    "inputs": [
                        {
                            "name": "exampleImage.tif",
                            "size": f"{shape_yx[1]} x {shape_yx[0]} x 1 x 1",
                            "pixel_size": {"x": "1.0 pixel", "y": "1.0 pixel", "z": "1.0 pixel"},
                        }
                    ],
                    "memory_peak": "40.2 Mb",
                    "runtime": "0.5 s s",
                },
                "prediction": {
                    "preprocess": [
                        {"spec": "ij.IJ::runMacroFile", "kwargs": ["per_sample_scale_range.ijm"]},
                        {"spec": None},
                    ],
                    "postprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": post_files}]
                    if post_files
                    else [{"spec": None}],
                },
            }
        },
    }
    (folder / "README.md").write_text(f"# {name}\n")
    descriptor = folder / "model.yaml"
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return WrittenBundle(
        folder=folder,
        descriptor=descriptor,
        version="0.3",
        name=name,
        weights={"torchscript": "pytorch_script.pt"},
        test_input=test_input,
        expected_output=expected,
        input_axes="bcyx",
        output_axes="bcyx",
        model=net,
    )


SCALE_LINEAR_MACRO = """// scale_linear: x * gain + offset, the same step the descriptor lists as a spec op
gain = 2;
offset = 1;
run("32-bit");
run("Multiply...", "value=" + gain);
run("Add...", "value=" + offset);
"""


def write_scale_linear_bundle_v0_4(
    folder: str | Path, *, name: str = "deepij scale_linear 0.4", seed: int = 7
) -> WrittenBundle:
    """A zoo 0.4 ``rdf.yaml`` that lists one normalisation twice, as deepImageJ-era exports did: the spec op
    ``scale_linear`` (gain 2, offset 1) AND ``scale_linear.ijm`` in ``config.deepimagej``. Applied twice it
    would give ``4x + 3``: ``expected_output`` is the network on ``2x + 1``."""
    from support import models

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net = models.write_torchscript_convnet(folder / "weights.pt", seed=seed)
    rng = np.random.default_rng(seed)
    test_input = rng.random((1, 1, 24, 28), dtype=np.float32)
    expected = net.forward((test_input * 2 + 1).astype(np.float32))[0].astype(np.float32)
    np.save(folder / "test_input.npy", test_input)
    np.save(folder / "test_output.npy", expected)
    (folder / "scale_linear.ijm").write_text(SCALE_LINEAR_MACRO)
    halo = net.halo
    data = {
        "format_version": "0.4.9",
        "type": "model",
        "name": name,
        "description": "scale_linear listed as a spec op and as a deepImageJ macro.",
        "authors": [{"name": "deepij tests"}],
        "cite": [{"text": "deepij", "url": "https://example.com/"}],
        "license": "MIT",
        "documentation": "README.md",
        "tags": ["deepimagej"],
        "timestamp": "2022-03-01T00:00:00Z",
        "inputs": [
            {
                "name": "input",
                "axes": "bcyx",
                "data_type": "float32",
                "data_range": [float("-inf"), float("inf")],
                "shape": {"min": [1, 1, 2 * halo + 1, 2 * halo + 1], "step": [0, 0, 1, 1]},
                "preprocessing": [
                    {"name": "scale_linear", "kwargs": {"gain": 2.0, "offset": 1.0, "axes": "yx"}}
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
                "shape": {"reference_tensor": "input", "scale": [1, 1, 1, 1], "offset": [0, 0, 0, 0]},
            }
        ],
        "test_inputs": ["test_input.npy"],
        "test_outputs": ["test_output.npy"],
        "weights": {
            "torchscript": {
                "source": "weights.pt",
                "sha256": sha256_file(folder / "weights.pt"),
                "pytorch_version": "2.13",
            }
        },
        "config": {
            "deepimagej": {
                "pyramidal_model": False,
                "allow_tiling": True,
                "model_keys": None,
                "prediction": {
                    "preprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": "scale_linear.ijm"}],
                    "postprocess": [{"spec": None}],
                },
            }
        },
    }
    (folder / "README.md").write_text(f"# {name}\n")
    descriptor = folder / "rdf.yaml"
    descriptor.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return WrittenBundle(
        folder=folder,
        descriptor=descriptor,
        version="0.4",
        name=name,
        weights={"torchscript": "weights.pt"},
        test_input=test_input,
        expected_output=expected,
        input_axes="bcyx",
        output_axes="bcyx",
        model=net,
    )


def write_java_bundle_v0_3(
    folder: str | Path,
    jars: dict[str, Path],
    *,
    pre: str = "scale.jar ScaleFromConfig::deepimagejPreprocessing",
    post: str | None = "threshold.jar org.example.seg.ThresholdMeasure",
    scale: float = 3.0,
    name: str = "deepij java steps 0.3",
    seed: int = 9,
) -> WrittenBundle:
    """A deepImageJ 2.1 bundle whose processing is Java: ``{spec: "File.jar Class::method"}`` steps, jars
    given as ``{file name: compiled jar}`` (see :mod:`support.java`), and ``scale.txt`` (``scale=<scale>``)
    among the weights' ``attachments.files``, which deepImageJ hands to ``setConfigFiles``.

    ``expected_output`` is the network on ``scale * test_input``.
    """
    import shutil

    bundle = write_segmentation_bundle_v0_3(folder, name=name, seed=seed, post_macro=None)
    for file_name, jar in jars.items():
        shutil.copy(jar, bundle.folder / file_name)
    (bundle.folder / "scale.txt").write_text(f"scale={scale}\n")
    data = yaml.safe_load(bundle.descriptor.read_text())
    data["weights"]["pytorch_script"]["attachments"] = {"files": ["./scale.txt"]}
    data["config"]["deepimagej"]["prediction"] = {
        "preprocess": [{"spec": pre}],
        "postprocess": [{"spec": post}] if post else [{"spec": None}],
    }
    bundle.descriptor.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    scaled = (bundle.test_input * np.float32(scale)).astype(np.float32)
    bundle.expected_output = bundle.model.forward(scaled)[0].astype(np.float32)
    return bundle
