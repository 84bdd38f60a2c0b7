"""The figures every chapter draws (images, training curves), in the book's style.

The style itself (`set_style`, the CJK font) lives in `helpers.style`, re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from .style import cjk_font, set_style

if TYPE_CHECKING:
    from .training import History

__all__ = ["cjk_font", "plot_history", "set_style", "show_images", "to_display"]

def to_display(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Any image (`[C, H, W]` tensor, `[H, W, C]` or `[H, W]` array, uint8 or float) as an array imshow takes."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.ndim == 3 and image.shape[0] in (1, 3, 4):
            image = image.permute(1, 2, 0)  # [C, H, W] -> [H, W, C]
        image = image.numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8:
        lo, hi = float(image.min()), float(image.max())
        if lo < 0 or hi > 1:  # normalised data: rescale for display only
            image = (image - lo) / (hi - lo + 1e-12)
    return image


def show_images(
    images: Sequence[Any] | torch.Tensor,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    size: float = 1.4,
    suptitle: str | None = None,
    cmap: str = "gray",
) -> plt.Figure:
    """Draw images in a grid with optional titles; returns the figure."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(to_display(images[i]), cmap=cmap)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_history(history: History, title: str | None = None) -> plt.Figure:
    """Loss and accuracy per epoch, training vs validation, side by side."""
    frame = history.to_frame()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(frame["epoch"], frame["train_loss"], "o-", label="train")
    ax_acc.plot(frame["epoch"], frame["train_acc"], "o-", label="train")
    if frame["val_loss"].notna().any():
        ax_loss.plot(frame["epoch"], frame["val_loss"], "s-", label="validation")
        ax_acc.plot(frame["epoch"], frame["val_acc"], "s-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
