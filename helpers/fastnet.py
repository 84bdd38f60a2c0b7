"""A small CNN sized for fast training on a CPU, after airbench (Jordan, 2024).

`FastNet`: a 3x3 stem convolution, then one block per width: conv 3x3 -> max-pool 2 ->
BatchNorm -> GELU (-> conv 3x3 -> BatchNorm -> GELU when `depth=2`), global max pooling
and a linear classifier whose logits are divided by `temperature`. Pooling right after the
first convolution of a block halves the resolution early, so most of the arithmetic runs
on small feature maps; this is what makes the net cheap on a CPU.

BatchNorm follows airbench: a larger momentum (the running statistics follow the last
few batches, which suits a short schedule) and a frozen scale (only the shift is trained).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["FastNet", "build_fastnet"]


class _BatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with airbench's settings: momentum 0.4 by default and a frozen weight of 1."""

    def __init__(self, width: int, momentum: float = 0.4, eps: float = 1e-12, train_weight: bool = False) -> None:
        super().__init__(width, eps=eps, momentum=momentum)
        self.weight.requires_grad = train_weight


#: The activations FastNet offers: GELU (airbench's) or ReLU (cheaper on a CPU: no erf).
_ACTIVATIONS = {"gelu": nn.GELU, "relu": lambda: nn.ReLU(inplace=True)}


class FastNet(nn.Module):
    """Stem conv, `len(widths)` blocks (conv-pool-BN-GELU, x `depth` convs), global max pool, linear."""

    arch = "fastnet"

    def __init__(
        self,
        in_shape: Sequence[int],
        n_classes: int,
        widths: Sequence[int] = (32, 64, 128),
        stem: int = 24,
        depth: int = 2,
        bn_momentum: float = 0.4,
        bn_train_weight: bool = False,
        temperature: float = 8.0,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        if depth not in (1, 2):
            raise ValueError(f"depth={depth}; valid choices: 1 or 2 convolutions per block")
        if not widths or min(widths) < 1 or stem < 1:
            raise ValueError(f"widths={tuple(widths)} and stem={stem} must be positive channel counts")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation={activation!r}; valid choices: {', '.join(_ACTIVATIONS)}")
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        c, h, _ = in_shape
        self.temperature = float(temperature)

        act = _ACTIVATIONS[activation]

        def bn(w: int) -> nn.Module:
            return _BatchNorm(w, momentum=bn_momentum, train_weight=bn_train_weight)

        layers: list[nn.Module] = [nn.Conv2d(c, stem, 3, padding=1, bias=False), bn(stem), act()]
        c_in, size = stem, h
        for w in widths:
            layers.append(nn.Conv2d(c_in, w, 3, padding=1, bias=False))
            if size >= 4:  # the 8x8 digits are never pooled below 2x2
                layers.append(nn.MaxPool2d(2))
                size //= 2
            layers += [bn(w), act()]
            if depth == 2:
                layers += [nn.Conv2d(w, w, 3, padding=1, bias=False), bn(w), act()]
            c_in = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, n_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).amax(dim=(2, 3))  # global max pooling: [B, C, H, W] -> [B, C]
        return self.head(x) / self.temperature


def build_fastnet(in_shape: Sequence[int], n_classes: int, **kwargs) -> FastNet:
    """A `FastNet` that remembers its build arguments (`model.build_args`), like `build_model`'s models."""
    model = FastNet(tuple(in_shape), n_classes, **kwargs)
    model.build_args = {"name": "fastnet", "in_shape": list(in_shape), "n_classes": n_classes, **kwargs}
    return model
