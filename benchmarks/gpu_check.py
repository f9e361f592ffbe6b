"""Every GPU path of deepij's backends, in a few minutes, with figures: run it on a machine with a GPU.

What it exercises (each step prints ``name value unit`` lines, or ``# skipped: why``):

1. device choice: ``load_backend(device=None)`` picks ``cuda:0`` when torch sees a GPU, ``"cpu"`` forces the
   CPU, ``"cuda:N"`` past the last GPU is a clear error;
2. torch CUDA: the benchmark U-Net (TorchScript) on ``cuda:0``, outputs against the CPU's, time per
   1024x1024 pass;
3. onnxruntime's CUDA provider: the same U-Net as ONNX with ``device="cuda"`` (needs onnxruntime-gpu);
4. TensorFlow on the GPU: a small SavedModel with ``device="cuda"`` (needs a GPU build of TensorFlow);
5. memory probing: ``deepij.inference.meters.available_memory("cuda:0")`` against torch's own
   ``mem_get_info``, and the forward-pass meter on one tile;
6. half precision: ``precision="float16"`` on CUDA (kept when a probe at load reproduces float32 within the
   bundle's tolerance), its largest difference and speed-up against float32, and its refusal (with a note)
   for an ONNX graph.

On a machine without a GPU it says so, checks that the automatic choice is the CPU and that
``precision="float16"`` is refused there with a note, and exits 0.
Usage: ``.venv/bin/python benchmarks/gpu_check.py [--side 1024] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def emit(name: str, value: float, unit: str) -> None:
    print(f"{name} {value:.4g} {unit}", flush=True)


def best_seconds(run: Callable[[], object], repeats: int, synchronize: Callable[[], None]) -> float:
    run()  # warm-up: kernels chosen, memory pools filled
    synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        synchronize()
        times.append(time.perf_counter() - started)
    return min(times)


def what_sees_a_gpu() -> dict[str, int]:
    """GPUs each framework sees, by deepij's own queries."""
    from deepij.inference.backends import onnx_runtime, torch_runner

    seen = {"torch": torch_runner.gpu_count(), "onnxruntime": onnx_runtime.gpu_count()}
    try:
        from deepij.inference.backends import tensorflow_saved_model

        seen["tensorflow"] = tensorflow_saved_model.gpu_count()
    except ImportError:
        seen["tensorflow"] = 0
    return seen


def cpu_only(folder: Path) -> int:
    from deepij.inference.backends import load_backend
    from support import models

    unet = models.write_torchscript_unet(folder / "unet.pt", base=8)
    backend = load_backend(models.describe(unet))
    print(f"# no GPU here: the automatic choice ran {backend.runtime} on {backend.device}", flush=True)
    assert backend.device == "cpu", backend.device
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        half = load_backend(models.describe(unet), precision="float16")
    [note] = [n for n in half.notes if "precision" in n]
    print(f"# precision='float16' on the CPU: {note}", flush=True)
    assert "refused" in note, note
    print("# nothing else to check without a GPU: run this on a GPU machine", flush=True)
    return 0


def check_device_choice(unet: object, gpus: int) -> None:
    from deepij.errors import BackendError
    from deepij.inference.backends import load_backend
    from support import models

    description = models.describe(unet)  # type: ignore[arg-type]
    automatic = load_backend(description)
    print(f"# device=None: {automatic.runtime} on {automatic.device}", flush=True)
    assert automatic.device == "cuda:0", automatic.device
    assert load_backend(description, device="cpu", runtime="native").device == "cpu"
    try:
        load_backend(description, device=f"cuda:{gpus}")
    except BackendError as error:
        print(f"# device='cuda:{gpus}' refused: {str(error).splitlines()[0][:160]}", flush=True)
    else:
        raise AssertionError(f"device='cuda:{gpus}' should not load on a machine with {gpus} GPU(s)")


def check_torch(unet: object, image: np.ndarray, repeats: int) -> None:
    import torch

    from deepij.inference.backends import load_backend
    from support import models

    description = models.describe(unet)  # type: ignore[arg-type]
    gpu = load_backend(description, device="cuda:0")
    cpu = load_backend(description, device="cpu", runtime="native")
    difference = float(np.abs(gpu.predict([image])[0] - cpu.predict([image])[0]).max())
    emit("torch_cuda_vs_cpu_max_abs_diff", difference, "1")
    seconds = best_seconds(lambda: gpu.predict([image]), repeats, torch.cuda.synchronize)
    emit(f"torch_cuda_{image.shape[-1]}_pass_s", seconds, "s")
    emit(f"torch_cuda_{image.shape[-1]}_mpixel_per_s", image.shape[-1] ** 2 / seconds / 1e6, "Mpx/s")


def check_onnxruntime(onnx_unet: object, image: np.ndarray, repeats: int) -> None:
    from deepij.errors import BackendError
    from deepij.inference.backends import load_backend
    from support import models

    try:
        backend = load_backend(models.describe(onnx_unet), device="cuda")  # type: ignore[arg-type]
    except BackendError as error:
        print(f"# skipped onnxruntime CUDA: {str(error).splitlines()[0][:200]}", flush=True)
        return
    providers = backend.session.get_providers()  # type: ignore[attr-defined]
    print(f"# onnxruntime providers: {providers}", flush=True)
    seconds = best_seconds(lambda: backend.predict([image]), repeats, lambda: None)
    emit(f"onnxruntime_cuda_{image.shape[-1]}_pass_s", seconds, "s")


