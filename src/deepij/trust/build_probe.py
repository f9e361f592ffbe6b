"""What a network takes and gives, found by running it: valid input sizes and output sizes.

A bundle must say which tile sizes its network takes (``min`` and ``step``), how large each output is for a
given input (``scale`` and ``offset``) and how many border pixels of a tile are unreliable (``halo``). The
seed paper's Methods derive them from the architecture: ``step = p^d`` for ``d`` poolings of size ``p``,
``min`` the smallest size that survives them, and the halo from the kernel sizes (its equation 2). A network
handed over as a weights file has lost its architecture, so deepij measures the same quantities instead:

- valid sizes (:func:`probe_sizes`): along each free spatial axis, inputs of every size from 1 up are run
  (the other axes held at a size that works); a size is valid when the network runs on it and every output
  axis then has the size the other valid sizes' straight line ``a*size + b`` gives. ``min`` is the
  smallest valid size, ``step`` the greatest common divisor of the gaps (0 when a single size runs: a fixed
  size). A U-Net with two 2x2 poolings takes 4, 8, 12, ...: ``min`` 4, ``step`` 4.
- output sizes: the line ``a*size + b`` itself (``a`` a small fraction, ``b`` the total size change).
  Sizes off the line do run in some networks (2x2 average pooling of an odd size floors it): when two
  lines fit as many sizes, the one with the smaller ``|b|`` wins (size 2k -> k, not 2k+1 -> k).
- receptive radius: :func:`deepij.inference.receptive.measure_receptive_field` with the thorough effort,
  the same measurement ``Model.predict`` warns of seams with; :func:`aligned_halo` turns it into the halo.

Examples
--------
>>> def halve(x):  # 2x2 average pooling: even sizes only
...     if x.shape[-1] % 2 or x.shape[-2] % 2:
...         raise ValueError("odd size")
...     return [x.reshape(*x.shape[:-2], x.shape[-2] // 2, 2, x.shape[-1] // 2, 2).mean(axis=(-3, -1))]
>>> sizes = probe_sizes(halve, "bcyx", {"b": 1, "c": 1, "y": 64, "x": 64}, {"out": "bcyx"})
>>> sizes.rules["y"], sizes.outputs["out"].scale["y"], sizes.outputs["out"].offset["y"]
(ParameterizedSize(min=2, step=2), Fraction(1, 2), Fraction(0, 1))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from deepij.bundle.description import SPACE_AXES, FixedSize, ParameterizedSize
from deepij.errors import ArgumentError, DeepijError

Forward = Callable[[np.ndarray], Sequence[np.ndarray]]
"""One forward pass: an input array in the network's input axes -> its outputs in their axes."""

FIRST_SIZES = 64
"""Sizes 1..64 are tried for a first size that runs on every free axis at once, then doubling sizes."""
FOUND_ENOUGH = 6
"""The scan of an axis stops after this many sizes ran (enough to see the step of 1, 2 or 3 poolings)."""
_SLOPES = sorted({Fraction(p, q) for p in range(1, 9) for q in range(1, 9)})
"""Output/input size ratios considered: up- and downsampling by up to 8."""


@dataclass(frozen=True)
class OutputSizes:
    """How one output's axes follow the input: per spatial axis ``size = scale * input + offset``
    (``offset`` the total change, negative for ``valid`` convolutions), other axes of fixed size."""

    axes: str
    scale: Mapping[str, Fraction]
    offset: Mapping[str, Fraction]
    fixed: Mapping[str, int]


@dataclass(frozen=True)
class ProbedSizes:
    """The valid input sizes per spatial axis and the output sizes they give.

    ``tried`` counts the forward passes the probe made.
    """

    rules: Mapping[str, FixedSize | ParameterizedSize]
    outputs: Mapping[str, OutputSizes]
    tried: int


class _Runs:
    """Forward passes on zero inputs of given sizes, remembering the last failure to explain."""

    def __init__(self, forward: Forward, axes: str, dtype: np.dtype) -> None:
        self.forward, self.axes, self.dtype = forward, axes, dtype
        self.count = 0
        self.last_error = ""

    def shapes(self, sizes: Mapping[str, int]) -> list[tuple[int, ...]] | None:
        """The output shapes for an input of these sizes, or None when the network fails on it."""
        self.count += 1
        array = np.zeros([sizes[a] for a in self.axes], dtype=self.dtype)
        try:
            return [tuple(np.shape(o)) for o in self.forward(array)]
        except (DeepijError, RuntimeError, ValueError) as error:  # what frameworks raise on a bad shape
            self.last_error = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            return None


