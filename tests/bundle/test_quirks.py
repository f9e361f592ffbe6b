"""Quirks real descriptors carry, tolerated (descriptors written here after the shape of real deepImageJ and
zoo files: misspelled keys, TF constant names, lists that disagree with the axes about the batch, ...)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from deepij.bundle import open_bundle, resolve_file
from deepij.bundle.description import FixedSize, ImageJStep, ParameterizedSize, ReferenceSize
from deepij.bundle.quantities import parse_quantity
from deepij.bundle.readers.deepimagej import resolve_tf_constant
from deepij.errors import BundleError

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


# --- 0.3.x pytorch_state_dict: the architecture at model level ---------------------------------------------


def _state_dict_0_3(folder: Path, source_line: str, version: str = "0.3.2") -> tuple[Path, object]:
    """A 0.3.x descriptor as the spec of 0.3.0-0.3.3 has it: ``source``/``kwargs``/``sha256`` of the
    architecture at the top, the weights entry with only its file."""
    from support import models
    from support.bundles import sha256_file

    model = models.write_state_dict_convnet(folder, seed=3)
    arch = model.architecture
    kwargs_yaml = "".join(f"  {k}: {v}\n" for k, v in arch.kwargs.items()) or "  {}\n"
    (folder / "model.yaml").write_text(
        f"format_version: {version}\nname: state dict 0.3\nlanguage: python\nframework: pytorch\n"
        f"source: {source_line}\nsha256: {sha256_file(folder / arch.source)}\nkwargs:\n{kwargs_yaml}"
        "inputs: [{name: input, axes: bcyx, shape: {min: [1, 1, 16, 16], step: [0, 0, 8, 8]}}]\n"
        "outputs: [{name: output, axes: bcyx, shape: {reference_input: input, scale: [1, 1, 1, 1], "
        "offset: [0, 0, 0, 0]}}]\n"
        f"weights:\n  pytorch_state_dict:\n    source: ./{model.path.name}\n"
        f"    sha256: {sha256_file(model.path)}\n"
    )
    return folder, model


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.3.2", "0.3.3"])
@pytest.mark.parametrize("source", ["torch_nets.py::ConvNet", "./torch_nets.py:ConvNet"])
def test_v0_3_state_dict_with_the_architecture_at_model_level(
    tmp_path: Path, version: str, source: str
) -> None:
    from support.bundles import sha256_file

    folder, model = _state_dict_0_3(tmp_path / "b", source, version)
    d = open_bundle(folder)
    arch = d.weights["pytorch_state_dict"].architecture
    written = model.architecture
    assert (arch.source, arch.callable, dict(arch.kwargs)) == ("torch_nets.py", "ConvNet", written.kwargs)
    assert arch.sha256 == sha256_file(folder / "torch_nets.py")
    assert resolve_file(d, arch.source, arch.sha256) == folder / "torch_nets.py"
    assert not {"source", "kwargs", "sha256"} & set(d.extra)  # interpreted, not left over
    assert d.extra["framework"] == "pytorch"


def test_v0_3_state_dict_without_any_architecture(tmp_path: Path) -> None:
    folder, _ = _state_dict_0_3(tmp_path / "b", "torch_nets.py::ConvNet")
    text = (folder / "model.yaml").read_text()
    (folder / "model.yaml").write_text(
        "\n".join(ln for ln in text.splitlines() if not ln.startswith("source"))
    )
    with pytest.raises(BundleError, match="missing required field") as caught:
        open_bundle(folder)
    assert caught.value.field == "weights.pytorch_state_dict.architecture"
    assert "source: file.py::Class" in caught.value.expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unet.py::UNet2d", ("unet.py", "UNet2d")),
        ("nets/unet.py:UNet2d", ("nets/unet.py", "UNet2d")),
        ("my_package.models.UNet2d", ("my_package.models", "UNet2d")),
    ],
)
def test_architecture_spellings_in_a_weights_entry(tmp_path: Path, text: str, expected: tuple) -> None:
    d = read(
        tmp_path,
        legacy(
            """
            inputs: [{name: i, axes: bcyx, shape: [1, 1, 8, 8]}]
            outputs: [{name: o, axes: bcyx, shape: [1, 1, 8, 8]}]
            """,
            header="format_version: 0.4.10\nname: arch\n",
        ).replace(REMOTE_TF, f"weights:\n  pytorch_state_dict: {{source: w.pt, architecture: '{text}'}}\n"),
        name="rdf.yaml",
    )
    arch = d.weights["pytorch_state_dict"].architecture
    assert (arch.source, arch.callable) == expected


@pytest.mark.parametrize("text", ["unet.py::", "::UNet", "unet.py:", "UNet"])
def test_architecture_without_a_callable(tmp_path: Path, text: str) -> None:
    with pytest.raises(BundleError, match="architecture names no callable") as caught:
        read(
            tmp_path,
            legacy(
                """
                inputs: [{name: i, axes: bcyx, shape: [1, 1, 8, 8]}]
                outputs: [{name: o, axes: bcyx, shape: [1, 1, 8, 8]}]
                """,
                header="format_version: 0.4.10\nname: arch\n",
            ).replace(
                REMOTE_TF, f"weights:\n  pytorch_state_dict: {{source: w.pt, architecture: '{text}'}}\n"
            ),
            name="rdf.yaml",
        )
    assert caught.value.field == "weights.pytorch_state_dict.architecture" and caught.value.found == text


# --- deepImageJ 2.x super-resolution and virtual staining: a batch on the output only ----------------------


@pytest.mark.parametrize(
    ("scale_b", "offset_b"), [(1, 0), (1, 1), (2, 0), (1, 0.5), (4, 3)], ids=lambda v: str(v)
)
def test_super_resolution_output_with_a_batch_the_input_lacks(tmp_path: Path, scale_b, offset_b) -> None:
    d = read(
        tmp_path,
        legacy(
            f"""
            inputs: [{{name: input, axes: yxc, shape: {{min: [16, 16, 1], step: [16, 16, 0]}}}}]
            outputs:
              - name: output
                axes: byxc
                shape: {{reference_input: input, scale: [{scale_b}, 2, 2, 1], offset: [{offset_b}, 0, 0, 0]}}
            """
        ),
    )
    out = d.outputs[0]
    # one sample in (the input has no batch), one sample out: the batch entries are never applied
    assert {a.id: a.size for a in out.axes} == {
        "b": FixedSize(1),
        "y": ReferenceSize("input", "y", 2.0, 0.0),
        "x": ReferenceSize("input", "x", 2.0, 0.0),
        "c": ReferenceSize("input", "c", 1.0, 0.0),
    }
    assert out.axis("y").size.size_for(32) == 64


@pytest.mark.parametrize(("scale_b", "offset_b"), [(1, 0), (1, 1), (2, 0), (1, 0.5)], ids=lambda v: str(v))
def test_an_offset_or_scale_on_the_batch_does_not_change_it(tmp_path: Path, scale_b, offset_b) -> None:
    d = read(
        tmp_path,
        legacy(
            f"""
            inputs: [{{name: input, axes: byxc, shape: {{min: [1, 16, 16, 1], step: [1, 16, 16, 0]}}}}]
            outputs:
              - name: output
                axes: byxc
                shape: {{reference_input: input, scale: [{scale_b}, 4, 4, 1], offset: [{offset_b}, 0, 0, 0]}}
            """
        ),
    )
    batch = d.outputs[0].axis("b").size
    assert batch == ReferenceSize("input", "b", 1.0, 0.0)
    assert batch.size_for(3) == 3  # three samples in, three out: never doubled


# --- fixed shape lists that disagree with their axes --------------------------------------------------------


@pytest.mark.parametrize(
    ("axes", "shape"),
    [("byxc", [1, 2048, 2048]), ("bcyx", [1, 512, 512]), ("yxc", [2, 64, 64, 1]), ("byxc", [1, 64])],
)
@pytest.mark.parametrize("kind", ["inputs", "outputs"])
def test_a_fixed_shape_list_that_does_not_fit_the_axes_is_refused(
    tmp_path: Path, axes: str, shape: list[int], kind: str
) -> None:
    good = {"byxc": [1, 64, 64, 1], "bcyx": [1, 1, 64, 64], "yxc": [64, 64, 1]}[axes]
    inp, out = (shape, good) if kind == "inputs" else (good, shape)
    with pytest.raises(BundleError) as caught:
        read(
            tmp_path,
            legacy(
                f"""
                inputs: [{{name: i, axes: {axes}, shape: {inp}}}]
                outputs: [{{name: o, axes: {axes}, shape: {out}}}]
                """
            ),
        )
    error = caught.value
    assert error.file == str(tmp_path / "bundle" / "model.yaml") and error.field == f"{kind}[0].shape"
    assert error.found == shape
    assert f"{len(shape)} entries for {len(axes)} axes {axes!r}" in str(error)
