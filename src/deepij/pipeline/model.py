"""``deepij.load(bundle)`` gives a :class:`Model`; ``Model.predict`` runs pre-processing, tiled inference and
post-processing on an image and returns a :class:`~deepij.pipeline.outputs.Prediction`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.bundle.description import ModelDescription, ParameterizedSize
from deepij.errors import SeamWarning
from deepij.pipeline.outputs import Prediction
from deepij.pipeline.predict_parts import (
    check_arguments,
    make_prediction,
    sample_shapes,
    tiling_mode,
    with_step_outputs,
)

if TYPE_CHECKING:
    import xarray as xr

    from deepij.imagej.session import Session
    from deepij.inference.backends.base import Backend
    from deepij.inference.memory import MemoryEstimate
    from deepij.inference.plan import TilePlan
    from deepij.inference.receptive import ReceptiveField
    from deepij.inference.tiling import ModelTiling
    from deepij.pipeline.progress import ProgressEvent
    from deepij.pipeline.steps import Chain

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
        Check weights and the other files the descriptor gives a sha256 for (test tensors, attachments)
        before using them (False: trust them as they are).

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
        self._backends: dict[tuple[str | None, ...], Backend] = {}
        """Loaded networks by (weights format, device, runtime), and precision when not float32."""
        self._estimates: dict[tuple[int, tuple], tuple[MemoryEstimate, int]] = {}
        self._receptive: dict[tuple[int, tuple], ReceptiveField | None] = {}
        self._tiling: ModelTiling | None = None
        self._backend_tilings: dict[int, ModelTiling] = {}

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

    def tiling_for(self, backend: Backend) -> ModelTiling:
        """How ``backend``'s network can be tiled: the rules of the description it runs under.

        They can allow more than the bundle's: an ONNX graph whose fixed dims were relaxed (and verified)
        takes other sizes than the one its descriptor pins (see
        :mod:`deepij.inference.backends.onnx_relax`), so tiles and memory are planned with them.
        """
        if backend.description is self.description:
            return self.tiling
        key = id(backend.description)  # kept alive by the backend, which this model holds
        if key not in self._backend_tilings:
            from deepij.inference.tiling import analyse_tiling

            self._backend_tilings[key] = analyse_tiling(backend.description)
        return self._backend_tilings[key]

    def backend(
        self,
        weights_format: str | None = None,
        device: str | None = None,
        runtime: str = "auto",
        precision: str = "float32",
        *,
        threads: int | None = None,
    ) -> Backend:
        """The loaded network for these weights, device, runtime and precision, loaded on first use and
        kept.

        ``threads``: intra-op threads of the engine when this call loads it (a Dask worker shares the
        cores out, :mod:`deepij.pipeline.distributed`); a network already loaded is kept as it is, and
        later calls without ``threads`` find it.
        """
        key: tuple[str | None, ...] = (weights_format, device, runtime)
        if precision != "float32":
            key += (precision,)
        if key not in self._backends:
            from deepij.inference.backends import load_backend

            self._backends[key] = load_backend(
                self.description,
                weights_format,
                device,
                self.allow_code,
                runtime=runtime,
                verify=self.verify,
                precision=precision,
                threads=threads,
            )
        return self._backends[key]

    def close(self) -> None:
        """Release every loaded network."""
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
        self._estimates.clear()
        self._receptive.clear()
        self._backend_tilings.clear()

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
        margin: int | None = None,
        batch_size: int | str = "auto",
        runtime: str = "auto",
        non_finite: str = "raise",
        precision: str = "float32",
        step_timeout: float | None = None,
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
            tile; ``"whole"``: one mirror-padded pass; ``"image"``: the image as it is (the outputs of a
            network with valid convolutions, a negative offset, are then smaller than the image by it;
            every other choice mirror-pads the image so that they cover it, as deepImageJ does).
        device : str, optional
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``; None uses a GPU when there is one.
        weights_format : str, optional
            Which of the bundle's weights to run (None: by priority, see :mod:`deepij.inference.backends`).
        max_memory : int or str, optional
            Cap on the memory the run plans to use (outputs and forward passes), e.g. ``"2GB"``.
        axes : str or mapping, optional
            Letters naming the dims of a numpy ``image`` (per input name for several inputs).
        tiling : {"deepimagej", "deepimagej-readback", "blend"}, optional
            Tile layout. ``"deepimagej"`` (default): deepImageJ 2.x's grid (tiles side by side, the last one
            pushed back to the border), read back where the image is: tiled output never shifts.
            ``"deepimagej-readback"``: the same with deepImageJ's one-pixel read-back shift on a single tile
            whose margin is odd, to match result images deepImageJ made. ``"blend"``: overlapping tiles
            blended with linear ramps, ``overlap`` pixels (default: the measured receptive radius when it
            exceeds the declared halo).
        overlap : int, optional
            Pixels shared by neighbouring tiles with ``tiling="blend"``.
        margin : int, optional
            Pixels cut from each side of every tile (deepImageJ 1.x's ``overlap=``), when more than the
            bundle's declared halo: the tiles keep that margin (a single pass is mirror-padded by it). The
            notes say the margin used. A fixed tile size it leaves nothing of is a TilingError naming
            ``margin``.
        batch_size : int or "auto"
            Tiles per forward pass for models with a batch axis; "auto" fills the memory budget (up to 8).
        runtime : str
            What runs the network (``"auto"``, ``"native"``, ``"onnxruntime"``...; see
            :func:`deepij.inference.backends.load_backend`); the one that ran is ``Prediction.runtime``.
        non_finite : {"raise", "ignore", "propagate"}
            What to do with NaN or infinite input pixels. ``"raise"`` (default): refuse the image
            (:class:`~deepij.errors.InputError` with their count and the first one's position), since one
            of them turns every pixel of a whole-image normalisation into NaN. ``"ignore"``: for images with
            missing data (masked regions, failed pixels): statistics leave those pixels out, the network sees
            0 there (after pre-processing, so they do not spread through its receptive field), and the
            floating-point outputs are NaN again at those pixels. ``"propagate"``: run the values as they
            are.
        precision : {"float32", "float16"}
            ``"float16"``: half precision where a GPU runtime runs the model and a probe at load
            reproduces float32 within the bundle's reproduction tolerance; else float32, with a note and a
            warning saying why (:mod:`deepij.inference.backends.precision`).
        step_timeout : float, optional
            Seconds each ImageJ pre/post-processing step (macro or Java step) may run; one that runs longer
            is stopped and the prediction fails with a StepError saying so (a macro looping forever).
            None (default): no limit, as in ImageJ.

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

        A dask array, a dask-backed DataArray or a Zarr / OME-Zarr path runs lazily (images bigger than
        memory): the outputs are dask arrays, see :mod:`deepij.pipeline.lazy_predict`.
        """
        from deepij.pipeline.lazy_predict import is_lazy_input, predict_lazy

        if is_lazy_input(image):
            return predict_lazy(
                self, image, processing=processing, session=session, input_title=input_title,
                logging=logging, progress=progress, tile=tile, device=device, weights_format=weights_format,
                max_memory=max_memory, axes=axes, tiling=tiling, overlap=overlap, batch_size=batch_size,
                runtime=runtime, non_finite=non_finite,
            )
        from deepij.inference.runner import run_tiled
        from deepij.pipeline.progress import Reporter
        from deepij.pipeline.sources import read_source
        from deepij.pipeline.steps import Chain
        from deepij.processing.stream import stream_processing

        mode = check_arguments(tile, tiling, overlap, batch_size, max_memory, non_finite, axes, precision)
        _check_margin(margin)
        with Reporter(self.name, progress, logging) as report:
            chain = Chain(self.description, processing, session, report, step_timeout=step_timeout)
            source = read_source(
                image, self.description, axes=axes, input_title=input_title, session=chain.session
            )
            # A bad image fails before any weights load, unless ImageJ pre-processing makes the network's
            # input: then the checks run on what the macros leave.
            checked = None
            if not _imagej_makes_inputs(chain):
                checked = self._inputs(chain.pre(source), None, non_finite)
            backend = self.backend(weights_format, device, runtime, precision)
            self._hold_memory(backend, exact=max_memory is not None)
            notes = list(getattr(backend, "notes", []))
            made = chain.pre(source, backend.weights)  # the ImageJ steps, with the weights' attachments
            raw = checked if checked is not None else self._inputs(made, None, non_finite)
            # Spec ops (and the cast to the declared types) run per tile: no processed copy of the image.
            streamed = stream_processing(
                self.description,
                raw,
                spec_ops=chain.mode == "spec",
                ignore_nan=non_finite == "ignore",
                blend=mode == "blend",
            )
            rules = self.tiling_for(backend)
            masks = _non_finite_masks(rules, self.description, raw) if non_finite == "ignore" else {}
            held = streamed.held_bytes + sum(m.nbytes for m in masks.values())
            ready = streamed.inputs
            plan, batch = self._plan(
                backend, ready, tile, mode, overlap, batch_size, max_memory, notes, reserved=held,
                margin=margin,
            )
            plan = self.check_receptive_field(backend, plan, ready, tile, mode, overlap, notes, margin)
            outputs = run_tiled(
                backend,
                plan,
                ready,
                batch_size=batch,
                progress=report.tiles,
                prepare=streamed.prepare,
                finish=streamed.finish,
            )
            outputs = _masked(streamed.post(outputs), plan, masks, notes)
            finished = chain.post(outputs, raw, spec_applied=True)
            prediction = make_prediction(
                self.description, finished.tensors, plan, batch, backend, notes + chain.notes
            )
            return with_step_outputs(prediction, finished, chain, source.title, self.description)

    # --- steps ---------------------------------------------------------------------------------------------

    def _inputs(
        self, image: Any, axes: str | Mapping[str, str] | None, non_finite: str = "raise"
    ) -> Tensors:
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
            s.name: as_tensor(
                images[s.name],
                s,
                axes=per_input.get(s.name),
                argument=f"image[{s.name!r}]",
                non_finite=non_finite,
            )
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
        *,
        reserved: float = 0.0,
        margin: int | None = None,
    ) -> tuple[TilePlan, int]:
        """The tiles and the batch size of this run (measuring the model's memory when a choice needs it).

        ``reserved``: bytes the run holds besides outputs and tiles (processed inputs, masks), counted in the
        memory budget.
        """
        from deepij.inference.memory import auto_tile, choose_batch, estimate_memory

        if margin is not None:
            notes.append(_margin_note(self.tiling_for(backend), margin))
        tiling = _with_margin(self.tiling_for(backend), margin)
        shapes = sample_shapes(self.description, inputs)
        primary = self.description.input(tiling.input) if tiling.input else self.description.inputs[0]
        samples = math.prod(
            int(n)
            for d, n in inputs[primary.name].sizes.items()
            if str(d) not in primary.axes_str or d == "b"
        )
        accepted = _batch_sizes(primary) if batch_size == "auto" else ()
        if not _needs_memory_estimate(tiling, shapes, tile, accepted, samples, max_memory):
            if tile is None and tiling.input:
                as_is = margin is None and tiling.image_is_valid(shapes[tiling.input])
                tile = "image" if as_is else "whole"
            plan = tiling.plan(shapes, tile, tiling_mode(mode), overlap)
            if tile in ("image", "whole") and plan.n_tiles == 1:
                notes.append(f"one pass ({'the image as it is' if tile == 'image' else 'mirror-padded'})")
            elif tile == "whole":
                notes.append(f"tiles of the model's fixed size {plan.tile}")
            return plan, 1 if batch_size == "auto" else int(batch_size)
        estimate, left_behind = self._estimate(backend, tiling, shapes, estimate_memory)
        reserved += left_behind
        choice = auto_tile(
            backend,
            tiling,
            shapes,
            samples=samples,
            max_memory=max_memory,
            estimate=estimate,
            batch_sizes=accepted,
            reserved=reserved,
        )
        if choice.note:
            notes.append(f"tile: {choice.note}")
        as_is = margin is None and tiling.image_is_valid(shapes[tiling.input or ""])
        if tile is None and choice.single_pass and as_is:
            tile = "image"  # the whole image as it is, as the zoo's tools run it
            notes.append("the whole image fits in memory: one pass, unpadded")
        elif tile is None:
            tile = choice.tile
            notes.append(f"tile {choice.tile} chosen for a budget of {choice.budget / 1e6:.0f} MB")
        plan = tiling.plan(shapes, tile, tiling_mode(mode), overlap)
        if batch_size != "auto":
            return plan, int(batch_size)
        return plan, choose_batch(estimate, plan, choice.budget, samples, accepted)

    def check_receptive_field(
        self,
        backend: Backend,
        plan: TilePlan,
        inputs: Tensors,
        tile: Any,
        mode: str,
        overlap: int | None,
        notes: list[str],
        margin: int | None = None,
    ) -> TilePlan:
        """``plan``, or a blending plan that overlaps by the measured receptive radius: when the image takes
        several tiles, how far the network looks is measured (once per backend and sizes), and a declared
        halo smaller than it is noted and warned about (:class:`~deepij.errors.SeamWarning`)."""
        import warnings

        from deepij.inference.receptive import QUICK, measure_receptive_field

        if not plan.tiled or plan.n_tiles <= 1:
            return plan
        tiling = _with_margin(self.tiling_for(backend), margin)
        shapes = sample_shapes(self.description, inputs)
        key = (id(backend), _fixed_sizes(tiling, shapes))
        if key not in self._receptive:
            # the quick probe (a quarter of deepij build's thorough one's passes): a lower bound
            self._receptive[key] = measure_receptive_field(backend, tiling, shapes, effort=QUICK)
        field = self._receptive[key]
        if field is None:
            return plan
        notes.append(
            f"receptive radius measured: {field.describe()} pixels (a lower bound: the quick probe; "
            f"declared padding {tiling.pads})"
        )
        short = field.exceeds(tiling.pads)
        if short and mode != "blend":
            message = (
                f"model {self.name!r}: the network looks {short} pixels far but its tiles keep only "
                f"{ {a: tiling.pads[a] for a in short} } (the declared halo): the {plan.n_tiles} tiles will "
                "differ from a whole-image pass at their seams; tiling='blend' hides seams, a larger tile "
                "makes fewer"
            )
            notes.append(message)
            warnings.warn(message, SeamWarning, stacklevel=3)  # the caller of predict
        if mode == "blend" and overlap is None and short:
            width = max(short.values())
            grids = {g.axis: g for g in plan.grids}
            fits = min(g.tile - 2 * g.pad - 1 for g in grids.values())
            width = min(width, fits)
            notes.append(f"blending overlap {width} pixels (the measured receptive radius)")
            return tiling.plan(shapes, plan.tile, "blend", width)
        return plan

    def _hold_memory(self, backend: Backend, exact: bool) -> None:
        """Under a memory cap the engine's memory must follow what each pass needs (onnxruntime's arena
        grows by doubling otherwise); without one it keeps its faster pool. A switch rebuilds the engine:
        what was measured on it no longer holds."""
        if backend.hold_memory_exactly(exact):
            for key in [k for k in self._estimates if k[0] == id(backend)]:
                del self._estimates[key]

    def _estimate(
        self, backend: Backend, tiling: ModelTiling, shapes: Mapping, measure: Callable
    ) -> tuple[MemoryEstimate, int]:
        """The model's measured memory, and what measuring left behind (an engine's memory pool keeps its
        probe passes' memory, held during every later run too, so it counts in the budget). Measured once
        per backend and channel sizes: reading the resident memory costs a garbage collection."""
        key = (id(backend), _fixed_sizes(tiling, shapes))
        if key not in self._estimates:
            before = _resident(backend)
            estimate = measure(backend, tiling, shapes)
            self._estimates[key] = (estimate, max(0, _resident(backend) - before))
        return self._estimates[key]


