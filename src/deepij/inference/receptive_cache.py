"""Receptive fields kept on disk: a network's field is measured once and read back by later runs.

The measurement (:func:`deepij.inference.receptive.measure_receptive_field`) costs tens to hundreds of
forward passes; a seam check that repeats it on every first call of a process can cost more than the run it
checks. Entries live in the graph cache's folder (:mod:`deepij.inference.backends.graph_cache`: atomic,
corruption-safe), keyed by the weights' sha256, the descriptor's tensors, the sizes the probe depends on and
how hard it looked, so another descriptor, other channels or a deeper search get their own entry.
"""

from __future__ import annotations

from collections.abc import Mapping

from deepij.inference.backends.base import Backend
from deepij.inference.receptive import THOROUGH, Effort, ReceptiveField, measure_receptive_field
from deepij.inference.tiling import ModelTiling

RECEPTIVE_OPERATION = "receptive-field-v1"


def cached_receptive_field(
    backend: Backend,
    tiling: ModelTiling,
    shapes: Mapping[str, Mapping[str, int]],
    *,
    effort: Effort = THOROUGH,
    largest: Mapping[str, int] | None = None,
    enough: Mapping[str, int] | None = None,
) -> ReceptiveField | None:
    """:func:`measure_receptive_field`, measured once per network and kept on disk (the graph cache's
    folder, :mod:`deepij.inference.backends.graph_cache`): a later run, in this process or another, reads
    it instead of spending the probe's passes again. Keyed by the weights' sha256, the descriptor's tensors,
    the sizes the probe depends on and how hard it looked; backends without a weights file are measured
    every time."""
    from deepij.inference.backends import graph_cache

    key = _field_key(backend, tiling, shapes, effort, largest, enough)
    cached = graph_cache.load(key) if key else None
    if cached is not None:
        return _field_from(cached.meta, tiling.axes)
    field = measure_receptive_field(backend, tiling, shapes, effort=effort, largest=largest, enough=enough)
    if key:
        graph_cache.store(key, b"", _field_meta(field))
    return field


def _field_key(
    backend: Backend,
    tiling: ModelTiling,
    shapes: Mapping[str, Mapping[str, int]],
    effort: Effort,
    largest: Mapping[str, int] | None,
    enough: Mapping[str, int] | None,
) -> str | None:
    import deepij
    from deepij.inference.backends import graph_cache

    digest = graph_cache.weights_digest(backend.description, backend.weights)
    if digest is None:
        return None
    fixed = sorted(
        (n, a, s) for n, sample in shapes.items() for a, s in sample.items() if a not in tiling.axes
    )
    return graph_cache.cache_key(
        digest,
        RECEPTIVE_OPERATION,
        f"deepij {deepij.__version__}",
        graph_cache.tensors_text(backend.description),
        repr((fixed, dict(tiling.pads), effort.backgrounds, dict(largest or {}), dict(enough or {}))),
    )


def _field_meta(field: ReceptiveField | None) -> dict:
    if field is None:
        return {"field": None}
    return {
        "field": {
            "radius": dict(field.radius),
            "at_least": dict(field.at_least),
            "probe": dict(field.probe),
            "backgrounds": field.effort.backgrounds,
            "passes": field.passes,
        }
    }


def _field_from(meta: Mapping, axes: str) -> ReceptiveField | None:
    """The field an entry holds, its axes in the tiling's order (the entry's JSON sorts them)."""
    data = meta.get("field")
    if not data:
        return None
    return ReceptiveField(
        {a: int(data["radius"][a]) for a in axes},
        {a: bool(data["at_least"][a]) for a in axes},
        {a: int(data["probe"][a]) for a in axes},
        Effort(int(data["backgrounds"])),
        0,  # no pass spent: read from the cache
    )
