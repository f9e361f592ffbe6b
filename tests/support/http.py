"""A real HTTP server on 127.0.0.1 for download tests: serves bytes, honours ``Range``, and can misbehave.

It runs in a thread of the test process (``http.server``), on a free port. Misbehaviours, set per path:
drop the connection after some bytes (the next ``times`` requests), ignore ``Range`` (answer 200 with the
whole file), answer an HTTP error, send no ``Content-Length`` (the body ends when the connection closes:
together with ``drop_after`` a cut-short body looks complete), or send an endless body (bounded by
``endless_limit`` bytes so a test that does not stop reading still ends). Every request is recorded (path and
``Range`` header).

Examples
--------
>>> with LocalServer({"/model.zip": data}) as server:  # doctest: +SKIP
...     server.drop_after("/model.zip", 1000)  # first request stops after 1000 bytes
...     download(server.url("/model.zip"), tmp_path / "model.zip")
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class _Behaviour:
    drop_after: int | None = None
    drop_times: int = 0
    ignore_range: bool = False
    status: int | None = None
    no_length: bool = False
    endless: bool = False


@dataclass
class RecordedRequest:
    path: str
    range: str | None
    status: int


@dataclass
class LocalServer:
    """Serves ``files`` (URL path -> bytes) until closed. Use as a context manager."""

    files: dict[str, bytes]
    requests: list[RecordedRequest] = field(default_factory=list)
    endless_limit: int = 1 << 30
    _behaviours: dict[str, _Behaviour] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> LocalServer:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def url(self, path: str) -> str:
        assert self._server is not None, "start the server first (with LocalServer(...) as server)"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def behaviour(self, path: str) -> _Behaviour:
        return self._behaviours.setdefault(path, _Behaviour())

    def drop_after(self, path: str, n_bytes: int, times: int = 1) -> None:
        """The next ``times`` requests of ``path`` send ``n_bytes`` of the body, then close the connection."""
        behaviour = self.behaviour(path)
        behaviour.drop_after, behaviour.drop_times = n_bytes, times

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


def _make_handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            asked = self.headers.get("Range")
            behaviour = server.behaviour(path)
            body = server.files.get(path)
            status = behaviour.status or (200 if body is not None else 404)
            with server._lock:
                server.requests.append(RecordedRequest(path, asked, status))
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
            start, end = 0, len(body) - 1
            match = _RANGE.match(asked or "")
            if match and not behaviour.ignore_range:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(body) - 1
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
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            part = body[start : end + 1]
            with server._lock:
                drop = behaviour.drop_after if behaviour.drop_times > 0 else None
                if drop is not None:
                    behaviour.drop_times -= 1
            if drop is not None and drop < len(part):
                self.wfile.write(part[:drop])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(part)

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
