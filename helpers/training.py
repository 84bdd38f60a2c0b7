"""The training loop (`fit`), evaluation, prediction and checkpoints.

`fit` keeps the whole dataset on the training device as uint8 and does batching,
normalisation and augmentation with tensor operations, so a small dataset trains at the
speed of the model rather than of a Python data loader.
"""

from __future__ import annotations

import math
import os
import pickle
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .core import interactive, resolve_device
from .data import ImageData, augment_batch, iterate_batches, normalize

__all__ = [
    "CheckpointError",
    "History",
    "WeightEMA",
    "evaluate",
    "fit",
    "load_checkpoint",
    "predict",
    "save_checkpoint",
]


@dataclass
class History:
    """Per-epoch training record returned by `fit`; `plots.plot_history` draws it."""

    records: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None

    def append(self, **values: float) -> None:
        self.records.append(values)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list[float]:
        """A column, e.g. `history["val_acc"]`."""
        return [r.get(key, float("nan")) for r in self.records]

    @property
    def last(self) -> dict[str, float]:
        return self.records[-1] if self.records else {}

    @property
    def seconds(self) -> float:
        """Total training time (seconds)."""
        return float(sum(self["seconds"]))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON-ready): the per-epoch records, `stopped_early`, `best_epoch`."""
        return {"records": [dict(r) for r in self.records], "stopped_early": self.stopped_early,
                "best_epoch": self.best_epoch}

    def to_frame(self):
        """The history as a pandas DataFrame, one row per epoch."""
        import pandas as pd

        cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
        return pd.DataFrame(self.records, columns=cols)

    def __repr__(self) -> str:
        if not self.records:
            return "History(empty)"
        last = self.last
        val = f", val_acc={last['val_acc']:.4f}" if not math.isnan(last.get("val_acc", math.nan)) else ""
        return (
            f"History(epochs={len(self)}, train_acc={last['train_acc']:.4f}{val}, "
            f"time={self.seconds:.1f}s{', stopped early' if self.stopped_early else ''})"
        )


def _prepare(x_u8: torch.Tensor, mean, std, channels_last: bool) -> torch.Tensor:
    """uint8 batch -> normalised float32, in channels-last memory order if asked (4-D only)."""
    x = normalize(x_u8, mean, std)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def _flip_logits(model: nn.Module, x: torch.Tensor, flip: bool) -> torch.Tensor:
    """Logits of a normalised batch; with `flip`, the mean of the logits of x and of x mirrored."""
    logits = model(x).float()
    return (logits + model(x.flip(-1)).float()) / 2 if flip else logits


def _batch_stats(model: nn.Module, x_u8: torch.Tensor, y: torch.Tensor, mean, std,
                 batch_size: int, criterion: nn.Module, channels_last: bool = False,
                 flip: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy of `model` (eval mode) over uint8 images on the model's device."""
    total_loss = torch.zeros((), device=x_u8.device)
    correct = torch.zeros((), dtype=torch.long, device=x_u8.device)
    with torch.inference_mode():
        for idx in iterate_batches(len(y), batch_size, shuffle=False):
            logits = _flip_logits(model, _prepare(x_u8[idx.to(x_u8.device)], mean, std, channels_last), flip)
            yb = y[idx.to(y.device)]
            total_loss += criterion(logits, yb) * len(idx)
            correct += (logits.argmax(1) == yb).sum()
    n = max(len(y), 1)
    return total_loss.item() / n, correct.item() / n


class WeightEMA:
    """Exponential moving average of a model's weights (Polyak averaging) for evaluation.

    After each optimiser step t (counting from 0) the average moves towards the current
    weights: ema <- ema + (1 - d_t) (w - ema), with d_t = min(decay, (1 + t) / (10 + t)), so
    early, still-random weights are forgotten quickly. Float buffers (BatchNorm's running
    statistics) are copied, not averaged: they already are running averages.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema={decay} must be a decay in (0, 1), e.g. 0.99, or None (off)")
        self.decay, self.steps = decay, 0
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """One averaging step after an optimiser step."""
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - d)
        self.steps += 1

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the averaged and the raw weights (call twice to undo)."""
        for p, s in zip(self.params, self.shadow, strict=True):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)


