"""Reading the options of run("DeepImageJ Run", ...) in its three dialects: real lines from users' macros,
variants of spelling and spacing, refusals naming the key, and property tests over generated lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepij.errors import ArgumentError
from deepij.frontdoors.run_options import RunRequest, parse_run_options, split_options

# Real lines, as workshop macros and deepImageJ's own test macros contain them (FORMATS.md section 3).
DEFCON = (
    "model=[SMLM Density Map Estimation (DEFCoN)] format=Tensorflow preprocessing=[no preprocessing] "
    "postprocessing=[no postprocessing] axes=Y,X,C tile=84,84,1 logging=normal"
)
PIX2PIX = (
    "model=Pix2Pix_lifeact-RFP_sir-DNA format=Pytorch preprocessing=[[per_sample_scale_range.ijm, "
    "scale_linear.ijm]] postprocessing=[no postprocessing] axes=C,Y,X tile=1,1024,1024 logging=Normal"
)
DEFCON_CI = DEFCON + " models_dir=/home/runner/Fiji.app/models"


def test_defcon_line():
    request = parse_run_options(DEFCON)
    assert request == RunRequest(
        dialect="2.x",
        model="SMLM Density Map Estimation (DEFCoN)",
        weights_format="tensorflow_saved_model_bundle",
        preprocessing=(),
        postprocessing=(),
        axes=("y", "x", "c"),
        tile=(84, 84, 1),
        logging="normal",
        options=DEFCON,
    )
    assert request.tile_sizes() == {"y": 84, "x": 84, "c": 1}


def test_pix2pix_line_with_two_preprocessing_macros():
    request = parse_run_options(PIX2PIX)
    assert request.model == "Pix2Pix_lifeact-RFP_sir-DNA"
    assert request.weights_format == "torchscript"
    assert request.preprocessing == ("per_sample_scale_range.ijm", "scale_linear.ijm")
    assert request.postprocessing == ()
    assert request.logging == "normal"
    assert request.tile_sizes() == {"c": 1, "y": 1024, "x": 1024}


def test_models_dir_of_deepimagej_ci_macro():
    assert parse_run_options(DEFCON_CI).models_dir == Path("/home/runner/Fiji.app/models")
    assert parse_run_options("model=a model_dir=[/my models]").models_dir == Path("/my models")


def test_one_x_line():
    request = parse_run_options(
        "model=[Widefield DAPI Super-resolution] preprocessing=[preprocessing.txt] "
        "postprocessing=[postprocessing.txt] patch=512 overlap=32 logging=debug"
    )
    assert request.dialect == "1.x"
    assert request.preprocessing == ("preprocessing.txt",)
    assert request.postprocessing == ("postprocessing.txt",)
    assert (request.patch, request.overlap, request.logging) == (512, 32, "debug")
    assert request.tile_sizes("byxc") == {"y": 512, "x": 512}


@pytest.mark.parametrize(
    "options",
    [
        "model_path=/models/unet input_path=[/data/my images] output_folder=/out display_output=false",
        "modelPath=/models/unet inputPath=[/data/my images] outputFolder=/out displayOutput=false",
        "modelpath=[/models/unet] InputPath=[/data/my images] output_folder=[/out] display_output=[False]",
    ],
)
def test_three_one_lines_and_their_camel_case(options):
    request = parse_run_options(options)
    assert request.dialect == "3.1"
    assert request.model_path == Path("/models/unet") and request.input_path == Path("/data/my images")
    assert request.output_folder == Path("/out") and request.display_output is False


def test_three_one_bare_checkbox_means_on():
    request = parse_run_options("model_path=/m input_path=/d/x.tif display_output")
    assert request.display_output is True and request.input_path == Path("/d/x.tif")
    assert parse_run_options("model_path=/m display_output input_path=/d").display_output is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Tensorflow", "tensorflow_saved_model_bundle"), ("TENSORFLOW", "tensorflow_saved_model_bundle"),
     ("pytorch", "torchscript"), ("Onnx", "onnx"), ("ONNX", "onnx"), ("torchscript", "torchscript"),
     ("keras_hdf5", "keras_hdf5")],
)
def test_formats_in_any_case(text, expected):
    assert parse_run_options(f"model=m format={text}").weights_format == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("[no preprocessing]", ()), ("[No Preprocessing]", ()), ("[a.ijm]", ("a.ijm",)), ("a.ijm", ("a.ijm",)),
     ("[[a.ijm, b.ijm]]", ("a.ijm", "b.ijm")), ("[[a.ijm,b.jar]]", ("a.ijm", "b.jar")),
     ("[my macro.ijm]", ("my macro.ijm",)), ("[[ a.ijm , b.ijm ]]", ("a.ijm", "b.ijm"))],
)
def test_processing_values(value, expected):
    assert parse_run_options(f"model=m preprocessing={value} logging=mute").preprocessing == expected


def test_spacing_and_unbracketed_value_with_spaces():
    # the value runs to the next key: a name with spaces written without brackets still reads whole
    request = parse_run_options("   model=My  Model    format=Onnx   tile=64,64  ")
    assert request.model == "My  Model" and request.weights_format == "onnx" and request.tile == (64, 64)
    assert parse_run_options("model=[a = b] tile=8, 8").model == "a = b"
    assert parse_run_options("model=[a = b] tile=8, 8").tile == (8, 8)


def test_nested_brackets_keep_inner_brackets():
    assert split_options("model=[a [v2]] axes=Y,X") == [("model", "a [v2]"), ("axes", "Y,X")]


def test_axes_without_commas():
    assert parse_run_options("model=m axes=YXC tile=8,8,1").tile_sizes() == {"y": 8, "x": 8, "c": 1}


def test_tile_in_model_axes_order_when_axes_are_not_given():
    assert parse_run_options("model=m tile=1,64,32").tile_sizes("bcyx") == {"c": 1, "y": 64, "x": 32}
    with pytest.raises(ArgumentError, match=r"tile=64,32: 2 sizes for the model's 3 axes 'cyx'"):
        parse_run_options("model=m tile=64,32").tile_sizes("bcyx")


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ("model=m colour=red", "colour="),
        ("model=m tile=64,64 patch=64", "patch="),
        ("model=m axes=Y,X overlap=8", "overlap="),
        ("model=m model=n", "model="),
        ("model_path=/a modelPath=/b", "modelPath="),
        ("model_path=/a patch=64", "patch="),
        ("model_path=/a preprocessing=[x.ijm]", "preprocessing="),
        ("model=m format=caffe", "format=caffe"),
        ("model=m logging=loud", "logging=loud"),
        ("model=m tile=64,x", "tile=64,x"),
        ("model=m tile=0,64", "tile=0,64"),
        ("model=m patch=64,64", "patch=64,64"),
        ("model=m overlap=-1", "overlap=-1"),
        ("model=m axes=Y,Y", "axes=Y,Y"),
        ("model=m axes=Q", "axes=Q"),
        ("model=[m", "never closed"),
        ("model=", "model=: empty value"),
        ("format=Onnx tile=8,8", "no model"),
        ("model=m display_output=maybe input_path=/x", "display_output=maybe"),
        ("stray model=m", "stray"),
    ],
)
def test_refusals_name_the_key(options, key):
    with pytest.raises(ArgumentError) as caught:
        parse_run_options(options)
    assert key in str(caught.value)


def test_same_key_twice_with_the_same_value_is_fine():
    assert parse_run_options("model_path=/a modelPath=/a").model_path == Path("/a")


def test_not_a_string():
    with pytest.raises(ArgumentError, match="options"):
        parse_run_options(None)  # type: ignore[arg-type]


# --- property tests: lines written the way ImageJ's recorder writes them read back to their parts -------

_names = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N"), whitelist_characters=" _-().,"), min_size=1,
    max_size=30,
).map(str.strip).filter(lambda s: bool(s) and "[" not in s and "]" not in s)
_files = st.lists(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_ ]{0,12}\.(ijm|txt|jar|class)", fullmatch=True).map(str.strip),
    min_size=0, max_size=2,
)
_axes = st.permutations(["Y", "X", "C"])


def _recorded(value: str) -> str:
    """How ImageJ's recorder writes a value: in brackets when it has spaces."""
    return f"[{value}]" if " " in value else value


