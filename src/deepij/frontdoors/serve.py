"""``deepij serve``: the worker a user's own ImageJ or Fiji talks to through the deepij plugin.

The plugin (Java in ``jars/src/deepij/plugin``, installed by ``deepij plugin install``) starts one worker per
ImageJ, on first use, as ``<python> -m deepij serve --stdio``, and keeps it while ImageJ runs, so a model
stays loaded between calls. The bundle's ImageJ steps (macros, Java steps) run in the user's ImageJ; the
spec ops and the network run here. The options of ``run("DeepImageJ Run", ...)`` are passed through and read
here, by the one parser (:mod:`deepij.frontdoors.run_options`).

The channel
-----------
The worker's standard input and output, private to the two processes: no other user or program on the
machine can give it work or read its answers. (Its own ``stdout`` is moved to ``stderr`` at start, so no
library's print can reach the channel; ``stderr`` is the worker's log, which the plugin keeps the end of for
error messages.) One JSON object per line, UTF-8, both ways.

1. Worker -> plugin, first: ``{"hello": "deepij", "protocol": 1, "version": "0.1.0", "pid": 4242,
   "exchange": "/dev/shm/deepij-serve-x1y2"}``. ``exchange`` is a private folder (mode 0700) with the two
   files the pixels cross through (0600): see :mod:`deepij.frontdoors.exchange`. Pixels never travel as text.
2. Plugin -> worker: a request ``{"id": 7, "op": "plan", ...}``. The worker answers with any number of events
   ``{"id": 7, "event": "progress", "stage": "inference", "done": 3, "total": 8, "label": "tiles"}`` and
   ``{"id": 7, "event": "log", "level": "INFO", "message": "..."}``, then one answer: ``{"id": 7, "ok": true,
   ...}``, or ``{"id": 7, "ok": false, "kind": "ModelNotFoundError", "error": "model=[x]: not found..."}``.
   Requests run one at a time.
3. Plugin -> worker, at any time: ``{"op": "cancel", "id": 7}`` (Esc in ImageJ): the worker says
   ``{"id": 7, "event": "cancelling"}`` at once, and the request stops at its next progress point and answers
   ``{"ok": false, "kind": "Cancelled"}``. ``{"op": "ping", "id": 8}`` is answered at once, even while a
   request runs: ``{"id": 8, "ok": true, "busy": 7}`` (the running request's id, or null).
4. The worker ends when its standard input closes (ImageJ quit or was killed), on ``{"op": "bye"}``, or when
   its parent process is gone; it removes its folder.

The operations (:mod:`deepij.frontdoors.serve_run`, :mod:`deepij.frontdoors.serve_tools`):

- ``plan`` ``{options, imagej_dir, has_image}``: reads the options, finds and loads the model; answers the
  ImageJ steps to run in the user's ImageJ, in order (``pre``/``post``: ``{kind: "macro"|"java", file,
  class, method, config_files, where}``), the model's input names, and for 3.1's ``input_path=`` the files.
- ``predict`` ``{options, imagej_dir, title, inputs: [image]}``: the inputs (after the ImageJ pre-processing)
  are in ``to_worker``; runs the spec ops (when the bundle has no ImageJ steps) and the tiled network, writes
  the outputs into ``from_worker`` and answers them (``outputs``: images with ``name`` and ``title`` as
  deepImageJ titles them; ``tables``: columns), with the run's notes and ``timings_ms`` (reading the inputs,
  the network part, writing the outputs).
- ``models`` ``{imagej_dir}``: the models the dialog lists, with their inputs, axes, tile rules, steps and
  weights formats; ``install`` ``{source, imagej_dir, overwrite}``; ``validate`` ``{options, images}``;
  ``test`` ``{model, imagej_dir}``.
- ``instances`` ``{command, options, imagej_dir, title, inputs}``: ``run("DeepImageJ StarDist", ...)`` and
  ``run("DeepImageJ Cellpose", ...)`` on the image in to_worker (:mod:`deepij.frontdoors.serve_instances`).

Each operation is a function of the server's state (:class:`~deepij.frontdoors.serve_request.Served`: the
shared files and the loaded models) and the :class:`~deepij.frontdoors.serve_request.Request` (its fields,
progress and log events, cancel).

Examples
--------
>>> import io, json
>>> answers = io.StringIO()
>>> server = Server(lambda message: answers.write(json.dumps(message) + "\\n"))
>>> server.handle({"id": 1, "op": "no such op"})
>>> json.loads(answers.getvalue())["kind"]
'ArgumentError'
>>> server.close()
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from deepij.errors import ArgumentError, DeepijError
from deepij.frontdoors.exchange import SharedFiles
from deepij.frontdoors.serve_request import Cancelled, Request, Send

PROTOCOL = 1
_log = logging.getLogger("deepij.serve")


class Server:
    """The operations behind the channel, whatever carries it (a child's pipes, or ``deepij gui`` in process).

    Parameters
    ----------
    send : callable
        Called with each message to the plugin (events and answers), from the thread handling the request.
    files : SharedFiles, optional
        The shared files (default: new ones in a private folder).
    """

    def __init__(self, send: Send, files: SharedFiles | None = None) -> None:
        from deepij.frontdoors.deepimagej_run import DeepImageJRun

        self.send = send
        self.files = files if files is not None else SharedFiles()
        self.runs = DeepImageJRun()  # the loaded models, kept between requests
        self.current: Request | None = None
        self._lock = threading.Lock()

    def hello(self) -> dict[str, Any]:
        """The first message: who answers, and where the shared files are."""
        from deepij import __version__

        return {"hello": "deepij", "protocol": PROTOCOL, "version": __version__, "pid": os.getpid(),
                "exchange": str(self.files.folder)}

    def handle(self, message: dict[str, Any]) -> None:
        """Run one request and send its answer (never raises: failures are answers)."""
        request = Request(message, self.send)
        with self._lock:
            self.current = request
        try:
            with _forwarded_logs(request):
                answer = self._operation(str(message.get("op")))(self, request)
            self.send({"id": request.id, "ok": True, **answer})
        except Cancelled as error:
            self.send({"id": request.id, "ok": False, "kind": "Cancelled", "error": str(error)})
        except DeepijError as error:
            self.send({"id": request.id, "ok": False, "kind": type(error).__name__, "error": str(error)})
        except Exception as error:  # a bug or an unexpected failure: said, and the worker keeps serving
            _log.exception("request %s failed", message.get("op"))
            self.send({"id": request.id, "ok": False, "kind": type(error).__name__,
                       "error": f"{type(error).__name__}: {error} (a deepij bug? the worker's log has the "
                                "traceback)"})
        finally:
            with self._lock:
                self.current = None

    def cancel(self, request_id: Any) -> None:
        """Stop the running request ``request_id`` at its next progress point; says so at once (an event
        ``cancelling``) when it is the running one."""
        with self._lock:
            running = self.current if self.current is not None and self.current.id == request_id else None
            if running is not None:
                running.cancelled.set()
        if running is not None:
            self.send({"id": request_id, "event": "cancelling"})

    def close(self) -> None:
        """Release the loaded models and remove the shared files."""
        self.runs.models.clear()
        self.files.close()

    @staticmethod
    def _operation(op: str) -> Callable[[Server, Request], dict[str, Any]]:
        from deepij.frontdoors import serve_instances, serve_run, serve_tools

        operations = {**serve_run.OPERATIONS, **serve_tools.OPERATIONS, **serve_instances.OPERATIONS}
        if op not in operations:
            known = ", ".join(sorted(operations))
            raise ArgumentError(f"op={op!r}: unknown operation (expected one of {known})")
        return operations[op]


@contextlib.contextmanager
def _forwarded_logs(request: Request) -> Any:
    """deepij's log records during the request, sent to ImageJ's Log as events (at the level the run set)."""
    handler = _EventHandler(request)
    logger = logging.getLogger("deepij")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class _EventHandler(logging.Handler):
    def __init__(self, request: Request) -> None:
        super().__init__()
        self.request = request

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "deepij.serve":
            return  # the worker's own troubles go to its stderr only
        with contextlib.suppress(Exception):
            self.request.log(record.levelname, record.getMessage())


# --------------------------------------------------------------------------------------------- stdio
def serve_stdio() -> int:
    """Serve the plugin on this process's standard input and output until the input ends; exit status."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # nothing else may write into the channel
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        line = json.dumps(message, allow_nan=False, default=str) + "\n"
        with lock:
            channel.write(line.encode("utf-8"))

    server = Server(send)
    try:
        send(server.hello())
        _watch_parent(server)
        serve_lines(server, sys.stdin.buffer)
    finally:
        server.close()
    return 0


def serve_lines(server: Server, lines: Any) -> None:
    """Read requests (JSON lines, from any iterable: a pipe, or ``deepij gui``'s in-process queue) until the
    input ends: requests run on one thread, cancels and pings are answered at once."""
    import queue

    jobs: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()

    def run_jobs() -> None:
        while (job := jobs.get()) is not None:
            server.handle(job)

    runner = threading.Thread(target=run_jobs, name="deepij-serve", daemon=True)
    runner.start()
    for raw in lines:
        try:
            message = json.loads(raw)
        except ValueError:
            _log.error("not a JSON line, ignored: %r", raw[:200])
            continue
        op = message.get("op") if isinstance(message, dict) else None
        if op == "bye":
            break
        if op == "cancel":
            server.cancel(message.get("id"))
        elif op == "ping":
            running = server.current
            busy = None if running is None else running.id
            server.send({"id": message.get("id"), "ok": True, "busy": busy})
        elif isinstance(message, dict):
            jobs.put(message)
    if server.current is not None:
        server.cancel(server.current.id)
    jobs.put(None)


def _watch_parent(server: Server) -> None:
    """End the worker when the process that started it is gone (the pipe may stay open in a grandchild)."""
    parent = os.getppid()

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(1.0)
        server.files.close()
        os._exit(0)  # the parent (ImageJ) is gone: nobody waits for an answer

    threading.Thread(target=watch, name="deepij-serve-parent", daemon=True).start()
