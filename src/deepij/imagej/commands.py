"""Python handlers for ImageJ commands, called when a macro (or any code) runs ``run("Name", "options")``.

One ``ij.CommandListener`` is installed per session. It sees every command before ImageJ runs it; a command
with a registered Python handler is handed to it (and ImageJ does not run it), other commands go on to ImageJ
unless a policy refuses them (the headless mode refuses the commands it cannot run faithfully).

This is the seam for serving ``run("DeepImageJ Run", "model=... ...")`` from users' macros with a model kept
loaded: register a handler for ``"DeepImageJ Run"``; it gets the options and the current image, and can show
result images and tables where the macro expects them.

Examples
--------
>>> import numpy as np
>>> import deepij
>>> session = deepij.imagej()
>>> def double(call):
...     call.show(call.image_xarray() * 2, title="doubled")
>>> session.commands.register("Double It", double)
>>> result = session.run_macro('run("Double It");', image=np.ones((4, 4), "float32"))
>>> result.images["doubled"].values.tolist()
[[2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0]]
>>> session.commands.unregister("Double It")
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from deepij.errors import ArgumentError, ArgumentTypeError, DeepijError, MacroError
from deepij.imagej._java import is_macro_canceled, jc, jstr
from deepij.imagej.macro_errors import located_inside, restated

_log = logging.getLogger("deepij.imagej")


class CommandHost(Protocol):
    """What commands need of a session (:class:`deepij.imagej.session.Session` is one).

    Naming only this keeps this module free of the session module, which builds on it.
    """

    def to_xarray(self, imp: Any, *, squeeze: bool = True) -> Any: ...
    def to_imageplus(self, data: Any, title: str | None = None) -> Any: ...
    def to_resultstable(self, frame: Any) -> Any: ...
    def publish_image(self, imp: Any) -> None: ...
    def publish_table(self, table: Any, title: str) -> None: ...


#: The session type handlers see: ``CommandCall[Session]`` for a session's router.
HostT = TypeVar("HostT", bound=CommandHost)
Handler = Callable[["CommandCall[HostT]"], None]
#: A policy gets a command name and returns an exception to refuse it with, or None to let ImageJ run it.
Policy = Callable[[str], BaseException | None]
#: Stops the running macro because of an error; False when no macro runs (``MacroRunner.fail_current``).
StopMacro = Callable[[BaseException], bool]
HandlerSection = contextlib.AbstractContextManager[None]


class CommandCall(Generic[HostT]):
    """One interception of ``run(command, options)``: what a handler gets.

    Attributes
    ----------
    command : str
        The command name, e.g. ``"DeepImageJ Run"``.
    options : str
        The option string the macro passed (``""`` when none), e.g. ``"model=[My Model] tile=256,256,1"``.
    session : Session
        The ImageJ session (conversions, tables...).
    """

    def __init__(self, command: str, options: str, session: HostT) -> None:
        self.command = command
        self.options = options
        self.session = session

    @property
    def image(self) -> Any:
        """The macro's current ImagePlus (None when no image is open)."""
        return jc.WindowManager.getCurrentImage()

    def image_xarray(self) -> Any:
        """The current image as an xarray (ImageJError when there is none: the macro then fails with it)."""
        from deepij.errors import ImageJError

        imp = self.image
        if imp is None:
            raise ImageJError(f"{self.command}: there is no image open (the command needs a current image)")
        return self.session.to_xarray(imp)

    def option(self, key: str, default: str | None = None) -> str | None:
        """The value of ``key=value`` (or ``key=[value with spaces]``) in the options, as ImageJ reads it."""
        value = jc.Macro.getValue(self.options + " ", key, None)
        return default if value is None else str(value)

    def show(self, image: Any, title: str | None = None) -> Any:
        """Open an image (ImagePlus, numpy or xarray) in the running macro's ImageJ and make it current."""
        imp = image if _is_imageplus(image) else self.session.to_imageplus(image, title=title)
        if title is not None and _is_imageplus(image):
            imp.setTitle(title)
        self.session.publish_image(imp)
        return imp

    def show_table(self, table: Any, title: str = "Results") -> Any:
        """Show a table (DataFrame or ResultsTable) under ``title``, as ImageJ's tables appear."""
        rt = table if _is_resultstable(table) else self.session.to_resultstable(table)
        self.session.publish_table(rt, title)
        return rt

    def __repr__(self) -> str:
        return f"CommandCall({self.command!r}, options={self.options!r})"


