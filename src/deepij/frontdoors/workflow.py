"""``deepij macro WORKFLOW.ijm``: a workshop macro run unchanged, once or over each file of a folder.

Workshop macros ask for folders and numbers (``getDirectory``, ``getNumber``, ``Dialog``...) and call
``run("DeepImageJ Run", ...)``. Here the prompts are answered by their text (``answers`` /
``--answer "Choose the output folder=out/"``), models are looked up in ``models_dir`` first, and each input
file is opened as the macro's current image, as if the user had opened it in Fiji. A prompt nobody answered
stops the run with an error that quotes it and shows the ``--answer`` that would answer it.

With ``output``, what the macro leaves open is written there too: its images as ImageJ TIFFs and its tables
as CSV, named ``<input name>_<title>`` by the rule of ``deepij run``
(:mod:`deepij.pipeline.output_names`): unique in the run and the same on every run (titles ``a/b`` and
``a:b``, or ``res`` and ``res.tif``, are two files); a file that would replace an input or another run's
output of the same call fails that run with a message naming both. Its Log goes there as
``<input name>_Log.txt``. What the macro prints goes to ``on_log`` as it comes (``deepij macro`` prints it,
as ``ImageJ -batch`` does).

Examples
--------
The lab macro ``examples/segment_cells.ijm`` on the demo bundle's two input images:

>>> import tempfile
>>> out = Path(tempfile.mkdtemp())
>>> images = ["examples/nuclei_bundle/exampleImage.tif", "examples/nuclei_bundle/sample_input.tif"]
>>> report = run_workflow("examples/segment_cells.ijm", inputs=images, output=out)
>>> [o.status for o in report.outcomes]
['done', 'done']
>>> sorted(path.name for path in out.glob("exampleImage*"))
['exampleImage_Log.txt', 'exampleImage_Results.csv', 'exampleImage_exampleImage.tif', 'exampleImage_mask.tif']

A macro that asks, answered:

>>> asks = out / "asks.ijm"
>>> _ = asks.write_text('print("method: " + getString("Threshold method", "Otsu"));')
>>> report = run_workflow(asks, answers={"Threshold method": "Li"}, on_log=print)
method: Li
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import ArgumentError, ArgumentTypeError, InputError
from deepij.files import atomic_path, writable_folder, write_atomically
from deepij.pipeline.batch import (
    BatchReport,
    ImageOutcome,
    claim_names,
    image_files,
    output_prefixes,
    protected_inputs,
)
from deepij.pipeline.output_names import clean_name, unique_stems

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
        A folder for what each run leaves open (images as TIFF, tables as CSV); made if missing.
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
        No such macro, inputs that hold no image, or an ``output`` that is a file, lies below one or cannot
        be written.
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
    saver = _OutputSaver(writable_folder(output, "output"), files, path) if output is not None else None
    if session is None:
        session, handler = _start_with_models(path, models_dir)
    else:
        handler = install(session)
    outcomes = []
    with _models_dir(handler, models_dir):
        runs: list[Path | None] = list(files) or [None]
        for source in runs:
            outcome = _run_once(session, path, source, saver, answers, timeout, on_log)
            outcomes.append(outcome)
            if on_run is not None:
                on_run(outcome)
    return BatchReport(outcomes, saver.folder if saver is not None else Path.cwd())


def _start_with_models(macro: Path, models_dir: str | Path | None) -> tuple[Session, Any]:
    """The session (started on this thread when none runs) and its ``DeepImageJ Run`` handler, with the
    models the macro names loaded meanwhile (:mod:`deepij.frontdoors.macro_preload`)."""
    from deepij.frontdoors.deepimagej_run import ModelCache, install
    from deepij.frontdoors.macro_preload import start_loading
    from deepij.imagej.runtime import current_session, get_session

    if current_session() is not None:
        session = get_session()
        return session, install(session)
    cache = ModelCache()
    loading = start_loading(cache, macro.read_text(encoding="utf-8", errors="replace"), models_dir)
    session = get_session()
    loading.join()
    return session, install(session, cache)


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
    saver: _OutputSaver | None,
    answers: Mapping[str, Any] | None,
    timeout: float | None,
    on_log: Callable[[str], object] | None = None,
) -> ImageOutcome:
    started = time.perf_counter()
    label = source if source is not None else macro
    log_file = saver.log_file(source) if saver is not None else None
    with _log_sink(log_file, on_log) as (sink, logs):
        try:
            image = open_image(session, source) if source is not None else None
            result = session.run_macro(macro, image=image, timeout=timeout, answers=answers, on_log=sink)
            written = saver.save(session, result, source) if saver is not None else []
        except Exception as error:  # one file that fails is reported; the others still run
            # the whole message: an unanswered prompt's error ends with the --answer that answers it
            return ImageOutcome(label, "failed", time.perf_counter() - started, outputs=logs,
                                error=f"{type(error).__name__}: {error}", exception=error)
    return ImageOutcome(label, "done", time.perf_counter() - started, outputs=[*written, *logs])


@contextlib.contextmanager
def _log_sink(path: Path | None, on_log: Callable[[str], object] | None
              ) -> Iterator[tuple[Callable[[str], object] | None, list[Path]]]:
    """(where a run's Log lines go, the log files written): ``on_log``, and with an output folder
    ``path`` (``<input name>_Log.txt`` there), made at the first line and appended line by line as the lines
    come (what a stopped or killed run logged stays readable; an earlier run's file is replaced)."""
    if path is None:
        yield on_log, []
        return
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


class _OutputSaver:
    """Writes what each run leaves into the output folder, names unique across the whole call."""

    def __init__(self, folder: Path, files: Sequence[Path], macro: Path) -> None:
        self.folder = folder
        self.macro = macro
        self.prefixes = output_prefixes(files) if files else {}
        self.protected = protected_inputs(files, folder)
        self.claimed: dict[str, Path] = {}

    def prefix(self, source: Path | None) -> str:
        return self.prefixes[source] if source is not None else clean_name(self.macro.stem, "macro")

    def log_file(self, source: Path | None) -> Path:
        """Where a run's Log goes: ``<prefix>_Log.txt`` (images are .tif, tables .csv: no clash)."""
        return self.folder / f"{self.prefix(source)}_Log.txt"

    def save(self, session: Session, result: Any, source: Path | None) -> list[Path]:
        prefix = self.prefix(source)
        images, tables = output_files(prefix, result.imageplus, result.tables)
        claim_names([*images.values(), *tables.values()], source or self.macro, self.folder, self.protected,
                    self.claimed)
        written = []
        for title, imp in result.imageplus.items():
            with atomic_path(self.folder / images[title]) as partial:  # a temporary name of this process
                session.save_tiff(imp, partial)
            written.append(self.folder / images[title])
        for title, table in result.tables.items():
            data = table.to_csv(index=False).encode("utf-8")
            written.append(write_atomically(self.folder / tables[title], data))
        return written


def output_files(
    prefix: str, images: Iterable[str], tables: Iterable[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The files a run's images (TIFF) and tables (CSV) are written to, by title: ``<prefix>_<title>``, a
    title's image extension dropped, titles made unique by :func:`~deepij.pipeline.output_names.unique_stems`.

    Examples
    --------
    >>> output_files("cells", ["a/b", "a:b", "res", "res.tif"], ["Results"])
    ({'a/b': 'cells_a_b-c14cddc0.tif', 'a:b': 'cells_a_b-6783a31e.tif', 'res': 'cells_res.tif', \
'res.tif': 'cells_res_tif.tif'}, {'Results': 'cells_Results.csv'})
    """
    image_stems = unique_stems(images, extensions=_TITLE_EXTENSIONS, fallback="image")
    table_stems = unique_stems(tables, extensions=_TITLE_EXTENSIONS, fallback="table")
    return (
        {title: f"{prefix}_{stem}.tif" for title, stem in image_stems.items()},
        {title: f"{prefix}_{stem}.csv" for title, stem in table_stems.items()},
    )


_TITLE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg")
"""Extensions dropped from a title (an image opened from ``cells.tif`` is titled so)."""
