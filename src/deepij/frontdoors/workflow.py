"""``deepij macro WORKFLOW.ijm``: a workshop macro run unchanged, once or over each file of a folder.

Workshop macros ask for folders and numbers (``getDirectory``, ``getNumber``, ``Dialog``...) and call
``run("DeepImageJ Run", ...)``. Here the prompts are answered by their text (``answers`` /
``--answer "Choose the output folder=out/"``), models are looked up in ``models_dir`` first, and each input
file is opened as the macro's current image, as if the user had opened it in Fiji. A prompt nobody answered
stops the run with an error that quotes it and shows the ``--answer`` that would answer it.

With ``output``, what the macro leaves open is written there too: its images as ImageJ TIFFs and its tables
as CSV, named ``<input name>_<title>``, and its Log as ``<input name>_Log.txt``. What the macro prints goes
to ``on_log`` as it comes (``deepij macro`` prints it, as ``ImageJ -batch`` does).

Examples
--------
>>> report = run_workflow("segment.ijm", inputs="images/", output="out/",            # doctest: +SKIP
...                       answers={"Choose the output folder": "out/"})
>>> [o.status for o in report.outcomes]                                               # doctest: +SKIP
['done', 'done']
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import ArgumentError, ArgumentTypeError, InputError
from deepij.files import write_atomically
from deepij.pipeline.batch import BatchReport, ImageOutcome, image_files, output_prefixes

if TYPE_CHECKING:
    from deepij.imagej.session import Session


def parse_answers(pairs: Sequence[str]) -> dict[str, str]:
    """``["PROMPT=VALUE", ...]`` (the ``--answer`` arguments) as a mapping.

    The prompt ends at the first ``=`` (prompts are sentences; values are often paths).

    Examples
    --------
    >>> parse_answers(["Choose the output folder=/data/out", "Minimum size (px)=50"])
    {'Choose the output folder': '/data/out', 'Minimum size (px)': '50'}
    """
    answers: dict[str, str] = {}
    for pair in pairs:
        prompt, equals, value = pair.partition("=")
        if not equals or not prompt.strip():
            raise ArgumentError(
                f"--answer {pair!r}: expected PROMPT=VALUE, e.g. --answer \"Choose a folder=/data/out\""
            )
        answers[prompt.strip()] = value
    return answers


def run_workflow(
    macro: str | Path,
    *,
    inputs: str | Path | Sequence[str | Path] | None = None,
    output: str | Path | None = None,
    models_dir: str | Path | None = None,
    answers: Mapping[str, Any] | None = None,
    session: Session | None = None,
    timeout: float | None = None,
    on_log: Callable[[str], object] | None = None,
    on_run: Callable[[ImageOutcome], object] | None = None,
) -> BatchReport:
    """Run a workshop macro unchanged: once, or once per input file with that file as the current image.

    Parameters
    ----------
    macro : path
        The ``.ijm`` file.
    inputs : path or sequence of paths, optional
        An image file, a folder of images, or a list of files; each is opened as the current image of one run.
        None: the macro runs once, on no image (it opens its own).
    output : path, optional
        A folder for what each run leaves open (images as TIFF, tables as CSV).
    models_dir : path, optional
        Where ``run("DeepImageJ Run", "model=NAME ...")`` looks first.
    answers : mapping, optional
        Prompt text -> value, for ``getDirectory``/``getString``/``getNumber``/``Dialog`` fields.
    session : Session, optional
        Default ``deepij.imagej()``.
    timeout : float, optional
        Seconds per run; a run past it is stopped (its Python commands too, ``run("DeepImageJ Run", ...)``
        predicting) and reported as failed, and the next file runs.
    on_log : callable, optional
        Called with each line the macro writes to ImageJ's Log (``print``), while it runs: what
        ``ImageJ -batch`` prints. With ``output``, each run's Log is also written to
        ``<input name>_Log.txt`` there, line by line as it comes (what a stopped or killed run logged is
        kept).
    on_run : callable, optional
        Called with each run's :class:`~deepij.pipeline.batch.ImageOutcome` as soon as it is known.

    Returns
    -------
    BatchReport
        One outcome per run (``status`` done or failed; the ``error`` of an unanswered prompt quotes it and
        shows the ``--answer`` that answers it).

    Raises
    ------
    ArgumentError
        No such macro, or inputs that hold no image.
    """
    from deepij.frontdoors.deepimagej_run import install

    path = Path(macro).expanduser()
    if not path.is_file():
        raise ArgumentError(f"macro: {str(path)!r} does not exist (expected a .ijm macro file)")
    if answers is not None and not isinstance(answers, Mapping):
        raise ArgumentTypeError(
            f"answers: expected a mapping of prompt -> value, found {type(answers).__name__}"
        )
    files = _input_files(inputs)
    folder = Path(output).expanduser() if output is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    if session is None:
        from deepij.imagej.runtime import get_session

        session = get_session()
    handler = install(session)
    outcomes = []
    with _models_dir(handler, models_dir):
        prefixes = output_prefixes(files) if files else {}
        runs: list[Path | None] = list(files) or [None]
        for source in runs:
            outcome = _run_once(session, path, source, prefixes, folder, answers, timeout, on_log)
            outcomes.append(outcome)
            if on_run is not None:
                on_run(outcome)
    return BatchReport(outcomes, folder or Path.cwd())


def _input_files(inputs: str | Path | Sequence[str | Path] | None) -> list[Path]:
    if inputs is None:
        return []
    if isinstance(inputs, (str, Path)):
        return image_files(inputs)
    return [Path(p) for p in inputs]


@contextlib.contextmanager
def _models_dir(handler: Any, models_dir: str | Path | None) -> Iterator[None]:
    earlier = handler.models_dir
    handler.models_dir = Path(models_dir).expanduser() if models_dir is not None else earlier
    try:
        yield
    finally:
        handler.models_dir = earlier


def _run_once(
    session: Session,
    macro: Path,
    source: Path | None,
    prefixes: Mapping[Path, str],
    folder: Path | None,
    answers: Mapping[str, Any] | None,
    timeout: float | None,
    on_log: Callable[[str], object] | None = None,
) -> ImageOutcome:
    started = time.perf_counter()
    label = source if source is not None else macro
    prefix = prefixes.get(source, "") if source else macro.stem
    with _log_sink(folder, prefix, on_log) as (sink, logs):
        try:
            image = open_image(session, source) if source is not None else None
            result = session.run_macro(macro, image=image, timeout=timeout, answers=answers, on_log=sink)
            written = _save_result(session, result, folder, prefix)
        except Exception as error:  # one file that fails is reported; the others still run
            # the whole message: an unanswered prompt's error ends with the --answer that answers it
            return ImageOutcome(label, "failed", time.perf_counter() - started, outputs=logs,
                                error=f"{type(error).__name__}: {error}", exception=error)
    return ImageOutcome(label, "done", time.perf_counter() - started, outputs=[*written, *logs])


@contextlib.contextmanager
def _log_sink(folder: Path | None, prefix: str, on_log: Callable[[str], object] | None
              ) -> Iterator[tuple[Callable[[str], object] | None, list[Path]]]:
    """(where a run's Log lines go, the log files written): ``on_log``, and with an output folder
    ``<prefix>_Log.txt`` there, made at the first line and appended line by line as the lines come (what a
    stopped or killed run logged stays readable; an earlier run's file is replaced)."""
    if folder is None:
        yield on_log, []
        return
    path = folder / f"{prefix}_Log.txt"
    path.unlink(missing_ok=True)  # this run's Log, or none: never an earlier run's
    written: list[Path] = []
    stream: Any = None

    def sink(line: str) -> None:
        nonlocal stream
        if stream is None:
            stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed when the run ends
            written.append(path)
        stream.write(line + "\n")
        stream.flush()
        if on_log is not None:
            on_log(line)

    try:
        yield sink, written
    finally:
        if stream is not None:
            stream.close()


def open_image(session: Session, path: Path) -> Any:
    """An image file as ImageJ opens it (calibration, title = file name); ``.npy`` through numpy.

    The file is checked first as ``deepij run`` checks its inputs
    (:func:`~deepij.pipeline.image_files.check_image_file`): ImageJ itself opens a truncated TIFF without an
    error, the missing rows filled with zeros.

    Raises
    ------
    InputError
        The file cannot be read (the message names it, what is in it and what was expected).
    """
    from deepij.pipeline.image_files import cannot_read, check_image_file, read_npy

    check_image_file(path)
    if path.suffix.lower() == ".npy":
        import xarray as xr

        array = read_npy(path).values
        return session.to_imageplus(xr.DataArray(array, dims=_imagej_dims(path, array.ndim)), title=path.name)
    from deepij.imagej._java import jc

    jc.IJ.redirectErrorMessages()  # an unreadable file is reported here, never in a box nobody can close
    imp = jc.IJ.openImage(str(path))
    if imp is None:
        raise cannot_read(path, "ImageJ could not open it")
    return imp


def _imagej_dims(path: Path, ndim: int) -> tuple[str, ...]:
    dims = {2: ("row", "col"), 3: ("pln", "row", "col"), 4: ("t", "pln", "row", "col")}
    if ndim not in dims:
        raise InputError(
            f"image: file {str(path)!r}: a .npy image must have 2 to 4 dims (yx, zyx, tzyx), found {ndim}"
        )
    return dims[ndim]


def _save_result(session: Session, result: Any, folder: Path | None, prefix: str) -> list[Path]:
    if folder is None:
        return []
    written = []
    for title, imp in result.imageplus.items():
        written.append(session.save_tiff(imp, folder / f"{prefix}_{_safe(title)}.tif"))
    for title, table in result.tables.items():
        data = table.to_csv(index=False).encode("utf-8")
        written.append(write_atomically(folder / f"{prefix}_{_safe(title)}.csv", data))
    return written


def _safe(title: str) -> str:
    """An image title as a file name (ImageJ titles may hold slashes and colons)."""
    stem = re.sub(r"\.(tif|tiff|png|jpg)$", "", str(title), flags=re.IGNORECASE)
    return re.sub(r"[^\w.\- ()]+", "_", stem).strip() or "image"
