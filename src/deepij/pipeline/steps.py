"""A bundle's pre- and post-processing, in the bundle's order: ImageJ macros and Java steps inside ImageJ,
or the bioimage.io spec ops in numpy.

Which chain runs (``processing=``)
---------------------------------
- ``"auto"``: as deepImageJ would. A bundle with deepImageJ prediction steps
  (``config.deepimagej.prediction``) runs those steps inside ImageJ when ImageJ is available; otherwise
  its spec ops run in numpy. One normalisation is never applied twice: a 0.4 bundle may list the same one
  as a spec op AND as a macro, and deepImageJ runs only the macros (the zoo's tools only the spec ops).
- ``"macros"``: only the deepImageJ steps (macros and Java), in ImageJ.
- ``"spec"``: only the spec ops, in numpy.
- ``"none"``: nothing; inputs are cast to the declared data type.

Inside ImageJ (deepImageJ 2.x's rules)
--------------------------------------
Pre-processing: the input is the current image, titled as the input (a file's name); each step runs on
what the previous one left. Afterwards, an open image titled like an input tensor is that input; otherwise
the current image is (the first input). Post-processing: the network's outputs are open under the titles
deepImageJ gives them (``<model name>_<output name>_<input title without extension>``, see
:func:`~deepij.pipeline.step_tables.output_title`): images (the last current), and tables as named tables;
afterwards every open image and table is an output, by title (the network's own under their output names).
Each macro runs with the images the previous step left (the current one current) and the tables it left
open: a pre-processing macro's Results is the next step's Results (post-processing steps included), as in
the one ImageJ deepImageJ runs them in (:mod:`deepij.pipeline.step_tables`). Tables left open at the end are
outputs. Java post-processing steps get the outputs by output name, as deepImageJ's map has them.

A failing step raises :class:`~deepij.errors.StepError` naming the bundle, the step (stage, number, file)
and, for macros, the line and ImageJ's message. ImageJ is left clean (no images or tables open), and the
session and the loaded model work for the next call.

Examples
--------
>>> from deepij.bundle import open_bundle
>>> from deepij.pipeline.sources import read_source
>>> description = open_bundle("examples/nuclei_bundle")
>>> chain = Chain(description, "auto", session=None)  # deepij.imagej() when a step needs it
>>> chain.mode
'macros'
>>> ready = chain.pre(read_source("examples/nuclei_bundle/sample_input.tif", description))
>>> chain.ran, ready["input"].dims, ready["input"].dtype
(['pre 1: macro per_sample_scale_range.ijm'], ('y', 'x'), dtype('float32'))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import xarray as xr

from deepij.bundle.description import ImageJStep, ModelDescription, TensorSpec, WeightsEntry
from deepij.errors import ArgumentError, DeepijError, MacroError, StepError
from deepij.pipeline.sources import Calibration, Source, check_inputs, output_calibration, to_letters
from deepij.pipeline.step_tables import by_name, by_title, names_of, output_title, tables_imagej_holds

if TYPE_CHECKING:
    import pandas as pd

    from deepij.imagej.session import Session
    from deepij.pipeline.progress import Reporter

Tensors = dict[str, xr.DataArray]
MODES = ("auto", "macros", "spec", "none")
"""The values of ``processing=``."""
STAGE_NAMES = {"pre": "preprocessing", "post": "postprocessing"}
_log = logging.getLogger("deepij.pipeline")


def choose_mode(description: ModelDescription, processing: str) -> str:
    """The chain that runs: ``"macros"``, ``"spec"`` or ``"none"`` (see the module notes for ``"auto"``).

    Examples
    --------
    >>> import dataclasses
    >>> from deepij.bundle import open_bundle
    >>> description = open_bundle("examples/nuclei_bundle")  # with deepImageJ macros
    >>> choose_mode(description, "auto"), choose_mode(description, "spec")
    ('macros', 'spec')
    >>> no_steps = dataclasses.replace(description.deepimagej, preprocess=(), postprocess=())
    >>> choose_mode(dataclasses.replace(description, deepimagej=no_steps), "auto")
    'spec'
    """
    if processing not in MODES:
        raise ArgumentError(f"processing: unknown value {processing!r}; expected one of {list(MODES)}")
    if processing != "auto":
        return processing
    return "macros" if has_imagej_steps(description) and imagej_available() else "spec"


def has_imagej_steps(description: ModelDescription) -> bool:
    """Whether the bundle declares deepImageJ pre- or post-processing steps."""
    return bool(description.deepimagej.preprocess or description.deepimagej.postprocess)


def imagej_available() -> bool:
    """Whether an ImageJ runs, or could start here (an ImageJ jar or Fiji.app and a Java runtime found)."""
    import os

    from deepij.errors import ImageJError
    from deepij.imagej.locate import find_ij_jar, find_java_home
    from deepij.imagej.runtime import current_session

    if current_session() is not None:
        return True
    try:
        if not os.environ.get("DEEPIJ_FIJI"):
            find_ij_jar()
        find_java_home()
    except ImageJError:
        return False
    return True


@dataclass
class StepOutputs:
    """What post-processing hands on: the network's outputs by name (tensors in their axes), and every
    other image and table the steps left, by title."""

    tensors: Tensors
    images: dict[str, xr.DataArray] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    rois: list[Any] = field(default_factory=list)
    """The ROI Manager's ROIs after the last macro step (:class:`deepij.imagej.rois.Outline`)."""


