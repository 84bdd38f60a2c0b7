"""Model size, latency, int8 quantisation, pruning and export, measured the same way for all.

- `size_on_disk`: bytes of the saved state_dict (optionally zip-compressed, which is where
  pruning's zeros pay off);
- `latency_ms`: median wall time of a forward pass per batch;
- `quantize_dynamic`: int8 weights for Linear layers with `torch.ao.quantization` (deprecated
  in recent PyTorch in favour of torchao, still working here);
- `export_onnx` + `onnx_quantize_dynamic` + `OnnxModel`: the export path, and int8
  quantisation with ONNX Runtime, the path for deployment without PyTorch;
- `prune_global` / `sparsity`: global magnitude pruning with `torch.nn.utils.prune`.
"""

from __future__ import annotations

import copy
import io
import logging
import statistics
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

__all__ = [
    "OnnxModel",
    "export_onnx",
    "latency_ms",
    "onnx_quantize_dynamic",
    "prune_global",
    "quantize_dynamic",
    "size_on_disk",
    "sparsity",
]


def size_on_disk(model: nn.Module, compressed: bool = False) -> int:
    """Bytes of `torch.save(model.state_dict())`; `compressed` zips it (deflate) first."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    raw = buf.getvalue()
    if not compressed:
        return len(raw)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("weights", raw)
    return len(out.getvalue())


def latency_ms(model, x: torch.Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of one forward pass of `model` on the batch `x` (no gradients).

    `model` may be a torch module or any callable (an `OnnxModel`).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats} must be >= 1 and warmup={warmup} >= 0")
    if isinstance(model, nn.Module):
        model.eval()
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def quantize_dynamic(model: nn.Module) -> nn.Module:
    """A copy of `model` with int8 weights in its Linear layers (dynamic quantisation, CPU).

    Activations are quantised on the fly at run time; Conv layers stay float32. Uses
    `torch.ao.quantization.quantize_dynamic` (its deprecation warnings are silenced).
    """
    from torch.ao import quantization as tq

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tq.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Export `model` to ONNX at `path` (dynamic batch size) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example.cpu(),), str(path), input_names=["x"], output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
        )
    return path


def onnx_quantize_dynamic(src: str | Path, dst: str | Path) -> Path:
    """int8 weights (dynamic quantisation) of an ONNX model with ONNX Runtime's quantiser."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ValueError(f"ONNX model {src.name!r} does not exist; export it first with export_onnx")
    # The quantiser logs "Please consider to run pre-processing before quantization" on the root
    # logger for every model; shape inference adds nothing to this small model's int8 weights.
    root = logging.getLogger()
    quiet = _DropMessage("consider to run pre-processing")
    root.addFilter(quiet)
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(quiet)
    return dst


class _DropMessage(logging.Filter):
    """A logging filter that drops records containing one message fragment."""

    def __init__(self, fragment: str):
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


class OnnxModel:
    """An ONNX file run by ONNX Runtime on CPU, callable on torch tensors like a module."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"x": x.detach().cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)


def prune_global(model: nn.Module, amount: float) -> nn.Module:
    """A copy of `model` with the `amount` fraction of smallest-magnitude Conv/Linear weights set to 0.

    Global L1 (magnitude) pruning over all weights together, made permanent (`prune.remove`).
    """
    if not 0 <= amount < 1:
        raise ValueError(f"amount={amount!r} must be in [0, 1): the fraction of weights to zero")
    model = copy.deepcopy(model)
    targets = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not targets:
        raise ValueError("the model has no Conv2d or Linear layers to prune")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    for m, name in targets:
        prune.remove(m, name)
    return model


def sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the Conv/Linear weights."""
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not weights:
        raise ValueError("the model has no Conv2d or Linear layers")
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / sum(w.numel() for w in weights)