def fit(
    model: nn.Module,
    data: ImageData,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    optimizer: str = "adamw",
    schedule: str = "onecycle",
    label_smoothing: float = 0.0,
    augment: bool = False,
    aug_pad: int = 2,
    aug_flip: bool = False,
    val_fraction: float = 0.1,
    val_data: ImageData | None = None,
    early_stopping: int | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: bool | None = None,
    verbose: bool = True,
    ema: float | None = None,
    channels_last: bool | None = None,
    eval_flip: bool = False,
    warmup: float = 0.25,
) -> History:
    """Train `model` on `data` and return a `History` (per-epoch loss/accuracy/lr/time).

    - optimizer: "adamw" or "sgd" (momentum 0.9, Nesterov); schedule: "onecycle" (the
      learning rate rises to `lr` over the first `warmup` fraction of the steps, then
      anneals to almost 0, both as half-cosines), "cosine" or "constant".
    - augment: random translation by `aug_pad` pixels (and flips if `aug_flip`), batched.
    - Validation: `val_data`'s training split if given, else a stratified `val_fraction`
      of `data`'s training split (0 turns validation off). `eval_flip`: validation logits
      averaged with those of the mirrored images (test-time flip, see `predict`).
    - ema=d: keep an exponential moving average of the weights (decay d, e.g. 0.99);
      validation uses it and the model ends with the averaged weights.
    - channels_last (default: on for image batches): NHWC memory order, which oneDNN's
      CPU convolutions run faster; the results do not depend on it beyond rounding.
    - early_stopping=k: stop after k epochs without a better validation loss and restore
      the best weights.
    - Deterministic on CPU for a given `seed` (and the model's own initial weights).
    - Mixed precision (bfloat16 autocast) on CUDA.
    - `data` may also be a `helpers.folder.FolderStream` (a folder too large for memory):
      batches then come from its DataLoader workers; validation only from `val_data`.
    - progress: a tqdm bar per epoch (default: `helpers.core.interactive()`); verbose:
      one printed line per epoch.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs={epochs} and batch_size={batch_size} must both be >= 1")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1)")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be in [0, 1) (0 turns validation off)")
    if early_stopping is not None and early_stopping < 0:
        raise ValueError(f"early_stopping={early_stopping} must be None/0 (off) or a patience >= 1 epochs")
    if not 0 < warmup < 1:
        raise ValueError(f"warmup={warmup} must be a fraction of the steps in (0, 1)")
    dev = resolve_device(device if device is not None else "auto")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    streaming = not isinstance(data, ImageData) and hasattr(data, "loader")  # a FolderStream
    if streaming:
        train_loader = data.loader("train", batch_size, shuffle=True, seed=seed)
        valid = val_data  # a streamed folder has no cheap validation split; pass val_data
        x = y = None
        n_train = len(train_loader.dataset)
    elif val_data is not None:
        train, valid = data, val_data
    elif val_fraction > 0:
        train, valid = data.split_validation(val_fraction, seed=seed)
    else:
        train, valid = data, None
    if not streaming:
        x, y = train.x_train.to(dev), train.y_train.to(dev)
        n_train = len(y)
    xv = valid.x_train.to(dev) if valid is not None else None
    yv = valid.y_train.to(dev) if valid is not None else None
    mean, std = data.mean, data.std
    nhwc = (len(data.shape) == 3) if channels_last is None else bool(channels_last)
    model.to(dev)
    if nhwc:
        model.to(memory_format=torch.channels_last)

    steps_per_epoch = len(train_loader) if streaming else math.ceil(n_train / batch_size)
    opt = _make_optimizer(model, optimizer, lr, weight_decay)
    sched = _make_schedule(opt, schedule, lr, epochs, steps_per_epoch, warmup)
    averager = WeightEMA(model, ema) if ema is not None else None
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    plain_ce = nn.CrossEntropyLoss()
    amp = dev.type == "cuda"
    show_bar = interactive() if progress is None else progress

    def batches():
        """(uint8 images, labels) on the device: slices of the in-memory tensors, or a DataLoader's."""
        if streaming:
            for xb, yb in train_loader:
                yield xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
        else:
            for idx in iterate_batches(n_train, batch_size, shuffle=True, generator=gen):
                idx = idx.to(dev)
                yield x[idx], y[idx]

    history = History()
    best_loss, best_state, bad_epochs = math.inf, None, 0
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        # running sums stay on the device: no host synchronisation inside the epoch
        total_loss = torch.zeros((), device=dev)
        correct = torch.zeros((), dtype=torch.long, device=dev)
        seen = 0
        epoch_batches = batches()
        if show_bar:
            from tqdm.auto import tqdm

            epoch_batches = tqdm(epoch_batches, total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}", leave=False)
        for xb, yb in epoch_batches:
            if augment:
                xb = augment_batch(xb, pad=aug_pad, flip=aug_flip, generator=gen)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(_prepare(xb, mean, std, nhwc))
                loss = criterion(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            if averager is not None:
                averager.update()
            with torch.no_grad():
                total_loss += loss.detach() * len(yb)
                correct += (logits.argmax(1) == yb).sum()
            seen += len(yb)
        seconds = time.perf_counter() - start
        record = {
            "epoch": epoch,
            "train_loss": total_loss.item() / seen,
            "train_acc": correct.item() / seen,
            "val_loss": math.nan,
            "val_acc": math.nan,
            "lr": opt.param_groups[0]["lr"],
            "seconds": seconds,
        }
        if xv is not None:
            model.eval()
            if averager is not None:
                averager.swap()  # validate the averaged weights
            record["val_loss"], record["val_acc"] = _batch_stats(model, xv, yv, mean, std, 512, plain_ce,
                                                                 nhwc, eval_flip)
            if averager is not None:
                averager.swap()
        history.append(**record)
        if verbose:
            val = f" · val loss {record['val_loss']:.4f} acc {record['val_acc']:.4f}" if xv is not None else ""
            print(
                f"epoch {epoch:>2}/{epochs} · train loss {record['train_loss']:.4f} "
                f"acc {record['train_acc']:.4f}{val} · {seconds:.1f}s"
            )
        if early_stopping and xv is not None:
            if record["val_loss"] < best_loss - 1e-6:
                best_loss, bad_epochs, history.best_epoch = record["val_loss"], 0, epoch
                if averager is not None:
                    averager.swap()
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if averager is not None:
                    averager.swap()
            else:
                bad_epochs += 1
                if bad_epochs >= early_stopping:
                    history.stopped_early = True
                    if verbose:
                        print(f"early stopping: no better validation loss for {early_stopping} epochs; "
                              f"restoring epoch {history.best_epoch}")
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    elif averager is not None:
        averager.swap()  # the model keeps the averaged weights
    if nhwc:  # hand the model back in the default layout: code that views its weights (pruning,
        model.to(memory_format=torch.contiguous_format)  # export, parameters_to_vector) expects it
    model.eval()
    return history


def _make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    raise ValueError(f"optimizer={name!r} is not supported; valid choices: 'adamw', 'sgd'")


def _make_schedule(opt, name: str, lr: float, epochs: int, steps: int, warmup: float = 0.25):
    total = epochs * steps
    if name == "onecycle":
        if abs(warmup * total - 1) < 1e-9:  # OneCycleLR divides by warmup * total - 1 (e.g. 4 steps at 0.25)
            warmup += 0.5 / total
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=warmup)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if name == "constant":
        return None
    raise ValueError(f"schedule={name!r} is not supported; valid choices: 'onecycle', 'cosine', 'constant'")


