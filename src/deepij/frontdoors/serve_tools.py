"""The worker's other operations for the plugin: the models the dialog lists, installing a model, reading an
input file as deepij reads it, validating images, testing a model.

Examples
--------
>>> dialog_axes("bcyx"), dialog_format("torchscript"), dialog_format("keras_hdf5")
('C,Y,X', 'Pytorch', 'keras_hdf5')
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import ArgumentError, DeepijError, InputError

if TYPE_CHECKING:
    from deepij.bundle.description import ModelDescription
    from deepij.frontdoors.serve_request import Request, Served

#: deepImageJ's names of weights formats in ``format=`` (others are named as the bundle names them).
_FORMAT_LABELS = {"torchscript": "Pytorch", "tensorflow_saved_model_bundle": "Tensorflow", "onnx": "Onnx"}


def models(server: Served, request: Request) -> dict[str, Any]:
    """The models the dialog lists, first found first (as ``model=NAME`` finds them), with what it shows."""
    from deepij.bundle.lookup import installed_models
    from deepij.frontdoors.deepimagej_run import model_folders
    from deepij.frontdoors.run_options import RunRequest

    folders = model_folders(RunRequest("2.x"), request.text("imagej_dir"))
    image = request.message.get("image") if isinstance(request.message.get("image"), dict) else None
    listed: list[dict[str, Any]] = []
    seen: set[str] = set()
    for folder in folders:
        for installed in installed_models(folder):
            name = installed.name or installed.folder.name
            if name.casefold() in seen:
                continue  # shadowed: model=NAME finds the one listed before
            seen.add(name.casefold())
            listed.append(_model_entry(name, installed.folder, image))
    return {"folders": [str(f) for f in folders], "models": listed}


def _model_entry(name: str, folder: Path, image: dict[str, Any] | None) -> dict[str, Any]:
    from deepij.bundle import open_bundle
    from deepij.bundle.info import format_summary, summarize

    try:
        description = open_bundle(folder, verify=False)
    except DeepijError as error:
        return {"name": name, "folder": str(folder), "error": str(error), "formats": [], "pre": [],
                "post": [], "axes": "", "tile": "", "info": f"{name}\n  cannot be read: {error}"}
    spec = description.inputs[0]
    dij = description.deepimagej
    return {
        "name": name,
        "folder": str(folder),
        "formats": [dialog_format(f) for f in description.weights],
        "pre": _processing_choices("preprocessing", [s.file for s in dij.preprocess]),
        "post": _processing_choices("postprocessing", [s.file for s in dij.postprocess]),
        "axes": dialog_axes(spec.axes_str),
        "tile": _suggested_tile(description, image),
        "info": format_summary(summarize(description, verify=False)),
    }


def dialog_format(weights_format: str) -> str:
    """A weights format as deepImageJ's ``format=`` names it."""
    return _FORMAT_LABELS.get(weights_format, weights_format)


def dialog_axes(axes: str) -> str:
    """A tensor's axes as deepImageJ's ``axes=`` writes them (no batch axis)."""
    return ",".join(a.upper() for a in axes if a != "b")


def _processing_choices(side: str, files: list[str]) -> list[str]:
    return [", ".join(files), f"no {side}"] if files else [f"no {side}"]


def _suggested_tile(description: ModelDescription, image: dict[str, Any] | None) -> str:
    """deepImageJ's default tile for the current image, in ``axes=`` order ('' without an image)."""
    from deepij.inference.tiling import analyse_tiling

    if image is None:
        return ""
    sizes = {"x": image.get("width"), "y": image.get("height"), "z": image.get("slices"),
             "c": image.get("channels"), "t": image.get("frames")}
    spec = description.inputs[0]
    try:
        tiling = analyse_tiling(description)
        shape = {a: int(sizes[a] or 1) for a in tiling.axes}
        tile = tiling.suggested_tile(shape) if tiling.axes else {}
    except (DeepijError, KeyError, TypeError, ValueError):
        return ""
    values = []
    for axis in spec.axes:
        if axis.id == "b":
            continue
        fixed = getattr(axis.size, "value", None)
        values.append(tile.get(axis.id, fixed if isinstance(fixed, int) else int(sizes.get(axis.id) or 1)))
    return ",".join(str(v) for v in values)


def install(server: Served, request: Request) -> dict[str, Any]:
    """Install a bundle (zip, folder or URL) into ImageJ's ``models/``."""
    from deepij.bundle import install as install_bundle

    source = request.text("source")
    imagej_dir = request.text("imagej_dir")
    if not source:
        raise ArgumentError("source: empty (expected a bundle zip, a bundle folder or an http(s) URL)")
    if not imagej_dir:
        raise ArgumentError("imagej_dir: empty (expected ImageJ's folder, whose models/ receives the model)")
    models_dir = Path(imagej_dir) / "models"
    models_dir.mkdir(parents=True, exist_ok=True)

    def progress(done: int, total: int | None) -> None:
        request.progress("download", int(done), int(total or 0))

    folder = install_bundle(source, models_dir, overwrite=bool(request.message.get("overwrite")),
                            progress=progress)
    from deepij.bundle.lookup import installed_models

    names = [m.name for m in installed_models(models_dir) if m.folder == folder]
    return {"folder": str(folder), "name": names[0] if names and names[0] else folder.name}