@dataclass
class _Workspace:
    """What is open between ImageJ steps: images (ImagePlus) by title, the current one, tables."""

    images: dict[str, Any]
    current: str | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    converted: dict[str, xr.DataArray] = field(default_factory=dict)
    rois: list[Any] = field(default_factory=list)

    def ordered(self) -> dict[str, Any]:
        """Images by title, the current one last (the way :meth:`Session.run_macro` makes it current)."""
        others = {t: imp for t, imp in self.images.items() if t != self.current}
        if self.current in self.images:
            others[self.current] = self.images[self.current]
        return others


class Chain:
    """The pre/post chain of one run.

    Parameters
    ----------
    description : ModelDescription
        The bundle.
    processing : {"auto", "macros", "spec", "none"}
        Which chain (see the module notes).
    session : Session or callable, optional
        The ImageJ session, or what gives it; default ``deepij.imagej()``, started only when a step needs it.
    report : Reporter, optional
        Receives one event per step.
    step_timeout : float, optional
        Seconds each ImageJ step (macro or Java step) may run before it is stopped and fails with a
        StepError saying so. None: no limit. A step run from inside a macro (``run("DeepImageJ Run", ...)``)
        runs within that macro's own time limit instead.

    Attributes
    ----------
    mode : str
        ``"macros"``, ``"spec"`` or ``"none"``.
    ran : list of str
        The steps that ran, in order (``"pre 1: macro per_sample_scale_range.ijm"``), for provenance.
    calibration : Calibration
        Of the image the network received.
    """

    def __init__(
        self,
        description: ModelDescription,
        processing: str = "auto",
        session: Session | Callable[[], Session] | None = None,
        report: Reporter | None = None,
        step_timeout: float | None = None,
    ) -> None:
        if step_timeout is not None:  # deepij.imagej is imported only when it is needed (a first call's cost)
            from deepij.imagej.macro_run import check_timeout

            check_timeout(step_timeout, "step_timeout")
        self.description = description
        self.mode = choose_mode(description, processing)
        self.step_timeout = step_timeout
        self._session_arg = session
        self._session: Session | None = None
        self.report = report
        self.ran: list[str] = []
        self.notes: list[str] = []
        self.calibration = Calibration()
        self.config_files: list[Path] = []
        self.input_title = "image"
        self._left_tables: dict[str, pd.DataFrame] = {}  # open after the pre-processing steps
        if processing == "auto" and self.mode == "spec" and has_imagej_steps(description):
            self.notes.append("ImageJ is not available here: the bundle's spec ops ran instead of its macros")

    # ------------------------------------------------------------------------------------------ session
    def session(self) -> Session:
        """The ImageJ session (started on first use)."""
        if self._session is None:
            self._session = self._open_session()
        return self._session

    def _open_session(self) -> Session:
        given = self._session_arg
        if given is None:
            from deepij.imagej import imagej

            return imagej()
        if hasattr(given, "run_macro"):
            return cast("Session", given)
        return cast("Callable[[], Session]", given)()

    # ------------------------------------------------------------------------------------------ pre
    def pre(self, source: Source, weights: WeightsEntry | None = None) -> Tensors:
        """The images the network will receive (letter dims), after the ImageJ pre-processing steps when
        this chain runs them; checked against the model's inputs
        (:func:`~deepij.pipeline.sources.check_inputs`)."""
        self.calibration = source.calibration
        self.input_title = source.title
        if weights is not None:
            self.config_files = [self.description.path(f).resolve() for f in weights.attachments]
        steps = self.description.deepimagej.preprocess
        if self.mode != "macros" or not steps:
            check_inputs(source.images, self.description)
            return dict(source.images)
        session = self.session()
        workspace = self._open_inputs(session, source)
        for index, step in enumerate(steps):
            self._run_step(session, "pre", index, step, workspace)
        self._left_tables = dict(workspace.tables)
        images = self._network_inputs(session, workspace)
        check_inputs(images, self.description)
        return images

    def ready(self, raw: Tensors) -> Tensors:
        """The network's inputs: the spec pre-processing ops (``"spec"``), else cast to the declared type."""
        if self.mode == "spec":
            from deepij.processing import preprocess

            return preprocess(self.description, raw)
        return {s.name: raw[s.name].astype(s.data_type or "float32") for s in self.description.inputs}

    def _open_inputs(self, session: Session, source: Source) -> _Workspace:
        from deepij.axes import to_imagej_dims

        single = len(self.description.inputs) == 1
        images: dict[str, Any] = {}
        for spec in self.description.inputs:
            title = source.title if single else spec.name
            image = to_imagej_dims(
                self.calibration.apply(source.images[spec.name]) if single else source.images[spec.name]
            )
            images[title] = session.to_imageplus(_imagej_attrs(image), title=title)
        first = source.title if single else self.description.inputs[0].name
        return _Workspace(images, first)

    def _network_inputs(self, session: Session, workspace: _Workspace) -> Tensors:
        """deepImageJ's rule: an open image titled like an input tensor wins over the current image."""
        images: Tensors = {}
        for index, spec in enumerate(self.description.inputs):
            title = spec.name if spec.name in workspace.images else workspace.current if index == 0 else None
            if title is None or title not in workspace.images:
                raise StepError(
                    f"bundle {self.description.name!r}: pre-processing left no image for input {spec.name!r} "
                    f"(open images: {sorted(workspace.images)}; expected one titled {spec.name!r}"
                    + (" or a current image)" if index == 0 else ")")
                )
            image = self._converted(session, workspace, title)
            calibration = Calibration.of(image)
            if index == 0 and not calibration.empty:
                self.calibration = calibration
            images[spec.name] = to_letters(image, argument=f"pre-processed image {title!r}")
        return images

    # ------------------------------------------------------------------------------------------ post
    def post(self, outputs: Tensors, raw: Tensors, *, spec_applied: bool = False) -> StepOutputs:
        """The outputs after post-processing: spec ops (``"spec"``; ``spec_applied`` when the caller ran
        them already, per tile), the ImageJ steps (``"macros"``), or as they are; calibrated like the input
        along the axes that follow it."""
        if self.mode == "spec" and not spec_applied:
            from deepij.processing import postprocess

            outputs = postprocess(self.description, outputs, raw)
        tensors = {name: self._calibrated(name, tensor) for name, tensor in outputs.items()}
        steps = self.description.deepimagej.postprocess
        if self.mode != "macros" or not steps:
            return StepOutputs(tensors, tables=dict(self._left_tables))
        session = self.session()
        workspace = self._open_outputs(session, tensors)
        for index, step in enumerate(steps):
            self._run_step(session, "post", index, step, workspace)
        return self._collect_outputs(session, workspace, tensors)

    def _calibrated(self, name: str, tensor: xr.DataArray) -> xr.DataArray:
        spec = self.description.output(name)
        if spec.is_table or self.calibration.empty:
            return tensor
        return output_calibration(self.description, spec, self.calibration).apply(tensor)

    def _open_outputs(self, session: Session, tensors: Tensors) -> _Workspace:
        from deepij.axes import to_imagej_dims
        from deepij.inference.arrays import table_frame

        titles = self._output_titles("post")
        images: dict[str, Any] = {}  # by output name, each ImagePlus titled as deepImageJ titles it
        tables: dict[str, pd.DataFrame] = {}
        for spec in self.description.outputs:
            if spec.is_table:
                tables[spec.name] = table_frame(tensors[spec.name], spec)
            else:
                image = _imagej_attrs(to_imagej_dims(tensors[spec.name]))
                images[spec.name] = session.to_imageplus(image, title=titles[spec.name])
        return _Workspace(images, next(reversed(images), None), {**self._left_tables, **tables})

    def _collect_outputs(self, session: Session, workspace: _Workspace, tensors: Tensors) -> StepOutputs:
        result = StepOutputs(dict(tensors))
        for title in workspace.images:
            image = to_letters(
                self._converted(session, workspace, title), argument=f"post-processed {title!r}"
            )
            spec = _named(self.description.outputs, title)
            if spec is not None and not spec.is_table:
                # named as the network's output, not by the title it had in ImageJ
                network = _like(image, tensors[title]).rename(title)
                result.tensors[title] = Calibration.of(image).apply(network)
            else:
                result.images[title] = _with_lut(Calibration.of(image).apply(image), workspace.images[title])
        for spec in self.description.outputs:
            if not spec.is_table and spec.name not in workspace.images:
                self.notes.append(
                    f"post-processing closed output {spec.name!r}: it is given as the network produced it"
                )
        result.tables = dict(workspace.tables)
        result.rois = list(workspace.rois)
        return result

    # ------------------------------------------------------------------------------------------ steps
    def _run_step(
        self, session: Session, stage: str, index: int, step: ImageJStep, workspace: _Workspace
    ) -> None:
        steps = (
            self.description.deepimagej.preprocess
            if stage == "pre"
            else self.description.deepimagej.postprocess
        )
        label = f"{step.kind} {step.file}"
        path = self.description.path(step.file)
        if not path.is_file():
            raise StepError(f"{self._where(stage, index, step)}: file {str(path)!r} does not exist")
        _log.info("%s: %s step %d of %d: %s", self.description.name, stage, index + 1, len(steps), label)
        if step.kind == "macro":
            self._run_macro(session, stage, index, step, path, workspace)
        else:
            self._run_java(session, stage, index, step, path, workspace)
        self.ran.append(f"{stage} {index + 1}: {label}")
        if self.report is not None:
            self.report.advance(STAGE_NAMES[stage], index + 1, len(steps), label)

    def _run_macro(
        self, session: Session, stage: str, index: int, step: ImageJStep, path: Path, workspace: _Workspace
    ) -> None:
        titles = self._output_titles(stage)
        tables, kept = tables_imagej_holds(by_title(workspace.tables, titles), headless=session.headless)
        nested = session.runner.in_macro_thread
        batch = session.batch_mode if nested else None
        try:
            result = session.run_macro(path, image=by_title(workspace.ordered(), titles), tables=tables,
                                       timeout=self.step_timeout)
            if nested:
                _forget(session, result.imageplus.values())
        except MacroError as error:
            line = f", line {error.line}" if error.line is not None else ""
            raise StepError(f"{self._where(stage, index, step)}{line}: {error.macro_message}") from error
        finally:
            if batch is not None:
                session.batch_mode = batch  # the calling macro's own: running a step switches it on
        keys = names_of(result.imageplus, titles)
        workspace.images = {keys[title]: imp for title, imp in result.imageplus.items()}
        workspace.converted = {keys[title]: image for title, image in result.images.items()}
        workspace.current = keys.get(result.current) if result.current is not None else None
        workspace.tables = {**by_name(kept, titles), **by_name(result.tables, titles)}
        # Run inside a calling macro, the step's ROIs stay in that macro's ROI Manager as they are (with the
        # macro's own): nothing to carry, nothing to show again.
        workspace.rois = [] if nested else list(result.rois)

    def _output_titles(self, stage: str) -> dict[str, str]:
        """Network output name -> the title the post-processing macros see it under (deepImageJ's)."""
        if stage != "post":
            return {}
        return {
            spec.name: output_title(self.description.name, spec.name, self.input_title)
            for spec in self.description.outputs
        }

    def _run_java(
        self, session: Session, stage: str, index: int, step: ImageJStep, path: Path, workspace: _Workspace
    ) -> None:
        try:
            from deepij.imagej.java_steps import run_java_step
        except ImportError as error:
            raise StepError(
                f"{self._where(stage, index, step)}: Java processing steps need deepij.imagej.java_steps, "
                f"which this installation lacks ({error})"
            ) from error
        tensors = self._java_tensors(session, stage, workspace)
        # the step's own kwargs files first, then the weights' attachments (each once)
        own = [str(self.description.path(f).resolve()) for f in step.config_files]
        configs = list(dict.fromkeys([*own, *(str(p) for p in self.config_files)]))
        try:
            produced = run_java_step(
                session,
                path,
                step.java_class,
                "pre" if stage == "pre" else "post",
                tensors,
                configs,
                method=step.method,
                timeout=self.step_timeout,
            )
        except DeepijError as error:
            raise StepError(f"{self._where(stage, index, step)}: {error}") from error
        images = {str(k): v for k, v in produced.items() if _is_imageplus(v)}
        tables = {str(k): session.to_dataframe(v) for k, v in produced.items() if not _is_imageplus(v)}
        if stage == "pre":
            workspace.images = {**workspace.images, **images}
            workspace.current = next(iter(images), workspace.current)
        else:
            workspace.images = images
            workspace.current = next(reversed(images), None)
        workspace.converted = {t: x for t, x in workspace.converted.items() if t not in images}
        workspace.tables.update(tables)

    def _java_tensors(self, session: Session, stage: str, workspace: _Workspace) -> dict[str, Any]:
        """deepImageJ's map: in pre-processing the model input name -> its image; in post-processing every
        open image and table by title."""
        if stage == "pre":
            first = self.description.inputs[0].name
            current = workspace.images.get(first) or workspace.images.get(workspace.current or "")
            named = {
                s.name: workspace.images[s.name]
                for s in self.description.inputs
                if s.name in workspace.images
            }
            return {**named, first: current} if current is not None else named
        tables = {t: session.to_resultstable(frame) for t, frame in workspace.tables.items()}
        return {**workspace.images, **tables}

    def _converted(self, session: Session, workspace: _Workspace, title: str) -> xr.DataArray:
        if title not in workspace.converted:
            workspace.converted[title] = session.to_xarray(workspace.images[title])
        return workspace.converted[title]

    def _where(self, stage: str, index: int, step: ImageJStep) -> str:
        steps = (
            self.description.deepimagej.preprocess
            if stage == "pre"
            else self.description.deepimagej.postprocess
        )
        kind = "macro" if step.kind == "macro" else "Java step"
        call = f" {step.java_class}" + (f"::{step.method}" if step.method else "") if step.java_class else ""
        return (
            f"bundle {self.description.name!r}: {STAGE_NAMES[stage]} step {index + 1} of {len(steps)} "
            f"({kind} {step.file}{call})"
        )


