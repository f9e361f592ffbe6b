"""What ``deepij build`` works with: the request, what it finds on the way, what it returns, the file names
a built bundle has. Shared by :mod:`deepij.trust.build` and the modules it is made of (build_args,
build_tiling, build_write, build_place, build_readme), so none of them imports another's internals.

Examples
--------
>>> BuildRequest(model="net.pt", example="cells.tif", name="nuclei").allow_tiling
True
>>> is_deepij_built({"config": {"deepij": {"built_by": BUILT_BY}}}), is_deepij_built({"name": "notes"})
(True, False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.bundle.description import Citation, FixedSize, ModelDescription, ParameterizedSize

if TYPE_CHECKING:
    from deepij.trust.build_macros import Step
    from deepij.trust.build_probe import ProbedSizes
    from deepij.trust.build_sources import WrittenWeights

EXAMPLE_IMAGE, RESULT_IMAGE, RESULT_TABLE = "exampleImage.tif", "resultImage.tif", "resultTable.csv"
TEST_INPUT, TEST_OUTPUT = "test_input.npy", "test_output.npy"
COVER, README, DESCRIPTOR = "cover.png", "README.md", "rdf.yaml"
DEFAULT_CITATION = Citation(
    text="Gómez-de-Mariscal et al. DeepImageJ: A user-friendly environment to run deep learning models in "
    "ImageJ. Nature Methods 2021.",
    doi="10.1038/s41592-021-01262-9",
)
"""Cited when no ``cite`` is given (the zoo needs one): the tool the bundle is made for."""
BUILT_BY = "deepij build"
"""``config.deepij.built_by`` of every bundle :func:`deepij.build` writes: what lets ``overwrite`` replace
a folder (or a zip), and nothing else."""


def is_deepij_built(descriptor: Any) -> bool:
    """Whether a descriptor's data (read YAML) says :func:`deepij.build` wrote it."""
    config = descriptor.get("config") if isinstance(descriptor, Mapping) else None
    deepij = config.get("deepij") if isinstance(config, Mapping) else None
    return isinstance(deepij, Mapping) and deepij.get("built_by") == BUILT_BY


@dataclass(frozen=True)
class BuildRequest:
    """The arguments of :func:`deepij.build` that say what to build (see it for each)."""

    model: Any
    example: Any
    name: str
    description: str = ""
    axes: str | None = None
    output_axes: str | Sequence[str] | None = None
    input_name: str | None = None
    output_names: Sequence[str] | None = None
    preprocessing: Any = None
    postprocessing: Any = None
    percentiles: tuple[float, float] = (1.0, 99.8)
    halo: int | None = None
    min_size: int | None = None
    allow_tiling: bool = True
    authors: Any = None
    license: str = "CC-BY-4.0"
    cite: Any = None
    tags: Sequence[str] = ()
    version: str = "0.1.0"
    onnx: bool | str = "auto"
    tensorflow_tag: str = "serve"
    tensorflow_signature: str = "serving_default"


@dataclass(frozen=True)
class BuiltBundle:
    """What :func:`build` wrote and measured.

    Attributes
    ----------
    folder, zip : Path
        The bundle folder and its zip (None with ``zip=False``).
    description : ModelDescription
        The written descriptor, read back.
    receptive_radius : dict
        Input pixels per spatial axis that the impulse probe found each output pixel to see.
    network_sizes : dict
        The valid sizes the probe found per spatial axis (``min`` the network's own smallest one); the
        declared ``min`` can be larger (see the module notes).
    halo : dict
        Per output, per spatial axis, the declared halo (output pixels).
    memory_peak : int
        Bytes one forward pass on the example took (above what the process held before).
    runtime : float
        Seconds the example took through the whole bundle (processing included), as deepImageJ runs it.
    weights : tuple of str
        The weights formats written (``("torchscript", "onnx")``).
    notes : tuple of str
        What the build decided on the way (an ONNX copy left out and why, a traced module).
    """

    folder: Path
    zip: Path | None
    description: ModelDescription
    receptive_radius: dict[str, int]
    network_sizes: dict[str, FixedSize | ParameterizedSize]
    halo: dict[str, dict[str, int]]
    memory_peak: int
    runtime: float
    weights: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Layout:
    """Names and axes of the network's tensors."""

    input_name: str
    input_axes: str
    output_axes: dict[str, str]


@dataclass
class BundleSpec:
    """Everything found about the bundle before its files are written."""

    name: str
    root: Path
    layout: Layout
    written: WrittenWeights
    sizes: ProbedSizes
    rules: dict[str, FixedSize | ParameterizedSize]
    halos: dict[str, dict[str, int]]
    pre: list[Step]
    post: list[Step]
    tf_keys: tuple | None
    channels: int
    allow_tiling: bool
    radius: dict[str, int] = field(default_factory=dict)
    """The receptive radius the probe measured (input pixels per spatial axis)."""

    @property
    def spec_ops(self) -> bool:
        """Whether every pre-processing step has a spec op (then the test input is the raw example)."""
        return all(s.op is not None for s in self.pre)


@dataclass
class ExampleRuns:
    """The example's runs: the files they gave and what they measured."""

    description: ModelDescription
    example: np.ndarray
    result: np.ndarray
    result_axes: str
    tables: dict[str, Any]
    memory_peak: int
    runtime: float


__all__ = [
    "BUILT_BY",
    "BuildRequest",
    "BuiltBundle",
    "BundleSpec",
    "ExampleRuns",
    "Layout",
    "is_deepij_built",
]
