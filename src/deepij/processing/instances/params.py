"""The kwargs of the instance-segmentation ops of spec 0.5 (up to 0.5.14), checked and typed.

- ``stardist_postprocessing``, 2-D: ``prob_threshold``, ``nms_threshold``, ``grid`` (2 ints), ``b`` (int
  or per-axis pairs, default 2), ``n_rays`` (optional: the channels after the probability); 3-D: a 3-int
  ``grid``, ``n_rays``, ``anisotropy`` (3 numbers), ``overlap_label``.
- ``cellpose_flow_dynamics``: ``cellprob_threshold`` (0.0), ``flow_threshold`` (0.4), ``do_3D`` (false),
  ``min_size`` (15), ``output_dtype`` (uint16 or uint32).
- ``custom``: ``callable``, ``source``, ``sha256`` beside ``id``; ``kwargs`` for the callable.

A wrong kwarg is a :class:`~deepij.errors.ProcessingError` naming the descriptor, the field, what was found
and what was expected.

Examples
--------
>>> from deepij.bundle.description import ProcessingOp
>>> op = ProcessingOp("stardist_postprocessing",
...                   {"prob_threshold": 0.5, "nms_threshold": 0.4, "grid": [2, 2], "b": 2, "n_rays": 32})
>>> stardist_params(op, where="outputs['labels'].postprocessing[0]")  # doctest: +NORMALIZE_WHITESPACE
StardistParams(grid=(2, 2), prob_threshold=0.5, nms_threshold=0.4, b=2, n_rays=32, anisotropy=None,
               overlap_label=None)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepij.bundle.description import ArchitectureSpec, ProcessingOp
from deepij.errors import ProcessingError

STARDIST = "stardist_postprocessing"
CELLPOSE = "cellpose_flow_dynamics"
CUSTOM = "custom"
INSTANCE_OPS = (STARDIST, CELLPOSE, CUSTOM)
"""The op ids that turn a network output into instances (they run on the whole stitched output)."""

Border = int | tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class StardistParams:
    """``stardist_postprocessing``: StarDist's NMS and polygon (2-D) or polyhedron (3-D) rasterisation."""

    grid: tuple[int, ...]
    prob_threshold: float
    nms_threshold: float
    b: Border = 2
    n_rays: int | None = None
    anisotropy: tuple[float, float, float] | None = None
    overlap_label: int | None = None

    @property
    def ndim(self) -> int:
        return len(self.grid)


@dataclass(frozen=True)
class CellposeParams:
    """``cellpose_flow_dynamics``: cellpose's flow following, clustering, flow-error check and min size."""

    cellprob_threshold: float = 0.0
    flow_threshold: float = 0.4
    do_3D: bool = False
    min_size: int = 15
    output_dtype: str = "uint16"

    @property
    def channels(self) -> int:
        """Channels the network output holds: the flows (2 in 2-D, 3 in 3-D), then the cell probability."""
        return 4 if self.do_3D else 3


@dataclass(frozen=True)
class CustomParams:
    """``custom``: ``op = callable(**kwargs)``, then ``op(*outputs)`` per image (bundle code)."""

    code: ArchitectureSpec


_STARDIST_KEYS = ("prob_threshold", "nms_threshold", "n_rays", "grid", "b", "anisotropy", "overlap_label")
_CELLPOSE_KEYS = ("cellprob_threshold", "flow_threshold", "do_3D", "min_size", "output_dtype")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class _Kwargs:
    """One op's kwargs with the field they sit in, for messages."""

    def __init__(self, op: ProcessingOp, where: str, descriptor: Path | None) -> None:
        self.values: Mapping[str, Any] = dict(op.kwargs or {})
        self.where = where
        self.descriptor = descriptor

    def error(self, key: str | None, message: str, found: Any, expected: str) -> ProcessingError:
        field = f"{self.where}.kwargs.{key}" if key else f"{self.where}.kwargs"
        return ProcessingError(message, file=self.descriptor, field=field, found=found, expected=expected)

    def known(self, allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(self.values) - set(allowed))
        if unknown:
            raise self.error(None, "unknown kwargs", unknown, "only " + ", ".join(allowed))

    def number(
        self, key: str, default: float | None = None, low: float = -math.inf, high: float = math.inf
    ) -> float:
        value = self.values.get(key, default)
        if value is None:
            raise self.error(key, "missing required kwarg", None, f"a number in [{low}, {high}]")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise self.error(key, "not a number in range", value, f"a number in [{low}, {high}]")
        return float(value)

    def integer(self, key: str, default: int | None = None, low: int = 0) -> int | None:
        value = self.values.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.error(key, "not a whole number in range", value, f"an integer >= {low}")
        return value

    def integers(self, key: str, lengths: tuple[int, ...], low: int = 1) -> tuple[int, ...]:
        value = self.values.get(key)
        items = list(value) if isinstance(value, (list, tuple)) else []
        ok = isinstance(value, (list, tuple)) and len(items) in lengths
        if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in items):
            expected = " or ".join(f"{n} integers >= {low}" for n in lengths)
            raise self.error(
                key, "wrong value" if key in self.values else "missing required kwarg", value, expected
            )
        return tuple(int(v) for v in items)


