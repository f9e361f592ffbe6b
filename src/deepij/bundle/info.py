"""What ``deepij info`` shows: a summary of a bundle, as data (``--json``) or as text."""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path
from typing import Any

from deepij.bundle._arguments import require_bool, require_description
from deepij.bundle.checks import files_with_sha256, named_files
from deepij.bundle.description import (
    FixedSize,
    ImageJStep,
    ModelDescription,
    ParameterizedSize,
    ProcessingOp,
    ReferenceSize,
    SizeRule,
    TensorSpec,
)
from deepij.bundle.paths import inside_bundle
from deepij.bundle.quantities import parse_quantity
from deepij.bundle.weights import TF_FORMAT, cached_sha256, holding_saved_model, local_path
from deepij.errors import BundleError


def size_rule_text(rule: SizeRule) -> str:
    """A size rule in words: ``"64"``, ``"64+16k"``, ``"raw.y*2+0"``, ``"any"``.

    Examples
    --------
    >>> size_rule_text(ParameterizedSize(64, 16)), size_rule_text(ReferenceSize("raw", "y", 0.5, -4))
    ('64+16k', 'raw.y*0.5-4')
    """
    if rule is None:
        return "any"
    if isinstance(rule, FixedSize):
        return str(rule.value)
    if isinstance(rule, ParameterizedSize):
        return f"{rule.min}+{rule.step}k"
    assert isinstance(rule, ReferenceSize)
    offset = f"{rule.offset:+g}" if rule.offset else ""
    return f"{rule.tensor}.{rule.axis}*{rule.scale:g}{offset}"


def weights_status(description: ModelDescription, fmt: str, *, verify: bool = True) -> str:
    """``verified``, ``present`` (no sha256 to check, or not checked), ``unpacked`` (TF SavedModel folder
    only), ``sha256 mismatch``, ``missing`` or ``remote``."""
    entry = description.weights[fmt]
    if entry.is_url:
        return "remote"
    try:
        path = local_path(description, entry.source)
    except BundleError:
        return "missing"
    if not path.is_file():
        if fmt == TF_FORMAT:
            unpacked = holding_saved_model(description.root / Path(entry.source).stem)
            if unpacked is not None or holding_saved_model(description.root) is not None:
                return "unpacked"
        return "missing"
    if not verify or entry.sha256 is None:
        return "present"
    return "verified" if cached_sha256(path) == entry.sha256 else "sha256 mismatch"


def file_status(description: ModelDescription, relative: str, sha256: str, *, verify: bool = True) -> str:
    """The state of a file the descriptor gives a sha256 (not a weights file): ``verified``, ``present``
    (not checked), ``sha256 mismatch`` or ``missing``."""
    try:
        path = local_path(description, relative)
    except BundleError:
        return "missing"
    if not path.is_file():
        return "missing"
    if not verify:
        return "present"
    return "verified" if cached_sha256(path) == sha256 else "sha256 mismatch"


def summarize(description: ModelDescription, *, verify: bool = True) -> dict[str, Any]:
    """The bundle in plain data (JSON-ready).

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> summary = summarize(open_bundle("examples/nuclei_bundle"))
    >>> summary["name"], summary["inputs"][0]["axes"], summary["missing_files"]
    ('deepij demo nuclei U-Net', 'bcyx', [])
    """
    require_description(description)
    require_bool(verify, "verify")
    dij = description.deepimagej
    return {
        "name": description.name,
        "format_version": description.format_version,
        "descriptor": str(description.descriptor),
        "description": description.description,
        "authors": [p.name for p in description.authors],
        "license": description.license,
        "documentation": description.documentation,
        "inputs": [_tensor(t) for t in description.inputs],
        "outputs": [_tensor(t) for t in description.outputs],
        "deepimagej": {
            "pyramidal_model": dij.pyramidal_model,
            "allow_tiling": dij.allow_tiling,
            "tensorflow_tag": dij.tensorflow_tag,
            "tensorflow_signature": dij.tensorflow_signature,
            "preprocess": [_step(s) for s in dij.preprocess],
            "postprocess": [_step(s) for s in dij.postprocess],
            "test_runtime_s": _runtime(dij.test_information),
        },
        "weights": {
            fmt: {
                "source": entry.source,
                "sha256": entry.sha256,
                "status": weights_status(description, fmt, verify=verify),
            }
            for fmt, entry in description.weights.items()
        },
        "file_sha256": [
            {
                "field": field,
                "path": path,
                "sha256": digest,
                "status": file_status(description, path, digest, verify=verify),
            }
            for field, path, digest in files_with_sha256(description)
        ],
        "missing_files": missing_files(description),
    }


def missing_files(description: ModelDescription) -> list[dict[str, str]]:
    """The files the descriptor names that the bundle folder lacks (macros and jars of the deepImageJ
    processing, attachments, test and sample files, architecture files, documentation, covers), as
    ``{"field": ..., "path": ...}``. Weights files are not listed here: their status says it.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from deepij.bundle import open_bundle
    >>> copy = shutil.copytree("examples/nuclei_bundle", Path(tempfile.mkdtemp()) / "nuclei")
    >>> (copy / "README.md").unlink()
    >>> missing_files(open_bundle(copy))
    [{'field': 'documentation', 'path': 'README.md'}]
    """
    missing = []
    seen = set()
    for field, path in named_files(description):
        if (field.startswith("weights.") and field.endswith(".source")) or (field, path) in seen:
            continue
        seen.add((field, path))
        try:
            present = inside_bundle(description.root, path, descriptor=description.descriptor).is_file()
        except BundleError:
            present = False
        if not present:
            missing.append({"field": field, "path": path})
    return missing


