"""Running a model over a folder: image by image, a bad image reported and skipped, every file written
atomically, and a run that was stopped (even by ``kill -9``) resumed where it was, by one process or by
several at once (``deepij run`` twice, cluster array jobs, Dask workers) on one output folder.

How an interrupted run is never left half-written, and a resumed one trusts only what it can check:

- every output file is written under a temporary name of its process and renamed into place
  (:meth:`Prediction.save`); only temporaries whose process is provably gone (this host, pid not running)
  are ever removed (:func:`deepij.files.remove_orphaned_temporaries`);
- each image's outputs are named by one rule (:mod:`deepij.pipeline.output_names`): unique in the run and
  the same on every run; an output that would replace an input, or another image's output, fails that image
  with a message naming both;
- while an image is written, its lock ``.deepij-batch/<image>.lock`` is held
  (:func:`deepij.files.exclusive_lock`): a second process on the same image reports it busy, naming the
  process that has it, and writes nothing;
- when all outputs of an image are in place, its record ``.deepij-batch/<image>.json`` is written the same
  way, LAST: what made them (bundle, weights, options) and what they are (size, sha256), see
  :mod:`deepij.pipeline.run_records`;
- ``resume=True`` skips exactly the images whose record checks out; every other image runs again, its
  outputs replaced, and the summary says why (another bundle, changed options, an output changed...).

Examples
--------
>>> model = deepij.load("bundles/unet2d")                                       # doctest: +SKIP
>>> report = run_batch(model, "images/", "out/", resume=True, tile=256)        # doctest: +SKIP
>>> print(report.summary())                                                     # doctest: +SKIP
image     status   seconds  outputs / error
a.tif     done     0.41     a_output.tif
b.tif     failed   0.02     InputError: b.tif: not an image (...)
2 images: 1 done, 0 already done, 1 failed
>>> report.exit_code                                                            # doctest: +SKIP
1
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import ArgumentError
from deepij.files import (
    exclusive_lock,
    remove_abandoned_lock,
    remove_orphaned_temporaries,
    writable_folder,
    write_atomically,  # noqa: F401  (deepij.trust.figures imports it from here)
)
from deepij.pipeline.batch_report import BatchReport, ImageOutcome, Status, progress_bar, tell
from deepij.pipeline.output_names import claim_names, protected_inputs, unique_stems
from deepij.pipeline.run_records import check_record, made_by, write_record

if TYPE_CHECKING:
    from deepij.pipeline.model import Model
    from deepij.pipeline.outputs import Prediction

__all__ = [
    "IMAGE_SUFFIXES", "MARKERS", "BatchReport", "ImageJob", "ImageOutcome", "Status", "claim_names",
    "earlier_outcome", "image_files", "output_prefixes", "progress_bar", "protected_inputs",
    "remove_leftovers", "run_batch", "run_one_image", "start_batch", "tell",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".npy")
"""The files of a folder that are images to run on (case-insensitive)."""
MARKERS = ".deepij-batch"
"""The folder (inside the output folder) of the per-image completion records and locks."""

def image_files(path: str | Path) -> list[Path]:
    """The images to run on: the file itself, or a folder's image files (not hidden), sorted by name.

    Raises
    ------
    ArgumentError
        The path does not exist, or the folder holds no image file.

    Examples
    --------
    >>> image_files("images/")  # doctest: +SKIP
    [PosixPath('images/a.tif'), PosixPath('images/b.tif')]
    """
    source = Path(path).expanduser()
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise ArgumentError(f"input: {str(source)!r} does not exist (expected an image file or a folder)")
    files = sorted(
        (p for p in source.iterdir() if p.is_file() and not p.name.startswith(".") and _is_image(p)),
        key=lambda p: p.name,
    )
    if not files:
        raise ArgumentError(
            f"input: folder {str(source)!r} holds no image file (expected files ending in "
            f"{', '.join(IMAGE_SUFFIXES)})"
        )
    return files


def _is_image(path: Path) -> bool:
    return path.name.lower().endswith(IMAGE_SUFFIXES)


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


def run_batch(
    model: Model,
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    resume: bool = False,
    progress: bool | None = None,
    on_image: Callable[[ImageOutcome], None] | None = None,
    overlap_stages: bool = True,
    **predict_options: Any,
) -> BatchReport:
    """Run ``model`` on each image and save its outputs into ``output``.

    Parameters
    ----------
    model : Model
        A loaded model (``deepij.load(bundle)``); its network stays loaded for the whole batch.
    inputs : path or sequence of paths
        An image file, a folder (its image files, see :func:`image_files`) or a list of files.
    output : path
        The output folder (created). Each image's outputs are named after it (:func:`output_prefixes`,
        then :meth:`Prediction.save`).
    resume : bool
        Skip the images an earlier run finished: their record is there and checks out (same image, bundle,
        weights and options; every output there as written). The others run again, with the reason in
        the summary.
    progress : bool, optional
        Show a progress bar (tqdm); default: when standard error is a terminal.
    on_image : callable, optional
        Called with each :class:`ImageOutcome` as soon as it is known.
    overlap_stages : bool
        Overlap the images' stages (:mod:`deepij.pipeline.batch_overlap`: the next image read and
        pre-processed while the network runs, the previous one post-processed and written), with the same
        files, records and outcomes in the same order; False runs one image after the other. Either way
        the network loads while ImageJ starts when the bundle's steps need it.
    **predict_options
        Passed to :meth:`Model.predict` (``tile=``, ``device=``, ``processing=``...).

    Returns
    -------
    BatchReport
        One outcome per image; a failed image does not stop the others.

    Raises
    ------
    ArgumentError
        No input image, inputs whose outputs would have the same names, or an output folder that cannot
        be made or written.
    """
    from deepij.pipeline.warm_start import load_beside_imagej

    jobs, folder = start_batch(model, inputs, output, predict_options)
    load_beside_imagej(model, predict_options)
    outcomes = []
    claimed: dict[str, Path] = {}
    with progress_bar(len(jobs), progress) as advance:
        if overlap_stages and len(jobs) > 1:
            from deepij.pipeline.batch_overlap import run_overlapped

            earlier = (lambda job: earlier_outcome(job, model)) if resume else None
            outcomes = run_overlapped(model, jobs, predict_options, claimed, earlier,
                                      lambda outcome: tell(outcome, on_image, advance))
            return BatchReport(outcomes, folder)
        for planned in jobs:
            outcome, job = earlier_outcome(planned, model) if resume else (None, planned)
            if outcome is None:
                outcome = run_one_image(model, job, predict_options, claimed)
            else:
                claimed.update({p.name.casefold(): job.source for p in outcome.outputs})
            outcomes.append(outcome)
            tell(outcome, on_image, advance)
    return BatchReport(outcomes, folder)


def start_batch(
    model: Model, inputs: str | Path | Sequence[str | Path], output: str | Path, options: Mapping[str, Any]
) -> tuple[list[ImageJob], Path]:
    """(one job per image, the output folder made ready): the folder and its records' folder made and
    checked writable, the temporaries that killed runs of this host left there removed.

    Raises
    ------
    ArgumentError
        No input image, two inputs of the same name, or an output path that is a file, lies below one, or
        cannot be written.
    """
    files = [Path(p) for p in inputs] if isinstance(inputs, Sequence) and not isinstance(inputs, str) else (
        image_files(inputs))
    if not files:
        raise ArgumentError("inputs: no image to run on (expected a file, a folder or a list of files)")
    folder = writable_folder(output, "output")
    writable_folder(folder / MARKERS, "output")
    remove_leftovers(folder)
    prefixes = output_prefixes(files)
    made = made_by(model, options)
    protected = protected_inputs(files, folder)
    return [ImageJob(f, folder, prefixes[f], made, protected) for f in files], folder


def output_prefixes(files: Sequence[Path]) -> dict[Path, str]:
    """The name each image's outputs start with: its name without extension, made unique and the same on
    every run by :func:`deepij.pipeline.output_names.unique_stems` (``a.tif`` and ``a.png``: ``a_tif`` and
    ``a_png``; ``well#1.tif`` and ``well_1.tif``: a short hash of each name).

    Raises
    ------
    ArgumentError
        Two files of the same name (from two folders): their outputs would have the same names.

    Examples
    --------
    >>> output_prefixes([Path("a.tif"), Path("a.png"), Path("b.ome.tif")])
    {PosixPath('a.tif'): 'a_tif', PosixPath('a.png'): 'a_png', PosixPath('b.ome.tif'): 'b'}
    """
    by_name: dict[str, list[Path]] = {}
    for path in files:
        by_name.setdefault(path.name, []).append(path)
    for name, paths in by_name.items():
        if len(paths) > 1:
            raise ArgumentError(
                f"inputs: {name!r} is given {len(paths)} times ({', '.join(map(str, paths))}); their outputs "
                "would have the same names (expected files with distinct names: run each folder into its own "
                "output folder)"
            )
    stems = unique_stems(by_name, extensions=IMAGE_SUFFIXES, fallback="image")
    return {path: stems[path.name] for path in files}


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


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove what killed runs left in ``folder`` and its records' folder: temporaries whose process is
    provably gone (:func:`deepij.files.remove_orphaned_temporaries`) and image locks nobody holds; another
    live process's in-flight files and locks, or the temporaries of a process on another host, stay."""
    removed = [*remove_orphaned_temporaries(folder), *remove_orphaned_temporaries(folder / MARKERS)]
    removed += [lock for lock in sorted((folder / MARKERS).glob("*.lock")) if remove_abandoned_lock(lock)]
    return removed
