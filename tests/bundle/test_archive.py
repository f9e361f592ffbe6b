"""Unpacking and installing under attack and interruption: zip bombs of many members, clashing and encrypted
members, limits from the environment, SIGTERM and kill -9 during unpacking (real subprocesses), stale staging
folders, the modes of installed folders."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from deepij.bundle import install, open_bundle
from deepij.bundle.archive import ArchiveLimits, extract_zip
from deepij.bundle.staging import make_staging, owner_pid
from deepij.errors import ArchiveError, ArgumentError, BundleError
from support.bundles import WrittenBundle, zip_bundle
from support.http import LocalServer

MIB = 1 << 20


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _no_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- zip bombs ---------------------------------------------------------------------------------------------


def test_many_members_of_exactly_the_ratio_floor(tmp_path: Path) -> None:
    bomb = _zip(tmp_path / "bomb.zip", {f"z{i}.bin": bytes(MIB) for i in range(4)})
    with pytest.raises(ArchiveError, match="a member compresses suspiciously well") as caught:
        extract_zip(bomb, tmp_path / "out")
    assert caught.value.file == str(bomb) and "z0.bin" in caught.value.found


def test_many_members_just_under_the_floor_add_up(tmp_path: Path) -> None:
    # 70 members of 1 MiB - 1 byte of zeros: each escapes the per-member check, together 70 MiB from ~70 kB
    bomb = _zip(tmp_path / "bomb.zip", {f"z{i}.bin": bytes(MIB - 1) for i in range(70)})
    with pytest.raises(ArchiveError, match="compresses suspiciously well as a whole") as caught:
        extract_zip(bomb, tmp_path / "out")
    assert caught.value.file == str(bomb) and "70 members" in caught.value.found
    assert "DEEPIJ_ARCHIVE_MAX_TOTAL_RATIO" in caught.value.expected
    assert not (tmp_path / "out").exists() and _no_leftovers(tmp_path) == []


def test_a_real_bundle_passes_the_aggregate_check(written: dict[str, WrittenBundle], tmp_path: Path) -> None:
    archive = zip_bundle(written["0.4"].folder, tmp_path / "real.zip")
    limits = ArchiveLimits(total_ratio_floor=1)  # checked even though it is small
    assert (extract_zip(archive, tmp_path / "out", limits=limits) / "rdf.yaml").is_file()


def test_limits_from_arguments_and_the_environment(
    written: dict[str, WrittenBundle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = zip_bundle(written["0.4"].folder, tmp_path / "real.zip")
    size = sum(i.file_size for i in zipfile.ZipFile(archive).infolist())
    with pytest.raises(ArchiveError, match="unpacks to too many bytes"):
        install(archive, models_dir=tmp_path / "m", limits=ArchiveLimits(max_bytes=size - 1))
    monkeypatch.setenv("DEEPIJ_ARCHIVE_MAX_BYTES", str(size - 1))
    with pytest.raises(ArchiveError, match="unpacks to too many bytes") as caught:
        install(archive, models_dir=tmp_path / "m")
    assert "DEEPIJ_ARCHIVE_MAX_BYTES" in caught.value.expected
    monkeypatch.setenv("DEEPIJ_ARCHIVE_MAX_BYTES", "1G")
    monkeypatch.setenv("DEEPIJ_ARCHIVE_MAX_FILES", "3")
    with pytest.raises(ArchiveError, match="too many files"):
        open_bundle(archive)
    monkeypatch.setenv("DEEPIJ_ARCHIVE_MAX_FILES", "many")
    with pytest.raises(ArgumentError, match="DEEPIJ_ARCHIVE_MAX_FILES"):
        install(archive, models_dir=tmp_path / "m")
    monkeypatch.delenv("DEEPIJ_ARCHIVE_MAX_FILES")
    assert install(archive, models_dir=tmp_path / "m").is_dir()
    assert _no_leftovers(tmp_path / "m") == []


@pytest.mark.parametrize("bad", [{"max_bytes": 0}, {"max_ratio": -1.0}, {"max_files": "10"}])
def test_bad_limits(bad: dict) -> None:
    with pytest.raises(ArgumentError, match=f"ArchiveLimits.{next(iter(bad))}"):
        ArchiveLimits(**bad)


# --- members that cannot be unpacked -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (["x", "x/y"], "a file and a folder of the same name"),
        (["a/x", "a/x/y/z"], "a file and a folder of the same name"),
        (["x/", "x"], "a file and a folder of the same name"),
        (["x/y", "x"], "a file and a folder of the same name"),
        (["rdf.yaml", "rdf.yaml"], "a member appears twice"),
    ],
)
def test_members_that_clash(tmp_path: Path, members: list[str], message: str) -> None:
    archive = tmp_path / "clash.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in members:
            if name == "rdf.yaml" and name in zf.namelist():
                with pytest.warns(UserWarning):
                    zf.writestr(name, b"again")  # zipfile warns of the duplicate
            else:
                zf.writestr(name, b"" if name.endswith("/") else b"data")
    with pytest.raises(ArchiveError, match=message) as caught:
        extract_zip(archive, tmp_path / "out")
    assert caught.value.file == str(archive)
    with pytest.raises(ArchiveError, match=message) as caught:
        install(archive, models_dir=tmp_path / "m")
    assert caught.value.file == str(archive) and ".deepij-install" not in str(caught.value)
    assert _no_leftovers(tmp_path / "m") == [] and not (tmp_path / "out").exists()


def _encrypted(path: Path) -> Path:
    """A zip whose member carries the 'encrypted' flag (Python cannot write encrypted zips; the flag is
    what readers see, set here in the local and the central header as an encrypting archiver does)."""
    _zip(path, {"rdf.yaml": b"name: x\n", "weights.pt": b"secret" * 100}, zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + flag_at] |= 0x1
            start += 4
    path.write_bytes(bytes(data))
    return path


def test_an_encrypted_member(tmp_path: Path) -> None:
    archive = _encrypted(tmp_path / "locked.zip")
    assert all(i.flag_bits & 0x1 for i in zipfile.ZipFile(archive).infolist())
    with pytest.raises(ArchiveError, match="encrypted member") as caught:
        open_bundle(archive)
    assert caught.value.file == str(archive) and caught.value.found == "rdf.yaml"


def test_a_models_folder_that_is_a_file(written: dict[str, WrittenBundle], tmp_path: Path) -> None:
    (tmp_path / "models").write_text("not a folder")
    archive = zip_bundle(written["0.4"].folder, tmp_path / "b.zip")
    with pytest.raises(BundleError, match="the models folder is a file") as caught:
        install(archive, models_dir=tmp_path / "models")
    assert caught.value.file == str(tmp_path / "models")
    with pytest.raises(BundleError, match="cannot create the models folder"):
        install(archive, models_dir=tmp_path / "models" / "below")


def test_errors_inside_an_installed_zip_name_the_zip(
    written: dict[str, WrittenBundle], tmp_path: Path
) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(written["0.5"].folder, folder)
    (folder / "rdf.yaml").write_text(
        (folder / "rdf.yaml").read_text().replace("type: space", "type: spaze", 1)
    )
    archive = zip_bundle(folder, tmp_path / "bad.zip", wrap_in_folder=True)
    with pytest.raises(BundleError, match="wrong axis type") as caught:
        install(archive, models_dir=tmp_path / "m")
    assert caught.value.file == f"{archive}: bad/rdf.yaml"
    assert caught.value.field is not None and caught.value.field.startswith("inputs[0].axes")
    assert "unpacking" not in str(caught.value) and ".deepij-install" not in str(caught.value)


# --- interruptions and stale staging folders --------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time, zipfile
    from pathlib import Path
    from deepij.bundle.archive import extract_zip

    # slow the unpacking down so the parent can signal it mid-way (the code under test is unchanged)
    original = zipfile.ZipExtFile.read
    def slow_read(self, n=-1):
        print("unpacking", flush=True)
        time.sleep(0.05)
        return original(self, n)
    zipfile.ZipExtFile.read = slow_read
    extract_zip(Path(sys.argv[1]), Path(sys.argv[2]))
    print("finished", flush=True)
    """
)


