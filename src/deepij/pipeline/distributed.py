"""Many images across Dask workers: ``deepij.run_many(model, files, output, client=...)`` and
``deepij run --workers N`` / ``--scheduler ADDRESS``.

Each worker process loads the network once and keeps it (:class:`ModelWorker`, a Dask ``WorkerPlugin``;
tasks find the loaded model through a :class:`ModelRef`), and starts its own ImageJ only when the bundle
runs ImageJ steps (one JVM per process, started by the first such image). Threads are shared out so that
N workers do not oversubscribe the cores: one Dask thread per worker, and ``cores // N`` threads for the
framework (``OMP_NUM_THREADS`` and friends, torch's and onnxruntime's intra-op threads).

The guarantees are :func:`deepij.pipeline.batch.run_batch`'s: outputs written atomically with a completion
marker last, ``resume=True`` skips what an earlier run finished, one bad image is reported and skipped, a
summary at the end. A worker that dies mid-image (killed, out of memory) loses nothing: Dask runs its task
again on another worker; the image's files are complete or absent (temporary name, then rename), always
under the same names, so an image is never written twice or half; what a dead worker of this host left
half-written is removed at the end (a worker's temporaries on another host stay: nobody here can tell that
their process is gone).

Examples
--------
The demo bundle on a folder of two images, on a cluster of one worker thread (``LocalCluster(n_workers=4)``
makes four worker processes instead):

>>> import shutil
>>> import tempfile
>>> from pathlib import Path
>>> from dask.distributed import Client, LocalCluster
>>> import deepij
>>> images = Path(tempfile.mkdtemp())
>>> for name in ("exampleImage.tif", "sample_input.tif"):
...     _ = shutil.copy(f"examples/nuclei_bundle/{name}", images)
>>> with Client(LocalCluster(n_workers=1, processes=False, dashboard_address=None)) as client:
...     report = deepij.run_many(deepij.load("examples/nuclei_bundle"), images, images / "out",
...                              client=client, processing="spec", progress=False)
>>> print(report.summary().splitlines()[-1])
2 images: 2 done, 0 already done, 0 failed
>>> sorted(path.name for path in (images / "out").glob("*.tif"))
['exampleImage_probability.tif', 'sample_input_probability.tif']
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from distributed.diagnostics.plugin import WorkerPlugin

from deepij.errors import ArgumentError
from deepij.pipeline.model_ref import LOADED, LOADING, BackendRef, ModelRef

if TYPE_CHECKING:
    from deepij.pipeline.batch import BatchReport, ImageJob, ImageOutcome
    from deepij.pipeline.model import Model

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
"""Environment variables that cap the frameworks' threads in a worker process."""
CONNECT_TIMEOUT = 10
"""Seconds to reach a Dask scheduler given by address (``--scheduler``) before saying it does not answer."""

def framework_threads(workers: int, cores: int | None = None) -> int:
    """Framework threads per worker so that ``workers`` processes share the cores without oversubscribing.

    Examples
    --------
    >>> framework_threads(2, cores=16), framework_threads(4, cores=2)
    (8, 1)
    """
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


class ModelWorker(WorkerPlugin):
    """A Dask worker plugin: caps the frameworks' threads, loads the network once and keeps it.

    Parameters
    ----------
    backend : BackendRef
        The network to load (the model, weights, device, runtime).
    threads : int
        Framework threads for this worker (:func:`framework_threads`).
    """

    name = "deepij-model"

    def __init__(self, backend: BackendRef, threads: int) -> None:
        self.backend = backend
        self.threads = threads

    def setup(self, worker: Any = None) -> None:
        for variable in THREAD_VARIABLES:
            os.environ[variable] = str(self.threads)
        model = self.backend.model.model()
        wanted = self.backend
        model.backend(
            wanted.weights_format, wanted.device, wanted.runtime, wanted.precision, threads=self.threads
        )
        if "torch" in sys.modules:  # torch's thread count is process-wide
            from deepij.inference.backends.torch_runner import set_threads

            set_threads(self.threads)

    def teardown(self, worker: Any = None) -> None:
        with LOADING:
            model = LOADED.pop(self.backend.model.token, None)
        if model is not None:
            model.close()


