"""The description of a built bundle: probed sizes, declared halos, processing, test tensors, weights with
their sha256, ``config.deepimagej`` for deepImageJ, and ``config.deepij.built_by`` (what lets a later
``deepij build --overwrite`` replace the bundle, :mod:`.build_place`).

Examples
--------
>>> output_file(0, "mask"), output_file(1, "flows")
('test_output.npy', 'test_output_flows.npy')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from deepij.bundle.description import ImageJStep, ModelDescription, WeightsEntry
from deepij.trust.build_sources import ONNX_FILE
from deepij.trust.build_tiling import probe_description, rules_description, tf_config
from deepij.trust.build_types import BUILT_BY, EXAMPLE_IMAGE, TEST_INPUT, TEST_OUTPUT, BundleSpec


def _sha256(path: Path) -> str:
    from deepij.bundle.download import file_sha256

    return file_sha256(path)


def weights_entries(spec: BundleSpec, onnx_opset: int | None) -> dict[str, WeightsEntry]:
    written = spec.written
    extra = {"opset_version": written.opset} if written.format == "onnx" and written.opset else {}
    entries = {
        written.format: WeightsEntry(
            written.format,
            written.file,
            sha256=_sha256(spec.root / written.file),
            framework_version=written.framework_version,
            extra=extra,
        )
    }
    if onnx_opset is not None:
        entries["onnx"] = WeightsEntry(
            "onnx",
            ONNX_FILE,
            sha256=_sha256(spec.root / ONNX_FILE),
            parent=written.format,
            extra={"opset_version": onnx_opset},
        )
    return entries


def output_file(index: int, name: str) -> str:
    return TEST_OUTPUT if index == 0 else f"test_output_{name}.npy"


def bundle_description(
    spec: BundleSpec, weights: Mapping[str, WeightsEntry], test_info: Mapping[str, Any]
) -> ModelDescription:
    """The bundle's description: probed sizes, declared halos, processing, test tensors, weights."""
    base = probe_description(spec.root, spec.name, spec.written, spec.layout, spec.channels, spec.tf_keys)
    described = rules_description(base, spec.layout, spec.sizes, spec.halos, spec.rules)
    ops = tuple(s.op for s in spec.pre if s.op is not None) if spec.spec_ops else ()
    in_spec = replace(
        described.inputs[0],
        processing=ops,
        test_tensor=TEST_INPUT,
        sample_tensor=EXAMPLE_IMAGE,  # the zoo reads sample tensors as images (imageio), not .npy
        description=_input_text(spec),
    )
    outputs = tuple(replace(o, test_tensor=output_file(k, o.name)) for k, o in enumerate(described.outputs))
    config = replace(
        tf_config(spec.tf_keys),
        allow_tiling=spec.allow_tiling,
        preprocess=tuple(ImageJStep("macro", s.file) for s in spec.pre),
        postprocess=tuple(ImageJStep("macro", s.file) for s in spec.post),
        test_information=dict(test_info),
    )
    return replace(
        described,
        inputs=(in_spec,),
        outputs=outputs,
        weights=dict(weights),
        deepimagej=config,
        config={"deepij": {"built_by": BUILT_BY, "deepij_version": _version()}},
    )


def _version() -> str:
    from deepij import __version__

    return __version__


def _input_text(spec: BundleSpec) -> str:
    if not spec.pre:
        return "The network's input."
    files = " and ".join(s.file for s in spec.pre)
    if spec.spec_ops:
        return f"Normalised by {files} in ImageJ, or by the preprocessing op below elsewhere."
    return f"The test input is the example after {files} (ImageJ macros without a spec op)."


__all__ = ["bundle_description", "output_file", "weights_entries"]
