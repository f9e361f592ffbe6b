"""Write a :class:`ModelDescription` back as a descriptor (0.5 ``rdf.yaml``, or 0.4 for deepImageJ 2.x).

Reading what :func:`write_descriptor` wrote gives the same description back (only ``root``, ``descriptor``
and ``format_version`` differ). What a version cannot express is refused with a :class:`BundleError`
(0.4: inputs sized by reference, outputs referring to several tensors).

The sha256 of files (:attr:`ModelDescription.file_sha256`) go beside their references in 0.5
(``{source, sha256}``); 0.4 references are plain paths, so there they go to ``config.deepij.file_sha256``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepij.bundle._arguments import require_description
from deepij.bundle._yaml import dump_yaml
from deepij.bundle.checks import check_file_sha256
from deepij.bundle.description import (
    ArchitectureSpec,
    AxisSpec,
    DeepImageJConfig,
    FixedSize,
    ImageJStep,
    ModelDescription,
    ParameterizedSize,
    ProcessingOp,
    ReferenceSize,
    TensorSpec,
    WeightsEntry,
)
from deepij.bundle.locations import check_path_argument
from deepij.bundle.readers.common import DEEPIJ_CONFIG, FILE_SHA256_CONFIG
from deepij.bundle.readers.legacy import LEGACY_FILE_LISTS
from deepij.bundle.writer_v0_4 import legacy_tensors, legacy_weights_extra
from deepij.errors import ArgumentError, BundleError
from deepij.files import write_atomically

WRITTEN_VERSIONS = {"0.5": "0.5.4", "0.4": "0.4.10"}
_LONG_IDS = {"b": "batch", "c": "channel", "i": "index", "t": "time"}
_AXIS_TYPES = {
    "b": "batch",
    "c": "channel",
    "i": "index",
    "t": "time",
    "x": "space",
    "y": "space",
    "z": "space",
}
_VERSION_KEYS = {
    "torchscript": "pytorch_version",
    "pytorch_state_dict": "pytorch_version",
    "tensorflow_saved_model_bundle": "tensorflow_version",
    "keras_hdf5": "tensorflow_version",
    "keras_v3": "tensorflow_version",
    "tensorflow_js": "tensorflow_version",
}


def write_descriptor(description: ModelDescription, path: str | Path, format_version: str = "0.5") -> Path:
    """Write ``description`` as a descriptor file.

    Parameters
    ----------
    description : ModelDescription
        What to write. File references stay as they are (relative to the bundle folder).
    path : str or Path
        The file to write, or a folder (then ``rdf.yaml`` in it). Written atomically.
    format_version : str
        ``"0.5"`` (default) or ``"0.4"`` (what deepImageJ 2.x reads, with ``config.deepimagej``).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    BundleError
        The description cannot be expressed in that version, or gives a sha256 for a file it does not name.

    Examples
    --------
    >>> import tempfile
    >>> from deepij.bundle import open_bundle
    >>> description = open_bundle("examples/nuclei_bundle")
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_descriptor(description, folder).name
    'rdf.yaml'
    >>> again = open_bundle(folder, verify=False)  # (the weights were not copied there)
    >>> again.inputs == description.inputs, again.outputs == description.outputs
    (True, True)
    >>> old = write_descriptor(description, folder / "model.yaml", format_version="0.4")  # for deepImageJ 2.x
    >>> open_bundle(old, verify=False).format_version
    '0.4.10'
    """
    require_description(description)
    check_path_argument(path, "path")
    text = dump_yaml(descriptor_data(description, format_version))
    path = Path(path)
    if path.is_dir():
        path = path / "rdf.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, text)


def descriptor_data(description: ModelDescription, format_version: str = "0.5") -> dict[str, Any]:
    """The descriptor as plain data (what :func:`write_descriptor` dumps as YAML)."""
    require_description(description)
    check_file_sha256(description)  # a sha256 with no reference to stand by would be lost
    version = ".".join(str(format_version).split(".")[:2])
    if not isinstance(format_version, str) or version not in WRITTEN_VERSIONS:
        raise ArgumentError(
            f"format_version: cannot write descriptor version {format_version!r}; expected '0.5' or '0.4'"
        )
    data: dict[str, Any] = {
        "format_version": WRITTEN_VERSIONS[version],
        "type": "model",
        "name": description.name,
    }
    data.update(_metadata(description, version))
    if version == "0.5":
        data["inputs"] = [_tensor(t, description, is_output=False) for t in description.inputs]
        data["outputs"] = [_tensor(t, description, is_output=True) for t in description.outputs]
    else:
        data.update(legacy_tensors(description))
    data["weights"] = {
        fmt: _weights(entry, description, version) for fmt, entry in description.weights.items()
    }
    config = dict(description.config)
    if description.deepimagej != DeepImageJConfig():
        config["deepimagej"] = deepimagej_data(description.deepimagej)
    if version == "0.4" and description.file_sha256:
        config[DEEPIJ_CONFIG] = _with_file_sha256(config.get(DEEPIJ_CONFIG), description)
    if config:
        data["config"] = config
    for key, value in description.extra.items():
        if key in LEGACY_FILE_LISTS:
            if version == "0.4":
                data[key] = value  # the full list (it may name a results table too)
        elif key not in data:
            data[key] = value
    return plain(data)


def _metadata(d: ModelDescription, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": d.description}
    for key in ("id", "version", "license"):
        if getattr(d, key) is not None:
            out[key] = getattr(d, key)
    for key in ("authors", "maintainers"):
        people = getattr(d, key)
        if people:
            out[key] = [{k: v for k, v in vars(p).items() if v is not None} for p in people]
    if d.cite:
        out["cite"] = [{k: v for k, v in vars(c).items() if v is not None} for c in d.cite]
    if d.documentation is not None:
        out["documentation"] = _file(d.documentation, d) if version == "0.5" else d.documentation
    if d.tags:
        out["tags"] = list(d.tags)
    if d.covers:
        out["covers"] = [_file(c, d) for c in d.covers] if version == "0.5" else list(d.covers)
    if d.attachments:
        out["attachments"] = _attachments(d.attachments, d, version)
    return out


def _file(path: str, d: ModelDescription, *, as_mapping: bool = False) -> Any:
    """A 0.5 file reference: ``{source, sha256}`` when the sha256 is known, else the path as it is
    (``as_mapping=True``: ``{source}`` even then, for fields that take only file descriptions)."""
    digest = d.file_sha256.get(path)
    if digest is not None:
        return {"source": path, "sha256": digest}
    return {"source": path} if as_mapping else path


def _attachments(files: tuple[str, ...], d: ModelDescription, version: str) -> Any:
    if version == "0.5":
        return [_file(f, d, as_mapping=True) for f in files]
    return {"files": list(files)}


def _with_file_sha256(section: Any, d: ModelDescription) -> dict[str, Any]:
    """``config.deepij`` of a 0.4 descriptor with the files' sha256 in it."""
    if section is not None and not isinstance(section, Mapping):
        raise BundleError(
            "cannot be written as a 0.4 descriptor: config.deepij is not a mapping, so the files' sha256 "
            "have no place",
            file=d.descriptor,
            field="config.deepij",
            found=section,
        )
    return {**(section or {}), FILE_SHA256_CONFIG: dict(d.file_sha256)}


