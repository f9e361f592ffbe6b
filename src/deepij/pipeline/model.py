"""``deepij.load(bundle)`` gives a :class:`Model`; ``Model.predict`` runs pre-processing, tiled inference and
post-processing on an image and returns a :class:`~deepij.pipeline.outputs.Prediction`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.bundle.description import ModelDescription
from deepij.pipeline.outputs import Prediction
from deepij.pipeline.planning import Measurements
from deepij.pipeline.predict_parts import check_arguments, make_prediction, with_step_outputs

if TYPE_CHECKING:
    import xarray as xr

    from deepij.imagej.session import Session
    from deepij.inference.backends.base import Backend
    from deepij.inference.plan import TilePlan
    from deepij.inference.tiling import ModelTiling
    from deepij.pipeline.planning import RunRequest
    from deepij.pipeline.progress import ProgressEvent
    from deepij.pipeline.steps import Chain

Tensors = dict[str, "xr.DataArray"]


@dataclass(frozen=True)
class NetworkRun:
    """The network's part of a predict: its outputs (spec post-processing applied), the inputs it was
    given (for the ImageJ post-processing steps), the tiles and batch size, and what it noted."""

    outputs: Tensors
    raw: Tensors
    plan: TilePlan
    batch: int
    notes: list[str]


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

    Attributes
    ----------
    instance_plan : InstancePlan
        The outputs that become instances (StarDist, Cellpose, custom ops, declared or recognised) and
        ``instance_plan.network``: the description of what the network gives, which tiling and the backend
        use (:mod:`deepij.processing.instances`).

    Examples
    --------
    >>> import deepij, numpy as np
    >>> model = deepij.load("examples/nuclei_bundle")
    >>> result = model.predict(np.load("examples/nuclei_bundle/test_input.npy"))
    >>> result.images["probability"].dims, sorted(result.images), list(result.tables)
    (('b', 'c', 'y', 'x'), ['labels', 'probability'], ['Results'])

    ``labels`` and ``Results`` come from the bundle's post-processing macro, run inside ImageJ.
    """

    def __init__(
        self, description: ModelDescription, *, allow_code: bool = False, verify: bool = True
    ) -> None:
        from deepij.processing.instances import plan_instances

        self.description = description
        self.instance_plan = plan_instances(description)  # instance ops' kwargs are checked here
        self.allow_code = allow_code
        self.verify = verify
        self._backends: dict[tuple[str | None, ...], Backend] = {}
        """Loaded networks by (weights format, device, runtime), and precision when not float32."""
        self.measurements = Measurements()
        """What planning measured on the loaded networks (memory per pass, receptive field)."""
        self._tiling: ModelTiling | None = None
        self._backend_tilings: dict[int, ModelTiling] = {}
        self.network_turn = threading.RLock()
        """Held while the network loads and runs: images predicted side by side (a folder's,
        :mod:`deepij.pipeline.batch_overlap`) take turns there, one pass at a time with all the cores, while
        their reading and ImageJ steps go on beside it; loading and planning are measured alone."""
        self.token = uuid.uuid4().hex
        """Names this loaded model in every process: Dask tasks carry it to find the model again, and a copy
        loaded in a worker takes the same token (:mod:`deepij.pipeline.model_ref`)."""

    @property
    def name(self) -> str:
        return self.description.name

    @property
    def tiling(self) -> ModelTiling:
        """How the model can be tiled (:func:`deepij.inference.tiling.analyse_tiling`)."""
        if self._tiling is None:
            from deepij.inference.tiling import analyse_tiling

            self._tiling = analyse_tiling(self.instance_plan.network)
        return self._tiling

    def tiling_for(self, backend: Backend) -> ModelTiling:
        """How ``backend``'s network can be tiled: the rules of the description it runs under.

        They can allow more than the bundle's: an ONNX graph whose fixed dims were relaxed (and verified)
        takes other sizes than the one its descriptor pins (see
        :mod:`deepij.inference.backends.onnx_relax`), so tiles and memory are planned with them.
        """
        if backend.description is self.instance_plan.network:
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
                self.instance_plan.network,
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
        self.measurements.clear()
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
        instances: str = "auto",
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
            ``256``); each must be ``min + k*step``, and at most three times the image (or the one pass
            holding it). None follows the zoo's convention (:mod:`deepij.pipeline.planning`): an image of
            a valid size runs in one pass as it is when that fits in memory (tiles inside the image where
            one pass would be slower on a CPU and the network's measured reach is within its halo, or where
            it does not fit), so a bundle's own test input gives its test output; an image of another size
            is mirror-padded as deepImageJ does. ``"suggested"``: deepImageJ's default tile; ``"whole"``:
            one mirror-padded pass; ``"image"``: the image as it is (the outputs of a network with valid
            convolutions, a negative offset, are then smaller than the image by it).
        device : str, optional
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``; None uses a GPU when there is one.
        weights_format : str, optional
            Which of the bundle's weights to run (None: by priority, see :mod:`deepij.inference.backends`).
        max_memory : int or str, optional
            Cap on the memory the run plans to use (outputs and forward passes), e.g. ``"2GB"``.
        axes : str or mapping, optional
            Letters naming the dims of a numpy ``image`` (per input name for several inputs).
        tiling : {"unpadded", "deepimagej", "deepimagej-readback", "blend"}, optional
            Tile layout. None (default): ``"unpadded"`` for an image of valid sizes, else ``"deepimagej"``.
            ``"unpadded"``: tiles inside the image, none padded, overlapping by twice the halo (the border
            is seen as one pass sees it). ``"deepimagej"``: deepImageJ 2.x's grid (the image mirror-padded,
            tiles side by side, the last one pushed back to the border), read back where the image is:
            what deepImageJ's result images and a macro's ``tile=`` mean. ``"deepimagej-readback"``: the
            same with deepImageJ's one-pixel read-back shift on a single tile whose margin is odd, to match
            result images deepImageJ made. ``"blend"``: overlapping tiles blended with linear ramps,
            ``overlap`` pixels (default: the measured receptive radius when it exceeds the declared halo).
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
        precision : {"float32", "float16", "bfloat16", "int8"}
            ``"float16"``: half precision where a GPU runtime runs the model; ``"int8"``: on the CPU, the
            ONNX graph (the bundle's, or torch weights converted) quantized with onnxruntime, calibrated
            on the bundle's test input after its spec pre-processing; ``"bfloat16"``: OpenVINO's bf16
            inference, on CPUs with bfloat16 arithmetic (AMX, ``avx512_bf16``). Each is kept only when a
            probe at load reproduces float32 within the bundle's reproduction tolerance; else float32,
            with a note and a warning saying why (:mod:`deepij.inference.backends.precision`,
            :mod:`deepij.inference.backends.cpu_precision`).
        instances : {"auto", "declared", "none"}
            Outputs that are instances (StarDist, Cellpose, a bundle's ``custom`` op): ``"auto"`` gives the
            label images (and ``<output>_objects`` tables, ``Prediction.instances`` with the polygons), for
            declared ops and for StarDist/Cellpose exporter bundles that declare none; ``"declared"`` only
            for declared ops (recognised bundles give their raw maps, as their test outputs hold them);
            ``"none"``: the network's raw maps (probability and distances, flows). They run with the spec
            ops (``processing="spec"``), on the whole stitched output. See
            :mod:`deepij.processing.instances`.
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
        >>> import deepij
        >>> model = deepij.load("examples/nuclei_bundle")
        >>> result = model.predict("examples/nuclei_bundle/sample_input.tif", tile=128, max_memory="2GB")
        >>> result.images["probability"].sel(b=0, c=0).shape, result.plan.tile
        ((256, 256), {'y': 128, 'x': 128})

        A dask array, a dask-backed DataArray or a Zarr / OME-Zarr path runs lazily (images bigger than
        memory): the outputs are dask arrays, see :mod:`deepij.pipeline.lazy_predict`.
        """
        from deepij.pipeline.lazy_predict import is_lazy_input, predict_lazy

        if is_lazy_input(image):
            _refuse_lazy_instances(self, instances)
            return predict_lazy(
                self, image, processing=processing, session=session, input_title=input_title,
                logging=logging, progress=progress, tile=tile, device=device, weights_format=weights_format,
                max_memory=max_memory, axes=axes, tiling=tiling, overlap=overlap, batch_size=batch_size,
                runtime=runtime, non_finite=non_finite, precision=precision,
            )
        from deepij.pipeline.margins import check_margin
        from deepij.pipeline.planning import RunRequest
        from deepij.pipeline.progress import Reporter
        from deepij.pipeline.sources import read_source
        from deepij.pipeline.steps import Chain
        from deepij.processing.instances import check_mode, run_instances

        mode = check_arguments(tile, tiling, overlap, batch_size, max_memory, non_finite, axes, precision)
        check_mode(instances)
        check_margin(margin)
        request = RunRequest(tile, mode, overlap, batch_size, max_memory, margin)
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
            with self.network_turn:
                backend = self.backend(weights_format, device, runtime, precision)
                self._hold_memory(backend, exact=max_memory is not None)
            run = self._run_network(backend, chain, source, checked, request, non_finite, report.tiles)
            # Instance ops (StarDist NMS, Cellpose dynamics, custom) on the whole stitched outputs.
            found = run_instances(
                self.instance_plan, run.outputs, run.raw, mode=instances if chain.mode == "spec" else "none",
                allow_code=self.allow_code,
            )
            finished = chain.post(found.outputs, run.raw, spec_applied=True)
            prediction = make_prediction(
                self.description, finished.tensors, run.plan, run.batch, backend,
                run.notes + found.notes + chain.notes,
            )
            prediction.tables.update(found.tables)
            prediction.instances = found.instances
            return with_step_outputs(prediction, finished, chain, source.title, self.description)

    def _run_network(
        self,
        backend: Backend,
        chain: Chain,
        source: Any,
        checked: Tensors | None,
        request: RunRequest,
        non_finite: str,
        progress: Callable[..., Any] | None,
    ) -> NetworkRun:
        """The ImageJ pre-processing steps, then the network over the planned tiles with the spec ops
        streamed per tile: the outputs before post-processing, and how they were made."""
        from deepij.inference.runner import run_tiled
        from deepij.pipeline.non_finite import mask_outputs, non_finite_mask
        from deepij.pipeline.planning import plan_run
        from deepij.processing.stream import stream_processing

        notes = list(getattr(backend, "notes", []))
        made = chain.pre(source, backend.weights)  # the ImageJ steps, with the weights' attachments
        raw = checked if checked is not None else self._inputs(made, None, non_finite)
        # Spec ops (and the cast to the declared types) run per tile: no processed copy of the image.
        streamed = stream_processing(
            self.instance_plan.network,
            raw,
            spec_ops=chain.mode == "spec",
            ignore_nan=non_finite == "ignore",
            blend=request.mode == "blend",
        )
        rules = self.tiling_for(backend)
        found = non_finite_mask(rules, self.description, raw) if non_finite == "ignore" else None
        held = streamed.held_bytes + (found.mask.nbytes if found is not None else 0)
        with self.network_turn:
            plan, batch = plan_run(self, backend, streamed.inputs, request, notes, reserved=held)
            outputs = run_tiled(
                backend,
                plan,
                streamed.inputs,
                batch_size=batch,
                progress=progress,
                prepare=streamed.prepare,
                finish=streamed.finish,
            )
        outputs = mask_outputs(streamed.post(outputs), plan, found, notes)
        return NetworkRun(outputs, raw, plan, batch, notes)

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

    def _hold_memory(self, backend: Backend, exact: bool) -> None:
        """Under a memory cap the engine's memory must follow what each pass needs (onnxruntime's arena
        grows by doubling otherwise); without one it keeps its faster pool. A switch rebuilds the engine:
        what was measured on it no longer holds."""
        if backend.hold_memory_exactly(exact):
            self.measurements.forget(backend)

def _refuse_lazy_instances(model: Model, instances: str) -> None:
    """Instance ops need the whole output of an image in memory: a lazy image (dask, Zarr) with any is
    refused, saying what to do."""
    from deepij.errors import ArgumentError
    from deepij.processing.instances import check_mode

    steps = model.instance_plan.chosen(check_mode(instances))
    if steps:
        raise ArgumentError(
            f"image: a lazy image (dask array, Zarr) and instance op {steps[0].op} on output "
            f"{steps[0].output!r}, which needs the whole output in memory (NMS across tiles); expected an "
            "in-memory image (np.asarray(...), a TIFF), or predict(..., instances='none') for the raw maps, "
            "lazily, then deepij.processing.instances on each image"
        )


def _imagej_makes_inputs(chain: Chain) -> bool:
    """Whether ImageJ pre-processing steps make the network's inputs (the image is checked after them)."""
    return chain.mode == "macros" and bool(chain.description.deepimagej.preprocess)


def load(
    source: str | Path, *, allow_code: bool = False, verify: bool = True, **options: object
) -> Model:
    """Read a bundle (folder, descriptor file or zip) into a :class:`Model`.

    ``options`` are passed to :func:`deepij.bundle.open_bundle`; ``allow_code`` lets the bundle's Python
    architecture code run (``pytorch_state_dict`` weights); ``verify=False`` trusts weights files whose
    sha256 differs from the descriptor's (at opening and at loading).

    Examples
    --------
    >>> import deepij
    >>> deepij.load("examples/nuclei_bundle")  # or its rdf.yaml, a zip of it, a URL
    Model('deepij demo nuclei U-Net', format_version='0.5.4')
    """
    import inspect

    from deepij.bundle import open_bundle
    from deepij.errors import ArgumentTypeError

    accepted = [
        name
        for name, p in inspect.signature(open_bundle).parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name not in ("source", "verify", "check")
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ArgumentTypeError(
            f"load: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            "expected " + ", ".join(["allow_code", "verify", *accepted])
        )
    made: list[Model] = []

    def make(description: ModelDescription) -> None:
        # in open_bundle's staging for a zip: a description the model refuses (an instance op's kwargs)
        # leaves no unpacked copy in the cache
        made.append(Model(description, allow_code=allow_code, verify=verify))

    description = open_bundle(source, verify=verify, check=make, **options)
    if made and made[-1].description is description:
        return made[-1]
    return Model(description, allow_code=allow_code, verify=verify)  # a zip's copy, read again in place
