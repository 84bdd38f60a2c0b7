"""Adversarial examples (FGSM, PGD) written out, common corruptions, and adversarial training.

Attacks work in pixel space: images are floats in [0, 1] and the model is wrapped with
`PixelModel`, which applies the training normalisation itself. The budget `eps` is then a
fraction of the pixel range (8/255 is a common choice) and every attacked image stays a
valid image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CORRUPTIONS",
    "PixelModel",
    "accuracy",
    "corrupt",
    "fgsm",
    "fit_adversarial",
    "pgd",
]


class PixelModel(nn.Module):
    """`model` applied to images in [0, 1]: normalises with `mean`/`std` first."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def _check_eps(eps: float) -> None:
    if not 0 <= eps <= 1:
        raise ValueError(f"eps={eps!r} must be in [0, 1] (a fraction of the pixel range, e.g. 8/255)")


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al., 2015): x + eps * sign(grad_x loss), in [0, 1]."""
    _check_eps(eps)
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float | None = None,
    steps: int = 10,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al., 2018), L-infinity ball of radius `eps`.

    `steps` signed-gradient steps of size `alpha` (default 2.5 * eps / steps), each followed
    by a projection back onto the eps-ball around `x` and onto [0, 1].
    """
    _check_eps(eps)
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x = x.detach()
    adv = x.clone()
    if random_start and eps > 0:
        noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device) * 2 - 1
        adv = (x + eps * noise).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), y)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)  # project
    return adv.detach()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Accuracy of `model` on float images `x` (already in the model's input space)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item()
    return correct / max(len(x), 1)


# --------------------------------------------------------------------------- corruptions

CORRUPTIONS = ("noise", "blur", "rotation", "contrast")


def corrupt(
    x: torch.Tensor, kind: str, severity: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A common corruption of images `[B, C, H, W]` in [0, 1] (Hendrycks & Dietterich, 2019 style).

    - noise: add Gaussian noise with std `severity`;
    - blur: Gaussian blur with sigma `severity` pixels;
    - rotation: rotate by `severity` degrees (zeros fill the corners);
    - contrast: scale the distance to each image's mean by `1 - severity` (severity in [0, 1]).
    Severity 0 returns the images unchanged.
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind={kind!r} is not a corruption here; valid choices: {', '.join(map(repr, CORRUPTIONS))}")
    if severity < 0:
        raise ValueError(f"severity={severity!r} must be >= 0")
    if severity == 0:
        return x.clone()
    if kind == "noise":
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
        return (x + severity * noise).clamp(0, 1)
    if kind == "blur":
        radius = max(1, math.ceil(3 * severity))
        t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
        k1 = torch.exp(-(t**2) / (2 * severity**2))
        k1 = k1 / k1.sum()
        c = x.shape[1]
        kx = k1.view(1, 1, 1, -1).repeat(c, 1, 1, 1)  # [C, 1, 1, K]
        ky = k1.view(1, 1, -1, 1).repeat(c, 1, 1, 1)  # [C, 1, K, 1]
        out = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kx, groups=c)
        return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), ky, groups=c)
    if kind == "rotation":
        theta = math.radians(severity)
        rot = torch.tensor([[math.cos(theta), -math.sin(theta), 0.0], [math.sin(theta), math.cos(theta), 0.0]],
                           dtype=x.dtype, device=x.device)
        grid = F.affine_grid(rot.expand(len(x), 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)
    if severity > 1:
        raise ValueError(f"contrast severity={severity!r} must be in [0, 1]")
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (mean + (1 - severity) * (x - mean)).clamp(0, 1)


# --------------------------------------------------------------------------- adversarial training


def fit_adversarial(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[float]:
    """Train `model` (a `PixelModel`, inputs in [0, 1]) on FGSM examples with a random start.

    "Fast is better than free" (Wong et al., 2020): each batch is attacked from a random
    point in the eps-ball with one step of size 1.25 * eps; eps=0 is ordinary training with
    the same optimiser (AdamW + one-cycle schedule), so the two are comparable. Returns the
    mean training loss of each epoch.
    """
    _check_eps(eps)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs={epochs} and batch_size={batch_size} must both be >= 1")
    gen = torch.Generator().manual_seed(seed)
    steps = math.ceil(len(x) / batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.25)
    losses = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen).to(x.device)
        total = 0.0
        for i in range(0, len(x), batch_size):
            xb, yb = x[order[i : i + batch_size]], y[order[i : i + batch_size]]
            if eps > 0:
                start = (xb + eps * (torch.rand(xb.shape, generator=gen).to(xb.device) * 2 - 1)).clamp(0, 1)
                adv = fgsm(model, start, yb, min(1.0, 1.25 * eps))
                xb = torch.min(torch.max(adv, xb - eps), xb + eps)  # project onto the eps-ball
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(yb)
        losses.append(total / len(x))
    model.eval()
    return losses
