"""The one normalized description of a model bundle, whatever descriptor version it came from.

Readers (``deepij.bundle.readers``) turn model.yaml 0.3, rdf.yaml 0.4 and rdf/bioimageio.yaml 0.5 into these
classes; everything else in deepij (tiling, backends, processing, the pipeline) reads only these.

Conventions
-----------
- Axes are bioimage.io one-letter ids: ``b`` batch, ``i`` index (tables), ``t`` time, ``c`` channel,
  ``z``, ``y``, ``x`` space. A tensor's axes string (``"byxc"``) is its memory order.
- Sizes are per axis (:class:`FixedSize`, :class:`ParameterizedSize`, :class:`ReferenceSize`).
  A :class:`ReferenceSize` is ``size = reference_size * scale + offset`` where ``offset`` is the TOTAL added
  along the axis. Descriptors 0.3/0.4 write a per-side offset (``output = input*scale + 2*offset``): their
  readers double it. 0.5's ``ref_axis.scale / axis.scale`` is folded into ``scale``.
- Paths inside a description are relative to :attr:`ModelDescription.root` (or are URLs); use
  :meth:`ModelDescription.path` to resolve them.
- A file reference's sha256 (0.5 ``{source, sha256}``) is kept in :attr:`ModelDescription.file_sha256`,
  by path, for every file but the weights and architecture files, whose entries hold theirs
  (:attr:`WeightsEntry.sha256`, :attr:`ArchitectureSpec.sha256`).
- Weights formats have canonical names: ``torchscript`` (also for ``pytorch_script``),
  ``tensorflow_saved_model_bundle``, ``onnx``, ``pytorch_state_dict``, ``keras_hdf5``, ``keras_v3``,
  ``tensorflow_js``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deepij.bundle.paths import inside_bundle

AXIS_LETTERS = "bitczyx"
SPACE_AXES = "zyx"
DATA_TYPES = (
    "float16",
    "float32",
    "float64",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "bool",
)
"""Tensor data types a descriptor may name (``data_type``, ``ensure_dtype``)."""

MAX_AXIS_SIZE = 1 << 20
"""The most a descriptor may give one axis (a fixed size, a min, a step, an offset, a halo, the smallest
size a reference leads to): 2**20 = 1,048,576 elements.