# --- running images on workers --------------------------------------------------------------------------


def run_many(
    model: Model,
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    progress: bool | None = None,
    on_image: Callable[[ImageOutcome], None] | None = None,
    **predict_options: Any,
) -> BatchReport:
    """Run ``model`` on each image on Dask workers and save its outputs into ``output``.

    Parameters
    ----------
    model : Model
        A loaded model; each worker loads its own copy once (from the same bundle).
    inputs, output, resume, progress, on_image, **predict_options
        As for :func:`deepij.pipeline.batch.run_batch`.
    client : dask.distributed.Client, optional
        The cluster to use. Otherwise ``scheduler`` (the address of a running scheduler) or a local
        cluster of ``workers`` processes is started for the run and closed after it.
    workers : int, optional
        Worker processes of the local cluster (default: one per core).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``).

    Returns
    -------
    BatchReport
        One outcome per image, in the order of the inputs; ``summary()``, ``exit_code``.

    Raises
    ------
    ArgumentError
        No input image, an output folder that cannot be made or written, ``client`` with
        ``workers``/``scheduler``, or a ``scheduler`` address where no scheduler answers (:func:`connect`).
    """
    from deepij.pipeline.batch import (
        BatchReport,
        earlier_outcome,
        progress_bar,
        remove_leftovers,
        start_batch,
        tell,
    )

    if client is not None and (workers is not None or scheduler is not None):
        raise ArgumentError("client: give a client, or workers=/scheduler= to make one, not both")
    jobs, folder = start_batch(model, inputs, output, predict_options)
    outcomes: dict[Path, ImageOutcome] = {}
    claimed: dict[str, Path] = {}
    todo = []
    for planned in jobs:
        done, job = earlier_outcome(planned, model) if resume else (None, planned)
        if done is not None:
            outcomes[job.source] = _claimed(done, claimed)
        else:
            todo.append(job)
    with (
        _client(client, workers, scheduler) as (active, count),
        progress_bar(len(jobs), progress) as advance,
    ):
        for job in jobs:
            if job.source in outcomes:
                tell(outcomes[job.source], on_image, advance)
        if todo:
            ref = load_on_workers(active, count, model, predict_options)
            for outcome in _run_on_workers(active, ref.model, todo, predict_options):
                outcomes[outcome.source] = _claimed(outcome, claimed)
                tell(outcomes[outcome.source], on_image, advance)
    remove_leftovers(folder)  # what a killed worker of this host left half-written
    return BatchReport([outcomes[job.source] for job in jobs], folder)


def load_on_workers(client: Any, count: int, model: Model, options: Mapping[str, Any]) -> BackendRef:
    """Have every worker of ``client`` load the network ``options`` (predict's) choose, once, with its
    framework threads capped for ``count`` workers sharing a machine (:class:`ModelWorker`)."""
    ref = BackendRef.of(
        model,
        options.get("weights_format"),
        options.get("device"),
        options.get("runtime", "auto"),
        options.get("precision", "float32"),
    )
    client.register_plugin(ModelWorker(ref, framework_threads(count)), name=ModelWorker.name)
    return ref


def _claimed(outcome: ImageOutcome, claimed: dict[str, Path]) -> ImageOutcome:
    """The outcome, failed when another image of the run wrote a file of the same name (workers write
    independently; the single-process run refuses such a name before writing it)."""
    from dataclasses import replace

    for path in outcome.outputs:
        owner = claimed.setdefault(path.name.casefold(), outcome.source)
        if owner != outcome.source:
            message = (
                f"ArgumentError: output: {path.name!r} was also written by {owner.name!r} in this run (one "
                "of the two is lost; expected names unique in the run): rename one of the two images"
            )
            return replace(outcome, status="failed", error=message, outputs=[])
    return outcome


