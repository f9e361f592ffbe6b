"""The options of ``run("DeepImageJ Run", "...")`` in its three dialects, read into one typed request.

deepImageJ's macro command has been spelled three ways over the years, and workshop macros contain all of
them:

- 2.1.x / 3.0.x: ``model= format= preprocessing= postprocessing= axes= tile= logging=`` (+ ``models_dir=``,
  ``model_dir=``), e.g. ``model=[SMLM Density Map Estimation (DEFCoN)] format=Tensorflow preprocessing=[no
  preprocessing] postprocessing=[no postprocessing] axes=Y,X,C tile=84,84,1 logging=normal``;
- 1.x: ``model= preprocessing= postprocessing= patch= overlap= logging=``;
- 3.1: ``model_path= input_path= output_folder= display_output=`` (``modelPath=``... in camelCase before
  mid-2025).

A value is the text up to the next ``key=``; brackets ``[...]`` wrap values with spaces (and may nest, as in
``[[a.ijm, b.ijm]]``). Key spelling is forgiving (case and underscores: ``modelPath`` is ``model_path``);
keys no dialect knows, keys of two dialects that contradict each other, and a key given twice with two values
are refused with an :class:`~deepij.errors.ArgumentError` naming the key.

Examples
--------
>>> request = parse_run_options(
...     "model=[My Model] format=Pytorch preprocessing=[[a.ijm, b.ijm]] postprocessing=[no postprocessing] "
...     "axes=C,Y,X tile=1,256,256 logging=Normal")
>>> request.dialect, request.model, request.weights_format, request.preprocessing, request.postprocessing
('2.x', 'My Model', 'torchscript', ('a.ijm', 'b.ijm'), ())
>>> request.tile_sizes()
{'c': 1, 'y': 256, 'x': 256}
>>> parse_run_options("modelPath=/models/unet inputPath=[/data/my images] displayOutput=false").input_path
PosixPath('/data/my images')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deepij.errors import ArgumentError

Dialect = Literal["2.x", "1.x", "3.1"]

#: Canonical key -> the dialects it belongs to.
KEYS: dict[str, tuple[str, ...]] = {
    "model": ("2.x", "1.x", "3.1"),
    "format": ("2.x", "1.x", "3.1"),
    "preprocessing": ("2.x", "1.x"),
    "postprocessing": ("2.x", "1.x"),
    "axes": ("2.x", "3.1"),
    "tile": ("2.x", "3.1"),
    "logging": ("2.x", "1.x", "3.1"),
    "model_dir": ("2.x", "1.x", "3.1"),
    "models_dir": ("2.x", "1.x", "3.1"),
    "patch": ("1.x",),
    "overlap": ("1.x",),
    "model_path": ("3.1",),
    "input_path": ("3.1",),
    "output_folder": ("3.1",),
    "display_output": ("3.1",),
}
_ALIASES = {key.replace("_", ""): key for key in KEYS}
_BOOLEAN_KEYS = ("display_output",)
_FORMATS = {"tensorflow": "tensorflow_saved_model_bundle", "pytorch": "torchscript", "onnx": "onnx"}
_LOGGING = ("mute", "normal", "debug")
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off", "null", "none")
_KEY_AHEAD = re.compile(r"\s+([A-Za-z_][A-Za-z0-9_]*)=")
_KEY_HERE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")


@dataclass(frozen=True)
class RunRequest:
    """One ``run("DeepImageJ Run", ...)`` call, whatever dialect it was written in.

    Attributes
    ----------
    dialect : {"2.x", "1.x", "3.1"}
        The syntax the options are written in (3.1 when a 3.1 key is present, 1.x when ``patch=`` or
        ``overlap=`` is, else 2.x).
    model : str or None
        ``model=``: the model's name as the descriptor gives it (or its folder name).
    model_path : Path or None
        ``model_path=`` (3.1): the bundle folder, descriptor or zip.
    models_dir : Path or None
        ``models_dir=`` / ``model_dir=``: where to look the model up (a bundle folder itself works too).
    weights_format : str or None
        ``format=`` as a canonical weights format (``Pytorch`` -> ``"torchscript"``), None when not given.
    preprocessing, postprocessing : tuple of str, or None
        The processing files named (``()`` for ``[no preprocessing]``; None when the key is absent).
    axes : tuple of str or None
        ``axes=`` as lowercase letters (``Y,X,C`` -> ``("y", "x", "c")``).
    tile : tuple of int or None
        ``tile=`` in the order of ``axes=``.
    patch, overlap : int or None
        1.x: the square tile size and the margin cut from each side of a tile.
    logging : {"mute", "normal", "debug"}
    input_path, output_folder : Path or None
        3.1: the image file or folder to run on, and the folder to write the outputs into.
    display_output : bool or None
        3.1: show the outputs in ImageJ (None: not given).
    options : str
        The option string as given.
    """

    dialect: Dialect
    model: str | None = None
    model_path: Path | None = None
    models_dir: Path | None = None
    weights_format: str | None = None
    preprocessing: tuple[str, ...] | None = None
    postprocessing: tuple[str, ...] | None = None
    axes: tuple[str, ...] | None = None
    tile: tuple[int, ...] | None = None
    patch: int | None = None
    overlap: int | None = None
    logging: str = "normal"
    input_path: Path | None = None
    output_folder: Path | None = None
    display_output: bool | None = None
    options: str = ""

    def tile_sizes(self, model_axes: str | None = None) -> dict[str, int] | None:
        """The tile as ``{axis letter: size}``, or None when the call gives none.

        ``tile=`` is read in the order of ``axes=``, else of ``model_axes`` (the model input's axes; a batch
        axis is skipped); 1.x's ``patch=`` is square in y and x.

        Examples
        --------
        >>> parse_run_options("model=m tile=64,32").tile_sizes("bcyx")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        deepij.errors.ArgumentError: tile=64,32: 2 sizes for the model's 3 axes 'cyx'; expected one size...
        >>> parse_run_options("model=m patch=128 overlap=16").tile_sizes()
        {'y': 128, 'x': 128}
        """
        if self.patch is not None:
            return {"y": self.patch, "x": self.patch}
        if self.tile is None:
            return None
        letters = self.axes
        if letters is None and model_axes is not None:
            letters = tuple(a for a in model_axes if a != "b")
        if letters is None or len(letters) != len(self.tile):
            named = f"the model's {len(letters)} axes {''.join(letters)!r}" if letters else "no axes"
            raise ArgumentError(
                f"tile={','.join(map(str, self.tile))}: {len(self.tile)} sizes for {named}; expected one "
                "size per axis (or axes= naming them)"
            )
        return dict(zip(letters, self.tile, strict=True))


def parse_run_options(options: str) -> RunRequest:
    """Read the options of ``run("DeepImageJ Run", options)`` (any dialect) into a :class:`RunRequest`.

    Raises
    ------
    ArgumentError
        A key no dialect has, keys that contradict each other, a key given twice with different values, a
        value that cannot be read (``tile=a,b``), an unclosed bracket, or no model at all.

    Examples
    --------
    >>> parse_run_options("model=Pix2Pix_lifeact-RFP_sir-DNA patch=256 overlap=32 logging=debug").dialect
    '1.x'
    >>> parse_run_options("model=a tile=64,64 patch=64")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    deepij.errors.ArgumentError: patch=: 1.x's patch= and 2.x's tile= contradict each other (found patch=64...
    """
    if not isinstance(options, str):
        raise ArgumentError(f"options: expected the option string of the command, found {options!r}")
    values = _read_pairs(options)
    dialect = _dialect(values)
    fields: dict[str, object] = {"dialect": dialect, "options": options}
    for key, text in values.items():
        fields.update(_convert(key, text))
    if fields.get("model") is None and fields.get("model_path") is None:
        raise ArgumentError(
            f"options {options!r}: no model (expected model=NAME, or model_path=FOLDER in the 3.1 syntax)"
        )
    return RunRequest(**fields)  # type: ignore[arg-type]


# --- reading key=value pairs -----------------------------------------------------------------------------


def split_options(options: str) -> list[tuple[str, str | None]]:
    """``key=value`` pairs in order, with one level of brackets removed (``None``: a bare word).

    Examples
    --------
    >>> split_options("model=[a b] preprocessing=[[x.ijm, y.ijm]] tile=8,8 display_output")
    [('model', 'a b'), ('preprocessing', '[x.ijm, y.ijm]'), ('tile', '8,8'), ('display_output', None)]
    >>> split_options("model=My Model format=Onnx")
    [('model', 'My Model'), ('format', 'Onnx')]
    """
    pairs: list[tuple[str, str | None]] = []
    position, end = 0, len(options)
    while True:
        while position < end and options[position].isspace():
            position += 1
        if position >= end:
            return pairs
        key = _KEY_HERE.match(options, position)
        if key is None:
            word = re.match(r"\S+", options[position:])
            assert word is not None
            pairs.append((word.group(0), None))
            position += word.end()
            continue
        position = key.end()
        if position < end and options[position] == "[":
            closing = _matching_bracket(options, position)
            pairs.append((key.group(1), options[position + 1 : closing]))
            position = closing + 1
        else:
            ahead = _KEY_AHEAD.search(options, position)
            stop = ahead.start() if ahead else end
            value = options[position:stop].strip()
            words = value.split()
            flag = words[-1] if len(words) > 1 and _is_boolean_key(words[-1]) else None
            pairs.append((key.group(1), value[: -len(flag)].rstrip() if flag else value))
            if flag:
                pairs.append((flag, None))
            position = stop


def _is_boolean_key(word: str) -> bool:
    """A checkbox key written bare, ImageJ's way of saying it is on (``display_output``)."""
    return _ALIASES.get(word.replace("_", "").lower()) in _BOOLEAN_KEYS


def _matching_bracket(text: str, start: int) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "[":
            depth += 1
        elif text[index] == "]":
            depth -= 1
            if depth == 0:
                return index
    raise ArgumentError(
        f"options {text!r}: the bracket at character {start} is never closed (expected [...] around a value)"
    )


def _read_pairs(options: str) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    spelled: dict[str, str] = {}
    for given, value in split_options(options):
        key = _ALIASES.get(given.replace("_", "").lower())
        if key is None:
            raise ArgumentError(
                f"{given}=: unknown key in {options!r} (expected keys of DeepImageJ Run: "
                + ", ".join(f"{k}=" for k in KEYS) + ")"
            )
        if value is None and key not in _BOOLEAN_KEYS:
            raise ArgumentError(f"{given}: expected {given}=VALUE in {options!r}, found no value")
        if key in values and values[key] != value:
            raise ArgumentError(
                f"{given}=: given twice with different values ({spelled[key]}={values[key]!r} and "
                f"{given}={value!r}); expected one value"
            )
        values[key] = value
        spelled[key] = given
    return values


def _dialect(values: dict[str, str | None]) -> Dialect:
    present = set(values)
    older, newer, latest = present & {"patch", "overlap"}, present & {"tile", "axes"}, present & {
        "model_path", "input_path", "output_folder", "display_output"}
    if older and newer:
        one, other = sorted(older)[0], sorted(newer)[-1]
        raise ArgumentError(
            f"{one}=: 1.x's {one}= and 2.x's {other}= contradict each other (found {one}={values[one]} and "
            f"{other}={values[other]}); expected one of them"
        )
    if older and latest:
        one, other = sorted(older)[0], sorted(latest)[0]
        raise ArgumentError(
            f"{one}=: the 1.x key {one}= cannot go with the 3.1 key {other}= (expected one syntax)"
        )
    if latest:
        misplaced = sorted(k for k in present if "3.1" not in KEYS[k])
        if misplaced:
            raise ArgumentError(
                f"{misplaced[0]}=: not a key of the 3.1 syntax ({sorted(latest)[0]}= is); expected "
                "model_path=, input_path=, output_folder=, display_output= (and format=, tile=, logging=)"
            )
        return "3.1"
    return "1.x" if older else "2.x"


# --- values -------------------------------------------------------------------------------------------


def _convert(key: str, text: str | None) -> dict[str, object]:
    if key == "display_output":
        return {key: _boolean(key, text)}
    assert text is not None
    value = text.strip()
    if key in ("model", "models_dir", "model_dir", "model_path", "input_path", "output_folder") and not value:
        raise ArgumentError(f"{key}=: empty value (expected a {'name' if key == 'model' else 'path'})")
    if key == "model":
        return {key: value}
    if key in ("model_dir", "models_dir"):
        return {"models_dir": Path(value).expanduser()}
    if key in ("model_path", "input_path", "output_folder"):
        return {key: Path(value).expanduser()}
    if key == "format":
        return {"weights_format": _weights_format(value)}
    if key in ("preprocessing", "postprocessing"):
        return {key: _processing_files(key, value)}
    if key == "axes":
        return {key: _axes(value)}
    if key == "tile":
        return {key: _integers(key, value, minimum=1)}
    if key in ("patch", "overlap"):
        (number,) = _integers(key, value, minimum=1 if key == "patch" else 0, count=1)
        return {key: number}
    if key == "logging":
        level = value.lower()
        if level not in _LOGGING:
            raise ArgumentError(f"logging={value}: unknown level (expected mute, normal or debug)")
        return {key: level}
    raise AssertionError(key)  # every key of KEYS is converted above


def _weights_format(value: str) -> str:
    from deepij.bundle.description import WEIGHTS_FORMATS

    key = value.lower()
    if key in _FORMATS:
        return _FORMATS[key]
    if key in WEIGHTS_FORMATS:
        return key
    raise ArgumentError(
        f"format={value}: unknown format (expected Tensorflow, Pytorch or Onnx, or a weights format of the "
        f"bundle: {', '.join(WEIGHTS_FORMATS)})"
    )


def _processing_files(key: str, value: str) -> tuple[str, ...]:
    inner = value.strip()
    while inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1].strip()
    if inner.lower() in (f"no {key}", "none", ""):
        return ()
    files = tuple(part.strip() for part in inner.split(","))
    if any(not f for f in files):
        raise ArgumentError(f"{key}=[{value}]: an empty file name (expected [a.ijm] or [[a.ijm, b.ijm]])")
    return files


def _axes(value: str) -> tuple[str, ...]:
    from deepij.bundle.description import AXIS_LETTERS

    parts = [p.strip() for p in value.split(",")] if "," in value else list(value.replace(" ", ""))
    letters = tuple(p.lower() for p in parts)
    if not letters or any(len(a) != 1 or a not in AXIS_LETTERS for a in letters) or len(set(letters)) < len(
        letters
    ):
        raise ArgumentError(f"axes={value}: expected distinct axis letters separated by commas, e.g. Y,X,C")
    return letters


def _integers(key: str, value: str, *, minimum: int, count: int | None = None) -> tuple[int, ...]:
    parts = [p.strip() for p in value.split(",")]
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError:
        numbers = ()
    wanted = "an integer" if count == 1 else "integers separated by commas, e.g. 256,256,1"
    if not numbers or any(n < minimum for n in numbers) or (count is not None and len(numbers) != count):
        raise ArgumentError(f"{key}={value}: expected {wanted} (each at least {minimum})")
    return numbers


def _boolean(key: str, text: str | None) -> bool:
    if text is None:
        return True
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ArgumentError(f"{key}={text}: expected true or false")
