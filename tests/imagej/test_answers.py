"""Questions a workshop macro asks, answered with run_macro(answers=...) in the real ImageJ."""

from __future__ import annotations

import numpy as np
import pytest

from deepij.errors import ArgumentError, MacroError, MacroTimeoutError


def test_get_directory_by_its_prompt(session, tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    code = ('input = getDirectory("Choose input folder");\noutput = getDirectory("Choose output folder");\n'
            'return input + "|" + output;')
    result = session.run_macro(code, answers={"Choose input folder": data, "choose output folder:": str(out)})
    # ImageJ's getDirectory ends a folder with a separator
    assert result.value == f"{data}/|{out}/"
    assert result.answered == {"Choose input folder": str(data), "Choose output folder": str(out)}


def test_get_string_and_get_number(session):
    code = ('name = getString("Name of the output", "cells");\nsigma = getNumber("Sigma (pixels):", 2);\n'
            'run("Gaussian Blur...", "sigma=" + sigma);\nrename(name);\nreturn name + " " + sigma;')
    image = np.zeros((32, 32), "float32")
    image[16, 16] = 1000
    answers = {"Name of the output": "nuclei", "Sigma (pixels)": 3}
    result = session.run_macro(code, image=image, answers=answers)
    assert result.value == "nuclei 3"
    blurred = result.images["nuclei"].values
    # a Gaussian of sigma 3 keeps about 1/(2 pi 3^2) of a point's value at its centre (sigma 2: 4.0%)
    assert blurred[16, 16] == pytest.approx(1000 / (2 * np.pi * 9), rel=0.05)


def test_a_dialog_with_several_fields_by_label(session, tmp_path):
    code = """
        Dialog.create("Segmentation settings");
        Dialog.addDirectory("Input folder", "/tmp");
        Dialog.addNumber("Minimum size", 20, 0, 6, "pixels");
        Dialog.addChoice("Threshold method", newArray("Otsu", "Huang", "Triangle"), "Otsu");
        Dialog.addCheckbox("Exclude on edges", true);
        Dialog.addString("Suffix", "_mask");
        Dialog.addRadioButtonGroup("Output", newArray("mask", "labels"), 1, 2, "mask");
        Dialog.show();
        folder = Dialog.getString();
        size = Dialog.getNumber();
        method = Dialog.getChoice();
        exclude = Dialog.getCheckbox();
        suffix = Dialog.getString();
        output = Dialog.getRadioButton();
        return folder + "|" + size + "|" + method + "|" + exclude + "|" + suffix + "|" + output;
    """
    answers = {"Input folder": tmp_path, "minimum size": "35", "Threshold method": "Triangle",
               "Exclude on edges": False, "Output": "labels"}
    result = session.run_macro(code, answers=answers)
    # the field without an answer (Suffix) keeps what the dialog shows, as OK would
    assert result.value == f"{tmp_path}|35|Triangle|0|_mask|labels"
    assert result.answered["Suffix"] == "_mask" and result.answered["Threshold method"] == "Triangle"


def test_a_commands_own_dialog_when_run_without_options(session):
    image = np.zeros((9, 9), "float32")
    image[4, 4] = 90
    result = session.run_macro('run("Divide...");', image=image, answers={"Value": 3})
    assert result.image.values[4, 4] == 30


def test_get_boolean_and_file_open_dialog(session, tmp_path):
    model = tmp_path / "model.zip"
    model.write_bytes(b"PK")
    code = 'go = getBoolean("Process all images?");\npath = File.openDialog("Choose the model");\n' \
           'return "" + go + "|" + path;'
    result = session.run_macro(code, answers={"Process all images?": "no", "Choose the model": model})
    assert result.value == f"0|{model}"


def test_an_unanswered_question_stops_with_what_would_answer_it(session):
    code = 'print("started");\ninput = getDirectory("Choose input folder");\nprint("never");'
    with pytest.raises(MacroTimeoutError) as caught:
        session.run_macro(code, answers={"Something else": "x"})
    error = caught.value
    assert isinstance(error, MacroError) and error.line == 2
    assert 'getDirectory("Choose input folder")' in str(error)
    assert 'answers={"Choose input folder": "/path/to/folder"}' in str(error)
    assert '--answer "Choose input folder=/path/to/folder"' in str(error)


def test_an_unanswered_dialog_lists_its_fields(session):
    code = ('Dialog.create("Settings");\nDialog.addNumber("sigma", 2);\n'
            'Dialog.addChoice("Method", newArray("Otsu", "Huang"));\nDialog.show();')
    with pytest.raises(MacroTimeoutError) as caught:
        session.run_macro(code)
    text = str(caught.value)
    assert 'Dialog "Settings" asks for' in text and "'Method' (one of 'Otsu', 'Huang'" in text
    assert 'answers={"sigma": 2, "Method": "Otsu"}' in text
    assert '--answer "sigma=2" --answer "Method=Otsu"' in text


@pytest.mark.parametrize("answers, says", [
    ({"Method": "Bernsen"}, r"answers\['Method'\]: 'Method' offers 'Otsu', 'Huang'; found 'Bernsen'"),
    ({"sigma": "wide"}, r"answers\['sigma'\]: 'sigma' asks for a number, found 'wide'"),
    ({"sigma": 1, "Invert": "maybe"}, r"answers\['Invert'\]: expected True or False"),
])
def test_an_answer_the_field_cannot_take_is_an_argument_error(session, answers, says):
    code = ('Dialog.create("Settings");\nDialog.addNumber("sigma", 2);\n'
            'Dialog.addChoice("Method", newArray("Otsu", "Huang"));\nDialog.addCheckbox("Invert", false);\n'
            'Dialog.show();\nprint("never");')
    with pytest.raises(ArgumentError, match=says):
        session.run_macro(code, answers=answers)
    assert "never" not in session.run_macro('print("fresh");').log
