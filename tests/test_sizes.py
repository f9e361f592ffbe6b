"""One reading of memory sizes for every max_memory= (ImageJ's JVM and a model's budget)."""

from __future__ import annotations

import pytest

from deepij.errors import ArgumentError, ArgumentTypeError
from deepij.imagej.jvm import memory_option
from deepij.sizes import parse_memory_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2GB", 2_000_000_000),  # decimal with a B, as vendors write it
        ("512 MiB", 512 * 2**20),
        ("100kB", 100_000),
        ("8g", 8 * 2**30),  # Java's -Xmx8g is 8 GiB
        ("512m", 512 * 2**20),
        ("1.5g", int(1.5 * 2**30)),
        (4096, 4096),
        ("3 GiB", 3 * 2**30),
        ("1e3", 1000),
        ("7 B", 7),
    ],
)
def test_memory_sizes(text, expected):
    assert parse_memory_size(text) == expected


@pytest.mark.parametrize("bad", ["lots", "2 GX", "-1GB", 0, "GB", "2gbb", "0.0"])
def test_bad_memory_sizes_are_named(bad):
    with pytest.raises(ArgumentError, match=r"^max_memory: "):
        parse_memory_size(bad)


@pytest.mark.parametrize("bad", [True, [1], None, b"2GB"])
def test_memory_sizes_of_the_wrong_type(bad):
    with pytest.raises(ArgumentTypeError, match=r"^max_memory: expected a size"):
        parse_memory_size(bad)


def test_the_jvm_reads_sizes_the_same_way():
    # -Xmx in MiB: 8 GiB = 8192 MiB; 2 GB = 2e9 / 2**20 = 1907.3 MiB
    assert memory_option("8g") == ["-Xmx8192m"]
    assert memory_option("2GB") == ["-Xmx1907m"]
    assert memory_option(2**30) == ["-Xmx1024m"]
    assert memory_option(None) == []