class CommandRouter(Generic[HostT]):
    """The session's command listener: Python handlers by command name, plus an optional refusal policy.

    ``stop_macro`` is told of a handler's failure (or a refusal) to stop the running macro with it;
    ``handler_section`` (a context manager factory) wraps each handler call (``MacroRunner.handler_section``).
    """

    def __init__(self, session: HostT, stop_macro: StopMacro,
                 handler_section: Callable[[], HandlerSection] | None = None) -> None:
        self._session = session
        self._stop_macro = stop_macro
        # wraps every handler call: how a stopped macro run reaches the Python code it called
        self._handler_section = handler_section or contextlib.nullcontext
        self._handlers: dict[str, Handler[HostT]] = {}
        self._lock = threading.Lock()
        self._policy: Policy | None = None
        self._listener: Any = None
        self.failures: list[BaseException] = []  # failures outside any macro run, newest last

    def install(self) -> None:
        """Register the Java listener (once per session)."""
        if self._listener is None:
            self._listener = _make_listener(self)
            jc.Executer.addCommandListener(self._listener)

    def uninstall(self) -> None:
        if self._listener is not None:
            jc.Executer.removeCommandListener(self._listener)
            self._listener = None

    def register(self, command: str, handler: Handler[HostT]) -> None:
        """Handle ``run(command, ...)`` in Python from now on (replaces an earlier handler of that name).

        Whatever the handler raises stops the macro at the line that ran the command, as a
        :class:`~deepij.errors.MacroError` (an error of the handler's own kind is its ``__cause__``): the
        macro's author wrote that line and its options.
        """
        if not isinstance(command, str):
            raise ArgumentTypeError(f"command: expected a command name (str), found {type(command).__name__}")
        if not command.strip():
            raise ArgumentError(f"command: expected a non-empty command name, found {command!r}")
        if not callable(handler):
            raise ArgumentTypeError(f"handler: expected a callable taking a CommandCall, found {handler!r}")
        with self._lock:
            self._handlers[command] = handler

    def unregister(self, command: str) -> None:
        """Give ``command`` back to ImageJ (no error when it had no handler)."""
        with self._lock:
            self._handlers.pop(command, None)

    def handlers(self) -> Mapping[str, Handler[HostT]]:
        with self._lock:
            return dict(self._handlers)

    def set_policy(self, policy: Policy | None) -> None:
        self._policy = policy

    def command_executing(self, command: str) -> str | None:
        """What the listener does: hand to a handler, refuse, or let ImageJ run the command."""
        with self._lock:
            handler = self._handlers.get(command)
        if handler is None:
            refusal = self._policy(command) if self._policy is not None else None
            if refusal is None:
                return command
            self._fail(refusal)
            return None
        call = CommandCall(command, _current_options(), self._session)
        try:
            with self._handler_section():
                handler(call)
        except BaseException as error:  # a Python error must not cross into ImageJ unreported
            if not is_macro_canceled(error):  # else ImageJ aborted the macro, and its error box says why
                self._fail(handler_failure(command, error))
        return None

    def _fail(self, error: BaseException) -> None:
        if not self._stop_macro(error):
            _log.error("ImageJ command failed outside a macro run: %s", error)
            self.failures.append(error)


def handler_failure(command: str | None, error: BaseException) -> MacroError:
    """The MacroError a handler's exception stops the macro with: its text, under the command's name.

    A MacroError (a nested macro's, a refusal) stays as it is. Anything else, a bad option reported as an
    ArgumentError included, is an error of the macro line that ran the command; the original exception is
    the ``__cause__``. When a macro the command ran inside the calling one failed (a bundle's step, whose
    MacroError is among the causes), the error is that macro's file and line, of that kind
    (CommandNotFoundError...), and the run says it was called from the calling line. ``command`` None: a
    handler not known by name.

    Examples
    --------
    >>> str(handler_failure("DeepImageJ Run", ValueError("model= is missing")))
    'macro: DeepImageJ Run: ValueError: model= is missing'
    >>> handler_failure("Segment", KeyError("x")).__cause__
    KeyError('x')
    """
    if isinstance(error, MacroError):
        return error
    text = str(error) if isinstance(error, DeepijError) else f"{type(error).__name__}: {error}"
    if command is None:
        text = f"a command handler failed: {text}"
    elif not text.startswith(f"{command}:"):  # errors of CommandCall name the command already
        text = f"{command}: {text}"
    inner = located_inside(error)  # a macro the command ran failed: the error is at its file and line
    failure = (MacroError(text) if inner is None
               else restated(inner, text, line=inner.line, source=inner.source))
    failure.__cause__ = error
    return failure


def _current_options() -> str:
    options = jc.Macro.getOptions()
    return "" if options is None else str(options).strip()


def _make_listener(router: CommandRouter) -> Any:
    from jpype import JImplements, JOverride

    @JImplements("ij.CommandListener")
    class _Listener:
        @JOverride
        def commandExecuting(self, command: Any) -> Any:
            name = jstr(command)
            # the String itself lets ImageJ go on; null tells it the command was taken care of
            return command if name is None or router.command_executing(name) is not None else None

    return _Listener()


def _is_imageplus(value: Any) -> bool:
    return hasattr(value, "getProcessor") and hasattr(value, "getStack")


def _is_resultstable(value: Any) -> bool:
    return hasattr(value, "getColumnHeadings") and hasattr(value, "incrementCounter")


def format_options(options: str | Mapping[str, Any] | None, *, argument: str = "options") -> str:
    """An ImageJ option string from a dict: ``{"sigma": 2, "stack": True}`` -> ``"sigma=2 stack"``.

    ``True`` adds the bare key (ImageJ's checkbox style), ``False`` and ``None`` leave it out, values with
    spaces are wrapped in ``[...]``. A string is returned unchanged. ``argument`` names the argument in
    the error for anything else.

    Examples
    --------
    >>> format_options({"sigma": 2, "title": "my image", "stack": True, "scaled": False})
    'sigma=2 title=[my image] stack'
    """
    if options is None:
        return ""
    if isinstance(options, str):
        return options
    if not isinstance(options, Mapping):
        raise ArgumentTypeError(f"{argument}: expected a str or a dict, found {type(options).__name__}")
    parts = []
    for key, value in options.items():
        if value is True:
            parts.append(str(key))
        elif value is False or value is None:
            continue
        else:
            text = str(value)
            parts.append(f"{key}=[{text}]" if (" " in text or not text) else f"{key}={text}")
    return " ".join(parts)