# ---------------------------------------------------------------------------------------------- helpers
def _imagej_attrs(image: xr.DataArray) -> xr.DataArray:
    """Letter-keyed calibration attrs as ImageJ's conversion reads them (``pixel_size`` by ImageJ dim)."""
    from deepij.axes import BIOIMAGE_TO_IMAGEJ

    sizes = image.attrs.get("pixel_size")
    if not isinstance(sizes, Mapping):
        return image
    renamed = {BIOIMAGE_TO_IMAGEJ.get(str(k), str(k)): v for k, v in sizes.items()}
    result = image.copy(deep=False)
    result.attrs = {**image.attrs, "pixel_size": renamed}
    return result


def _with_lut(image: xr.DataArray, imp: Any) -> xr.DataArray:
    """The image with the name of the lookup table a step gave it (``attrs["lut"]``, e.g. a label image's
    ``glasbey_on_dark``), so that :meth:`Prediction.show` shows it so again."""
    from deepij.imagej.luts import lut_name

    name = lut_name(imp)
    if name is None:
        return image
    named = image.copy(deep=False)
    named.attrs = {**image.attrs, "lut": name}
    return named


def _forget(session: Session, imps: Any) -> None:
    """Take a step's images out of the ImageJ a macro is running in, keeping their pixels.

    A step run from inside a macro (``run("DeepImageJ Run", ...)`` served by a command handler) runs nested:
    ImageJ is not cleaned after it, so its images would be left among the calling macro's. They stay in the
    workspace and are opened again for the next step; :meth:`Prediction.show` opens the outputs.
    """
    for imp in imps:
        session.withdraw_image(imp)


def _like(image: xr.DataArray, original: xr.DataArray) -> xr.DataArray:
    """A post-processed network output (letter dims, ImageJ's layout) back in the layout the network
    gave it: the batch that became frames is a batch again, size-1 axes come back, same dim order."""
    renamed = image
    if (
        "b" in original.dims
        and original.sizes["b"] > 1
        and "t" in renamed.dims
        and ("t" not in original.dims or original.sizes["t"] == 1)
    ):
        renamed = renamed.rename({"t": "b"})
    extra = [d for d in renamed.dims if d not in original.dims]
    if any(renamed.sizes[d] != 1 for d in extra):
        return renamed  # the step changed the image's dims: keep them as ImageJ left them
    if extra:
        renamed = renamed.squeeze(extra, drop=True)
    for dim in original.dims:
        if dim not in renamed.dims:
            renamed = renamed.expand_dims(dim)
    return renamed.transpose(*original.dims)


def _named(specs: tuple[TensorSpec, ...], name: str) -> TensorSpec | None:
    return next((s for s in specs if s.name == name), None)


def _is_imageplus(value: Any) -> bool:
    return hasattr(value, "getProcessor") and hasattr(value, "getStack") and hasattr(value, "getTitle")