def probe_sizes(
    forward: Forward,
    input_axes: str,
    example_sizes: Mapping[str, int],
    output_axes: Mapping[str, str],
    *,
    fixed: Mapping[str, int] | None = None,
    dtype: np.dtype | str = "float32",
) -> ProbedSizes:
    """Find the network's valid input sizes and its output sizes by running it (see the module notes).

    Parameters
    ----------
    forward : callable
        One forward pass (input array -> output arrays, in ``output_axes`` order).
    input_axes : str
        The input's axis letters (``"bcyx"``).
    example_sizes : mapping
        The example input's sizes by letter: batch and channels are held at these, and it is the base the
        axes are scanned from when no small size runs.
    output_axes : mapping
        Output name -> axis letters, in the order the network returns them.
    fixed : mapping, optional
        Spatial axes the graph itself fixes (an ONNX graph's dims): axis -> size. They are not scanned.
    """
    fixed = dict(fixed or {})
    runs = _Runs(forward, input_axes, np.dtype(dtype))
    free = [a for a in input_axes if a in SPACE_AXES and a not in fixed]
    base = {**dict(example_sizes), **fixed}
    start = _first_common_size(runs, base, free, max((base[a] for a in free), default=0))
    if start is not None:
        base.update({a: start for a in free})
    elif runs.shapes(base) is None:
        raise ArgumentError(
            f"example: the network does not run on the example input of sizes {dict(example_sizes)} "
            f"(it failed with: {runs.last_error}); expected an input the network takes"
        )
    base_shapes = runs.shapes(base)
    if base_shapes is None:
        raise ArgumentError(f"model: the network does not run on input sizes {base}: {runs.last_error}")
    _check_output_ranks(base_shapes, output_axes)
    rules: dict[str, FixedSize | ParameterizedSize] = {a: FixedSize(s) for a, s in fixed.items()}
    lines: dict[tuple[int, str], tuple[Fraction, Fraction]] = {}
    for axis in free:
        rule, axis_lines = _scan_axis(runs, base, axis, output_axes)
        rules[axis] = rule
        lines.update(axis_lines)
    for axis, size in fixed.items():
        for k, letters in enumerate(output_axes.values()):
            if axis in letters:
                found = base_shapes[k][letters.index(axis)]
                lines[(k, axis)] = (Fraction(found, size), Fraction(0))
    outputs = _output_sizes(input_axes, output_axes, lines, base_shapes)
    return ProbedSizes({a: rules[a] for a in input_axes if a in rules}, outputs, runs.count)


def _output_sizes(
    input_axes: str,
    output_axes: Mapping[str, str],
    lines: Mapping[tuple[int, str], tuple[Fraction, Fraction]],
    base_shapes: Sequence[tuple[int, ...]],
) -> dict[str, OutputSizes]:
    """Each output's scale and offset per spatial axis (the lines found), its other sizes at the base."""
    outputs = {}
    for k, (name, letters) in enumerate(output_axes.items()):
        spatial = [a for a in letters if a in SPACE_AXES]
        missing = [a for a in spatial if a not in input_axes]
        if missing:
            raise ArgumentError(
                f"output_axes: output {name!r} has the spatial axis {missing[0]!r}, which the input "
                f"({input_axes!r}) lacks; expected outputs whose spatial axes are the input's"
            )
        outputs[name] = OutputSizes(
            axes=letters,
            scale={a: lines[(k, a)][0] for a in spatial},
            offset={a: lines[(k, a)][1] for a in spatial},
            fixed={a: base_shapes[k][i] for i, a in enumerate(letters) if a not in SPACE_AXES and a != "b"},
        )
    return outputs


def _first_common_size(runs: _Runs, base: Mapping[str, int], free: list[str], largest: int) -> int | None:
    """The smallest size (1..64, then doubling up to the example's) that runs on every free axis at once."""
    if not free:
        return None
    candidates = list(range(1, FIRST_SIZES + 1))
    size = FIRST_SIZES
    while size * 2 <= max(largest, 1):
        size *= 2
        candidates.append(size)
    for size in candidates:
        if runs.shapes({**base, **{a: size for a in free}}) is not None:
            return size
    return None


