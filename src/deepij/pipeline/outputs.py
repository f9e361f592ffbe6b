"""What a model run returns: :class:`Prediction` (images as xarray, tables as pandas)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from deepij.inference.plan import TilePlan


@dataclass
class Prediction:
    """What :meth:`Model.predict` returns.

    Attributes
    ----------
    images : dict of str to xarray.DataArray
        Image outputs by name; dims are the output's axis letters, after any looped dims (``t``, ``z``...).
    tables : dict of str to pandas.DataFrame
        Table outputs (axis ``i``) by name.
    plan : TilePlan
        The tiles that ran.
    batch_size : int
        Tiles per forward pass.
    weights_format, device : str
        The weights and device the network ran with.
    engine : str
        The format of the engine that ran them (``"onnx"`` when torch weights ran with onnxruntime).
    notes : list of str
        What deepij decided on the way (skipped weights, tile choice).
    """

    images: dict[str, xr.DataArray]
    tables: dict[str, pd.DataFrame]
    plan: TilePlan
    batch_size: int
    weights_format: str
    device: str
    notes: list[str] = field(default_factory=list)
    engine: str = ""

    def __getitem__(self, name: str) -> xr.DataArray | pd.DataFrame:
        if name in self.images:
            return self.images[name]
        if name in self.tables:
            return self.tables[name]
        raise KeyError(
            f"no output named {name!r} (images: {sorted(self.images)}, tables: {sorted(self.tables)})"
        )

    def __repr__(self) -> str:
        shapes = {k: dict(v.sizes) for k, v in self.images.items()}
        return (
            f"Prediction(images={shapes}, tables={sorted(self.tables)}, tile={self.plan.tile}, "
            f"tiles={self.plan.n_tiles}, weights={self.weights_format!r}, device={self.device!r})"
        )