def check_tensorflow(folder: Path, repeats: int) -> None:
    try:
        from deepij.inference.backends import load_backend, tensorflow_saved_model
        from support import models

        if tensorflow_saved_model.gpu_count() == 0:
            print("# skipped TensorFlow GPU: TensorFlow sees no GPU (a CPU build?)", flush=True)
            return
    except ImportError as error:
        print(f"# skipped TensorFlow GPU: {error}", flush=True)
        return
    written = models.write_tf2_saved_model(folder / "tf2")
    backend = load_backend(models.describe(written), device="cuda")
    image = np.random.default_rng(0).standard_normal((1, 1024, 1024, 1)).astype(np.float32)
    difference = float(np.abs(backend.predict([image])[0] - written.forward(image)[0]).max())
    emit("tensorflow_gpu_vs_reference_max_abs_diff", difference, "1")
    emit(
        "tensorflow_gpu_1024_pass_s",
        best_seconds(lambda: backend.predict([image]), repeats, lambda: None),
        "s",
    )


def check_memory(unet: object, image: np.ndarray) -> None:
    import torch

    from deepij.inference.backends import load_backend
    from deepij.inference.meters import available_memory, forward_meter
    from support import models

    free, total = torch.cuda.mem_get_info(0)
    emit("gpu_free_by_torch_gb", free / 1e9, "GB")
    emit("gpu_total_gb", total / 1e9, "GB")
    emit("gpu_available_by_deepij_gb", available_memory("cuda:0") / 1e9, "GB")
    backend = load_backend(models.describe(unet), device="cuda:0")  # type: ignore[arg-type]
    meter = forward_meter(backend)
    used = meter(lambda: backend.predict([image]))
    emit(f"gpu_forward_{image.shape[-1]}_peak_gb", used / 1e9, "GB")


def check_half(unet: object, image: np.ndarray, repeats: int) -> None:
    """The opt-in: ``load_backend(precision="float16")`` on CUDA (checked at load against float32 on a
    probe), its outputs and time against the float32 backend; and an ONNX graph refused with a note."""
    import torch

    from deepij.errors import BackendError
    from deepij.inference.backends import load_backend
    from support import models

    description = models.describe(unet)  # type: ignore[arg-type]
    full = load_backend(description, device="cuda:0", runtime="native")
    half = load_backend(description, device="cuda:0", runtime="native", precision="float16")
    print(f"# float16: {[n for n in half.notes if 'precision' in n]}", flush=True)
    assert getattr(half, "half", False), "precision='float16' was refused on CUDA for the benchmark U-Net"
    reference, got = full.predict([image])[0], half.predict([image])[0]
    assert got.dtype == np.float32, got.dtype
    emit("half_vs_float_max_abs_diff", float(np.abs(got - reference).max()), "1")
    half_s = best_seconds(lambda: half.predict([image]), repeats, torch.cuda.synchronize)
    full_s = best_seconds(lambda: full.predict([image]), repeats, torch.cuda.synchronize)
    emit("half_pass_s", half_s, "s")
    emit("float_pass_s", full_s, "s")
    emit("half_speedup_ratio", full_s / half_s, "x")
    onnx_unet = models.write_onnx_unet(Path(str(unet.path)).with_name("half.onnx"))  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings(record=True):
            refused = load_backend(models.describe(onnx_unet), device="cuda:0", precision="float16")
    except BackendError as error:  # onnxruntime without its CUDA provider
        print(f"# onnx + float16 not tried: {str(error).splitlines()[0][:160]}", flush=True)
        return
    print(f"# onnx + float16: {[n for n in refused.notes if 'precision' in n]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    seen = what_sees_a_gpu()
    print(f"# GPUs seen: {seen}", flush=True)
    with tempfile.TemporaryDirectory(prefix="deepij-gpu-check-") as tmp:
        folder = Path(tmp)
        if seen["torch"] == 0 and seen["onnxruntime"] == 0 and seen["tensorflow"] == 0:
            return cpu_only(folder)
        from support import models

        unet = models.write_torchscript_unet(folder / "unet.pt")
        onnx_unet = models.write_onnx_unet(folder / "unet.onnx")
        image = np.random.default_rng(1).random((1, 1, args.side, args.side), dtype=np.float32)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("device choice", lambda: check_device_choice(unet, seen["torch"])),
            ("torch CUDA", lambda: check_torch(unet, image, args.repeats)),
            ("onnxruntime CUDA", lambda: check_onnxruntime(onnx_unet, image, args.repeats)),
            ("TensorFlow GPU", lambda: check_tensorflow(folder, args.repeats)),
            ("memory probing", lambda: check_memory(unet, image)),
            ("half precision", lambda: check_half(unet, image, args.repeats)),
        ]
        failed = []
        for name, step in steps:
            if name != "onnxruntime CUDA" and name != "TensorFlow GPU" and seen["torch"] == 0:
                print(f"# skipped {name}: torch sees no GPU", flush=True)
                continue
            print(f"# {name}", flush=True)
            started = time.perf_counter()
            try:
                step()
            except Exception as error:  # report every path, then fail at the end
                failed.append(name)
                print(f"# FAILED {name}: {type(error).__name__}: {error}", flush=True)
            emit(f"step_{name.replace(' ', '_').lower()}_s", time.perf_counter() - started, "s")
    if failed:
        print(f"# failed: {failed}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
