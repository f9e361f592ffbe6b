"""run_java_step: its arguments, the map of tensors it hands the step, and where the step runs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from deepij.errors import ArgumentError, ArgumentTypeError, ImageJError, StepError
from deepij.imagej.java_steps.call import StepCall
from deepij.imagej.java_steps.loading import loaded_code
from deepij.imagej.java_steps.stages import stage_of
from deepij.imagej.java_steps.watch import Watch

if TYPE_CHECKING:
    from deepij.imagej.session import Session


def run_java_step(
    session: Session,
    jar: str | os.PathLike[str],
    class_name: str | None,
    stage: Literal["pre", "post"],
    tensors: Mapping[str, Any],
    config_files: Sequence[str | os.PathLike[str]] = (),
    method: str | None = None,
    *,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run a bundle's Java pre- or post-processing step on ImageJ images and tables.

    Parameters
    ----------
    session : Session
        The ImageJ session (``deepij.imagej()``).
    jar : path
        The step's code: a ``.jar``, a ``.class`` file, or a folder of ``.class`` files (a class path root).
    class_name : str or None
        The class to run (``"my.pkg.Normalize"``; a name without package is matched against the jar's
        classes). None: the one class in ``jar`` implementing the stage's interface.
    stage : {"pre", "post"}
        ``"pre"``: ``deepimagej.processing.PreProcessingInterface``; ``"post"``: ``PostProcessingInterface``.
    tensors : mapping of str to value
        Tensor name to ``ij.ImagePlus`` / ``ij.measure.ResultsTable``, or to a numpy array / xarray
        (copied into an ImagePlus titled by the name) / DataFrame (copied into a ResultsTable).
    config_files : sequence of paths
        The files handed to ``setConfigFiles`` (a bundle's ``weights.*.attachments.files``), made absolute.
        Jars among them are also on the step's class path (libraries the step uses), as in deepImageJ.
    method : str, optional
        The method the descriptor names after ``::``. None or the interface's method
        (``deepimagejPreprocessing`` / ``deepimagejPostprocessing``) runs it through the interface; another
        name runs that public method of the class, which must take the map as its one argument.
    timeout : float, optional
        Seconds after which the step is given up (its thread is interrupted, then abandoned).

    Returns
    -------
    dict of str to Java object
        The map the step returned: names to ``ImagePlus`` / ``ResultsTable`` objects (convert them with
        ``session.to_xarray`` / ``session.to_dataframe``).

    Raises
    ------
    StepError
        The code cannot be loaded (missing file, not a zip, no or several implementing classes, a class that
        does not implement the interface), the step threw (message and top of the Java stack trace), its
        ``error()`` returned a message, it opened an error box or waited for input, or it ran past
        ``timeout``. The message names the file and the class.
    ArgumentError, ArgumentTypeError
        A bad ``stage``, ``tensors`` or ``config_files`` argument.
    ImageJError
        The session is closed, or deepij's interfaces jar is missing and cannot be built.

    Examples
    --------
    A step as a bundle author writes it, compiled with the JDK's ``javac`` (a bundle ships the jar):

    >>> import deepij, subprocess, tempfile
    >>> from deepij.imagej import locate
    >>> from deepij.imagej.java_steps import processing_jar
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "Twice.java").write_text(" ".join([
    ...     "import java.util.*; import ij.ImagePlus;",
    ...     "public class Twice implements deepimagej.processing.PreProcessingInterface {",
    ...     "  public HashMap<String, Object> deepimagejPreprocessing(HashMap<String, Object> map) {",
    ...     '    ((ImagePlus) map.get("input")).getProcessor().multiply(2); return map; }',
    ...     "  public void setConfigFiles(ArrayList<String> files) {}",
    ...     '  public String error() { return ""; } }']))
    >>> _ = subprocess.run(["javac", "--release", "8", "-cp", f"{processing_jar()}:{locate.find_ij_jar()}",
    ...                     "-d", str(folder), str(folder / "Twice.java")], check=True)
    >>> session = deepij.imagej()
    >>> out = run_java_step(session, folder / "Twice.class", None, "pre", {"input": np.ones((2, 2), "f4")})
    >>> session.to_xarray(out["input"]).values.tolist()
    [[2.0, 2.0], [2.0, 2.0]]
    """
    if session.closed:
        raise ImageJError("this ImageJ session was shut down (a JVM cannot restart within one process)")
    spec = stage_of(stage)
    code_path = _code_path(jar)
    configs = _config_paths(config_files)
    if class_name is not None and (not isinstance(class_name, str) or not class_name.strip()):
        raise ArgumentTypeError(f"class_name: expected a class name (str) or None, found {class_name!r}")
    if method is not None and (not isinstance(method, str) or not method.strip()):
        raise ArgumentTypeError(f"method: expected a method name (str) or None, found {method!r}")
    if timeout is not None and not timeout > 0:
        raise ArgumentError(f"timeout: expected a number of seconds > 0 or None, found {timeout!r}")
    # never alongside a macro; inside one (a command handler), right there, that macro's watcher answering
    with session.exclusive() as inside_macro:
        libraries = tuple(Path(f) for f in configs if f.lower().endswith(".jar"))
        step_class = loaded_code(code_path, libraries).step_class(class_name, spec)
        where = f"{code_path}: {step_class.getName()}"
        inputs = _input_map(session, tensors)
        job = StepCall(step_class, spec, method, configs, inputs, where)
        if inside_macro:
            return job.run()
        return Watch(session, job, timeout).result()


