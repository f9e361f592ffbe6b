"""Speed of reading, checking, unpacking and installing bundles.

Figures, one per line, ``name value unit`` (times are the best of ``--repeats`` runs):

- ``open_ms_v0_3|v0_4|v0_5``: ``open_bundle(folder)`` of the test bundles (descriptor parsed and checked,
  weights verified: a file's sha256 is remembered per process while its size and mtime stay, so repeated
  opens do not hash again; the first hash costs what ``sha256_mb_per_s`` says), and
  ``open_noverify_ms_*``; ``write_descriptor_ms``: writing a 0.5 descriptor;
- ``sha256_mb_per_s``: hashing a large weights file (what verifying costs per MB);
- ``extract_mb_per_s``: safe unpacking of a large zip (checks included);
- ``open_zip_first_ms`` / ``open_zip_again_ms``: opening a bundle zip (unpacked into the cache the first
  time, found there after; the zip is hashed each time to find its copy);
- ``install_http_mb_per_s``: ``install(url)`` of a bundle zip from a local HTTP server, download, checks,
  unpacking and sha256 verification of the weights included.

Usage: ``.venv/bin/python benchmarks/bench_bundle.py [--repeats N] [--size-mb M]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def best_of(repeats: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def report(name: str, value: float, unit: str) -> None:
    print(f"{name} {value:.3f} {unit}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=128, help="size of the large weights file and zip")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="deepij-bench-bundle-"))
    os.environ["DEEPIJ_CACHE_DIR"] = str(work / "cache")
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    from deepij.bundle import install, open_bundle, write_descriptor
    from deepij.bundle.archive import extract_zip
    from deepij.bundle.download import file_sha256
    from support.bundles import write_bundle_v0_3, write_bundle_v0_4, write_bundle_v0_5, zip_bundle
    from support.http import LocalServer

    bundles = {
        "v0_3": write_bundle_v0_3(work / "v03"),
        "v0_4": write_bundle_v0_4(work / "v04", weights=("torchscript", "onnx", "pytorch_state_dict")),
        "v0_5": write_bundle_v0_5(work / "v05", weights=("torchscript", "pytorch_state_dict")),
    }
    for key, bundle in bundles.items():
        report(f"open_ms_{key}", 1000 * best_of(args.repeats, lambda b=bundle: open_bundle(b.folder)), "ms")
        seconds = best_of(args.repeats, lambda b=bundle: open_bundle(b.folder, verify=False))
        report(f"open_noverify_ms_{key}", 1000 * seconds, "ms")
    description = open_bundle(bundles["v0_5"].folder)
    seconds = best_of(args.repeats, lambda: write_descriptor(description, work / "written.yaml"))
    report("write_descriptor_ms", 1000 * seconds, "ms")

    big = work / "big_weights.bin"
    with open(big, "wb") as stream:
        for _ in range(args.size_mb):
            stream.write(os.urandom(1 << 20))
    report(
        "sha256_mb_per_s", args.size_mb / best_of(max(1, args.repeats // 2), lambda: file_sha256(big)), "MB/s"
    )

    archive = work / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(big, "variables/variables.data-00000-of-00001")
        zf.writestr("saved_model.pb", b"\x00" * 1024)
    counter = iter(range(1000))
    seconds = best_of(
        max(1, args.repeats // 2), lambda: extract_zip(archive, work / f"unpacked{next(counter)}")
    )
    report("extract_mb_per_s", args.size_mb / seconds, "MB/s")

    bundle_zip = zip_bundle(bundles["v0_4"].folder, work / "bundle.zip")
    start = time.perf_counter()
    open_bundle(bundle_zip)
    report("open_zip_first_ms", 1000 * (time.perf_counter() - start), "ms")
    report("open_zip_again_ms", 1000 * best_of(args.repeats, lambda: open_bundle(bundle_zip)), "ms")

    heavy = work / "heavy"
    write_bundle_v0_5(heavy)
    (heavy / "attachment.bin").write_bytes(big.read_bytes())
    heavy_zip = zip_bundle(heavy, work / "heavy.zip")
    megabytes = heavy_zip.stat().st_size / (1 << 20)
    with LocalServer({"/heavy.zip": heavy_zip.read_bytes()}) as server:
        start = time.perf_counter()
        install(server.url("/heavy.zip"), models_dir=work / "models")
        report("install_http_mb_per_s", megabytes / (time.perf_counter() - start), "MB/s")
    report("install_zip_mb", megabytes, "MB")


if __name__ == "__main__":
    main()
