"""Property-based tests: descriptions round-trip through the writer; any descriptor input gives either a
description or a BundleError, never another exception."""

from __future__ import annotations

import dataclasses
import functools
import math
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from deepij.bundle import open_bundle, write_descriptor
from deepij.bundle._yaml import dump_yaml, load_yaml_text
from deepij.bundle.checks import check_description
from deepij.bundle.description import (
    DATA_TYPES,
    ArchitectureSpec,
    AxisSpec,
    Citation,
    DeepImageJConfig,
    FixedSize,
    ImageJStep,
    ModelDescription,
    ParameterizedSize,
    Person,
    ProcessingOp,
    ReferenceSize,
    TensorSpec,
    WeightsEntry,
)
from deepij.bundle.readers.common import METADATA_KEYS, strip_quotes
from deepij.bundle.readers.legacy import LEGACY_FILE_LISTS
from deepij.bundle.writer import descriptor_data
from deepij.errors import BundleError

SETTINGS = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
"""The number of examples and their randomness come from the profile (tests/conftest.py)."""

# --- plain values ----------------------------------------------------------------------------------------

printable = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"))
texts = st.text(printable, max_size=20)
names = texts.map(str.strip).filter(lambda s: s and s[0] not in "'\"" and s[-1] not in "'\"")
identifiers = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_lowercase),
    st.text(string.ascii_lowercase + string.digits + "_", max_size=7),
)
versions = st.builds("{}.{}.{}".format, st.integers(0, 9), st.integers(0, 20), st.integers(0, 9))
scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | texts
plain = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(identifiers, inner, max_size=3),
    max_leaves=4,
)
paths = st.builds(
    lambda parts, ext: "/".join(parts) + ext,
    st.lists(identifiers, min_size=1, max_size=2),
    st.sampled_from([".npy", ".tif", ".png", ".md", ".pt"]),
)
sha = st.none() | st.text("0123456789abcdef", min_size=64, max_size=64)
nice_scales = st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0])


