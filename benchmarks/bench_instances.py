"""Instance segmentation: deepij against the field's own tools with the same network, on a 2048x2048 image
with about 300 objects.

- StarDist: a StarDist2D trained here (tests/support/stardist_bundles.py: 16 rays, grid 2, a small U-Net)
  and the 0.5 bundle its exporter writes (``stardist_postprocessing`` declared). ``deepij_stardist``:
  ``deepij.load(bundle).predict(image)``; ``stardist_own``: stardist's ``predict_instances`` of the same
  model (percentile normalisation 1 / 99.8), its own TensorFlow network and NMS.
- Cellpose: the Cellpose-shaped TorchScript bundle of tests/support/instance_bundles.py (flows and cell
  probability as cellpose's exporter declares them). ``deepij_cellpose``: ``predict``; ``cellpose_own``:
  cellpose's own steps around the same network module (``normalize99``, the network, ``compute_masks``),
  what ``CellposeModel.eval`` does around its network.

Each contender runs in its own process (the contender machinery of _common.py), interleaved rounds, best of
``--repeats``; printed figures (``name value unit``): ``<contender>_s``, ``<contender>_peak_rss_mb``, the
post-processing's share of one run (``<contender>_post_s`` and ``_post_share``: the NMS and rasterisation,
or the flow dynamics), the ratios deepij / own, and how far the two label images agree
(``*_label_agreement``: the fraction of pixels with the same label; ``*_objects``: counts).

Usage: ``.venv/bin/python benchmarks/bench_instances.py [--size 2048] [--objects 300] [--repeats 3]
[--only stardist|cellpose] [--epochs 12]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import _common as common  # the benchmarks' shared parts, next to this file (on sys.path when it runs)
import numpy as np

NOTE_SECONDS = re.compile(r"^instances: .*, ([0-9.]+) s$")


# --- preparing ----------------------------------------------------------------------------------------------


def prepare_stardist(workdir: Path, size: int, objects: int, epochs: int = 12) -> None:
    """Train the model (``epochs`` of 16 steps: longer than the tests train it, so that it finds most
    objects), write its 0.5 bundle, the image (disks of radius 4-7 on noise)."""
    from support.stardist_bundles import blob_image, train_tiny_stardist, write_stardist_v0_5

    model = train_tiny_stardist(workdir / "stardist_model", epochs=epochs, steps=16)
    image, _ = blob_image(size, objects=objects, seed=7)
    np.save(workdir / "stardist_image.npy", image)
    write_stardist_v0_5(model, workdir / "stardist_bundle", blob_image(128, objects=20, seed=99)[0])


def prepare_cellpose(workdir: Path, size: int, objects: int) -> None:
    """The bundle, and disks of 1.0 on 0 (radius 8-14, apart): what the Cellpose-shaped network takes. They
    cover more than 1 % of the image, so cellpose's ``normalize99`` (1st and 99th percentiles: 0 and 1)
    leaves the image as it is and both contenders see the same input."""
    from skimage.draw import disk

    from support.instance_bundles import write_cellpose_exporter_bundle

    write_cellpose_exporter_bundle(workdir / "cellpose_bundle")
    rng = np.random.default_rng(8)
    disks = np.zeros((size, size), np.float32)
    drawn = 0
    for _ in range(objects * 20):
        radius = int(rng.integers(8, 15))
        centre = rng.integers(radius + 2, size - radius - 2, 2)
        rr, cc = disk((int(centre[0]), int(centre[1])), radius + 3, shape=disks.shape)
        if disks[rr, cc].any():
            continue
        disks[disk((int(centre[0]), int(centre[1])), radius, shape=disks.shape)] = 1.0
        drawn += 1
        if drawn == objects:
            break
    np.save(workdir / "cellpose_image.npy", np.stack([disks, np.zeros_like(disks)], axis=-1))


# --- workers ------------------------------------------------------------------------------------------------


def worker_deepij(workdir: Path, kind: str) -> None:
    image = np.load(workdir / f"{kind}_image.npy")
    state: dict[str, object] = {}

    def load() -> Callable[[], object]:
        import deepij

        model = deepij.load(workdir / f"{kind}_bundle")
        axes = "yxc" if kind == "cellpose" else "yx"

        def run() -> None:
            result = model.predict(image, axes=axes, logging="mute")
            state["result"] = result
            for note in result.notes:  # the instance op's own time, as run_instances notes it
                match = NOTE_SECONDS.match(note)
                if match:
                    state["post"] = min(float(match.group(1)), float(state.get("post", np.inf)))  # type: ignore[arg-type]

        return run

    def finish() -> None:
        result = state["result"]
        labels = next(iter(result.images.values()))  # type: ignore[attr-defined]
        np.save(workdir / f"{kind}_labels_deepij.npy", np.asarray(labels).reshape(image.shape[:2]))
        common.emit(f"deepij_{kind}_post_s", float(state["post"]), "s")  # type: ignore[arg-type]

    common.serve(f"deepij_{kind}", load, finish)


def worker_stardist_own(workdir: Path) -> None:
    image = np.load(workdir / "stardist_image.npy")
    state: dict[str, object] = {}

    def load() -> Callable[[], object]:
        from csbdeep.data import PercentileNormalizer
        from stardist.models import StarDist2D

        model = StarDist2D(None, name="tiny", basedir=str(workdir / "stardist_model"))
        # the thresholds the bundle was written with (train_tiny_stardist sets them; they are not saved)
        model.thresholds = _bundle_thresholds(workdir / "stardist_bundle" / "rdf.yaml")
        normalizer = PercentileNormalizer(1, 99.8, do_after=False)
        state["model"] = model

        def run() -> None:
            state["labels"] = model.predict_instances(image, axes="YX", normalizer=normalizer)[0]

        return run

    def finish() -> None:
        import stardist
        from csbdeep.utils import normalize

        model = state["model"]
        np.save(workdir / "stardist_labels_own.npy", state["labels"])
        prob, dist = model.predict(normalize(image, 1, 99.8))  # type: ignore[attr-defined]

        def post() -> None:  # the NMS and rasterisation predict_instances runs after the network
            points, probi, disti = stardist.non_maximum_suppression(
                dist, prob, grid=model.config.grid, prob_thresh=model.thresholds.prob,  # type: ignore[attr-defined]
                nms_thresh=model.thresholds.nms,  # type: ignore[attr-defined]
            )
            stardist.polygons_to_label(disti, points, prob=probi, shape=image.shape)

        common.emit("stardist_own_post_s", common.best_time(post, 3), "s")

    common.serve("stardist_own", load, finish)


def _bundle_thresholds(descriptor: Path) -> dict[str, float]:
    import yaml

    kwargs = yaml.safe_load(descriptor.read_text())["outputs"][0]["postprocessing"][0]["kwargs"]
    return {"prob": float(kwargs["prob_threshold"]), "nms": float(kwargs["nms_threshold"])}


def worker_cellpose_own(workdir: Path) -> None:
    image = np.load(workdir / "cellpose_image.npy")
    state: dict[str, object] = {}

    def load() -> Callable[[], object]:
        import torch
        from cellpose import dynamics, transforms

        from support.instance_bundles import flow_module

        module = flow_module().eval()

        def run() -> None:
            x = np.stack([transforms.normalize99(image[..., k]) for k in range(image.shape[-1])])
            with torch.inference_mode():
                flow = module(torch.from_numpy(x[None].copy()))[0][0].numpy()
            started = time.perf_counter()
            masks = dynamics.compute_masks(flow[:2], flow[2], niter=200, cellprob_threshold=0.0,
                                           flow_threshold=0.4, min_size=15)
            post = time.perf_counter() - started
            state["post"] = min(post, float(state.get("post", np.inf)))  # type: ignore[arg-type]
            state["labels"] = masks[0] if isinstance(masks, tuple) else masks

        return run

    def finish() -> None:
        np.save(workdir / "cellpose_labels_own.npy", state["labels"])
        common.emit("cellpose_own_post_s", float(state["post"]), "s")  # type: ignore[arg-type]

    common.serve("cellpose_own", load, finish)


# --- the driver ---------------------------------------------------------------------------------------------


def agreement(workdir: Path, kind: str, own: str) -> None:
    ours = np.load(workdir / f"{kind}_labels_deepij.npy")
    theirs = np.load(workdir / f"{kind}_labels_{own}.npy")
    common.emit(f"{kind}_label_agreement", float(np.mean(ours == theirs)), "1")
    common.emit(f"{kind}_deepij_objects", float(len(np.unique(ours)) - 1), "objects")
    common.emit(f"{kind}_own_objects", float(len(np.unique(theirs)) - 1), "objects")


def shares(figures: dict[str, float]) -> None:
    for name in ("deepij_stardist", "stardist_own", "deepij_cellpose", "cellpose_own"):
        if figures.get(f"{name}_post_s") and figures.get(f"{name}_s"):
            common.emit(f"{name}_post_share", figures[f"{name}_post_s"] / figures[f"{name}_s"], "1")
    for kind, own in (("stardist", "stardist_own"), ("cellpose", "cellpose_own")):
        for what, unit in (("s", "x"), ("peak_rss_mb", "x")):
            ours, theirs = figures.get(f"deepij_{kind}_{what}"), figures.get(f"{own}_{what}")
            if ours and theirs:
                common.emit(f"{kind}_deepij_vs_own_{what}", ours / theirs, unit)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("stardist", "cellpose"))
    parser.add_argument("--epochs", type=int, default=12, help="training epochs of the StarDist model")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    workers = {
        "prepare_stardist": lambda: prepare_stardist(args.workdir, args.size, args.objects, args.epochs),
        "prepare_cellpose": lambda: prepare_cellpose(args.workdir, args.size, args.objects),
        "deepij_stardist": lambda: worker_deepij(args.workdir, "stardist"),
        "stardist_own": lambda: worker_stardist_own(args.workdir),
        "deepij_cellpose": lambda: worker_deepij(args.workdir, "cellpose"),
        "cellpose_own": lambda: worker_cellpose_own(args.workdir),
    }
    if args.worker:
        workers[args.worker]()
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="deepij-instances-"))
    try:
        print(f"# image {args.size}x{args.size}, ~{args.objects} objects, {os.cpu_count()} cpus, load "
              f"{os.getloadavg()}", flush=True)
        kinds = [args.only] if args.only else ["stardist", "cellpose"]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        me = [sys.executable, str(Path(__file__).resolve()), "--workdir", str(workdir), "--worker"]
        figures: dict[str, float] = {}
        for kind in kinds:
            # in a child: the contenders' peak memory (ru_maxrss) starts from their parent's, kept small
            size = ["--size", str(args.size), "--objects", str(args.objects), "--epochs", str(args.epochs)]
            subprocess.run([*me[:-1], *size, "--worker", f"prepare_{kind}"], env=env, check=True,
                           capture_output=True)
            own = f"{kind}_own"
            plan = [(f"deepij_{kind}", [*me, f"deepij_{kind}"], env), (own, [*me, own], env)]
            figures.update(common.run_rounds(plan, workdir, args.repeats))
            agreement(workdir, kind, "own")
        shares(figures)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
