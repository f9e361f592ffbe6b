"""The one naming rule for output files: unique without case, the same whatever the order of the names,
safe as file names, and a refusal (never a silent overwrite) when nothing separates two names."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepij.errors import ArgumentError
from deepij.pipeline.batch import IMAGE_SUFFIXES, output_prefixes
from deepij.pipeline.output_names import clean_name, unique_stems

# names as users and macros make them: letters of both cases, the characters that cleaning maps to "_",
# dots, spaces and extensions
NAME = st.text(alphabet=string.ascii_letters[:6] + "_#/: .-1", max_size=12) | st.sampled_from(
    ["a.tif", "a.TIF", "a_tif.npy", "a.npy", "well#1.tif", "well_1.tif", "res", "res.tif"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(NAME, unique=True, max_size=8), st.randoms())
def test_stems_are_unique_stable_and_safe(names, random):
    try:
        stems = unique_stems(names, extensions=IMAGE_SUFFIXES)
    except ArgumentError as error:
        assert "would both be written as" in str(error)
        return
    assert list(stems) == names
    assert len({s.casefold() for s in stems.values()}) == len(names)  # unique, even on macOS or Windows
    shuffled = list(names)
    random.shuffle(shuffled)
    assert unique_stems(shuffled, extensions=IMAGE_SUFFIXES) == stems  # independent of the order
    for stem in stems.values():
        assert stem and "/" not in stem and ":" not in stem and "#" not in stem
        assert not stem.startswith((".", " ")) and not stem.endswith((".", " "))


def test_the_issue_cases():
    assert unique_stems(["a/b", "a:b"]) == {"a/b": "a_b-c14cddc0", "a:b": "a_b-6783a31e"}
    assert unique_stems(["res", "res.tif"], extensions=(".tif",)) == {"res": "res", "res.tif": "res_tif"}
    stems = unique_stems(["well#1.tif", "well_1.tif"], extensions=(".tif",))
    assert len(set(stems.values())) == 2 and all(s.startswith("well_1-") for s in stems.values())
    # a hash of the original name alone: the same name gets the same stem in any company
    alone = unique_stems(["well#1.tif", "well_1.tif", "other.tif"], extensions=(".tif",))
    assert alone["well#1.tif"] == stems["well#1.tif"]


def test_names_nothing_separates_are_refused():
    with pytest.raises(ArgumentError, match="given more than once"):
        unique_stems(["a", "a"])
    tricky = ["x/y", f"x_y-{unique_stems(['x/y', 'x:y'])['x/y'][4:]}", "x:y"]  # one made to look like a hash
    with pytest.raises(ArgumentError, match="would both be written as"):
        unique_stems(tricky)


def test_clean_names_and_long_ones():
    assert clean_name("../../etc/passwd") == "_.._etc_passwd"
    assert clean_name(" . ") == "output" and clean_name("", "image") == "image"
    long = clean_name("x" * 400)
    assert len(long.encode()) <= 150 and long != clean_name("x" * 401)


def test_input_prefixes_keep_plain_names_plain(tmp_path):
    files = [tmp_path / n for n in ("cells 01.tif", "b.ome.tif", "c.npy")]
    assert list(output_prefixes(files).values()) == ["cells 01", "b", "c"]