def _check_output_ranks(shapes: Sequence[tuple[int, ...]], output_axes: Mapping[str, str]) -> None:
    if len(shapes) != len(output_axes):
        raise ArgumentError(
            f"output_axes: the network returns {len(shapes)} output(s), "
            f"expected {len(output_axes)} ({list(output_axes)})"
        )
    for shape, (name, letters) in zip(shapes, output_axes.items(), strict=True):
        if len(shape) != len(letters):
            raise ArgumentError(
                f"output_axes: output {name!r} has shape {shape}; its axes {letters!r} "
                f"expected {len(letters)} dimensions"
            )


def _scan_axis(
    runs: _Runs, base: Mapping[str, int], axis: str, output_axes: Mapping[str, str]
) -> tuple[ParameterizedSize, dict[tuple[int, str], tuple[Fraction, Fraction]]]:
    limit = max(FIRST_SIZES, 4 * base[axis])
    ran: dict[int, list[tuple[int, ...]]] = {}
    for size in range(1, limit + 1):
        shapes = runs.shapes({**base, axis: size})
        if shapes is not None:
            ran[size] = shapes
            if len(ran) >= FOUND_ENOUGH:
                break
    valid = set(ran)
    lines: dict[tuple[int, str], tuple[Fraction, Fraction]] = {}
    for k, letters in enumerate(output_axes.values()):
        if axis not in letters:
            continue
        position = letters.index(axis)
        points = {s: shapes[k][position] for s, shapes in ran.items()}
        slope, offset, on_line = _best_line(points)
        lines[(k, axis)] = (slope, offset)
        valid &= on_line
    sizes = sorted(valid)
    if not sizes:
        raise ArgumentError(
            f"model: no input size along {axis!r} from 1 to {limit} gives outputs of consistent sizes "
            f"(last failure: {runs.last_error or 'none'})"
        )
    if len(sizes) == 1:
        return ParameterizedSize(sizes[0], 0), lines
    step = math.gcd(*(s - sizes[0] for s in sizes[1:]))
    expected = list(range(sizes[0], sizes[-1] + 1, step))
    if sizes != expected:
        raise ArgumentError(
            f"model: the sizes the network takes along {axis!r} ({sizes}) are not min + k*step "
            f"(expected {expected}); such a network cannot be described by a bundle"
        )
    return ParameterizedSize(sizes[0], step), lines


def _best_line(points: Mapping[int, int]) -> tuple[Fraction, Fraction, set[int]]:
    """The line ``out = a*size + b`` through the most points (ties: smallest ``|b|``, then ``a`` nearest
    1), and the sizes on it."""
    best: tuple[int, Fraction, Fraction, Fraction] | None = None
    chosen: tuple[Fraction, Fraction, set[int]] = (Fraction(1), Fraction(0), set())
    for slope in _SLOPES:
        groups: dict[Fraction, set[int]] = {}
        for size, out in points.items():
            groups.setdefault(out - slope * size, set()).add(size)
        for offset, members in groups.items():
            key = (-len(members), abs(offset), abs(slope - 1), slope)
            if best is None or key < best:
                best, chosen = key, (slope, offset, members)
    return chosen


def aligned_halo(radius: int, step: int, scale: Fraction, offset: Fraction) -> int:
    """The halo an output axis declares for a receptive ``radius`` (input pixels).

    The radius is rounded up to a multiple of the input's ``step`` so that tiles start on the network's
    pooling grid (tiles then reproduce the whole-image output), scaled to output pixels, less what a
    ``valid`` network already crops on each side (``-offset / 2``), and raised until it is a whole number of
    input pixels too (the zoo's rule for scaled outputs).

    Examples
    --------
    >>> aligned_halo(23, 4, Fraction(1), Fraction(0)), aligned_halo(7, 1, Fraction(1), Fraction(-14))
    (24, 0)
    >>> aligned_halo(5, 1, Fraction(2), Fraction(0))
    10
    """
    if step > 0:
        radius = math.ceil(radius / step) * step
    cropped = max(Fraction(0), -offset / 2)
    halo = max(0, math.ceil(radius * scale - cropped))
    while halo and (halo / scale).denominator != 1:
        halo += 1
    return halo


__all__ = ["OutputSizes", "ProbedSizes", "aligned_halo", "probe_sizes"]
