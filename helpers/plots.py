"""One plotting style for the whole book, plus the figures every chapter draws.

`set_style()` is called by `helpers.setup()`. It makes Chinese labels render where a CJK font
is installed (Noto Sans CJK, WenQuanYi, SimHei, PingFang, Microsoft YaHei ...): matplotlib
falls back from the Latin font to the CJK one glyph by glyph.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import font_manager

if TYPE_CHECKING:
    from .training import History

__all__ = ["cjk_font", "plot_history", "set_style", "show_images", "to_display"]

# The first of these that is installed is used for Chinese text.
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "Arial Unicode MS",
)


_CJK_FILE_HINTS = ("cjk", "wqy", "simhei", "msyh", "pingfang", "sourcehan", "notosanssc")


def cjk_font() -> str | None:
    """Name of an installed font that has Chinese glyphs, or None if there is none.

    matplotlib caches its font list; a CJK font installed after that cache was written is
    not in it, so on a miss we look through the system font folders once and add CJK fonts.
    """
    installed = {f.name for f in font_manager.fontManager.ttflist}
    found = next((name for name in CJK_FONTS if name in installed), None)
    if found is None:
        for path in font_manager.findSystemFonts():
            if any(h in Path(path).name.lower() for h in _CJK_FILE_HINTS):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        installed = {f.name for f in font_manager.fontManager.ttflist}
        found = next((name for name in CJK_FONTS if name in installed), None)
    return found


_warned_no_cjk = False


def _warn_no_cjk() -> None:
    """Say once that Chinese labels will show as boxes, then silence matplotlib's per-glyph warnings."""
    global _warned_no_cjk
    _warned_no_cjk = True
    warnings.warn(
        "no CJK font found: Chinese labels in figures will show as boxes. Install one "
        "(Debian/Ubuntu: apt-get install fonts-noto-cjk; conda: conda install -c conda-forge "
        "font-ttf-noto-cjk) and restart the kernel.",
        stacklevel=3,
    )
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")


def set_style() -> None:
    """Apply the book's plot style: seaborn's clean grid, readable sizes, CJK fallback."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    fonts = ["DejaVu Sans"]
    cjk = cjk_font()
    if cjk:
        fonts.append(cjk)
    elif not _warned_no_cjk:
        _warn_no_cjk()
    matplotlib.rcParams.update(
        {
            # a list of families: matplotlib falls back glyph by glyph (Latin, then CJK)
            "font.family": fonts,
            "axes.unicode_minus": False,  # CJK fonts often lack U+2212
            "figure.dpi": 80,
            "savefig.dpi": 100,
            "figure.figsize": (6.4, 4.0),
            "axes.titlesize": 12,
            "image.cmap": "gray",
        }
    )


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
