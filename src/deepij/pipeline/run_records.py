"""Completion records of a folder run: what made an image's outputs and what they are, so that ``--resume``
keeps only what it can check.

When every output of an image is in place, :func:`write_record` writes ``.deepij-batch/<image>.json``
(atomically, synced to disk, last):

- ``source``: the input file (name, size, modification time);
- ``made by``: the bundle (its name, the descriptor's sha256, the sha256 of each ImageJ step file: macros,
  jars, their config files) and the options that change results (:data:`RESULT_OPTIONS`, defaults filled
  in, so ``tile=None`` and no ``tile`` are the same);
- ``weights``: the weights format that ran and its file's sha256;
- ``ran``: the runtime and device that ran, and deepij's version (for people: not compared);
- ``outputs``: each file written, as its path relative to the output folder, its size and its sha256.

:func:`check_record` says whether an image is done: its record is there, readable, of this image as it is
now, made by this bundle with these options and these weights, and lists outputs that are all inside the
output folder (no ``..``, no absolute path, no link out of it), regular files, of the recorded size and
sha256. Anything else: the image runs again, and the verdict says why (shown in the run's summary), e.g.
``options changed: processing 'spec' -> 'macros'``, ``made by another bundle: descriptor sha256 3f1c...
-> 9a02...``, ``its output a_mask.tif is 812 bytes, its record says 4096``. The deepij version is not
compared: a new deepij does not redo a finished folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import DeepijError
from deepij.files import cached_sha256, sha256_file, write_atomically

if TYPE_CHECKING:
    from deepij.bundle.description import ModelDescription
    from deepij.pipeline.model import Model
    from deepij.pipeline.outputs import Prediction

RECORD_VERSION = 2
"""The record layout this module writes (records without it, from older deepij, are redone)."""
RESULT_OPTIONS = (
    "processing", "tile", "tiling", "overlap", "margin", "weights_format", "runtime", "device", "precision",
    "non_finite", "axes", "max_memory", "batch_size",
)
"""The options of :meth:`Model.predict` that can change an output (``logging``, ``progress`` cannot)."""


@dataclass(frozen=True)
class Verdict:
    """What a record says about an image: its outputs when it is done, else why it runs (again).

    ``reason`` is None when there is nothing to tell (no record: the image never finished).
    """

    outputs: list[Path] | None = None
    reason: str | None = None


def made_by(model: Model, options: Mapping[str, Any]) -> dict[str, Any]:
    """What makes an image's outputs, as far as it is known before running: the bundle
    (:func:`bundle_identity`) and the options (:func:`result_options`)."""
    return {"bundle": bundle_identity(model.description), "options": result_options(options)}


def bundle_identity(description: ModelDescription) -> dict[str, Any]:
    """The bundle's name, its descriptor's sha256 and those of its ImageJ step files (macros, jars, config
    files): what changes when the bundle is switched or edited."""
    steps = (*description.deepimagej.preprocess, *description.deepimagej.postprocess)
    files = sorted({name for step in steps for name in (step.file, *step.config_files)})
    return {
        "name": description.name,
        "descriptor sha256": _sha256_or_absent(description.descriptor),
        "files sha256": {name: _bundle_file_sha256(description, name) for name in files},
    }


def result_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of :data:`RESULT_OPTIONS` with :meth:`Model.predict`'s defaults filled in, as JSON values.

    Examples
    --------
    >>> result_options({"tile": (256, 256), "processing": "spec"})["tile"]
    [256, 256]
    >>> result_options({})["processing"], result_options({})["non_finite"]
    ('auto', 'raise')
    """
    import inspect

    from deepij.pipeline.model import Model

    parameters = inspect.signature(Model.predict).parameters
    return {name: _plain(options.get(name, parameters[name].default)) for name in RESULT_OPTIONS}


def weights_sha256(description: ModelDescription, weights_format: str) -> str:
    """The sha256 of the weights file (or folder) of ``weights_format`` in the bundle: its content where the
    file is here, else the descriptor's own sha256 (weights given by URL)."""
    entry = description.weights.get(weights_format)
    if entry is None:
        return "not in the bundle"
    if entry.is_url:
        return entry.sha256 or "not given"
    try:
        path = description.path(entry.source)
    except DeepijError:
        return "outside the bundle"
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        listing = "".join(f"{p.relative_to(path).as_posix()}:{cached_sha256(p)};" for p in files)
        return hashlib.sha256(listing.encode("utf-8")).hexdigest()
    return _sha256_or_absent(path) if path.exists() else entry.sha256 or "missing"


def write_record(
    marker: Path,
    source: Path,
    folder: Path,
    made: Mapping[str, Any],
    prediction: Prediction,
    outputs: Sequence[Path],
    description: ModelDescription,
) -> None:
    """Write the record that says ``source`` is done (module notes), the outputs hashed as they are now."""
    from deepij import __version__

    record = {
        "deepij record": RECORD_VERSION,
        "source": source_record(source),
        "made by": dict(made),
        "weights": {
            "format": prediction.weights_format,
            "sha256": weights_sha256(description, prediction.weights_format),
        },
        "ran": {"runtime": prediction.runtime, "device": prediction.device, "deepij version": __version__},
        "outputs": [_output_entry(path, folder) for path in outputs],
    }
    write_atomically(marker, json.dumps(record, indent=1), sync=True)


