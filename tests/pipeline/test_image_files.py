"""Files that cannot be a model's input: ``model.predict(path)`` raises InputError naming the file, what is
in it and what was expected, for every kind of file (TIFF, PNG through ImageJ, .npy, unknown extension,
missing, a folder), never a reader's own exception. The damaged files are made here from good ones written
by tifffile, numpy and ImageJ itself (cut short, emptied, replaced by other bytes)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile

from deepij.errors import InputError
from deepij.pipeline import Model
from deepij.pipeline.image_files import check_image_file
from support.models import describe, write_torchscript_convnet

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    net = write_torchscript_convnet(tmp_path_factory.mktemp("net") / "net.pt")
    return Model(describe(net))


@pytest.fixture(scope="module")
def good(tmp_path_factory, imagej_session):
    """Good files of each kind, whose bytes the damaged ones are made from."""
    folder = tmp_path_factory.mktemp("good")
    stack = RNG.integers(0, 4000, (3, 40, 48), dtype=np.uint16)
    tifffile.imwrite(folder / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    plane = RNG.random((200, 220), dtype=np.float32)
    tifffile.imwrite(folder / "plain.tif", plane)
    tifffile.imwrite(folder / "zlib.tif", plane, compression="zlib")
    np.save(folder / "array.npy", plane)
    imagej_session.run_macro(
        f'newImage("ramp", "8-bit ramp", 64, 48, 1); saveAs("PNG", "{folder}/ramp.png");'
    )
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def _predict_error(model, path, session):
    with pytest.raises(InputError) as caught:
        model.predict(path, session=session)
    message = str(caught.value)
    assert repr(str(path)) in message  # the file, quoted
    return message


CASES = [
    "empty.tif", "random bytes.tif", "notes.tif", "really a png.tif", "header only.tif", "no pages.tif",
    "cut IFD.tif", "half stack.tif", "cut pixels.tif", "cut zlib.tif", "empty.npy", "cut.npy",
    "random bytes.npy", "really a zip.npy", "empty.png", "cut.png", "random bytes.png", "plate.xyz",
]


def _cases(good):
    stack, plain, zlib = good["stack.tif"], good["plain.tif"], good["zlib.tif"]
    return {
        # name: (bytes, what the message says was found, what it says is wrong)
        "empty.tif": (b"", "found an empty file (0 bytes)", "expected a TIFF image"),
        "random bytes.tif": (bytes(RNG.integers(128, 256, 400, dtype=np.uint8)), "found unknown data",
                             "not a TIFF file"),
        "notes.tif": (b"plate 3, well B2\n" * 20, "found text (340 bytes)", "not a TIFF file"),
        "really a png.tif": (good["ramp.png"], "found a PNG file", "not a TIFF file"),
        "header only.tif": (stack[:6], "found a TIFF file (6 bytes)", "damaged or truncated"),
        "no pages.tif": (stack[:8], "found a TIFF file (8 bytes)", "without any image"),
        "cut IFD.tif": (stack[:100], "found a TIFF file (100 bytes)", "damaged or truncated"),
        # tifffile reads the first of the three planes of this one without complaint
        "half stack.tif": (stack[: len(stack) // 2], "found a TIFF file",
                           "ImageJ header counts 3 images, the file holds 1"),
        "cut pixels.tif": (plain[: len(plain) // 3], "found a TIFF file",
                           "truncated: the pixel data of page 0"),
        "cut zlib.tif": (zlib[:-20], "found a TIFF file", "truncated: the pixel data of page 0"),
        "empty.npy": (b"", "found an empty file (0 bytes)", "expected a numpy .npy array"),
        "cut.npy": (good["array.npy"][:-30], "found a .npy array file", "Failed to read all data"),
        "random bytes.npy": (bytes(RNG.integers(128, 256, 300, dtype=np.uint8)), "found unknown data",
                             "does not start with the .npy header"),
        "really a zip.npy": (b"PK\x03\x04" + bytes(60), "found a zip archive", ".npy header"),
        "empty.png": (b"", "found an empty file (0 bytes)", "expected an image file ImageJ opens (.png)"),
        "cut.png": (good["ramp.png"][: len(good["ramp.png"]) // 2], "found a PNG file",
                    "ImageJ could not open it"),
        "random bytes.png": (bytes(RNG.integers(128, 256, 300, dtype=np.uint8)), "found unknown data",
                             "ImageJ could not open it"),
        "plate.xyz": (b"plate 3\n", "found text (8 bytes)", "an image file ImageJ opens (.xyz)"),
    }


@pytest.mark.parametrize("name", CASES)
def test_a_damaged_file_is_an_input_error_saying_what_is_there(name, good, model, tmp_path, imagej_session):
    data, found, problem = _cases(good)[name]
    path = tmp_path / name
    path.write_bytes(data)
    message = _predict_error(model, path, imagej_session)
    assert found in message and problem in message


def test_the_good_files_the_damaged_ones_come_from_run(good, model, tmp_path, imagej_session):
    # the cases above fail because of the damage, not because files of that kind cannot be read
    for name in ("stack.tif", "plain.tif", "zlib.tif", "array.npy", "ramp.png"):
        (tmp_path / name).write_bytes(good[name])
    shapes = {}
    for name in ("plain.tif", "zlib.tif", "array.npy", "ramp.png"):
        result = model.predict(tmp_path / name, session=imagej_session)
        shapes[name] = result.images["output"].shape[-2:]
    assert shapes == {"plain.tif": (200, 220), "zlib.tif": (200, 220), "array.npy": (200, 220),
                      "ramp.png": (48, 64)}
    assert model.predict(tmp_path / "stack.tif").images["output"].sizes["z"] == 3


def test_missing_files_and_folders(model, tmp_path):
    message = _predict_error(model, tmp_path / "nowhere.tif", None)
    assert "does not exist" in message
    (tmp_path / "images.tif").mkdir()  # a folder, even with an image's name
    message = _predict_error(model, tmp_path / "images.tif", None)
    assert re.search(r"is a folder; expected an image file", message)


def test_a_file_the_system_cannot_open_is_an_input_error(model, tmp_path):
    # a path through a file: the OS refuses to open it, as it refuses an unreadable file (which root,
    # who runs these tests, could read anyway)
    (tmp_path / "notes.txt").write_text("not a folder")
    message = _predict_error(model, tmp_path / "notes.txt" / "cells.tif", None)
    assert "cells.tif" in message


def _damaged_zlib(good):
    """The zlib TIFF with 50 bytes in the middle of its compressed pixel data zeroed (as long as before)."""
    import io

    data = bytearray(good["zlib.tif"])
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        start, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    data[start + count // 2 : start + count // 2 + 50] = bytes(50)
    return bytes(data)


@pytest.mark.parametrize("name", [c for c in CASES if not c.endswith((".png", ".xyz"))] + ["bad zlib.tif"])
def test_check_image_file_refuses_what_predict_refuses_with_the_same_message(name, good, model, tmp_path):
    # the doors where ImageJ opens the file itself (deepij macro, DeepImageJ Run input_path=) call
    # check_image_file first; ImageJ would open the truncated TIFFs with zeros for the missing rows
    data = _damaged_zlib(good) if name == "bad zlib.tif" else _cases(good)[name][0]
    path = tmp_path / name
    path.write_bytes(data)
    expected = _predict_error(model, path, None)
    with pytest.raises(InputError) as caught:
        check_image_file(path)
    if name == "cut.npy":  # the check maps the file instead of reading it, and numpy words that fault so
        message = str(caught.value)
        assert "found a .npy array file" in message and "mmap length is greater" in message
    else:
        assert str(caught.value) == expected


def test_check_image_file_passes_good_files_and_leaves_other_formats_to_imagej(good, tmp_path):
    for name in ("stack.tif", "plain.tif", "zlib.tif", "array.npy", "ramp.png"):
        (tmp_path / name).write_bytes(good[name])
        check_image_file(tmp_path / name)
    (tmp_path / "cut.png").write_bytes(good["ramp.png"][:100])
    check_image_file(tmp_path / "cut.png")  # ImageJ's opener decides (its refusal: see cut.png above)
    for missing in (tmp_path / "nowhere.tif", tmp_path):
        with pytest.raises(InputError, match=r"does not exist|is a folder"):
            check_image_file(missing)