A descriptor states what ONE pass of the network takes. The largest images deepij handles (whole-slide
scans, light-sheet stacks) have axes of about 10**5 elements and are tiled; no network takes an axis of a
million elements in one pass. A larger number is a broken descriptor, and taken at its word it ends in an
allocation of terabytes (``2**40``), so readers refuse it naming the field."""

MAX_SMALLEST_TENSOR_BYTES = 4 << 30
"""The most the smallest valid tensor of a descriptor may hold: 4 GiB (each axis at its smallest size,
a free batch at 1, at the tensor's data type).

Every run allocates at least this tensor, and the network's activations are many times larger: a model
whose smallest input alone is above 4 GiB fits no GPU and no workstation deepij runs on. Real zoo and
deepImageJ models stay far below (their largest fixed shapes are tens of MB)."""

WEIGHTS_FORMATS = (
    "torchscript",
    "tensorflow_saved_model_bundle",
    "onnx",
    "pytorch_state_dict",
    "keras_hdf5",
    "keras_v3",
    "tensorflow_js",
)


@dataclass(frozen=True)
class FixedSize:
    """An axis of exactly ``value`` elements."""

    value: int

    def is_valid(self, size: int) -> bool:
        return size == self.value

    def smallest_at_least(self, size: int) -> int | None:
        """The smallest valid size >= ``size``, or None when there is none."""
        return self.value if self.value >= size else None


@dataclass(frozen=True)
class ParameterizedSize:
    """Valid sizes are ``min + k * step`` for k >= 0; ``step == 0`` means only ``min``.

    Examples
    --------
    >>> rule = ParameterizedSize(min=64, step=16)
    >>> rule.is_valid(96), rule.is_valid(100), rule.smallest_at_least(100)
    (True, False, 112)
    """

    min: int
    step: int

    def is_valid(self, size: int) -> bool:
        if size < self.min:
            return False
        if self.step == 0:
            return size == self.min
        return (size - self.min) % self.step == 0

    def smallest_at_least(self, size: int) -> int | None:
        if size <= self.min:
            return self.min
        if self.step == 0:
            return None
        return self.min + math.ceil((size - self.min) / self.step) * self.step


@dataclass(frozen=True)
class ReferenceSize:
    """Size taken from another tensor's axis: ``size = reference_size * scale + offset``.

    ``offset`` is the total added along the axis (see the module notes). ``scale == 0`` makes the size
    ``offset`` alone (an axis the reference does not have, e.g. 33 output channels).
    """

    tensor: str
    axis: str
    scale: float = 1.0
    offset: float = 0.0

    def size_for(self, reference_size: int) -> int:
        return round(reference_size * self.scale + self.offset)


SizeRule = FixedSize | ParameterizedSize | ReferenceSize | None
"""None means any size (a batch axis with no rule)."""


@dataclass(frozen=True)
class AxisSpec:
    """One axis of a tensor.

    Attributes
    ----------
    id : str
        One of ``AXIS_LETTERS``.
    size : SizeRule
        How long the axis may or must be.
    halo : int
        Pixels on each side of this (output) axis that are not valid and are cropped away when tiling.
    channel_names : tuple of str
        Names of the channels, for ``c`` axes that declare them.
    scale, unit : float, str or None
        Physical size of one element (0.5 descriptors), for information.
    """

    id: str
    size: SizeRule = None
    halo: int = 0
    channel_names: tuple[str, ...] = ()
    scale: float = 1.0
    unit: str | None = None
    description: str = ""


@dataclass(frozen=True)
class ProcessingOp:
    """A bioimage.io processing step (``scale_range``, ``zero_mean_unit_variance``, ...).

    ``kwargs`` are normalized: an ``axes`` entry is a string of axis letters (``"yx"``), whatever form the
    descriptor used; per-channel values stay lists. The instance-segmentation ops
    (``stardist_postprocessing``, ``cellpose_flow_dynamics``, ``custom``) keep their kwargs as written:
    :mod:`deepij.processing.instances` checks them.
    """

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    code: ArchitectureSpec | None = None
    """The Python file and callable of a 0.5 ``custom`` op (``source``, ``callable``, ``sha256``, with
    ``kwargs`` repeated): code, run only when allowed."""


@dataclass(frozen=True)
class TensorSpec:
    """An input or output tensor.

    ``processing`` is the tensor's spec preprocessing (inputs) or postprocessing (outputs), in order.
    ``test_tensor`` / ``sample_tensor`` are bundle-relative paths (``.npy`` test data, sample images); their
    sha256 is in :attr:`ModelDescription.file_sha256`.
    """

    name: str
    axes: tuple[AxisSpec, ...]
    data_type: str = "float32"
    data_range: tuple[float, float] | None = None
    processing: tuple[ProcessingOp, ...] = ()
    description: str = ""
    test_tensor: str | None = None
    sample_tensor: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Tensor fields the readers do not interpret (0.5 ``data`` units, ``optional``, ...), kept as found."""

    @property
    def axes_str(self) -> str:
        """The axis letters in memory order, e.g. ``"byxc"``."""
        return "".join(a.id for a in self.axes)

    @property
    def is_table(self) -> bool:
        """True for outputs that are tables (an ``i`` index axis), not images."""
        return "i" in self.axes_str

    def axis(self, axis_id: str) -> AxisSpec:
        """The axis with this id; KeyError naming the tensor when it has none."""
        for a in self.axes:
            if a.id == axis_id:
                return a
        raise KeyError(f"tensor {self.name!r} has no axis {axis_id!r} (axes {self.axes_str!r})")


@dataclass(frozen=True)
class ImageJStep:
    """A deepImageJ processing step run inside ImageJ.

    ``kind == "macro"``: ``file`` is a ``.ijm``/``.txt`` macro. ``kind == "java"``: ``file`` is a ``.jar`` or
    ``.class``; ``java_class`` and ``method`` name what to call when the descriptor says
    (``"File.jar Class::method"``, ``"File.jar Class"``; None: the one class of the file implementing the
    stage's interface, through the interface's method), and ``config_files`` are the bundle files the step's
    ``kwargs`` name, handed to it with ``setConfigFiles`` (bundle-relative, in the descriptor's order).
    """

    kind: Literal["macro", "java"]
    file: str
    java_class: str | None = None
    method: str | None = None
    config_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArchitectureSpec:
    """The network class a ``pytorch_state_dict`` entry needs: a Python file in the bundle (or an importable
    module) and the callable in it, with its keyword arguments. This is code: it runs only when allowed."""

    source: str
    callable: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    sha256: str | None = None


@dataclass(frozen=True)
class WeightsEntry:
    """One weights format a bundle offers."""

    format: str
    source: str
    sha256: str | None = None
    attachments: tuple[str, ...] = ()
    architecture: ArchitectureSpec | None = None
    framework_version: str | None = None
    parent: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))


