"""One call of a step: instantiate its class, configure it, run its method, question its error().

A Java exception thrown inside becomes a StepError with the Java message and the top of the step's own
stack trace (the frames of the call into it left out); the exception stays the ``__cause__``.
"""

from __future__ import annotations

from typing import Any

from deepij.errors import StepError
from deepij.imagej._java import java_name, java_summary, jc, jstr
from deepij.imagej.java_steps.loading import class_for, java_class
from deepij.imagej.java_steps.stages import Stage

#: Stack frames of a Java exception quoted in the StepError.
_TRACE_FRAMES = 8
#: Frames from here on are the call into the step (JPype, reflection), not the step's own code.
_CALLER_FRAMES = ("org.jpype.", "jdk.internal.reflect.", "java.lang.reflect.", "sun.reflect.")


class StepCall:
    """Instantiate, configure, run and question one step (on whichever thread runs it)."""

    def __init__(self, step_class: Any, stage: Stage, method: str | None, configs: list[str], inputs: Any,
                 where: str) -> None:
        self.step_class = step_class
        self.stage = stage
        self.method = None if method in (None, stage.method) else method
        self.configs = configs
        self.inputs = inputs
        self.where = where
        self.java_thread: Any = None

    def run(self) -> dict[str, Any]:
        self.java_thread = jc.Thread.currentThread()
        try:
            return self._run()
        finally:
            jc.Thread.interrupted()  # clears an interrupt sent while stopping it: the thread is reused

    def _run(self) -> dict[str, Any]:
        import jpype

        interface = jpype.JClass(class_for(self.stage.interface, self.step_class.getClassLoader()))
        instance = self._instantiate()
        step = jpype.JObject(instance, interface)
        self._configure(step, instance)
        call = f"{self.step_class.getSimpleName()}.{self.method or self.stage.method}"
        try:
            returned = self._invoke(step, instance)
        except jpype.JException as error:
            # the Java exception stays the cause: its whole stack trace is there for the step's author
            raise StepError(self._failure(f"{call} threw", error, _step_error(step))) from error
        message = _step_error(step)
        if message:
            raise StepError(f"{self.where}: the {self.stage.label} step reports an error: {message}")
        return self._outputs(returned, call)

    def _instantiate(self) -> Any:
        import jpype

        try:
            constructor = self.step_class.getDeclaredConstructor()
            constructor.setAccessible(True)  # deepImageJ steps are often package-private classes
            return constructor.newInstance()
        except jpype.JException as error:
            if java_name(error) == "java.lang.NoSuchMethodException":
                raise StepError(f"{self.where}: the class has no constructor without arguments "
                                "(expected one, as deepImageJ creates steps with it)") from None
            raise StepError(self._failure("creating the step threw", _unwrap(error), None)) from None

    def _configure(self, step: Any, instance: Any) -> None:
        import jpype

        files = jpype.JClass("java.util.ArrayList")()
        for path in self.configs:
            files.add(path)
        try:
            step.setConfigFiles(files)
        except jpype.JException as error:
            if java_name(error) != "java.lang.AbstractMethodError":
                raise StepError(self._failure("setConfigFiles threw", error, None)) from None
            self._configure_old_style(instance, error)

    def _configure_old_style(self, instance: Any, missing: Any) -> None:
        """Steps written for deepImageJ 2.0 have setConfigFile(String) instead: give it the first file."""
        import jpype

        try:
            old = self.step_class.getMethod("setConfigFile", jpype.JClass("java.lang.String"))
        except jpype.JException:
            raise StepError(self._failure("setConfigFiles is missing", missing, None)) from None
        try:
            old.invoke(instance, self.configs[0] if self.configs else "")
        except jpype.JException as error:
            raise StepError(self._failure("setConfigFile threw", _unwrap(error), None)) from None

    def _invoke(self, step: Any, instance: Any) -> Any:
        import jpype

        if self.method is None:
            return getattr(step, self.stage.method)(self.inputs)
        named = self._named_method()
        try:
            return named.invoke(instance, self.inputs)
        except jpype.JException as error:
            raise _unwrap(error) from None

    def _named_method(self) -> Any:
        wanted = [m for m in self.step_class.getMethods() if jstr(m.getName()) == self.method]
        takes_map = [m for m in wanted if len(m.getParameterTypes()) == 1
                     and bool(m.getParameterTypes()[0].isAssignableFrom(java_class("java.util.HashMap")))]
        if not takes_map:
            found = ", ".join(jstr(m.toGenericString()) or "" for m in wanted) or "none"
            raise StepError(f"{self.where}: no public method {self.method}(HashMap) (found: {found}; "
                            f"expected {self.method} or {self.stage.method} taking the map of tensors)")
        return takes_map[0]

    def _outputs(self, returned: Any, call: str) -> dict[str, Any]:
        if returned is None:
            raise StepError(f"{self.where}: {call} returned null (expected a HashMap of images and tables)")
        if not bool(java_class("java.util.Map").isInstance(returned)):
            raise StepError(f"{self.where}: {call} returned a {jstr(returned.getClass().getName())} "
                            "(expected a HashMap of images and tables)")
        return {str(entry.getKey()): entry.getValue() for entry in returned.entrySet()}

    def _failure(self, what: str, error: Any, reported: str | None) -> str:
        text = f"{self.where}: {what} {java_summary(error)}"
        frames = _top_frames(error)
        if frames:
            text += "\n" + "\n".join(f"    at {frame}" for frame in frames)
        cause = error.getCause()
        while cause is not None and not cause.equals(error):
            text += f"\n  caused by {java_summary(cause)}"
            error, cause = cause, cause.getCause()
        if reported:
            text += f"\n  the step's error(): {reported}"
        return text


def _step_error(step: Any) -> str | None:
    try:
        message = jstr(step.error())
    except Exception:  # a broken error() must not hide what happened before
        return None
    return message.strip() if message and message.strip() else None


def _unwrap(error: Any) -> Any:
    """The exception a reflective call's InvocationTargetException carries."""
    if java_name(error) == "java.lang.reflect.InvocationTargetException" and error.getCause() is not None:
        return error.getCause()
    return error


def _top_frames(error: Any) -> list[str]:
    frames = []
    for element in list(error.getStackTrace())[:64]:
        text = jstr(element.toString()) or ""
        if text.startswith(_CALLER_FRAMES):
            break
        frames.append(text)
        if len(frames) == _TRACE_FRAMES:
            break
    return frames
