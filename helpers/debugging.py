"""Debugging training: a learning-rate range test, a pre-flight checklist, class imbalance.

    result = debugging.lr_range_test(model, data)           # loss vs learning rate
    debugging.plot_lr_range(result)                         # pick a rate below the blow-up
    print(debugging.training_checklist(model, data))        # data, labels, forward, gradients
    balanced = debugging.oversample(data)                   # equal class counts by resampling
    weights = debugging.class_weights(data.y_train)         # or weight the loss instead

Everything works on the course's `ImageData` (uint8 images plus the training mean/std) and
normalises batches exactly as `helpers.fit` does, so what the checks see is what `fit` sees.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from .core import resolve_device
from .data import ImageData, iterate_batches, normalize

__all__ = [
    "Check",
    "ChecklistReport",
    "LRRangeResult",
    "class_counts",
    "class_weights",
    "lr_range_test",
    "make_imbalanced",
    "oversample",
    "plot_lr_range",
    "training_checklist",
]


# --------------------------------------------------------------------------- LR range test


@dataclass
class LRRangeResult:
    """Learning rates tried (one per mini-batch), the smoothed loss at each, and a suggestion."""

    lrs: list[float]
    losses: list[float]
    suggested_lr: float
    min_loss_lr: float
    diverged_at: float | None = None

    def __repr__(self) -> str:
        blow = f", diverged at {self.diverged_at:.2g}" if self.diverged_at else ""
        return (f"LRRangeResult({len(self.lrs)} steps, lr {self.lrs[0]:.1e}..{self.lrs[-1]:.1e}, "
                f"min loss at {self.min_loss_lr:.2g}, suggested {self.suggested_lr:.2g}{blow})")


def lr_range_test(
    model: nn.Module,
    data: ImageData,
    *,
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    steps: int = 100,
    batch_size: int = 64,
    optimizer: str = "adamw",
    smoothing: float = 0.9,
    diverge_factor: float = 4.0,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> LRRangeResult:
    """Learning-rate range test (Smith, 2017): raise the lr exponentially, one step per batch.

    Trains a *copy* of `model` (the model passed in is left untouched) for up to `steps`
    mini-batches of `data`'s training split, multiplying the learning rate by a constant
    factor each step from `start_lr` to `end_lr`. The loss is smoothed with an exponential
    moving average (`smoothing`); the test stops early once it exceeds `diverge_factor`
    times the best loss seen (or becomes NaN). The suggested rate is one tenth of the rate
    with the lowest smoothed loss, a common conservative rule.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if steps < 2:
        raise ValueError(f"steps={steps} must be >= 2")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing={smoothing} must be in [0, 1)")
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer={optimizer!r} is not supported; valid choices: 'adamw', 'sgd'")
    dev = resolve_device(device if device is not None else "auto")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = copy.deepcopy(model).to(dev).train()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(params, lr=start_lr, weight_decay=0.0) if optimizer == "adamw"
           else torch.optim.SGD(params, lr=start_lr, momentum=0.9))
    factor = (end_lr / start_lr) ** (1 / (steps - 1))
    x, y = data.x_train.to(dev), data.y_train.to(dev)
    criterion = nn.CrossEntropyLoss()
    lrs: list[float] = []
    losses: list[float] = []
    avg, best, diverged = 0.0, math.inf, None
    lr = start_lr
    step = 0
    while step < steps:
        for idx in iterate_batches(len(y), batch_size, shuffle=True, generator=gen):
            if step >= steps:
                break
            idx = idx.to(dev)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = criterion(net(normalize(x[idx], data.mean, data.std)).float(), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = loss.item()
            avg = smoothing * avg + (1 - smoothing) * value
            smoothed = avg / (1 - smoothing ** (step + 1))  # bias correction, as in Adam
            if not math.isfinite(smoothed) or smoothed > diverge_factor * best:
                diverged = lr
                step = steps
                break
            lrs.append(lr)
            losses.append(smoothed)
            best = min(best, smoothed)
            lr *= factor
            step += 1
    if not losses:
        raise ValueError(f"the loss diverged at the very first step (lr={start_lr}); lower start_lr")
    min_lr = lrs[int(np.argmin(losses))]
    return LRRangeResult(lrs=lrs, losses=losses, suggested_lr=min_lr / 10, min_loss_lr=min_lr,
                         diverged_at=diverged)


def plot_lr_range(result: LRRangeResult, title: str | None = None):
    """Smoothed loss against learning rate (log axis), with the minimum and the suggestion marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(result.lrs, result.losses, "-")
    ax.set_xscale("log")
    ax.axvline(result.min_loss_lr, color="grey", ls=":", label=f"lowest loss at {result.min_loss_lr:.2g}")
    ax.axvline(result.suggested_lr, color="C2", ls="--", label=f"suggested lr {result.suggested_lr:.2g}")
    ax.set(xlabel="learning rate (log scale)", ylabel="smoothed training loss",
           title=title or "Learning-rate range test")
    ax.legend()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- checklist


@dataclass
class Check:
    """One item of the checklist: `status` is "ok", "warn" or "FAIL"."""

    group: str
    name: str
    status: str
    detail: str


@dataclass
class ChecklistReport:
    """The checklist's findings; `str()` prints one line per check, `ok` is True when nothing failed."""

    checks: list[Check] = field(default_factory=list)

    def add(self, group: str, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(group, name, status, detail))

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "FAIL"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks: {', '.join(c.name for c in self.checks)}")

    def __str__(self) -> str:
        icon = {"ok": "✓", "warn": "!", "FAIL": "✗"}
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"{icon[c.status]} {c.status:<4} [{c.group}] {c.name:<{width}}  {c.detail}" for c in self.checks]
        verdict = ("all checks passed" if self.ok and not self.warnings else
                   f"{len(self.failures)} failed, {len(self.warnings)} warning(s)")
        return "\n".join([*lines, f"→ {verdict}"])

    __repr__ = __str__


