"""One image of a folder run: what running it needs (:class:`ImageJob`), and its run - the old record
forgotten, the prediction, the outputs claimed and written atomically, the record written last - under the
image's lock (:mod:`deepij.pipeline.batch` has the whole picture).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import ArgumentError
from deepij.files import exclusive_lock
from deepij.pipeline.batch_report import ImageOutcome
from deepij.pipeline.output_names import claim_names
from deepij.pipeline.run_records import check_record, write_record

if TYPE_CHECKING:
    from deepij.pipeline.model import Model
    from deepij.pipeline.outputs import Prediction

MARKERS = ".deepij-batch"
"""The folder in the output folder that holds the images' records and locks."""


@dataclass(frozen=True)
class ImageJob:
    """One image of a batch, with what running it needs besides the model (it travels to Dask workers).

    Attributes
    ----------
    source : Path
        The image file.
    folder : Path
        The output folder.
    prefix : str
        What its output files' names start with (:func:`output_prefixes`).
    made_by : dict
        The bundle and options that make its outputs (:func:`deepij.pipeline.run_records.made_by`).
    protected : frozenset of str
        Names (case-folded) of files in the output folder that no output may replace: the run's inputs
        there.
    note : str or None
        Why it runs again although a record of it was there.
    """

    source: Path
    folder: Path
    prefix: str
    made_by: Mapping[str, Any]
    protected: frozenset[str] = frozenset()
    note: str | None = None

    @property
    def record(self) -> Path:
        return self.folder / MARKERS / f"{self.prefix}.json"

    @property
    def lock(self) -> Path:
        return self.folder / MARKERS / f"{self.prefix}.lock"


def run_one_image(
    model: Model,
    job: ImageJob,
    options: Mapping[str, Any],
    claimed: dict[str, Path] | None = None,
) -> ImageOutcome:
    """Run ``model`` on one image and save its outputs, its lock held and its record written last; a
    failure is the outcome (its message and exception), never raised.

    ``claimed``: the output names (case-folded) other images of this run wrote, by image; this image's are
    added. An output named like one of them, or like a protected input, fails the image before anything
    is written.
    """
    started = time.perf_counter()
    try:
        with exclusive_lock(job.lock, f"image {job.source.name}"):
            prediction = predict_image(model, job, options)
            written = write_image(model, job, prediction, claimed)
    except Exception as error:  # one bad image is reported and the batch goes on
        return failed_outcome(job, started, error)
    return ImageOutcome(job.source, "done", time.perf_counter() - started, outputs=written, note=job.note)


def predict_image(model: Model, job: ImageJob, options: Mapping[str, Any]) -> Prediction:
    """The first half of an image's run, its lock held: its old record removed (the image is redone: an
    old record must not vouch for new files), then its prediction."""
    _forget_record(job)
    return model.predict(job.source, **options)


def write_image(
    model: Model, job: ImageJob, prediction: Prediction, claimed: dict[str, Path] | None
) -> list[Path]:
    """The second half, its lock still held: the output names claimed, the outputs written (each
    atomically), the record last; the files written."""
    _claim(prediction.file_names(job.prefix), job, claimed)
    written = [Path(p) for p in prediction.save(job.folder, prefix=job.prefix)]
    write_record(job.record, job.source, job.folder, job.made_by, prediction, written, model.description)
    return written


def failed_outcome(job: ImageJob, started: float, error: BaseException) -> ImageOutcome:
    """The outcome of an image whose run raised ``error`` (its first line, and the exception)."""
    message = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
    return ImageOutcome(job.source, "failed", time.perf_counter() - started, error=message,
                        exception=error, note=job.note)


def _forget_record(job: ImageJob) -> None:
    """Remove the image's old record; refuse when it is another image's (the input set changed since, and
    this image's outputs would replace that one's) or a folder with something in it."""
    record = job.record
    if not os.path.lexists(record):
        return
    if record.is_dir() and not record.is_symlink():
        try:
            record.rmdir()
        except OSError:
            raise ArgumentError(
                f"record: {str(record)!r} is a folder with files in it, not a record deepij wrote "
                "(expected a record file or nothing); move it away"
            ) from None
        return
    other = _recorded_source(record)
    if other is not None and other != job.source.name:
        raise ArgumentError(
            f"output: the files {job.prefix}_* in {str(job.folder)!r} are the outputs of {other!r} (record "
            f"{str(record)!r}); {job.source.name!r} would replace them (expected one input per output name): "
            "remove those outputs and their record, or choose another output folder"
        )
    record.unlink()


def _recorded_source(record: Path) -> str | None:
    try:
        name = json.loads(record.read_text(encoding="utf-8"))["source"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not a readable record: replaced
    return name if isinstance(name, str) else None


def _claim(names: Sequence[str], job: ImageJob, claimed: dict[str, Path] | None) -> None:
    claim_names(names, job.source, job.folder, job.protected, claimed)


def earlier_outcome(job: ImageJob, model: Model) -> tuple[ImageOutcome | None, ImageJob]:
    """(the outcome of an image an earlier run completed, or None when it must run again; the job, with the
    reason it runs again as its note)."""
    verdict = check_record(job.record, job.source, job.folder, job.made_by, model.description)
    if verdict.outputs is not None:
        return ImageOutcome(job.source, "already done", 0.0, outputs=verdict.outputs), job
    return None, replace(job, note=verdict.reason)
