"""Downloads against a real HTTP server on 127.0.0.1: progress, resume with Range, failures."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from deepij.bundle.download import download, url_file_name
from deepij.errors import BundleError, ChecksumError, DownloadError
from support.http import LocalServer, validators

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
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        server.drop_after("/m.zip", 1234)
        with pytest.raises(DownloadError, match="run again to resume"):
            download(server.url("/m.zip"), tmp_path / "m.zip", retries=0)
        server.ignore_range("/m.zip")
        path = download(server.url("/m.zip"), tmp_path / "m.zip", sha256=DIGEST)
        assert server.ranges_asked("/m.zip") == [None, "bytes=1234-"]
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip"], "no .part, no record left"


def test_a_partial_file_without_its_record_is_not_resumed(tmp_path: Path) -> None:
    """Nothing says whose bytes a bare .part file holds (an older deepij, another tool): start over."""
    (tmp_path / "m.zip.part").write_bytes(b"x" * 1000)
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        path = download(server.url("/m.zip"), tmp_path / "m.zip", sha256=DIGEST)
        assert server.ranges_asked("/m.zip") == [None]
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


# --- completeness, caps, leftovers ----------------------------------------------------------------------


def _zip_bytes(tmp_path: Path) -> bytes:
    archive = tmp_path / "source.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("rdf.yaml", "name: x\n")
        zf.writestr("weights.pt", PAYLOAD[:200_000])
    return archive.read_bytes()


def test_a_whole_body_without_a_length_is_kept(tmp_path: Path) -> None:
    data = _zip_bytes(tmp_path)
    with LocalServer({"/m.zip": data}) as server:
        server.no_length("/m.zip")
        path = download(server.url("/m.zip"), tmp_path / "m.zip")
    assert path.read_bytes() == data


def test_a_truncated_body_without_a_length_is_not_kept(tmp_path: Path) -> None:
    data = _zip_bytes(tmp_path)
    with LocalServer({"/m.zip": data}) as server:
        server.no_length("/m.zip")
        server.drop_after("/m.zip", len(data) // 2, times=10)
        with pytest.raises(DownloadError, match="not a complete file") as caught:
            download(server.url("/m.zip"), tmp_path / "m.zip", retries=2)
        assert len(server.requests) == 3  # each attempt starts over: there is no length to resume against
    assert caught.value.file == server.url("/m.zip")
    assert list(tmp_path.iterdir()) == [tmp_path / "source.zip"], "nothing left: no .part, no file"


def test_a_truncated_body_without_a_length_is_retried(tmp_path: Path) -> None:
    data = _zip_bytes(tmp_path)
    with LocalServer({"/m.zip": data}) as server:
        server.no_length("/m.zip")
        server.drop_after("/m.zip", 1000, times=1)
        path = download(server.url("/m.zip"), tmp_path / "m.zip")
    assert path.read_bytes() == data


def test_a_sha256_decides_without_a_length(tmp_path: Path) -> None:
    with LocalServer({"/w.pt": PAYLOAD}) as server:
        server.no_length("/w.pt")
        server.drop_after("/w.pt", 5000, times=1)
        with pytest.raises(ChecksumError):
            download(server.url("/w.pt"), tmp_path / "w.pt", sha256=DIGEST, retries=0)
        assert not (tmp_path / "w.pt").exists() and not (tmp_path / "w.pt.part").exists()
        assert download(server.url("/w.pt"), tmp_path / "w.pt", sha256=DIGEST).read_bytes() == PAYLOAD


def test_an_endless_body_stops_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalServer({"/m.zip": b""}, endless_limit=64 << 20) as server:
        server.endless("/m.zip")
        with pytest.raises(DownloadError, match="larger than the limit") as caught:
            download(server.url("/m.zip"), tmp_path / "m.zip", max_bytes=2 << 20)
        assert caught.value.found == f"more than {2 << 20} bytes"
        monkeypatch.setenv("DEEPIJ_DOWNLOAD_MAX_BYTES", "1MiB")
        with pytest.raises(DownloadError, match="larger than the limit"):
            download(server.url("/m.zip"), tmp_path / "m.zip")
    assert list(tmp_path.iterdir()) == []


def test_a_declared_length_over_the_cap_is_refused_before_downloading(tmp_path: Path) -> None:
    with (
        LocalServer({"/m.zip": PAYLOAD}) as server,
        pytest.raises(DownloadError, match="larger than the download limit") as caught,
    ):
        download(server.url("/m.zip"), tmp_path / "m.zip", max_bytes=1000)
    assert caught.value.found == f"{len(PAYLOAD)} bytes"
    assert list(tmp_path.iterdir()) == []


def test_an_empty_body_without_a_length(tmp_path: Path) -> None:
    with LocalServer({"/w.pt": b""}) as server:
        server.no_length("/w.pt")
        with pytest.raises(DownloadError, match="empty body"):
            download(server.url("/w.pt"), tmp_path / "w.pt", retries=0)
    assert list(tmp_path.iterdir()) == []


def test_a_destination_that_cannot_be_replaced(tmp_path: Path) -> None:
    (tmp_path / "m.zip").mkdir()  # a folder where the file should go
    (tmp_path / "m.zip" / "x").write_text("x")
    with (
        LocalServer({"/m.zip": PAYLOAD}) as server,
        pytest.raises(DownloadError, match="cannot put the download in place") as caught,
    ):
        download(server.url("/m.zip"), tmp_path / "m.zip")
    assert caught.value.file == str(tmp_path / "m.zip")
    assert not (tmp_path / "m.zip.part").exists()


@pytest.mark.parametrize("tail", ["/..", "/.", "/a/..", "/%2e%2e"])
def test_a_url_naming_a_folder(tail: str) -> None:
    url = f"http://127.0.0.1:9{tail}"
    with pytest.raises(DownloadError, match="names a folder") as caught:
        url_file_name(url)
    assert caught.value.file == url


def test_url_file_names_are_safe() -> None:
    assert url_file_name("https://x.org/files/model.zip/content") == "content"
    assert url_file_name("https://x.org/.hidden.zip") == "hidden.zip"
    assert url_file_name("https://x.org/a%2F..%2Fb.zip") == "a_.._b.zip"
    assert "/" not in url_file_name("https://x.org/%2Fetc%2Fpasswd")


# --- resuming after the server went away, and when the file changed -------------------------------------


def _record(tmp_path: Path, name: str = "m.zip") -> dict:
    return json.loads((tmp_path / f"{name}.part.json").read_text())


def _interrupted(server: LocalServer, tmp_path: Path, n_bytes: int = 500_000) -> None:
    """A first download that stops after ``n_bytes`` (connection dropped), its partial file kept."""
    server.drop_after("/m.zip", n_bytes)
    with pytest.raises(DownloadError, match="run again to resume"):
        download(server.url("/m.zip"), tmp_path / "m.zip", retries=0)
    assert (tmp_path / "m.zip.part").stat().st_size == n_bytes


def test_a_server_that_goes_away_mid_download_keeps_the_partial_download(tmp_path: Path) -> None:
    etag, modified = validators(PAYLOAD)
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        server.drop_after("/m.zip", 500_000, go_away=True)  # the prefix, then the server is gone
        with pytest.raises(DownloadError, match="cannot reach the server") as caught:
            download(server.url("/m.zip"), tmp_path / "m.zip", retries=2)
        assert "m.zip.part: run again to resume" in str(caught.value)
        assert len(server.requests) == 1, "the retries found nobody listening"
        assert (tmp_path / "m.zip.part").stat().st_size == 500_000
        record = _record(tmp_path)
        assert record == {
            "url": server.url("/m.zip"),
            "length": len(PAYLOAD),
            "etag": etag,
            "last_modified": modified,
        }
        server.come_back()
        path = download(server.url("/m.zip"), tmp_path / "m.zip", sha256=DIGEST)
        assert server.ranges_asked("/m.zip") == [None, "bytes=500000-"]
        assert server.if_ranges_asked("/m.zip") == [None, etag]
        assert [r.status for r in server.requests] == [200, 206]
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip"]


def test_a_server_out_of_reach_on_a_later_call_keeps_the_partial_download(tmp_path: Path) -> None:
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        _interrupted(server, tmp_path)
        server.stop()
        with pytest.raises(DownloadError, match="run again to resume"):
            download(server.url("/m.zip"), tmp_path / "m.zip", retries=1)
        assert (tmp_path / "m.zip.part").stat().st_size == 500_000, "kept, not deleted"
        server.come_back()
        assert download(server.url("/m.zip"), tmp_path / "m.zip", sha256=DIGEST).read_bytes() == PAYLOAD
        assert server.ranges_asked("/m.zip") == [None, "bytes=500000-"]


def test_a_server_error_while_resuming_keeps_the_partial_download(tmp_path: Path) -> None:
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        _interrupted(server, tmp_path)
        server.fail_with("/m.zip", 503)
        with pytest.raises(DownloadError, match=r"HTTP 503 .*run again to resume"):
            download(server.url("/m.zip"), tmp_path / "m.zip", retries=1)
        assert (tmp_path / "m.zip.part").stat().st_size == 500_000
        server.behaviour("/m.zip").status = None
        assert download(server.url("/m.zip"), tmp_path / "m.zip", sha256=DIGEST).read_bytes() == PAYLOAD
        assert server.ranges_asked("/m.zip")[-1] == "bytes=500000-"


def test_a_file_gone_from_the_server_ends_the_partial_download(tmp_path: Path) -> None:
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        _interrupted(server, tmp_path)
        del server.files["/m.zip"]
        with pytest.raises(DownloadError, match="HTTP 404"):
            download(server.url("/m.zip"), tmp_path / "m.zip")
    assert list(tmp_path.iterdir()) == []


CHANGED = os.urandom(len(PAYLOAD) + 1000)


def test_a_file_changed_on_the_server_is_downloaded_whole(tmp_path: Path) -> None:
    """The server honours If-Range: the old ETag no longer matches, so it sends the new file whole."""
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        _interrupted(server, tmp_path)
        server.files["/m.zip"] = CHANGED
        path = download(server.url("/m.zip"), tmp_path / "m.zip", sha256=hashlib.sha256(CHANGED).hexdigest())
        assert server.ranges_asked("/m.zip") == [None, "bytes=500000-"]
        assert server.if_ranges_asked("/m.zip")[1] == validators(PAYLOAD)[0]
        assert [r.status for r in server.requests] == [200, 200], "the If-Range no longer matched"
    assert path.read_bytes() == CHANGED


@pytest.mark.parametrize("same_length", [False, True])
def test_a_changed_file_from_a_server_that_ignores_if_range(tmp_path: Path, same_length: bool) -> None:
    """The server sends the asked range of the NEW file (206): its ETag (or length) tells, and the
    download starts over at once instead of gluing two files together."""
    changed = CHANGED[: len(PAYLOAD)] if same_length else CHANGED
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        _interrupted(server, tmp_path)
        server.files["/m.zip"] = changed
        server.ignore_if_range("/m.zip")
        path = download(server.url("/m.zip"), tmp_path / "m.zip", retries=0)
        assert server.ranges_asked("/m.zip") == [None, "bytes=500000-", None]
    assert path.read_bytes() == changed


def test_without_validators_a_partial_download_resumes_on_its_length(tmp_path: Path) -> None:
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        server.no_validators("/m.zip")
        _interrupted(server, tmp_path)
        assert _record(tmp_path)["etag"] is None and _record(tmp_path)["last_modified"] is None
        path = download(server.url("/m.zip"), tmp_path / "m.zip", sha256=DIGEST)
        assert server.ranges_asked("/m.zip") == [None, "bytes=500000-"]
        assert server.if_ranges_asked("/m.zip") == [None, None]
    assert path.read_bytes() == PAYLOAD


def test_a_resumed_download_that_does_not_match_its_sha256_is_deleted(tmp_path: Path) -> None:
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        _interrupted(server, tmp_path)
        with pytest.raises(ChecksumError):
            download(server.url("/m.zip"), tmp_path / "m.zip", sha256="0" * 64)
        assert server.ranges_asked("/m.zip") == [None, "bytes=500000-"]
    assert list(tmp_path.iterdir()) == []


def test_a_partial_download_of_another_url_is_not_resumed(tmp_path: Path) -> None:
    with LocalServer({"/m.zip": PAYLOAD, "/other/m.zip": CHANGED}) as server:
        _interrupted(server, tmp_path)
        path = download(server.url("/other/m.zip"), tmp_path / "m.zip")
        assert server.ranges_asked("/other/m.zip") == [None]
    assert path.read_bytes() == CHANGED


def test_a_range_the_server_refuses_starts_over_at_once(tmp_path: Path) -> None:
    """A record whose length is larger than the file now (416 for the asked range): one full request more,
    within the same attempt."""
    etag, modified = validators(PAYLOAD)
    with LocalServer({"/m.zip": PAYLOAD}) as server:
        url = server.url("/m.zip")
        (tmp_path / "m.zip.part").write_bytes(b"x" * (len(PAYLOAD) + 10))
        record = {"url": url, "length": len(PAYLOAD) + 20, "etag": etag, "last_modified": modified}
        (tmp_path / "m.zip.part.json").write_text(json.dumps(record))
        path = download(url, tmp_path / "m.zip", sha256=DIGEST, retries=0)
        assert server.ranges_asked("/m.zip") == [f"bytes={len(PAYLOAD) + 10}-", None]
    assert path.read_bytes() == PAYLOAD
