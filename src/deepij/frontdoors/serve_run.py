"""``run("DeepImageJ Run", ...)`` split between a user's ImageJ and the worker: ``plan`` and ``predict``.

The plugin asks for the plan (the options read by the one parser, the model found and loaded, the ImageJ
steps to run and their order), runs the pre-processing steps in its ImageJ, sends the image they leave,
gets the network's outputs back (titled as deepImageJ titles them) and runs the post-processing steps there.
Which processing runs is decided as in process (:func:`~deepij.frontdoors.deepimagej_run.processing_for`):
a bundle's ImageJ steps when it has them (the plugin runs them), else its spec ops (they run here, with the
network), or nothing for ``[no preprocessing]``.

Examples
--------
>>> step_where("My model", "pre", 0, 2, "macro", "scale.ijm", None, None)
"bundle 'My model': preprocessing step 1 of 2 (macro scale.ijm)"
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import InputError, StepError
from deepij.frontdoors.run_options import RunRequest, parse_run_options

if TYPE_CHECKING:
    import pandas as pd

    from deepij.bundle.description import ImageJStep
    from deepij.frontdoors.serve_request import Request, Served
    from deepij.pipeline import Model, Prediction
    from deepij.pipeline.progress import ProgressEvent

_STAGES = {"pre": "preprocessing", "post": "postprocessing"}


def plan(server: Served, request: Request) -> dict[str, Any]:
    """What a run needs from the user's ImageJ: the steps, the inputs, the files of ``input_path=``."""
    run, model = _model(server, request)
    mode = processing_mode(run, model)
    if run.input_path is None and not request.message.get("has_image", True):
        raise InputError("there is no image open (expected the image to process open and selected; or "
                         "input_path= in the 3.1 syntax)")
    backend = model.backend(run.weights_format)  # loaded now: a weights problem stops before any step runs
    attachments = [str(model.description.path(f).resolve()) for f in backend.weights.attachments]
    steps: dict[str, list[dict[str, Any]]] = {"pre": [], "post": []}
    if mode == "macros":
        steps = {stage: _steps(model, stage, attachments) for stage in ("pre", "post")}
    files: list[str] = []
    if run.input_path is not None:
        from deepij.pipeline.batch import image_files

        files = [str(p) for p in image_files(run.input_path)]
        if run.output_folder is None and run.display_output is False:
            raise InputError(f"DeepImageJ Run: input_path={run.input_path} with display_output=false and no "
                             "output_folder= would keep nothing (expected output_folder=FOLDER or "
                             "display_output=true)")
    return {
        "model": model.name,
        "mode": mode,
        "pre": steps["pre"],
        "post": steps["post"],
        "inputs": [s.name for s in model.description.inputs],
        "files": files,
        "display_output": run.display_output is not False if run.input_path is None else bool(
            run.display_output),
        "output_folder": None if run.output_folder is None else str(run.output_folder),
        "logging": run.logging,
    }


def predict(server: Served, request: Request) -> dict[str, Any]:
    """The network part of a run on the images in ``to_worker``; the outputs into ``from_worker``."""
    run, model = _model(server, request)
    mode = processing_mode(run, model)
    described = request.message.get("inputs")
    if not isinstance(described, list) or not described:
        raise InputError("predict: no input images described (expected inputs=[{title, width, ...}])")
    started = time.perf_counter()
    images = server.files.read_images(described)
    read = time.perf_counter()
    names = [s.name for s in model.description.inputs]
    if len(images) != len(names):
        raise InputError(f"predict: {len(images)} images for the model's {len(names)} inputs {names}")
    image: Any = images[0] if len(names) == 1 else dict(zip(names, images, strict=True))
    title = request.text("title") or str(images[0].name)

    def progress(event: ProgressEvent) -> None:
        request.progress(event.stage, event.done, event.total, event.label)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prediction = server.runs.predict(model, image, run, None, title,
                                         processing="spec" if mode == "spec" else "none", progress=progress)
    predicted = time.perf_counter()
    warned = [str(w.message) for w in caught]
    notes = list(prediction.notes) + [text for text in dict.fromkeys(warned) if text not in prediction.notes]
    answer = _answer(server, prediction, title, notes)
    answer["timings_ms"] = {"read": 1e3 * (read - started), "predict": 1e3 * (predicted - read),
                            "write": 1e3 * (time.perf_counter() - predicted)}
    return answer


