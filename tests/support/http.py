"""A real HTTP server on 127.0.0.1 for download tests: serves bytes, honours ``Range`` and ``If-Range``,
and can misbehave.

It runs in a thread of the test process (``http.server``), on a free port. Each file is served with an
``ETag`` and a ``Last-Modified`` derived from its content (they change when the content does); a ``Range``
with an ``If-Range`` that no longer matches gets the whole file (200), as RFC 9110 says. Misbehaviours, set
per path: drop the connection after some bytes (the next ``times`` requests), and then go away (stop
listening, so further requests are refused until :meth:`LocalServer.come_back`), ignore ``Range`` (answer
200 with the whole file), ignore ``If-Range`` (answer the range of whatever the file is now), send no
validators, answer an HTTP error, send no ``Content-Length`` (the body ends when the connection closes:
together with ``drop_after`` a cut-short body looks complete), or send an endless body (bounded by
``endless_limit`` bytes so a test that does not stop reading still ends). Every request is recorded (path,
``Range`` and ``If-Range`` headers).

Usage in a test (``tmp_path`` is pytest's fixture)::

    with LocalServer({"/model.zip": data}) as server:
        server.drop_after("/model.zip", 1000)  # first request stops after 1000 bytes
        download(server.url("/model.zip"), tmp_path / "model.zip")
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class _Behaviour:
    drop_after: int | None = None
    drop_times: int = 0
    go_away: bool = False
    ignore_range: bool = False
    ignore_if_range: bool = False
    no_validators: bool = False
    status: int | None = None
    no_length: bool = False
    endless: bool = False


@dataclass
class RecordedRequest:
    """A request as it came (``Range``, ``If-Range``) and the status it was answered with."""

    path: str
    range: str | None
    status: int
    if_range: str | None = None


def validators(body: bytes) -> tuple[str, str]:
    """The ``ETag`` and ``Last-Modified`` the server gives a file with this content."""
    digest = hashlib.sha256(body).hexdigest()
    return f'"{digest[:16]}"', formatdate(1_600_000_000 + int(digest[:6], 16), usegmt=True)


@dataclass
class LocalServer:
    """Serves ``files`` (URL path -> bytes) until closed. Use as a context manager."""

    files: dict[str, bytes]
    requests: list[RecordedRequest] = field(default_factory=list)
    endless_limit: int = 1 << 30
    _behaviours: dict[str, _Behaviour] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> LocalServer:
        self._listen()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), _make_handler(self))
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: connections to the port are refused (the server went away)."""
        with self._lock:
            server, thread, self._server = self._server, self._thread, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not threading.current_thread() and thread is not None:
            thread.join(timeout=5)

    def come_back(self) -> None:
        """Listen again, on the same port (the same URLs work again)."""
        assert self._server is None, "the server is listening already"
        self._listen()

    def url(self, path: str) -> str:
        assert self._port, "start the server first (with LocalServer(...) as server)"
        return f"http://127.0.0.1:{self._port}{path}"

    def behaviour(self, path: str) -> _Behaviour:
        return self._behaviours.setdefault(path, _Behaviour())

    def drop_after(self, path: str, n_bytes: int, times: int = 1, *, go_away: bool = False) -> None:
        """The next ``times`` requests of ``path`` send ``n_bytes`` of the body, then close the connection;
        with ``go_away``, the server also stops listening before the connection closes (see :meth:`stop`)."""
        behaviour = self.behaviour(path)
        behaviour.drop_after, behaviour.drop_times, behaviour.go_away = n_bytes, times, go_away

    def ignore_if_range(self, path: str) -> None:
        """Honour ``Range`` on ``path`` but not ``If-Range``: a changed file's range is sent as it is now."""
        self.behaviour(path).ignore_if_range = True

    def no_validators(self, path: str) -> None:
        """Serve ``path`` without ``ETag`` and ``Last-Modified``."""
        self.behaviour(path).no_validators = True

    def ignore_range(self, path: str) -> None:
        """Answer ``path`` with the whole file (200) even when a ``Range`` is asked."""
        self.behaviour(path).ignore_range = True

    def fail_with(self, path: str, status: int) -> None:
        """Answer ``path`` with this HTTP status and no body."""
        self.behaviour(path).status = status

    def no_length(self, path: str) -> None:
        """Answer ``path`` without ``Content-Length`` (nor ranges), closing the connection at the end."""
        behaviour = self.behaviour(path)
        behaviour.no_length = behaviour.ignore_range = True

    def endless(self, path: str) -> None:
        """Answer ``path`` with a body of zeros and no length that goes on until the client stops reading
        (or ``endless_limit`` bytes)."""
        self.behaviour(path).endless = True

    def ranges_asked(self, path: str) -> list[str | None]:
        return [r.range for r in self.requests if r.path == path]

    def if_ranges_asked(self, path: str) -> list[str | None]:
        return [r.if_range for r in self.requests if r.path == path]


def _make_handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            asked, if_range = self.headers.get("Range"), self.headers.get("If-Range")
            behaviour = server.behaviour(path)
            body = server.files.get(path)
            status = behaviour.status or (200 if body is not None else 404)
            recorded = RecordedRequest(path, asked, status, if_range)
            with server._lock:
                server.requests.append(recorded)
            if status != 200 or body is None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if behaviour.endless:
                self._send_endless()
                return
            if behaviour.no_length:
                self._send_without_length(body, behaviour)
                return
            etag, modified = validators(body)
            match = _RANGE.match(asked or "")
            still = if_range is None or if_range in (etag, modified) or behaviour.ignore_if_range
            start, end = 0, len(body) - 1
            if match and still and not behaviour.ignore_range:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(body) - 1
                recorded.status = 416 if start >= len(body) else 206
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
            else:
                self.send_response(200)
            if not behaviour.no_validators:
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", modified)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            self._send_body(body[start : end + 1], behaviour)

        def _send_body(self, part: bytes, behaviour: _Behaviour) -> None:
            drop = self._take_drop(behaviour)
            if drop is None or drop >= len(part):
                self.wfile.write(part)
                return
            self.wfile.write(part[:drop])
            self.wfile.flush()
            self.close_connection = True
            if behaviour.go_away:  # stop listening before this connection closes: retries are refused
                server.stop()

        def _take_drop(self, behaviour: _Behaviour) -> int | None:
            with server._lock:
                drop = behaviour.drop_after if behaviour.drop_times > 0 else None
                if drop is not None:
                    behaviour.drop_times -= 1
            return drop

        def _send_without_length(self, body: bytes, behaviour: _Behaviour) -> None:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            drop = self._take_drop(behaviour)
            self.wfile.write(body if drop is None else body[:drop])
            self.wfile.flush()
            self.close_connection = True

        def _send_endless(self) -> None:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = bytes(1 << 16)
            sent = 0
            try:
                while sent < server.endless_limit:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:  # the client stopped reading and closed
                pass
            self.close_connection = True

    return Handler
