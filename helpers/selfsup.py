"""Contrastive self-supervised learning in the style of SimCLR (Chen et al., 2020), small.

- `simclr_augment`: two random views of each image (crop/scale, rotation, contrast, noise),
  batched with one affine grid instead of a Python loop;
- `nt_xent`: the NT-Xent / InfoNCE loss written out;
- `Encoder` + `pretrain`: a small CNN trained with that loss on unlabelled images;
- `features` + `linear_probe`: freeze the encoder, fit a logistic regression on few labels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Encoder", "features", "linear_probe", "nt_xent", "pretrain", "simclr_augment"]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent loss of two views `[B, D]`: each sample must pick its other view among 2B - 1.

    With z normalised to unit length, s_ij = z_i . z_j / tau, and for the positive pair (i, j):
    loss_i = -log( exp(s_ij) / sum_{k != i} exp(s_ik) ), averaged over all 2B samples.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be [B, D] with the same shape, got {list(z1.shape)} and {list(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature!r} must be > 0")
    b = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # [2B, D]
    sim = z @ z.T / temperature  # [2B, 2B]
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))  # k != i
    positive = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, positive)


def simclr_augment(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.7, 1.0),
    degrees: float = 15.0,
    shift: float = 0.15,
    noise: float = 0.05,
) -> torch.Tensor:
    """A random view of each image `[B, C, H, W]` in [0, 1]: zoom, rotation, shift, contrast, noise."""
    if x.ndim != 4:
        raise ValueError(f"x must be [B, C, H, W], got shape {list(x.shape)}")
    b = len(x)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator) * (hi - lo) + lo).to(x.device)

    s = uniform(*scale)  # zoom in: sample a smaller square of the image
    a = uniform(-degrees, degrees) * math.pi / 180
    tx, ty = uniform(-shift, shift), uniform(-shift, shift)
    theta = torch.stack([
        torch.stack([s * torch.cos(a), -s * torch.sin(a), tx], 1),
        torch.stack([s * torch.sin(a), s * torch.cos(a), ty], 1),
    ], 1)  # [B, 2, 3]
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    contrast = uniform(0.6, 1.4).view(b, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = mean + contrast * (out - mean)
    out = out + noise * torch.randn(out.shape, generator=generator).to(x.device)
    return out.clamp(0, 1)


class Encoder(nn.Module):
    """A small CNN encoder `[B, C, H, W]` -> `[B, dim]` and a projection head for the loss."""

    def __init__(self, in_channels: int = 1, dim: int = 32, proj_dim: int = 32, width: int = 16) -> None:
        super().__init__()
        if min(in_channels, dim, proj_dim, width) < 1:
            raise ValueError(f"in_channels={in_channels}, dim={dim}, proj_dim={proj_dim}, width={width} must all be >= 1")
        self.dim = dim
        self.backbone = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.projector = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The representation (before the projection head), used by the linear probe."""
        return self.backbone(x)


def pretrain(
    encoder: Encoder,
    x: torch.Tensor,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 3e-3,
    temperature: float = 0.5,
    seed: int = 0,
) -> list[float]:
    """SimCLR pre-training on unlabelled images `x` in [0, 1]; returns the loss of each epoch."""
    if epochs < 1 or batch_size < 2:
        raise ValueError(f"epochs={epochs} must be >= 1 and batch_size={batch_size} >= 2")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(encoder.parameters(), lr=lr, weight_decay=1e-4)
    losses = []
    for _ in range(epochs):
        encoder.train()
        order = torch.randperm(len(x), generator=gen).to(x.device)
        total, n = 0.0, 0
        for i in range(0, len(x) - 1, batch_size):
            xb = x[order[i : i + batch_size]]
            if len(xb) < 2:
                continue
            z1 = encoder.projector(encoder(simclr_augment(xb, gen)))
            z2 = encoder.projector(encoder(simclr_augment(xb, gen)))
            loss = nt_xent(z1, z2, temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(xb), n + len(xb)
        losses.append(total / n)
    encoder.eval()
    return losses


def features(encoder: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Frozen representations `[N, dim]` of images `x` in [0, 1] (eval mode, no gradients), on CPU."""
    encoder.eval()
    with torch.no_grad():
        return torch.cat([encoder(x[i : i + batch_size]).cpu() for i in range(0, len(x), batch_size)])


def linear_probe(
    f_train: torch.Tensor, y_train: torch.Tensor, f_test: torch.Tensor, y_test: torch.Tensor, c: float = 1.0
) -> float:
    """Test accuracy of a logistic regression fitted on frozen features (standardised first)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(f_train) != len(y_train) or len(f_test) != len(y_test):
        raise ValueError("features and labels must have the same length")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    clf.fit(f_train.numpy(), y_train.cpu().numpy())
    return float(clf.score(f_test.numpy(), y_test.cpu().numpy()))
