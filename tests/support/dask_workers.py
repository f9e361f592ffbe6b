"""Helpers that run inside Dask worker processes during tests (pickled by value, so workers need not
import the tests; ``client.run`` hands them the worker): the peak resident memory of a worker, sampled by a
thread, and the worker's pid."""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def start_peak_sampler(dask_worker: Any, interval: float = 0.005) -> int:
    """Start sampling the worker process's resident memory; returns the current value."""
    import psutil

    process = psutil.Process()
    state = {"peak": process.memory_info().rss, "running": True}
    dask_worker.deepij_peak = state

    def sample() -> None:
        while state["running"]:
            state["peak"] = max(state["peak"], process.memory_info().rss)
            time.sleep(interval)

    threading.Thread(target=sample, daemon=True).start()
    return int(state["peak"])


def stop_peak_sampler(dask_worker: Any) -> int:
    """Stop sampling; the peak resident bytes seen since :func:`start_peak_sampler`."""
    state = dask_worker.deepij_peak
    state["running"] = False
    return int(state["peak"])


def pid() -> int:
    return os.getpid()