def _imagej_makes_inputs(chain: Chain) -> bool:
    """Whether ImageJ pre-processing steps make the network's inputs (the image is checked after them)."""
    return chain.mode == "macros" and bool(chain.description.deepimagej.preprocess)


def _check_margin(margin: Any) -> None:
    from deepij.errors import ArgumentError, ArgumentTypeError

    if margin is None:
        return
    if isinstance(margin, bool) or not isinstance(margin, int):
        raise ArgumentTypeError(f"margin: expected a whole number of pixels, not {margin!r}")
    if margin < 0:
        raise ArgumentError(f"margin: expected a whole number of pixels >= 0, not {margin}")


def _with_margin(tiling: ModelTiling, margin: int | None) -> ModelTiling:
    """``tiling`` whose tiles keep at least ``margin`` pixels per side (cut from each tile's border).

    Raises
    ------
    TilingError
        A fixed tile size (``margin:`` names the argument) that such a margin leaves nothing of.
    """
    from dataclasses import replace

    from deepij.bundle.description import FixedSize
    from deepij.errors import TilingError

    if margin is None or not tiling.tileable or all(p >= margin for p in tiling.pads.values()):
        return tiling
    for axis in tiling.axes:
        rule = tiling.rules[axis]
        if isinstance(rule, FixedSize) and rule.value <= 2 * margin:
            raise TilingError(
                f"margin: {margin} pixels per side leave nothing of the model's fixed tile "
                f"{axis}={rule.value}; expected at most {(rule.value - 1) // 2}"
            )
    return replace(tiling, pads={a: max(p, margin) for a, p in tiling.pads.items()})