def _output_entry(path: Path, folder: Path) -> dict[str, Any]:
    size = path.stat().st_size
    return {"path": path.relative_to(folder).as_posix(), "size": size, "sha256": sha256_file(path)}


def source_record(source: Path) -> dict[str, Any]:
    stat = source.stat()
    return {"name": source.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_record(marker: Path) -> dict[str, Any]:
    """A record as written; OSError or ValueError (naming what is wrong) when it is not one."""
    if marker.is_symlink() or (marker.exists() and not marker.is_file()):
        raise ValueError("it is not a file")
    record = json.loads(marker.read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError(f"it holds {type(record).__name__}, not a record")
    if record.get("deepij record") != RECORD_VERSION:
        raise ValueError("an older deepij wrote it, without the bundle, options and hashes to check")
    return record


def check_record(
    marker: Path, source: Path, folder: Path, made: Mapping[str, Any], description: ModelDescription
) -> Verdict:
    """Whether ``source`` is done in ``folder``, by its record ``marker`` (module notes)."""
    if not os.path.lexists(marker):
        return Verdict()
    try:
        record = read_record(marker)
        reason = next(_problems(record, source, folder, made, description), None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        reason = f"its record {marker.name} cannot be used ({_describe(error)})"
    if reason is not None:
        return Verdict(reason=reason)
    return Verdict(outputs=[folder / entry["path"] for entry in record["outputs"]])


def _problems(
    record: dict[str, Any], source: Path, folder: Path, made: Mapping[str, Any], description: ModelDescription
) -> Iterator[str]:
    """Why the record does not vouch for the image, most telling first (none: it does)."""
    was, now = record["source"], source_record(source)
    if was.get("name") != now["name"]:
        yield f"its record is of another image, {was.get('name')!r}"
    elif was != now:
        yield f"the image changed since it was done ({', '.join(_differences(was, now))})"
    was_made = record["made by"]
    if was_made.get("bundle") != made["bundle"]:
        yield "made by another bundle: " + ", ".join(_differences(was_made.get("bundle"), made["bundle"]))
    if was_made.get("options") != made["options"]:
        yield "options changed: " + ", ".join(_differences(was_made.get("options"), made["options"]))
    weights = record["weights"]
    current = weights_sha256(description, str(weights["format"]))
    if weights.get("sha256") != current:
        recorded = _short(weights.get("sha256"))
        yield f"the {weights['format']} weights changed (sha256 {recorded} -> {_short(current)})"
    outputs = record["outputs"]
    if not isinstance(outputs, list) or not outputs:
        yield "its record lists no outputs"
    for entry in outputs:
        problem = _output_problem(entry, folder)
        if problem is not None:
            yield problem


def _output_problem(entry: Any, folder: Path) -> str | None:
    """What is wrong with one output a record lists (None: it is there as recorded)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return f"its record lists an output without a path ({entry!r})"
    text = entry["path"]
    relative = Path(text)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts or text.startswith("."):
        return f"its record names {text!r}, which is not a file inside the output folder"
    path = folder / relative
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside or path.is_symlink():
        return f"its record names {text!r}, a link out of the output folder"
    if not path.is_file():
        return f"its output {text} is missing" if not path.exists() else f"its output {text} is not a file"
    size = path.stat().st_size
    if size != entry.get("size"):
        return f"its output {text} is {size} bytes, its record says {entry.get('size')}"
    if sha256_file(path) != entry.get("sha256"):
        return f"its output {text} changed since it was written (sha256 differs from its record)"
    return None


def _differences(recorded: Any, current: Any, where: str = "") -> list[str]:
    """``key: recorded -> current`` for each value that differs (nested keys joined by dots)."""
    if not (isinstance(recorded, Mapping) and isinstance(current, Mapping)):
        return [f"{where or 'value'} {_show(recorded)} -> {_show(current)}"] if recorded != current else []
    found: list[str] = []
    for key in sorted({*recorded, *current}, key=str):
        inner = f"{where}.{key}" if where else str(key)
        found += _differences(recorded.get(key, "<none>"), current.get(key, "<none>"), inner)
    return found


def _show(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return _short(value)  # a sha256
    return repr(value)


def _short(digest: Any) -> str:
    text = str(digest)
    return f"{text[:12]}..." if len(text) == 64 else text


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError):
        return f"{type(error).__name__}: {error.strerror or error}"
    if isinstance(error, KeyError):
        return f"no {error} in it"
    return str(error) or type(error).__name__


def _plain(value: Any) -> Any:
    """An option as a JSON value (tuples as lists, mappings with sorted text keys)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def _sha256_or_absent(path: Path) -> str:
    try:
        return cached_sha256(path)
    except OSError:
        return "missing"


def _bundle_file_sha256(description: ModelDescription, name: str) -> str:
    try:
        return _sha256_or_absent(description.path(name))
    except DeepijError:
        return "outside the bundle"