# --- 0.5 tensors -----------------------------------------------------------------------------------------


def axis_id_05(letter: str) -> str:
    """The 0.5 axis id of a letter (``b`` -> ``batch``, ``y`` -> ``y``)."""
    return _LONG_IDS.get(letter, letter)


def _tensor(t: TensorSpec, d: ModelDescription, is_output: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": t.name}
    if t.description:
        out["description"] = t.description
    out["axes"] = [_axis(a, d) for a in t.axes]
    if t.test_tensor is not None:
        out["test_tensor"] = _file(t.test_tensor, d, as_mapping=True)
    if t.sample_tensor is not None:
        out["sample_tensor"] = _file(t.sample_tensor, d, as_mapping=True)
    extra = dict(t.extra)
    data: dict[str, Any] = {"type": t.data_type}
    extra_data = extra.pop("data", None)
    if t.data_range is not None and not (isinstance(extra_data, Mapping) and "values" in extra_data):
        low, high = t.data_range  # 0.5 writes an open end as null
        data["range"] = [None if low == -math.inf else low, None if high == math.inf else high]
    if isinstance(extra_data, Mapping):
        data.update({k: v for k, v in extra_data.items() if k not in data})
    out["data"] = data
    if t.processing:
        out["postprocessing" if is_output else "preprocessing"] = [_op_05(op) for op in t.processing]
    out.update({k: v for k, v in extra.items() if k not in out})
    return out


def _axis(a: AxisSpec, d: ModelDescription) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _AXIS_TYPES[a.id]}
    if a.id in "xyz":
        out["id"] = a.id
    if a.description:
        out["description"] = a.description
    if a.id == "c" and a.channel_names:
        out["channel_names"] = list(a.channel_names)
    elif a.size is not None:
        out["size"] = _size_05(a, d)
    scale = _written_scale(a, d)
    if scale != 1.0:
        out["scale"] = scale
    if a.unit is not None:
        out["unit"] = a.unit
    if a.halo:
        out["halo"] = a.halo
    return out