def predict(
    model: nn.Module,
    x: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 512,
    flip: bool = False,
) -> torch.Tensor:
    """Logits for uint8 images `[N, C, H, W]` (normalised with the training statistics), on CPU.

    flip: test-time augmentation, the mean of the logits of each image and of its mirror
    image (only for classes that a horizontal flip does not change, e.g. clothes, photos;
    not digits).
    """
    model.eval()
    dev = next(model.parameters()).device
    out = []
    with torch.no_grad():  # not inference_mode: callers may use the logits in autograd (distillation)
        for idx in iterate_batches(len(x), batch_size, shuffle=False):
            xb = normalize(x[idx].to(dev), tuple(mean), tuple(std))
            out.append(_flip_logits(model, xb, flip).cpu())
    return torch.cat(out)


def evaluate(model: nn.Module, data: ImageData, split: str = "test", batch_size: int = 512,
             flip: bool = False) -> dict[str, float]:
    """Loss and accuracy on the test (or train) split: `{"loss": ..., "acc": ...}` (flip: see `predict`)."""
    if split not in ("test", "train"):
        raise ValueError(f"split={split!r}; valid choices: 'test', 'train'")
    if not isinstance(data, ImageData) and hasattr(data, "loader"):  # a FolderStream
        dev = next(model.parameters()).device
        model.eval()
        total, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for xb, yb in data.loader(split, batch_size, shuffle=False):
                logits = _flip_logits(model, normalize(xb.to(dev), data.mean, data.std), flip).cpu()
                total += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
                correct += (logits.argmax(1) == yb).sum().item()
                n += len(yb)
        return {"loss": total / max(n, 1), "acc": correct / max(n, 1)}
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    logits = predict(model, x, data.mean, data.std, batch_size, flip=flip)
    y = y.cpu()
    return {
        "loss": nn.functional.cross_entropy(logits, y).item(),
        "acc": (logits.argmax(1) == y).float().mean().item(),
    }