def _start_unpacking(archive: Path, destination: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(archive), str(destination)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "unpacking"
    return child


@pytest.fixture
def slow_zip(tmp_path: Path) -> Path:
    return _zip(tmp_path / "slow.zip", {f"f{i}.bin": os.urandom(1 << 16) for i in range(200)})


def test_sigterm_during_unpacking_leaves_nothing(slow_zip: Path, tmp_path: Path) -> None:
    target = tmp_path / "unpacked" / "bundle"
    child = _start_unpacking(slow_zip, target)
    staging = [p for p in target.parent.iterdir() if p.name.startswith(".bundle.unpacking-")]
    assert len(staging) == 1 and owner_pid(staging[0].name, ".bundle.unpacking-") == child.pid
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode != 0 and "Terminated" in err
    assert list(target.parent.iterdir()) == [], "the staging folder is removed, nothing half-unpacked"


def test_kill_9_leaves_a_staging_folder_that_the_next_run_removes(slow_zip: Path, tmp_path: Path) -> None:
    target = tmp_path / "unpacked" / "bundle"
    child = _start_unpacking(slow_zip, target)
    child.kill()
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    left = [p.name for p in target.parent.iterdir()]
    assert len(left) == 1 and left[0].startswith(".bundle.unpacking-")
    extract_zip(slow_zip, target)
    assert [p.name for p in target.parent.iterdir()] == ["bundle"]


def test_stale_install_staging_is_removed_and_live_one_kept(
    written: dict[str, WrittenBundle], tmp_path: Path
) -> None:
    models = tmp_path / "m"
    models.mkdir()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)
    stale = make_staging(models, ".deepij-install-")
    stale.rename(models / stale.name.replace(f"-{os.getpid()}-", f"-{dead_pid}-", 1))
    live = make_staging(models, ".deepij-install-")  # this process's: in use
    other_host = models / f".deepij-install-{dead_pid}-elsewhere-abc"
    other_host.mkdir()
    install(zip_bundle(written["0.4"].folder, tmp_path / "b.zip"), models_dir=models)
    assert sorted(p.name for p in models.iterdir()) == sorted(["b", live.name, other_host.name])


