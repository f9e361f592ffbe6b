"""``deepij.load(bundle)`` gives a :class:`Model`; ``Model.predict`` runs pre-processing, tiled inference and
post-processing on an image and returns a :class:`~deepij.pipeline.outputs.Prediction`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.bundle.description import ModelDescription, ParameterizedSize
from deepij.pipeline.outputs import Prediction

if TYPE_CHECKING:
    import xarray as xr

    from deepij.imagej.session import Session
    from deepij.inference.backends.base import Backend
    from deepij.inference.memory import MemoryEstimate
    from deepij.inference.plan import TilePlan
    from deepij.inference.tiling import ModelTiling
    from deepij.pipeline.progress import ProgressEvent
    from deepij.pipeline.steps import Chain, StepOutputs

Tensors = dict[str, "xr.DataArray"]


class Model:
    """A bundle, read and ready to run. Loaded networks are kept and reused across calls.

    Parameters
    ----------
    description : ModelDescription
        The normalized description of the bundle.
    allow_code : bool
        Allow the bundle's Python code to run (``pytorch_state_dict`` architectures).
    verify : bool
        Check weights files against their sha256 before loading them (False: trust them as they are).

    Examples
    --------
    >>> model = deepij.load("bundles/unet2d/")  # doctest: +SKIP
    >>> result = model.predict(np.load("bundles/unet2d/test_input.npy"))  # doctest: +SKIP
    >>> result.images["output"].dims  # doctest: +SKIP
    ('b', 'c', 'y', 'x')
    """

    def __init__(
        self, description: ModelDescription, *, allow_code: bool = False, verify: bool = True
    ) -> None:
        self.description = description
        self.allow_code = allow_code
        self.verify = verify
        self._backends: dict[tuple[str | None, str | None, str], Backend] = {}
        self._estimates: dict[tuple[int, tuple], MemoryEstimate] = {}
        self._tiling: ModelTiling | None = None

    @property
    def name(self) -> str:
        return self.description.name

    @property
    def tiling(self) -> ModelTiling:
        """How the model can be tiled (:func:`deepij.inference.tiling.analyse_tiling`)."""
        if self._tiling is None:
            from deepij.inference.tiling import analyse_tiling

            self._tiling = analyse_tiling(self.description)
        return self._tiling

    def backend(
        self, weights_format: str | None = None, device: str | None = None, runtime: str = "auto"
    ) -> Backend:
        """The loaded network for these weights and device, loaded on first use and kept."""
        key = (weights_format, device, runtime)
        if key not in self._backends:
            from deepij.inference.backends import load_backend

            self._backends[key] = load_backend(
                self.description, weights_format, device, self.allow_code, runtime=runtime, verify=self.verify
            )
        return self._backends[key]

    def close(self) -> None:
        """Release every loaded network."""
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
        self._estimates.clear()

    def __repr__(self) -> str:
        return f"Model({self.description.name!r}, format_version={self.description.format_version!r})"

    def predict(
        self,
        image: Any,
        *,
        processing: str = "auto",
        session: Session | None = None,
        input_title: str | None = None,
        logging: str = "normal",
        progress: Callable[[ProgressEvent], Any] | None = None,
        tile: int | tuple[int, ...] | Mapping[str, int] | str | None = None,
        device: str | None = None,
        weights_format: str | None = None,
        max_memory: int | str | None = None,
        axes: str | Mapping[str, str] | None = None,
        tiling: str | None = None,
        overlap: int | None = None,
        batch_size: int | str = "auto",
        runtime: str = "auto",
    ) -> Prediction:
        """Run the model on an image: pre-processing, tiled inference, post-processing.

        Parameters
        ----------
        image : path, ndarray, xarray.DataArray, ImagePlus or mapping
            A file (TIFF incl. ImageJ hyperstacks and OME-TIFF, ``.npy``, PNG/JPEG and other formats ImageJ
            opens); a numpy array in the model input's own axis order (batch optional), e.g. the bundle's
            test input ``.npy``, or a 2-D ``(y, x)`` / 3-D ``(y, x, c)`` image, or with ``axes`` naming its
            dims; an xarray with letter dims or ImageJ's (``row``, ``col``, ``ch``, ``pln``, ``t``); an
            ImagePlus. Dims the model does not take (time, Z for a 2-D model, several images along ``b``)
            are looped over. Models with several inputs take a mapping from input name to image. See
            :mod:`deepij.pipeline.sources`.
        processing : {"auto", "macros", "spec", "none"}
            ``"auto"``: the bundle's deepImageJ steps (ImageJ macros, Java) inside ImageJ when it has any and
            ImageJ is available, else its bioimage.io spec ops; ``"macros"`` / ``"spec"`` force one,
            ``"none"`` applies nothing. One normalisation is never applied twice (see
            :mod:`deepij.pipeline.steps`).
        session : Session, optional
            The ImageJ session for ImageJ steps (default ``deepij.imagej()``, started only when needed).
        input_title : str, optional
            The input's title in ImageJ (what pre-processing macros see, and what outputs are named after);
            default the file name, the ImagePlus' or DataArray's name, else ``"image"``.
        logging : {"mute", "normal", "debug"}
            Level of the ``"deepij"`` logger during the run (ERROR, INFO, DEBUG); ``"mute"`` hides the
            progress bar too.
        progress : callable, optional
            Called with a :class:`~deepij.pipeline.progress.ProgressEvent` after each pre/post-processing
            step and each forward pass (a bar is shown on a terminal either way).
        tile : int, sequence, mapping or str, optional
            Tile size per tiled axis (``{"y": 256, "x": 256}``, ``(256, 256)`` in the input's order, or
            ``256``); each must be ``min + k*step``. None: one pass on the image as it is when its size is
            valid and it fits in memory (as the zoo's tools run test inputs), else the largest tile that
            fits (mirror-padded one pass when the whole image fits); ``"suggested"``: deepImageJ's default
            tile; ``"whole"``: one mirror-padded pass; ``"image"``: the image as it is.
        device : str, optional
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``; None uses a GPU when there is one.
        weights_format : str, optional
            Which of the bundle's weights to run (None: by priority, see :mod:`deepij.inference.backends`).
        max_memory : int or str, optional
            Cap on the memory the run plans to use (outputs and forward passes), e.g. ``"2GB"``.
        axes : str or mapping, optional
            Letters naming the dims of a numpy ``image`` (per input name for several inputs).
        tiling : {"deepimagej", "centered", "blend"}, optional
            Tile layout: deepImageJ 2.x's exactly, the same grid with a single tile correctly centred
            (deepImageJ reads it back one pixel off when its margin is odd), or overlapping tiles blended
            (``overlap`` pixels). Default: ``"deepimagej"`` for a tile you give, ``"centered"`` for one
            deepij chooses (deepImageJ never chose it, so there is nothing to reproduce).
        batch_size : int or "auto"
            Tiles per forward pass for models with a batch axis; "auto" fills the memory budget (up to 8).
        runtime : {"auto", "native", "onnxruntime"}
            Engine for torch weights on the CPU (see :func:`deepij.inference.backends.load_backend`).

        Returns
        -------
        Prediction
            ``.images`` (xarray per image output, and per image the post-processing left), ``.tables``
            (DataFrame per table output and per table the post-processing left), ``.save(folder)``,
            ``.show(session)``.

        Raises
        ------
        InputError
            An image that cannot be the model's input (the message says what the model needs).
        StepError
            A pre/post-processing step failed (bundle, step, file, macro line, ImageJ's message).

        Examples
        --------
        >>> result = model.predict(image, tile=256, max_memory="2GB")  # doctest: +SKIP
        >>> result.images["output"].sel(b=0, c=0).shape  # doctest: +SKIP
        (2048, 2048)
        """
        from deepij.inference.runner import run_tiled
        from deepij.pipeline.progress import Reporter
        from deepij.pipeline.sources import read_source
        from deepij.pipeline.steps import Chain

        with Reporter(self.name, progress, logging) as report:
            chain = Chain(self.description, processing, session, report)
            source = read_source(
                image, self.description, axes=axes, input_title=input_title, session=chain.session
            )
            backend = self.backend(weights_format, device, runtime)  # first: steps get its attachments
            notes = list(getattr(backend, "notes", []))
            raw = self._inputs(chain.pre(source, backend.weights), None)
            ready = chain.ready(raw)
            mode = tiling or ("centered" if tile is None else "deepimagej")
            plan, batch = self._plan(backend, ready, tile, mode, overlap, batch_size, max_memory, notes)
            outputs = run_tiled(backend, plan, ready, batch_size=batch, progress=report.tiles)
            finished = chain.post(outputs, raw)
            prediction = self._result(finished.tensors, plan, batch, backend, notes + chain.notes)
            return _with_step_outputs(prediction, finished, chain, source.title, self.description)

    # --- steps ---------------------------------------------------------------------------------------------

    def _inputs(self, image: Any, axes: str | Mapping[str, str] | None) -> Tensors:
        from deepij.errors import TilingError
        from deepij.inference.arrays import as_tensor

        specs = self.description.inputs
        if isinstance(image, Mapping):
            missing = [s.name for s in specs if s.name not in image]
            extra = sorted(set(image) - {s.name for s in specs})
            if missing or extra:
                raise TilingError(
                    f"image: the mapping must hold exactly the model inputs {[s.name for s in specs]} "
                    f"(missing {missing}, unknown {extra})"
                )
            images = dict(image)
        elif len(specs) == 1:
            images = {specs[0].name: image}
        else:
            raise TilingError(
                f"image: model {self.name!r} has {len(specs)} inputs {[s.name for s in specs]}; expected a "
                "mapping from input name to image"
            )
        per_input = axes if isinstance(axes, Mapping) else {s.name: axes for s in specs}
        return {
            s.name: as_tensor(images[s.name], s, axes=per_input.get(s.name), argument=f"image[{s.name!r}]")
            for s in specs
        }

    def _plan(
        self,
        backend: Backend,
        inputs: Tensors,
        tile: Any,
        mode: str,
        overlap: int | None,
        batch_size: int | str,
        max_memory: int | str | None,
        notes: list[str],
    ) -> tuple[TilePlan, int]:
        """The tiles and the batch size of this run (measuring the model's memory when a choice needs it)."""
        from deepij.inference.memory import auto_tile, choose_batch, estimate_memory

        tiling = self.tiling
        shapes = {
            s.name: {a: inputs[s.name].sizes[a] for a in s.axes_str if a != "b"}
            for s in self.description.inputs
        }
        primary = self.description.input(tiling.input) if tiling.input else self.description.inputs[0]
        samples = math.prod(
            n for d, n in inputs[primary.name].sizes.items() if d not in primary.axes_str or d == "b"
        )
        accepted = _batch_sizes(primary) if batch_size == "auto" else ()
        if not _needs_memory_estimate(tiling, shapes, tile, accepted, samples, max_memory):
            if tile is None and tiling.input:
                tile = "image" if tiling.image_is_valid(shapes[tiling.input]) else "whole"
                notes.append(f"one pass ({'the image as it is' if tile == 'image' else 'mirror-padded'})")
            plan = tiling.plan(shapes, tile, mode, overlap)
            return plan, 1 if batch_size == "auto" else int(batch_size)
        estimate = self._estimate(backend, tiling, shapes, estimate_memory)
        choice = auto_tile(
            backend,
            tiling,
            shapes,
            samples=samples,
            max_memory=max_memory,
            estimate=estimate,
            batch_sizes=accepted,
        )
        if choice.note:
            notes.append(f"tile: {choice.note}")
        if tile is None and choice.single_pass and tiling.image_is_valid(shapes[tiling.input]):
            tile = "image"  # the whole image as it is, as the zoo's tools run it
            notes.append("the whole image fits in memory: one pass, unpadded")
        elif tile is None:
            tile = choice.tile
            notes.append(f"tile {choice.tile} chosen for a budget of {choice.budget / 1e6:.0f} MB")
        plan = tiling.plan(shapes, tile, mode, overlap)
        if batch_size != "auto":
            return plan, int(batch_size)
        return plan, choose_batch(estimate, plan, choice.budget, samples, accepted)

    def _estimate(
        self, backend: Backend, tiling: ModelTiling, shapes: Mapping, measure: Callable
    ) -> MemoryEstimate:
        fixed_sizes = tuple(
            sorted(
                (name, a, n)
                for name, sample in shapes.items()
                for a, n in sample.items()
                if a not in tiling.axes
            )
        )
        key = (id(backend), fixed_sizes)
        if key not in self._estimates:
            self._estimates[key] = measure(backend, tiling, shapes)
        return self._estimates[key]

    def _result(
        self, outputs: Tensors, plan: TilePlan, batch: int, backend: Backend, notes: list[str]
    ) -> Prediction:
        from deepij.inference.arrays import table_frame

        images, tables = {}, {}
        for spec in self.description.outputs:
            if spec.is_table:
                tables[spec.name] = table_frame(outputs[spec.name], spec)
            else:
                images[spec.name] = outputs[spec.name]
        engine = getattr(backend, "format", "") or backend.weights.format
        return Prediction(images, tables, plan, batch, backend.weights.format, backend.device, notes, engine)


def _with_step_outputs(
    prediction: Prediction,
    finished: StepOutputs,
    chain: Chain,
    input_title: str,
    description: ModelDescription,
) -> Prediction:
    """The prediction with what the processing steps left (images and tables by title) and how it was made."""
    from deepij.pipeline.outputs import provenance

    prediction.images.update(finished.images)
    prediction.tables.update(finished.tables)
    prediction.model_name = description.name
    prediction.input_title = input_title
    prediction.provenance = provenance(description, prediction, chain.mode, chain.ran)
    return prediction


def _needs_memory_estimate(
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
    small = needs_no_measuring(tiling, shapes[tiling.input])
    if tile is None and not small:
        return True  # the tile size is ours to choose
    return bool(batch_sizes) and (samples > 1 or not small)  # so is the batch size


def _batch_sizes(spec: Any) -> tuple[int, ...]:
    """Batch sizes above 1 (up to 8) the input's batch axis accepts."""
    if "b" not in spec.axes_str:
        return ()
    rule = spec.axis("b").size
    if rule is None:
        return tuple(range(2, 9))
    if isinstance(rule, ParameterizedSize):
        return tuple(k for k in range(2, 9) if rule.is_valid(k))
    return ()


def load(
    source: str | Path, *, allow_code: bool = False, verify: bool = True, **options: object
) -> Model:
    """Read a bundle (folder, descriptor file or zip) into a :class:`Model`.

    ``options`` are passed to :func:`deepij.bundle.open_bundle`; ``allow_code`` lets the bundle's Python
    architecture code run (``pytorch_state_dict`` weights); ``verify=False`` trusts weights files whose
    sha256 differs from the descriptor's (at opening and at loading).

    Examples
    --------
    >>> model = deepij.load("my_bundle.zip")  # doctest: +SKIP
    """
    from deepij.bundle import open_bundle

    return Model(open_bundle(source, verify=verify, **options), allow_code=allow_code, verify=verify)