def _margin_note(tiling: ModelTiling, margin: int) -> str:
    declared = dict(tiling.pads)
    if not tiling.tileable:
        return f"margin {margin}: the model runs in one pass (not tiled), no tile margins are cut"
    if all(p >= margin for p in declared.values()):
        return f"tile margin: the declared halo {declared} pixels per side (margin {margin} is within it)"
    used = {a: max(p, margin) for a, p in declared.items()}
    return f"tile margin {used} pixels per side (margin {margin}; the bundle declares {declared})"


def _resident(backend: Backend) -> int:
    """Resident bytes of this process when the backend runs on the CPU (0 on a GPU: its pool is apart)."""
    from deepij.inference.meters import is_gpu_device, resident_bytes

    return 0 if is_gpu_device(backend.device) else resident_bytes()


def _fixed_sizes(tiling: ModelTiling, shapes: Mapping[str, Mapping[str, int]]) -> tuple:
    """The sizes a measurement depends on besides the tile (channels): a cache key."""
    return tuple(
        sorted(
            (name, a, n)
            for name, sample in shapes.items()
            for a, n in sample.items()
            if a not in tiling.axes
        )
    )


def _non_finite_masks(
    tiling: ModelTiling, description: ModelDescription, raw: Mapping[str, xr.DataArray]
) -> dict[str, xr.DataArray]:
    """For ``non_finite="ignore"``: where the primary input has NaN/inf pixels (any channel), if anywhere."""
    import numpy as np

    from deepij.inference.arrays import count_non_finite, non_finite_mask

    if not tiling.input:
        return {}
    spec = description.input(tiling.input)
    data = raw[spec.name]
    if not count_non_finite(np.asarray(data.values))[0]:
        return {}
    reduce = [a for a in spec.axes_str if a != "b" and a not in tiling.axes]
    return {spec.name: non_finite_mask(data, reduce)}


