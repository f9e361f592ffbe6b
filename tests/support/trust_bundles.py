"""Bundles for the ``deepij test`` tests, each one a real bundle of :mod:`support.bundles` with the one thing
wrong with it that real bundles have had:

- :func:`write_altered_output_bundle`: a 0.5 bundle whose test output was changed after it was made (a patch
  of pixels shifted), with the descriptor's sha256 updated to the changed file, as a hand-edited or
  re-exported bundle ends up: the checksum holds, the numbers do not.
- :func:`write_short_halo_bundle`: a 0.5 bundle that declares a halo smaller than its network's receptive
  radius, as the zoo's unet2d_nuclei_broad does (halo 32 for a larger field): whole-image outputs reproduce,
  tiled ones have seams.
- :func:`write_untested_bundle_v0_3`: a deepImageJ 2.x bundle saved without its test step (no example
  image, no result), so it ships nothing to compare with.

Examples
--------
>>> bundle = write_altered_output_bundle(tmp_path / "altered")  # doctest: +SKIP
>>> bundle.extra["altered_pixels"]  # doctest: +SKIP
(slice(10, 14, None), slice(20, 24, None))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from support.bundles import WrittenBundle, sha256_file, write_bundle_v0_3, write_bundle_v0_5

ALTERED_ROWS = slice(10, 14)
ALTERED_COLUMNS = slice(20, 24)
ALTERED_SHIFT = 0.05
"""The change made to the test output: +0.05 on a 4 x 4 patch (16 of 1024 pixels; the probability output's
values lie in (0, 1), so every one of them is off by 50 times the bundle's absolute tolerance 1e-4)."""


def _edit_descriptor(bundle: WrittenBundle, edit: Any) -> None:
    data = yaml.safe_load(bundle.descriptor.read_text(encoding="utf-8"))
    edit(data)
    bundle.descriptor.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def write_altered_output_bundle(folder: str | Path, **kwargs: Any) -> WrittenBundle:
    """A 0.5 bundle (torchscript and onnx by default) whose ``test_output.npy`` is off on one patch.

    ``extra["altered_pixels"]`` holds the (y, x) slices changed; ``extra["true_output"]`` the output the
    network gives.
    """
    kwargs.setdefault("weights", ("torchscript", "onnx"))
    bundle = write_bundle_v0_5(folder, **kwargs)
    altered = bundle.expected_output.copy()
    altered[..., ALTERED_ROWS, ALTERED_COLUMNS] += np.float32(ALTERED_SHIFT)
    np.save(bundle.folder / "test_output.npy", altered)
    digest = sha256_file(bundle.folder / "test_output.npy")

    def rehash(data: dict[str, Any]) -> None:
        data["outputs"][0]["test_tensor"]["sha256"] = digest

    _edit_descriptor(bundle, rehash)
    bundle.extra.update(altered_pixels=(ALTERED_ROWS, ALTERED_COLUMNS), true_output=bundle.expected_output)
    bundle.expected_output = altered
    return bundle


def write_short_halo_bundle(folder: str | Path, *, halo: int = 1, **kwargs: Any) -> WrittenBundle:
    """A 0.5 bundle declaring ``halo`` on its output's y and x axes while its network looks
    ``bundle.model.halo`` pixels far (4 for the default convnet)."""
    bundle = write_bundle_v0_5(folder, **kwargs)
    if halo >= bundle.model.halo:
        raise ValueError(
            f"halo {halo} is not smaller than the network's receptive radius {bundle.model.halo}"
        )

    def shorten(data: dict[str, Any]) -> None:
        for axis in data["outputs"][0]["axes"]:
            if axis.get("type") == "space":
                axis["halo"] = halo

    _edit_descriptor(bundle, shorten)
    bundle.extra["declared_halo"] = halo
    return bundle


def write_untested_bundle_v0_3(folder: str | Path, **kwargs: Any) -> WrittenBundle:
    """A deepImageJ 2.x ``model.yaml`` bundle saved without the test step: no ``test_inputs`` /
    ``test_outputs`` / ``sample_*`` lists, no ``exampleImage`` or ``resultImage`` files, and a
    ``test_information`` without inputs or outputs."""
    bundle = write_bundle_v0_3(folder, **kwargs)
    for name in ("exampleImage.npy", "resultImage.npy"):
        (bundle.folder / name).unlink()

    def untest(data: dict[str, Any]) -> None:
        for key in ("test_inputs", "test_outputs", "sample_inputs", "sample_outputs"):
            data.pop(key, None)
        information = data["config"]["deepimagej"]["test_information"]
        information.pop("inputs", None)
        information.pop("outputs", None)

    _edit_descriptor(bundle, untest)
    return bundle
