"""``deepij.build(...)``: package a trained network as a bundle deepImageJ 2.x and the BioImage Model Zoo
both run.

What is written (one folder, and the same files at the root of ``<folder>.zip``):

- ``rdf.yaml``: a 0.5 descriptor with ``config.deepimagej`` (the prediction macros, ``test_information``
  with the example's size, the measured memory peak and runtime);
- the weights with their sha256 (:mod:`.build_sources`), and for torch networks an ONNX copy when it
  reproduces torch's outputs on the example and on another size;
- the pre/post-processing: the macros given, or a named normalisation written as a deepImageJ-style macro
  together with the spec op of the same formula (:mod:`.build_macros`);
- ``exampleImage.tif`` and ``resultImage.tif`` (and ``resultTable.csv`` when post-processing leaves a
  table): the example through the bundle as deepImageJ runs it (macros in ImageJ);
  ``test_input.npy`` / ``test_output.npy``: what the zoo's tools reproduce (spec ops and network);
- ``README.md`` and ``cover.png``.

How the tiling fields are found (:mod:`.build_probe`): ``min`` and ``step`` from the sizes the network
runs on, the output ``scale``/``offset`` from the sizes it returns, the halo from its receptive field
measured with impulses, rounded up to a multiple of ``step`` (tiles then start on the pooling grid and
reproduce the whole-image output). The declared ``min`` is the network's smallest valid size that leaves a
valid region once the halo is cropped (``min*scale + offset - 2*halo >= 1``: deepImageJ's ``Q > 2P`` and the
zoo's rule). A network whose size is fixed (or a ``min_size`` given) too small for its halo is refused.

Examples
--------
>>> built = deepij.build(net, "my_bundle", example=image, name="my nuclei U-Net",
...                      preprocessing="per_sample_scale_range")  # doctest: +SKIP
>>> built.receptive_radius, built.description.inputs[0].axis("y").size  # doctest: +SKIP
({'y': 23, 'x': 23}, ParameterizedSize(min=52, step=4))
>>> deepij.load(built.zip).predict("cells.tif")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import getpass
import os
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.bundle.description import (
    SPACE_AXES,
    AxisSpec,
    Citation,
    DeepImageJConfig,
    FixedSize,
    ImageJStep,
    ModelDescription,
    ParameterizedSize,
    Person,
    ReferenceSize,
    TensorSpec,
    WeightsEntry,
)
from deepij.errors import ArgumentError, ArgumentTypeError, SeamWarning
from deepij.trust.build_macros import Step, steps_from, write_step
from deepij.trust.build_probe import ProbedSizes, aligned_halo, probe_sizes
from deepij.trust.build_sources import ONNX_FILE, WrittenWeights, write_weights

if TYPE_CHECKING:
    from deepij.inference.receptive import ReceptiveField

EXAMPLE_IMAGE, RESULT_IMAGE, RESULT_TABLE = "exampleImage.tif", "resultImage.tif", "resultTable.csv"
TEST_INPUT, TEST_OUTPUT = "test_input.npy", "test_output.npy"
COVER, README = "cover.png", "README.md"
DEFAULT_CITATION = Citation(
    text="Gómez-de-Mariscal et al. DeepImageJ: A user-friendly environment to run deep learning models in "
    "ImageJ. Nature Methods 2021.",
    doi="10.1038/s41592-021-01262-9",
)
"""Cited when no ``cite`` is given (the zoo needs one): the tool the bundle is made for."""
_STAGING_PREFIX = ".deepij-build-"


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
class _Layout:
    """Names and axes of the network's tensors."""

    input_name: str
    input_axes: str
    output_axes: dict[str, str]


