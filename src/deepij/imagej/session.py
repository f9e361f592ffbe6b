"""The ImageJ session: one per process, the object every ImageJ operation in deepij goes through."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from deepij.errors import ArgumentError, ArgumentTypeError, HeadlessError, ImageJError, MacroError
from deepij.imagej import headless as headless_mode
from deepij.imagej import images, state, tables
from deepij.imagej._java import jc, jstr, private_field
from deepij.imagej.commands import CommandRouter
from deepij.imagej.log_stream import LogText
from deepij.imagej.macros import MacroRunner
from deepij.imagej.results import MacroResult

_log = logging.getLogger("deepij.imagej")


class Session:
    """A running ImageJ 1.x inside this Python process.

    Get it with ``deepij.imagej()`` (never construct it yourself). All methods are safe to call from several
    threads: macro runs are serialized.

    Attributes
    ----------
    mode : str
        ``"embedded"`` (ij.jar started by deepij), ``"fiji"`` (a Fiji.app through pyimagej) or ``"attached"``
        (a pyimagej gateway adopted with ``deepij.attach``).
    headless : bool
        True when the JVM has no display: only :data:`~deepij.imagej.headless.HEADLESS_COMMANDS` may run.
    display : str or None
        The X display ImageJ draws on (``":3"``), a private Xvfb when deepij started one.
    ij_jar : Path or None
        The ImageJ jar of the embedded mode.
    fiji_dir : Path or None
        The Fiji.app of the fiji mode.
    gateway : object or None
        The pyimagej gateway (fiji and attached modes).
    commands : CommandRouter
        Python handlers for ImageJ commands (:meth:`CommandRouter.register`).
    runner : MacroRunner
        What runs the macros (:meth:`run_macro`); ``runner.in_macro_thread`` tells a command handler's
        code that it runs inside a macro.
    startup_seconds : float
        Time to start the JVM (0 when deepij did not start it).

    Examples
    --------
    >>> import deepij
    >>> session = deepij.imagej()
    >>> image = np.zeros((32, 32), np.float32)
    >>> image[16, 16] = 1
    >>> result = session.run_macro('run("Gaussian Blur...", "sigma=2");', image)
    >>> result.image.dims, result.image.dtype, bool(0 < result.image[16, 16] < 1)
    (('row', 'col'), dtype('float32'), True)
    """

    def __init__(self, *, mode: str, headless: bool, display: str | None = None, ij_jar: Path | None = None,
                 fiji_dir: Path | None = None, gateway: Any = None, virtual_display: Any = None,
                 startup_seconds: float = 0.0) -> None:
        self.mode = mode
        self.headless = headless
        self.display = display
        self.ij_jar = ij_jar
        self.fiji_dir = fiji_dir
        self.gateway = gateway
        self.virtual_display = virtual_display
        self.startup_seconds = startup_seconds
        self.runner = MacroRunner(self)
        self.commands: CommandRouter[Session] = CommandRouter(self, self.runner.fail_current,
                                                              self.runner.handler_section)
        self.closed = False

    def initialize(self) -> None:
        """Make ImageJ ready: its main instance (hidden) or the headless command table; the listener."""
        if self.headless:
            if jc.Menus.getCommands() is None:
                headless_mode.install_command_table()
            self.commands.set_policy(headless_mode.HeadlessPolicy())
        elif jc.IJ.getInstance() is None:
            # The hidden main window: with it ImageJ keeps a Log, shows Results/tables as windows and runs
            # every command as in the desktop application; NO_SHOW keeps it off screen.
            jc.ImageJ(jc.ImageJ.NO_SHOW)
        if not self.headless:
            # File.openDialog and the other file dialogs as Swing choosers, which deepij can answer (an AWT
            # FileDialog is a native GTK window it cannot fill in); captured below, so kept between runs
            jc.Prefs.useJFileChooser = True
        self.commands.install()
        self.commands.register("Quit", _refuse_quit)
        self.runner.settings = state.Settings.capture()
        _run_session_hooks(self)

    # ------------------------------------------------------------------------------------------ info
    @property
    def version(self) -> str:
        """ImageJ's version, e.g. ``"1.53t"``."""
        return jstr(jc.IJ.getFullVersion()) or ""

    def __repr__(self) -> str:
        where = self.ij_jar or self.fiji_dir or "adopted gateway"
        screen = "headless" if self.headless else f"display {self.display}"
        return f"<deepij ImageJ {self.version} session: {self.mode}, {where}, {screen}>"

    # ------------------------------------------------------------------------------------------ pixels
    def to_imageplus(self, data: xr.DataArray | np.ndarray, title: str | None = None, *,
                     dims: Any = None, rgb: bool | None = None) -> Any:
        """Copy a numpy array or xarray into a new ImagePlus. See :func:`deepij.imagej.images.to_imageplus`.

        Examples
        --------
        >>> import deepij
        >>> imp = deepij.imagej().to_imageplus(np.zeros((64, 48), "uint16"), title="blank")
        >>> str(imp.getTitle()), imp.getWidth(), imp.getHeight(), imp.getBitDepth()
        ('blank', 48, 64, 16)
        """
        self._check_open()
        return images.to_imageplus(data, title, dims=dims, rgb=rgb)

    def to_xarray(self, imp: Any, *, squeeze: bool = True) -> xr.DataArray:
        """Copy an ImagePlus into a new xarray. See :func:`deepij.imagej.images.to_xarray`.

        Examples
        --------
        >>> import deepij
        >>> session = deepij.imagej()
        >>> imp = session.to_imageplus(np.zeros((64, 48), "uint16"))
        >>> session.to_xarray(imp).dims, session.to_xarray(imp).shape
        (('row', 'col'), (64, 48))
        """
        self._check_open()
        return images.to_xarray(imp, squeeze=squeeze)

    def save_tiff(self, image: Any, path: str | Path, *, title: str | None = None) -> Path:
        """Write an image (ImagePlus, numpy or xarray) as an ImageJ TIFF, with ImageJ's own writer.

        Calibration, hyperstack dimensions and display range go into the file as ImageJ writes them, so
        Fiji opens it exactly as ImageJ would have saved it. The file appears complete or not at all.

        Examples
        --------
        >>> import deepij, tempfile, tifffile
        >>> session = deepij.imagej()
        >>> result = session.run_macro('run("Invert");', np.eye(16, dtype="uint8"))
        >>> path = session.save_tiff(result.imageplus["image"], Path(tempfile.mkdtemp()) / "inverted.tif")
        >>> with tifffile.TiffFile(path) as tiff:
        ...     path.name, tiff.is_imagej, tiff.asarray().tolist()[0][:3]
        ('inverted.tif', True, [254, 255, 255])
        """
        self._check_open()
        target = Path(path)
        if not target.parent.is_dir():
            raise ArgumentError(f"path: folder {str(target.parent)!r} does not exist (expected a folder)")
        imp = image if _is_imageplus(image) else images.to_imageplus(image, title)
        partial = target.with_name(f".{target.name}.partial")
        original_title = imp.getTitle()
        try:
            jc.IJ.redirectErrorMessages()  # a failure is logged, never shown in a box nobody can close
            if not bool(jc.FileSaver(imp).saveAsTiff(str(partial))):
                raise ImageJError(f"{target}: ImageJ could not write the TIFF file")
            partial.replace(target)
        finally:
            private_field("ij.IJ", "redirectErrorMessages").setBoolean(None, False)  # lasts otherwise
            imp.setTitle(original_title)  # the writer renames the image after the file
            partial.unlink(missing_ok=True)
        return target

    # ------------------------------------------------------------------------------------------ tables
    def to_dataframe(self, table: Any) -> pd.DataFrame:
        """Copy a ResultsTable into a DataFrame. See :mod:`deepij.imagej.tables`.

        Examples
        --------
        >>> import deepij
        >>> session = deepij.imagej()
        >>> session.to_dataframe(session.to_resultstable(pd.DataFrame({"Area": [1.5, 2.0]})))
           Area
        0   1.5
        1   2.0
        """
        self._check_open()
        return tables.to_dataframe(table)

    def to_resultstable(self, frame: pd.DataFrame) -> Any:
        """Copy a DataFrame into a new ResultsTable. See :mod:`deepij.imagej.tables`."""
        self._check_open()
        return tables.to_resultstable(frame)

    # ------------------------------------------------------------------------------------------ macros
    def run_macro(self, macro: str | Path, image: Any = None, args: str | Mapping[str, Any] | None = None,
                  timeout: float | None = None, answers: Mapping[str, Any] | None = None,
                  tables: Mapping[str, Any] | None = None,
                  on_log: Callable[[str], object] | None = None) -> MacroResult:
        """Run an ImageJ macro on an image and collect what it produced.

        Parameters
        ----------
        macro : str or Path
            Macro code, or the path of a ``.ijm``/``.txt`` macro file.
        image : array, xarray, ImagePlus, or dict of them by title, optional
            The macro's image(s). Several are opened in order (dict order), the last one current; each gets
            its key as title. A single array gets its DataArray name, or ``"image"``, as title.
        args : str or dict, optional
            What the macro's ``getArgument()`` returns; a dict becomes ``"key=value key2=[two words]"``.
        timeout : float, optional
            Seconds after which the macro is stopped with :class:`~deepij.errors.MacroTimeoutError`.
            Dialogs waiting for a user that ``answers`` does not cover stop it at once, whatever the timeout.
        answers : dict, optional
            Answers to the questions the macro asks, by prompt text: ``getDirectory("Choose input
            folder")``, ``getString``, ``getNumber``, ``getBoolean``, ``File.openDialog`` by their prompt,
            ``Dialog.*`` fields by label, e.g. ``{"Choose input folder": "/data", "sigma": 2}``. See
            :mod:`deepij.imagej.answers`.
        tables : dict, optional
            Tables open when the macro starts, by title: pandas DataFrames or ``ij.measure.ResultsTable``
            objects (copied: the macro never changes the caller's). ``"Results"`` becomes ImageJ's Results
            table, what ``nResults``, ``getResult`` and ``setResult`` use; any other title is a named table
            (a table window), what ``Table.get(column, row, title)``, ``Table.size(title)``, ``isOpen`` and
            ``selectWindow`` find. They open in dict order, after the images; the last one is in front (where
            ImageJ looks for results when the Results table is empty). What the macro leaves in them comes
            back in ``.tables``. A headless ImageJ has no table windows: only ``"Results"`` can be given.
        on_log : callable, optional
            Called with each line the macro writes to the Log (``print``, ``IJ.log``), while it runs (read
            every 0.1 s, on the calling thread), the rest when it ends, as ``ImageJ -batch`` prints them: a
            line the macro rewrites (``print("\\Update:...")``) comes again. Macros run inside this one (a
            bundle's steps run by ``run("DeepImageJ Run", ...)``) write to the same Log. The whole Log is
            also the result's ``.log``.

        Returns
        -------
        MacroResult
            ``.images`` (title -> xarray), ``.imageplus``, ``.tables`` (title -> DataFrame), ``.log``,
            ``.value`` (the macro's ``return``), ``.messages``, ``.image`` (the current image at the end),
            ``.answered`` (the questions answered from ``answers``).

        Raises
        ------
        MacroError
            ImageJ reported an error, in the interpreter or in an error box (``open`` of a missing file,
            ``selectWindow`` of a missing title...): ``.macro_message`` is its text, ``.line`` the macro line.
        CommandNotFoundError
            The macro ran a command this ImageJ lacks (a Fiji plugin's): the message names the component
            that provides it and how to make it available (see :mod:`deepij.imagej.missing_commands`).
        MacroTimeoutError
            The macro ran past ``timeout``, or asked a question ``answers`` does not cover (the message says
            what would answer it).
        ArgumentError, ArgumentTypeError
            A bad argument (the message names it), or an answer the question cannot take.
        HeadlessError
            In headless mode, the macro used a command that cannot run faithfully there, or ``tables`` has a
            named table (it would need a table window).

        Examples
        --------
        >>> import deepij
        >>> session = deepij.imagej()
        >>> result = session.run_macro('run("Gaussian Blur...", "sigma=7");', np.eye(64, dtype=np.float32))
        >>> blurred = result.image
        >>> blurred.shape, bool(blurred.max() < 1)
        ((64, 64), True)
        >>> areas = pd.DataFrame({"Area": [1.0, 2.0]})
        >>> counted = session.run_macro('setResult("Area", nResults, 3);', tables={"Results": areas})
        >>> counted.tables["Results"]["Area"].tolist()
        [1.0, 2.0, 3.0]
        """
        self._check_open()
        return self.runner.run(macro, image=image, args=args, timeout=timeout, answers=answers, tables=tables,
                               on_log=on_log)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Hold ImageJ for Java work that must not overlap a macro run (a bundle's Java step, say).

        Macro runs wait while the block runs, and the block waits for a running macro to end. Yields
        False, or True when called from inside a running macro (a command handler): that run already
        holds ImageJ, so nothing is taken (taking it would wait for ever) and its watcher answers the
        windows the work opens.

        Examples
        --------
        >>> import deepij
        >>> session = deepij.imagej()
        >>> with session.exclusive() as inside_macro:
        ...     imp = jc.IJ.openImage("examples/nuclei_bundle/exampleImage.tif")  # no macro runs meanwhile
        >>> inside_macro, imp.getWidth()
        (False, 512)
        """
        with self.runner.exclusive() as inside_macro:
            yield inside_macro

    # --------------------------------------------------------------------------- used by runs and handlers
    def prepare_inputs(self, image: Any) -> list[Any]:
        """ImagePlus objects (in opening order) for a run's ``image`` argument."""
        if image is None:
            return []
        if isinstance(image, Mapping):
            prepared = []
            for title, item in image.items():
                if not isinstance(title, str):
                    raise ArgumentTypeError(
                        f"image: dict keys are image titles (non-empty str), found {title!r}"
                    )
                if not title:
                    raise ArgumentError("image: dict keys are image titles (non-empty str), found ''")
                imp = self._as_imageplus(item, title, where=f"image[{title!r}]")
                imp.setTitle(title)
                prepared.append(imp)
            return prepared
        return [self._as_imageplus(image, None, where="image")]

    def _as_imageplus(self, item: Any, title: str | None, *, where: str) -> Any:
        if _is_imageplus(item):
            return item
        if isinstance(item, xr.DataArray | np.ndarray):
            try:
                return images.to_imageplus(item, title)
            except ArgumentTypeError as error:
                raise ArgumentTypeError(f"{where}: {error}") from error
            except ArgumentError as error:
                raise ArgumentError(f"{where}: {error}") from error
        raise ArgumentTypeError(f"{where}: expected a numpy array, xarray.DataArray or ij.ImagePlus, "
                                f"found {type(item).__name__}")

    def prepare_tables(self, tables: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
        """(title, ResultsTable) pairs, in opening order, for a run's ``tables`` argument (copies of the
        caller's tables: ImageJ is cleaned after the run, which empties the tables it had open)."""
        if tables is None:
            return []
        if not isinstance(tables, Mapping):
            raise ArgumentTypeError(
                "tables: expected a dict of table title -> pandas DataFrame or ij.measure.ResultsTable, "
                f"found {type(tables).__name__}"
            )
        prepared = []
        for title, table in tables.items():
            if not isinstance(title, str):
                raise ArgumentTypeError(
                    f"tables: dict keys are table titles (non-empty str), found {title!r}"
                )
            if not title.strip():
                raise ArgumentError(f"tables: dict keys are table titles (non-empty str), found {title!r}")
            if self.headless and title != "Results":
                raise HeadlessError(
                    f"tables[{title!r}]: a named table needs a table window, which a headless ImageJ cannot "
                    'show (only "Results" can be given there; start deepij without headless=True)'
                )
            prepared.append((title, self._as_resultstable(table, where=f"tables[{title!r}]")))
        return prepared

    def _as_resultstable(self, table: Any, *, where: str) -> Any:
        if isinstance(table, pd.DataFrame):
            try:
                return tables.to_resultstable(table)
            except ArgumentTypeError as error:
                raise ArgumentTypeError(_renamed(error, where)) from error
            except ArgumentError as error:
                raise ArgumentError(_renamed(error, where)) from error
        if _is_resultstable(table):
            return table.clone()
        raise ArgumentTypeError(
            f"{where}: expected a pandas DataFrame or ij.measure.ResultsTable, found {type(table).__name__}"
        )

    def open_tables(self, prepared: list[tuple[str, Any]]) -> None:
        """Open tables for the running macro (on its thread): ``Results`` as ImageJ's, others as named."""
        for title, table in prepared:
            self.publish_table(table, title)

    def open_inputs(self, imps: list[Any], *, reset_batch: bool = True) -> None:
        """Open images in batch mode on the calling (macro) thread; the last one becomes current."""
        if reset_batch:
            state.end_batch_mode()
        jc.Interpreter.batchMode = True
        for imp in imps:
            self.publish_image(imp)

    def publish_image(self, imp: Any) -> None:
        """Open an ImagePlus where the running macro sees it and make it current (batch mode or window)."""
        if jc.Interpreter.isBatchMode():
            jc.Interpreter.addBatchModeImage(imp)
            jc.WindowManager.setTempCurrentImage(imp)
        elif self.headless:
            jc.WindowManager.setTempCurrentImage(imp)
        else:
            imp.show()

    @property
    def batch_mode(self) -> bool:
        """Whether ImageJ is in batch mode (images without windows, as after ``setBatchMode(true)``).

        Setting it switches only the flag, e.g. to give a calling macro back its own mode after Python code
        ran a step inside it (:meth:`open_inputs` switches batch mode on); images opened in batch mode stay
        where they are.

        Examples
        --------
        >>> import deepij
        >>> session = deepij.imagej()
        >>> before = session.batch_mode
        >>> session.batch_mode = True
        >>> session.batch_mode
        True
        >>> session.batch_mode = before
        """
        return bool(jc.Interpreter.isBatchMode())

    @batch_mode.setter
    def batch_mode(self, on: bool) -> None:
        if not isinstance(on, bool):
            raise ArgumentTypeError(f"batch_mode: expected True or False, found {on!r}")
        jc.Interpreter.batchMode = on

    def withdraw_image(self, imp: Any) -> None:
        """Take an ImagePlus out of the running macro's images, keeping its pixels (undoes publish_image).

        For Python code called from inside a macro (a command handler) that opened intermediate images
        the macro must not see: they leave batch mode's list, or lose their window.

        Examples
        --------
        >>> import deepij
        >>> session = deepij.imagej()
        >>> def scratch_step(call):  # a command's Python handler
        ...     scratch = call.show(np.zeros((8, 8), "uint8"), title="scratch")  # the macro sees it...
        ...     call.session.withdraw_image(scratch)  # ...and no longer
        >>> session.commands.register("Scratch Step", scratch_step)
        >>> session.run_macro('run("Scratch Step"); print(nImages);', np.ones((4, 4), "uint8")).log
        '1\\n'
        >>> session.commands.unregister("Scratch Step")
        """
        if jc.Interpreter.isBatchMode():
            jc.Interpreter.removeBatchModeImage(imp)
        state.detach_window(imp)

    def publish_table(self, table: Any, title: str) -> None:
        """Make a ResultsTable ImageJ's ``Results`` (title ``"Results"``) or a named table."""
        if title == "Results":
            jc.Analyzer.setResultsTable(table)
        if not self.headless:
            table.show(title)

    @contextlib.contextmanager
    def log_capture(self) -> Iterator[LogText]:
        """What ImageJ logs while the block runs (the Log window; stdout of a headless ImageJ)."""
        capture = LogText(self.headless)
        capture.start()
        try:
            yield capture
        finally:
            capture.stop()

    # ------------------------------------------------------------------------------------------ end
    def _check_open(self) -> None:
        if self.closed:
            raise ImageJError("this ImageJ session was shut down (a JVM cannot restart within one process)")

    def on_jvm_stop(self) -> None:
        """Release what would keep the JVM (and so the interpreter) from exiting (once)."""
        if self.closed:
            return
        self.closed = True
        if self.runner.handler_running:
            # ImageJ calls command listeners holding their list's lock: removing ours would wait for the
            # handler a stopped run left in a long call (its RunStopped comes at its next bytecode); the
            # JVM is going away, the listener with it
            _log.warning("a command handler of a stopped macro run is still running; ImageJ's command "
                         "listener is left in place at exit")
        else:
            with contextlib.suppress(Exception):
                self.commands.uninstall()
        with contextlib.suppress(Exception):
            # ImageJ's worker pool has non-daemon threads: left running, they block the interpreter's exit
            jc.ThreadUtil.threadPoolExecutor.shutdownNow()
        with contextlib.suppress(Exception):
            instance = jc.IJ.getInstance()
            if instance is not None:
                instance.dispose()


def _is_imageplus(value: Any) -> bool:
    return hasattr(value, "getProcessor") and hasattr(value, "getStack") and hasattr(value, "getTitle")


def _is_resultstable(value: Any) -> bool:
    return hasattr(value, "getColumnHeadings") and hasattr(value, "incrementCounter")


def _renamed(error: Exception, where: str) -> str:
    """A conversion error's message about its ``frame`` argument, told of ``where`` the frame was given."""
    message = str(error)
    return where + message[len("frame"):] if message.startswith("frame") else f"{where}: {message}"


def _run_session_hooks(session: Session) -> None:
    """Run the hooks named in ``deepij.SESSION_HOOKS`` (e.g. the front door that serves "DeepImageJ Run").

    They are named as ``"module:function"`` there and imported only now, so this package never imports the
    packages above it. A failing hook is logged: the session itself works without it.
    """
    import importlib

    import deepij

    for name in getattr(deepij, "SESSION_HOOKS", ()):
        module, _, function = name.partition(":")
        try:
            getattr(importlib.import_module(module), function)(session)
        except Exception:
            _log.exception("ImageJ session hook %s failed", name)


def _refuse_quit(call: Any) -> None:
    raise MacroError(f'run("{call.command}") would end the ImageJ that this Python process keeps running; '
                     "deepij refused it (close images with close() instead)")