def _status(bad: bool, warn: bool = False) -> str:
    return "FAIL" if bad else ("warn" if warn else "ok")


def training_checklist(
    model: nn.Module,
    data: ImageData,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    imbalance_warn: float = 3.0,
    grad_explode: float = 1e3,
    seed: int = 0,
) -> ChecklistReport:
    """Inspect data, labels, one forward pass and its gradients; return a readable report.

    - data: pixel range and dtype, NaN/inf, the normalised batch's mean and std (≈ 0 and 1
      when `data.mean`/`data.std` are right), a constant image set;
    - labels: within 0..n_classes-1, every class present, imbalance (largest/smallest count
      above `imbalance_warn` warns);
    - forward: logits shape `[B, n_classes]`, finite, and the initial loss near ln(n_classes)
      (a freshly initialised classifier should be unsure; far above it after training
      means the run diverged);
    - gradients: NaN/inf, parameters whose gradient is exactly zero (more than half of
      them fails: dead ReLUs), a total norm above `grad_explode`.

    The model is run on a copy, so its weights and its train/eval mode are not changed.
    """
    if batch_size < 2:
        raise ValueError(f"batch_size={batch_size} must be >= 2")
    dev = resolve_device(device if device is not None else "auto")
    report = ChecklistReport()
    k = data.n_classes
    x_all, y_all = data.x_train, data.y_train.cpu()

    # data
    xf = x_all.float()
    finite = bool(torch.isfinite(xf).all())
    report.add("data", "finite pixels", _status(not finite),
               "no NaN/inf" if finite else f"{int((~torch.isfinite(xf)).sum())} NaN/inf values")
    lo, hi = float(xf.nan_to_num().min()), float(xf.nan_to_num().max())
    in_range = x_all.dtype == torch.uint8 or (0 <= lo and hi <= 255)
    report.add("data", "pixel range", _status(not in_range, hi <= 1.0 and x_all.dtype != torch.uint8),
               f"{x_all.dtype}, min {lo:g}, max {hi:g}" + ("" if in_range else " (expected 0..255)"))
    report.add("data", "not constant", _status(hi == lo), f"{len(y_all)} training images, {hi - lo:g} grey levels apart")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(y_all), generator=gen)[: max(batch_size, min(len(y_all), 1024))]
    xb = normalize(x_all[idx.to(x_all.device)].to(dev), data.mean, data.std)
    m, s = float(xb.mean()), float(xb.std())
    bad_norm = not (math.isfinite(m) and math.isfinite(s)) or abs(m) > 3 or s > 10 or s < 0.1
    warn_norm = abs(m) > 0.5 or not 0.5 < s < 2
    report.add("data", "normalisation", _status(bad_norm, warn_norm),
               f"normalised batch mean {m:.3g}, std {s:.3g} (want ≈ 0 and ≈ 1; data.mean={data.mean}, "
               f"data.std={data.std})")

    # labels
    y_min, y_max = int(y_all.min()), int(y_all.max())
    report.add("labels", "label range", _status(y_min < 0 or y_max >= k),
               f"labels {y_min}..{y_max}, model/classes expect 0..{k - 1}")
    counts = torch.bincount(y_all.clamp(0, k - 1), minlength=k)
    missing = [data.classes[i] for i in range(k) if counts[i] == 0]
    report.add("labels", "all classes present", _status(bool(missing)),
               f"missing: {', '.join(missing)}" if missing else f"{k} classes, counts {counts.min()}..{counts.max()}")
    ratio = float(counts.max()) / max(float(counts.min()), 1.0)
    report.add("labels", "class balance", _status(False, ratio > imbalance_warn),
               f"largest/smallest class = {ratio:.1f}" + (" (imbalanced: consider class weights or "
                                                          "oversampling)" if ratio > imbalance_warn else ""))

    # forward pass (on a copy: weights, mode and grads of the caller's model stay as they are)
    net = copy.deepcopy(model).to(dev).train()
    xb, yb = xb[:batch_size], y_all[idx[:batch_size]].to(dev).clamp(0, k - 1)
    logits = net(xb).float()
    shape_ok = tuple(logits.shape) == (len(yb), k)
    report.add("forward", "output shape", _status(not shape_ok),
               f"logits {list(logits.shape)}, expected [{len(yb)}, {k}]")
    finite_out = bool(torch.isfinite(logits).all())
    report.add("forward", "finite logits", _status(not finite_out),
               "no NaN/inf" if finite_out else "NaN/inf in the logits: check weights (a diverged run?) and inputs")
    loss = nn.functional.cross_entropy(logits, yb) if shape_ok else torch.tensor(math.nan)
    expected = math.log(k)
    lv = loss.item()
    report.add("forward", "loss on one batch", _status(not math.isfinite(lv), math.isfinite(lv) and abs(lv - expected) > 1.0),
               f"{lv:.3g}; a freshly initialised model gives about ln({k}) = {expected:.3f}")

    # gradients
    if shape_ok and loss.requires_grad:
        loss.backward()
        grads = [(n, p.grad) for n, p in net.named_parameters() if p.requires_grad]
        nonfinite = [n for n, g in grads if g is not None and not bool(torch.isfinite(g).all())]
        report.add("gradients", "finite gradients", _status(bool(nonfinite)),
                   f"NaN/inf in {', '.join(nonfinite[:3])}" + (" ..." if len(nonfinite) > 3 else "")
                   if nonfinite else "no NaN/inf")
        zero = [n for n, g in grads if g is None or (n not in nonfinite and not bool(g.abs().sum() > 0))]
        report.add("gradients", "non-zero gradients", _status(2 * len(zero) > len(grads), bool(zero)),
                   f"{len(zero)} of {len(grads)} tensors have all-zero gradients"
                   + (f": {', '.join(zero[:3])}" if zero else "")
                   + (" (dead ReLUs? a too-high learning rate?)" if 2 * len(zero) > len(grads) else ""))
        norm = float(torch.sqrt(sum((g.float() ** 2).sum() for _, g in grads if g is not None)))
        report.add("gradients", "gradient norm", _status(not math.isfinite(norm) or norm > grad_explode),
                   f"total norm {norm:.3g} (exploding above {grad_explode:g})"
                   + ("" if math.isfinite(norm) else ": not finite"))
    else:
        report.add("gradients", "finite gradients", "FAIL", "skipped: the forward pass failed")
    return report


