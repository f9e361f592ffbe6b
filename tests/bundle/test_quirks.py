"""Quirks real descriptors carry, tolerated (descriptors written here after the shape of real deepImageJ and
zoo files: misspelled keys, TF constant names, lists that disagree with the axes about the batch, ...)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from deepij.bundle import open_bundle
from deepij.bundle.description import FixedSize, ImageJStep, ParameterizedSize, ReferenceSize
from deepij.bundle.quantities import parse_quantity
from deepij.bundle.readers.deepimagej import resolve_tf_constant

REMOTE_TF = """
weights:
  tensorflow_saved_model_bundle:
    source: https://zenodo.org/record/1/files/tensorflow_saved_model_bundle.zip
    sha256: 41E6361133AD6F0051900B8B9D8BB25D8223CEC81A52234AAEC6336357532FEA
"""


def read(tmp_path: Path, text: str, name: str = "model.yaml", encoding: str = "utf-8"):
    folder = tmp_path / "bundle"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(textwrap.dedent(text).encode(encoding))
    return open_bundle(folder)


def legacy(tensors: str, config: str = "", header: str = "format_version: 0.3.2\nname: quirky\n") -> str:
    return header + textwrap.dedent(tensors) + REMOTE_TF + textwrap.dedent(config)


def test_defcon_like_model_yaml(tmp_path: Path) -> None:
    d = read(
        tmp_path,
        legacy(
            """
            test_outputs: [./resultImage.npy, ./Results.npy]
            sample_outputs: [./resultImage.tif, ./Results.csv]
            inputs:
              - {name: input, axes: byxc, data_type: float32, data_range: [-inf, inf],
                 shape: {min: [1, 1, 1, 1], step: [0, 1, 1, 0]}}
            outputs:
              - name: output
                axes: byxc
                halo: [0, 10, 10, 0]
                shape: {reference_input: input, scale: [1.0, 1.0, 1.0, 1.0], offset: [0, 0, 0, 0]}
            """,
            """
            config:
              deepimagej:
                pyramidal_model: false
                allow_tiling: true
                model_keys:
                  tensorflow_model_tag: tf.saved_model.tag_constants.SERVING
                  tensorflow_siganture_def: >-
                    tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY
                test_information:
                  inputs:
                    - name: exampleImage.tif
                      size: 64 x 64 x 1 x 1
                      pixel_size:
                        x: 1,60E-04 cm
                        y: 1,60E-04 cm
                        z: 1.0 pixel
                  memory_peak: 67.9 Mb
                  runtime: 11.5 s s
            """,
        ),
    )
    assert (d.deepimagej.tensorflow_tag, d.deepimagej.tensorflow_signature) == ("serve", "serving_default")
    # a halo of 10 with a minimum size of 1 is fine: the axis grows, tiles larger than 20 exist
    assert d.outputs[0].axis("y").halo == 10
    # the second test output is the results table of the post-processing: kept whole in extra
    assert d.test_outputs == ("resultImage.npy",)
    assert d.extra["test_outputs"] == ["./resultImage.npy", "./Results.npy"]
    assert d.weights["tensorflow_saved_model_bundle"].sha256 == REMOTE_TF.split("sha256: ")[1].strip().lower()
    info = d.deepimagej.test_information
    assert parse_quantity(info["runtime"]) == (11.5, "s")
    assert parse_quantity(info["inputs"][0]["pixel_size"]["x"]) == (1.6e-4, "cm")
    assert parse_quantity(info["memory_peak"]) == (67.9, "Mb")


def test_mt3_like_lists_without_the_batch_entry(tmp_path: Path) -> None:
    d = read(
        tmp_path,
        legacy(
            """
            date: 20
            authors: [Yair Rivenson, Hongda Wang]
            inputs:
              - {name: raw, axes: byxc, shape: {min: [1, 1, 1], step: [1, 1, 0]}, preprocessing: null}
            outputs:
              - name: staining
                axes: byxc
                halo: [150, 150, 0]
                shape: {reference_input: raw, scale: [1, 1, 1], offset: [0, 0, 0]}
                postprocessing: null
            """,
            """
            config:
              deepimagej:
                model_keys:
                  model_tag: tf.saved_model.tag_constants.SERVING
                  signature_definition: tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY
                prediction:
                  preprocess: [{spec: ij.IJ::runMacroFile, kwargs: preprocessing.txt}]
                  postprocess: [{spec: null}]
            """,
        ),
    )
    raw, staining = d.inputs[0], d.outputs[0]
    assert {a.id: a.size for a in raw.axes} == {
        "b": None,
        "y": ParameterizedSize(1, 1),
        "x": ParameterizedSize(1, 1),
        "c": FixedSize(1),
    }
    assert [a.halo for a in staining.axes] == [0, 150, 150, 0]
    assert staining.axis("b").size is None and staining.axis("x").size == ReferenceSize("raw", "x", 1, 0)
    assert [p.name for p in d.authors] == ["Yair Rivenson", "Hongda Wang"]
    assert d.deepimagej.tensorflow_tag == "serve"  # other key names, same constants
    assert d.deepimagej.preprocess == (ImageJStep("macro", "preprocessing.txt"),)
    assert d.deepimagej.postprocess == ()
    assert d.extra["date"] == 20


def test_axes_without_batch_and_a_fixed_shape_with_one(tmp_path: Path) -> None:
    d = read(
        tmp_path,
        legacy(
            """
            inputs: [{name: input, axes: YXC, shape: [1, 2048, 2048, 1]}]
            outputs: [{name: output, axes: yxc, shape: [1, 2048, 2048, 1]}]
            """,
            "config: {deepimagej: {pyramidal_model: 'true', allow_tiling: 'false'}}\n",
        ),
    )
    assert d.inputs[0].axes_str == "yxc"
    assert [a.size for a in d.inputs[0].axes] == [FixedSize(2048), FixedSize(2048), FixedSize(1)]
    assert d.deepimagej.pyramidal_model is True and d.deepimagej.allow_tiling is False


def test_table_outputs(tmp_path: Path) -> None:
    d = read(
        tmp_path,
        legacy(
            """
            inputs: [{name: input0, axes: bcyx, shape: {min: [1, 3, 1, 1], step: [0, 0, 1, 1]}}]
            outputs:
              - {name: output0, axes: bi, shape: [-1, -1]}
              - {name: counts, axes: null, shape: [-1, 5]}
            """
        ),
    )
    lesions, counts = d.outputs
    assert lesions.is_table and [a.size for a in lesions.axes] == [None, None]
    assert counts.is_table and counts.axes_str == "bi" and counts.axis("i").size == FixedSize(5)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("{tensorflow_model_tag: serve, tensorflow_siganture_def: my_signature}", ("serve", "my_signature")),
        ("{tag_name: whatever, sig: whatever}", ("serve", "serving_default")),  # wrong names -> defaults
        ("{tensorflow_model_tag: tf.saved_model.tag_constants.UNKNOWN}", ("serve", "serving_default")),
        ("{tensorflow_model_tag: null, tensorflow_siganture_def: null}", ("serve", "serving_default")),
    ],
)
def test_model_keys(tmp_path: Path, keys: str, expected: tuple[str, str]) -> None:
    d = read(
        tmp_path,
        legacy(
            """
            inputs: [{name: i, axes: byxc, shape: [1, 8, 8, 1]}]
            outputs: [{name: o, axes: byxc, shape: [1, 8, 8, 1]}]
            """,
            f"config: {{deepimagej: {{model_keys: {keys}}}}}\n",
        ),
    )
    assert (d.deepimagej.tensorflow_tag, d.deepimagej.tensorflow_signature) == expected


def test_tf_constant_names() -> None:
    assert resolve_tf_constant("tf.saved_model.tag_constants.SERVING", "x") == "serve"
    assert resolve_tf_constant("tf.saved_model.SERVING", "x") == "serve"
    assert resolve_tf_constant("tf.saved_model.tag_constants.TRAINING", "x") == "train"
    sig = "tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY"
    assert resolve_tf_constant(sig, "x") == "serving_default"
    assert resolve_tf_constant("predict_images", "x") == "predict_images"


def test_java_steps_and_lists_of_macros(tmp_path: Path) -> None:
    d = read(
        tmp_path,
        legacy(
            """
            inputs: [{name: i, axes: byxc, shape: [1, 8, 8, 1]}]
            outputs: [{name: o, axes: byxc, shape: [1, 8, 8, 1]}]
            """,
            """
            config:
              deepimagej:
                prediction:
                  preprocess:
                    - {spec: ij.IJ::runMacroFile, kwargs: [./a.ijm, b.txt]}
                  postprocess:
                    - {spec: "StarDist.jar deepimagej.StarDistPost::postprocess"}
                    - {spec: "Extra.class"}
            """,
        ),
    )
    assert d.deepimagej.preprocess == (ImageJStep("macro", "a.ijm"), ImageJStep("macro", "b.txt"))
    assert d.deepimagej.postprocess == (
        ImageJStep("java", "StarDist.jar", "deepimagej.StarDistPost", "postprocess"),
        ImageJStep("java", "Extra.class"),
    )


def test_name_quotes_latin1_and_number_versions(tmp_path: Path) -> None:
    text = legacy(
        """
        version: 0.1
        authors: [{name: "Estibaliz Gómez-de-Mariscal"}]
        inputs: [{name: i, axes: byxc, shape: [1, 8, 8, 1], data_range: ['-inf', '.inf']}]
        outputs: [{name: o, axes: byxc, shape: [1, 8, 8, 1], data_range: [0, '1,5']}]
        """,
        header="format_version: 0.3.0\nname: '\"SMLM (DEFCoN)\"'\n",
    )
    d = read(tmp_path, text, encoding="latin-1")
    assert d.name == "SMLM (DEFCoN)"
    assert d.authors[0].name == "Estibaliz Gómez-de-Mariscal"
    assert d.version == "0.1"
    assert d.inputs[0].data_range == (-math.inf, math.inf)
    assert d.outputs[0].data_range == (0.0, 1.5)


def test_v0_5_yaml_1_2_header_nominal_data_and_scales(tmp_path: Path) -> None:
    d = read(
        tmp_path,
        """
        %YAML 1.2
        ---
        format_version: 0.5.3
        type: model
        name: labels
        attachments: [{source: ./notes.txt}]
        inputs:
          - id: image
            axes:
              - {type: batch}
              - {type: channel, channel_names: [r, g]}
              - {type: space, id: y, size: 64, scale: 1.0}
              - {type: space, id: x, size: 64}
            data: [{type: uint8}, {type: uint8}]
        outputs:
          - id: labels
            axes:
              - {type: batch}
              - {type: space, id: y, size: {tensor_id: image, axis_id: y, offset: -2}, scale: 0.5}
              - {type: space, id: x, size: {tensor_id: image, axis_id: x}, scale: 2}
            data: {type: uint8, values: [background, cell]}
          - id: objects
            axes: [{type: index, size: {min: 1, max: 100}}, {type: channel, channel_names: [area, mean]}]
        weights:
          onnx: {source: https://example.org/w.onnx}
        """,
        name="rdf.yaml",
    )
    image, (labels, objects) = d.inputs[0], d.outputs
    assert image.data_type == "uint8" and image.axis("c").size == FixedSize(2)
    assert labels.axis("y").size == ReferenceSize("image", "y", 2.0, -2)  # 1.0 / 0.5
    assert labels.axis("x").size == ReferenceSize("image", "x", 0.5, 0)
    assert labels.data_range == (0.0, 1.0)  # two nominal values
    assert labels.extra["data"] == {"values": ["background", "cell"]}
    assert objects.is_table and objects.axis("i").size is None  # known only after inference
    assert d.attachments == ("notes.txt",)
