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
>>> import deepij, shutil, tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> (folder / "images").mkdir()
>>> _ = shutil.copy("examples/nuclei_bundle/sample_input.tif", folder / "images" / "a.tif")
>>> _ = (folder / "images" / "b.tif").write_text("not an image")
>>> model = deepij.load("examples/nuclei_bundle")
>>> report = run_batch(model, folder / "images", folder / "out", resume=True, progress=False, tile=128)
>>> print(report.summary())  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
image  status  seconds  outputs / error
a.tif  done    ...     a_probability.tif a_labels.tif a_Results.csv
b.tif  failed  ...     InputError: image: file '.../b.tif': found text (12 bytes), which cannot be read as ...
2 images: 1 done, 0 already done, 1 failed
>>> report.exit_code
1
>>> again = run_batch(model, folder / "images", folder / "out", resume=True, progress=False, tile=128)
>>> [(outcome.source.name, outcome.status) for outcome in again.outcomes]
[('a.tif', 'already done'), ('b.tif', 'failed')]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import ArgumentError
from deepij.files import (
    remove_abandoned_lock,
    remove_orphaned_temporaries,
    writable_folder,
)
from deepij.pipeline.batch_image import MARKERS, ImageJob, earlier_outcome, run_one_image
from deepij.pipeline.batch_report import BatchReport, ImageOutcome, Status, progress_bar, tell
from deepij.pipeline.output_names import claim_names, protected_inputs, unique_stems
from deepij.pipeline.run_records import made_by

if TYPE_CHECKING:
    from deepij.pipeline.model import Model

__all__ = [
    "IMAGE_SUFFIXES", "MARKERS", "BatchReport", "ImageJob", "ImageOutcome", "Status", "claim_names",
    "earlier_outcome", "image_files", "output_prefixes", "progress_bar", "protected_inputs",
    "remove_leftovers", "run_batch", "run_one_image", "start_batch", "tell",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".npy")
"""The files of a folder that are images to run on (case-insensitive)."""
"""The folder (inside the output folder) of the per-image completion records and locks."""

def image_files(path: str | Path) -> list[Path]:
    """The images to run on: the file itself, or a folder's image files (not hidden), sorted by name.

    Raises
    ------
    ArgumentError
        The path does not exist, or the folder holds no image file.

    Examples
    --------
    >>> for path in image_files("examples/nuclei_bundle"):  # not rdf.yaml, README.md, the macros
    ...     print(path.name)
    cover.png
    exampleImage.tif
    resultImage.tif
    sample_input.tif
    sample_output.tif
    test_input.npy
    test_output.npy
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


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove what killed runs left in ``folder`` and its records' folder: temporaries whose process is
    provably gone (:func:`deepij.files.remove_orphaned_temporaries`) and image locks nobody holds; another
    live process's in-flight files and locks, or the temporaries of a process on another host, stay."""
    removed = [*remove_orphaned_temporaries(folder), *remove_orphaned_temporaries(folder / MARKERS)]
    removed += [lock for lock in sorted((folder / MARKERS).glob("*.lock")) if remove_abandoned_lock(lock)]
    return removed