# --------------------------------------------------------------------------- imbalance


def class_counts(y: torch.Tensor | Sequence[int], n_classes: int | None = None) -> torch.Tensor:
    """Number of examples per class, `[n_classes]`."""
    y = torch.as_tensor(y).long().cpu().flatten()
    if len(y) and int(y.min()) < 0:
        raise ValueError(f"labels must be >= 0, found {int(y.min())}")
    return torch.bincount(y, minlength=n_classes or 0)


def class_weights(y: torch.Tensor | Sequence[int], n_classes: int | None = None) -> torch.Tensor:
    """Inverse-frequency weights `n / (K * count_k)` for `nn.CrossEntropyLoss(weight=...)`.

    A balanced set gets all ones; a class with half the average count gets weight 2.
    Raises ValueError if a class has no examples (its weight would be infinite).
    """
    counts = class_counts(y, n_classes).double()
    if (counts == 0).any():
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"class(es) {empty} have no examples; a weight cannot be computed for them")
    return (counts.sum() / (len(counts) * counts)).float()


def make_imbalanced(data: ImageData, minority: Sequence[int], keep: float = 0.1, seed: int = 0) -> ImageData:
    """A copy of `data` whose training split keeps only a fraction `keep` of the `minority` classes.

    The test split is unchanged (balanced), so per-class recall shows what imbalance costs.
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep={keep} must be in (0, 1]")
    bad = [c for c in minority if not 0 <= c < data.n_classes]
    if bad:
        raise ValueError(f"minority classes {bad} are not classes of {data.name!r} (0..{data.n_classes - 1})")
    gen = torch.Generator().manual_seed(seed)
    y = data.y_train.cpu()
    keep_mask = torch.ones(len(y), dtype=torch.bool)
    for c in minority:
        members = torch.nonzero(y == c).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        n_keep = max(1, round(keep * len(members)))
        keep_mask[members[n_keep:]] = False
    idx = torch.nonzero(keep_mask).flatten().to(data.x_train.device)
    return replace(data, x_train=data.x_train[idx], y_train=data.y_train[idx])


def oversample(data: ImageData, seed: int = 0) -> ImageData:
    """A copy of `data` whose training split repeats minority-class images (drawn with replacement)
    until every class has as many as the largest one. Statistics and the test split are kept."""
    gen = torch.Generator().manual_seed(seed)
    y = data.y_train.cpu()
    counts = class_counts(y, data.n_classes)
    target = int(counts.max())
    parts = []
    for c in range(data.n_classes):
        members = torch.nonzero(y == c).flatten()
        if len(members) == 0:
            continue
        extra = members[torch.randint(len(members), (target - len(members),), generator=gen)]
        parts.append(torch.cat([members, extra]))
    idx = torch.cat(parts).sort().values.to(data.x_train.device)
    return replace(data, x_train=data.x_train[idx], y_train=data.y_train[idx])