def _run_on_workers(
    client: Any, ref: ModelRef, jobs: Sequence[ImageJob], options: Mapping[str, Any]
) -> Iterator[ImageOutcome]:
    """Submit one task per image; yield outcomes as they finish (a task lost with its worker runs again
    elsewhere; one that keeps killing workers is reported as failed)."""
    from dask.distributed import as_completed

    from deepij.pipeline.batch import ImageOutcome

    token = uuid.uuid4().hex[:8]
    futures = {
        client.submit(run_image, ref, job, dict(options), key=f"deepij-image-{i}-{token}", pure=False): job
        for i, job in enumerate(jobs)
    }
    for future in as_completed(futures):
        job = futures[future]
        try:
            outcome = future.result()
        except Exception as error:  # the task itself failed (its workers died), not the image
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            outcome = ImageOutcome(job.source, "failed", 0.0, error=message, note=job.note)
        yield outcome


def run_image(ref: ModelRef, job: ImageJob, options: Mapping[str, Any]) -> ImageOutcome:
    """One image on a worker, as :func:`~deepij.pipeline.batch.run_batch` runs it (atomic outputs, its lock
    held, record last); the outcome without the exception object (it may not travel between processes)."""
    from dataclasses import replace

    from deepij.pipeline.batch import run_one_image

    started = time.perf_counter()
    outcome = run_one_image(cast("Model", ref.model()), job, options)
    outcome = replace(outcome, exception=None, seconds=time.perf_counter() - started)
    return outcome


@contextlib.contextmanager
def _client(client: Any, workers: int | None, scheduler: str | None) -> Iterator[tuple[Any, int]]:
    """(the client to use, how many workers share this machine's cores); a cluster made here is closed."""
    if client is not None:
        yield client, _worker_count(client)
        return
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        with connect(scheduler) as remote:
            _say_dashboard(remote)
            yield remote, _worker_count(remote)
        return
    count = workers or os.cpu_count() or 1
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ArgumentError(f"workers: expected a positive number of worker processes, not {workers!r}")
    threads = framework_threads(count)
    env = {variable: str(threads) for variable in THREAD_VARIABLES}
    dashboard = ":0" if _has_bokeh() else None
    with (
        LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            dashboard_address=dashboard,
            env=env,
        ) as cluster,
        Client(cluster) as local,
    ):
        _say_dashboard(local)
        yield local, count


def connect(scheduler: str) -> Any:
    """A ``Client`` of the Dask scheduler at ``scheduler``, or a clear error at once when none answers there.

    A TCP address is tried first with a plain connection: nobody listening is known in milliseconds (Dask's
    own client retries for 30 s); then the client gets :data:`CONNECT_TIMEOUT` seconds to say hello.

    Raises
    ------
    ArgumentError
        Not an address, nothing listening there, or no Dask scheduler answering in time.
    """
    import socket

    from dask.distributed import Client
    from distributed.comm.addressing import parse_address, parse_host_port

    expected = "expected the address of a running Dask scheduler, as `dask scheduler` prints it: tcp://host:8786"
    try:
        protocol, location = parse_address(str(scheduler))
        host, port = parse_host_port(location, 8786) if protocol == "tcp" else (None, None)
    except (ValueError, TypeError) as error:
        raise ArgumentError(f"scheduler: {scheduler!r} is not an address ({error}; {expected})") from None
    if host is not None:
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
        except OSError as error:
            reason = error.strerror or type(error).__name__
            message = f"scheduler: nothing listens at {scheduler!r} ({reason}; {expected})"
            raise ArgumentError(message) from None
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as error:
        raise ArgumentError(
            f"scheduler: no Dask scheduler answered at {scheduler!r} within {CONNECT_TIMEOUT} s ({error}; "
            f"{expected})"
        ) from None