@dataclass(frozen=True)
class DeepImageJConfig:
    """The ``config.deepimagej`` section: what deepImageJ itself uses.

    ``tensorflow_tag`` / ``tensorflow_signature`` are the resolved raw values (``"serve"``,
    ``"serving_default"``), whatever constant names or misspelled keys the descriptor used; None when absent.
    """

    pyramidal_model: bool = False
    allow_tiling: bool = True
    tensorflow_tag: str | None = None
    tensorflow_signature: str | None = None
    preprocess: tuple[ImageJStep, ...] = ()
    postprocess: tuple[ImageJStep, ...] = ()
    test_information: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Other keys of the section, kept as found."""


@dataclass(frozen=True)
class Person:
    name: str
    affiliation: str | None = None
    email: str | None = None
    github_user: str | None = None
    orcid: str | None = None


@dataclass(frozen=True)
class Citation:
    text: str
    doi: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class ModelDescription:
    """A model bundle, normalized.

    Attributes
    ----------
    name : str
        The descriptor's ``name`` with surrounding quotes removed.
    format_version : str
        The descriptor's ``format_version`` as written (``"0.3.2"``, ``"0.4.10"``, ``"0.5.3"``).
    root : Path
        The folder holding the descriptor; relative paths resolve against it.
    descriptor : Path
        The descriptor file itself.
    weights : Mapping[str, WeightsEntry]
        Canonical format name -> entry, in descriptor order.
    file_sha256 : Mapping[str, str]
        The sha256 the descriptor gives a file it names, by path as in the description (lowercase hex): test
        and sample tensors, attachments (the bundle's and the weights'), documentation, covers. Files given
        without one are absent. Weights and architecture files keep theirs in their entries.
    extra : Mapping[str, Any]
        Top-level fields the reader does not interpret, kept as found.
    """

    name: str
    format_version: str
    root: Path
    descriptor: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    weights: Mapping[str, WeightsEntry]
    description: str = ""
    id: str | None = None
    version: str | None = None
    authors: tuple[Person, ...] = ()
    maintainers: tuple[Person, ...] = ()
    cite: tuple[Citation, ...] = ()
    license: str | None = None
    documentation: str | None = None
    tags: tuple[str, ...] = ()
    covers: tuple[str, ...] = ()
    attachments: tuple[str, ...] = ()
    deepimagej: DeepImageJConfig = field(default_factory=DeepImageJConfig)
    config: Mapping[str, Any] = field(default_factory=dict)
    file_sha256: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def path(self, relative: str, field: str | None = None) -> Path:
        """A bundle-relative path resolved against :attr:`root`; a
        :class:`~deepij.errors.BundleError` (naming ``field``) when it leads out of the bundle folder."""
        return inside_bundle(self.root, relative, descriptor=self.descriptor, field=field)

    def input(self, name: str) -> TensorSpec:
        return _named(self.inputs, name, "input", self.descriptor)

    def output(self, name: str) -> TensorSpec:
        return _named(self.outputs, name, "output", self.descriptor)

    @property
    def test_inputs(self) -> tuple[str | None, ...]:
        return tuple(t.test_tensor for t in self.inputs)

    @property
    def test_outputs(self) -> tuple[str | None, ...]:
        return tuple(t.test_tensor for t in self.outputs)


def _named(tensors: tuple[TensorSpec, ...], name: str, kind: str, descriptor: Path) -> TensorSpec:
    for t in tensors:
        if t.name == name:
            return t
    known = ", ".join(repr(t.name) for t in tensors)
    raise KeyError(f"{descriptor}: no {kind} named {name!r} (known: {known})")