def processing_mode(run: RunRequest, model: Model) -> str:
    """``"macros"`` (the plugin runs the bundle's ImageJ steps), ``"spec"`` (the spec ops run here) or
    ``"none"``, as the in-process command decides it with ImageJ at hand."""
    from deepij.frontdoors.deepimagej_run import processing_for
    from deepij.pipeline.steps import has_imagej_steps

    processing = processing_for(run, model)
    if processing == "auto":
        return "macros" if has_imagej_steps(model.description) else "spec"
    return processing


def step_where(model_name: str, stage: str, index: int, count: int, kind: str, file: str,
               java_class: str | None, method: str | None) -> str:
    """How an error names a step (as :class:`~deepij.pipeline.steps.Chain` names it in process)."""
    label = "macro" if kind == "macro" else "Java step"
    call = f" {java_class}" + (f"::{method}" if method else "") if java_class else ""
    return f"bundle {model_name!r}: {_STAGES[stage]} step {index + 1} of {count} ({label} {file}{call})"


def _model(server: Served, request: Request) -> tuple[RunRequest, Model]:
    from deepij.frontdoors.deepimagej_run import find_run_model

    options = request.text("options", "")
    assert options is not None
    run = parse_run_options(options)
    source = find_run_model(run, request.text("imagej_dir"), None)
    return run, server.runs.models.get(source, run.weights_format)


def _steps(model: Model, stage: str, attachments: list[str]) -> list[dict[str, Any]]:
    description = model.description
    declared: tuple[ImageJStep, ...] = (
        description.deepimagej.preprocess if stage == "pre" else description.deepimagej.postprocess
    )
    steps = []
    for index, step in enumerate(declared):
        where = step_where(model.name, stage, index, len(declared), step.kind, step.file, step.java_class,
                           step.method)
        path = description.path(step.file)
        if not Path(path).is_file():
            raise StepError(f"{where}: file {str(path)!r} does not exist")
        own = [str(description.path(f).resolve()) for f in step.config_files]
        steps.append({
            "kind": step.kind,
            "file": str(Path(path).resolve()),
            "class": step.java_class,
            "method": step.method,
            "config_files": list(dict.fromkeys([*own, *attachments])),
            "where": where,
            "label": f"{step.kind} {step.file}",
        })
    return steps


def _answer(server: Served, prediction: Prediction, title: str, notes: list[str]) -> dict[str, Any]:
    names = list(prediction.images)
    titles = {name: prediction.title(name, title) for name in (*names, *prediction.tables)}
    described = server.files.write_images([(titles[n], prediction.images[n]) for n in names])
    outputs = [{"name": name, **meta} for name, meta in zip(names, described, strict=True)]
    tables = [table_message(name, titles[name], frame) for name, frame in prediction.tables.items()]
    info = {name: _info(prediction, name, title) for name in (*names, *prediction.tables)}
    return {"outputs": outputs, "tables": tables, "notes": notes, "info": info,
            "weights_format": prediction.weights_format, "device": prediction.device}


def _info(prediction: Prediction, name: str, title: str) -> str:
    """How an output was made, for its ImageJ ``Info`` property (as ``Prediction.save`` writes it)."""
    lines = [f"deepij output: {name}", f"input: {title}"]
    lines += [f"{key}: {value}" for key, value in prediction.provenance.items() if key != "outputs"]
    return "\n".join(lines)


def table_message(name: str, title: str, frame: pd.DataFrame) -> dict[str, Any]:
    """A table as the plugin rebuilds it into a ResultsTable: columns of numbers (None for NaN) or text.

    Examples
    --------
    >>> import pandas as pd
    >>> table_message("objects", "m_objects_a", pd.DataFrame({"area": [3.0, float("nan")], "k": ["a", "b"]}))
    {'name': 'objects', 'title': 'm_objects_a', 'rows': 2, 'columns': [{'name': 'area', 'numeric': True, \
'values': [3.0, None]}, {'name': 'k', 'numeric': False, 'values': ['a', 'b']}], 'labels': None}
    """
    import math

    import pandas as pd

    columns = []
    for column in frame.columns:
        series = frame[column]
        numeric = bool(pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series))
        values = [
            None if cell is None or (isinstance(cell, float) and math.isnan(cell)) or cell is pd.NA
            else (float(cell) if numeric else cell if isinstance(cell, str) else float(cell))
            for cell in series.tolist()
        ]
        columns.append({"name": str(column), "numeric": numeric, "values": values})
    index = frame.index
    default = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None
    labels = None if default or len(frame) == 0 else ["" if v is None else str(v) for v in index]
    return {"name": name, "title": title, "rows": len(frame), "columns": columns, "labels": labels}


OPERATIONS = {"plan": plan, "predict": predict}
