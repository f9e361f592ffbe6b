"""What one macro run can leave behind in ImageJ, and putting it back to a clean start.

A run can leave images (shown or in batch mode), the Results table and named tables, the ROI Manager, the
Log, open dialogs, and global settings (measurements, binary options, colours, scaling on conversion).
:func:`reset` clears the first group and restores the settings captured when the session started, so one run
never changes what the next one computes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from deepij.imagej import dialogs
from deepij.imagej._java import jc, jstr, private_field


@dataclass(frozen=True)
class Settings:
    """ImageJ's global settings that macros commonly change (and that change results)."""

    measurements: int
    precision: int
    black_background: bool
    pad_edges: bool
    scale_conversions: bool
    foreground: Any
    background: Any
    binary_iterations: int
    binary_count: int
    default_16bit_range: int
    weighted_rgb: bool
    rgb_weights: tuple[float, float, float]
    divide_by_zero: float
    global_calibration: Any
    preferences: Any

    @classmethod
    def capture(cls) -> Settings:
        return cls(
            measurements=int(jc.Analyzer.getMeasurements()),
            precision=int(jc.Analyzer.getPrecision()),
            black_background=bool(jc.Prefs.blackBackground),
            pad_edges=bool(jc.Prefs.padEdges),
            scale_conversions=bool(jc.ImageConverter.getDoScaling()),
            foreground=jc.Toolbar.getForegroundColor(),
            background=jc.Toolbar.getBackgroundColor(),
            # "Options..." (Process>Binary) keeps these in package-private statics
            binary_iterations=int(private_field("ij.plugin.filter.Binary", "iterations").getInt(None)),
            binary_count=int(private_field("ij.plugin.filter.Binary", "count").getInt(None)),
            default_16bit_range=int(jc.ImagePlus.getDefault16bitRange()),
            weighted_rgb=bool(jc.Prefs.weightedColor),
            rgb_weights=_three(float(w) for w in jc.ColorProcessor.getWeightingFactors()),
            divide_by_zero=float(jc.FloatBlitter.divideByZeroValue),
            global_calibration=jc.ImagePlus.getStaticGlobalCalibration(),
            # ImageJ's in-memory preferences (call("ij.Prefs.set", ...), options of many commands)
            preferences=_preferences().clone(),
        )

    def restore(self) -> None:
        jc.Analyzer.setMeasurements(self.measurements)
        jc.Analyzer.setPrecision(self.precision)
        jc.Prefs.blackBackground = self.black_background
        jc.Prefs.padEdges = self.pad_edges
        jc.ImageConverter.setDoScaling(self.scale_conversions)
        jc.Toolbar.setForegroundColor(self.foreground)
        jc.Toolbar.setBackgroundColor(self.background)
        private_field("ij.plugin.filter.Binary", "iterations").setInt(None, self.binary_iterations)
        private_field("ij.plugin.filter.Binary", "count").setInt(None, self.binary_count)
        jc.ImagePlus.setDefault16bitRange(self.default_16bit_range)
        jc.Prefs.weightedColor = self.weighted_rgb
        jc.ColorProcessor.setWeightingFactors(*self.rgb_weights)
        jc.FloatBlitter.divideByZeroValue = self.divide_by_zero
        # a static field behind an instance setter
        jc.ImagePlus().setGlobalCalibration(self.global_calibration)
        current = _preferences()
        current.clear()
        current.putAll(self.preferences)


def _three(values: Any) -> tuple[float, float, float]:
    red, green, blue = values
    return red, green, blue


def _preferences() -> Any:
    """``Prefs.ijPrefs``, the Properties behind ``Prefs.get``/``Prefs.set`` (package-private)."""
    return private_field("ij.Prefs", "ijPrefs").get(None)


def open_image_ids() -> list[int]:
    """IDs of every open image, shown or batch-mode, oldest first."""
    ids = jc.WindowManager.getIDList()
    return sorted((int(i) for i in ids), reverse=True) if ids is not None else []


def table_windows() -> list[Any]:
    """Windows showing a ResultsTable (the Results window and named tables), oldest first."""
    frames = jc.WindowManager.getNonImageWindows() if jc.IJ.getInstance() is not None else []
    return [f for f in frames if isinstance(f, jc.TextWindow) and f.getResultsTable() is not None]


