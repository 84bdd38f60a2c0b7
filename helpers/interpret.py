"""Looking inside a CNN: feature maps, saliency, Grad-CAM (by hand, with hooks) and occlusion.

All functions take a model in eval mode and a preprocessed float batch `[B, C, H, W]`; maps
come back as `[B, H, W]` tensors on the CPU, upsampled to the input size where it makes sense.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["feature_maps", "grad_cam", "occlusion", "overlay", "saliency"]


def _target(logits: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None) -> torch.Tensor:
    """Class index per image: the predicted class when `target` is None."""
    if target is None:
        return logits.argmax(dim=1)
    t = torch.as_tensor(target, device=logits.device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(len(logits))
    if len(t) != len(logits) or int(t.min()) < 0 or int(t.max()) >= logits.shape[1]:
        raise ValueError(f"target={target!r} must be one class index in [0, {logits.shape[1]}) or one per image")
    return t


def feature_maps(model: nn.Module, x: torch.Tensor, layers: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Outputs of the given layers (name -> module) for batch `x`, captured with forward hooks."""
    if not layers:
        raise ValueError("layers is empty; pass {name: module} for the layers to capture")
    out: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n: out.__setitem__(n, o.detach().cpu()))
             for n, m in layers.items()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return out


def saliency(model: nn.Module, x: torch.Tensor, target: int | Sequence[int] | None = None) -> torch.Tensor:
    """Vanilla gradient saliency: max over channels of |d score_target / d input| -> `[B, H, W]`."""
    x = x.clone().requires_grad_(True)
    logits = model(x)
    t = _target(logits, target)
    logits.gather(1, t[:, None]).sum().backward()
    return x.grad.abs().amax(dim=1).detach().cpu()


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    layer: nn.Module,
    target: int | Sequence[int] | None = None,
    upsample: bool = True,
    relu: bool = True,
) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017) by hand with a forward and a backward hook on `layer`.

    weights a_k = mean over positions of d y_target / d A_k; map = ReLU(sum_k a_k A_k).
    Returns `[B, H, W]` (input size if `upsample`, else the layer's size), not normalised.
    """
    store: dict[str, torch.Tensor] = {}

    def forward_hook(_m, _i, output):
        store["act"] = output
        output.register_hook(lambda grad: store.__setitem__("grad", grad))

    handle = layer.register_forward_hook(forward_hook)
    try:
        logits = model(x)
    finally:
        handle.remove()
    if "act" not in store:
        raise ValueError("layer was not called in the forward pass; pass a module of this model")
    t = _target(logits, target)
    model.zero_grad(set_to_none=True)
    logits.gather(1, t[:, None]).sum().backward()
    act, grad = store["act"].detach(), store["grad"].detach()  # [B, K, h, w] each
    weights = grad.mean(dim=(2, 3), keepdim=True)  # [B, K, 1, 1]
    cam = (weights * act).sum(dim=1)  # [B, h, w]
    if relu:
        cam = cam.clamp(min=0)
    if upsample:
        cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return cam.cpu()


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: int | Sequence[int] | None = None,
    patch: int = 32,
    stride: int = 16,
    fill: float = 0.0,
    batch_size: int = 64,
) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler & Fergus, 2014): drop in the target probability when a patch is grey.

    Each `patch x patch` square (moved by `stride`) is set to `fill` (0 = the mean colour
    after normalisation); returns the probability drop, upsampled to `[B, H, W]` by averaging
    the drops of every patch that covers a pixel.
    """
    if patch < 1 or stride < 1:
        raise ValueError(f"patch={patch} and stride={stride} must be >= 1")
    h, w = x.shape[-2:]
    if patch > min(h, w):
        raise ValueError(f"patch={patch} is larger than the image ({h}x{w})")
    with torch.no_grad():
        probs = model(x).softmax(dim=1)
        t = _target(probs, target)
        base = probs.gather(1, t[:, None])[:, 0]  # [B]
        tops = list(range(0, h - patch + 1, stride))
        lefts = list(range(0, w - patch + 1, stride))
        heat = torch.zeros(len(x), h, w)
        count = torch.zeros(h, w)
        for b in range(len(x)):
            variants, boxes = [], []
            for top in tops:
                for left in lefts:
                    xo = x[b].clone()
                    xo[:, top:top + patch, left:left + patch] = fill
                    variants.append(xo)
                    boxes.append((top, left))
            drops = []
            for i in range(0, len(variants), batch_size):
                p = model(torch.stack(variants[i:i + batch_size])).softmax(dim=1)[:, t[b]]
                drops.append(base[b] - p)
            drops = torch.cat(drops).cpu()
            for (top, left), d in zip(boxes, drops):
                heat[b, top:top + patch, left:left + patch] += d
                if b == 0:
                    count[top:top + patch, left:left + patch] += 1
    return heat / count.clamp(min=1)


def overlay(image, heatmap: torch.Tensor, ax=None, alpha: float = 0.5, cmap: str = "jet", title: str | None = None):
    """Draw `heatmap` `[H, W]` (scaled to [0, 1]) over `image` (`[H, W, 3]`, `[H, W]` or a `[C, H, W]` tensor)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from .plots import to_display

    ax = ax or plt.gca()
    img = to_display(image) if isinstance(image, torch.Tensor) else np.asarray(image)
    hm = heatmap.detach().float().cpu()
    hm = (hm - hm.min()) / (hm.max() - hm.min()).clamp(min=1e-12)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    ax.imshow(hm.numpy(), cmap=cmap, alpha=alpha, extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax
