"""Faces: scikit-image's LFW subset, a batched HOG, sliding windows + NMS, hard negatives, test scenes.

`skimage.data.lfw_subset()` holds 200 real 25x25 grey crops: 100 faces from Labeled Faces in
the Wild and 100 background patches of the same photos (no download).

A detector here is any *scorer*: a function from uint8 windows `[N, 1, 25, 25]` to scores
`[N]` in [0, 1] (`cnn_scorer` for a trained network, `svm_scorer` for HOG + a linear SVM).
`detect` slides it over a grey photo, `mine_negatives` collects the windows of face-free
photos it scores high (hard-negative mining), and `paste_scenes` builds evaluation scenes with
known face boxes by pasting held-out faces onto face-free backgrounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "WINDOW",
    "Scorer",
    "cnn_scorer",
    "detect",
    "grey",
    "hog_features",
    "load_faces",
    "mine_negatives",
    "paste_scenes",
    "random_patches",
    "score_windows",
    "sliding_windows",
    "svm_scorer",
]

#: Side of the LFW crops, in pixels.
WINDOW = 25

#: A window scorer: uint8 windows [N, 1, 25, 25] -> float scores [N] in [0, 1] (higher = more face-like).
Scorer = Callable[[torch.Tensor], torch.Tensor]


def load_faces() -> tuple[torch.Tensor, torch.Tensor]:
    """The LFW subset as uint8 images `[200, 1, 25, 25]` and labels (1 = face, 0 = non-face)."""
    import skimage.data

    images = skimage.data.lfw_subset()  # float in [0, 1], faces first
    x = torch.from_numpy(np.round(images * 255).astype(np.uint8))[:, None]  # [200, 25, 25] -> [200, 1, 25, 25]
    y = torch.cat([torch.ones(100, dtype=torch.long), torch.zeros(100, dtype=torch.long)])
    return x, y


def grey(image: np.ndarray) -> np.ndarray:
    """A uint8 grey `[H, W]` image from an RGB(A) or grey photo, with scikit-image's `rgb2gray` weights."""
    from skimage.color import rgb2gray

    if image.ndim == 2:
        return image.astype(np.uint8) if image.dtype != bool else image.astype(np.uint8) * 255
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected a grey [H, W] or colour [H, W, 3|4] image, got shape {image.shape}")
    rgb = image[..., :3]
    return np.round(rgb2gray(rgb) * (255 if rgb.dtype == np.uint8 else 1)).astype(np.uint8)


def hog_features(
    x: torch.Tensor, pixels_per_cell: int = 5, cells_per_block: int = 2, orientations: int = 9,
    chunk: int = 4096,
) -> np.ndarray:
    """HOG descriptors (Dalal & Triggs, 2005) of grey images `[N, 1, H, W]` -> `[N, D]`, batched.

    The same numbers as `skimage.feature.hog(img, orientations, (c, c), (b, b))` (L2-Hys, borders
    with zero gradient, hard orientation bins) up to float32 rounding, computed for `chunk`
    images at once with torch: about 100 times faster than calling `hog` once per window.
    """
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected grey images [N, 1, H, W], got shape {tuple(x.shape)}")
    c, b, o = pixels_per_cell, cells_per_block, orientations
    h, w = x.shape[-2:]
    n_cy, n_cx = h // c, w // c
    if min(c, b, o) < 1 or n_cy < b or n_cx < b:
        raise ValueError(f"pixels_per_cell={c}, cells_per_block={b}, orientations={o} do not fit a "
                         f"{h}x{w} image: need values >= 1 and {b} blocks of {c}-pixel cells per side")
    rows, cols = torch.arange(n_cy * c) // c, torch.arange(n_cx * c) // c
    cell = (rows[:, None] * n_cx + cols[None, :]).flatten()  # [H'*W'] cell index of each pixel
    out = []
    for start in range(0, len(x), chunk):
        img = torch.as_tensor(x[start:start + chunk])[:, 0].float()  # [n, H, W]
        g_row, g_col = torch.zeros_like(img), torch.zeros_like(img)
        g_row[:, 1:-1] = img[:, 2:] - img[:, :-2]
        g_col[:, :, 1:-1] = img[:, :, 2:] - img[:, :, :-2]
        g_row, g_col = g_row[:, :n_cy * c, :n_cx * c], g_col[:, :n_cy * c, :n_cx * c]
        magnitude = torch.hypot(g_col, g_row).flatten(1)  # [n, H'*W']
        angle = torch.rad2deg(torch.atan2(g_row, g_col)) % 180
        bins = (angle * (o / 180)).long().clamp(max=o - 1).flatten(1)  # angle >= 0: truncation is floor
        hist = torch.zeros(len(img), n_cy * n_cx * o)
        hist.scatter_add_(1, cell[None] * o + bins, magnitude)
        hist = (hist / (c * c)).view(-1, n_cy, n_cx, o)
        blocks = hist.unfold(1, b, 1).unfold(2, b, 1).permute(0, 1, 2, 4, 5, 3)  # [n, by, bx, b, b, o]
        v = blocks.reshape(len(img), n_cy - b + 1, n_cx - b + 1, -1)
        v = v / (v.square().sum(-1, keepdim=True) + 1e-10).sqrt()  # L2-Hys: normalise,
        v = v.clamp(max=0.2)  # clip at 0.2,
        v = v / (v.square().sum(-1, keepdim=True) + 1e-10).sqrt()  # normalise again
        out.append(v.reshape(len(img), -1))
    return torch.cat(out).numpy()