# --- modes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "dirs", "files"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_installed_folders_are_readable(
    written: dict[str, WrittenBundle], tmp_path: Path, umask: int, dirs: int, files: int
) -> None:
    archive = zip_bundle(written["0.3"].folder, tmp_path / "shared.zip", wrap_in_folder=True)
    previous = os.umask(umask)
    try:
        folder = install(archive, models_dir=tmp_path / "Fiji.app" / "models")
        copied = install(written["0.5"].folder, models_dir=tmp_path / "Fiji.app" / "models")
    finally:
        os.umask(previous)
    for root in (folder, copied):
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (dirs if path.is_dir() else files), (path, oct(mode))


def test_a_broken_download_is_not_reused(written: dict[str, WrittenBundle], tmp_path: Path) -> None:
    good = zip_bundle(written["0.4"].folder, tmp_path / "m.zip").read_bytes()
    with LocalServer({"/m.zip": b"PK\x03\x04 not a zip at all"}) as server:
        with pytest.raises(ArchiveError, match="not a readable zip"):
            open_bundle(server.url("/m.zip"))
        assert not list((tmp_path / "cache" / "downloads").rglob("*"))
        server.files["/m.zip"] = good
        assert open_bundle(server.url("/m.zip")).name == written["0.4"].name
        assert len(server.requests) == 2  # fetched again, not read from the cache