def stardist_params(op: ProcessingOp, *, where: str, descriptor: Path | None = None) -> StardistParams:
    """Checked kwargs of a ``stardist_postprocessing`` op (``where``: its field, for messages)."""
    kw = _Kwargs(op, where, descriptor)
    kw.known(_STARDIST_KEYS)
    grid = kw.integers("grid", (2, 3))
    n_rays = kw.integer("n_rays", None, low=3)
    if len(grid) == 3 and n_rays is None:
        raise kw.error(
            "n_rays", "missing required kwarg (3-D rays cannot be inferred)", None, "an integer >= 3"
        )
    anisotropy = None
    if len(grid) == 3:
        raw = kw.values.get("anisotropy", (1.0, 1.0, 1.0))
        if not (
            isinstance(raw, (list, tuple))
            and len(raw) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in raw)
        ):
            raise kw.error("anisotropy", "wrong value", raw, "3 numbers > 0 (z, y, x)")
        anisotropy = (float(raw[0]), float(raw[1]), float(raw[2]))
    else:
        for key in ("anisotropy", "overlap_label"):
            if kw.values.get(key) is not None:
                raise kw.error(key, "only for a 3-D grid", kw.values[key], "no such kwarg with a 2-int grid")
    return StardistParams(
        grid=grid,
        prob_threshold=kw.number("prob_threshold", None, 0.0, 1.0),
        nms_threshold=kw.number("nms_threshold", None, 0.0, 1.0),
        b=_border(kw, len(grid)),
        n_rays=n_rays,
        anisotropy=anisotropy,
        overlap_label=kw.integer("overlap_label", None, low=-(2**31)),
    )


def _border(kw: _Kwargs, ndim: int) -> Border:
    value = kw.values.get("b", 2)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    pairs = value if isinstance(value, (list, tuple)) and len(value) == ndim else None
    if pairs is not None and all(
        isinstance(p, (list, tuple))
        and len(p) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in p)
        for p in pairs
    ):
        return tuple((int(p[0]), int(p[1])) for p in pairs)
    raise kw.error("b", "wrong value", value, f"an integer >= 0, or {ndim} pairs [before, after] of them")


def cellpose_params(op: ProcessingOp, *, where: str, descriptor: Path | None = None) -> CellposeParams:
    """Checked kwargs of a ``cellpose_flow_dynamics`` op; missing ones take cellpose's defaults."""
    kw = _Kwargs(op, where, descriptor)
    kw.known(_CELLPOSE_KEYS)
    do_3d = kw.values.get("do_3D", False)
    if not isinstance(do_3d, bool):
        raise kw.error("do_3D", "not a boolean", do_3d, "true or false")
    dtype = kw.values.get("output_dtype", "uint16")
    if dtype not in ("uint16", "uint32"):
        raise kw.error("output_dtype", "unknown label type", dtype, "uint16 or uint32")
    return CellposeParams(
        cellprob_threshold=kw.number("cellprob_threshold", 0.0),
        flow_threshold=kw.number("flow_threshold", 0.4, 0.0),
        do_3D=do_3d,
        min_size=int(kw.integer("min_size", 15, low=0) or 0),
        output_dtype=str(dtype),
    )


def custom_params(op: ProcessingOp, *, where: str, descriptor: Path | None = None) -> CustomParams:
    """Checked fields of a ``custom`` op: a ``.py`` file inside the bundle, a callable name, a sha256."""

    def error(key: str, message: str, found: Any, expected: str) -> ProcessingError:
        return ProcessingError(
            message, file=descriptor, field=f"{where}.{key}", found=found, expected=expected
        )

    code = op.code
    if code is None:
        raise error("source", "a custom op needs its Python file", None, "source: a .py file in the bundle")
    if "://" in code.source or not code.source.endswith(".py"):
        raise error(
            "source",
            "a custom op's code must be a .py file inside the bundle",
            code.source,
            "a relative path to a .py file in the bundle",
        )
    if not code.callable.isidentifier():
        raise error("callable", "not a Python name", code.callable, "the name of a class or function")
    if code.sha256 is None or not _SHA256.match(code.sha256):
        raise error(
            "sha256",
            "a custom op runs only with the sha256 of its file",
            code.sha256,
            "the file's sha256 (64 hex digits)",
        )
    if not isinstance(code.kwargs, Mapping):
        raise error("kwargs", "not a mapping", code.kwargs, "a mapping of keyword arguments")
    return CustomParams(code)
