"""From a trained model to a file another program can run: TorchScript, ONNX, latency.

    path = export.to_onnx(model, example, out / "model.onnx")
    logits = export.onnx_predict(path, x)                   # onnxruntime, no PyTorch model needed
    export.max_abs_difference(model(x), logits)             # the check that the export is faithful

The exported models take *normalised float* images `[B, C, H, W]` (what the model sees);
`normalize` from `helpers.data` turns uint8 images into that with the training statistics.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "latency_per_image",
    "load_torchscript",
    "max_abs_difference",
    "onnx_predict",
    "onnx_session",
    "to_onnx",
    "to_torchscript",
]


def to_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Trace `model` on `example` (a float batch) and save it as TorchScript to `path`.

    TorchScript is deprecated in recent PyTorch in favour of `torch.export`, but it is still
    the format C++ (libtorch) and many mobile runtimes load; the FutureWarning is silenced here.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.trace(model, example.cpu())
        torch.jit.save(scripted, str(path))
    return path


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """Load a TorchScript file (no Python class definition needed), in eval mode on CPU."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def to_onnx(model: nn.Module, example: torch.Tensor, path: str | Path, dynamic_batch: bool = True) -> Path:
    """Export `model` to ONNX (`torch.onnx.export`, the torch.export-based exporter).

    The input is named "images" and the output "logits"; with `dynamic_batch` any batch size
    works. The weights are stored inside the file (no `.onnx.data` side file). Falls back to the legacy TorchScript-based exporter if the new one fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    example = example.cpu()
    kwargs = dict(input_names=["images"], output_names=["logits"])
    try:
        shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), dynamo=True, dynamic_shapes=shapes,
                              external_data=False, verbose=False, **kwargs)  # one self-contained file
    except Exception:  # noqa: BLE001 - older/odd models: the legacy exporter handles them
        axes = {"images": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), dynamo=False, dynamic_axes=axes, **kwargs)
    return path


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime `InferenceSession` on the CPU for the ONNX file at `path`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_predict(path_or_session, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Run an ONNX model (file path or session) on float images `[B, C, H, W]`; returns logits."""
    session = onnx_session(path_or_session) if isinstance(path_or_session, (str, Path)) else path_or_session
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    name = session.get_inputs()[0].name
    return torch.from_numpy(session.run(None, {name: array.astype(np.float32)})[0])


def max_abs_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference between two outputs of the same shape."""
    a, b = torch.as_tensor(a).detach().cpu().float(), torch.as_tensor(b).detach().cpu().float()
    if a.shape != b.shape:
        raise ValueError(f"outputs have different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    return float((a - b).abs().max()) if a.numel() else 0.0


def latency_per_image(
    run: Callable[[torch.Tensor], object], x: torch.Tensor, repeats: int = 20, warmup: int = 3
) -> dict[str, float]:
    """Median and 90th-percentile milliseconds per image of `run(x)` (one call on batch `x`)."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    with torch.no_grad():
        for _ in range(warmup):
            run(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(x)
            times.append((time.perf_counter() - start) * 1000 / len(x))
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
            "batch": len(x), "repeats": repeats}
