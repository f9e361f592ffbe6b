"""Java classes the ImageJ layer uses, imported once on first use (the JVM must be running).

``jc.ImagePlus`` is ``ij.ImagePlus``; :func:`private_field` opens a non-public field by reflection for the
few ImageJ internals that have no public accessor (documented where used).
"""

from __future__ import annotations

from functools import cache
from typing import Any

_CLASSES = {
    "Analyzer": "ij.plugin.filter.Analyzer",
    "ByteOrder": "java.nio.ByteOrder",
    "Button": "java.awt.Button",
    "ByteProcessor": "ij.process.ByteProcessor",
    "ByteArrayOutputStream": "java.io.ByteArrayOutputStream",
    "Calibration": "ij.measure.Calibration",
    "Checkbox": "java.awt.Checkbox",
    "ColorProcessor": "ij.process.ColorProcessor",
    "CompositeImage": "ij.CompositeImage",
    "Container": "java.awt.Container",
    "Dialog": "java.awt.Dialog",
    "EventQueue": "java.awt.EventQueue",
    "Executer": "ij.Executer",
    "FileSaver": "ij.io.FileSaver",
    "FloatBlitter": "ij.process.FloatBlitter",
    "FloatProcessor": "ij.process.FloatProcessor",
    "Frame": "java.awt.Frame",
    "GenericDialog": "ij.gui.GenericDialog",
    "GraphicsEnvironment": "java.awt.GraphicsEnvironment",
    "Hashtable": "java.util.Hashtable",
    "IJ": "ij.IJ",
    "ImageConverter": "ij.process.ImageConverter",
    "ImageJ": "ij.ImageJ",
    "ImagePlus": "ij.ImagePlus",
    "ImageStack": "ij.ImageStack",
    "ImageWindow": "ij.gui.ImageWindow",
    "JFileChooser": "javax.swing.JFileChooser",
    "JLabel": "javax.swing.JLabel",
    "JTextComponent": "javax.swing.text.JTextComponent",
    "Label": "java.awt.Label",
    "Interpreter": "ij.macro.Interpreter",
    "Macro": "ij.Macro",
    "Menus": "ij.Menus",
    "MultiLineLabel": "ij.gui.MultiLineLabel",
    "NonBlockingGenericDialog": "ij.gui.NonBlockingGenericDialog",
    "Prefs": "ij.Prefs",
    "PrintStream": "java.io.PrintStream",
    "ResultsTable": "ij.measure.ResultsTable",
    "RoiManager": "ij.plugin.frame.RoiManager",
    "ShortProcessor": "ij.process.ShortProcessor",
    "System": "java.lang.System",
    "TextComponent": "java.awt.TextComponent",
    "TextWindow": "ij.text.TextWindow",
    "Thread": "java.lang.Thread",
    "ThreadUtil": "ij.util.ThreadUtil",
    "Toolbar": "ij.gui.Toolbar",
    "WaitForUserDialog": "ij.gui.WaitForUserDialog",
    "Window": "java.awt.Window",
    "WindowEvent": "java.awt.event.WindowEvent",
    "WindowManager": "ij.WindowManager",
    "YesNoCancelDialog": "ij.gui.YesNoCancelDialog",
}


class _JavaClasses:
    """Attribute access to the classes above: ``jc.IJ`` -> ``ij.IJ`` (cached)."""

    def __getattr__(self, name: str) -> Any:
        try:
            qualified = _CLASSES[name]
        except KeyError:
            raise AttributeError(f"no Java class registered as {name!r}") from None
        from jpype import JClass

        cls = JClass(qualified)
        setattr(self, name, cls)
        return cls


jc = _JavaClasses()


@cache
def private_field(class_name: str, field_name: str) -> Any:
    """A ``java.lang.reflect.Field`` made accessible (ImageJ's jar is on the class path, not a module)."""
    from jpype import JClass

    field = JClass(class_name).class_.getDeclaredField(field_name)
    field.setAccessible(True)
    return field


def is_macro_canceled(error: BaseException) -> bool:
    """ImageJ ends a macro (``exit``, an answered cancel, ``IJ.error`` aborting it) with
    ``RuntimeException("Macro canceled")``."""
    get_class = getattr(error, "getClass", None)
    if get_class is None or str(get_class().getName()) != "java.lang.RuntimeException":
        return False
    return jstr(error.getMessage()) == "Macro canceled"  # type: ignore[attr-defined]


def java_name(error: BaseException | Any) -> str:
    """The Java class name of an exception that came out of Java (a Python exception's type name)."""
    get_class = getattr(error, "getClass", None)
    return (jstr(get_class().getName()) or "") if get_class is not None else type(error).__name__


def java_summary(error: BaseException | Any) -> str:
    """``java.lang.IllegalStateException: its message`` (the class alone when there is no message)."""
    name = java_name(error)
    message = jstr(error.getMessage()) if hasattr(error, "getMessage") else str(error)
    return f"{name}: {message}" if message else name


def jstr(value: Any) -> str | None:
    """A Java string (or None) as a Python str (JPype keeps java.lang.String by default)."""
    return None if value is None else str(value)
