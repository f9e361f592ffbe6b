"""The files of a built bundle made by running it: the example, the test tensors, the result, the README.

- ``exampleImage.tif``, and ``resultImage.tif`` (``resultTable.csv`` when post-processing leaves a table):
  the example through the bundle as deepImageJ's own test step runs it, in ImageJ with its macros, at
  deepImageJ's default tile, mirror-padded and read back as deepImageJ reads it (``tile="suggested"``,
  ``tiling="deepimagej-readback"``), so that a deepImageJ run reproduces it and ``deepij test`` compares
  it the deepImageJ way (:mod:`deepij.trust.reproduce_run`);
- ``test_input.npy`` / ``test_output.npy``: what the zoo's tools reproduce, the spec ops and the network
  on the test input as it is (no padding: a network with valid convolutions gives a smaller output);
- for torch networks an ONNX copy, when one reproduces torch on the example and on a larger size;
- the cover, the README and the final ``rdf.yaml``.

Examples
--------
>>> file_safe("Results (cells)")
'Results__cells_'
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.bundle.description import ModelDescription, WeightsEntry
from deepij.errors import ArgumentError
from deepij.trust.build_args import input_tensor
from deepij.trust.build_describe import bundle_description, output_file, weights_entries
from deepij.trust.build_sources import ONNX_FILE
from deepij.trust.build_types import (
    COVER,
    DESCRIPTOR,
    EXAMPLE_IMAGE,
    README,
    RESULT_IMAGE,
    RESULT_TABLE,
    TEST_INPUT,
    BundleSpec,
    ExampleRuns,
)
from deepij.trust.reproduce_run import DEEPIMAGEJ_TILING

if TYPE_CHECKING:
    from deepij.pipeline import Model, Prediction


def run_example(spec: BundleSpec, array: np.ndarray, onnx: bool | str, notes: list[str]) -> ExampleRuns:
    """Write the example, the ONNX copy, the test tensors; run the example as deepImageJ does."""
    from deepij.pipeline import Model
    from deepij.trust.build_files import write_imagej_tiff

    tensor = input_tensor(array, spec.layout.input_axes)
    write_imagej_tiff(tensor, spec.layout.input_axes, spec.root / EXAMPLE_IMAGE)
    opset = _onnx_weights(spec, tensor, onnx, notes)
    description = bundle_description(spec, weights_entries(spec, opset), {})
    test_input = test_input_of(spec, description, tensor)
    np.save(spec.root / TEST_INPUT, test_input)
    model = Model(description)
    try:
        _write_test_outputs(spec, model, test_input)
        memory = _forward_memory(spec, model, test_input)
        run, runtime = _deepimagej_run(spec, model)
    finally:
        model.close()
    notes.extend(n for n in run.notes if n not in notes)
    left = [n for n in run.images if n not in spec.layout.output_axes]
    shown = left[0] if spec.post and left else next(iter(spec.layout.output_axes))
    image = run.images[shown]
    dims = "".join(str(d) for d in image.dims)
    return ExampleRuns(description, tensor, image.values, dims, dict(run.tables), int(memory), runtime)


def _onnx_weights(spec: BundleSpec, tensor: np.ndarray, onnx: bool | str, notes: list[str]) -> int | None:
    """The opset of the ONNX copy written next to torch weights (None: none, the reason in ``notes``)."""
    if spec.written.format != "torchscript" or onnx is False:
        return None
    try:
        return _onnx_copy(spec, bundle_description(spec, weights_entries(spec, None), {}), tensor)
    except (ArgumentError, ImportError) as error:
        if onnx is True:
            raise
        notes.append(f"no ONNX copy: {error}")
        return None


def _onnx_copy(spec: BundleSpec, description: ModelDescription, tensor: np.ndarray) -> int:
    """Write ``weights.onnx`` when torch's network exports to an ONNX graph that reproduces torch on the
    example and on a larger valid size; its opset (ArgumentError with the reasons otherwise)."""
    from deepij.inference.backends.onnx_conversion import OPSET, ROUTES, export_onnx
    from deepij.inference.backends.probes import probe_inputs
    from deepij.inference.backends.torchscript import TorchScriptBackend

    entry = description.weights["torchscript"]
    torch_backend = TorchScriptBackend(description, entry, spec.root / entry.source)
    checks = [tensor.astype(np.float32), *probe_inputs(description, larger=True, seed=1)]
    reasons = []
    try:
        for route in ROUTES:
            try:
                graph = export_onnx(torch_backend, route)
                agree = _graph_agrees(description, torch_backend, graph, checks)
            except Exception as error:  # the exporter and onnxruntime raise many kinds
                text = str(error).strip()
                reasons.append(f"{route}: {text.splitlines()[0] if text else repr(error)}")
                continue
            if agree:
                (spec.root / ONNX_FILE).write_bytes(graph)
                return OPSET
            reasons.append(f"{route}: the ONNX graph gives other outputs than torch")
    finally:
        torch_backend.close()
    raise ArgumentError("onnx: no ONNX copy reproduces the torch outputs (" + "; ".join(reasons) + ")")


def _graph_agrees(description: ModelDescription, torch_backend: Any, graph: bytes, checks: list) -> bool:
    from deepij.inference.backends.onnx_runtime import OnnxRuntimeBackend
    from deepij.inference.backends.probes import outputs_agree

    onnx_backend = OnnxRuntimeBackend(description, WeightsEntry("onnx", ONNX_FILE), graph, "cpu")
    try:
        return all(outputs_agree(torch_backend.predict([x]), onnx_backend.predict([x])) for x in checks)
    finally:
        onnx_backend.close()


def test_input_of(spec: BundleSpec, description: ModelDescription, tensor: np.ndarray) -> np.ndarray:
    """The raw example (float32), or, when a pre-processing macro has no spec op, the example after the
    bundle's ImageJ pre-processing (what the network receives)."""
    if spec.spec_ops:
        return tensor.astype(np.float32)
    from deepij.pipeline.sources import read_source
    from deepij.pipeline.steps import Chain

    chain = Chain(description, "macros")
    source = read_source(spec.root / EXAMPLE_IMAGE, description, session=chain.session)
    image = chain.pre(source)[spec.layout.input_name]
    letters = [a for a in spec.layout.input_axes if a in image.dims]
    image = image.transpose(*letters)
    return input_tensor(image.values, spec.layout.input_axes).astype(np.float32)