def _processing(files: list[str], which: str) -> str:
    if not files:
        return f"[no {which}]"
    return f"[[{', '.join(files)}]]" if len(files) > 1 else f"[{files[0]}]"


@settings(max_examples=200, deadline=None)
@given(
    name=_names, fmt=st.sampled_from(["Tensorflow", "Pytorch", "Onnx", "pytorch", "ONNX"]), pre=_files,
    post=_files, axes=_axes, tile=st.lists(st.integers(1, 4096), min_size=3, max_size=3),
    level=st.sampled_from(["mute", "normal", "debug", "Normal", "DEBUG"]),
    spaces=st.sampled_from([" ", "  "]),
)
def test_recorded_two_x_lines_read_back(name, fmt, pre, post, axes, tile, level, spaces):
    line = spaces.join([
        f"model={_recorded(name)}", f"format={fmt}", f"preprocessing={_processing(pre, 'preprocessing')}",
        f"postprocessing={_processing(post, 'postprocessing')}", f"axes={','.join(axes)}",
        f"tile={','.join(map(str, tile))}", f"logging={level}",
    ])
    request = parse_run_options(line)
    expected_format = {
        "tensorflow": "tensorflow_saved_model_bundle", "pytorch": "torchscript", "onnx": "onnx"
    }
    assert request.dialect == "2.x"
    assert request.model == name
    assert request.weights_format == expected_format[fmt.lower()]
    assert request.preprocessing == tuple(pre) and request.postprocessing == tuple(post)
    assert request.tile_sizes() == {a.lower(): n for a, n in zip(axes, tile, strict=True)}
    assert request.logging == level.lower()


@settings(max_examples=100, deadline=None)
@given(
    model=st.from_regex(r"/[a-z]{1,8}( [a-z]{1,8})?", fullmatch=True),
    images=st.from_regex(r"/[a-z]{1,8}( [a-z]{1,8})?(\.tif)?", fullmatch=True),
    camel=st.booleans(), show=st.booleans(),
)
def test_three_one_lines_read_back(model, images, camel, show):
    keys = ("modelPath", "inputPath", "outputFolder", "displayOutput") if camel else (
        "model_path", "input_path", "output_folder", "display_output")
    line = (
        f"{keys[0]}={_recorded(model)} {keys[1]}={_recorded(images)} "
        f"{keys[2]}={_recorded(images + 'out')} {keys[3]}={'true' if show else 'false'}"
    )
    request = parse_run_options(line)
    assert (request.dialect, request.model_path, request.input_path) == ("3.1", Path(model), Path(images))
    assert request.output_folder == Path(images + "out") and request.display_output is show


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_read_or_refused_with_an_argument_error(text):
    try:
        request = parse_run_options(text)
    except ArgumentError:
        return
    assert request.model or request.model_path
