"""Planning one run of a model: which tiles, how many per forward pass, and the checks that choose them.

With no ``tile=`` the run follows the zoo's convention (FORMATS.md section 6), so a bundle's own test input
gives its test output on every weights format:

- an image whose sizes the network takes runs in one pass, as it is (no padding), when that pass fits in
  memory; tiles then only where one pass is slower (on a CPU, a pass above
  :data:`~deepij.inference.memory.CPU_TILE_BYTES`) AND the network's measured reach is within the declared
  halo, so the tiles give what the one pass gives, or where one pass does not fit;
- such tiles lie inside the image (``tiling="unpadded"``): the image border is seen as one pass sees it and
  the halo matters only between tiles;
- an image of other sizes is mirror-padded as deepImageJ does (one pass holding the image and its padding,
  or deepImageJ's tiles).

A tile size, ``tiling=`` or a ``margin`` given by the caller is followed as asked; ``tiling="deepimagej"`` is
deepImageJ's exact convention (what a deepImageJ bundle's result image and a macro's ``tile=`` mean).

Examples
--------
>>> RunRequest(tile=None, mode=None).explicit
False
>>> RunRequest(tile=256, mode="blend").explicit
True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deepij.bundle.description import ParameterizedSize
from deepij.errors import SeamWarning
from deepij.pipeline.margins import margin_note, with_margin
from deepij.pipeline.predict_parts import sample_shapes

if TYPE_CHECKING:
    import xarray as xr

    from deepij.inference.backends.base import Backend
    from deepij.inference.memory import MemoryEstimate, TileChoice
    from deepij.inference.plan import TilePlan
    from deepij.inference.receptive import ReceptiveField
    from deepij.inference.tiling import ModelTiling, TilingMode

Tensors = Mapping[str, "xr.DataArray"]


@dataclass(frozen=True)
class RunRequest:
    """What the caller asked of the tiles (``predict``'s arguments, checked)."""

    tile: Any = None
    mode: TilingMode | None = None
    """None: chosen (``"unpadded"`` for images of valid sizes, else ``"deepimagej"``)."""
    overlap: int | None = None
    batch_size: int | str = "auto"
    max_memory: int | str | None = None
    margin: int | None = None

    @property
    def explicit(self) -> bool:
        """Whether the caller chose the tiles (a size or a word, or a layout)."""
        return self.tile is not None or self.mode is not None


class Measurements:
    """What planning measured on a model's networks, kept per loaded backend and channel sizes: the
    memory a pass takes, and how far the network looks (the latter on disk too, for other processes)."""

    def __init__(self) -> None:
        self._estimates: dict[tuple[int, tuple], tuple[MemoryEstimate, int]] = {}
        self._fields: dict[tuple, ReceptiveField | None] = {}

    def clear(self) -> None:
        self._estimates.clear()
        self._fields.clear()

    def forget(self, backend: Backend) -> None:
        """Drop what was measured on ``backend`` (its engine was rebuilt)."""
        for key in [k for k in self._estimates if k[0] == id(backend)]:
            del self._estimates[key]

    def estimate(
        self, backend: Backend, tiling: ModelTiling, shapes: Mapping[str, Mapping[str, int]]
    ) -> tuple[MemoryEstimate, int]:
        """The model's measured memory, and what measuring left behind (an engine's memory pool keeps its
        probe passes' memory, held during every later run too, so it counts in the budget). Reading the
        resident memory costs a garbage collection: measured once per backend and channel sizes, and kept
        on disk for later processes (:mod:`deepij.inference.memory_cache`; read from there, no probe pass
        ran and nothing was left behind)."""
        from deepij.inference.memory import estimate_memory
        from deepij.inference.memory_cache import keep_memory_estimate, read_memory_estimate

        key = (id(backend), fixed_sizes(tiling, shapes))
        if key not in self._estimates:
            kept = read_memory_estimate(backend, key[1])
            if kept is not None:
                self._estimates[key] = (kept, 0)
                return kept, 0
            before = _resident(backend)
            estimate = estimate_memory(backend, tiling, shapes)
            keep_memory_estimate(backend, key[1], estimate)
            self._estimates[key] = (estimate, max(0, _resident(backend) - before))
        return self._estimates[key]

    def field(
        self,
        backend: Backend,
        tiling: ModelTiling,
        shapes: Mapping[str, Mapping[str, int]],
        largest: Mapping[str, int],
        enough: Mapping[str, int],
    ) -> ReceptiveField | None:
        """How far the network looks (the quick probe, a lower bound), no further than ``largest`` and
        ``enough`` need; measured once per network (:mod:`deepij.inference.receptive_cache`)."""
        from deepij.inference.receptive import QUICK
        from deepij.inference.receptive_cache import cached_receptive_field

        key = (id(backend), fixed_sizes(tiling, shapes), tuple(largest.items()), tuple(enough.items()))
        if key not in self._fields:
            self._fields[key] = cached_receptive_field(
                backend, tiling, shapes, effort=QUICK, largest=largest, enough=enough
            )
        return self._fields[key]


def plan_run(
    model: Any,
    backend: Backend,
    inputs: Tensors,
    request: RunRequest,
    notes: list[str],
    *,
    reserved: float = 0.0,
) -> tuple[TilePlan, int]:
    """The tiles and the batch size of one run (module notes), with what was chosen and why in ``notes``.

    ``model`` is the :class:`~deepij.pipeline.model.Model` (its description, tiling rules and
    :class:`Measurements`); ``reserved``: bytes the run holds besides outputs and tiles (processed inputs,
    masks), counted in the memory budget.
    """
    if request.margin is not None:
        notes.append(margin_note(model.tiling_for(backend), request.margin))
    tiling = with_margin(model.tiling_for(backend), request.margin)
    shapes = sample_shapes(model.description, inputs)
    as_is = request.margin is None and image_runs_as_is(tiling, shapes)
    mode = layout(request, as_is)
    samples, accepted = _samples(model.description, tiling, inputs, request.batch_size)
    if not needs_memory_estimate(tiling, shapes, request.tile, accepted, samples, request.max_memory):
        plan = _plan_small(tiling, shapes, request, mode, as_is, notes)
        plan = check_seams(model, backend, tiling, plan, shapes, request, notes)
        return plan, _fixed_batch(request.batch_size)
    estimate, left_behind = model.measurements.estimate(backend, tiling, shapes)
    choice = _choice(backend, tiling, shapes, request, estimate, reserved + left_behind, samples, mode)
    if choice.note:
        notes.append(f"tile: {choice.note}")
    tile = request.tile if request.tile is not None else _default_tile(choice, as_is, notes)
    plan = tiling.plan(shapes, tile, mode, request.overlap)
    one_pass = request.tile is None and as_is and choice.image_fits
    plan = check_seams(model, backend, tiling, plan, shapes, request, notes, fall_back=one_pass)
    if request.batch_size != "auto":
        return plan, int(request.batch_size)
    from deepij.inference.memory import choose_batch

    return plan, choose_batch(estimate, plan, choice.budget, samples, accepted)


def layout(request: RunRequest, as_is: bool) -> TilingMode:
    """The tile layout: the one asked for, else unpadded tiles for an image of valid sizes (the zoo's
    convention) and deepImageJ's mirror-padded grid otherwise, or where a deepImageJ word asks for it."""
    if request.mode is not None:
        return request.mode
    if isinstance(request.tile, str) and request.tile in ("suggested", "deepimagej", "whole"):
        return "deepimagej"
    return "unpadded" if as_is else "deepimagej"


def image_runs_as_is(tiling: ModelTiling, shapes: Mapping[str, Mapping[str, int]]) -> bool:
    """Whether the primary input's image can go through the network as it is (valid sizes, outputs that
    cover it)."""
    return bool(tiling.input) and tiling.image_is_valid(shapes[tiling.input or ""])


def _plan_small(
    tiling: ModelTiling,
    shapes: Mapping[str, Mapping[str, int]],
    request: RunRequest,
    mode: TilingMode,
    as_is: bool,
    notes: list[str],
) -> TilePlan:
    """An image with nothing to choose (small enough to run in one pass, no memory cap, no batching)."""
    tile = request.tile
    if tile is None and tiling.input:
        tile = "image" if as_is else "whole"
    plan = tiling.plan(shapes, tile, mode, request.overlap)
    if tile in ("image", "whole") and plan.n_tiles == 1:
        notes.append(f"one pass ({'the image as it is' if tile == 'image' else 'mirror-padded'})")
    elif tile == "whole":
        notes.append(f"tiles of the model's fixed size {plan.tile}")
    return plan


def _choice(
    backend: Backend,
    tiling: ModelTiling,
    shapes: Mapping[str, Mapping[str, int]],
    request: RunRequest,
    estimate: MemoryEstimate,
    reserved: float,
    samples: int,
    mode: TilingMode,
) -> TileChoice:
    from deepij.inference.memory import auto_tile

    primary = model_primary(tiling)
    return auto_tile(
        backend,
        tiling,
        shapes,
        samples=samples,
        max_memory=request.max_memory,
        estimate=estimate,
        batch_sizes=batch_sizes(primary) if request.batch_size == "auto" else (),
        reserved=reserved,
        inside=mode == "unpadded",
    )


def _default_tile(choice: TileChoice, as_is: bool, notes: list[str]) -> Any:
    """What to run with no ``tile=``: the image as it is when that fits and runs fast, else the tile
    chosen for the budget (unpadded when the image's sizes are valid)."""
    if as_is and choice.image_fits and choice.image_fast:
        notes.append("the whole image fits in memory: one pass, unpadded (the zoo's convention)")
        return "image"
    if as_is and choice.image_fits:
        notes.append(
            f"one pass on the image would be slower than tiles on this CPU: tiles {choice.tile} inside the "
            "image, if the network's reach is within the declared halo"
        )
    else:
        notes.append(f"tile {choice.tile} chosen for a budget of {choice.budget / 1e6:.0f} MB")
    return choice.tile


def check_seams(
    model: Any,
    backend: Backend,
    tiling: ModelTiling,
    plan: TilePlan,
    shapes: Mapping[str, Mapping[str, int]],
    request: RunRequest,
    notes: list[str],
    *,
    fall_back: bool = False,
) -> TilePlan:
    """``plan``, or another when its tiles would show seams: how far the network looks is measured when
    the image takes several tiles (once per network, kept on disk). A reach beyond the declared halo
    makes the tiles differ from one pass at their seams: with ``fall_back`` (no tile asked for, and one pass
    on the image fits) the image then runs in one pass; with ``tiling="blend"`` the overlap grows to the
    reach; otherwise it is noted and warned about (:class:`~deepij.errors.SeamWarning`)."""
    if not plan.tiled or plan.n_tiles <= 1:
        return plan
    blend = plan.mode == "blend"
    enough = {g.axis: (g.tile - 2 * g.pad - 1 if blend else g.pad + 1) for g in plan.grids}
    field = model.measurements.field(backend, tiling, shapes, plan.tile, enough)
    if field is None:
        return plan
    cost = f"{field.passes} passes on tiles of {dict(field.probe)}" if field.passes else "from the cache"
    notes.append(
        f"receptive radius measured: {field.describe()} pixels (a lower bound: the quick probe, {cost}; "
        f"declared padding {dict(tiling.pads)})"
    )
    short = field.exceeds(tiling.pads)
    if not short:
        return plan
    if fall_back:
        notes.append(
            f"the network looks {short} pixels far, beyond the declared halo {dict(tiling.pads)}: tiles "
            "would differ from one pass at their seams, so the image runs in one pass, unpadded"
        )
        return tiling.plan(shapes, "image", "unpadded")
    if blend and request.overlap is None:
        fits = min(g.tile - 2 * g.pad - 1 for g in plan.grids)
        width = min(max(short.values()), fits)
        notes.append(f"blending overlap {width} pixels (the measured receptive radius)")
        return tiling.plan(shapes, plan.tile, "blend", width)
    if not blend:
        _warn_seams(model.name, tiling, plan, short, notes)
    return plan


def _warn_seams(
    name: str, tiling: ModelTiling, plan: TilePlan, short: Mapping[str, int], notes: list[str]
) -> None:
    message = (
        f"model {name!r}: the network looks {dict(short)} pixels far but its tiles keep only "
        f"{ {a: tiling.pads[a] for a in short} } (the declared halo): the {plan.n_tiles} tiles will differ "
        "from a whole-image pass at their seams; tiling='blend' hides seams, a larger tile makes fewer"
    )
    notes.append(message)
    warnings.warn(message, SeamWarning, stacklevel=4)  # the caller of predict


# --- sizes and batches ------------------------------------------------------------------------------------


def fixed_sizes(tiling: ModelTiling, shapes: Mapping[str, Mapping[str, int]]) -> tuple:
    """The sizes a measurement depends on besides the tile (channels): a cache key."""
    return tuple(
        sorted(
            (name, a, n)
            for name, sample in shapes.items()
            for a, n in sample.items()
            if a not in tiling.axes
        )
    )


def needs_memory_estimate(
    tiling: ModelTiling,
    shapes: Mapping[str, Mapping[str, int]],
    tile: Any,
    batch_sizes: tuple[int, ...],
    samples: int,
    max_memory: int | str | None,
) -> bool:
    """Whether a choice this run makes (tile size, batch size, a memory cap) needs the model's measured
    memory. Measuring costs probe passes, so small images with nothing to choose skip it."""
    from deepij.inference.memory import needs_no_measuring

    if not tiling.tileable:
        return False
    if max_memory is not None:
        return True
    small = needs_no_measuring(tiling, shapes[tiling.input or ""])
    if tile is None and not small:
        return True  # the tile size is ours to choose
    return bool(batch_sizes) and (samples > 1 or not small)  # so is the batch size


def model_primary(tiling: ModelTiling) -> Any:
    """The input spec that sets the grid (the first input when nothing is tiled)."""
    description = tiling.description
    return description.input(tiling.input) if tiling.input else description.inputs[0]


def _samples(
    description: Any, tiling: ModelTiling, inputs: Tensors, batch_size: int | str
) -> tuple[int, tuple[int, ...]]:
    """How many samples the run holds (batch, time, extra slices), and the batch sizes above 1 the input
    accepts when the batch size is ours to choose."""
    primary = model_primary(tiling)
    samples = math.prod(
        int(n) for d, n in inputs[primary.name].sizes.items() if str(d) not in primary.axes_str or d == "b"
    )
    return samples, (batch_sizes(primary) if batch_size == "auto" else ())


def batch_sizes(spec: Any) -> tuple[int, ...]:
    """Batch sizes above 1 (up to 8) the input's batch axis accepts."""
    if "b" not in spec.axes_str:
        return ()
    rule = spec.axis("b").size
    if rule is None:
        return tuple(range(2, 9))
    if isinstance(rule, ParameterizedSize):
        return tuple(k for k in range(2, 9) if rule.is_valid(k))
    return ()


def _fixed_batch(batch_size: int | str) -> int:
    return 1 if batch_size == "auto" else int(batch_size)


def _resident(backend: Backend) -> int:
    """Resident bytes of this process when the backend runs on the CPU (0 on a GPU: its pool is apart)."""
    from deepij.inference.meters import is_gpu_device, resident_bytes

    return 0 if is_gpu_device(backend.device) else resident_bytes()