def _masked(
    outputs: Tensors, plan: TilePlan, masks: Mapping[str, xr.DataArray], notes: list[str]
) -> Tensors:
    """NaN in the floating-point image outputs wherever the input pixel they come from was non-finite."""
    import numpy as np
    import xarray as xr

    if not masks:
        return outputs
    (mask,) = masks.values()
    count = int(mask.sum())
    notes.append(
        f"non_finite='ignore': {count} non-finite input pixels were left out of the statistics and run as 0"
    )
    for name, out_plan in plan.outputs.items():
        data = outputs[name]
        follows = {m.input_axis for m in out_plan.maps.values()} == set(plan.axes)
        if not follows or data.dtype.kind != "f":
            notes.append(f"output {name!r} is not masked (not a floating-point image of the input)")
            continue
        index = {}
        for letter, m in out_plan.maps.items():
            size = mask.sizes[m.input_axis]
            rows = np.clip(m.image_pixels(data.sizes[letter]), 0, size - 1)
            index[m.input_axis] = xr.DataArray(rows, dims=(letter,))
        where = mask.isel(index).broadcast_like(data).transpose(*data.dims)
        np.copyto(data.values, np.nan, where=np.asarray(where.values))
    return outputs


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
    small = needs_no_measuring(tiling, shapes[tiling.input or ""])
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
    import inspect

    from deepij.bundle import open_bundle
    from deepij.errors import ArgumentTypeError

    accepted = [
        name
        for name, p in inspect.signature(open_bundle).parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name not in ("source", "verify")
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ArgumentTypeError(
            f"load: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            "expected " + ", ".join(["allow_code", "verify", *accepted])
        )
    return Model(open_bundle(source, verify=verify, **options), allow_code=allow_code, verify=verify)
