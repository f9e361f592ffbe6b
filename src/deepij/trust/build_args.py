"""``deepij build``'s arguments, checked: names and texts, authors and citations, the example and the axes of
the network's tensors. Every refusal names the argument, what was found and what was expected.

Examples
--------
>>> input_tensor(np.zeros((30, 40)), "bcyx").shape
(1, 1, 30, 40)
>>> stats_axes("bcyx")
'cyx'
>>> [p.name for p in authors_of(["Ada", {"name": "Grace", "affiliation": "Navy"}])]
['Ada', 'Grace']
>>> check_text("", "name", 128)
Traceback (most recent call last):
deepij.errors.ArgumentError: name: found 0 characters; expected 1 to 128 (what the zoo accepts)
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepij.bundle.description import SPACE_AXES, Citation, Person
from deepij.errors import ArgumentError, ArgumentTypeError
from deepij.trust.build_sources import WrittenWeights
from deepij.trust.build_types import DEFAULT_CITATION, BuildRequest, Layout


def checked_metadata(request: BuildRequest) -> dict[str, Any]:
    """The descriptor's metadata from the request, checked (name, description, authors, citations)."""
    check_text(request.name, "name", 128)
    check_text(request.description, "description", 1024, allow_empty=True)
    if request.onnx not in (True, False, "auto"):
        raise ArgumentError(f"onnx: found {request.onnx!r}; expected True, False or 'auto'")
    return {
        "description": request.description,
        "authors": authors_of(request.authors),
        "license": request.license,
        "cite": citations_of(request.cite),
        "tags": tuple(request.tags),
        "version": request.version,
    }


def check_text(value: Any, argument: str, longest: int, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{argument}: found {type(value).__name__}; expected a str")
    if (not allow_empty and not value.strip()) or len(value) > longest:
        raise ArgumentError(
            f"{argument}: found {len(value)} characters; expected 1 to {longest} (what the zoo accepts)"
        )


def authors_of(authors: Sequence[str | Mapping[str, str]] | None) -> tuple[Person, ...]:
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


def citations_of(cite: Sequence[Mapping[str, str]] | None) -> tuple[Citation, ...]:
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


def axes_asked(model: Any, axes: str | None) -> str | None:
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


def example_array(example: Any, axes: str | None) -> np.ndarray:
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


def layout_of(
    written: WrittenWeights,
    array: np.ndarray,
    axes: str | None,
    output_axes: str | Sequence[str] | None,
    input_name: str | None,
    output_names: Sequence[str] | None,
) -> Layout:
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
    return Layout(inputs, axes, dict(zip(names, letters, strict=True)))


def _check_tensor_id(value: Any, argument: str) -> None:
    from deepij.trust.build_sources import TENSOR_ID

    if not isinstance(value, str) or not TENSOR_ID.match(value):
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

        tensor = input_tensor(array, axes)
        with torch.inference_mode():
            result = written.module(torch.from_numpy(tensor.astype(np.float32)))
        return len(result) if isinstance(result, (tuple, list)) else 1
    return 1


def input_tensor(array: np.ndarray, axes: str) -> np.ndarray:
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


def channel_count(array: np.ndarray, axes: str) -> int:
    """The example's channel count (1 without a channel axis)."""
    return dict(zip(axes, input_tensor(array, axes).shape, strict=True)).get("c", 1)


def stats_axes(axes: str) -> str:
    """What a per-sample normalisation of the generated macros runs over: every axis but batch."""
    return "".join(a for a in axes if a != "b")


__all__ = [
    "authors_of",
    "axes_asked",
    "channel_count",
    "check_text",
    "checked_metadata",
    "citations_of",
    "example_array",
    "input_tensor",
    "layout_of",
    "stats_axes",
]