def _size_05(a: AxisSpec, d: ModelDescription) -> Any:
    rule = a.size
    if isinstance(rule, FixedSize):
        return rule.value
    if isinstance(rule, ParameterizedSize):
        return {"min": rule.min, "step": rule.step}
    assert isinstance(rule, ReferenceSize)
    if rule.scale == 0:
        return round(rule.offset)
    offset = int(rule.offset) if float(rule.offset).is_integer() else rule.offset
    return {"tensor_id": rule.tensor, "axis_id": axis_id_05(rule.axis), "offset": offset}


def _written_scale(a: AxisSpec, d: ModelDescription) -> float:
    """0.5 folds a reference's scale into the axes' scales: axis.scale = ref_axis.scale / rule.scale."""
    rule = a.size
    if isinstance(rule, ReferenceSize) and rule.scale > 0:
        target = next((t for t in (*d.inputs, *d.outputs) if t.name == rule.tensor), None)
        ref = next((x for x in target.axes if x.id == rule.axis), None) if target else None
        if ref is not None:
            return ref.scale / rule.scale
    return a.scale


def _op_05(op: ProcessingOp) -> dict[str, Any]:
    out: dict[str, Any] = {"id": op.name}
    kwargs = dict(op.kwargs)
    if isinstance(kwargs.get("axes"), str):
        kwargs["axes"] = [axis_id_05(a) for a in kwargs["axes"]]
    if isinstance(kwargs.get("axis"), str) and len(kwargs["axis"]) == 1:
        kwargs["axis"] = axis_id_05(kwargs["axis"])
    if op.code is not None:  # a custom op's file and callable sit beside its id
        out.update(callable=op.code.callable, source=op.code.source)
        if op.code.sha256:
            out["sha256"] = op.code.sha256
    if kwargs:
        out["kwargs"] = kwargs
    return out


# --- weights and config ----------------------------------------------------------------------------------


def _weights(entry: WeightsEntry, d: ModelDescription, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"source": entry.source}
    if entry.sha256 is not None:
        out["sha256"] = entry.sha256
    if entry.architecture is not None:
        if version == "0.5":
            out["architecture"] = _architecture_05(entry.architecture)
        else:
            out.update(legacy_weights_extra(entry.architecture))
    if entry.framework_version is not None and entry.format in _VERSION_KEYS:
        out[_VERSION_KEYS[entry.format]] = entry.framework_version
    if entry.parent is not None:
        out["parent"] = entry.parent
    if entry.attachments:
        out["attachments"] = _attachments(entry.attachments, d, version)
    out.update({k: v for k, v in entry.extra.items() if k not in out})
    return out


def _architecture_05(arch: ArchitectureSpec) -> dict[str, Any]:
    is_file = arch.source.endswith(".py") or "://" in arch.source or "/" in arch.source
    out: dict[str, Any] = {("source" if is_file else "import_from"): arch.source, "callable": arch.callable}
    if arch.sha256 is not None:
        out["sha256"] = arch.sha256
    out["kwargs"] = dict(arch.kwargs)
    return out


def deepimagej_data(config: DeepImageJConfig) -> dict[str, Any]:
    """The ``config.deepimagej`` section as deepImageJ 2.x writes it."""
    out: dict[str, Any] = {"pyramidal_model": config.pyramidal_model, "allow_tiling": config.allow_tiling}
    keys = {}
    if config.tensorflow_tag is not None:
        keys["tensorflow_model_tag"] = config.tensorflow_tag
    if config.tensorflow_signature is not None:
        keys["tensorflow_siganture_def"] = config.tensorflow_signature  # sic: the key deepImageJ reads
    if keys:
        out["model_keys"] = keys
    if config.test_information:
        out["test_information"] = dict(config.test_information)
    out["prediction"] = {
        "preprocess": [_step(s) for s in config.preprocess] or [{"spec": None}],
        "postprocess": [_step(s) for s in config.postprocess] or [{"spec": None}],
    }
    out.update({k: v for k, v in config.extra.items() if k not in out})
    return out


def _step(step: ImageJStep) -> dict[str, Any]:
    if step.kind == "macro":
        return {"spec": "ij.IJ::runMacroFile", "kwargs": step.file}
    call = (step.java_class or "") + (f"::{step.method}" if step.method else "")
    out: dict[str, Any] = {"spec": f"{step.file} {call}" if call else step.file}
    if step.config_files:
        out["kwargs"] = list(step.config_files)
    return out


def plain(value: Any) -> Any:
    """Plain YAML-safe data: mappings -> dict, tuples -> list, numpy scalars -> Python, paths -> text."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        return value.item()
    return value


__all__ = ["descriptor_data", "write_descriptor"]
