"""Hand-crafted features and receptive fields: Sobel edges, HOG, the receptive-field table.

- `sobel(image)`: horizontal/vertical derivatives and gradient magnitude with the 3x3 Sobel
  kernels, written as one `conv2d` (so it is the same operation a CNN layer performs).
- `hog_features(images)`: scikit-image's Histogram of Oriented Gradients for a batch.
- `receptive_field_table(model)`: kernel, stride, jump and receptive field of every
  convolution and pooling layer of a sequential network, from the recurrence
  `r_l = r_{l-1} + (k_l - 1) d_l j_{l-1}`, `j_l = j_{l-1} s_l`.
- `empirical_receptive_field(model, size)`: the same number measured with a gradient, to
  check the formula.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SOBEL_X",
    "SOBEL_Y",
    "empirical_receptive_field",
    "hog_features",
    "receptive_field_table",
    "sobel",
]

#: Sobel kernel for the derivative along x (columns): responds to vertical edges.
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
#: Sobel kernel for the derivative along y (rows): responds to horizontal edges.
SOBEL_Y = SOBEL_X.T.contiguous()


def _as_gray_float(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A 2-D float64 tensor from a `[H, W]` image (or `[1, H, W]` tensor)."""
    t = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2:
        raise ValueError(
            f"sobel expects one grayscale image [H, W] (or [1, H, W]), got shape {tuple(t.shape)}; "
            "convert colour images first (e.g. skimage.color.rgb2gray)"
        )
    return t.to(torch.float64)


def sobel(image: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gx, gy, magnitude) of a grayscale image `[H, W]`, each `[H, W]` float64.

    Borders repeat the edge pixel (for a 1-pixel border the same as `scipy.ndimage.sobel`'s
    default "reflect" mode);
    the kernels are cross-correlated, as `torch.nn.Conv2d` does.
    """
    x = _as_gray_float(image)[None, None]  # [H, W] -> [1, 1, H, W]
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    kernels = torch.stack([SOBEL_X, SOBEL_Y])[:, None].to(torch.float64)  # [2, 1, 3, 3]
    g = F.conv2d(x, kernels)[0]  # [2, H, W]
    gx, gy = g[0], g[1]
    return gx, gy, torch.sqrt(gx**2 + gy**2)


def hog_features(
    images: np.ndarray | torch.Tensor,
    orientations: int = 9,
    pixels_per_cell: tuple[int, int] = (4, 4),
    cells_per_block: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """HOG descriptors `[N, D]` of grayscale images `[N, H, W]` or `[N, 1, H, W]` (any dtype).

    A thin batch wrapper around `skimage.feature.hog` (L2-Hys block normalisation). The
    defaults suit the 8x8 digits: 2x2 cells of 4x4 pixels, 9 orientation bins -> 36 numbers.
    """
    from skimage.feature import hog

    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"hog_features expects [N, H, W] or [N, 1, H, W] grayscale images, got shape {arr.shape}")
    if orientations < 1:
        raise ValueError(f"orientations={orientations} must be >= 1")
    h, w = arr.shape[1:]
    if pixels_per_cell[0] * cells_per_block[0] > h or pixels_per_cell[1] * cells_per_block[1] > w:
        raise ValueError(
            f"pixels_per_cell={pixels_per_cell} x cells_per_block={cells_per_block} does not fit "
            f"in a {h}x{w} image; use smaller cells or blocks"
        )
    arr = arr.astype(np.float64)
    return np.stack([
        hog(img, orientations=orientations, pixels_per_cell=pixels_per_cell,
            cells_per_block=cells_per_block, block_norm="L2-Hys", feature_vector=True)
        for img in arr
    ])  # fmt: skip


def _pair(v: int | Sequence[int]) -> int:
    """The first entry of a square kernel/stride/dilation (we assume square layers)."""
    if isinstance(v, int):
        return v
    if len(set(v)) != 1:
        raise ValueError(f"non-square kernel/stride/dilation {tuple(v)} is not supported")
    return int(v[0])


def _spatial_layers(model: nn.Module | Sequence[nn.Module]) -> list[tuple[str, nn.Module]]:
    root = model if isinstance(model, nn.Module) else nn.Sequential(*model)
    kinds = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
    layers = [(name or type(m).__name__, m) for name, m in root.named_modules() if isinstance(m, kinds)]
    if not layers:
        raise ValueError(f"{type(root).__name__} has no Conv2d, MaxPool2d or AvgPool2d layer")
    return layers


def receptive_field_table(model: nn.Module | Sequence[nn.Module]):
    """Receptive field after each convolution / pooling layer of a *sequential* network.

    Layers are taken in definition order (`named_modules`), so the network must apply them
    one after the other (VGG, LeNet; not the shortcut branches of a ResNet). Returns a
    pandas DataFrame with columns layer, type, kernel, stride, dilation, jump (distance in
    input pixels between neighbouring outputs) and rf (receptive field side in input pixels).
    """
    import pandas as pd

    rows = []
    rf, jump = 1, 1
    for name, m in _spatial_layers(model):
        k, s = _pair(m.kernel_size), _pair(m.stride)
        d = _pair(m.dilation) if hasattr(m, "dilation") else 1
        rf = rf + (k - 1) * d * jump
        jump = jump * s
        rows.append({"layer": name, "type": type(m).__name__, "kernel": k, "stride": s,
                     "dilation": d, "jump": jump, "rf": rf})  # fmt: skip
    return pd.DataFrame(rows)


def empirical_receptive_field(model: nn.Module | Sequence[nn.Module], size: int = 64) -> int:
    """Receptive field of the centre output of the last conv/pool layer, measured with a gradient.

    Each conv/pool layer is replaced by a one-channel convolution of the same kernel, stride,
    padding and dilation with all-ones weights (so no gradient is lost to ReLU or max
    pooling); the number of input rows that receive a non-zero gradient from the centre
    output is the receptive field. `size` is the input side and must exceed the answer.
    """
    layers = []
    for _, m in _spatial_layers(model):
        k, s = _pair(m.kernel_size), _pair(m.stride)
        p = _pair(m.padding)
        d = _pair(m.dilation) if hasattr(m, "dilation") else 1
        conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False).double()
        nn.init.ones_(conv.weight)
        layers.append(conv)
    net = nn.Sequential(*layers)
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    y = net(x)
    if y.shape[-1] < 1:
        raise ValueError(f"size={size} is too small for this network; use a larger input")
    y[0, 0, y.shape[-2] // 2, y.shape[-1] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1) > 0).flatten()
    extent = int(rows.max() - rows.min() + 1)
    if rows.min() == 0 or rows.max() == size - 1:
        raise ValueError(f"the receptive field reaches the border of a {size}x{size} input; use a larger size")
    return extent
