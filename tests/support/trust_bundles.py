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
- :func:`write_deepimagej_made_bundle`: a deepImageJ 2.x bundle whose ``resultImage.tif`` deepImageJ's own
  test run made: its default tile, the example mirror-padded into it and the result read back as
  deepImageJ reads it (:func:`deepimagej_single_tile`, numpy and the network's own forward pass); its
  ``.npy`` test tensors too, optionally, as deepImageJ 2.x wrote them.
- :func:`write_large_input_bundle`: a 0.5 bundle whose test input is large, so that small tiles would cut
  it into thousands.

Usage in a test (``tmp_path`` is pytest's fixture)::

    bundle = write_altered_output_bundle(tmp_path / "altered")
    bundle.extra["altered_pixels"]  # -> (slice(10, 14, None), slice(20, 24, None))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from support.bundles import (
    WrittenBundle,
    sha256_file,
    write_bundle_v0_3,
    write_bundle_v0_5,
    zero_mean_unit_variance,
)

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


def deepimagej_tile(size: int, halo: int, step: int) -> int:
    """deepImageJ 2.x's default tile (``ArrayOperations.optimalPatch``, FORMATS.md section 6):
    ``ceil((I + 2*halo)/step)*step``, one step less when above ``3I``, ``ceil(I/step)*step`` when still
    above."""
    tile = math.ceil((size + 2 * halo) / step) * step
    if tile > 3 * size:
        tile -= step
    if tile > 3 * size:
        tile = math.ceil(size / step) * step
    return tile


def deepimagej_single_tile(
    forward: Callable[[np.ndarray], list[np.ndarray]], image: np.ndarray, tile: tuple[int, int]
) -> np.ndarray:
    """What deepImageJ 2.x gives for a ``(y, x)`` image that fits in one tile: the image mirrored (without
    repeating the edge pixel) up to the tile, ``ceil((Q - I)/2)`` pixels before it, the network run once,
    and the result read back from ``floor((Q - I)/2)`` (``RunnerTf``/``RunnerPt`` with
    ``findAddedPixels``: one pixel off when ``Q - I`` is odd)."""
    margins = [q - n for q, n in zip(tile, image.shape, strict=True)]
    pads = [(math.ceil(m / 2), m - math.ceil(m / 2)) for m in margins]
    padded = np.pad(image, pads, mode="reflect")
    out = forward(padded[None, None].astype(np.float32))[0][0, 0]
    (ry, rx), (ny, nx) = (m // 2 for m in margins), image.shape
    return np.asarray(out[ry : ry + ny, rx : rx + nx], dtype=np.float32)


def _minmax_scaled(image: np.ndarray) -> np.ndarray:
    """The 0.3 bundle's pre-processing macro in float32, as ImageJ computes it."""
    low, high = image.min(), image.max()
    return ((image - low) / (high - low)).astype(np.float32)


def write_deepimagej_made_bundle(
    folder: str | Path,
    *,
    example_yx: tuple[int, int] = (32, 32),
    step: int = 2,
    tensors_by_deepimagej: bool = False,
    seed: int = 0,
) -> WrittenBundle:
    """A 0.3 deepImageJ bundle (:func:`support.bundles.write_bundle_v0_3`: min-max macro, convnet, ``* 2``
    macro) declaring ``step`` with an even ``min``, whose ``exampleImage.tif`` (``example_yx`` pixels) and
    ``resultImage.tif`` are what deepImageJ's test run gives (:func:`deepimagej_single_tile` at
    :func:`deepimagej_tile`). ``tensors_by_deepimagej``: ``resultImage.npy`` (the test output) made that way
    too, from ``exampleImage.npy``.

    ``extra``: ``"example"`` and ``"result"`` (the TIFFs' pixels), ``"tile"`` (the example's tile),
    ``"scaled"`` (the example after the pre-processing macro).
    """
    import tifffile

    bundle = write_bundle_v0_3(folder, seed=seed)
    model = bundle.model
    low = model.min_size + model.min_size % 2  # an even min keeps the 32-pixel test tensors valid
    example = (np.random.default_rng(seed + 7).random(example_yx) * 180.0 + 20.0).astype(np.float32)
    tile = tuple(deepimagej_tile(n, model.halo, step) for n in example_yx)
    scaled = _minmax_scaled(example)
    result = deepimagej_single_tile(model.forward, scaled, tile) * np.float32(2)
    tifffile.imwrite(bundle.folder / "exampleImage.tif", example, imagej=True)
    tifffile.imwrite(bundle.folder / "resultImage.tif", result, imagej=True)
    if tensors_by_deepimagej:
        tensor = bundle.test_input[0, 0]
        tensor_tile = tuple(deepimagej_tile(n, model.halo, step) for n in tensor.shape)
        made = deepimagej_single_tile(model.forward, _minmax_scaled(tensor), tensor_tile) * np.float32(2)
        bundle.expected_output = made[None, None]
        np.save(bundle.folder / "resultImage.npy", bundle.expected_output)

    def as_deepimagej_made(data: dict[str, Any]) -> None:
        shape = data["inputs"][0]["shape"]
        shape["min"] = [low if a in "yx" else m for a, m in zip("bcyx", shape["min"], strict=True)]
        shape["step"] = [step if a in "yx" else 0 for a in "bcyx"]
        information = data["config"]["deepimagej"]["test_information"]
        size = f"{example_yx[1]} x {example_yx[0]} x 1 x 1"  # W x H x C x Z, as deepImageJ writes it
        information["inputs"][0].update(name="exampleImage.tif", size=size)
        information["outputs"] = [{"name": "resultImage.tif", "type": "image", "size": size}]

    _edit_descriptor(bundle, as_deepimagej_made)
    bundle.extra.update(example=example, result=result, tile=tile, scaled=scaled)
    return bundle


def write_large_input_bundle(folder: str | Path, *, side: int = 256, **kwargs: Any) -> WrittenBundle:
    """A 0.5 bundle (:func:`support.bundles.write_bundle_v0_5`) whose test tensors are ``side`` x ``side``
    (the network's own forward pass on the normalised input, then the sigmoid), sha256 updated."""
    bundle = write_bundle_v0_5(folder, **kwargs)
    rng = np.random.default_rng(11)
    test_input = (rng.random((1, 1, side, side), dtype=np.float32) * 200.0 + 10.0).astype(np.float32)
    net_out = bundle.model.forward(zero_mean_unit_variance(test_input, (2, 3)))[0]
    expected = (1.0 / (1.0 + np.exp(-net_out.astype(np.float64)))).astype(np.float32)
    np.save(bundle.folder / "test_input.npy", test_input)
    np.save(bundle.folder / "test_output.npy", expected)

    def rehash(data: dict[str, Any]) -> None:
        data["inputs"][0]["test_tensor"]["sha256"] = sha256_file(bundle.folder / "test_input.npy")
        data["outputs"][0]["test_tensor"]["sha256"] = sha256_file(bundle.folder / "test_output.npy")

    _edit_descriptor(bundle, rehash)
    bundle.test_input, bundle.expected_output = test_input, expected
    return bundle