def build(
    model: Any,
    output: str | Path,
    *,
    example: Any,
    name: str,
    description: str = "",
    axes: str | None = None,
    output_axes: str | Sequence[str] | None = None,
    input_name: str | None = None,
    output_names: Sequence[str] | None = None,
    preprocessing: str | Path | Sequence[str | Path] | None = None,
    postprocessing: str | Path | Sequence[str | Path] | None = None,
    percentiles: tuple[float, float] = (1.0, 99.8),
    halo: int | None = None,
    min_size: int | None = None,
    allow_tiling: bool = True,
    authors: Sequence[str | Mapping[str, str]] | None = None,
    license: str = "CC-BY-4.0",
    cite: Sequence[Mapping[str, str]] | None = None,
    tags: Sequence[str] = (),
    version: str = "0.1.0",
    onnx: bool | str = "auto",
    tensorflow_tag: str = "serve",
    tensorflow_signature: str = "serving_default",
    zip: bool = True,
    overwrite: bool = False,
) -> BuiltBundle:
    """Build a bundle from a trained network (see the module notes for what is written and found).

    Parameters
    ----------
    model : nn.Module, ScriptModule, keras.Model, str or Path
        The network: a torch module, a TorchScript or ONNX file, a Keras model or ``.h5`` file, or a
        TensorFlow SavedModel folder.
    output : str or Path
        The bundle folder to write (it must not exist unless ``overwrite``); the zip goes next to it.
    example : ndarray, xarray.DataArray, str or Path
        One example image in the network's input axes (batch optional; a 2-D ``(y, x)`` image for a
        one-channel 2-D network), or an ``.npy`` / TIFF file of one. Its size must be one the network takes.
    name : str
        The model's name (what deepImageJ's ``model=`` names).
    description : str
        One or two sentences on what the model does (at most 1024 characters).
    axes : str, optional
        The input's axis letters as the network takes them (default ``"bcyx"`` for torch and ONNX,
        ``"byxc"`` for TensorFlow and Keras; ``z`` added for 5-D examples).
    output_axes : str or sequence of str, optional
        Axis letters of each output (default: the input's).
    input_name, output_names : optional
        Tensor ids (default: the ONNX graph's names, else ``"input"`` and ``"output"``).
    preprocessing : str, Path or list, optional
        ``"per_sample_scale_range"`` or ``"zero_mean_unit_variance"`` (macro and spec op written here), or
        ImageJ macro files; at most two steps.
    postprocessing : str, Path or list, optional
        ImageJ macro files run on the network's outputs (at most two).
    percentiles : (float, float)
        ``min_percentile`` and ``max_percentile`` of ``per_sample_scale_range``.
    halo : int, optional
        The receptive radius (input pixels) to declare instead of the measured one; a smaller one gives a
        :class:`~deepij.errors.SeamWarning` (tiled outputs will differ at tile seams).
    min_size : int, optional
        The smallest tile size to declare (it must be a size the network takes and leave room for the halo).
    allow_tiling : bool
        False for networks that must see the whole image (deepImageJ's ``allow_tiling``): no halo is declared.
    authors, license, cite, tags, version
        The descriptor's metadata; ``authors`` are names or ``{"name": ..., "affiliation": ...}`` mappings
        (default: the account's user name); ``cite`` entries ``{"text": ..., "doi": ...}`` (default: the
        deepImageJ paper).
    onnx : bool or "auto"
        Add an ONNX copy of torch weights: ``"auto"`` when it reproduces the outputs, True insists (an error
        when it does not), False never.
    tensorflow_tag, tensorflow_signature : str
        The SavedModel's tag and signature key (TensorFlow weights).
    zip : bool
        Also write ``<output>.zip``.
    overwrite : bool
        Replace an existing ``output`` folder (and zip).

    Returns
    -------
    BuiltBundle

    Raises
    ------
    ArgumentError
        An unusable argument, an example the network does not take, a network whose receptive field is too
        large for its input sizes (the message names the axis, the halo and the sizes allowed).
    """
    target = _check_target(output, overwrite)
    _check_text(name, "name", 128)
    _check_text(description, "description", 1024, allow_empty=True)
    people = _people(authors)
    citations = _citations(cite)
    if onnx not in (True, False, "auto"):
        raise ArgumentError(f"onnx: found {onnx!r}; expected True, False or 'auto'")
    from deepij.bundle.staging import make_readable, make_staging

    staging = make_staging(target.parent, _STAGING_PREFIX)
    try:
        layout_hint = _layout_hint(model, axes)
        array = _example_array(example, layout_hint)
        written = write_weights(model, staging, example=array)
        layout = _layout(written, array, layout_hint, output_axes, input_name, output_names)
        pre = steps_from(preprocessing, "preprocessing", _stats_axes(layout.input_axes), percentiles)
        post = steps_from(postprocessing, "postprocessing", _stats_axes(layout.input_axes), percentiles)
        tf_keys = (tensorflow_tag, tensorflow_signature) if written.format.startswith("tensorflow") else None
        sizes, radius = _probe(staging, name, written, layout, array, tf_keys)
        halos, rules = _tiling_fields(sizes, radius, layout, halo, min_size, allow_tiling)
        for step in (*pre, *post):
            write_step(step, staging)
        spec = _Spec(
            name,
            staging,
            layout,
            written,
            sizes,
            rules,
            halos,
            pre,
            post,
            tf_keys,
            _channels(array, layout.input_axes),
            allow_tiling,
        )
        notes = list(written.notes)
        built = _write_bundle(spec, array, onnx, notes)
        metadata = {
            "description": description,
            "authors": people,
            "license": license,
            "cite": citations,
            "tags": tuple(tags),
            "version": version,
        }
        final = _finish(spec, built, metadata)
        make_readable(staging)
        _move_into_place(staging, target, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    zipped = None
    if zip:
        from deepij.trust.build_files import zip_folder

        zipped = zip_folder(target, target.with_name(target.name + ".zip"))
    from deepij.bundle import open_bundle

    return BuiltBundle(
        folder=target,
        zip=zipped,
        description=open_bundle(target),
        receptive_radius=dict(radius),
        network_sizes=dict(sizes.rules),
        halo={o: dict(h) for o, h in halos.items()},
        memory_peak=built.memory_peak,
        runtime=built.runtime,
        weights=tuple(final.weights),
        notes=tuple(notes),
    )


# --- arguments -------------------------------------------------------------------------------------------


def _check_target(output: Any, overwrite: bool) -> Path:
    if not isinstance(output, (str, Path)) or not str(output):
        raise ArgumentTypeError(f"output: found {type(output).__name__}; expected a folder path")
    if not isinstance(overwrite, bool):
        raise ArgumentTypeError(f"overwrite: found {type(overwrite).__name__}; expected True or False")
    target = Path(output).absolute()
    if target.exists() and not overwrite:
        raise ArgumentError(f"output: {target} exists already (expected a new folder, or overwrite=True)")
    if target.exists() and not target.is_dir():
        raise ArgumentError(f"output: {target} is a file (expected a folder)")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _check_text(value: Any, argument: str, longest: int, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{argument}: found {type(value).__name__}; expected a str")
    if (not allow_empty and not value.strip()) or len(value) > longest:
        raise ArgumentError(
            f"{argument}: found {len(value)} characters; expected 1 to {longest} (what the zoo accepts)"
        )


def _people(authors: Sequence[str | Mapping[str, str]] | None) -> tuple[Person, ...]:
    if authors is None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return (Person(name=user),)
    if isinstance(authors, (str, Mapping)):
        authors = [authors]
    people = []
    for entry in authors:
        if isinstance(entry, str) and entry.strip():
            people.append(Person(name=entry))
        elif isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            known = ("name", "affiliation", "email", "github_user", "orcid")
            people.append(Person(**{k: entry[k] for k in known if k in entry}))
        else:
            raise ArgumentError(
                f"authors: found {entry!r}; expected names or mappings with a 'name' (and 'affiliation'...)"
            )
    if not people:
        raise ArgumentError("authors: found none; expected at least one author")
    return tuple(people)


def _citations(cite: Sequence[Mapping[str, str]] | None) -> tuple[Citation, ...]:
    if cite is None:
        return (DEFAULT_CITATION,)
    entries = []
    given: Sequence[Any] = [cite] if isinstance(cite, Mapping) else cite
    for entry in given:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("text"), str):
            raise ArgumentError(f"cite: found {entry!r}; expected mappings with 'text' and 'doi' or 'url'")
        if not (entry.get("doi") or entry.get("url")):
            raise ArgumentError(f"cite: {entry.get('text')!r} has no 'doi' or 'url' (the zoo needs one)")
        entries.append(Citation(text=entry["text"], doi=entry.get("doi"), url=entry.get("url")))
    return tuple(entries)


def _layout_hint(model: Any, axes: str | None) -> str | None:
    """The input axes asked for, checked (None: decided from the framework and the example)."""
    if axes is None:
        return None
    if not isinstance(axes, str):
        raise ArgumentTypeError(f"axes: found {type(axes).__name__}; expected letters such as 'bcyx'")
    if len(set(axes)) != len(axes) or set(axes) - set("bczyx") or not set(axes) & set(SPACE_AXES):
        raise ArgumentError(
            f"axes: found {axes!r}; expected distinct letters of 'bczyx' with y/x (e.g. 'bcyx')"
        )
    return axes


def _example_array(example: Any, axes: str | None) -> np.ndarray:
    """The example as an ndarray (letters not yet applied unless it is an xarray)."""
    if isinstance(example, (str, Path)):
        path = Path(example)
        if not path.is_file():
            raise ArgumentError(f"example: {path} does not exist (expected an .npy or TIFF file)")
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        import tifffile

        return np.asarray(tifffile.imread(path))
    if hasattr(example, "dims") and hasattr(example, "transpose"):
        if axes is None or set(example.dims) - set(axes):
            raise ArgumentError(
                f"example: an xarray with dims {tuple(example.dims)} needs axes= naming all of them"
            )
        missing = [a for a in axes if a not in example.dims]
        return np.asarray(example.expand_dims(missing).transpose(*axes).values)
    if not isinstance(example, np.ndarray):
        raise ArgumentTypeError(
            f"example: found {type(example).__name__}; expected an ndarray, an xarray or an image file"
        )
    return example


def _layout(
    written: WrittenWeights,
    array: np.ndarray,
    axes: str | None,
    output_axes: str | Sequence[str] | None,
    input_name: str | None,
    output_names: Sequence[str] | None,
) -> _Layout:
    if axes is None:
        channels_last = written.format in ("keras_hdf5", "tensorflow_saved_model_bundle")
        axes = (
            ("bzyxc" if channels_last else "bczyx")
            if array.ndim == 5
            else ("byxc" if channels_last else "bcyx")
        )
    outputs = _output_count(written, array, axes, output_names)
    names = list(output_names) if output_names is not None else list(written.output_names)
    if len(names) != outputs:
        names = ["output"] if outputs == 1 else [f"output{k}" for k in range(outputs)]
    letters = [output_axes] * outputs if output_axes is None or isinstance(output_axes, str) else output_axes
    letters = [axes if a is None else a for a in letters]
    if len(letters) != outputs:
        raise ArgumentError(f"output_axes: found {len(letters)} entries; expected {outputs} (one per output)")
    inputs = input_name or (written.input_names[0] if len(written.input_names) == 1 else "input")
    for label, value in (("input_name", inputs), *(("output_names", n) for n in names)):
        _check_tensor_id(value, label)
    if inputs in names or len(set(names)) != len(names):
        raise ArgumentError(f"output_names: found {names} for input {inputs!r}; expected distinct names")
    return _Layout(inputs, axes, dict(zip(names, letters, strict=True)))


def _check_tensor_id(value: Any, argument: str) -> None:
    from deepij.trust.build_sources import _TENSOR_ID

    if not isinstance(value, str) or not _TENSOR_ID.match(value):
        raise ArgumentError(
            f"{argument}: found {value!r}; expected a tensor id of lower-case letters, digits, '_' or '-' "
            "(at most 32 characters, as the zoo's 0.5 descriptors take)"
        )


def _output_count(written: WrittenWeights, array: np.ndarray, axes: str, names: Sequence[str] | None) -> int:
    """How many outputs the network has: given names, the ONNX graph's, a torch run's, else one."""
    if names is not None:
        return len(names)
    if written.output_names:
        return len(written.output_names)
    if written.module is not None:
        import torch

        tensor = _input_tensor(array, axes)
        with torch.inference_mode():
            result = written.module(torch.from_numpy(tensor.astype(np.float32)))
        return len(result) if isinstance(result, (tuple, list)) else 1
    return 1


def _input_tensor(array: np.ndarray, axes: str) -> np.ndarray:
    """The example in exactly ``axes``: a missing batch axis added, and a 2-D image given a channel too."""
    if array.ndim == len(axes):
        return array
    if array.ndim == len(axes) - 1 and "b" in axes:
        return np.expand_dims(array, axes.index("b"))
    spatial = "".join(a for a in axes if a in SPACE_AXES)
    if array.ndim == len(spatial) and set(axes) - set(spatial) <= {"b", "c"}:
        return np.asarray(array).reshape([array.shape[spatial.index(a)] if a in spatial else 1 for a in axes])
    raise ArgumentError(
        f"example: found shape {array.shape}; expected dims {axes!r} (batch optional), or only the spatial "
        f"ones {spatial!r} for a one-channel network"
    )


def _channels(array: np.ndarray, axes: str) -> int:
    """The example's channel count (1 without a channel axis)."""
    return dict(zip(axes, _input_tensor(array, axes).shape, strict=True)).get("c", 1)


def _stats_axes(axes: str) -> str:
    """What a per-sample normalisation of the generated macros runs over: every axis but batch."""
    return "".join(a for a in axes if a != "b")


# --- probing ---------------------------------------------------------------------------------------------


def _axis(letter: str, rule: Any, channels: int, prefix: str) -> AxisSpec:
    if letter == "c":
        return AxisSpec(
            "c", FixedSize(channels), channel_names=tuple(f"{prefix}{i}" for i in range(channels))
        )
    return AxisSpec(letter, rule)


def _graph_fixed(written: WrittenWeights, axes: str) -> dict[str, int]:
    """Axes the graph fixes (ONNX dims), by letter."""
    if len(written.input_dims) != len(axes):
        return {}
    return {a: d for a, d in zip(axes, written.input_dims, strict=True) if d is not None}


def _probe_description(
    root: Path, name: str, written: WrittenWeights, layout: _Layout, channels: int, tf_keys: tuple | None
) -> ModelDescription:
    """A description of what is known before probing: every free spatial size allowed."""
    fixed = _graph_fixed(written, layout.input_axes)
    in_axes = tuple(
        _axis(
            a,
            FixedSize(fixed[a]) if a in fixed else (None if a == "b" else ParameterizedSize(1, 1)),
            channels,
            "channel",
        )
        for a in layout.input_axes
    )
    outputs = tuple(
        TensorSpec(
            n,
            tuple(
                AxisSpec(a, ReferenceSize(layout.input_name, a) if a in SPACE_AXES else None) for a in letters
            ),
        )
        for n, letters in layout.output_axes.items()
    )
    entry = WeightsEntry(written.format, written.file)
    return ModelDescription(
        name=name,
        format_version="0.5.4",
        root=root,
        descriptor=root / "rdf.yaml",
        inputs=(TensorSpec(layout.input_name, in_axes),),
        outputs=outputs,
        weights={written.format: entry},
        deepimagej=_tf_config(tf_keys),
    )


def _tf_config(tf_keys: tuple | None) -> DeepImageJConfig:
    return (
        DeepImageJConfig()
        if tf_keys is None
        else DeepImageJConfig(tensorflow_tag=tf_keys[0], tensorflow_signature=tf_keys[1])
    )


def _probe(
    root: Path, name: str, written: WrittenWeights, layout: _Layout, array: np.ndarray, tf_keys: tuple | None
) -> tuple[ProbedSizes, dict[str, int]]:
    """The network's valid sizes and output sizes, then its receptive radius per spatial axis."""
    tensor = _input_tensor(array, layout.input_axes)
    sizes_of = dict(zip(layout.input_axes, tensor.shape, strict=True))
    provisional = _probe_description(root, name, written, layout, sizes_of.get("c", 1), tf_keys)
    backend = _probe_backend(provisional, written)
    try:
        fixed = {a: s for a, s in _graph_fixed(written, layout.input_axes).items() if a in SPACE_AXES}
        sizes = probe_sizes(
            lambda x: backend.predict([x]), layout.input_axes, sizes_of, layout.output_axes, fixed=fixed
        )
        _check_example_size(sizes, sizes_of)
        found = _receptive_field(backend, provisional, layout, sizes, sizes_of)
    finally:
        backend.close()
    if found is None:  # no impulse changes the output: nothing is seen across a seam
        return sizes, {a: 0 for a in sizes.rules}
    unbounded = [a for a, flag in found.at_least.items() if flag and _grid_of(sizes, a)]
    if unbounded:
        _refuse_unbounded(unbounded, dict(found.radius), dict(found.probe))
    return sizes, dict(found.radius)


def _receptive_field(
    backend: Any,
    provisional: ModelDescription,
    layout: _Layout,
    sizes: ProbedSizes,
    sizes_of: Mapping[str, int],
) -> ReceptiveField | None:
    """The thorough impulse probe on the network, under the sizes just probed (no halo yet)."""
    from deepij.inference.receptive import THOROUGH, measure_receptive_field
    from deepij.inference.tiling import analyse_tiling

    tiling = analyse_tiling(_rules_description(provisional, layout, sizes, {}, sizes.rules))
    shapes = {layout.input_name: _untiled(sizes_of)}
    return measure_receptive_field(backend, tiling, shapes, effort=THOROUGH)


def _grid_of(sizes: ProbedSizes, axis: str) -> bool:
    """Whether the axis' size can grow (a fixed one cannot show more of the field)."""
    rule = sizes.rules[axis]
    return isinstance(rule, ParameterizedSize) and rule.step > 0


def _probe_backend(description: ModelDescription, written: WrittenWeights) -> Any:
    """The network loaded with its own framework; an ONNX session that does not log the failures the size
    probe provokes."""
    if written.format == "onnx":
        from deepij.inference.backends.onnx_runtime import OnnxRuntimeBackend

        entry = description.weights["onnx"]
        return OnnxRuntimeBackend(description, entry, description.root / entry.source, "cpu", quiet=True)
    from deepij.inference.backends import load_backend

    return load_backend(description, written.format, "cpu", allow_code=False, runtime="native", verify=False)


def _untiled(sizes_of: Mapping[str, int]) -> dict[str, int]:
    return {a: s for a, s in sizes_of.items() if a not in SPACE_AXES and a != "b"}


def _check_example_size(sizes: ProbedSizes, example: Mapping[str, int]) -> None:
    for axis, rule in sizes.rules.items():
        if not rule.is_valid(example[axis]):
            nearest = rule.smallest_at_least(example[axis])
            raise ArgumentError(
                f"example: its size along {axis!r} is {example[axis]}; the network takes "
                f"{_rule_words(rule)} (expected e.g. {nearest if nearest is not None else _rule_words(rule)})"
            )


def _rule_words(rule: FixedSize | ParameterizedSize) -> str:
    if isinstance(rule, FixedSize) or rule.step == 0:
        return f"exactly {rule.value if isinstance(rule, FixedSize) else rule.min}"
    return f"{rule.min} + k*{rule.step}"


def _refuse_unbounded(axes: list[str], radius: Mapping[str, int], probe: Mapping[str, int]) -> None:
    axis = axes[0]
    raise ArgumentError(
        f"model: along {axis!r} its receptive field reaches the border of the largest probe tile "
        f"({probe[axis]} pixels, radius >= {radius[axis]}): the network sees the whole image (global "
        "pooling or normalisation inside?), so tiles would change its output; expected a bounded receptive "
        "field, or build it with allow_tiling=False"
    )


# --- the tiling fields -----------------------------------------------------------------------------------


def _tiling_fields(
    sizes: ProbedSizes,
    radius: Mapping[str, int],
    layout: _Layout,
    halo: int | None,
    min_size: int | None,
    allow_tiling: bool,
) -> tuple[dict[str, dict[str, int]], dict[str, FixedSize | ParameterizedSize]]:
    """Declared halos per output axis and declared input size rules (see the module notes)."""
    if halo is not None and (not isinstance(halo, int) or isinstance(halo, bool) or halo < 0):
        raise ArgumentError(f"halo: found {halo!r}; expected a number of pixels >= 0")
    if not isinstance(allow_tiling, bool):
        raise ArgumentTypeError(f"allow_tiling: found {type(allow_tiling).__name__}; expected True or False")
    declared = dict(radius) if halo is None else {a: halo for a in radius}
    short = {a: r for a, r in radius.items() if declared[a] < r}
    if short and allow_tiling:
        warnings.warn(
            f"halo={halo} is smaller than the measured receptive radius ({short}): tiled outputs will "
            "differ from whole-image outputs at the tile seams",
            SeamWarning,
            stacklevel=3,
        )
    halos: dict[str, dict[str, int]] = {}
    for name, out in sizes.outputs.items():
        halos[name] = {
            a: aligned_halo(declared[a], _step(sizes.rules[a]), out.scale[a], out.offset[a])
            if allow_tiling
            else 0
            for a in out.scale
        }
    rules = {a: _declared_rule(a, sizes, halos, min_size, declared[a]) for a in sizes.rules}
    return halos, rules


def _step(rule: FixedSize | ParameterizedSize) -> int:
    return 0 if isinstance(rule, FixedSize) else rule.step


def _room(size: int, axis: str, sizes: ProbedSizes, halos: Mapping[str, Mapping[str, int]]) -> bool:
    """Whether a tile of ``size`` leaves a valid region on every output (``out - 2*halo >= 1``)."""
    for name, out in sizes.outputs.items():
        if axis in out.scale and size * out.scale[axis] + out.offset[axis] - 2 * halos[name][axis] < 1:
            return False
    return True


def _declared_rule(
    axis: str,
    sizes: ProbedSizes,
    halos: Mapping[str, Mapping[str, int]],
    min_size: int | None,
    radius: int,
) -> FixedSize | ParameterizedSize:
    rule = sizes.rules[axis]
    needed = max(2 * h.get(axis, 0) for h in halos.values()) if halos else 0
    if min_size is not None:
        if not isinstance(min_size, int) or isinstance(min_size, bool) or not rule.is_valid(min_size):
            raise ArgumentError(
                f"min_size: found {min_size!r}; the network takes {_rule_words(rule)} along {axis!r}"
            )
        if not _room(min_size, axis, sizes, halos):
            raise ArgumentError(
                f"min_size: {min_size} leaves no valid pixel along {axis!r} once the halo of {needed // 2} "
                f"(receptive radius {radius}) is cropped from both sides; expected a size above {needed}"
            )
        step = _step(rule)
        return ParameterizedSize(min_size, step) if step else FixedSize(min_size)
    if isinstance(rule, FixedSize) or rule.step == 0:
        size = rule.value if isinstance(rule, FixedSize) else rule.min
        if not _room(size, axis, sizes, halos):
            raise ArgumentError(
                f"model: its receptive field reaches {radius} pixels along {axis!r} (halo {needed // 2} on "
                f"each side) but its input size there is fixed to {size}: a tile would keep no valid pixel "
                f"(expected a fixed size above {needed}); export the network with free sizes, declare a "
                "smaller halo= (tiles then differ at their seams) or build it with allow_tiling=False"
            )
        return FixedSize(size)
    size = rule.min
    while not _room(size, axis, sizes, halos):
        size += rule.step
    return ParameterizedSize(size, rule.step)


def _rules_description(
    base: ModelDescription,
    layout: _Layout,
    sizes: ProbedSizes,
    halos: Mapping[str, Mapping[str, int]],
    rules: Mapping[str, FixedSize | ParameterizedSize],
) -> ModelDescription:
    """``base`` with the probed input rules, output sizes and the given halos."""
    from dataclasses import replace

    spec = base.inputs[0]
    in_axes = tuple(replace(a, size=rules[a.id]) if a.id in rules else a for a in spec.axes)
    outputs = []
    for out_spec in base.outputs:
        probed = sizes.outputs[out_spec.name]
        axes = []
        for a in out_spec.axes:
            if a.id in probed.scale:
                size: Any = ReferenceSize(
                    layout.input_name, a.id, float(probed.scale[a.id]), _offset(probed.offset[a.id], a.id)
                )
                axes.append(AxisSpec(a.id, size, halo=halos.get(out_spec.name, {}).get(a.id, 0)))
            elif a.id == "c":
                n = probed.fixed.get("c", 1)
                axes.append(
                    AxisSpec("c", FixedSize(n), channel_names=tuple(f"{out_spec.name}{i}" for i in range(n)))
                )
            elif a.id == "b":
                axes.append(a)
            else:
                axes.append(AxisSpec(a.id, FixedSize(probed.fixed[a.id])))
        outputs.append(replace(out_spec, axes=tuple(axes)))
    return replace(base, inputs=(replace(spec, axes=in_axes),), outputs=tuple(outputs))


def _offset(offset: Fraction, axis: str) -> float:
    if offset.denominator != 1:
        raise ArgumentError(
            f"model: its output size along {axis!r} is the input's scaled plus {float(offset)} pixels; "
            "expected a whole number of pixels (a bundle cannot describe it otherwise)"
        )
    return float(offset)


# --- writing ---------------------------------------------------------------------------------------------


@dataclass
class _Spec:
    """Everything found about the bundle before its files are written."""

    name: str
    root: Path
    layout: _Layout
    written: WrittenWeights
    sizes: ProbedSizes
    rules: dict[str, FixedSize | ParameterizedSize]
    halos: dict[str, dict[str, int]]
    pre: list[Step]
    post: list[Step]
    tf_keys: tuple | None
    channels: int
    allow_tiling: bool

    @property
    def spec_ops(self) -> bool:
        """Whether every pre-processing step has a spec op (then the test input is the raw example)."""
        return all(s.op is not None for s in self.pre)


@dataclass
class _Built:
    """The example's runs: the files they gave and what they measured."""

    description: ModelDescription
    example: np.ndarray
    result: np.ndarray
    result_axes: str
    tables: dict[str, Any]
    memory_peak: int
    runtime: float


def _sha256(path: Path) -> str:
    from deepij.bundle.download import file_sha256

    return file_sha256(path)


def _weights_entries(spec: _Spec, onnx_opset: int | None) -> dict[str, WeightsEntry]:
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


def _output_file(index: int, name: str) -> str:
    return TEST_OUTPUT if index == 0 else f"test_output_{name}.npy"


def _description(
    spec: _Spec, weights: Mapping[str, WeightsEntry], test_info: Mapping[str, Any]
) -> ModelDescription:
    """The bundle's description: probed sizes, declared halos, processing, test tensors, weights."""
    from dataclasses import replace

    base = _probe_description(spec.root, spec.name, spec.written, spec.layout, spec.channels, spec.tf_keys)
    described = _rules_description(base, spec.layout, spec.sizes, spec.halos, spec.rules)
    ops = tuple(s.op for s in spec.pre if s.op is not None) if spec.spec_ops else ()
    in_spec = replace(
        described.inputs[0],
        processing=ops,
        test_tensor=TEST_INPUT,
        sample_tensor=EXAMPLE_IMAGE,  # the zoo reads sample tensors as images (imageio), not .npy
        description=_input_text(spec),
    )
    outputs = tuple(replace(o, test_tensor=_output_file(k, o.name)) for k, o in enumerate(described.outputs))
    config = replace(
        _tf_config(spec.tf_keys),
        allow_tiling=spec.allow_tiling,
        preprocess=tuple(ImageJStep("macro", s.file) for s in spec.pre),
        postprocess=tuple(ImageJStep("macro", s.file) for s in spec.post),
        test_information=dict(test_info),
    )
    return replace(described, inputs=(in_spec,), outputs=outputs, weights=dict(weights), deepimagej=config)


def _input_text(spec: _Spec) -> str:
    if not spec.pre:
        return "The network's input."
    files = " and ".join(s.file for s in spec.pre)
    if spec.spec_ops:
        return f"Normalised by {files} in ImageJ, or by the preprocessing op below elsewhere."
    return f"The test input is the example after {files} (ImageJ macros without a spec op)."


def _onnx_copy(spec: _Spec, description: ModelDescription, tensor: np.ndarray) -> int | None:
    """Write ``weights.onnx`` when torch's network exports to an ONNX graph that reproduces torch on the
    example and on a larger valid size; its opset, else None (the reason raised as ArgumentError)."""
    from deepij.inference.backends.onnx_conversion import (
        OPSET,
        ROUTES,
        export_onnx,
        outputs_agree,
        probe_inputs,
    )
    from deepij.inference.backends.onnx_runtime import OnnxRuntimeBackend
    from deepij.inference.backends.torchscript import TorchScriptBackend

    entry = description.weights["torchscript"]
    torch_backend = TorchScriptBackend(description, entry, spec.root / entry.source)
    checks = [tensor.astype(np.float32), *probe_inputs(description, larger=True, seed=1)]
    reasons = []
    try:
        for route in ROUTES:
            try:
                graph = export_onnx(torch_backend, route)
                onnx_backend = OnnxRuntimeBackend(description, WeightsEntry("onnx", ONNX_FILE), graph, "cpu")
                try:
                    agree = all(
                        outputs_agree(torch_backend.predict([x]), onnx_backend.predict([x])) for x in checks
                    )
                finally:
                    onnx_backend.close()
            except Exception as error:  # the exporter and onnxruntime raise many kinds
                reasons.append(
                    f"{route}: {str(error).strip().splitlines()[0] if str(error).strip() else error!r}"
                )
                continue
            if agree:
                (spec.root / ONNX_FILE).write_bytes(graph)
                return OPSET
            reasons.append(f"{route}: the ONNX graph gives other outputs than torch")
    finally:
        torch_backend.close()
    raise ArgumentError("onnx: no ONNX copy reproduces the torch outputs (" + "; ".join(reasons) + ")")


def _write_bundle(spec: _Spec, array: np.ndarray, onnx: bool | str, notes: list[str]) -> _Built:
    from deepij.inference.meters import forward_meter
    from deepij.pipeline import Model
    from deepij.trust.build_files import write_imagej_tiff

    axes = spec.layout.input_axes
    tensor = _input_tensor(array, axes)
    write_imagej_tiff(tensor, axes, spec.root / EXAMPLE_IMAGE)
    opset = None
    if spec.written.format == "torchscript" and onnx is not False:
        try:
            opset = _onnx_copy(spec, _description(spec, _weights_entries(spec, None), {}), tensor)
        except (ArgumentError, ImportError) as error:
            if onnx is True:
                raise
            notes.append(f"no ONNX copy: {error}")
    description = _description(spec, _weights_entries(spec, opset), {})
    test_input = _test_input(spec, description, tensor)
    np.save(spec.root / TEST_INPUT, test_input)
    model = Model(description)
    primary = spec.written.format
    try:
        # What the zoo's tools reproduce: the spec ops, then the network on the test input as it is (no
        # padding: a valid network's output is smaller), in the network's own framework.
        zoo_run = model.predict(
            test_input,
            processing="spec",
            tile="image",
            weights_format=primary,
            runtime="native",
            batch_size=1,
            logging="mute",
        )
        for k, (name, letters) in enumerate(spec.layout.output_axes.items()):
            tensor = zoo_run.images[name].transpose(*letters).values
            np.save(spec.root / _output_file(k, name), np.asarray(tensor, dtype=np.float32))
        backend = model.backend(primary, None, "native")
        memory = forward_meter(backend)(lambda: backend.predict([test_input]))
        if description.deepimagej.preprocess or description.deepimagej.postprocess:
            from deepij.imagej import imagej

            imagej()  # started before the clock: deepImageJ runs inside a running ImageJ
        start = time.perf_counter()
        run = model.predict(
            spec.root / EXAMPLE_IMAGE,
            processing="auto",
            weights_format=primary,
            runtime="native",
            logging="mute",
        )
        runtime = time.perf_counter() - start
    finally:
        model.close()
    notes.extend(n for n in run.notes if n not in notes)
    left = [n for n in run.images if n not in spec.layout.output_axes]
    shown = left[0] if spec.post and left else next(iter(spec.layout.output_axes))
    image = run.images[shown]
    return _Built(
        description,
        tensor,
        image.values,
        "".join(str(d) for d in image.dims),
        dict(run.tables),
        int(memory),
        runtime,
    )


def _test_input(spec: _Spec, description: ModelDescription, tensor: np.ndarray) -> np.ndarray:
    """The raw example (float32), or, when a pre-processing macro has no spec op, the example after the
    bundle's ImageJ pre-processing (what the network receives)."""
    if spec.spec_ops:
        return tensor.astype(np.float32)
    from deepij.pipeline.sources import read_source
    from deepij.pipeline.steps import Chain

    chain = Chain(description, "macros")
    source = read_source(spec.root / EXAMPLE_IMAGE, description, session=chain.session)
    image = chain.pre(source)[spec.layout.input_name]
    letters = [a for a in spec.layout.input_axes if a in image.dims]
    image = image.transpose(*letters)
    return _input_tensor(image.values, spec.layout.input_axes).astype(np.float32)


def _finish(spec: _Spec, built: _Built, metadata: Mapping[str, Any]) -> ModelDescription:
    """Result files, cover, README and the final ``rdf.yaml``."""
    from dataclasses import replace

    from deepij.bundle.writer import write_descriptor
    from deepij.trust.build_files import image_size_text, write_cover, write_imagej_tiff
    from deepij.trust.build_readme import readme_text

    write_imagej_tiff(built.result, built.result_axes, spec.root / RESULT_IMAGE)
    files = [s.file for s in (*spec.pre, *spec.post)] + [RESULT_IMAGE]
    outputs_info: list[dict[str, Any]] = [
        {"name": RESULT_IMAGE, "type": "image", "size": image_size_text(built.result, built.result_axes)}
    ]
    for k, (title, table) in enumerate(built.tables.items()):
        file = RESULT_TABLE if k == 0 else f"resultTable_{_file_safe(title)}.csv"
        table.to_csv(spec.root / file, index=False)
        files.append(file)
        outputs_info.append({"name": file, "type": "ResultsTable"})
    axes = spec.layout.input_axes
    test_info = {
        "inputs": [
            {
                "name": EXAMPLE_IMAGE,
                "size": image_size_text(built.example, axes),
                "pixel_size": {"x": "1 pixel", "y": "1 pixel", "z": "1 pixel"},
            }
        ],
        "outputs": outputs_info,
        "memory_peak": f"{built.memory_peak / 1e6:.1f} MB",
        "runtime": f"{built.runtime:.2f} s",
    }
    from deepij.trust.build_files import imagej_layout

    example_plane, _ = imagej_layout(built.example, axes)
    result_plane, _ = imagej_layout(built.result, built.result_axes)
    write_cover([example_plane, result_plane], spec.root / COVER)
    description = replace(
        _description(spec, built.description.weights, test_info),
        description=metadata["description"] or f"{spec.name}, packaged with deepij build.",
        authors=metadata["authors"],
        cite=metadata["cite"],
        license=metadata["license"],
        tags=metadata["tags"],
        version=metadata["version"],
        documentation=README,
        covers=(COVER,),
        attachments=tuple(files),
        extra={"timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    (spec.root / README).write_text(readme_text(description, spec, built), encoding="utf-8")
    write_descriptor(description, spec.root / "rdf.yaml", "0.5")
    return description


def _file_safe(title: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in title)[:40] or "table"


def _move_into_place(staging: Path, target: Path, overwrite: bool) -> None:
    """Rename the finished folder into place; an old one (``overwrite``) goes only once the new one is
    there. The old zip goes with it, so that it cannot be taken for the new bundle's."""
    old_zip = target.with_name(target.name + ".zip")
    if target.exists():
        if not overwrite:
            raise ArgumentError(f"output: {target} appeared while building (expected a new folder)")
        trash = staging.with_name(staging.name + ".old")
        os.replace(target, trash)
        os.replace(staging, target)
        shutil.rmtree(trash, ignore_errors=True)
        old_zip.unlink(missing_ok=True)
    else:
        os.replace(staging, target)


__all__ = ["BuiltBundle", "build"]
