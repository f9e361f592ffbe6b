"""The README a built bundle carries: what the model takes and gives, how it tiles, how to run it, and how it
was checked (the zoo looks for a ``# Validation`` section).
"""

from __future__ import annotations

from typing import Any

from deepij.bundle.description import FixedSize, ModelDescription, ParameterizedSize, ReferenceSize
from deepij.trust.build_types import BundleSpec, ExampleRuns


def _size_text(rule: Any) -> str:
    if isinstance(rule, FixedSize):
        return f"exactly {rule.value}"
    if isinstance(rule, ParameterizedSize):
        return f"{rule.min} + k*{rule.step}" if rule.step else f"exactly {rule.min}"
    if isinstance(rule, ReferenceSize):
        offset = f" {'+' if rule.offset >= 0 else '-'} {abs(rule.offset):g}" if rule.offset else ""
        return f"{rule.scale:g} x input {rule.axis}{offset}"
    return "any"


def _macro_line(description: ModelDescription, spec: BundleSpec) -> str:
    formats = {"torchscript": "Pytorch", "onnx": "Onnx", "tensorflow_saved_model_bundle": "Tensorflow"}
    fmt = formats.get(spec.written.format, "Pytorch")
    pre = ", ".join(s.file for s in spec.pre)
    post = ", ".join(s.file for s in spec.post)
    pre_text = "[no preprocessing]" if not pre else (f"[{pre}]" if len(spec.pre) == 1 else f"[[{pre}]]")
    post_text = "[no postprocessing]" if not post else (f"[{post}]" if len(spec.post) == 1 else f"[[{post}]]")
    spec_in = description.inputs[0]
    letters = [a.id for a in spec_in.axes if a.id != "b"]
    tile = []
    for a in spec_in.axes:
        if a.id == "b":
            continue
        rule = a.size
        tile.append(str(rule.value if isinstance(rule, FixedSize) else getattr(rule, "min", 1)))
    return (
        f'run("DeepImageJ Run", "model=[{description.name}] format={fmt} preprocessing={pre_text} '
        f"postprocessing={post_text} axes={','.join(a.upper() for a in letters)} tile={','.join(tile)} "
        'logging=normal");'
    )


def readme_text(description: ModelDescription, spec: BundleSpec, built: ExampleRuns, folder: str) -> str:
    """The README's Markdown (``folder``: the bundle folder's name, what ``deepij.load`` is given)."""
    lines = [f"# {description.name}", "", description.description, ""]
    lines += _tensor_lines(description) + _tiling_lines(spec) + _processing_lines(spec)
    lines += _running_lines(description, spec, folder) + _validation_lines(built)
    return "\n".join(lines)


def _tensor_lines(description: ModelDescription) -> list[str]:
    lines = ["## Inputs and outputs", ""]
    for kind, tensors in (("Input", description.inputs), ("Output", description.outputs)):
        for t in tensors:
            sizes = ", ".join(f"{a.id}: {_size_text(a.size)}" for a in t.axes if a.id != "b")
            halos = ", ".join(f"{a.id} {a.halo}" for a in t.axes if a.halo)
            lines.append(
                f"- {kind} `{t.name}`, axes `{t.axes_str}` ({sizes})" + (f"; halo {halos}" if halos else "")
            )
    return lines


def _tiling_lines(spec: BundleSpec) -> list[str]:
    lines = ["", "## Tiling", ""]
    lines.append(
        "Measured by `deepij build` on the network itself: the input sizes it runs on, the output sizes it "
        "returns, and its receptive field (an impulse through the network; the output pixels that change "
        "are those that see it)."
    )
    lines.append("")
    for axis, rule in spec.sizes.rules.items():
        lines.append(
            f"- `{axis}`: the network takes {_size_text(rule)}; declared {_size_text(spec.rules[axis])} "
            "(the smallest tile that keeps a valid region once the halo is cropped)"
        )
    for output, declared in spec.halos.items():
        lines.append(f"- halo of `{output}`: " + ", ".join(f"{a} {h}" for a, h in declared.items()))
    return lines


def _processing_lines(spec: BundleSpec) -> list[str]:
    lines = ["", "## Processing", ""]
    if not spec.pre and not spec.post:
        lines.append("None: the network's input and outputs are the image and the result.")
    for stage, steps in (("Pre-processing", spec.pre), ("Post-processing", spec.post)):
        for s in steps:
            op = f" (spec op `{s.op.name}` for the zoo's tools)" if s.op is not None else ""
            lines.append(f"- {stage}: ImageJ macro `{s.file}`{op}")
    return lines


def _running_lines(description: ModelDescription, spec: BundleSpec, folder: str) -> list[str]:
    return [
        "",
        "## Running it",
        "",
        "In Python with deepij:",
        "",
        "```python",
        "import deepij",
        "",
        f'model = deepij.load("{folder}")',
        'result = model.predict("exampleImage.tif")',
        "# as deepImageJ runs it, which gives resultImage.tif:",
        'result = model.predict("exampleImage.tif", tile="suggested", tiling="deepimagej-readback")',
        "```",
        "",
        "In Fiji with deepImageJ (the bundle in `Fiji.app/models/`), from a macro:",
        "",
        "```",
        _macro_line(description, spec),
        "```",
        "",
    ]


def _validation_lines(built: ExampleRuns) -> list[str]:
    return [
        "# Validation",
        "",
        "`exampleImage.tif` through the bundle as deepImageJ runs it (its macros in ImageJ, its default "
        "tile, mirror-padded) gives `resultImage.tif`"
        + (" and `resultTable.csv`" if built.tables else "")
        + "; `test_input.npy` through the spec pre-processing and the network gives `test_output.npy` "
        "(what the zoo's tools reproduce). `deepij test` checks both.",
        "",
        f"Measured while building: memory peak {built.memory_peak / 1e6:.1f} MB for one forward pass on "
        f"the example, {built.runtime:.2f} s for the example through the whole bundle.",
        "",
    ]


__all__ = ["readme_text"]