# pytest collects callables named test_* from the modules a test imports: this one is not a test.
test_input_of.__test__ = False  # type: ignore[attr-defined]


def _write_test_outputs(spec: BundleSpec, model: Model, test_input: np.ndarray) -> None:
    """What the zoo's tools reproduce: the spec ops, then the network on the test input as it is, in the
    network's own framework."""
    zoo_run = model.predict(
        test_input,
        processing="spec",
        tile="image",
        weights_format=spec.written.format,
        runtime="native",
        batch_size=1,
        logging="mute",
    )
    for k, (name, letters) in enumerate(spec.layout.output_axes.items()):
        tensor = zoo_run.images[name].transpose(*letters).values
        np.save(spec.root / output_file(k, name), np.asarray(tensor, dtype=np.float32))


def _forward_memory(spec: BundleSpec, model: Model, test_input: np.ndarray) -> int:
    """Bytes one forward pass on the test input takes (deepImageJ's ``memory_peak``)."""
    from deepij.inference.meters import forward_meter

    backend = model.backend(spec.written.format, None, "native")
    return int(forward_meter(backend)(lambda: backend.predict([test_input])))


def _deepimagej_run(spec: BundleSpec, model: Model) -> tuple[Prediction, float]:
    """The example through the whole bundle as deepImageJ's test step runs it, and the seconds it took."""
    if model.description.deepimagej.preprocess or model.description.deepimagej.postprocess:
        from deepij.imagej import imagej

        imagej()  # started before the clock: deepImageJ runs inside a running ImageJ
    start = time.perf_counter()
    run = model.predict(
        spec.root / EXAMPLE_IMAGE,
        processing="auto",
        tile="suggested",
        tiling=DEEPIMAGEJ_TILING,
        weights_format=spec.written.format,
        runtime="native",
        logging="mute",
    )
    return run, time.perf_counter() - start


def finish(spec: BundleSpec, built: ExampleRuns, metadata: Mapping[str, Any]) -> ModelDescription:
    """Result files, cover, README and the final ``rdf.yaml`` (``metadata``: the descriptor's fields from
    :func:`~deepij.trust.build_args.checked_metadata`, and ``folder``, the bundle folder's name)."""
    from deepij.bundle.writer import write_descriptor
    from deepij.trust.build_files import imagej_layout, write_cover
    from deepij.trust.build_readme import readme_text

    files, outputs_info = _result_files(spec, built)
    example_plane, _ = imagej_layout(built.example, spec.layout.input_axes)
    result_plane, _ = imagej_layout(built.result, built.result_axes)
    write_cover([example_plane, result_plane], spec.root / COVER)
    description = replace(
        bundle_description(spec, built.description.weights, _test_information(spec, built, outputs_info)),
        description=metadata["description"] or f"{spec.name}, packaged with deepij build.",
        authors=metadata["authors"],
        cite=metadata["cite"],
        license=metadata["license"],
        tags=metadata["tags"],
        version=metadata["version"],
        documentation=README,
        covers=(COVER,),
        attachments=tuple(files),
        extra={"timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    readme = readme_text(description, spec, built, metadata["folder"])
    (spec.root / README).write_text(readme, encoding="utf-8")
    write_descriptor(description, spec.root / DESCRIPTOR, "0.5")
    return description


def _result_files(spec: BundleSpec, built: ExampleRuns) -> tuple[list[str], list[dict[str, Any]]]:
    """Write the result image and tables; the attachments and ``test_information.outputs``."""
    from deepij.trust.build_files import image_size_text, write_imagej_tiff

    write_imagej_tiff(built.result, built.result_axes, spec.root / RESULT_IMAGE)
    files = [s.file for s in (*spec.pre, *spec.post)] + [RESULT_IMAGE]
    size = image_size_text(built.result, built.result_axes)
    outputs_info: list[dict[str, Any]] = [{"name": RESULT_IMAGE, "type": "image", "size": size}]
    for k, (title, table) in enumerate(built.tables.items()):
        file = RESULT_TABLE if k == 0 else f"resultTable_{file_safe(title)}.csv"
        table.to_csv(spec.root / file, index=False)
        files.append(file)
        outputs_info.append({"name": file, "type": "ResultsTable"})
    return files, outputs_info


def _test_information(
    spec: BundleSpec, built: ExampleRuns, outputs_info: list[dict[str, Any]]
) -> dict[str, Any]:
    """``config.deepimagej.test_information`` as deepImageJ writes it."""
    from deepij.trust.build_files import image_size_text

    size = image_size_text(built.example, spec.layout.input_axes)
    pixel_size = {"x": "1 pixel", "y": "1 pixel", "z": "1 pixel"}
    return {
        "inputs": [{"name": EXAMPLE_IMAGE, "size": size, "pixel_size": pixel_size}],
        "outputs": outputs_info,
        "memory_peak": f"{built.memory_peak / 1e6:.1f} MB",
        "runtime": f"{built.runtime:.2f} s",
    }


def file_safe(title: str) -> str:
    """A table title as part of a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in title)[:40] or "table"


__all__ = ["finish", "run_example", "test_input_of"]
