"""Face vs non-face with scikit-image's bundled LFW subset, and a sliding-window detector with NMS.

`skimage.data.lfw_subset()` holds 200 real 25x25 grey crops: 100 faces from Labeled Faces in
the Wild and 100 background patches of the same photos (no download).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WINDOW", "detect", "hog_features", "load_faces", "random_patches", "sliding_windows"]

#: Side of the LFW crops, in pixels.
WINDOW = 25


def load_faces() -> tuple[torch.Tensor, torch.Tensor]:
    """The LFW subset as uint8 images `[200, 1, 25, 25]` and labels (1 = face, 0 = non-face)."""
    import skimage.data

    images = skimage.data.lfw_subset()  # float in [0, 1], faces first
    x = torch.from_numpy(np.round(images * 255).astype(np.uint8))[:, None]  # [200, 25, 25] -> [200, 1, 25, 25]
    y = torch.cat([torch.ones(100, dtype=torch.long), torch.zeros(100, dtype=torch.long)])
    return x, y


def hog_features(x: torch.Tensor, pixels_per_cell: int = 5, cells_per_block: int = 2, orientations: int = 9) -> np.ndarray:
    """HOG descriptors (Dalal & Triggs, 2005) of uint8 grey images `[N, 1, H, W]` -> `[N, D]`."""
    from skimage.feature import hog

    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected grey images [N, 1, H, W], got shape {tuple(x.shape)}")
    return np.stack([
        hog(img[0].numpy(), orientations=orientations, pixels_per_cell=(pixels_per_cell,) * 2,
            cells_per_block=(cells_per_block,) * 2, feature_vector=True)
        for img in x
    ])


def random_patches(image: np.ndarray, n: int, sizes: Sequence[int], seed: int = 0) -> torch.Tensor:
    """`n` random square crops of a grey uint8 image, resized to 25x25: extra non-face examples."""
    rng = np.random.default_rng(seed)
    h, w = image.shape
    out = []
    for _ in range(n):
        s = int(rng.choice([s for s in sizes if s <= min(h, w)]))
        top, left = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        out.append(torch.from_numpy(np.ascontiguousarray(image[top:top + s, left:left + s])))
    crops = torch.stack([F.interpolate(c[None, None].float(), size=(WINDOW, WINDOW), mode="area")[0] for c in out])
    return crops.round().clamp(0, 255).to(torch.uint8)


def sliding_windows(image: np.ndarray, sizes: Sequence[int], stride_fraction: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """All square windows of the given `sizes` (pixels), moved by `stride_fraction` of their size.

    Returns the windows resized to 25x25 (uint8 `[N, 1, 25, 25]`) and their boxes
    `[N, 4]` as (x1, y1, x2, y2) in the image's pixel coordinates.
    """
    if image.ndim != 2:
        raise ValueError(f"expected a grey image [H, W], got shape {image.shape}")
    if not 0 < stride_fraction <= 1:
        raise ValueError(f"stride_fraction={stride_fraction} must be in (0, 1]")
    h, w = image.shape
    img = torch.from_numpy(np.ascontiguousarray(image)).float()[None, None]  # [1, 1, H, W]
    patches, boxes = [], []
    for s in sizes:
        if s > min(h, w) or s < 1:
            raise ValueError(f"window size {s} must be between 1 and the image side {min(h, w)}")
        step = max(1, round(s * stride_fraction))
        # resize the whole image so one window becomes 25 pixels, then cut 25x25 tiles
        scale = WINDOW / s
        small = F.interpolate(img, scale_factor=scale, mode="area", recompute_scale_factor=False)
        tiles = F.unfold(small, kernel_size=WINDOW, stride=max(1, round(step * scale)))  # [1, 625, L]
        n_y = (small.shape[-2] - WINDOW) // max(1, round(step * scale)) + 1
        n_x = (small.shape[-1] - WINDOW) // max(1, round(step * scale)) + 1
        stride_px = max(1, round(step * scale)) / scale
        ys, xs = torch.meshgrid(torch.arange(n_y), torch.arange(n_x), indexing="ij")
        x1, y1 = xs.flatten() * stride_px, ys.flatten() * stride_px
        boxes.append(torch.stack([x1, y1, x1 + s, y1 + s], dim=1))
        patches.append(tiles[0].T.reshape(-1, 1, WINDOW, WINDOW))  # [L, 625] -> [L, 1, 25, 25]
    return torch.cat(patches).round().clamp(0, 255).to(torch.uint8), torch.cat(boxes).float()


def detect(
    model: nn.Module,
    image: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    sizes: Sequence[int] = (64, 96, 128),
    stride_fraction: float = 0.25,
    threshold: float = 0.9,
    iou: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Sliding-window face detection: score every window with `model`, keep P(face) >= threshold, then NMS.

    Returns the kept boxes `[K, 4]` (x1, y1, x2, y2), their scores `[K]`, and how many
    windows passed the threshold before non-maximum suppression (torchvision.ops.nms).
    """
    from torchvision.ops import nms

    from .training import predict

    if not 0 <= threshold <= 1 or not 0 <= iou <= 1:
        raise ValueError(f"threshold={threshold} and iou={iou} must both be in [0, 1]")
    windows, boxes = sliding_windows(image, sizes, stride_fraction)
    scores = predict(model, windows, mean, std).softmax(dim=1)[:, 1]  # P(face)
    keep = scores >= threshold
    boxes, scores = boxes[keep], scores[keep]
    kept = nms(boxes, scores, iou)
    return boxes[kept], scores[kept], int(keep.sum())