# --------------------------------------------------------------------------- checkpoints


class CheckpointError(ValueError):
    """A checkpoint could not be loaded; the message says why and what to do."""


def save_checkpoint(path: str | Path, model: nn.Module, **meta: Any) -> Path:
    """Save `state_dict` plus metadata (build arguments, plain values only) to `path`.

    The file is written to a temporary name first and then renamed, so an interrupted
    save never leaves a half-written checkpoint in place of a good one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "image-recognition-course/checkpoint-v1",
        "build_args": getattr(model, "build_args", None),
        "arch": type(model).__name__,
        "meta": meta,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, model: nn.Module | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint saved by `save_checkpoint` with `weights_only=True`.

    Rebuilds the model from its stored build arguments unless `model` is given. Returns
    `(model, meta)`. Files that are not checkpoints, checkpoints of another architecture and
    files carrying arbitrary pickled objects raise CheckpointError with a clear message.
    """
    from .models import build_model

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since PyTorch 1.6
        raise CheckpointError(
            f"{str(path)!r} is not a PyTorch checkpoint (not a torch.save archive, or it is "
            "truncated); save checkpoints with helpers.save_checkpoint"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refused to load {str(path)!r}: it contains Python objects other than tensors and "
            f"plain values, and loading those could run arbitrary code (weights_only=True). "
            f"Only load checkpoints you trust. ({str(err).splitlines()[0]})"
        ) from None
    except Exception as err:  # noqa: BLE001 - any decoding failure means "not a checkpoint"
        raise CheckpointError(
            f"{str(path)!r} is not a PyTorch checkpoint (or it is truncated): {err}"
        ) from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise CheckpointError(
            f"{str(path)!r} is a torch file but not a course checkpoint (no 'state_dict'); "
            "save checkpoints with helpers.save_checkpoint"
        )
    if model is None:
        args = payload.get("build_args")
        if not args:
            raise CheckpointError(f"{str(path)!r} has no build arguments; pass the model to load into")
        args = dict(args)
        model = build_model(args.pop("name"), args.pop("in_shape"), args.pop("n_classes"), **args)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        saved = payload.get("build_args") or {"arch": payload.get("arch")}
        first = "; ".join(str(err).splitlines()[1:3]).strip()
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit this model: it was saved from {saved}, the model "
            f"is {type(model).__name__}{getattr(model, 'build_args', '')}. Build the same "
            f"architecture (or call load_checkpoint(path) without a model). Details: {first}"
        ) from None
    model.eval()
    return model, payload.get("meta", {})
