"""What a spec processing op gets besides its tensor: checked kwargs, reduction axes, reference tensors.

Every error names the descriptor, the tensor, the step and the kwarg (:class:`deepij.errors.ProcessingError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from deepij.errors import ProcessingError
from deepij.processing.statistics import StatsSource

_AXIS_NAMES = {"batch": "b", "channel": "c", "index": "i", "time": "t"}
MODES = ("per_sample", "per_dataset", "fixed")


def axis_letter(name: str) -> str:
    """``"channel"`` -> ``"c"``; letters stay letters."""
    return _AXIS_NAMES.get(name, name)


@dataclass
class OpContext:
    """One processing step being applied to one tensor.

    Parameters
    ----------
    op : str
        The op name (``"scale_range"``).
    kwargs : mapping
        The op's kwargs as the description gives them.
    tensor : str
        The tensor's name.
    axes : str
        The tensor's own axis letters (``"bcyx"``); dims of the data that are not among them are looped
        dims (time, Z for a 2-D model), which count as separate samples.
    field : str
        Where the step is in the descriptor (``"inputs['raw'].preprocessing[0]"``), for messages.
    references : mapping
        Tensors a ``reference_tensor`` kwarg may name, by name.
    """

    op: str
    kwargs: Mapping[str, Any]
    tensor: str
    axes: str
    field: str
    descriptor: Path | None = None
    references: Mapping[str, xr.DataArray] = dataclass_field(default_factory=dict)

    # --- errors -------------------------------------------------------------------------------------------

    def error(
        self, kwarg: str | None, message: str, found: Any = None, expected: str | None = None
    ) -> ProcessingError:
        where = f"{self.field}.kwargs.{kwarg}" if kwarg else self.field
        extra: dict[str, Any] = {"expected": expected}
        if found is not None:
            extra["found"] = found
        return ProcessingError(
            f"{self.op} on tensor {self.tensor!r}: {message}", file=self.descriptor, field=where, **extra
        )

    # --- kwargs -------------------------------------------------------------------------------------------

    def get(self, name: str, default: Any = None) -> Any:
        return self.kwargs.get(name, default)

    def require(self, name: str) -> Any:
        if name not in self.kwargs or self.kwargs[name] is None:
            raise self.error(name, "missing kwarg", expected=f"a value for {name!r}")
        return self.kwargs[name]

    def number(self, name: str, default: float | None = None) -> float:
        value = self.kwargs.get(name, default)
        if value is None:
            raise self.error(name, "missing kwarg", expected="a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(name, "not a number", found=value, expected="a finite number")
        return float(value)

    def mode(self) -> str:
        mode = self.kwargs.get("mode", "per_sample")
        if mode not in MODES:
            raise self.error("mode", "unknown mode", found=mode, expected=" | ".join(MODES))
        return mode

    def check_known(self, allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(self.kwargs) - set(allowed))
        if unknown:
            raise self.error(
                unknown[0], "unknown kwarg", found=unknown[0], expected=f"one of {list(allowed)}"
            )

    # --- per-axis values ----------------------------------------------------------------------------------

    def per_axis(self, name: str, data: xr.DataArray, default: float | None = None) -> float | xr.DataArray:
        """A scalar, or a list applied along one axis (``axis`` kwarg, or the one axis not in ``axes``)."""
        value = self.kwargs.get(name, default)
        if value is None:
            raise self.error(name, "missing kwarg", expected="a number or a list of numbers")
        if isinstance(value, (list, tuple)):
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) or not value:
                raise self.error(name, "not a list of numbers", found=value, expected="numbers")
            if len(value) == 1:
                return float(value[0])
            axis = self._value_axis(name, len(value), data)
            return xr.DataArray(np.asarray(value, dtype=np.float64), dims=(axis,))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(name, "not a number", found=value, expected="a number or a list of numbers")
        return float(value)

    def _value_axis(self, name: str, length: int, data: xr.DataArray) -> str:
        if self.kwargs.get("axis") is not None:
            axis = axis_letter(str(self.kwargs["axis"]))
            if axis not in data.dims:
                raise self.error(
                    "axis", "no such axis in the tensor", found=axis, expected=f"one of {self.axes!r}"
                )
            candidates = [axis]
        else:
            joint = self.reduce_letters() or ""
            candidates = [a for a in self.axes if a not in joint and a not in "b" and a in data.dims]
            if "c" in candidates:
                candidates = ["c"]
        matching = [a for a in candidates if data.sizes[a] == length]
        if len(matching) != 1:
            sizes = {a: data.sizes[a] for a in candidates}
            raise self.error(
                name,
                f"{length} values but no single axis of that length to apply them along",
                found=sizes,
                expected=f"an axis with {length} entries (give 'axis', or 'axes' naming the others)",
            )
        return matching[0]

    # --- statistics ---------------------------------------------------------------------------------------

    def reduce_letters(self) -> str | None:
        axes = self.kwargs.get("axes")
        if axes is None:
            return None
        if isinstance(axes, str):
            return axes
        return "".join(axis_letter(str(a)) for a in axes)

    def reduce_dims(self, data: xr.DataArray) -> tuple[str, ...]:
        """The dims statistics are taken over: ``axes`` (per sample), plus batch and looped dims per dataset.

        No ``axes`` means every dim (the 0.5 default: the whole tensor jointly).
        """
        letters = self.reduce_letters()
        if letters is None:
            return tuple(str(d) for d in data.dims)
        unknown = [a for a in letters if a not in self.axes and a not in data.dims]
        if unknown:
            raise self.error(
                "axes",
                "names axes the tensor does not have",
                found=letters,
                expected=f"letters of {self.axes!r}",
            )
        names = [str(d) for d in data.dims]
        dims = [d for d in names if d in letters]
        if self.kwargs.get("mode") == "per_dataset":
            dims += [d for d in names if (d == "b" or d not in self.axes) and d not in dims]
        return tuple(d for d in names if d in dims)

    def source_of(self, own: StatsSource) -> StatsSource:
        """Where statistics come from: ``reference_tensor`` when given, else the tensor itself."""
        name = self.kwargs.get("reference_tensor")
        if name is None or name == self.tensor:
            return own
        if name not in self.references:
            raise self.error(
                "reference_tensor", "no such tensor", found=name, expected=f"one of {sorted(self.references)}"
            )
        return own.like(self.references[name])

    def reference(self) -> str | None:
        """The other tensor this step's statistics come from, if any."""
        name = self.kwargs.get("reference_tensor")
        return None if name is None or name == self.tensor else str(name)
