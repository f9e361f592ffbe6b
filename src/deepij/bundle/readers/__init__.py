"""Descriptor readers: model.yaml 0.3, rdf.yaml 0.4, rdf/bioimageio.yaml 0.5 -> one :class:`ModelDescription`.

:func:`read_description` picks the reader from ``format_version``; everything a reader cannot accept is a
:class:`~deepij.errors.BundleError` naming the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from deepij.bundle.checks import check_description
from deepij.bundle.description import ModelDescription
from deepij.bundle.readers._node import Node
from deepij.bundle.readers.common import (
    METADATA_KEYS,
    MODEL_LEVEL_ARCHITECTURE_KEYS,
    config_without_file_sha256,
    extra_fields,
    read_file_sha256,
    read_metadata,
    read_weights,
)
from deepij.bundle.readers.deepimagej import read_deepimagej
from deepij.bundle.readers.legacy import LEGACY_FILE_LISTS, read_legacy_tensors
from deepij.bundle.readers.v0_5 import read_v0_5_tensors
from deepij.errors import BundleError

SUPPORTED_VERSIONS = ("0.3", "0.4", "0.5")
_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(\.\d+)?")

__all__ = ["SUPPORTED_VERSIONS", "read_description"]


def read_description(data: Any, descriptor: Path, root: Path | None = None) -> ModelDescription:
    """Normalize a parsed descriptor.

    Parameters
    ----------
    data : object
        The parsed YAML (see :func:`deepij.bundle._yaml.load_yaml_file`).
    descriptor : Path
        The descriptor file (named in errors, stored in the description).
    root : Path, optional
        The bundle folder; default the descriptor's folder.

    Returns
    -------
    ModelDescription

    Raises
    ------
    BundleError
        Naming the file, the field, what was found and what was expected.

    Examples
    --------
    >>> from deepij.bundle._yaml import load_yaml_file
    >>> path = Path("examples/nuclei_bundle/rdf.yaml")
    >>> description = read_description(load_yaml_file(path), path)
    >>> description.name, description.format_version
    ('deepij demo nuclei U-Net', '0.5.4')
    """
    descriptor = Path(descriptor)
    doc = Node(data, "", descriptor)
    if not isinstance(data, dict):
        raise BundleError(
            "a descriptor must be a YAML mapping",
            file=descriptor,
            found=_short(data),
            expected="fields such as format_version, name, inputs, outputs, weights",
        )
    version_node = doc.required("format_version", "the descriptor version, e.g. 0.4.10 or 0.5.3")
    version = version_node.required_text()
    minor = _minor_version(version_node, version)
    resource_type = doc.get("type").text()
    if resource_type is not None and resource_type.strip().lower() != "model":
        raise doc.get("type").error("not a model description", found=resource_type, expected="type: model")

    if minor == "0.5":
        inputs, outputs = read_v0_5_tensors(doc)
        interpreted: tuple[str, ...] = METADATA_KEYS
        surplus: dict[str, Any] = {}
    else:
        inputs, outputs, surplus = read_legacy_tensors(doc)
        interpreted = (*METADATA_KEYS, *LEGACY_FILE_LISTS)
    weights = read_weights(
        doc.required("weights", "at least one weights format"), doc if minor == "0.3" else None
    )
    if _uses_model_level_architecture(doc, weights):
        interpreted = (*interpreted, *MODEL_LEVEL_ARCHITECTURE_KEYS)
    config = doc.get("config")
    config.mapping(allow_missing=True)
    extra = extra_fields(doc, interpreted)
    extra.update(surplus)
    description = ModelDescription(
        format_version=version.strip(),
        root=Path(root) if root is not None else descriptor.parent,
        descriptor=descriptor,
        inputs=inputs,
        outputs=outputs,
        weights=weights,
        deepimagej=read_deepimagej(config),
        config=config_without_file_sha256(
            {k: v for k, v in config.mapping(allow_missing=True).items() if k != "deepimagej"}
        ),
        extra=extra,
        **read_metadata(doc),
        file_sha256=read_file_sha256(doc, tensor_files=minor == "0.5"),
    )
    check_description(description)
    return description


def _uses_model_level_architecture(doc: Node, weights: dict[str, Any]) -> bool:
    state_dict = doc.get("weights").get("pytorch_state_dict")
    return "pytorch_state_dict" in weights and not state_dict.get("architecture").present


def _minor_version(node: Node, version: str) -> str:
    match = _VERSION.match(version)
    minor = f"{match.group(1)}.{match.group(2)}" if match else None
    if minor not in SUPPORTED_VERSIONS:
        raise node.error(
            "unsupported descriptor format_version",
            found=version,
            expected="0.3.x (deepImageJ model.yaml), 0.4.x or 0.5.x",
        )
    return minor


def _short(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= 80 else text[:77] + "..."