def _code_path(jar: Any) -> Path:
    if not isinstance(jar, str | os.PathLike):
        raise ArgumentTypeError(f"jar: expected the path of a .jar, a .class file or a folder, found "
                                f"{type(jar).__name__}")
    path = Path(jar).expanduser()
    if not path.exists():
        raise StepError(f"Java step {str(path)!r} does not exist (expected a .jar, a .class file or a folder "
                        "of .class files)")
    return path.resolve()


def _config_paths(config_files: Any) -> list[str]:
    if isinstance(config_files, str | os.PathLike) or not isinstance(config_files, Sequence):
        raise ArgumentTypeError(f"config_files: expected a list of paths, found {config_files!r}")
    absolute = []
    for index, item in enumerate(config_files):
        if not isinstance(item, str | os.PathLike):
            raise ArgumentTypeError(f"config_files[{index}]: expected a path, found {type(item).__name__}")
        path = Path(item).expanduser().resolve()
        if not path.exists():
            raise StepError(f"config file {str(path)!r} of the Java step does not exist "
                            f"(config_files[{index}]; expected an existing file)")
        absolute.append(str(path))
    return absolute


def _input_map(session: Session, tensors: Any) -> Any:
    """A java.util.HashMap of the tensors, arrays and DataFrames copied into ImagePlus / ResultsTable."""
    import jpype

    if not isinstance(tensors, Mapping):
        raise ArgumentTypeError(f"tensors: expected a mapping of tensor name to image or table, found "
                                f"{type(tensors).__name__}")
    inputs = jpype.JClass("java.util.HashMap")()
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise ArgumentTypeError(f"tensors: keys are tensor names (non-empty str), found {name!r}")
        inputs.put(name, _java_value(session, name, value))
    return inputs


def _java_value(session: Session, name: str, value: Any) -> Any:
    import jpype

    if isinstance(value, jpype.JObject):  # ImagePlus, ResultsTable, or whatever Java object a step takes
        return value
    if isinstance(value, np.ndarray | xr.DataArray):
        try:
            return session.to_imageplus(value, title=name)
        except ValueError as error:
            raise ArgumentError(f"tensors[{name!r}]: {error}") from error
    if isinstance(value, pd.DataFrame):
        return session.to_resultstable(value)
    raise ArgumentTypeError(f"tensors[{name!r}]: expected an ij.ImagePlus, ij.measure.ResultsTable, numpy "
                            f"array, xarray.DataArray or pandas.DataFrame, found {type(value).__name__}")