def open_file(server: Served, request: Request) -> dict[str, Any]:
    """An input file of ``input_path=``, read as deepij reads it (TIFF with its calibration, ``.npy``); other
    formats are ImageJ's to open (``{"imagej": true}``)."""
    from deepij.pipeline.image_files import TIFF_SUFFIXES, read_image_file

    path = Path(request.text("path") or "")
    if path.suffix.lower() not in (*TIFF_SUFFIXES, ".npy"):
        return {"imagej": True}
    if not path.is_file():
        raise InputError(f"input_path: {path}: no such file")
    image = read_image_file(path)
    described = server.files.write_images([(path.name, image)])
    return {"images": described}


def validate_metrics(server: Served, request: Request) -> dict[str, Any]:
    """The metrics deepImageJ Validate's dialog offers (deepij's image metrics)."""
    from deepij.trust.validate import metric_names

    return {"metrics": metric_names("images")}


def validate_plan(server: Served, request: Request) -> dict[str, Any]:
    """Which of ``reference=`` / ``test=`` are open images (their pixels are sent); the rest are paths."""
    from deepij.frontdoors.deepimagej_validate import parse_validate_options

    parsed = parse_validate_options(request.text("options", "") or "")
    titles = request.message.get("titles") or []
    wanted = [v for v in (parsed.reference, parsed.test) if v in titles]
    return {"images": list(dict.fromkeys(wanted))}


def validate(server: Served, request: Request) -> dict[str, Any]:
    """``run("DeepImageJ Validate", ...)``: the table, as :mod:`deepij.frontdoors.deepimagej_validate`
    makes it in process."""
    from deepij.frontdoors.deepimagej_validate import parse_validate_options
    from deepij.frontdoors.serve_run import table_message
    from deepij.trust.validate import validate as measure

    parsed = parse_validate_options(request.text("options", "") or "")
    described = request.message.get("images") or []
    images = {str(image.name): image for image in server.files.read_images(described)} if described else {}
    reference = _image_or_path(images, parsed.reference, "reference")
    test = _image_or_path(images, parsed.test, "test")
    result = measure(
        reference, test, metrics=parsed.metrics or None, per_slice=parsed.per_slice,
        data_range=parsed.data_range, iou_threshold=parsed.iou, test_suffix=parsed.suffix,
        figures=parsed.figures,
    )
    if parsed.save is not None:
        result.save(parsed.save)
    return {"table": table_message(parsed.table, parsed.table, result.table), "notes": list(result.notes),
            "decimal": parsed.decimal}


def _image_or_path(images: dict[str, Any], value: str, key: str) -> Any:
    """The open image titled ``value``, else the file or folder of that path (as in process)."""
    if value in images:
        return images[value]
    path = Path(value).expanduser()
    if path.exists():
        return path
    raise InputError(
        f"{key}=[{value}]: no open image has this title and no such file or folder exists (expected the "
        f"title of an open image, a file or a folder; open images: {', '.join(images) or 'none'})"
    )


def test(server: Served, request: Request) -> dict[str, Any]:
    """Test Model: ``deepij test`` of a model found by name (whole images: the bundle's own expected outputs,
    per weights format). Its ImageJ steps run in the worker's own ImageJ, as ``deepij test`` runs them."""
    import pandas as pd

    from deepij.frontdoors.deepimagej_run import find_run_model
    from deepij.frontdoors.run_options import parse_run_options
    from deepij.frontdoors.serve_run import table_message
    from deepij.trust.reproduce import test_bundle

    name = request.text("model")
    if not name:
        raise ArgumentError("model: empty (expected the name of an installed model)")
    source = find_run_model(parse_run_options(f"model=[{name}]"), request.text("imagej_dir"))
    model = server.runs.models.get(source)
    request.progress("test", 0, 1, name)
    report = test_bundle(model, tiled=False)
    rows = [
        {"format": fmt.weights_format, "status": fmt.status, "case": c.case, "output": c.output,
         "expected": c.expected_file, "passed": c.passed, "max_abs_error": c.max_abs_error,
         "mismatched": c.mismatched}
        for fmt in report.formats for c in fmt.comparisons
    ]
    frame = pd.DataFrame(rows, columns=["format", "status", "case", "output", "expected", "passed",
                                        "max_abs_error", "mismatched"])
    return {"status": report.status, "report": report.to_text(),
            "table": table_message("Test Model", "Test Model", frame)}


# pytest collects callables named test_* from the modules a test imports: this one is not a test.
test.__test__ = False  # type: ignore[attr-defined]

OPERATIONS = {"models": models, "install": install, "open": open_file, "validate_metrics": validate_metrics,
              "validate_plan": validate_plan, "validate": validate, "test": test}
