"""Descriptor scalars read as YAML 1.2 reads them (the expected values are the YAML 1.2.2 core schema's own
examples, section 10.3.2), still with safe loading only."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from deepij.bundle import open_bundle, write_descriptor
from deepij.bundle._yaml import dump_yaml, load_yaml_text
from deepij.errors import BundleError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-06", 1e-06),  # no dot: text to PyYAML's 1.1 rules, a float in 1.2
        ("1E6", 1e6),
        ("+1.5e3", 1500.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1.", 1.0),
        ("+12", 12),
        ("-7", -7),
        ("0", 0),
        ("0777", 777),  # octal only as 0o in 1.2
        ("0o14", 12),
        ("0xC", 12),
        (".inf", math.inf),
        ("-.Inf", -math.inf),
        ("+.INF", math.inf),
    ],
)
def test_numbers(text: str, expected: float) -> None:
    value = load_yaml_text(f"v: {text}\n", "rdf.yaml")["v"]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    "text", ["yes", "no", "on", "off", "Yes", "NO", "y", "1_000", "1:20", "0b101", "1e", "e5", "0x", "12abc"]
)
def test_yaml_1_1_only_forms_stay_text(text: str) -> None:
    assert load_yaml_text(f"v: {text}\n", "rdf.yaml") == {"v": text}


def test_booleans_null_and_nan() -> None:
    data = load_yaml_text("a: true\nb: False\nc: TRUE\nd: ~\ne: null\nf:\ng: .NaN\n", "rdf.yaml")
    assert data["a"] is True and data["b"] is False and data["c"] is True
    assert data["d"] is data["e"] is data["f"] is None
    assert math.isnan(data["g"])


def test_quoted_numbers_stay_text() -> None:
    assert load_yaml_text("a: '1e-06'\nb: \"12\"\n", "rdf.yaml") == {"a": "1e-06", "b": "12"}


def test_text_that_looks_like_a_number_is_written_quoted(tmp_path: Path) -> None:
    values = {"a": "1e-06", "b": "yes", "c": ".5", "d": "0o7", "e": "1_000", "f": 1e-06, "g": "on"}
    assert load_yaml_text(dump_yaml(values), "x.yaml") == values


def test_an_explicit_tag_that_does_not_fit_is_an_error() -> None:
    with pytest.raises(BundleError, match="malformed YAML") as caught:
        load_yaml_text("v: !!bool yes\n", "rdf.yaml")
    assert caught.value.file == "rdf.yaml"
    with pytest.raises(BundleError, match="malformed YAML"):
        load_yaml_text("v: !!int twelve\n", "rdf.yaml")


def _zoo_like(eps: str, flag: str) -> str:
    return textwrap.dedent(
        f"""\
        format_version: 0.5.3
        type: model
        name: zoo-like
        inputs:
          - id: raw
            axes: [{{type: batch}}, {{type: channel, channel_names: ['on']}},
                   {{type: space, id: y, size: 64}}, {{type: space, id: x, size: 64}}]
            preprocessing:
              - id: zero_mean_unit_variance
                kwargs: {{axes: [y, x], eps: {eps}}}
        outputs:
          - id: out
            axes: [{{type: batch}}, {{type: space, id: y, size: {{tensor_id: raw, axis_id: y}}}},
                   {{type: space, id: x, size: {{tensor_id: raw, axis_id: x}}}}]
        weights:
          onnx: {{source: https://example.org/w.onnx}}
        config:
          deepimagej: {{allow_tiling: {flag}}}
        """
    )


def test_a_zoo_descriptor_with_eps_without_a_dot(tmp_path: Path) -> None:
    (tmp_path / "rdf.yaml").write_text(_zoo_like("1e-06", "off"))
    description = open_bundle(tmp_path)
    kwargs = description.inputs[0].processing[0].kwargs
    assert kwargs["eps"] == 1e-06 and isinstance(kwargs["eps"], float)
    assert description.inputs[0].axis("c").channel_names == ("on",)  # a name, not a boolean
    assert description.deepimagej.allow_tiling is False  # a flag field takes the 1.1 word
    again = open_bundle(write_descriptor(description, tmp_path / "again" / "rdf.yaml"), verify=False)
    assert again.inputs[0].processing[0].kwargs["eps"] == 1e-06
