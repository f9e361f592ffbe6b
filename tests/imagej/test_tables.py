"""ResultsTable <-> DataFrame, both ways, against the real ImageJ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepij.errors import ArgumentError, ArgumentTypeError


def test_dataframe_to_resultstable_as_imagej_sees_it(session):
    frame = pd.DataFrame({
        "Area": [1.5, 2.0, np.nan],
        "Count": [1, 2, 3],
        "Name": ["a", "b c", "d"],
        "Mixed": [1.0, "x", None],
        "Flag": [True, False, True],
    })
    table = session.to_resultstable(frame)
    assert int(table.size()) == 3
    assert table.getValue("Area", 1) == 2.0 and np.isnan(table.getValue("Area", 2))
    assert table.getValue("Count", 2) == 3.0
    assert str(table.getStringValue("Name", 1)) == "b c"
    assert str(table.getStringValue("Mixed", 1)) == "x" and table.getValue("Mixed", 0) == 1.0
    assert table.getValue("Flag", 1) == 0.0
    assert table.getLabel(0) is None


def test_round_trip_keeps_values_text_and_labels(session):
    frame = pd.DataFrame({"Mean": [0.25, 7.0], "Cell": ["alpha", "beta"]},
                         index=pd.Index(["img1:roi1", "img1:roi2"], name="Label"))
    back = session.to_dataframe(session.to_resultstable(frame))
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back.index.name == "Label" and list(back.index) == ["img1:roi1", "img1:roi2"]
    named = frame.rename_axis("Slice")
    assert session.to_dataframe(session.to_resultstable(named)).index.name == "Slice"


def test_imagej_made_table_to_dataframe(session):
    result = session.run_macro("""
        for (i = 0; i < 4; i++) {
            setResult("Label", i, "cell" + i);
            setResult("X", i, i * 1.5);
            setResult("Kind", i, "k" + (i % 2));
        }
        setResult("Sparse", 1, 42);
        updateResults();
    """)
    table = result.tables["Results"]
    assert list(table.index) == ["cell0", "cell1", "cell2", "cell3"]
    np.testing.assert_array_equal(table["X"].to_numpy(), [0.0, 1.5, 3.0, 4.5])
    assert list(table["Kind"]) == ["k0", "k1", "k0", "k1"]
    assert list(table["Sparse"]) == [0.0, 42.0, 0.0, 0.0]  # ImageJ fills cells never set with 0


def test_empty_and_bad_frames(session):
    empty = session.to_dataframe(session.to_resultstable(pd.DataFrame({"A": []})))
    assert len(empty) == 0
    with pytest.raises(ArgumentError, match=r"repeated column names \['a'\]"):
        session.to_resultstable(pd.DataFrame([[1, 2]], columns=["a", "a"]))
    with pytest.raises(ArgumentError, match=r"frame\['obj'\] row 0: dict"):
        session.to_resultstable(pd.DataFrame({"obj": [{"no": 1}]}))
    with pytest.raises(ArgumentTypeError, match=r"frame: expected a pandas\.DataFrame, found dict"):
        session.to_resultstable({"a": [1]})
    with pytest.raises(ArgumentTypeError, match=r"table: expected an ij.measure.ResultsTable"):
        session.to_dataframe(None)


def test_a_large_numeric_table_is_fast_enough_to_be_columnar(session):
    frame = pd.DataFrame(np.random.default_rng(0).random((20000, 5)), columns=list("abcde"))
    back = session.to_dataframe(session.to_resultstable(frame))
    pd.testing.assert_frame_equal(back, frame)
