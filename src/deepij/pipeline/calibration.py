"""The physical size of an image's pixels (:class:`Calibration`), read from an image and carried onto the
outputs whose axes follow the input's (:func:`output_calibration`).

Examples
--------
>>> Calibration({"x": 0.5, "y": 0.5}, "micron").scaled({"x": 2.0, "y": 2.0}).pixel_size
{'x': 0.25, 'y': 0.25}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from deepij.bundle.description import ModelDescription, TensorSpec
from deepij.pipeline.axis_matching import letter_of

_SPACE = ("x", "y", "z")


@dataclass(frozen=True)
class Calibration:
    """Physical size of an image's pixels, by axis letter.

    Attributes
    ----------
    pixel_size : mapping of str to float
        ``{"x": 0.3, "y": 0.3, "z": 1.5}``: size of one pixel along each calibrated spatial axis.
    unit : str or None
        Their unit (``"micron"``, ...).
    origin : mapping of str to float
        The origin, in pixels, per axis (ImageJ's ``xOrigin`` ...); 0 when absent.
    frame_interval, time_unit : float or None, str or None
        Time between frames.

    Examples
    --------
    >>> image = xr.DataArray(np.zeros((4, 5)), dims=("row", "col"), attrs={"unit": "micron",
    ...                      "pixel_size": {"col": 0.5, "row": 0.5, "pln": 1.0}})
    >>> Calibration.of(image).pixel_size
    {'y': 0.5, 'x': 0.5}
    """

    pixel_size: Mapping[str, float] = field(default_factory=dict)
    unit: str | None = None
    origin: Mapping[str, float] = field(default_factory=dict)
    frame_interval: float | None = None
    time_unit: str | None = None

    @property
    def empty(self) -> bool:
        return not self.pixel_size and not self.frame_interval

    @classmethod
    def of(cls, image: xr.DataArray) -> Calibration:
        """The calibration an image carries, whether its dims are letters or ImageJ's."""
        letters = {str(d): letter_of(str(d)) for d in image.dims}
        attrs = image.attrs
        declared = {letter_of(str(k)): float(v) for k, v in (attrs.get("pixel_size") or {}).items()}
        sizes: dict[str, float] = {}
        origin: dict[str, float] = {}
        for dim, letter in letters.items():
            if letter not in _SPACE:
                continue
            coords = image.coords[dim].values if dim in image.coords else None
            if coords is not None and coords.size > 1 and np.issubdtype(coords.dtype, np.number):
                step = float(coords[1] - coords[0])
                if step > 0:
                    sizes[letter] = step
                    origin[letter] = -float(coords[0]) / step
                    continue
            if letter in declared:
                sizes[letter] = declared[letter]
        unit = attrs.get("unit")
        if not sizes and unit in (None, "pixel", "pixels"):
            unit = None
        interval = attrs.get("frame_interval")
        return cls(
            pixel_size=sizes,
            unit=str(unit) if unit else None,
            origin={k: v for k, v in origin.items() if v},
            frame_interval=float(interval) if interval else None,
            time_unit=attrs.get("time_unit"),
        )

    def scaled(self, factors: Mapping[str, float]) -> Calibration:
        """The calibration of an output whose axes are ``factors`` times the input's (0 or absent: not
        calibrated along that axis any more)."""
        sizes = {a: s / factors[a] for a, s in self.pixel_size.items() if factors.get(a)}
        return Calibration(sizes, self.unit if sizes else None, {}, self.frame_interval, self.time_unit)

    def apply(self, image: xr.DataArray) -> xr.DataArray:
        """``image`` (letter dims) with this calibration as coordinates and ``attrs``."""
        sizes = {a: s for a, s in self.pixel_size.items() if a in image.dims}
        coords = {a: (np.arange(image.sizes[a]) - self.origin.get(a, 0.0)) * s for a, s in sizes.items()}
        if self.frame_interval and "t" in image.dims:
            coords["t"] = np.arange(image.sizes["t"]) * self.frame_interval
        result = image.assign_coords(coords) if coords else image
        attrs = {k: v for k, v in image.attrs.items() if k not in ("pixel_size", "unit")}
        if sizes:
            attrs["pixel_size"] = sizes
            attrs["unit"] = self.unit or "pixel"
        if self.frame_interval:
            attrs["frame_interval"] = self.frame_interval
            if self.time_unit:
                attrs["time_unit"] = self.time_unit
        result.attrs = attrs
        return result


def output_calibration(
    description: ModelDescription, output: TensorSpec, calibration: Calibration
) -> Calibration:
    """The input's calibration carried onto an output, along the axes whose size follows the input's
    (``reference`` sizes: pixel size divided by their scale); other axes are not calibrated.

    Examples
    --------
    >>> Calibration({"x": 0.5, "y": 0.5}, "micron").scaled({"x": 2.0, "y": 2.0}).pixel_size
    {'x': 0.25, 'y': 0.25}
    """
    from deepij.bundle.description import ReferenceSize

    first = description.inputs[0].name if description.inputs else None
    factors = {
        axis.id: axis.size.scale
        for axis in output.axes
        if axis.id in _SPACE
        and isinstance(axis.size, ReferenceSize)
        and axis.size.tensor == first
        and axis.size.axis == axis.id
    }
    return calibration.scaled(factors)