def reset(settings: Settings | None) -> None:
    """Bring ImageJ back to a clean state: no images, tables, ROIs, log, dialogs; settings restored."""
    dialogs.close_all()
    _close_images()
    end_batch_mode()
    _clear_tables()
    _clear_roi_managers()
    _close_other_windows()
    _forget_closed_windows()
    if jc.IJ.getInstance() is not None and jc.IJ.getLog() is not None:
        jc.IJ.log("\\Clear")
    jc.WindowManager.setTempCurrentImage(None)
    jc.Analyzer.setRedirectImage(None)  # "redirect=" of Set Measurements names an image that is gone now
    # IJ.redirectErrorMessages() lasts until the next error: left set, the next run's errors (File not
    # found...) would go to the Log instead of an error box, and its macro would carry on
    private_field("ij.IJ", "redirectErrorMessages").setBoolean(None, False)
    jc.IJ.resetEscape()
    if settings is not None:
        settings.restore()


def end_batch_mode() -> None:
    """Leave batch mode and forget its images (the table is package-private; without this it would be
    reused by the next ``addBatchModeImage``)."""
    jc.Interpreter.batchMode = False
    for name in ("imageTable", "imageActivations"):
        private_field("ij.macro.Interpreter", name).set(None, None)


def detach_window(imp: Any) -> None:
    """Close an image's window but keep its pixels: ImageJ flushes an image when its window closes."""
    window = imp.getWindow()
    if window is None:
        return
    # ImageWindow.close() would flush the ImagePlus; unhooking it first keeps the data usable
    private_field("ij.gui.ImageWindow", "imp").set(window, None)
    jc.WindowManager.removeWindow(window)
    window.dispose()
    imp.setWindow(None)


def _close_images() -> None:
    for image_id in open_image_ids():
        imp = jc.WindowManager.getImage(image_id)
        if imp is None:
            continue
        imp.changes = False
        if imp.getWindow() is not None:
            detach_window(imp)


def _clear_tables() -> None:
    jc.ResultsTable.getResultsTable().reset()
    jc.Analyzer.setUnsavedMeasurements(False)
    for window in table_windows():
        table = window.getResultsTable()
        if jstr(window.getTitle()) == "Results":
            window.close(False)
        else:
            table.reset()
            jc.WindowManager.removeWindow(window)
            window.dispose()


def _forget_closed_windows() -> None:
    """Drop ImageJ's references to the front window and table when those windows are closed.

    A table window's activation event can reach the event thread after the window was closed: ImageJ then
    makes it its front window (and table) again. ``getResult``/``nResults`` read the front table when
    Results is empty, so the next run would read the closed table's rows (its text panel keeps them).
    Letting the event thread handle what is queued first makes that late event land before the check.
    """
    if bool(jc.GraphicsEnvironment.isHeadless()):
        return
    if not bool(jc.EventQueue.isDispatchThread()):
        from jpype import JClass

        # an unstarted Thread is a Runnable that does nothing: once it has run, earlier events have too
        done = JClass("java.util.concurrent.FutureTask")(jc.Thread(), None)
        jc.EventQueue.invokeLater(done)
        with contextlib.suppress(Exception):  # a busy event thread: the references are still checked
            done.get(1000, JClass("java.util.concurrent.TimeUnit").MILLISECONDS)
    for name in ("frontWindow", "frontFrame", "frontTable"):
        field = private_field("ij.WindowManager", name)
        window = field.get(None)
        if window is not None and not bool(window.isDisplayable()):
            field.set(None, None)


def _clear_roi_managers() -> None:
    shown = jc.RoiManager.getInstance()
    if shown is not None:
        shown.reset()
        shown.close()
    batch = jc.Interpreter.getBatchModeRoiManager()
    if batch is not None:
        batch.reset()


def _close_other_windows() -> None:
    """Text windows other than Log (Debug, Exception...), plots and frames plugins left open."""
    if jc.IJ.getInstance() is None:
        return
    for frame in jc.WindowManager.getNonImageWindows():
        title = jstr(frame.getTitle())
        if title == "Log" or frame == jc.IJ.getInstance():
            continue
        if isinstance(frame, jc.TextWindow):
            frame.close(False)
        else:
            jc.WindowManager.removeWindow(frame)
            frame.dispose()
