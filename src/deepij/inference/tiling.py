"""Tile planning: which windows of an image a network sees, and where each result goes. Pure numpy.

What deepImageJ 2.x does (read in deepimagej-plugin 2.1.x: ``RunnerTf.call``/``RunnerPt.call``,
``ArrayOperations.findAddedPixels``/``extractPatch``/``imagePlusReconstructor``/``optimalPatch``,
``CompactMirroring.mirrorXY``), per spatial axis with image size ``I``, tile size ``Q``:

- Padding ``P`` = max over image outputs of ``ceil(-b/a) + ceil(halo/a)``, with ``a`` the output scale,
  ``b`` the per-side output offset and ``halo`` in output pixels (0 for pyramidal models).
  Valid region ``R = Q - 2P``; tiles ``N = ceil(I / R)``.
- ``R < I``: the image is mirror-padded by ``P`` on each side (reflection without repeating the edge
  pixel, period ``2I - 2``). Tile ``k < N-1`` reads image pixels ``[kR - P, kR - P + Q)`` and writes
  ``[kR, (k+1)R)``. The last tile is pushed back to end at the border (reads ``[I - R - P, I + P)``) and only
  its part not yet written, ``[(N-1)R, I)``, is copied. Valid regions never overlap; there is no blending.
- ``R >= I`` (one tile): the image is mirrored up to ``Q``, sitting at ``ceil((Q-I)/2)`` in the tile, but the
  result is read back from ``floor((Q-I)/2)``: when ``Q - I`` is odd deepImageJ's output is shifted by one
  pixel. deepij reads from where the image is (``mode="deepimagej"``, the default: tiled output never
  shifts); ``mode="deepimagej-readback"`` reproduces the shift, to match result images deepImageJ made.
- Outputs: spatial size ``I*a``; tile ``k`` writes ``[int(w0*a), int(w1*a))`` from position
  ``int(read*a) + b`` of the tile output. Axes of an output that the input lacks take the tile output's size;
  an output channel axis referring to the input's is ``C*a + 2b``.
- Suggested tile (``optimalPatch``): ``ceil((I + 2h)/step)*step``, one step less when above ``3I``, and
  ``ceil(I/step)*step`` when still above; ``h = halo - b`` of the outputs (output pixels, no scale). A fixed
  axis (step 0) suggests ``min``.

``tile="image"`` (the zoo's way: the image as it is, one pass, no padding) hands back what the network
gives: for valid convolutions (a negative offset ``b``) an output smaller than ``I*a`` by ``-2b``. Every
other tile mirror-pads, so that the outputs cover the image as deepImageJ's do.

Fixed-shape models (a fixed ``shape``, or ``step`` 0) are tiled at exactly their size, with the halo as
declared, as deepImageJ does: an image larger than the size takes several tiles, a smaller one is mirrored
up to it. Only ``allow_tiling: false``, pyramidal models and outputs that are not images of the input
(tables) run once.

Where deepij differs, on purpose:

- Z padding: ``CompactMirroring`` copies the first slices unmirrored in front and writes the back slices at
  ``2I - z``, over valid slices; deepij mirrors Z exactly as it mirrors X and Y.
- deepImageJ refuses tiles larger than ``3I + 1`` (one reflection per side at most); deepij reflects as often
  as needed. Tiles deepImageJ accepts give identical windows.
- The suggested tile can be invalid in deepImageJ (it is a multiple of ``step``, not ``min + k*step``);
  deepij then takes the seed paper's equation 3, the smallest valid size ``>= I + 2h``.
- Models that cannot be tiled (``allow_tiling: false``, pyramidal, outputs that are not images of the input):
  deepImageJ rounds ``I`` up to ``min + k*step`` (below ``min`` when ``I < min``) and hands back the output
  of the padded tile uncropped. deepij runs the smallest valid size ``>= I + 2P`` (``>= I`` where none is),
  centres the image and crops the outputs that are images of the input back to ``I*a``.

The seed paper's Methods (equations 1 to 6) describe the same scheme with two differences from the code:
equation 3 picks ``min + n*step >= I + 2P`` (the code picks a multiple of ``step``, see above), and
equation 5 covers the image with ``N`` equal tiles of ``T = floor(I/N)`` pixels (the last one
``I - (N-1)T``), while the code writes ``R`` pixels per tile and pushes the last tile back. For ``I = 100``,
``Q = 48``, ``P = 8`` (``N = 4``): the paper writes 25, 25, 25 and 25 pixels, the code 32, 32, 32 and 4.
Equations 1 (``Q = m + n*s``), 4 (``N``) and 6 (``aQ + 2b``) are what the code does.

Beyond deepImageJ (named options): ``mode="blend"`` overlaps neighbouring valid regions and blends them with
linear ramps; the runner can put several tiles in one batch when the model has a batch axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from deepij.bundle.description import (
    SPACE_AXES,
    FixedSize,
    ModelDescription,
    ParameterizedSize,
    ReferenceSize,
    SizeRule,
    TensorSpec,
)
from deepij.errors import TilingError
from deepij.inference.grid import AxisGrid, blend_grid, deepimagej_grid, single_pass_grid, unpadded_grid
from deepij.inference.plan import OutputAxisMap, OutputPlan, TilePlan, check_sources

TilingMode = Literal["unpadded", "deepimagej", "deepimagej-readback", "blend"]
TILING_MODES: tuple[TilingMode, ...] = ("unpadded", "deepimagej", "deepimagej-readback", "blend")
"""Tile layouts: the zoo's convention tiled (tiles inside the image, none padded, overlapping by twice the
halo: :func:`~deepij.inference.grid.unpadded_grid`), deepImageJ 2.x's grid (mirror-padded, read back where
the image is), the same with deepImageJ's one-pixel read-back shift on a single tile with an odd margin, and
overlapping tiles blended with linear ramps."""
TileRequest = int | Sequence[int] | Mapping[str, int] | str | None
TILE_WORDS = ("suggested", "deepimagej", "whole", "image")
"""The words ``tile=`` takes besides sizes (see :meth:`ModelTiling.plan`)."""

_ANY_SIZE = ParameterizedSize(min=1, step=1)
LARGEST_TILE_FLOOR = 1024
"""Tiles up to this size are accepted along any axis, however small the image."""


@dataclass(frozen=True)
class ModelTiling:
    """What a model description allows for tiling, before any image is known.

    Build it with :func:`analyse_tiling`. ``tileable`` is False (and ``reason`` says why) for models that
    run once on the whole image.
    """

    description: ModelDescription
    input: str | None
    axes: str
    rules: Mapping[str, FixedSize | ParameterizedSize]
    pads: Mapping[str, int]
    suggestion_halos: Mapping[str, int]
    output_maps: Mapping[str, Mapping[str, OutputAxisMap]]
    windowed: tuple[str, ...]
    tileable: bool
    reason: str | None = None

    # --- tile sizes ----------------------------------------------------------------------------------------

    def is_valid_tile(self, axis: str, size: int) -> bool:
        return self.rules[axis].is_valid(size)

    def smallest_valid(self, axis: str, at_least: int) -> int | None:
        return self.rules[axis].smallest_at_least(max(at_least, 1))

    def describe_rule(self, axis: str) -> str:
        rule = self.rules[axis]
        if isinstance(rule, FixedSize) or rule.step == 0:
            return f"exactly {rule.value if isinstance(rule, FixedSize) else rule.min}"
        return f"{rule.min} + k*{rule.step} (k >= 0)"

    def single_pass_tile(self, shape: Mapping[str, int]) -> dict[str, int]:
        """Per tiled axis, the smallest valid size holding the image and its padding (or the image alone).

        Along a fixed-size axis of a tileable model whose size cannot hold the image, the fixed size: the
        image is then tiled at it. Raises TilingError for models that cannot be tiled when the image is
        larger than every valid size.
        """
        tile = {}
        for a in self.axes:
            size = self.smallest_valid(a, shape[a] + 2 * self.pads[a]) or self.smallest_valid(a, shape[a])
            if size is None and self.tileable:
                size = self.largest_valid(a)
            if size is None:
                raise TilingError(
                    f"input {self.input!r} axis {a}: the image has {shape[a]} pixels but the model takes "
                    f"{self.describe_rule(a)} and cannot be tiled ({self.reason})"
                )
            tile[a] = size
        return tile

    def largest_valid(self, axis: str) -> int | None:
        """The one size of a fixed axis (None for axes that grow without bound)."""
        rule = self.rules[axis]
        if isinstance(rule, FixedSize):
            return rule.value
        return rule.min if rule.step == 0 else None

    def largest_useful(self, axis: str, size: int) -> int:
        """The largest tile accepted along ``axis`` for an image of ``size`` pixels: four times the image with
        its padding, at least :data:`LARGEST_TILE_FLOOR`, or the one pass holding the image when that is
        more (a fixed size). Larger tiles are mostly mirrored pixels and only cost memory (a
        ``tile=100000`` would allocate gigabytes); deepImageJ itself refuses tiles above three times the
        image."""
        single = self.smallest_valid(axis, size + 2 * self.pads[axis]) or self.largest_valid(axis) or size
        return max(4 * (size + 2 * self.pads[axis]), LARGEST_TILE_FLOOR, single)

    def fits_one_tile(self, tile: Mapping[str, int], shape: Mapping[str, int]) -> bool:
        """True when ``tile`` holds the whole image in one valid region (a single pass)."""
        return all(tile[a] - 2 * self.pads[a] >= shape[a] for a in self.axes)

    def image_is_valid(self, shape: Mapping[str, int]) -> bool:
        """True when the image can go through the network as it is, unpadded (``tile="image"``), and give
        outputs that cover it: its sizes are valid and no output is smaller than its input (valid
        convolutions need the padding for that; ``tile="image"`` still runs them, smaller)."""
        if not all(self.is_valid_tile(a, shape[a]) for a in self.axes):
            return False
        return all(m.offset >= 0 for maps in self.output_maps.values() for m in maps.values())

    def suggested_tile(self, shape: Mapping[str, int]) -> dict[str, int]:
        """deepImageJ 2.x's default tile (``optimalPatch``), rounded up to a valid size if it is not."""
        if not self.tileable:
            return self.single_pass_tile(shape)
        tile = {}
        for a in self.axes:
            rule, size, halo = self.rules[a], shape[a], self.suggestion_halos[a]
            step = rule.step if isinstance(rule, ParameterizedSize) else 0
            if step == 0:
                tile[a] = rule.min if isinstance(rule, ParameterizedSize) else rule.value
                continue
            q = math.ceil((size + 2 * halo) / step) * step
            if q > 3 * size:
                q -= step
            if q > 3 * size:
                q = math.ceil(size / step) * step
            if not rule.is_valid(q) or q <= 2 * self.pads[a]:
                # deepImageJ's multiple of step is not always min + k*step: take the seed paper's
                # equation 3 (smallest valid size >= I + 2h) then, or the next valid size above q.
                # A rule with a positive step always has one.
                q = self.smallest_valid(a, max(min(q, size + 2 * halo), 2 * self.pads[a] + 1)) or q
            tile[a] = q
        return tile

    def candidates(self, axis: str, up_to: int) -> list[int]:
        """Valid tile sizes with a non-empty valid region, ascending, up to ``up_to`` (at least one)."""
        first = self.smallest_valid(axis, 2 * self.pads[axis] + 1)
        if first is None:
            return []
        rule = self.rules[axis]
        step = rule.step if isinstance(rule, ParameterizedSize) else 0
        if step == 0:
            return [first]
        last = max(first, up_to)
        return list(range(first, last + 1, step))

    def check_tile(self, tile: Mapping[str, int], shape: Mapping[str, int]) -> None:
        """Raise TilingError naming the axis when a requested tile size is not valid for this model."""
        for a in self.axes:
            q = tile[a]
            if not isinstance(q, (int, np.integer)) or isinstance(q, bool):
                raise TilingError(f"tile: axis {a} must be an integer, not {q!r}")
            if not self.is_valid_tile(a, int(q)):
                near = self.smallest_valid(a, int(q))
                hint = f" (next valid: {near})" if near is not None else ""
                raise TilingError(
                    f"tile: {a}={q} is not a valid size for input {self.input!r}: expected "
                    f"{self.describe_rule(a)}{hint}"
                )
            if self.tileable and q <= 2 * self.pads[a]:
                raise TilingError(
                    f"tile: {a}={q} leaves nothing valid after padding {self.pads[a]} pixels per side; "
                    f"expected more than {2 * self.pads[a]}"
                )
            if not self.tileable and q < shape[a]:
                raise TilingError(
                    f"tile: {a}={q} is smaller than the image ({shape[a]}) but this model cannot be tiled "
                    f"({self.reason}); expected at least {shape[a]}"
                )
            largest = self.largest_useful(a, shape[a])
            if q > largest:
                raise TilingError(
                    f"tile: {a}={q} is far larger than any tile of this {shape[a]}-pixel image needs (one "
                    f"pass holding it and its padding takes {self.single_pass_tile(shape)[a]}); expected at "
                    f"most {largest}"
                )

    def resolve_tile(self, tile: TileRequest, shape: Mapping[str, int]) -> dict[str, int]:
        """Turn what a user passed as ``tile=`` into a size per tiled axis (None: deepImageJ's suggestion)."""
        if tile is None or (isinstance(tile, str) and tile in ("suggested", "deepimagej")):
            return self.suggested_tile(shape)
        if isinstance(tile, str) and tile == "whole":
            return self.single_pass_tile(shape)
        if isinstance(tile, str) and tile == "image":
            for a in self.axes:
                if not self.is_valid_tile(a, shape[a]):
                    raise TilingError(
                        f"tile='image': the image's {a} size {shape[a]} is not a valid input size for "
                        f"{self.input!r}; expected {self.describe_rule(a)}"
                    )
            return {a: shape[a] for a in self.axes}
        if isinstance(tile, str):
            raise TilingError(
                f"tile: unknown value {tile!r}; expected sizes per axis, 'suggested', 'whole', 'image' "
                "or None"
            )
        if isinstance(tile, Mapping):
            unknown = sorted(set(tile) - set(self.axes))
            if unknown:
                raise TilingError(
                    f"tile: axes {unknown} are not tiled axes of input {self.input!r} (tiled: {self.axes!r})"
                )
            missing = [a for a in self.axes if a not in tile]
            resolved = dict(self.suggested_tile(shape)) if missing else {}
            resolved.update({a: tile[a] for a in self.axes if a in tile})
        elif isinstance(tile, (int, np.integer)) and not isinstance(tile, bool):
            resolved = {a: int(tile) for a in self.axes}
        elif isinstance(tile, Sequence) and not isinstance(tile, str):
            if len(tile) != len(self.axes):
                raise TilingError(
                    f"tile: got {len(tile)} sizes {list(tile)} but input {self.input!r} has "
                    f"{len(self.axes)} tiled axes {self.axes!r}; expected one size per axis in that order"
                )
            resolved = dict(zip(self.axes, tile, strict=True))
        else:
            raise TilingError(f"tile: expected an int, a sequence or a mapping of sizes, not {tile!r}")
        # resolved values are checked to be integers by check_tile
        self.check_tile(resolved, shape)
        return {a: int(q) for a, q in resolved.items()}

    # --- planning ------------------------------------------------------------------------------------------

    def plan(
        self,
        shapes: Mapping[str, Mapping[str, int]],
        tile: TileRequest = None,
        mode: TilingMode = "deepimagej",
        overlap: int | None = None,
    ) -> TilePlan:
        """Plan the tiles for one sample.

        Parameters
        ----------
        shapes : mapping
            Per input name, axis letter -> size of one sample (no batch axis).
        tile : int, sequence, mapping, str or None
            Tile sizes per tiled axis; None or ``"suggested"``: deepImageJ's default tile;
            ``"whole"``: one tile holding the whole image and its padding (fixed-size models: tiles of their
            size); ``"image"``: the image as it is, unpadded (its sizes must be valid), as the zoo's tools
            run test inputs: the outputs of a valid network (negative offset) are then what it gives,
            smaller than the image by the offsets (every other tile mirror-pads so that they cover it).
        mode : {"unpadded", "deepimagej", "deepimagej-readback", "blend"}
            Grid layout (module notes). ``"blend"`` overlaps valid regions by ``overlap`` pixels.
            ``"unpadded"`` needs an image whose sizes are valid (:meth:`image_is_valid`): a tile at least
            as large as the image along an axis is the image as it is there.

        Examples
        --------
        >>> from deepij.bundle import open_bundle
        >>> tiling = analyse_tiling(open_bundle("examples/nuclei_bundle"))
        >>> plan = tiling.plan({"input": {"c": 1, "y": 200, "x": 200}}, tile=128)
        >>> plan.n_tiles  # 80 valid pixels per tile (128 less 2 x 24 of halo): 3 x 3 tiles
        9
        >>> tiling.plan({"input": {"c": 1, "y": 200, "x": 200}}).tile  # deepImageJ's suggested tile
        {'y': 256, 'x': 256}
        """
        if mode not in TILING_MODES:
            raise TilingError(f"mode: unknown tiling mode {mode!r}; expected one of {TILING_MODES}")
        if overlap is not None and (
            isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0
        ):
            raise TilingError(f"overlap: expected a whole number of pixels >= 0, not {overlap!r}")
        self._check_shapes(shapes)
        primary = shapes[self.input] if self.input else {}
        tile_size = self.resolve_tile(tile, primary) if self.input else {}
        as_is = isinstance(tile, str) and tile == "image"
        if mode == "unpadded" and not as_is and self.tileable:
            self._check_unpadded(primary)
            tile_size = {a: min(q, primary[a]) for a, q in tile_size.items()}
            as_is = all(q == primary[a] for a, q in tile_size.items())
        grids = [self._grid(a, primary[a], tile_size[a], mode, overlap, as_is) for a in self.axes]
        tile_shapes = {}
        for spec in self.description.inputs:
            sample = dict(shapes[spec.name])
            if spec.name in self.windowed:
                sample.update(tile_size)
            tile_shapes[spec.name] = sample
        outputs = {
            o.name: _output_plan(o, self.output_maps[o.name], primary, unpadded=as_is)
            for o in self.description.outputs
        }
        plan = TilePlan(
            self.input or "", tuple(grids), tile_shapes, self.windowed, outputs, mode, self.tileable
        )
        check_sources(plan)
        return plan

    def _grid(
        self, a: str, size: int, q: int, mode: TilingMode, overlap: int | None, as_is: bool
    ) -> AxisGrid:
        pad = self.pads[a]
        if as_is:
            return single_pass_grid(size, q, 0, axis=a)
        if not self.tileable:
            return single_pass_grid(size, q, pad, axis=a)
        if mode == "unpadded":
            return unpadded_grid(size, q, pad, align=self.pooling_grid(a), axis=a)
        if mode == "blend":
            width = overlap if overlap is not None else min(max(pad, 8), (q - 2 * pad) // 2)
            return blend_grid(size, q, pad, width, axis=a)
        return deepimagej_grid(size, q, pad, axis=a, readback=mode == "deepimagej-readback")

    def pooling_grid(self, axis: str) -> int:
        """The size rule's ``step`` (a U-Net's pooling factor): unpadded tiles start on multiples of it."""
        rule = self.rules[axis]
        return rule.step if isinstance(rule, ParameterizedSize) and rule.step > 0 else 1

    def _check_unpadded(self, shape: Mapping[str, int]) -> None:
        if not self.image_is_valid(shape):
            sizes = ", ".join(f"{a}={shape[a]} ({self.describe_rule(a)})" for a in self.axes)
            raise TilingError(
                f"tiling='unpadded': the image ({sizes}) cannot run unpadded: expected valid sizes on every "
                "tiled axis and outputs that cover their input; tiling='deepimagej' mirror-pads it"
            )

    def _check_shapes(self, shapes: Mapping[str, Mapping[str, int]]) -> None:
        for spec in self.description.inputs:
            if spec.name not in shapes:
                raise TilingError(f"inputs: no image for model input {spec.name!r}")
            sample = shapes[spec.name]
            for axis in spec.axes:
                if axis.id == "b":
                    continue
                if axis.id not in sample:
                    raise TilingError(f"input {spec.name!r}: the image has no axis {axis.id!r}")
                if self.input and axis.id in self.axes and spec.name in self.windowed:
                    reference = shapes[self.input][axis.id]
                    if sample[axis.id] != reference:
                        raise TilingError(
                            f"input {spec.name!r} axis {axis.id}: size {sample[axis.id]} differs from input "
                            f"{self.input!r} ({reference}); expected equal sizes"
                        )
                    continue
                rule = axis.size
                if isinstance(rule, (FixedSize, ParameterizedSize)) and not rule.is_valid(sample[axis.id]):
                    raise TilingError(
                        f"input {spec.name!r} axis {axis.id}: the image has {sample[axis.id]} but the model "
                        f"takes {_rule_text(rule)}"
                    )


def _rule_text(rule: FixedSize | ParameterizedSize) -> str:
    if isinstance(rule, FixedSize):
        return f"exactly {rule.value}"
    return f"exactly {rule.min}" if rule.step == 0 else f"{rule.min} + k*{rule.step}"


def _output_plan(
    spec: TensorSpec, maps: Mapping[str, OutputAxisMap], primary: Mapping[str, int], *, unpadded: bool
) -> OutputPlan:
    if unpadded:  # the image as it is: a valid network's output is what it gives, smaller than the image
        maps = {letter: replace(m, unpadded=m.offset < 0) for letter, m in maps.items()}
    sizes = {letter: m.full_size(primary[m.input_axis]) for letter, m in maps.items()}
    return OutputPlan(spec.name, spec.axes_str, maps, sizes)


# --- reading a description ----------------------------------------------------------------------------


def analyse_tiling(description: ModelDescription) -> ModelTiling:
    """Read from a description how its model can be tiled.

    Examples
    --------
    >>> from deepij.bundle import open_bundle
    >>> tiling = analyse_tiling(open_bundle("examples/nuclei_bundle"))
    >>> tiling.axes, tiling.pads  # the outputs' halo of 24 pixels
    ('yx', {'y': 24, 'x': 24})
    """
    primary = next((t for t in description.inputs if any(a.id in SPACE_AXES for a in t.axes)), None)
    if primary is None:
        return ModelTiling(
            description, None, "", {}, {}, {}, _no_maps(description), (), False, "no spatial axes"
        )
    axes = "".join(a.id for a in primary.axes if a.id in SPACE_AXES)
    rules = {a.id: _tile_rule(a.size) for a in primary.axes if a.id in SPACE_AXES}
    windowed = tuple(t.name for t in description.inputs if t is primary or all(a in t.axes_str for a in axes))
    maps = {o.name: _output_maps(o, axes, windowed) for o in description.outputs}
    reason = _untileable_reason(description, axes, maps)
    pyramidal = description.deepimagej.pyramidal_model
    pads = {a: 0 if pyramidal else _padding(maps, a) for a in axes}
    halos = {a: 0 if pyramidal else _suggestion_halo(description.outputs, maps, a) for a in axes}
    return ModelTiling(
        description, primary.name, axes, rules, pads, halos, maps, windowed, reason is None, reason
    )


def _no_maps(description: ModelDescription) -> dict[str, dict[str, OutputAxisMap]]:
    return {o.name: {} for o in description.outputs}


def _tile_rule(rule: SizeRule) -> FixedSize | ParameterizedSize:
    if isinstance(rule, (FixedSize, ParameterizedSize)):
        return rule
    return _ANY_SIZE


def _output_maps(spec: TensorSpec, axes: str, windowed: tuple[str, ...]) -> dict[str, OutputAxisMap]:
    maps = {}
    for axis in spec.axes:
        rule = axis.size
        if isinstance(rule, ReferenceSize):
            if rule.tensor in windowed and rule.axis in axes and rule.scale > 0:
                maps[axis.id] = OutputAxisMap(axis.id, rule.axis, rule.scale, rule.offset / 2, axis.halo)
        elif axis.id in axes and (rule is None or isinstance(rule, ParameterizedSize)):
            maps[axis.id] = OutputAxisMap(axis.id, axis.id, 1.0, 0.0, axis.halo)
    return maps


def _untileable_reason(
    description: ModelDescription, axes: str, maps: Mapping[str, Mapping[str, OutputAxisMap]]
) -> str | None:
    config = description.deepimagej
    if config.pyramidal_model:
        return "pyramidal_model: true"
    if not config.allow_tiling:
        return "allow_tiling: false"
    for out in description.outputs:
        if out.is_table:
            return f"output {out.name!r} is a table"
        followed = {m.input_axis for m in maps[out.name].values()}
        missing = [a for a in axes if a not in followed]
        if missing:
            return f"output {out.name!r} does not follow input axes {''.join(missing)!r}"
    return None


def _padding(maps: Mapping[str, Mapping[str, OutputAxisMap]], axis: str) -> int:
    pad = 0
    for out_maps in maps.values():
        for m in out_maps.values():
            if m.input_axis == axis:
                need = math.ceil(-m.offset / m.scale) + math.ceil(m.halo / m.scale)
                pad = max(pad, need)
    return pad


def _suggestion_halo(
    outputs: Sequence[TensorSpec], maps: Mapping[str, Mapping[str, OutputAxisMap]], axis: str
) -> int:
    # deepImageJ's optimalPatch halo: per output axis of the same letter, halo - offset (no scale), taken
    # when offset + halo exceeds what is there so far (its ArrayOperations.findTotalPadding).
    halo = 0
    for out in outputs:
        m = maps[out.name].get(axis)
        if m is not None and m.offset + m.halo > halo:
            halo = int(-m.offset + m.halo)
    return halo
