"""Test and sample tensors are read through one function; a file that is not what its name says is a
BundleError naming the file and the descriptor field, never numpy's or tifffile's exception. Real bundles
(support.bundles), real files written by numpy, tifffile, Pillow and pandas."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from deepij.bundle import open_bundle, read_tensor_file
from deepij.errors import BundleError, ChecksumError

RANDOM_BYTES = random.Random(0).randbytes(4096)  # the same bytes on every run


def opened(folder: Path):
    return open_bundle(folder, verify=False)  # the tests replace files: checked where it matters


def unreadable(description, relative: str, field: str | None, message: str) -> BundleError:
    with pytest.raises(BundleError) as caught:
        read_tensor_file(description, relative)
    error = caught.value
    assert error.file == str(description.root / relative)
    assert error.field == field
    assert message in str(error), str(error)
    assert description.descriptor.name in str(error), "says which descriptor names the file"
    return error


@pytest.mark.parametrize("version", ["0.3", "0.4", "0.5"])
def test_the_test_tensors_a_bundle_ships(bundle_copy, version: str) -> None:
    description = opened(bundle_copy(version))
    for tensor in (*description.inputs, *description.outputs):
        values = read_tensor_file(description, tensor.test_tensor, verify=True)
        np.testing.assert_array_equal(values, np.load(description.root / tensor.test_tensor))


@pytest.mark.parametrize(
    ("version", "field"),
    [("0.5", "inputs[0].test_tensor"), ("0.4", "test_inputs[0]"), ("0.3", "test_inputs[0]")],
)
def test_random_bytes_in_a_npy_test_tensor(bundle_copy, version: str, field: str) -> None:
    description = opened(bundle_copy(version))
    relative = description.inputs[0].test_tensor
    (description.root / relative).write_bytes(RANDOM_BYTES)
    error = unreadable(description, relative, field, "cannot be read as a .npy array")
    assert str(error.found).startswith("unknown data (first bytes ")
    assert "(4096 bytes): no valid .npy header" in error.found
    assert error.expected == "a .npy file (numpy.save)"


def test_a_truncated_npy(bundle_copy) -> None:
    description = opened(bundle_copy("0.5"))
    path = description.root / "test_output.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    error = unreadable(description, "test_output.npy", "outputs[0].test_tensor", "cannot be read as")
    assert "its header promises shape (1, 1, 32, 32) of float32 (4096 bytes), the file holds" in error.found


def test_a_npy_header_promising_terabytes_allocates_nothing(bundle_copy) -> None:
    description = opened(bundle_copy("0.5"))
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }"
    header += " " * (117 - len(header)) + "\n"  # numpy pads the header to 64-byte blocks
    (description.root / "test_input.npy").write_bytes(
        b"\x93NUMPY\x01\x00" + bytes([118, 0]) + header.encode()
    )
    error = unreadable(description, "test_input.npy", "inputs[0].test_tensor", "cannot be read as")
    assert "promises shape (1099511627776,) of float32 (4398046511104 bytes)" in error.found


def test_a_npy_of_python_objects_is_not_unpickled(bundle_copy) -> None:
    description = opened(bundle_copy("0.5"))
    np.save(description.root / "test_input.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    error = unreadable(description, "test_input.npy", "inputs[0].test_tensor", "cannot be read as")
    assert "Python objects" in error.found


def test_an_html_page_saved_as_a_tif_sample(bundle_copy) -> None:
    description = opened(bundle_copy("0.3"))
    page = "<!DOCTYPE html><html><body>Not found</body></html>\n"
    (description.root / "exampleImage.tif").write_text(page)
    error = unreadable(description, "exampleImage.tif", None, "cannot be read as a TIFF image")
    assert str(error.found).startswith(f"an HTML page ({len(page)} bytes): ")


def test_images_and_tables(bundle_copy) -> None:
    description = opened(bundle_copy("0.5"))
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    tifffile.imwrite(description.root / "sample.tif", image)
    Image.fromarray(image).save(description.root / "sample.png")
    pd.DataFrame({"area": [3, 5], "label": [1, 2]}).to_csv(description.root / "table.csv", index=False)
    np.testing.assert_array_equal(read_tensor_file(description, "sample.tif"), image)
    np.testing.assert_array_equal(read_tensor_file(description, "sample.png"), image)
    table = read_tensor_file(description, "table.csv")
    assert list(table.columns) == ["area", "label"] and table["area"].tolist() == [3, 5]


@pytest.mark.parametrize(
    ("name", "kind"), [("s.tif", "a TIFF image"), ("s.png", "an image"), ("t.csv", "a table")]
)
def test_random_bytes_as_an_image_or_a_table(bundle_copy, name: str, kind: str) -> None:
    description = opened(bundle_copy("0.5"))
    (description.root / name).write_bytes(b"\xff" + RANDOM_BYTES)
    error = unreadable(description, name, None, f"cannot be read as {kind}")
    assert str(error.found).startswith("unknown data (first bytes ") and "(4097 bytes): " in error.found


def test_an_empty_file_a_missing_file_and_an_unknown_kind(bundle_copy) -> None:
    description = opened(bundle_copy("0.5"))
    (description.root / "test_input.npy").write_bytes(b"")
    error = unreadable(description, "test_input.npy", "inputs[0].test_tensor", "cannot be read as")
    assert error.found == "an empty file (0 bytes): nothing to read"
    (description.root / "test_input.npy").unlink()
    with pytest.raises(BundleError, match="file missing from the bundle") as caught:
        read_tensor_file(description, "test_input.npy")
    assert caught.value.field == "inputs[0].test_tensor"
    (description.root / "weights.bin").write_bytes(b"\0" * 8)
    with pytest.raises(BundleError, match="a kind of file no tensor is read from") as caught:
        read_tensor_file(description, "weights.bin", field="config.other")
    assert caught.value.found == ".bin" and caught.value.field == "config.other"


def test_verify_checks_the_sha256_the_descriptor_gives(bundle_copy) -> None:
    description = opened(bundle_copy("0.5"))
    other = np.zeros((1, 1, 32, 32), dtype=np.float32)
    np.save(description.root / "test_input.npy", other)
    with pytest.raises(ChecksumError) as caught:
        read_tensor_file(description, "test_input.npy", verify=True)
    assert caught.value.field == "inputs[0].test_tensor"
    np.testing.assert_array_equal(read_tensor_file(description, "test_input.npy"), other)
