"""A small Vision Transformer (Dosovitskiy et al., 2021) written out: patches, position
embeddings, scaled dot-product attention and pre-norm transformer blocks.

The attention formula is implemented by hand (`attention`) so a notebook can check it
against `torch.nn.functional.scaled_dot_product_attention`; `SmallViT` uses it. The model
takes the image shape `(C, H, W)` and the number of classes like the models in
`helpers.models`, so `helpers.fit` trains it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SmallViT", "attention", "build_vit", "patchify"]


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images `[B, C, H, W]` into non-overlapping patches `[B, N, C*patch*patch]`.

    N = (H / patch) * (W / patch), patches in row-major order; H and W must be multiples of
    `patch`.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images [B, C, H, W], got shape {list(x.shape)}")
    b, c, h, w = x.shape
    if patch < 1 or h % patch or w % patch:
        raise ValueError(
            f"patch={patch} must be >= 1 and divide the image size {h}x{w}; "
            f"valid choices: {[p for p in range(1, min(h, w) + 1) if h % p == 0 and w % p == 0]}"
        )
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)  # [B, C, h, p, w, p]
    x = x.permute(0, 2, 4, 1, 3, 5)  # [B, h, w, C, p, p]
    return x.reshape(b, (h // patch) * (w // patch), c * patch * patch)  # [B, N, C*p*p]


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, return_weights: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention softmax(Q K^T / sqrt(d)) V over the last two dimensions.

    q: `[..., N, d]`, k: `[..., M, d]`, v: `[..., M, d_v]` -> `[..., N, d_v]` (and the
    attention weights `[..., N, M]` when `return_weights`).
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"shapes do not fit: q {list(q.shape)}, k {list(k.shape)}, v {list(v.shape)}; "
            "need q [..., N, d], k [..., M, d], v [..., M, d_v]"
        )
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [..., N, M]
    weights = scores.softmax(dim=-1)
    out = weights @ v
    return (out, weights) if return_weights else out


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with our `attention` function (no masking, no dropout)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)  # [B, N, 3, h, d/h]
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, h, N, d/h]
        out, weights = attention(q, k, v, return_weights=True)
        self.last_weights = weights.detach()
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # [B, h, N, d/h] -> [B, N, d]


class Block(nn.Module):
    """Pre-norm transformer block: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1, self.attn = nn.LayerNorm(dim), MultiHeadSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SmallViT(nn.Module):
    """Patch embedding + [CLS] token + learned position embeddings + `depth` blocks + linear head."""

    arch = "vit"

    def __init__(
        self,
        in_shape: Sequence[int],
        n_classes: int,
        patch: int = 2,
        dim: int = 32,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        patchify(torch.zeros(1, c, h, w), patch)  # validates the patch size
        self.patch = patch
        n_patches = (h // patch) * (w // patch)
        self.embed = nn.Linear(c * patch * patch, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n_patches + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The input tokens `[B, 1 + N, dim]`: [CLS] then the embedded patches, plus positions."""
        z = self.embed(patchify(x, self.patch))  # [B, N, C*p*p] -> [B, N, dim]
        cls = self.cls.expand(len(x), -1, -1)  # [B, 1, dim]
        return torch.cat([cls, z], dim=1) + self.pos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.norm(self.blocks(self.tokens(x)))
        return self.head(z[:, 0])  # the [CLS] token's output

    def extra_repr(self) -> str:
        return f"params={sum(p.numel() for p in self.parameters()):,}"


def build_vit(in_shape: Sequence[int], n_classes: int, **kwargs) -> SmallViT:
    """A `SmallViT` with its build arguments stored (`model.build_args`, like `build_model`)."""
    model = SmallViT(tuple(in_shape), n_classes, **kwargs)
    model.build_args = {"name": "vit", "in_shape": list(in_shape), "n_classes": n_classes, **kwargs}
    return model