@functools.cache
def _extra_dicts(reserved: frozenset[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(identifiers.filter(lambda k: k not in reserved), plain, max_size=2)


def extra_dicts(reserved: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Unknown fields a reader must keep (strategies are built once: building them is costly)."""
    return _extra_dicts(frozenset(reserved))


size_rules = st.builds(FixedSize, st.integers(1, 64)) | st.builds(
    ParameterizedSize, st.integers(1, 64), st.integers(1, 16)
)
macro_steps = st.builds(lambda p: ImageJStep("macro", p), identifiers.map(lambda s: s + ".ijm"))
java_steps = st.builds(
    lambda f, c, m, configs: ImageJStep("java", f, c, m, configs),
    identifiers.map(lambda s: s + ".jar") | identifiers.map(lambda s: s.capitalize() + ".class"),
    st.none() | st.builds("{}.{}".format, identifiers, identifiers.map(str.capitalize)),
    st.none() | identifiers.filter(lambda m: not m.endswith("routineusingimage")),
    st.lists(identifiers.map(lambda s: s + ".txt"), max_size=2, unique=True).map(tuple),
)
people = st.builds(Person, names, st.none() | texts, st.none() | texts, st.none() | identifiers, st.none())
citations = st.builds(Citation, texts, st.none() | identifiers, st.none())


# --- descriptions ----------------------------------------------------------------------------------------


@st.composite
def input_tensor(draw: st.DrawFn, name: str, legacy: bool) -> TensorSpec:
    letters = draw(st.permutations("bczyx").map(lambda p: p[: draw(st.integers(1, 5))]))
    axes = []
    for letter in letters:
        if letter == "b":
            axes.append(AxisSpec("b", FixedSize(1) if legacy else draw(st.none() | st.just(FixedSize(1)))))
        elif letter == "c":
            n = draw(st.integers(1, 3))
            names_ = (
                () if legacy else draw(st.just(()) | st.lists(identifiers, min_size=n, max_size=n).map(tuple))
            )
            axes.append(AxisSpec("c", FixedSize(n), channel_names=names_))
        else:
            rule = draw(size_rules)
            scale = 1.0 if legacy else draw(nice_scales)
            unit = None if legacy else draw(st.none() | st.sampled_from(["micrometer", "nanometer"]))
            axes.append(AxisSpec(letter, rule, scale=scale, unit=unit))
    return draw(tensor_fields(name, tuple(axes), legacy))


@st.composite
def output_tensor(draw: st.DrawFn, name: str, reference: TensorSpec, legacy: bool) -> TensorSpec:
    letters = draw(st.permutations("bczyx").map(lambda p: p[: draw(st.integers(1, 5))]))
    ref_axes = {a.id: a for a in reference.axes}
    axes = []
    for letter in letters:
        if letter == "b" and "b" in ref_axes and draw(st.booleans()):
            axes.append(AxisSpec("b", ReferenceSize(reference.name, "b")))  # one output sample per input
        elif letter in ref_axes and letter != "b" and draw(st.booleans()):
            scale = draw(nice_scales)
            offset = float(draw(st.integers(-4, 4)))
            growable = isinstance(ref_axes[letter].size, ParameterizedSize)  # else the halo may not fit
            halo = draw(st.integers(0, 3)) if letter in "zyx" and growable else 0
            own_scale = 1.0 if legacy else ref_axes[letter].scale / scale
            axes.append(
                AxisSpec(
                    letter, ReferenceSize(reference.name, letter, scale, offset), halo=halo, scale=own_scale
                )
            )
        elif letter == "b":
            axes.append(AxisSpec("b", None))
        else:
            axes.append(AxisSpec(letter, FixedSize(draw(st.integers(1, 64)))))
    return draw(tensor_fields(name, tuple(axes), legacy))


@st.composite
def tensor_fields(draw: st.DrawFn, name: str, axes: tuple[AxisSpec, ...], legacy: bool) -> TensorSpec:
    letters = "".join(a.id for a in axes)
    non_batch = [a for a in letters if a != "b"]
    ops = []
    for _ in range(draw(st.integers(0, 2))):
        op_name = draw(
            st.sampled_from(["zero_mean_unit_variance", "scale_linear", "sigmoid", "clip", "custom_op"])
        )
        kwargs = draw(extra_dicts({"axes", "axis"}))
        if non_batch and draw(st.booleans()):
            kwargs["axes"] = "".join(draw(st.permutations(non_batch))[: draw(st.integers(1, len(non_batch)))])
        ops.append(ProcessingOp(op_name, kwargs))
    low = draw(st.floats(allow_nan=False))
    data_range = draw(st.none() | st.just((low, draw(st.floats(min_value=low, allow_nan=False)))))
    return TensorSpec(
        name=name,
        axes=axes,
        data_type=draw(st.sampled_from(DATA_TYPES)),
        data_range=data_range,
        processing=tuple(ops),
        description=draw(texts),
        test_tensor=draw(st.none() | paths) if not legacy else None,
        sample_tensor=draw(st.none() | paths) if not legacy else None,
        extra=draw(
            extra_dicts(
                {
                    "name",
                    "id",
                    "axes",
                    "data",
                    "data_type",
                    "data_range",
                    "shape",
                    "halo",
                    "description",
                    "test_tensor",
                    "sample_tensor",
                    "preprocessing",
                    "postprocessing",
                }
            )
        ),
    )


@st.composite
def weights_entries(draw: st.DrawFn) -> dict[str, WeightsEntry]:
    formats = draw(
        st.lists(
            st.sampled_from(
                ["torchscript", "onnx", "pytorch_state_dict", "tensorflow_saved_model_bundle", "keras_hdf5"]
            ),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    entries = {}
    for fmt in formats:
        architecture = None
        if fmt == "pytorch_state_dict":
            source = draw(st.sampled_from(["arch.py", "nets/unet.py", "mypackage.models"]))
            architecture = ArchitectureSpec(source, draw(identifiers), draw(extra_dicts(set())), draw(sha))
        entries[fmt] = WeightsEntry(
            format=fmt,
            source=draw(paths),
            sha256=draw(sha),
            attachments=tuple(draw(st.lists(paths, max_size=2))),
            architecture=architecture,
            framework_version=draw(st.none() | versions) if fmt != "onnx" else None,
            parent=draw(st.none() | st.sampled_from(formats)),
            extra=draw(
                extra_dicts(
                    {
                        "source",
                        "sha256",
                        "attachments",
                        "parent",
                        "pytorch_version",
                        "tensorflow_version",
                        "architecture",
                        "architecture_sha256",
                        "kwargs",
                    }
                )
            ),
        )
    return entries


@st.composite
def deepimagej_configs(draw: st.DrawFn) -> DeepImageJConfig:
    tf = draw(st.booleans())
    return DeepImageJConfig(
        pyramidal_model=draw(st.booleans()),
        allow_tiling=draw(st.booleans()),
        tensorflow_tag=draw(identifiers) if tf else None,
        tensorflow_signature=draw(identifiers) if tf else None,
        preprocess=tuple(draw(st.lists(macro_steps | java_steps, max_size=2))),
        postprocess=tuple(draw(st.lists(macro_steps | java_steps, max_size=2))),
        test_information=draw(extra_dicts(set())),
        extra=draw(
            extra_dicts({"pyramidal_model", "allow_tiling", "model_keys", "test_information", "prediction"})
        ),
    )


@st.composite
def descriptions(draw: st.DrawFn, legacy: bool = False) -> ModelDescription:
    tensor_names = draw(st.lists(identifiers, min_size=2, max_size=4, unique=True))
    n_inputs = draw(st.integers(1, len(tensor_names) - 1))
    inputs = tuple(draw(input_tensor(n, legacy)) for n in tensor_names[:n_inputs])
    outputs = tuple(draw(output_tensor(n, inputs[0], legacy)) for n in tensor_names[n_inputs:])
    if legacy and draw(st.booleans()):  # 0.4 lists test files at the top level: all tensors have one or none
        inputs = tuple(dataclasses.replace(t, test_tensor=draw(paths)) for t in inputs)
        outputs = tuple(dataclasses.replace(t, test_tensor=draw(paths)) for t in outputs)
    weights = draw(weights_entries())
    documentation = draw(st.none() | paths)
    covers = tuple(draw(st.lists(paths, max_size=2)))
    attachments = tuple(draw(st.lists(paths, max_size=2)))
    named = [documentation, *covers, *attachments, *(a for e in weights.values() for a in e.attachments)]
    named += [f for t in (*inputs, *outputs) for f in (t.test_tensor, t.sample_tensor)]
    digests = {path: draw(sha) for path in dict.fromkeys(f for f in named if f is not None)}
    description = ModelDescription(
        name=draw(names),
        format_version="",
        root=Path("."),
        descriptor=Path("rdf.yaml"),
        inputs=inputs,
        outputs=outputs,
        weights=weights,
        description=draw(texts),
        id=draw(st.none() | identifiers),
        version=draw(st.none() | versions),
        authors=tuple(draw(st.lists(people, max_size=2))),
        maintainers=tuple(draw(st.lists(people, max_size=1))),
        cite=tuple(
            draw(st.lists(st.builds(Citation, texts, st.none() | identifiers, st.none()), max_size=2))
        ),
        license=draw(st.none() | st.sampled_from(["MIT", "BSD-3-Clause", "CC-BY-4.0"])),
        documentation=documentation,
        tags=tuple(draw(st.lists(texts, max_size=3))),
        covers=covers,
        attachments=attachments,
        deepimagej=draw(deepimagej_configs()),
        config=draw(extra_dicts({"deepimagej", "deepij"})),  # config.deepij holds 0.4's file sha256
        file_sha256={path: d for path, d in digests.items() if d is not None},
        extra=draw(extra_dicts(set(METADATA_KEYS) | set(LEGACY_FILE_LISTS))),
    )
    try:
        check_description(description)
    except BundleError:
        assume(False)
    return description


def _comparable(d: ModelDescription) -> ModelDescription:
    return dataclasses.replace(d, root=Path("."), descriptor=Path("rdf.yaml"), format_version="")


def _round_trip(description: ModelDescription, version: str) -> ModelDescription:
    with tempfile.TemporaryDirectory() as folder:
        path = write_descriptor(description, Path(folder) / "rdf.yaml", version)
        return open_bundle(path, verify=False)


@SETTINGS
@given(descriptions())
def test_round_trip_0_5(description: ModelDescription) -> None:
    again = _round_trip(description, "0.5")  # file sha256 included (file_sha256 compares too)
    assert again.format_version == "0.5.4"
    assert _comparable(again) == _comparable(description)


@SETTINGS
@given(descriptions(legacy=True))
def test_round_trip_0_4(description: ModelDescription) -> None:
    again = _round_trip(description, "0.4")
    assert again.format_version == "0.4.10"
    assert _comparable(again) == _comparable(description)


# --- fuzzing ---------------------------------------------------------------------------------------------


def _open_or_bundle_error(data: Any, folder: Path) -> ModelDescription | None:
    (folder / "rdf.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    try:
        return open_bundle(folder, verify=False)
    except BundleError as error:
        assert str(error)  # a message, never an empty error
        return None


@SETTINGS
@given(st.dictionaries(st.sampled_from([*METADATA_KEYS, *LEGACY_FILE_LISTS, "other"]), plain, max_size=8))
def test_any_mapping_gives_a_description_or_a_bundle_error(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        description = _open_or_bundle_error(data, Path(folder))
    if description is not None:  # what was accepted is what the mapping said
        assert description.name == strip_quotes(str(data["name"]))
        assert description.format_version == str(data["format_version"]).strip()
        assert len(description.inputs) == len(data["inputs"]) >= 1
        assert len(description.outputs) == len(data["outputs"]) >= 1
        assert set(description.weights) <= {"torchscript", *data["weights"]}


@SETTINGS
@given(st.text(st.characters(codec="utf-8"), max_size=200))
def test_any_text_gives_data_or_a_bundle_error(text: str) -> None:
    try:
        data = load_yaml_text(text, "fuzz.yaml")
    except BundleError as error:
        assert "fuzz.yaml" in str(error)
        return
    _assert_plain(data)
    # and the same data comes back through the writer's YAML, whatever text it holds
    assert _same(load_yaml_text(dump_yaml(data), "again.yaml"), data)


def _assert_plain(value: Any) -> None:
    """Only plain YAML core types, text keys (what every reader expects)."""
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        for v in value.values():
            _assert_plain(v)
    elif isinstance(value, list):
        for v in value:
            _assert_plain(v)
    else:
        assert value is None or isinstance(value, (str, bool, int, float)), type(value)


def _same(a: Any, b: Any) -> bool:
    """Equality with NaN equal to itself (``.nan`` is a valid YAML value)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _mutate(data: Any, draw: st.DrawFn) -> Any:
    """Replace, delete or add one value somewhere in the data (the place and the change drawn)."""
    if isinstance(data, dict) and data and draw(st.integers(0, 3)) > 0:
        key = draw(st.sampled_from(sorted(data)))
        action = draw(st.sampled_from(["descend", "descend", "delete", "replace", "add"]))
        if action == "delete":
            return {k: v for k, v in data.items() if k != key}
        if action == "replace":
            return {**data, key: draw(plain)}
        if action == "add":
            return {**data, draw(identifiers): draw(plain)}
        return {**data, key: _mutate(data[key], draw)}
    if isinstance(data, list) and data and draw(st.integers(0, 3)) > 0:
        index = draw(st.integers(0, len(data) - 1))
        copy = list(data)
        if draw(st.booleans()):
            copy[index] = _mutate(copy[index], draw)
        else:
            del copy[index]
        return copy
    return draw(plain)


@pytest.mark.parametrize("version", ["0.3", "0.4", "0.5"])
@SETTINGS
@given(st.data())
def test_mutated_real_descriptors(written, version: str, data: st.DataObject) -> None:
    bundle = written[version]
    original = yaml.safe_load(bundle.descriptor.read_text())
    mutated = original
    for _ in range(data.draw(st.integers(1, 3))):
        mutated = _mutate(mutated, data.draw)
    _accepted_data_round_trips(mutated)


def _accepted_data_round_trips(data: dict[str, Any]) -> ModelDescription | None:
    """Whatever descriptor data is accepted can be written again as 0.5 and reads back the same; as 0.4
    too, or a clear refusal. The description, or None when the data was refused."""
    with tempfile.TemporaryDirectory() as folder:
        description = _open_or_bundle_error(data, Path(folder))
        if description is None:
            return None
        again = _round_trip(description, "0.5")
        assert again.inputs == description.inputs and again.outputs == description.outputs
        assert again.weights == description.weights and again.name == description.name
        assert again.file_sha256 == description.file_sha256
        try:
            data_0_4 = descriptor_data(description, "0.4")
        except BundleError as error:
            assert "0.4" in str(error)
        else:
            assert data_0_4["format_version"] == "0.4.10" and data_0_4["name"] == description.name
    return description


# --- failures the properties found, kept as explicit cases ------------------------------------------------


@pytest.mark.parametrize("entry", ["", "./", " ", None])
def test_a_0_4_sample_entry_naming_no_file(written, entry: str | None) -> None:
    """Found by test_mutated_real_descriptors: ``sample_inputs: ['']`` was read as the path '', which the
    0.5 writer wrote as ``sample_tensor: {source: ''}``, which no reader takes (the round trip lost
    ``inputs[0].sample_tensor.source``). An entry that names no file is no file."""
    data = yaml.safe_load(written["0.4"].descriptor.read_text())
    data["sample_inputs"] = [entry]
    description = _accepted_data_round_trips(data)
    assert description is not None and description.inputs[0].sample_tensor is None
    assert description.inputs[0].test_tensor == "test_input.npy"


def test_a_null_first_entry_keeps_the_others_in_place(written) -> None:
    """Entries belong to tensors by position: a null entry is no file for the first input, and the second
    entry (a second file, no tensor of its own) does not move up to the first."""
    data = yaml.safe_load(written["0.4"].descriptor.read_text())
    data["test_inputs"] = [None, "other.npy"]
    description = _accepted_data_round_trips(data)
    assert description is not None and description.inputs[0].test_tensor is None
    assert description.extra["test_inputs"] == [None, "other.npy"]
