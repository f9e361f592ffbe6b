"""Downloads against a real HTTP server on 127.0.0.1: progress, resume with Range, failures."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from deepij.bundle.download import download
from deepij.errors import BundleError, ChecksumError
from support.http import LocalServer

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_with_progress(tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        path = download(
            server.url("/m.zip"), tmp_path / "m.zip", sha256=DIGEST, progress=lambda d, t: seen.append((d, t))
        )
    assert path.read_bytes() == PAYLOAD
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert not (tmp_path / "m.zip.part").exists()


def test_dropped_connection_is_resumed_with_range(tmp_path: Path) -> None:
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        server.drop_after("/m.zip", 1_000_000, times=2)
        path = download(server.url("/m.zip"), tmp_path / "m.zip", sha256=DIGEST)
        ranges = server.ranges_asked("/m.zip")
    assert path.read_bytes() == PAYLOAD
    assert ranges == [None, "bytes=1000000-", "bytes=2000000-"]


def test_partial_download_resumes_in_a_later_call(tmp_path: Path) -> None:
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        server.drop_after("/m.zip", 500_000, times=5)
        with pytest.raises(BundleError, match=r"download interrupted after .* run again to resume"):
            download(server.url("/m.zip"), tmp_path / "m.zip", retries=1)
        partial = tmp_path / "m.zip.part"
        assert partial.stat().st_size == 1_000_000 and not (tmp_path / "m.zip").exists()
        path = download(server.url("/m.zip"), tmp_path / "m.zip", sha256=DIGEST, retries=5)
        assert server.ranges_asked("/m.zip")[2] == "bytes=1000000-"
    assert path.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path) -> None:
    (tmp_path / "m.zip.part").write_bytes(PAYLOAD[:1234])
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        server.ignore_range("/m.zip")
        path = download(server.url("/m.zip"), tmp_path / "m.zip", sha256=DIGEST)
        assert server.ranges_asked("/m.zip") == ["bytes=1234-"]
    assert path.read_bytes() == PAYLOAD


def test_stale_partial_larger_than_the_file(tmp_path: Path) -> None:
    (tmp_path / "m.zip.part").write_bytes(b"x" * (len(PAYLOAD) + 10))
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        path = download(server.url("/m.zip"), tmp_path / "m.zip", sha256=DIGEST)
    assert path.read_bytes() == PAYLOAD


def test_http_errors_and_checksums(tmp_path: Path) -> None:
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        with pytest.raises(BundleError, match="HTTP 404") as caught:
            download(server.url("/nothing.zip"), tmp_path / "n.zip")
        assert caught.value.file == server.url("/nothing.zip")
        server.fail_with("/m.zip", 503)
        with pytest.raises(BundleError, match="HTTP 503"):
            download(server.url("/m.zip"), tmp_path / "m.zip")
        server.behaviour("/m.zip").status = None
        with pytest.raises(ChecksumError, match="downloaded file does not match its sha256"):
            download(server.url("/m.zip"), tmp_path / "m.zip", sha256="0" * 64)
    assert not (tmp_path / "m.zip").exists() and not (tmp_path / "m.zip.part").exists()
