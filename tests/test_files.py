"""Atomic writes: complete or absent, never private, nothing left behind on failure, temporaries named after
their process; image locks held by one process at a time and released by its death; folders that cannot be
written named."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from deepij.errors import ArgumentError, OutputBusyError
from deepij.files import (
    PARTIAL_SUFFIX,
    atomic_path,
    exclusive_lock,
    host_name,
    remove_abandoned_lock,
    temporary_owner,
    writable_folder,
    write_atomically,
)


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


def test_temporaries_are_named_after_their_process(tmp_path):
    with atomic_path(tmp_path / "a.tif") as partial:
        assert temporary_owner(partial.name) == (os.getpid(), host_name())
        partial.write_bytes(b"x")


HOLD = """
import sys, time
from deepij.files import exclusive_lock
with exclusive_lock(sys.argv[1], "test"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_lock_is_held_by_one_process_and_released_by_its_death(tmp_path):
    lock = tmp_path / "image.lock"
    source = Path(__file__).resolve().parents[1] / "src"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(source)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputBusyError, match=rf"image a.tif: .*\(pid {holder.pid} on host "), \
                exclusive_lock(lock, "image a.tif"):
            pass
        assert not remove_abandoned_lock(lock) and lock.exists()  # held: left alone
    finally:
        holder.kill()  # SIGKILL: no clean-up of its own
        holder.wait(timeout=60)
    assert lock.exists()  # what kill -9 leaves
    with exclusive_lock(lock, "image a.tif"):  # nobody holds it any more
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()
    lock.write_text("{}")
    assert remove_abandoned_lock(lock) and not lock.exists()


def test_folders_that_cannot_be_written_are_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArgumentError, match=r"output: '.*file' is a file \(expected a folder deepij can"):
        writable_folder(tmp_path / "file", "output")
    with pytest.raises(ArgumentError, match=r"lies below '.*file', which is a file, not a folder"):
        writable_folder(tmp_path / "file" / "sub" / "out", "output")
    with pytest.raises(ArgumentError, match=r"'/proc/deepij/out' cannot be made or written \(FileNotFound"):
        writable_folder("/proc/deepij/out", "output")
    folder = writable_folder(tmp_path / "new" / "out", "output")
    assert folder.is_dir() and list(folder.iterdir()) == []
