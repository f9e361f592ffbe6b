"""Running a model over a folder: image by image, a bad image reported and skipped, every file written
atomically, and a run that was stopped (even by ``kill -9``) resumed where it was.

How an interrupted run is never left half-written:

- every output file is written under a temporary name and renamed into place (:meth:`Prediction.save`);
- when all outputs of an image are in place, a completion marker ``.deepij-batch/<image>.json`` is written
  the same way, LAST. It records the source file (size, modification time) and the outputs;
- ``resume=True`` skips exactly the images whose marker is there, matches the source and lists outputs that
  all exist; every other image is run again, its outputs replaced. Temporary files a killed run left behind
  (hidden ``*.partial`` / ``*.tmp`` files) are removed first.

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

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from deepij.errors import ArgumentError
from deepij.files import PARTIAL_SUFFIX, write_atomically

if TYPE_CHECKING:
    from deepij.pipeline.model import Model

IMAGE_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".npy")
"""The files of a folder that are images to run on (case-insensitive)."""
MARKERS = ".deepij-batch"
"""The folder (inside the output folder) of the per-image completion markers."""
_TEMPORARY = (PARTIAL_SUFFIX, ".tmp")

Status = Literal["done", "already done", "failed"]


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


@dataclass
class ImageOutcome:
    """What happened to one image of a batch."""

    source: Path
    status: Status
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)


@dataclass
class BatchReport:
    """What :func:`run_batch` did, image by image.

    Attributes
    ----------
    outcomes : list of ImageOutcome
        One per input image, in order.
    output : Path
        The output folder.
    """

    outcomes: list[ImageOutcome]
    output: Path

    @property
    def failed(self) -> list[ImageOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every image is done, 1 when some failed (the command's exit status)."""
        return 1 if self.failed else 0

    def table(self) -> Any:
        """The outcomes as a pandas DataFrame (image, status, seconds, outputs, error)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "image": [o.source.name for o in self.outcomes],
                "status": [o.status for o in self.outcomes],
                "seconds": [round(o.seconds, 3) for o in self.outcomes],
                "outputs": [" ".join(p.name for p in o.outputs) for o in self.outcomes],
                "error": [o.error or "" for o in self.outcomes],
            }
        )

    def summary(self) -> str:
        """A table for people: one line per image, then the counts."""
        rows = [("image", "status", "seconds", "outputs / error")]
        for o in self.outcomes:
            detail = o.error.splitlines()[0] if o.error else " ".join(p.name for p in o.outputs)
            rows.append((o.source.name, o.status, f"{o.seconds:.2f}", detail or ""))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
        counts = {s: sum(o.status == s for o in self.outcomes) for s in ("done", "already done", "failed")}
        lines.append(
            f"{len(self.outcomes)} images: {counts['done']} done, {counts['already done']} already done, "
            f"{counts['failed']} failed"
        )
        return "\n".join(lines)


def run_batch(
    model: Model,
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    resume: bool = False,
    progress: bool | None = None,
    on_image: Callable[[ImageOutcome], None] | None = None,
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
        The output folder (created). Each image's outputs are named after it
        (:meth:`Prediction.save` with the image's name without extension as prefix).
    resume : bool
        Skip the images an earlier run finished (their completion marker is there and matches).
    progress : bool, optional
        Show a progress bar (tqdm); default: when standard error is a terminal.
    on_image : callable, optional
        Called with each :class:`ImageOutcome` as soon as it is known.
    **predict_options
        Passed to :meth:`Model.predict` (``tile=``, ``device=``, ``processing=``...).

    Returns
    -------
    BatchReport
        One outcome per image; a failed image does not stop the others.

    Raises
    ------
    ArgumentError
        No input image, or an output folder that cannot be made.
    """
    files, folder, prefixes = start_batch(inputs, output)
    outcomes = []
    with progress_bar(len(files), progress) as advance:
        for source in files:
            prefix = prefixes[source]
            outcome = earlier_outcome(source, folder, prefix) if resume else None
            if outcome is None:
                outcome = run_one_image(model, source, folder, prefix, predict_options)
            outcomes.append(outcome)
            tell(outcome, on_image, advance)
    return BatchReport(outcomes, folder)


