"""Atomic writes: complete or absent, never private, nothing left behind on failure."""

from __future__ import annotations

import os
import stat

import pytest

from deepij.files import PARTIAL_SUFFIX, atomic_path, write_atomically


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_the_modes_open_would_give(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = write_atomically(tmp_path / "out.csv", "a,b\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert path.read_text() == "a,b\n"


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    (tmp_path / "old.tif").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "old.tif") as partial:
        partial.write_bytes(b"half")
        assert partial.name.startswith(".old.tif.") and partial.name.endswith(PARTIAL_SUFFIX)
        raise RuntimeError("writer died")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.tif"]
    assert (tmp_path / "old.tif").read_bytes() == b"old"  # the previous content is untouched


def test_bytes_and_synced_writes(tmp_path):
    path = write_atomically(tmp_path / "marker.json", b"{}", sync=True)
    assert path.read_bytes() == b"{}"
    assert [p.name for p in tmp_path.iterdir()] == ["marker.json"]
