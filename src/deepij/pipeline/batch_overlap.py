"""A folder's images with their stages overlapped: while the network runs on one image, the next one is read
and goes through its ImageJ pre-processing, the one before through its post-processing, and the one before
that is written.

Each stage mostly waits on something other than Python (ImageJ's thread in the JVM, the engine's threads,
the disk), so the two cores stay busy: :data:`IMAGES_AHEAD` images are predicted at once on worker threads
(reading, ImageJ steps, network, post-processing), and this thread writes them, one after the other, in
input order. The images take turns in the network (:attr:`Model.network_turn`: one pass at a time, with
every core; loading and memory planning measured alone) and ImageJ runs one macro at a time on its own
thread, cleaned between runs (:meth:`Session.run_macro`), so each image's steps see what they would see in a
sequential run. What stays as in :func:`deepij.pipeline.batch.run_batch`'s sequential path:

- results: each image's prediction is computed by the same :meth:`Model.predict` (tests compare the files);
- order: names are claimed, files written and outcomes reported in input order, one image at a time;
- safety: an image's lock is taken before its prediction and released after its record (the lock is held
  by this process, whichever thread started it), every file is written atomically, records last;
- errors: an image that fails is that image's outcome, at its place in the order;
- memory: at most :data:`IMAGES_AHEAD` images in prediction and one being written (the memory planner
  sees the neighbours' arrays as memory in use: a run whose tiles are sized by the memory left can choose
  smaller ones than one image at a time would, where memory is that tight);
- stopping: Ctrl-C (KeyboardInterrupt here) cancels the images not started, lets the ones in prediction end
  and writes none of them (their locks released), then goes on as a KeyboardInterrupt; ``kill`` and
  ``kill -9`` leave what they always left (temporaries that the next run removes, no half-written file).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.files import exclusive_lock
from deepij.pipeline.batch_report import ImageOutcome

if TYPE_CHECKING:
    from deepij.pipeline.batch_image import ImageJob
    from deepij.pipeline.model import Model
    from deepij.pipeline.outputs import Prediction

IMAGES_AHEAD = 2
"""Images predicted at once besides the one being written: one in the network, one in its reading and
ImageJ steps."""


@dataclass
class _Predicted:
    """One image's prediction (or why it has none), its lock still held until it is written."""

    job: ImageJob
    started: float
    prediction: Prediction | None = None
    error: BaseException | None = None
    held: ExitStack = field(default_factory=ExitStack)


def run_overlapped(
    model: Model,
    jobs: Sequence[ImageJob],
    options: Mapping[str, Any],
    claimed: dict[str, Path],
    earlier: Callable[[ImageJob], tuple[ImageOutcome | None, ImageJob]] | None,
    report: Callable[[ImageOutcome], None],
) -> list[ImageOutcome]:
    """Each job's outcome, in order, computed as the module notes say.

    Parameters
    ----------
    model, jobs, options
        As :func:`deepij.pipeline.batch.run_one_image` takes them.
    claimed : dict
        The output names (case-folded) of the run's images so far, by image; filled in input order.
    earlier : callable, optional
        ``resume=True``: :func:`deepij.pipeline.batch.earlier_outcome` (asked in order, before the image
        would start).
    report : callable
        Called with each outcome, in input order, as soon as it is known.
    """
    stopping = threading.Event()
    waiting: deque[tuple[ImageJob, ImageOutcome | Future[_Predicted]]] = deque()
    upcoming = iter(jobs)
    outcomes: list[ImageOutcome] = []
    with ThreadPoolExecutor(IMAGES_AHEAD, thread_name_prefix="deepij-image") as pool:
        try:
            while _fill(waiting, upcoming, earlier, lambda job: pool.submit(
                    _predict, model, job, options, stopping)):
                job, item = waiting.popleft()
                if isinstance(item, ImageOutcome):  # done by an earlier run: its names are taken
                    claimed.update({p.name.casefold(): job.source for p in item.outputs})
                    outcome = item
                else:
                    outcome = _write(model, item.result(), claimed)
                outcomes.append(outcome)
                report(outcome)
        except BaseException:
            stopping.set()  # the images in prediction end without writing, their locks released
            for _, item in waiting:
                if isinstance(item, Future) and not item.cancel():
                    item.add_done_callback(lambda done: done.result().held.close())
            raise
    return outcomes


def _fill(
    waiting: deque[tuple[ImageJob, ImageOutcome | Future[_Predicted]]],
    upcoming: Iterator[ImageJob],
    earlier: Callable[[ImageJob], tuple[ImageOutcome | None, ImageJob]] | None,
    start: Callable[[ImageJob], Future[_Predicted]],
) -> bool:
    """Start images until :data:`IMAGES_AHEAD` are in prediction (those an earlier run finished join the
    queue as they are); whether any image is waiting."""
    while sum(isinstance(item, Future) for _, item in waiting) < IMAGES_AHEAD:
        planned = next(upcoming, None)
        if planned is None:
            break
        outcome, job = earlier(planned) if earlier is not None else (None, planned)
        waiting.append((job, outcome if outcome is not None else start(job)))
    return bool(waiting)


def _predict(
    model: Model, job: ImageJob, options: Mapping[str, Any], stopping: threading.Event
) -> _Predicted:
    """On a worker thread: the image's lock taken, its old record removed, its prediction; a failure is
    kept as the image's, never raised."""
    from deepij.pipeline.batch_image import predict_image

    predicted = _Predicted(job, time.perf_counter())
    if stopping.is_set():
        return predicted
    try:
        predicted.held.enter_context(exclusive_lock(job.lock, f"image {job.source.name}"))
        predicted.prediction = predict_image(model, job, options)
    except Exception as error:  # one bad image is reported and the batch goes on
        predicted.held.close()
        predicted.error = error
        return predicted
    if stopping.is_set():
        predicted.held.close()
    return predicted


def _write(model: Model, predicted: _Predicted, claimed: dict[str, Path]) -> ImageOutcome:
    """On this thread, in input order: the image's outputs claimed and written, its record last, its lock
    released; its outcome."""
    from deepij.pipeline.batch_image import failed_outcome, write_image

    job = predicted.job
    try:
        with predicted.held:
            if predicted.error is not None:
                raise predicted.error
            assert predicted.prediction is not None
            written = write_image(model, job, predicted.prediction, claimed)
    except Exception as error:
        return failed_outcome(job, predicted.started, error)
    return ImageOutcome(
        job.source, "done", time.perf_counter() - predicted.started, outputs=written, note=job.note
    )