def _worker_count(client: Any) -> int:
    """Workers that share one machine's cores (the most on any one host)."""
    hosts: dict[str, int] = {}
    for address in client.scheduler_info().get("workers", {}):
        host = address.rsplit(":", 1)[0]
        hosts[host] = hosts.get(host, 0) + 1
    return max(hosts.values(), default=1)


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _say_dashboard(client: Any) -> None:
    if _has_bokeh() and getattr(client, "dashboard_link", None):
        print(f"deepij: Dask dashboard at {client.dashboard_link}", file=sys.stderr)


def run_zarr(
    model: Model,
    source: str | Path,
    output: str | Path,
    *,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    **predict_options: Any,
) -> list[Path]:
    """Run ``model`` on a Zarr / OME-Zarr image bigger than memory and write each image output as OME-Zarr,
    chunk by chunk (``deepij run --input big.ome.zarr --output out.ome.zarr``).

    The one image output goes to ``output``; with several, each to ``<output>_<name>.ome.zarr`` next to it
    (:func:`zarr_output_paths`). The tiles run on ``client`` (or a cluster made from ``workers`` /
    ``scheduler``), else on Dask's threads in this process.

    Raises
    ------
    ArgumentError
        An output path that is the input store, lies inside it or holds it, or that exists and is not a
        store deepij wrote (nothing deepij did not write is ever replaced), checked before anything runs;
        a ``scheduler`` where no scheduler answers.

    Examples
    --------
    >>> import tempfile
    >>> import tifffile
    >>> import xarray as xr
    >>> import deepij
    >>> from deepij.pipeline.zarr_io import write_ome_zarr
    >>> folder = tempfile.mkdtemp()
    >>> nuclei = xr.DataArray(tifffile.imread("examples/nuclei_bundle/sample_input.tif"), dims=("y", "x"))
    >>> store = write_ome_zarr(nuclei.chunk(128), f"{folder}/nuclei.ome.zarr")
    >>> written = run_zarr(deepij.load("examples/nuclei_bundle"), store, f"{folder}/out.ome.zarr",
    ...                    processing="spec")
    >>> [path.name for path in written]
    ['out.ome.zarr']
    """
    from deepij.pipeline.zarr_io import check_output_store, write_ome_zarr

    target = Path(output).expanduser()
    check_output_store(target, source=Path(source))  # before anything runs
    context = (
        _client(client, workers, scheduler)
        if client is not None or workers is not None or scheduler is not None
        else contextlib.nullcontext((None, 1))
    )
    with context as (active, count):
        if active is not None:  # before planning: the workers' memory then holds the network
            load_on_workers(active, count, model, predict_options)
        prediction = model.predict(str(source), **predict_options)
        paths = zarr_output_paths(target, list(prediction.images))
        for path in paths.values():
            check_output_store(path, source=Path(source))  # every one, before the first is written
        return [write_ome_zarr(prediction.images[name].rename(name), path) for name, path in paths.items()]


def zarr_output_paths(target: Path, names: Sequence[str]) -> dict[str, Path]:
    """Where each image output of a Zarr run goes: ``target`` for a single one; for several,
    ``<target stem>_<name>.ome.zarr`` beside it, names made unique by
    :func:`~deepij.pipeline.output_names.unique_stems`.

    Examples
    --------
    >>> zarr_output_paths(Path("out.ome.zarr"), ["mask"])
    {'mask': PosixPath('out.ome.zarr')}
    >>> zarr_output_paths(Path("out.ome.zarr"), ["mask", "a/b"])
    {'mask': PosixPath('out_mask.ome.zarr'), 'a/b': PosixPath('out_a_b.ome.zarr')}
    """
    from deepij.pipeline.output_names import unique_stems

    if len(names) == 1:
        return {names[0]: target}
    stem = target.name[: -len(".ome.zarr")] if target.name.endswith(".ome.zarr") else target.stem
    return {name: target.with_name(f"{stem}_{part}.ome.zarr") for name, part in unique_stems(names).items()}