def printable(text: str) -> str:
    r"""``text`` with control and format characters escaped (``\x1b``, ``\u202e``), line breaks kept:
    names in a stranger's descriptor must not drive the terminal (set its title, move the cursor, hide text).

    Examples
    --------
    >>> printable("evil\x1b]0;pwned\x07 model\nnext line")
    'evil\\x1b]0;pwned\\x07 model\nnext line'
    """
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char == "\n" or unicodedata.category(char) not in _UNSAFE:
            out.append(char)
        else:
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return "".join(out)


def _tensor(t: TensorSpec) -> dict[str, Any]:
    return {
        "name": t.name,
        "axes": t.axes_str,
        "data_type": t.data_type,
        "data_range": None if t.data_range is None else [_json_number(v) for v in t.data_range],
        "sizes": {a.id: size_rule_text(a.size) for a in t.axes},
        "halo": {a.id: a.halo for a in t.axes if a.halo},
        "processing": [_op_text(op) for op in t.processing],
        "test_tensor": t.test_tensor,
    }


_INSTANCE_OPS = ("stardist_postprocessing", "cellpose_flow_dynamics", "custom")


def _op_text(op: ProcessingOp) -> str:
    """An op's name; an instance op's with its kwargs (and a custom op's callable and file).

    Examples
    --------
    >>> _op_text(ProcessingOp("stardist_postprocessing", {"prob_threshold": 0.5, "grid": [2, 2]}))
    'stardist_postprocessing(prob_threshold=0.5, grid=[2, 2])'
    """
    if op.name not in _INSTANCE_OPS:
        return op.name
    parts = [f"{op.code.callable} from {op.code.source}"] if op.code is not None else []
    parts += [f"{k}={v!r}" for k, v in op.kwargs.items()]
    return f"{op.name}({', '.join(parts)})"


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _step(step: ImageJStep) -> str:
    if step.kind == "macro":
        return f"macro {step.file}"
    call = (step.java_class or "") + (f"::{step.method}" if step.method else "")
    configs = f" (config {', '.join(step.config_files)})" if step.config_files else ""
    return f"java {step.file}{' ' + call if call else ''}{configs}"


def _runtime(test_information: Any) -> float | None:
    value = test_information.get("runtime") if isinstance(test_information, dict) else None
    parsed = parse_quantity(value)
    return None if parsed is None else parsed[0]


def summary_json(summary: dict[str, Any]) -> str:
    r"""The summary as JSON text, non-ASCII kept, every control or format character escaped (``json``
    leaves DEL, C1 controls and bidirectional overrides raw, and terminals act on them).

    Examples
    --------
    >>> print(summary_json({"name": "a\u202eb\x9b"}))
    {
      "name": "a\u202eb\u009b"
    }
    """
    import json

    text = json.dumps(summary, indent=2, ensure_ascii=False)
    return "".join(
        f"\\u{ord(c):04x}" if c != "\n" and unicodedata.category(c) in _UNSAFE and ord(c) < 0x10000 else c
        for c in text
    )


_UNSAFE = ("Cc", "Cf", "Cs", "Zl", "Zp")


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few readable lines."""
    lines = [
        f"{summary['name']}  (format {summary['format_version']})",
        f"  descriptor: {summary['descriptor']}",
    ]
    for kind in ("inputs", "outputs"):
        for t in summary[kind]:
            sizes = " ".join(f"{axis}={rule}" for axis, rule in t["sizes"].items())
            halo = f"  halo {t['halo']}" if t["halo"] else ""
            lines.append(f"  {kind[:-1]} {t['name']!r}: axes {t['axes']} ({sizes}) {t['data_type']}{halo}")
            if t["processing"]:
                stage = "pre" if kind == "inputs" else "post"
                lines.append(f"    spec {stage}processing: {', '.join(t['processing'])}")
    dij = summary["deepimagej"]
    for key in ("preprocess", "postprocess"):
        if dij[key]:
            lines.append(f"  deepImageJ {key}: {'; '.join(dij[key])}")
    flags = [f"tiling {'allowed' if dij['allow_tiling'] else 'off'}"]
    if dij["pyramidal_model"]:
        flags.append("pyramidal")
    if dij["tensorflow_tag"] or dij["tensorflow_signature"]:
        flags.append(f"TF tag {dij['tensorflow_tag']!r}, signature {dij['tensorflow_signature']!r}")
    lines.append("  " + ", ".join(flags))
    lines.append("  weights:")
    for fmt, entry in summary["weights"].items():
        lines.append(f"    {fmt:<30} {entry['status']:<16} {entry['source']}")
    if summary.get("file_sha256"):
        lines.append("  files with a sha256:")
        lines += [f"    {f['field']:<30} {f['status']:<16} {f['path']}" for f in summary["file_sha256"]]
    if summary.get("missing_files"):
        lines.append("  missing files (named by the descriptor, not in the bundle folder):")
        lines += [f"    {m['path']}  ({m['field']})" for m in summary["missing_files"]]
    return printable("\n".join(lines))
