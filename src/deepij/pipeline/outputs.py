"""What a model run returns: :class:`Prediction` (images as xarray, tables as pandas), shown in ImageJ the
way deepImageJ shows its outputs, or saved as ImageJ TIFF and CSV files that record how they were made.

Examples
--------
>>> import deepij, tempfile
>>> model = deepij.load("examples/nuclei_bundle")
>>> result = model.predict("examples/nuclei_bundle/sample_input.tif")
>>> [path.name for path in result.save(tempfile.mkdtemp(), prefix="cells")]
['cells_probability.tif', 'cells_labels.tif', 'cells_Results.csv']
>>> result.show(deepij.imagej(), input_title="cells.tif")
{'probability': 'deepij demo nuclei U-Net_probability_cells', 'labels': 'labels', 'Results': 'Results'}
>>> _ = deepij.imagej().run_macro("")  # a run starts by closing what is open: ImageJ is empty again
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.errors import ArgumentError
from deepij.files import atomic_path, cached_sha256, writable_folder
from deepij.pipeline.imagej_display import integer_values, lut_for_tiff
from deepij.pipeline.output_names import clean_name, unique_stems

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from deepij.bundle.description import ModelDescription, WeightsEntry
    from deepij.imagej.session import Session
    from deepij.inference.plan import TilePlan

_TIFF_AXES = {"t": "T", "z": "Z", "c": "C", "y": "Y", "x": "X"}


@dataclass
class Prediction:
    """What :meth:`Model.predict` returns.

    Attributes
    ----------
    images : dict of str to xarray.DataArray
        Image outputs by name; dims are the output's axis letters, after any looped dims (``t``, ``z``...).
        After ImageJ post-processing, every other image the steps left is here too, by title (dims: letters
        in ImageJ's order). Calibrated outputs carry ``attrs["pixel_size"]`` (by letter), ``attrs["unit"]``
        and coordinates.
    tables : dict of str to pandas.DataFrame
        Table outputs (axis ``i``) by name, and every table the post-processing steps left, by title.
    plan : TilePlan
        The tiles that ran.
    batch_size : int
        Tiles per forward pass.
    weights_format, device : str
        The weights and device the network ran with.
    runtime : str
        What ran the network: ``"onnxruntime"``, ``"torch"``, ``"tensorflow"``, ``"openvino"``... (it can
        differ from the weights' framework: torch weights converted to ONNX run with ``"onnxruntime"``).
    notes : list of str
        What deepij decided on the way (skipped weights, tile choice).
    model_name : str
        The bundle's name (deepImageJ's output titles start with it).
    input_title : str
        The input's title (a file name, an ImagePlus title; ``"image"`` for arrays without a name).
    provenance : dict
        How the outputs were made: model name and version, weights format and sha256, processing and the
        steps that ran, tile plan, device, deepij version. Written into every saved TIFF.
    instances : dict of str to list of (dict, Instances)
        Per output made by an instance op (StarDist, Cellpose, custom), each image's position along the
        looped dims and its :class:`~deepij.processing.instances.Instances` (labels, object table, polygons:
        the ROIs).
    rois : list of Outline
        The ROIs the ImageJ post-processing left in the ROI Manager (:class:`deepij.imagej.rois.Outline`:
        vertices in ImageJ's coordinates, name, position), e.g. a deepImageJ StarDist bundle's objects.
    """

    images: dict[str, xr.DataArray]
    tables: dict[str, pd.DataFrame]
    plan: TilePlan
    batch_size: int
    weights_format: str
    device: str
    notes: list[str] = field(default_factory=list)
    runtime: str = ""
    model_name: str = ""
    input_title: str = "image"
    provenance: dict[str, Any] = field(default_factory=dict)
    instances: dict[str, list[Any]] = field(default_factory=dict)
    rois: list[Any] = field(default_factory=list)

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

    # ------------------------------------------------------------------------------------------ ImageJ
    def title(self, name: str, input_title: str | None = None) -> str:
        """The ImageJ title deepImageJ gives an output: ``<model name>_<output name>_<input title without
        extension>`` for the network's outputs; other images and tables keep the title the steps gave them.

        Examples
        --------
        >>> import deepij
        >>> prediction = deepij.load("examples/nuclei_bundle").predict(
        ...     "examples/nuclei_bundle/sample_input.tif", processing="spec")
        >>> prediction.title("probability", "cells.tif"), prediction.title("probability")
        ('deepij demo nuclei U-Net_probability_cells', 'deepij demo nuclei U-Net_probability_sample_input')
        """
        from deepij.pipeline.sources import strip_extension

        if name not in self.provenance.get("outputs", ()):
            return name
        return f"{self.model_name}_{name}_{strip_extension(str(input_title or self.input_title))}"

    def show(self, session: Session, *, input_title: str | None = None) -> dict[str, str]:
        """Open every output in ImageJ, where a calling macro finds it: images as ImagePlus titled as
        deepImageJ titles them (:meth:`title`), tables as ResultsTables (``Results`` is ImageJ's Results
        table, what ``getResult`` reads); an image output without a ``y``/``x`` plane (a feature vector) as
        a table too. Label images (instance outputs) are 16-bit with a label lookup
        table, and the objects are ROIs in the ROI Manager, as StarDist's Fiji plugin leaves them (with
        the ROIs the post-processing left there; see :mod:`deepij.pipeline.imagej_display`).

        Inside a macro (a command handler) they join the macro's images; otherwise they are shown (nothing
        appears on screen under deepij's virtual display) until the next macro run cleans ImageJ.

        Parameters
        ----------
        session : Session
            The ImageJ session.
        input_title : str, optional
            The input image's title (default: :attr:`input_title`).

        Returns
        -------
        dict of str to str
            Output name -> ImageJ title.

        Examples
        --------
        >>> import deepij
        >>> result = deepij.load("examples/nuclei_bundle").predict(
        ...     "examples/nuclei_bundle/sample_input.tif", processing="spec")
        >>> result.show(deepij.imagej(), input_title="cells.tif")
        {'probability': 'deepij demo nuclei U-Net_probability_cells'}
        >>> _ = deepij.imagej().run_macro("")  # a run starts by closing what is open: ImageJ is empty again
        """
        from deepij.pipeline import imagej_display as display

        titles: dict[str, str] = {}
        imps: dict[str, Any] = {}
        for name, image in self.images.items():
            title = self.title(name, input_title)
            table = display.without_plane(image)
            if table is not None:  # no plane to show: a table (Cellpose's style vector)
                session.publish_table(session.to_resultstable(table), title)
                titles[name] = title
                continue
            shown = display.labels_for_imagej(image) if name in self.instances else image
            imp = session.to_imageplus(_for_imagej(shown), title=title)
            display.decorate(self, name, imp)
            session.publish_image(imp)
            titles[name], imps[name] = title, imp
        for name, frame in self.tables.items():
            title = self.title(name, input_title)
            session.publish_table(session.to_resultstable(frame), title)
            titles[name] = title
        display.show_rois(self, imps)
        return titles

    # ------------------------------------------------------------------------------------------ files
    def save(self, folder: str | os.PathLike[str], *, prefix: str | None = None) -> list[Path]:
        """Write every image as an ImageJ TIFF and every table as CSV into ``folder``.

        TIFFs are ImageJ hyperstacks (tifffile ``imagej=True``): axes and calibration kept, float32, uint16
        and uint8 as they are, other integers as uint16 when their values fit (label images: ImageJ reads
        them as 16-bit integers, with their label lookup table), else float32, bool as 0/255 uint8; and how
        they were made (:attr:`provenance`) in ImageJ's ``Info`` property (Image > Show Info). Each file is
        written under a
        temporary name and renamed, so a file is complete or absent; if one fails, the ones this call
        wrote are removed.

        Parameters
        ----------
        folder : path
            Created if needed (an :class:`~deepij.errors.ArgumentError` when it cannot be: a file, read-only).
        prefix : str, optional
            File names are ``<prefix>_<output>.tif`` / ``.csv`` (default: ``<output>.tif``).

        Returns
        -------
        list of Path
            The files written.

        Examples
        --------
        >>> import deepij, tempfile
        >>> result = deepij.load("examples/nuclei_bundle").predict(
        ...     "examples/nuclei_bundle/sample_input.tif", processing="spec")
        >>> folder = Path(tempfile.mkdtemp())
        >>> result.save(folder, prefix="cells") == [folder / "cells_probability.tif"]
        True
        """
        target = Path(folder)
        if not target.is_dir():
            writable_folder(target, "folder")  # made, or a clear error (a file, read-only...)
        image_files, table_files = self._files(prefix)
        written: list[Path] = []
        try:
            for name, image in self.images.items():
                path = target / image_files[name]
                info = self._info(name)
                with atomic_path(path) as partial:
                    _write_tiff(partial, image, info, lut_for_tiff(self, name))
                written.append(path)
            for name, frame in self.tables.items():
                path = target / table_files[name]
                with atomic_path(path) as partial:
                    _write_csv(partial, frame)
                written.append(path)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return written

    def file_names(self, prefix: str | None = None) -> list[str]:
        """The names of the files :meth:`save` writes, in its order: ``<prefix>_<name>.tif`` per image and
        ``.csv`` per table, ``<name>`` cleaned and made unique among the images (and among the tables) by
        :func:`~deepij.pipeline.output_names.unique_stems` (``a/b`` and ``a:b`` are two files), e.g.
        ``['cells_output.tif', 'cells_Results.csv']`` for prefix ``"cells"``.
        """
        image_files, table_files = self._files(prefix)
        return [*image_files.values(), *table_files.values()]

    def _files(self, prefix: str | None) -> tuple[dict[str, str], dict[str, str]]:
        if prefix is not None and not isinstance(prefix, str):
            raise ArgumentError(f"prefix: expected a str or None, found {type(prefix).__name__}")
        lead = "" if prefix is None else f"{clean_name(prefix, 'image')}_"
        images = unique_stems(self.images)
        tables = unique_stems(self.tables)
        return (
            {name: f"{lead}{stem}.tif" for name, stem in images.items()},
            {name: f"{lead}{stem}.csv" for name, stem in tables.items()},
        )

    def _info(self, name: str) -> str:
        lines = [f"deepij output: {name}", f"input: {self.input_title}"]
        lines += [f"{key}: {_text(value)}" for key, value in self.provenance.items() if key != "outputs"]
        return "\n".join(lines)


def provenance(
    description: ModelDescription, prediction: Prediction, processing: str, steps: list[str]
) -> dict[str, Any]:
    """How a prediction was made, for :attr:`Prediction.provenance` and the saved files.

    Examples
    --------
    >>> import deepij
    >>> model = deepij.load("examples/nuclei_bundle")
    >>> result = model.predict("examples/nuclei_bundle/sample_input.tif", processing="spec")
    >>> made = provenance(model.description, result, "macros", ["pre 1: macro per_sample_scale_range.ijm"])
    >>> made["model"], made["weights format"], made["weights sha256"]  # doctest: +ELLIPSIS
    ('deepij demo nuclei U-Net', 'onnx', 'b062c984c441...')
    """
    from deepij import __version__

    weights = description.weights.get(prediction.weights_format)
    plan = prediction.plan
    return {
        "model": description.name,
        "model version": description.version or "",
        "descriptor": f"{description.descriptor.name} (format {description.format_version})",
        "weights format": prediction.weights_format,
        "weights sha256": _weights_sha256(description, weights),
        "runtime": prediction.runtime,
        "device": prediction.device,
        "processing": processing,
        "steps": steps or ["none"],
        "tile plan": (
            f"tile {plan.tile}, {plan.n_tiles} tile(s), {plan.mode} layout, batch {prediction.batch_size}"
        ),
        "deepij version": __version__,
        "outputs": [spec.name for spec in description.outputs],
    }


def _weights_sha256(description: ModelDescription, weights: WeightsEntry | None) -> str:
    if weights is None:
        return "unknown"
    if weights.sha256:
        return weights.sha256
    if weights.is_url:
        return "not given"
    path = description.path(weights.source)
    if not path.is_file():
        return "not given"
    return cached_sha256(path)


# ---------------------------------------------------------------------------------------------- helpers
def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    return str(value)


def _imagej_layout(image: xr.DataArray) -> xr.DataArray:
    """Letter dims in ImageJ's hyperstack order (T, Z, C, Y, X); a batch of 1 dropped, a batch of several
    as frames (when there is no time axis), other size-1 axes dropped."""
    from deepij.axes import to_imagej_dims

    as_imagej = to_imagej_dims(image)
    return as_imagej.rename({d: _IMAGEJ_TO_LETTER[str(d)] for d in as_imagej.dims}).transpose(
        *(a for a in "tzcyx" if a in [_IMAGEJ_TO_LETTER[str(d)] for d in as_imagej.dims])
    )


_IMAGEJ_TO_LETTER = {"t": "t", "pln": "z", "ch": "c", "row": "y", "col": "x"}


def _imagej_values(values: np.ndarray) -> np.ndarray:
    if values.dtype in (np.uint8, np.uint16, np.float32):
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * np.uint8(255)
    as_integers = integer_values(values)
    return as_integers if as_integers is not None else values.astype(np.float32)


def _write_tiff(path: Path, image: xr.DataArray, info: str, lut: np.ndarray | None = None) -> None:
    import tifffile

    laid_out = _imagej_layout(image)
    axes = "".join(_TIFF_AXES[str(d)] for d in laid_out.dims)
    values = _imagej_values(np.ascontiguousarray(laid_out.values))
    sizes = image.attrs.get("pixel_size") or {}
    metadata: dict[str, Any] = {"axes": axes, "Info": info}
    options: dict[str, Any] = {}
    if lut is not None:
        channels = laid_out.sizes["c"] if "c" in laid_out.dims else 1
        if channels > 1:  # a composite's tables
            metadata["LUTs"] = [lut] * channels
        else:  # ImageJ reads a single channel's table from the TIFF colour map (256 16-bit entries each)
            colour_map = (lut.astype(np.uint16) * np.uint16(257)).ravel()
            options["extratags"] = [(320, "H", colour_map.size, colour_map, True)]
        if values.dtype != np.uint8 and values.size:
            metadata["min"], metadata["max"] = 0.0, float(max(1, values.max()))
    if "x" in sizes or "y" in sizes:
        width = float(sizes["x"] if "x" in sizes else sizes["y"])
        height = float(sizes["y"] if "y" in sizes else sizes["x"])
        options["resolution"] = (1.0 / width, 1.0 / height)  # ImageJ stores pixels per unit
        metadata["unit"] = str(image.attrs.get("unit") or "pixel")
    if "z" in sizes:
        metadata["spacing"] = float(sizes["z"])
    if image.attrs.get("frame_interval"):
        metadata["finterval"] = float(image.attrs["frame_interval"])
    tifffile.imwrite(path, values, imagej=True, metadata=metadata, **options)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    import pandas as pd

    default_index = (
        isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
    )
    frame.to_csv(path, index=not default_index)


def _for_imagej(image: xr.DataArray) -> xr.DataArray:
    """A letter-dim output as ImageJ's conversion takes it (ImageJ dims, pixel sizes keyed by ImageJ dim)."""
    from deepij.axes import BIOIMAGE_TO_IMAGEJ, to_imagej_dims

    as_imagej = to_imagej_dims(image)
    sizes = as_imagej.attrs.get("pixel_size")
    if isinstance(sizes, Mapping):
        as_imagej = as_imagej.copy(deep=False)
        as_imagej.attrs = {
            **as_imagej.attrs,
            "pixel_size": {BIOIMAGE_TO_IMAGEJ.get(str(k), str(k)): v for k, v in sizes.items()},
        }
    return as_imagej
