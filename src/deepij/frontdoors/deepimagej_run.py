"""``run("DeepImageJ Run", "...")`` in users' macros, served by deepij with the model kept loaded.

:func:`install` registers the command on an ImageJ session; every ``deepij.imagej()`` session has it (the
session start runs the hooks of :data:`deepij.SESSION_HOOKS`, which names this module's :func:`install`;
the ``imagej`` package itself never imports the front doors). The command:

1. reads its options in any of the three dialects (:mod:`deepij.frontdoors.run_options`);
2. finds the model: ``model_path=`` as given, or ``model=NAME`` by descriptor name then folder name in
   ``models_dir=``/``model_dir=``, else ``$DEEPIJ_MODELS_DIR`` (or ``~/.deepij/models``), then ImageJ's own
   ``models/`` folder, as deepImageJ looks in ``<ImageJ>/models``;
3. takes the model from a small cache (folder + weights format), so only the first call loads it;
4. runs the pipeline on the macro's current image (3.1: on each file of ``input_path=``, writing into
   ``output_folder=``) and leaves the outputs where the next macro lines look for them: images titled
   ``<model name>_<output name>_<input title>``, tables as ResultsTables.

Examples
--------
The demo bundle, installed into a models folder, run by name on its sample image:

>>> import tempfile
>>> import tifffile
>>> import deepij
>>> models = tempfile.mkdtemp()
>>> _ = deepij.install("examples/nuclei_bundle", models_dir=models)
>>> nuclei = tifffile.imread("examples/nuclei_bundle/sample_input.tif")
>>> result = deepij.imagej().run_macro(
...     f'run("DeepImageJ Run", "model=[deepij demo nuclei U-Net] models_dir=[{models}] format=Pytorch '
...     'preprocessing=[no preprocessing] postprocessing=[no postprocessing] axes=C,Y,X tile=1,256,256 '
...     'logging=normal");', image=nuclei)
>>> sorted(result.images)
['deepij demo nuclei U-Net_probability_image', 'image']
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepij.errors import ArgumentError, InputError, ModelNotFoundError
from deepij.frontdoors.run_options import RunRequest, parse_run_options

if TYPE_CHECKING:
    from collections.abc import Callable

    from deepij.imagej.commands import CommandCall
    from deepij.imagej.session import Session
    from deepij.pipeline import Model, Prediction
    from deepij.pipeline.progress import ProgressEvent

COMMAND = "DeepImageJ Run"


# --- finding the model -----------------------------------------------------------------------------------


def model_folders(
    request: RunRequest, imagej_dir: str | Path | None = None, models_dir: str | Path | None = None
) -> list[Path]:
    """The folders ``model=NAME`` is looked up in, in order.

    ``models_dir=``/``model_dir=`` when given (alone); else ``models_dir`` (the caller's, e.g.
    ``deepij macro --models-dir``), ``$DEEPIJ_MODELS_DIR`` (or ``~/.deepij/models``), then
    ``<imagej_dir>/models``.

    Examples
    --------
    >>> model_folders(parse_run_options("model=a models_dir=/opt/Fiji.app/models"))
    [PosixPath('/opt/Fiji.app/models')]
    """
    from deepij.bundle.locations import default_models_dir, models_dir_from

    if request.models_dir is not None:
        return [models_dir_from(request.models_dir)]
    folders = [models_dir_from(models_dir)] if models_dir is not None else []
    folders.append(default_models_dir())
    if imagej_dir is not None:
        folders.append(models_dir_from(Path(imagej_dir) / "models"))
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def find_run_model(
    request: RunRequest, imagej_dir: str | Path | None = None, models_dir: str | Path | None = None
) -> Path:
    """The bundle a request names (folder, descriptor or zip), looked up in :func:`model_folders`.

    Raises
    ------
    ModelNotFoundError
        No model of that name in any of the folders (the message lists them and what is installed there),
        or a ``model_path=`` that does not exist.
    ArgumentError
        ``model=`` and ``model_path=`` name different models.

    Examples
    --------
    >>> import tempfile
    >>> import deepij
    >>> models = tempfile.mkdtemp()
    >>> installed = deepij.install("examples/nuclei_bundle", models_dir=models)
    >>> found = find_run_model(parse_run_options("model=[deepij demo nuclei U-Net]"), models_dir=models)
    >>> found == installed, found.name
    (True, 'nuclei_bundle')
    """
    if request.model_path is not None:
        path = request.model_path
        if not path.exists():
            raise ModelNotFoundError(f"model_path={path}: no such file or folder (expected a bundle folder, "
                                     "its descriptor or a bundle zip)")
        if request.model is not None:
            _check_same_model(request.model, path)
        return path
    assert request.model is not None
    if request.models_dir is not None and _is_bundle_folder(request.models_dir):
        _check_same_model(request.model, request.models_dir)
        return request.models_dir  # model_dir= naming the bundle folder itself
    from deepij.bundle.lookup import find_model

    failures = []
    for folder in model_folders(request, imagej_dir, models_dir):
        if not folder.is_dir():
            failures.append(f"{folder} (no such folder)")
            continue
        try:
            return find_model(request.model, folder)
        except ModelNotFoundError as error:
            failures.append(str(error))
    raise ModelNotFoundError(f"model=[{request.model}]: not found; looked in " + "; ".join(failures))


def _is_bundle_folder(folder: Path) -> bool:
    from deepij.bundle.locations import find_descriptor
    from deepij.errors import BundleError

    try:
        find_descriptor(folder)
    except BundleError:
        return False
    return True


def _check_same_model(name: str, path: Path) -> None:
    from deepij.bundle.lookup import installed_models
    from deepij.bundle.readers.common import strip_quotes

    folder = path if path.is_dir() else path.parent
    labels = {folder.name.casefold()}
    labels |= {m.name.casefold() for m in installed_models(folder.parent) if m.folder == folder and m.name}
    if strip_quotes(name).strip().casefold() not in labels:
        raise ArgumentError(
            f"model=[{name}] and model_path={path} name different models (the bundle there is called "
            f"{' or '.join(sorted(labels))}); expected one of them, or both naming the same model"
        )


# --- keeping models loaded ---------------------------------------------------------------------------------


class ModelCache:
    """Loaded models by bundle and weights format, the least recently used dropped beyond ``size``.

    The key includes the descriptor's modification time, so a bundle installed again is read again.

    Examples
    --------
    >>> cache = ModelCache(size=2)
    >>> model = cache.get("examples/nuclei_bundle", "torchscript")
    >>> cache.get("examples/nuclei_bundle", "torchscript") is model
    True
    """

    def __init__(self, size: int = 4) -> None:
        if not isinstance(size, int) or size < 1:
            raise ArgumentError(f"size: expected a number of models >= 1, found {size!r}")
        self.size = size
        self._models: OrderedDict[tuple[str, str | None, int], Model] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, source: str | Path, weights_format: str | None = None) -> Model:
        """The model of ``source`` (loaded on first use) for ``weights_format``."""
        import deepij

        key = self._key(Path(source), weights_format)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        model = deepij.load(source)
        with self._lock:
            self._models[key] = model
            while len(self._models) > self.size:
                _, dropped = self._models.popitem(last=False)
                dropped.close()
        return model

    def clear(self) -> None:
        """Release every loaded model."""
        with self._lock:
            models, self._models = list(self._models.values()), OrderedDict()
        for model in models:
            model.close()

    def __len__(self) -> int:
        return len(self._models)

    @staticmethod
    def _key(source: Path, weights_format: str | None) -> tuple[str, str | None, int]:
        resolved = source.expanduser().resolve()
        stamp_of = resolved
        if resolved.is_dir():
            from deepij.bundle.locations import find_descriptor

            stamp_of = find_descriptor(resolved)
        stamp = stamp_of.stat().st_mtime_ns if stamp_of.exists() else 0
        return str(resolved), weights_format, stamp


# --- the command ------------------------------------------------------------------------------------------


def processing_for(request: RunRequest, model: Model) -> str:
    """The ``processing=`` of :meth:`Model.predict` that does what the call's ``preprocessing=`` and
    ``postprocessing=`` ask.

    Named files run the bundle's ImageJ steps (``"macros"``; the names must be the bundle's own steps);
    ``[no preprocessing]`` and ``[no postprocessing]`` on a bundle whose processing is ImageJ steps run
    none (``"none"``); otherwise the bundle's own processing (``"auto"``: ImageJ steps when it has them, else
    its spec ops).

    Raises
    ------
    ArgumentError
        Files the bundle does not declare, or one side named and the other refused while the bundle has steps
        on both (deepij runs a bundle's ImageJ steps as one chain).
    """
    config = model.description.deepimagej
    declared = {"preprocessing": config.preprocess, "postprocessing": config.postprocess}
    asked = {"preprocessing": request.preprocessing, "postprocessing": request.postprocessing}
    for side, files in asked.items():
        steps = [Path(step.file).name for step in declared[side]]
        unknown = [f for f in files or () if Path(f).name not in steps]
        if unknown:
            raise ArgumentError(
                f"{side}=[{', '.join(files or ())}]: {', '.join(unknown)} is not a {side} step of "
                f"{model.name!r} (expected {', '.join(steps) or f'[no {side}]'})"
            )
    named = {side for side, files in asked.items() if files}
    refused = {side for side, files in asked.items() if files == () and declared[side]}
    if named and refused:
        side = sorted(refused)[0]
        raise ArgumentError(
            f"{side}=[no {side}]: {model.name!r} runs its ImageJ steps as one chain; expected its {side} "
            f"files too ({', '.join(s.file for s in declared[side])}), or no processing at all"
        )
    if named:
        return "macros"
    if refused:
        return "none"
    return "auto"


class DeepImageJRun:
    """The handler of ``run("DeepImageJ Run", ...)``: one per session, holding the loaded models.

    Parameters
    ----------
    models : ModelCache, optional
        Where loaded models are kept (default: a cache of 4).

    Attributes
    ----------
    models_dir : Path or None
        A models folder searched before the default ones (calls with ``models_dir=`` search only theirs).
    """

    def __init__(self, models: ModelCache | None = None) -> None:
        self.models = models if models is not None else ModelCache()
        self.models_dir: Path | None = None

    def __call__(self, call: CommandCall) -> None:
        # what it raises (a bad option, no image) stops the macro as a MacroError at the calling line
        self.run(call)

    def run(self, call: CommandCall) -> None:
        """What ``run("DeepImageJ Run", options)`` does (see the module docstring)."""
        request = parse_run_options(call.options)
        source = find_run_model(request, _imagej_dir(call.session), self.models_dir)
        model = self.models.get(source, request.weights_format)
        if request.input_path is not None:
            self._run_on_files(call, request, model)
            return
        imp = call.image
        if imp is None:
            raise InputError(
                "there is no image open (expected the image to process open and selected; "
                "or input_path= in the 3.1 syntax)"
            )
        title = str(imp.getTitle())
        prediction = self.predict(model, imp, request, call.session, title)
        if request.display_output is not False:
            prediction.show(call.session, input_title=title)
        if request.output_folder is not None:
            _save(prediction, request.output_folder, title)

    def predict(
        self,
        model: Model,
        image: Any,
        request: RunRequest,
        session: Session | None,
        title: str,
        *,
        processing: str | None = None,
        progress: Callable[[ProgressEvent], Any] | None = None,
    ) -> Prediction:
        """Run ``model`` on ``image`` as ``request`` asks (tile, weights, processing, logging, margin).

        ``processing`` overrides what the request's ``preprocessing=``/``postprocessing=`` choose
        (:func:`processing_for`): the worker of a user's ImageJ (:mod:`deepij.frontdoors.serve_run`) runs
        the network part only, the ImageJ steps having run there. ``progress`` is
        :meth:`Model.predict`'s.

        Tile sizes on axes the model does not tile (``C`` in ``tile=1,256,256``) are informative, as in
        deepImageJ. 1.x's ``overlap=`` is the margin cut from each side of every patch: when it is more than
        the bundle's declared halo, the tiles keep that margin (``margin=`` of :meth:`Model.predict`); the
        Prediction's notes say which margin was used.

        Raises
        ------
        ArgumentError
            ``overlap=`` that leaves nothing of a patch (``patch=``/``tile=``, or the model's fixed size).
        """
        from deepij.errors import TilingError

        tile = request.tile_sizes(model.description.inputs[0].axes_str)
        if tile is not None:
            tiled = set(model.tiling.axes)
            tile = {axis: size for axis, size in tile.items() if axis in tiled}
        overlap = request.overlap
        if overlap is not None and tile and model.tiling.tileable:
            small = {axis: size for axis, size in tile.items() if size <= 2 * overlap}
            if small:
                axis, size = next(iter(small.items()))
                raise ArgumentError(
                    f"overlap={overlap}: a margin of {overlap} pixels on each side leaves nothing of the "
                    f"{size}-pixel patch along {axis}; expected overlap < {(size + 1) // 2} or a larger patch"
                )
        try:
            prediction = model.predict(
                image,
                tile=tile or None,
                # a tile= in a macro asks for deepImageJ's tiles (mirror-padded, FORMATS.md section 6)
                tiling="deepimagej" if tile else None,
                weights_format=request.weights_format,
                processing=processing if processing is not None else processing_for(request, model),
                session=session,
                progress=progress,
                input_title=title,
                logging=request.logging,
                margin=overlap,
            )
        except TilingError as error:
            if overlap is not None and str(error).startswith("margin:"):
                raise ArgumentError(f"overlap={overlap}: {str(error).removeprefix('margin: ')}") from error
            raise
        if overlap is not None:
            prediction.notes.append(f"overlap={overlap} (deepImageJ 1.x) was taken as the tiles' margin")
        return prediction

    def _run_on_files(self, call: CommandCall, request: RunRequest, model: Model) -> None:
        from deepij.pipeline.batch import image_files

        assert request.input_path is not None
        files = image_files(request.input_path)
        if request.output_folder is None and request.display_output is False:
            raise ArgumentError(
                f"{COMMAND}: input_path={request.input_path} with display_output=false and no output_folder= "
                "would keep nothing (expected output_folder=FOLDER or display_output=true)"
            )
        _check_files(files, request.input_path)
        for path in files:
            title = path.name
            prediction = self.predict(model, path, request, call.session, title)
            if request.output_folder is not None:
                _save(prediction, request.output_folder, title)
            if request.display_output:
                prediction.show(call.session, input_title=title)


def _check_files(files: list[Path], input_path: Path) -> None:
    """Refuse the whole call, before any file runs, when some file of ``input_path=`` cannot be read.

    The check of ``deepij run`` (:func:`~deepij.pipeline.image_files.check_image_file`): a truncated TIFF
    is refused rather than run with zeros where its missing rows would be, and no output of the call is
    left half made.
    """
    from deepij.pipeline.image_files import check_image_file

    problems = []
    for path in files:
        try:
            check_image_file(path)
        except InputError as error:
            problems.append(str(error))
    if problems:
        raise InputError(
            f"input_path={input_path}: {len(problems)} of {len(files)} files cannot be read, so none was "
            "run (expected every file to be an image; remove or replace these): " + "; ".join(problems)
        )


def _save(prediction: Prediction, folder: Path, input_title: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return prediction.save(folder, prefix=Path(input_title).stem)


def _imagej_dir(session: Session) -> str | None:
    """ImageJ's installation folder (Fiji.app), whose ``models/`` deepImageJ reads."""
    if getattr(session, "fiji_dir", None) is not None:
        return str(session.fiji_dir)
    try:
        from deepij.imagej._java import jc

        folder = jc.IJ.getDirectory("imagej")
    except Exception:  # no ImageJ folder to offer: the other places are still searched
        return None
    return None if folder is None else str(folder)


def install(session: Session, models: ModelCache | None = None) -> DeepImageJRun:
    """Serve ``run("DeepImageJ Run", ...)`` on ``session`` from now on; returns the handler.

    A second call keeps the handler already installed (and its loaded models).

    Examples
    --------
    >>> import deepij
    >>> handler = install(deepij.imagej())
    >>> install(deepij.imagej()) is handler
    True
    """
    current = session.commands.handlers().get(COMMAND)
    if isinstance(current, DeepImageJRun) and models is None:
        return current
    handler = DeepImageJRun(models)
    session.commands.register(COMMAND, handler)
    return handler