def random_patches(image: np.ndarray, n: int, sizes: Sequence[int], seed: int = 0) -> torch.Tensor:
    """`n` random square crops of a grey uint8 image, resized to 25x25: extra non-face examples."""
    rng = np.random.default_rng(seed)
    h, w = image.shape
    fitting = [s for s in sizes if s <= min(h, w)]
    if not fitting:
        raise ValueError(f"no crop size in {list(sizes)} fits the {h}x{w} image")
    out = []
    for _ in range(n):
        s = int(rng.choice(fitting))
        top, left = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        out.append(torch.from_numpy(np.ascontiguousarray(image[top:top + s, left:left + s])))
    crops = torch.stack([F.interpolate(c[None, None].float(), size=(WINDOW, WINDOW), mode="area")[0] for c in out])
    return crops.round().clamp(0, 255).to(torch.uint8)


def sliding_windows(image: np.ndarray, sizes: Sequence[int], stride_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
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
        # resize the whole image so one window becomes 25 pixels, then cut 25x25 tiles
        scale = WINDOW / s
        step = max(1, round(s * stride_fraction * scale))  # stride in the resized image
        small = F.interpolate(img, scale_factor=scale, mode="area", recompute_scale_factor=False)
        tiles = F.unfold(small, kernel_size=WINDOW, stride=step)  # [1, 625, L]
        n_y = (small.shape[-2] - WINDOW) // step + 1
        n_x = (small.shape[-1] - WINDOW) // step + 1
        ys, xs = torch.meshgrid(torch.arange(n_y), torch.arange(n_x), indexing="ij")
        x1, y1 = xs.flatten() * step / scale, ys.flatten() * step / scale
        boxes.append(torch.stack([x1, y1, x1 + s, y1 + s], dim=1))
        patches.append(tiles[0].T.reshape(-1, 1, WINDOW, WINDOW))  # [L, 625] -> [L, 1, 25, 25]
    return torch.cat(patches).round().clamp(0, 255).to(torch.uint8), torch.cat(boxes).float()


def cnn_scorer(model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> Scorer:
    """A scorer from a two-class network (class 1 = face): P(face) = softmax of its logits."""
    from .training import predict

    return lambda windows: predict(model, windows, mean, std).softmax(dim=1)[:, 1]


def svm_scorer(svm, **hog_options: int) -> Scorer:
    """A scorer from a linear classifier on `hog_features`: the logistic of its decision value.

    The logistic maps the signed distance to the hyperplane into (0, 1) without changing the
    ranking, so 0.5 is the SVM's own decision boundary.
    """
    return lambda windows: torch.sigmoid(torch.from_numpy(
        svm.decision_function(hog_features(windows, **hog_options))).float())


def score_windows(scorer: Scorer, image: np.ndarray, sizes: Sequence[int], stride_fraction: float = 0.2
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every sliding window of `image`, its box `[N, 4]` and its score `[N]` from `scorer`."""
    windows, boxes = sliding_windows(image, sizes, stride_fraction)
    scores = torch.as_tensor(scorer(windows)).float().flatten()
    if scores.shape != (len(windows),) or not torch.all((scores >= 0) & (scores <= 1)):
        raise ValueError(f"the scorer must return {len(windows)} scores in [0, 1], got shape "
                         f"{tuple(scores.shape)}, range [{scores.min():.3g}, {scores.max():.3g}]")
    return windows, boxes, scores


def _check_threshold_iou(threshold: float, iou: float) -> None:
    if not 0 <= threshold <= 1 or not 0 <= iou <= 1:
        raise ValueError(f"threshold={threshold} and iou={iou} must both be in [0, 1]")


def detect(
    scorer: Scorer,
    image: np.ndarray,
    sizes: Sequence[int] = (32, 48, 64, 96),
    stride_fraction: float = 0.2,
    threshold: float = 0.5,
    iou: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Sliding-window detection: score every window, keep scores >= threshold, then NMS.

    Returns the kept boxes `[K, 4]` (x1, y1, x2, y2) best first, their scores `[K]`, and how
    many windows passed the threshold before non-maximum suppression (torchvision.ops.nms).
    """
    from torchvision.ops import nms

    _check_threshold_iou(threshold, iou)
    _, boxes, scores = score_windows(scorer, image, sizes, stride_fraction)
    keep = scores >= threshold
    boxes, scores = boxes[keep], scores[keep]
    kept = nms(boxes, scores, iou)
    return boxes[kept], scores[kept], int(keep.sum())


def mine_negatives(
    scorer: Scorer,
    images: Sequence[np.ndarray],
    sizes: Sequence[int],
    threshold: float = 0.5,
    limit: int = 200,
    stride_fraction: float = 0.2,
    iou: float = 0.3,
) -> tuple[torch.Tensor, int]:
    """Hard negatives: windows of face-free `images` that `scorer` rates >= threshold.

    Every such window is a false positive. Window sizes larger than an image are skipped for
    that image. Returns at most `limit` of them (uint8
    `[M, 1, 25, 25]`; the highest-scoring ones after NMS per image, so they are not
    near-copies of one another) and how many windows were false positives in all.
    """
    from torchvision.ops import nms

    _check_threshold_iou(threshold, iou)
    if limit < 0:
        raise ValueError(f"limit={limit} must be >= 0")
    found, found_scores, n_false = [torch.zeros(0, 1, WINDOW, WINDOW, dtype=torch.uint8)], [torch.zeros(0)], 0
    for image in images:
        fitting = [s for s in sizes if s <= min(image.shape)]  # a small photo skips the large windows
        if not fitting:
            continue
        windows, boxes, scores = score_windows(scorer, image, fitting, stride_fraction)
        hot = torch.nonzero(scores >= threshold).flatten()
        n_false += len(hot)
        kept = hot[nms(boxes[hot], scores[hot], iou)]
        found.append(windows[kept])
        found_scores.append(scores[kept])
    windows, scores = torch.cat(found), torch.cat(found_scores)
    return windows[scores.argsort(descending=True)[:limit]], n_false


def paste_scenes(
    faces: torch.Tensor,
    backgrounds: Sequence[np.ndarray],
    n_scenes: int,
    size: int = 256,
    face_sizes: tuple[int, int] = (32, 96),
    max_faces: int = 3,
    seed: int = 0,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Test scenes with known boxes: 1..`max_faces` faces pasted on random crops of face-free photos.

    Each face (uint8 `[N, 1, 25, 25]`) is resized to a side drawn log-uniformly from
    `face_sizes`, maybe mirrored, and pasted where it overlaps no other face. Returns the
    scenes (uint8 `[n_scenes, size, size]`) and per scene its boxes `[K, 4]` (x1, y1, x2, y2).
    """
    if faces.ndim != 4 or faces.shape[1] != 1:
        raise ValueError(f"expected grey faces [N, 1, H, W], got shape {tuple(faces.shape)}")
    lo, hi = face_sizes
    if not 1 <= lo <= hi <= size // 2 or max_faces < 1 or n_scenes < 1 or not backgrounds:
        raise ValueError(f"need 1 <= face_sizes[0] <= face_sizes[1] <= size/2 (got {face_sizes}, size {size}), "
                         f"max_faces >= 1 (got {max_faces}), n_scenes >= 1 (got {n_scenes}) and backgrounds")
    rng = np.random.default_rng(seed)
    scenes, all_boxes = [], []
    for _ in range(n_scenes):
        bg = torch.from_numpy(np.ascontiguousarray(backgrounds[rng.integers(len(backgrounds))])).float()
        if min(bg.shape) < size:  # upscale small photos so a size x size crop fits
            bg = F.interpolate(bg[None, None], scale_factor=size / min(bg.shape) + 1e-6, mode="bilinear")[0, 0]
        top, left = rng.integers(0, bg.shape[0] - size + 1), rng.integers(0, bg.shape[1] - size + 1)
        scene = bg[top:top + size, left:left + size].clone()
        boxes: list[list[float]] = []
        for _ in range(rng.integers(1, max_faces + 1)):
            s = int(round(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
            face = faces[rng.integers(len(faces))].float()
            if rng.random() < 0.5:
                face = face.flip(-1)
            face = F.interpolate(face[None], size=(s, s), mode="bilinear", antialias=True)[0, 0]
            for _ in range(50):  # try a few positions that overlap no face already pasted
                x, y = int(rng.integers(0, size - s + 1)), int(rng.integers(0, size - s + 1))
                if all(x + s <= b[0] or b[2] <= x or y + s <= b[1] or b[3] <= y for b in boxes):
                    scene[y:y + s, x:x + s] = face
                    boxes.append([x, y, x + s, y + s])
                    break
        scenes.append(scene.round().clamp(0, 255).to(torch.uint8))
        all_boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    return torch.stack(scenes), all_boxes