def start_batch(
    inputs: str | Path | Sequence[str | Path], output: str | Path
) -> tuple[list[Path], Path, dict[Path, str]]:
    """(the images to run on, the output folder made ready, each image's output prefix): the folder and
    its completion markers' folder made, the temporary files a killed run left there removed.

    Raises
    ------
    ArgumentError
        No input image, or an output path that is a file.
    """
    files = [Path(p) for p in inputs] if isinstance(inputs, Sequence) and not isinstance(inputs, str) else (
        image_files(inputs))
    if not files:
        raise ArgumentError("inputs: no image to run on (expected a file, a folder or a list of files)")
    folder = Path(output).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ArgumentError(f"output: {str(folder)!r} is a file (expected a folder)")
    (folder / MARKERS).mkdir(parents=True, exist_ok=True)
    remove_leftovers(folder)
    return files, folder, output_prefixes(files)


def tell(
    outcome: ImageOutcome,
    on_image: Callable[[ImageOutcome], None] | None,
    advance: Callable[[str, str], None],
) -> None:
    """Make an image's outcome known: to ``on_image`` and to the progress bar (:func:`progress_bar`)."""
    if on_image is not None:
        on_image(outcome)
    advance(outcome.source.name, outcome.status)


def output_prefixes(files: Sequence[Path]) -> dict[Path, str]:
    """The name each image's outputs start with: its name without extension, or, when two images share
    it (``a.tif`` and ``a.png``), its whole name with dots made underscores.

    Examples
    --------
    >>> output_prefixes([Path("a.tif"), Path("a.png"), Path("b.ome.tif")])
    {PosixPath('a.tif'): 'a_tif', PosixPath('a.png'): 'a_png', PosixPath('b.ome.tif'): 'b'}
    """
    stems = {f: _stem(f) for f in files}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    return {f: (stem if counts[stem] == 1 else f.name.replace(".", "_")) for f, stem in stems.items()}


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def run_one_image(
    model: Model, source: Path, folder: Path, prefix: str, options: Mapping[str, Any]
) -> ImageOutcome:
    """Run ``model`` on one image and save its outputs into ``folder`` under ``prefix``, the completion
    marker written last; a failure is the outcome (its message and exception), never raised."""
    started = time.perf_counter()
    marker = folder / MARKERS / f"{prefix}.json"
    marker.unlink(missing_ok=True)  # the image is redone: an old marker must not vouch for new files
    try:
        prediction = model.predict(source, **options)
        written = [Path(p) for p in prediction.save(folder, prefix=prefix)]
    except Exception as error:  # one bad image is reported and the batch goes on
        message = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
        return ImageOutcome(source, "failed", time.perf_counter() - started, error=message, exception=error)
    _write_marker(marker, source, folder, written)
    return ImageOutcome(source, "done", time.perf_counter() - started, outputs=written)


def earlier_outcome(source: Path, folder: Path, prefix: str) -> ImageOutcome | None:
    """The outcome of an image an earlier run completed, or None when it must run (again)."""
    marker = folder / MARKERS / f"{prefix}.json"
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        outputs = [folder / name for name in record["outputs"]]
        same_source = record["source"] == _source_record(source)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not same_source or not all(p.is_file() for p in outputs):
        return None
    return ImageOutcome(source, "already done", 0.0, outputs=outputs)


def _source_record(source: Path) -> dict[str, Any]:
    stat = source.stat()
    return {"name": source.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_marker(marker: Path, source: Path, folder: Path, outputs: Sequence[Path]) -> None:
    record = {
        "source": _source_record(source),
        "outputs": [str(p.resolve().relative_to(folder.resolve())) for p in outputs],
    }
    write_atomically(marker, json.dumps(record, indent=1), sync=True)  # the record that says an image is done


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove the temporary files a killed run left in ``folder`` (hidden files ending in ``.partial`` or
    ``.tmp``: what an atomic write makes before its rename)."""
    removed = []
    for directory in (folder, folder / MARKERS):
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if path.is_file() and path.name.startswith(".") and path.name.endswith(_TEMPORARY):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


@contextlib.contextmanager
def progress_bar(total: int, show: bool | None) -> Iterator[Callable[[str, str], None]]:
    """``advance(name, status)`` for each image: a tqdm bar on a terminal, nothing otherwise."""
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        yield lambda name, status: None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, unit="image", file=sys.stderr, dynamic_ncols=True)
    failed = 0

    def advance(name: str, status: str) -> None:
        nonlocal failed
        failed += status == "failed"
        bar.set_postfix_str(f"{name}: {status}" + (f", {failed} failed" if failed else ""), refresh=False)
        bar.update(1)

    try:
        yield advance
    finally:
        bar.close()
