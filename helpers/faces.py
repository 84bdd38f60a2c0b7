"""Faces: scikit-image's LFW subset, a batched HOG, sliding windows + NMS, hard negatives, test scenes.

`skimage.data.lfw_subset()` holds 200 real 25x25 grey crops: 100 faces from Labeled Faces in
the Wild and 100 background patches of the same photos (no download).

A classifier here is a *window scorer*: a function from uint8 windows `[N, 1, 25, 25]` to
scores `[N]` in [0, 1] (`cnn_scorer` for a trained network, `svm_scorer` for HOG + a linear
SVM). A detector is built on an *image scorer*, which returns every window's box, score and
image index for a list of grey images: `windowed` cuts the windows (`windows_of`) and calls a
window scorer; `dense` runs the fully convolutional `FaceNet` once per window size (an image
pyramid) and `dense_svm` slides a linear SVM over each level's HOG; `average` is an ensemble.
`detect` keeps the windows above a threshold and applies NMS per image (`per_image_detections`,
the format of `helpers.detection.average_precision`); `precision_recall_at` reads the operating
point off AP's result. Training data: `jitter` makes positives that are slightly off,
`random_patches` and `near_misses` make negatives, `mine_negatives` collects the windows that a
detector scores high on face-free photos (`face_free_photo`) or away from known faces
(hard-negative mining), and `paste_scenes` builds scenes with known face boxes by pasting faces
onto face-free backgrounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FACE_FREE",
    "average",
    "WINDOW",
    "FaceNet",
    "ImageScorer",
    "Scorer",
    "cnn_scorer",
    "crop_windows",
    "dense",
    "dense_svm",
    "detect",
    "face_free_photo",
    "grey",
    "hog_features",
    "jitter",
    "load_faces",
    "mine_negatives",
    "near_misses",
    "paste_scenes",
    "per_image_detections",
    "precision_recall_at",
    "random_patches",
    "sliding_windows",
    "svm_scorer",
    "windowed",
    "windows_of",
]

#: Side of the LFW crops, in pixels.
WINDOW = 25

#: A window scorer: uint8 windows [N, 1, 25, 25] -> float scores [N] in [0, 1] (higher = more face-like).
Scorer = Callable[[torch.Tensor], torch.Tensor]

#: An image scorer: grey images -> every window's box [N, 4], score [N] and image index [N]
#: (`windowed` builds one from a window scorer, `dense` from a fully convolutional `FaceNet`).
ImageScorer = Callable[[Sequence[np.ndarray] | torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def load_faces() -> tuple[torch.Tensor, torch.Tensor]:
    """The LFW subset as uint8 images `[200, 1, 25, 25]` and labels (1 = face, 0 = non-face)."""
    import skimage.data

    images = skimage.data.lfw_subset()  # float in [0, 1], faces first
    x = torch.from_numpy(np.round(images * 255).astype(np.uint8))[:, None]  # [200, 25, 25] -> [200, 1, 25, 25]
    y = torch.cat([torch.ones(100, dtype=torch.long), torch.zeros(100, dtype=torch.long)])
    return x, y


#: Photos bundled with scikit-image (offline) that show no human face, by name -> loader name.
#: Left out on purpose: `astronaut` and `camera` (the cameraman), which contain faces.
FACE_FREE = {
    "brick": "brick", "cat": "chelsea", "cell": "cell", "clock": "clock", "coffee": "coffee",
    "coins": "coins", "colorwheel": "colorwheel", "grass": "grass", "gravel": "gravel",
    "hubble": "hubble_deep_field", "immunohistochemistry": "immunohistochemistry", "moon": "moon",
    "motorcycle": "stereo_motorcycle", "page": "page", "retina": "retina", "rocket": "rocket", "text": "text",
}  # fmt: skip


def face_free_photo(name: str, max_side: int = 512) -> np.ndarray:
    """A bundled photo without faces (`FACE_FREE`) as grey uint8 `[H, W]`, shrunk so its longer side <= max_side."""
    import skimage.data

    if name not in FACE_FREE:
        hint = " (it shows a face)" if name in ("astronaut", "camera") else ""
        raise ValueError(f"unknown face-free photo {name!r}{hint}; choose from {', '.join(sorted(FACE_FREE))}")
    if max_side < WINDOW:
        raise ValueError(f"max_side={max_side} must be at least the window side {WINDOW}")
    image = getattr(skimage.data, FACE_FREE[name])()
    if name == "motorcycle":
        image = image[0]  # the left view of the stereo pair
    image = grey(image)
    scale = max_side / max(image.shape)
    if scale < 1:
        small = F.interpolate(torch.from_numpy(image).float()[None, None], scale_factor=scale, mode="area",
                              recompute_scale_factor=False)
        image = small[0, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    return image


def grey(image: np.ndarray) -> np.ndarray:
    """A uint8 grey `[H, W]` image from an RGB(A) or grey photo, with scikit-image's `rgb2gray` weights."""
    from skimage.color import rgb2gray

    if image.ndim == 2:
        return image.astype(np.uint8) if image.dtype != bool else image.astype(np.uint8) * 255
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected a grey [H, W] or colour [H, W, 3|4] image, got shape {image.shape}")
    rgb = image[..., :3]
    return np.round(rgb2gray(rgb) * (255 if rgb.dtype == np.uint8 else 1)).astype(np.uint8)


def _hog_blocks(img: torch.Tensor, c: int, b: int, o: int) -> torch.Tensor:
    """L2-Hys normalised HOG blocks of float images `[n, H, W]` -> `[n, blocks_y, blocks_x, b*b*o]`."""
    h, w = img.shape[-2:]
    n_cy, n_cx = h // c, w // c
    rows, cols = torch.arange(n_cy * c) // c, torch.arange(n_cx * c) // c
    cell = (rows[:, None] * n_cx + cols[None, :]).flatten()  # [H'*W'] cell index of each pixel
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
    return v / (v.square().sum(-1, keepdim=True) + 1e-10).sqrt()  # normalise again


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
    if min(c, b, o) < 1 or h // c < b or w // c < b:
        raise ValueError(f"pixels_per_cell={c}, cells_per_block={b}, orientations={o} do not fit a "
                         f"{h}x{w} image: need values >= 1 and {b} blocks of {c}-pixel cells per side")
    out = [torch.zeros(0, (h // c - b + 1) * (w // c - b + 1) * b * b * o)]
    for start in range(0, len(x), chunk):
        img = torch.as_tensor(x[start:start + chunk])[:, 0].float()  # [n, H, W]
        out.append(_hog_blocks(img, c, b, o).flatten(1))
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


def svm_scorer(svm, chunk: int = 8192, **hog_options: int) -> Scorer:
    """A scorer from a linear classifier on `hog_features`: the logistic of its decision value.

    The logistic maps the signed distance to the hyperplane into (0, 1) without changing the
    ranking, so 0.5 is the SVM's own decision boundary. Windows are described `chunk` at a
    time, so scoring a million windows never holds a million HOG descriptors.
    """
    if chunk < 1:
        raise ValueError(f"chunk={chunk} must be >= 1")

    def score(windows: torch.Tensor) -> torch.Tensor:
        parts = [svm.decision_function(hog_features(windows[i:i + chunk], **hog_options))
                 for i in range(0, len(windows), chunk)]
        return torch.sigmoid(torch.from_numpy(np.concatenate(parts) if parts else np.zeros(0)).float())

    return score


def _check_threshold_iou(threshold: float, iou: float) -> None:
    if not 0 <= threshold <= 1 or not 0 <= iou <= 1:
        raise ValueError(f"threshold={threshold} and iou={iou} must both be in [0, 1]")


def windowed(scorer: Scorer, sizes: Sequence[int], stride_fraction: float = 0.2) -> ImageScorer:
    """An image scorer that cuts every sliding window (`windows_of`) and scores each with `scorer`."""
    _check_sizes(sizes)

    def score(images: Sequence[np.ndarray] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        windows, boxes, owner = windows_of(images, sizes, stride_fraction)
        scores = torch.as_tensor(scorer(windows)).float().flatten()
        if scores.shape != (len(windows),) or not torch.all((scores >= 0) & (scores <= 1)):
            raise ValueError(f"the scorer must return {len(windows)} scores in [0, 1], got shape {tuple(scores.shape)}")
        return boxes, scores, owner

    return score


class FaceNet(nn.Module):
    """A small CNN for 25x25 windows made of convolutions only, so it also runs on whole images.

    `forward` gives the two logits (non-face, face) of each window `[B, 1, 25, 25] -> [B, 2]`;
    `logit_map` runs the same layers over a larger image and returns the logits of every
    25x25 window at a stride of `STRIDE` pixels in one pass (a fully convolutional network,
    as in OverFeat: Sermanet et al., ICLR 2014). Its receptive field is exactly 25x25.
    """

    STRIDE = 4  # two stride-2 convolutions

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width={width} must be >= 1")
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 5, stride=2), nn.ReLU(),              # [B, 1, 25, 25] -> [B, w, 11, 11]
            nn.Conv2d(width, 2 * width, 3, stride=2), nn.ReLU(),      # -> [B, 2w, 5, 5]
            nn.Conv2d(2 * width, 4 * width, 5), nn.ReLU(),            # -> [B, 4w, 1, 1]: a dense layer as a 5x5 conv
            nn.Conv2d(4 * width, 2, 1),                               # -> [B, 2, 1, 1]: the two logits
        )  # fmt: skip

    def logit_map(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every 25x25 window of `x`, stride 4: `[B, 1, H, W] -> [B, 2, (H-25)//4 + 1, (W-25)//4 + 1]`."""
        h, w = x.shape[-2:]
        if h < WINDOW or w < WINDOW:
            raise ValueError(f"images must be at least {WINDOW}x{WINDOW}, got {h}x{w}")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (WINDOW, WINDOW):
            raise ValueError(f"forward takes 25x25 windows, got {tuple(x.shape[-2:])}: use logit_map for larger images")
        return self.body(x)[:, :, 0, 0]  # [B, 1, 25, 25] -> [B, 2]


def _pyramid(images: Sequence[np.ndarray] | torch.Tensor, sizes: Sequence[int], step: int,
             level_scores: Callable[[torch.Tensor], torch.Tensor], batch: int = 64
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes, scores and image index of every window on every pyramid level of `images`.

    For each window side s the images are shrunk by 25/s (area interpolation, rounded to grey
    levels as in `sliding_windows`); `level_scores` maps a batch of shrunk images `[n, 1, h, w]`
    to the scores `[n, ny, nx]` of their 25x25 windows at a stride of `step` pixels. Images of
    one shape are shrunk and scored together. Windows come image by image, then size by size.
    """
    _check_sizes(sizes)
    images = [torch.as_tensor(np.asarray(image)).float() for image in images]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    parts = {}
    for shape, members in groups.items():
        for s in (s for s in sizes if s <= min(shape)):
            scale = WINDOW / s
            for start in range(0, len(members), batch):
                chunk = members[start:start + batch]
                img = torch.stack([images[i] for i in chunk])[:, None]  # [n, 1, H, W]
                small = F.interpolate(img, scale_factor=scale, mode="area", recompute_scale_factor=False)
                scores = level_scores(small.round().clamp(0, 255))  # [n, ny, nx]
                ys, xs = torch.meshgrid(torch.arange(scores.shape[1]), torch.arange(scores.shape[2]), indexing="ij")
                x1, y1 = xs.flatten() * step / scale, ys.flatten() * step / scale
                boxes = torch.stack([x1, y1, x1 + s, y1 + s], dim=1).float()
                for k, i in enumerate(chunk):
                    parts[i, s] = (boxes, scores[k].flatten().double())
    found = [(torch.zeros(0, 4), torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.long))]
    for i in range(len(images)):
        for s in sizes:
            if (i, s) in parts:
                boxes, scores = parts[i, s]
                found.append((boxes, scores, torch.full((len(scores),), i, dtype=torch.long)))
    boxes, scores, owner = zip(*found)
    return torch.cat(boxes), torch.cat(scores), torch.cat(owner)


def dense(model: FaceNet, sizes: Sequence[int], mean: Sequence[float], std: Sequence[float], flip: bool = False
          ) -> ImageScorer:
    """An image scorer that runs `model.logit_map` once per window size on the resized images (an image pyramid).

    The images are shrunk so that a window of side s becomes 25 pixels; every window at a
    stride of 4 resized pixels, i.e. 4/25 of its side, is scored at once. The result equals
    `windowed(cnn_scorer(model, mean, std), sizes, 4 / 25)`. flip: average each window's logits
    with those of its mirror image (test-time augmentation, as `helpers.predict(..., flip=True)`),
    which costs a second pass.
    """
    from .imagedata import normalize

    _check_sizes(sizes)
    step = FaceNet.STRIDE

    def level_scores(small: torch.Tensor) -> torch.Tensor:
        dev = next(model.parameters()).device
        x = normalize(small.to(dev), tuple(mean), tuple(std))
        logits = model.logit_map(x).double().cpu()  # [n, 2, ny, nx]
        if flip:  # the mirror images of the windows on the stride grid: crop to the grid, flip, flip back
            width = (logits.shape[-1] - 1) * step + WINDOW
            logits = (logits + model.logit_map(x[..., :width].flip(-1)).double().cpu().flip(-1)) / 2
        return torch.sigmoid(logits[:, 1] - logits[:, 0])  # P(face) = softmax; float64 keeps top scores apart

    def score(images: Sequence[np.ndarray] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        model.eval()
        with torch.no_grad():
            return _pyramid(images, sizes, step, level_scores)

    return score


def dense_svm(svm, sizes: Sequence[int], pixels_per_cell: int = 5, cells_per_block: int = 2,
              orientations: int = 9) -> ImageScorer:
    """An image scorer for a linear SVM on 25x25 HOG: the HOG of each resized image once, the SVM as a convolution.

    As Dalal & Triggs (2005) scan: per window size, shrink the image so the window becomes 25
    pixels, compute its HOG blocks once, and slide the SVM's weights over the block grid (one
    cell, i.e. 1/5 of the window, per step). Scores are the logistic of the decision value, as in
    `svm_scorer`. They differ from window-by-window HOG only at the windows' borders, where a
    lone window has no neighbouring pixels to take a gradient from.
    """
    c, b, o = pixels_per_cell, cells_per_block, orientations
    _check_sizes(sizes)
    nb = WINDOW // c - b + 1  # blocks per window side
    coef = np.asarray(svm.coef_, dtype=np.float32).reshape(-1)
    if coef.size != nb * nb * b * b * o:
        raise ValueError(f"the SVM has {coef.size} weights; a 25x25 HOG with these options has {nb * nb * b * b * o}")
    weight = torch.from_numpy(coef).view(1, nb, nb, -1).permute(0, 3, 1, 2)  # [1, b*b*o, nb, nb]
    bias = torch.tensor(np.asarray(svm.intercept_, dtype=np.float32).reshape(1))

    def level_scores(small: torch.Tensor) -> torch.Tensor:
        blocks = _hog_blocks(small[:, 0], c, b, o)  # [n, by, bx, b*b*o]
        return torch.sigmoid(F.conv2d(blocks.permute(0, 3, 1, 2), weight, bias)[:, 0].double())  # [n, ny, nx]

    return lambda images: _pyramid(images, sizes, c, level_scores)


def average(scorers: Sequence[ImageScorer]) -> ImageScorer:
    """An image scorer whose score is the mean of several scorers' scores over the same windows (an ensemble)."""
    if len(scorers) == 0:
        raise ValueError("average needs at least one image scorer")

    def score(images: Sequence[np.ndarray] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = [scorer(images) for scorer in scorers]
        boxes, _, owner = outputs[0]
        for b, _, o in outputs[1:]:
            if b.shape != boxes.shape or not torch.equal(b, boxes) or not torch.equal(o, owner):
                raise ValueError("the scorers must score the same windows (same window sizes and stride)")
        return boxes, torch.stack([s.double() for _, s, _ in outputs]).mean(dim=0), owner

    return score


def _check_sizes(sizes: Sequence[int]) -> None:
    if len(sizes) == 0 or any(int(s) != s or s < 1 for s in sizes):
        raise ValueError(f"sizes={list(sizes)} must be a non-empty list of window sides >= 1 pixel")


def detect(image_scorer: ImageScorer, images: Sequence[np.ndarray] | torch.Tensor, threshold: float = 0.5,
           iou: float = 0.3, max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
    """Sliding-window detection: score every window of every image, keep scores >= threshold, NMS per image.

    Returns one dict `{"boxes", "scores", "labels"}` per image, best first (`per_image_detections`).
    """
    boxes, scores, owner = image_scorer(images)
    return per_image_detections(boxes, scores, owner, len(images), threshold, iou, max_detections)


def crop_windows(image: np.ndarray, boxes: torch.Tensor) -> torch.Tensor:
    """The boxes `[K, 4]` (x1, y1, x2, y2, rounded to pixels) of a grey image, each resized to 25x25 uint8."""
    if image.ndim != 2:
        raise ValueError(f"expected a grey image [H, W], got shape {image.shape}")
    img = torch.from_numpy(np.ascontiguousarray(image)).float()
    h, w = image.shape
    out = [torch.zeros(0, 1, WINDOW, WINDOW)]
    for x1, y1, x2, y2 in boxes.round().long().tolist():
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"box ({x1}, {y1}, {x2}, {y2}) lies outside the {h}x{w} image")
        out.append(F.interpolate(img[None, None, y1:y2, x1:x2], size=(WINDOW, WINDOW), mode="area")[0:1])
    return torch.cat(out).round().clamp(0, 255).to(torch.uint8)


def mine_negatives(
    image_scorer: ImageScorer,
    images: Sequence[np.ndarray] | torch.Tensor,
    threshold: float = 0.5,
    limit: int = 200,
    iou: float = 0.3,
    face_boxes: Sequence[torch.Tensor] | None = None,
    max_face_iou: float = 0.3,
) -> tuple[torch.Tensor, int]:
    """Hard negatives (Dalal & Triggs, 2005): the windows of `images` scored >= threshold that are not faces.

    Without `face_boxes` the images must be face-free and every window above the threshold is a
    false positive. With them (one `[K, 4]` tensor per image, e.g. training scenes), a window is
    a false positive only if its IoU with every face is below `max_face_iou`: a piece of a face,
    or a face with too much around it. Returns at most `limit` of them (uint8 `[M, 1, 25, 25]`,
    highest score first; after NMS within each image, so they are not near-copies of one
    another) and how many windows were false positives in all.
    """
    from torchvision.ops import box_iou

    _check_threshold_iou(threshold, iou)
    if limit < 0 or not 0 <= max_face_iou <= 1:
        raise ValueError(f"limit={limit} must be >= 0 and max_face_iou={max_face_iou} in [0, 1]")
    if face_boxes is not None and len(face_boxes) != len(images):
        raise ValueError(f"{len(face_boxes)} face_boxes tensors for {len(images)} images: pass one per image")
    boxes, scores, owner = image_scorer(images)
    if face_boxes is not None:
        scores = scores.clone()
        for i, known in enumerate(face_boxes):
            mine = torch.nonzero(owner == i).flatten()
            if len(known) and len(mine):
                near = box_iou(boxes[mine], known.float()).amax(dim=1) >= max_face_iou
                scores[mine[near]] = -1.0  # (nearly) a face: never a negative
    dets = per_image_detections(boxes, scores, owner, len(images), threshold, iou, max_detections=max(limit, 1))
    found = [(float(v), i, box) for i, d in enumerate(dets) for v, box in zip(d["scores"], d["boxes"])]
    found = sorted(found, key=lambda f: -f[0])[:limit]  # the best over all images; crop only those
    windows = [torch.zeros(0, 1, WINDOW, WINDOW, dtype=torch.uint8)]
    windows += [crop_windows(np.asarray(images[i]), box[None]) for _, i, box in found]
    return torch.cat(windows), int((scores >= threshold).sum())


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


def jitter(faces: torch.Tensor, copies: int, shift: float = 2.0, scale: tuple[float, float] = (0.9, 1.1),
           rotate: float = 0.0, contrast: tuple[float, float] = (1.0, 1.0), brightness: float = 0.0, seed: int = 0
           ) -> torch.Tensor:
    """`copies` versions of every face, each shifted by up to `shift` px, scaled, turned, maybe mirrored, re-lit.

    Positives that are slightly off (Dalal & Triggs, 2005, trained on such jittered windows)
    teach the classifier to fire on windows that do not sit exactly on a face; pixels that
    move in from outside the crop repeat its border. `rotate`: up to +-that many degrees.
    `contrast` multiplies each image's
    deviations from its mean by a factor drawn from that range and `brightness` adds up to
    +-that many grey levels, for faces lit unlike LFW's. Returns uint8 `[copies * N, 1, H, W]`,
    copy after copy.
    """
    if faces.ndim != 4 or faces.shape[1] != 1:
        raise ValueError(f"expected grey faces [N, 1, H, W], got shape {tuple(faces.shape)}")
    (lo, hi), (c_lo, c_hi) = scale, contrast
    if copies < 1 or shift < 0 or brightness < 0 or rotate < 0 or not 0 < lo <= hi or not 0 <= c_lo <= c_hi:
        raise ValueError(f"need copies >= 1 (got {copies}), shift, rotate >= 0 (got {shift}, {rotate}), brightness >= 0 (got "
                         f"{brightness}), 0 < scale[0] <= scale[1] (got {scale}) and 0 <= contrast[0] <= contrast[1] "
                         f"(got {contrast})")
    g = torch.Generator().manual_seed(seed)
    x = faces.float().repeat(copies, 1, 1, 1)  # [copies * N, 1, H, W]
    n, (h, w) = len(x), x.shape[-2:]
    s = torch.empty(n).uniform_(lo, hi, generator=g)
    tx, ty = [(torch.rand(n, generator=g) * 2 - 1) * shift * 2 / side for side in (w, h)]  # pixels -> [-1, 1] units
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    angle = torch.deg2rad((torch.rand(n, generator=g) * 2 - 1) * rotate)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    a = torch.stack([torch.stack([flip * cos, -sin], -1), torch.stack([flip * sin, cos], -1)], -2)  # [n, 2, 2]
    t = torch.stack([tx, ty], -1)[..., None]  # [n, 2, 1]
    theta = torch.cat([a, -a @ t], dim=2)  # output point u samples the input at A (u - t): a turned, scaled, moved face
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gain = torch.empty(n, 1, 1, 1).uniform_(c_lo, c_hi, generator=g)
    offset = (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * brightness
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * gain + mean + offset
    return out.round().clamp(0, 255).to(torch.uint8)


def windows_of(images: Sequence[np.ndarray] | torch.Tensor, sizes: Sequence[int], stride_fraction: float = 0.2
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sliding windows of many grey images: windows `[N, 1, 25, 25]`, boxes `[N, 4]`, image index `[N]`.

    Window sizes larger than an image are skipped for that image.
    """
    found = [(torch.zeros(0, 1, WINDOW, WINDOW, dtype=torch.uint8), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))]
    for i, image in enumerate(images):
        image = np.asarray(image)
        fitting = [s for s in sizes if s <= min(image.shape)]
        if fitting:
            windows, boxes = sliding_windows(image, fitting, stride_fraction)
            found.append((windows, boxes, torch.full((len(boxes),), i, dtype=torch.long)))
    windows, boxes, owner = zip(*found)
    return torch.cat(windows), torch.cat(boxes), torch.cat(owner)


def per_image_detections(boxes: torch.Tensor, scores: torch.Tensor, owner: torch.Tensor, n_images: int,
                         threshold: float = 0.5, iou: float = 0.3, max_detections: int = 100, pre_nms: int = 3000
                         ) -> list[dict[str, torch.Tensor]]:
    """Threshold + NMS inside each image: one dict `{"boxes", "scores", "labels"}` per image, best first.

    The format of `helpers.detection.average_precision` (label 0 = face); at most
    `max_detections` boxes per image are kept, as COCO does, and NMS sees only the `pre_nms`
    best windows of each image (as in Faster R-CNN's proposal stage), which keeps it fast.
    """
    from torchvision.ops import nms

    _check_threshold_iou(threshold, iou)
    if not len(boxes) == len(scores) == len(owner):
        raise ValueError(f"boxes, scores and owner must have one row per window, got {len(boxes)}, {len(scores)}, "
                         f"{len(owner)}")
    if len(owner) and not 0 <= int(owner.min()) <= int(owner.max()) < n_images:
        raise ValueError(f"owner holds image indices {int(owner.min())}..{int(owner.max())}, not in 0..{n_images - 1}")
    hot = torch.nonzero(scores >= threshold).flatten()
    hot = hot[torch.argsort(owner[hot], stable=True)]  # grouped by image
    counts = torch.bincount(owner[hot], minlength=n_images).tolist()
    out = []
    for mine in torch.split(hot, counts):
        mine = mine[scores[mine].argsort(descending=True, stable=True)[:pre_nms]]  # NMS is quadratic: cap its input
        k = mine[nms(boxes[mine].double(), scores[mine].double(), iou)][:max_detections]
        out.append({"boxes": boxes[k], "scores": scores[k], "labels": torch.zeros(len(k), dtype=torch.long)})
    return out


def precision_recall_at(result, threshold: float) -> tuple[float, float]:
    """Precision and recall of the detections scoring >= `threshold` in a `detection.APResult` (the operating point)."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold={threshold} must be in [0, 1]")
    n = int(np.sum(result.scores >= threshold))
    tp = int(result.tp[:n].sum())  # the result's detections are sorted by score, best first
    precision = tp / n if n else float("nan")
    recall = tp / result.n_gt if result.n_gt else float("nan")
    return precision, recall


def near_misses(scenes: torch.Tensor | Sequence[np.ndarray], face_boxes: Sequence[torch.Tensor], per_face: int = 10,
                max_iou: float = 0.3, seed: int = 0) -> torch.Tensor:
    """Negatives next to the faces: windows that overlap a face with 0 < IoU < `max_iou`, resized to 25x25.

    A piece of a face, or a face with too much around it, is what a detector confuses with a
    face when the window is misplaced; R-CNN (Girshick et al., CVPR 2014) trains on windows
    with IoU below 0.3 as negatives for the same reason. Each window has a side of 0.5 to 2
    times the face's (log-uniform) and a random position that overlaps the face; up to
    `per_face` per face (uint8 `[M, 1, 25, 25]`).
    """
    from torchvision.ops import box_iou

    if per_face < 1 or not 0 < max_iou <= 1 or len(face_boxes) != len(scenes):
        raise ValueError(f"need per_face >= 1 (got {per_face}), 0 < max_iou <= 1 (got {max_iou}) and one face_boxes "
                         f"tensor per scene (got {len(face_boxes)} for {len(scenes)})")
    rng = np.random.default_rng(seed)
    out = [torch.zeros(0, 1, WINDOW, WINDOW, dtype=torch.uint8)]
    for scene, known in zip(scenes, face_boxes):
        scene = np.asarray(scene)
        h, w = scene.shape
        found = []
        for x1, y1, x2, y2 in known.tolist():
            kept = 0
            for _ in range(per_face * 20):  # rejection sampling
                s = min((x2 - x1) * float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))), h, w)
                left = float(np.clip(rng.uniform(x1 - s, x2), 0, w - s))  # the window overlaps the face in x ...
                top = float(np.clip(rng.uniform(y1 - s, y2), 0, h - s))  # ... and in y
                box = torch.tensor([[left, top, left + s, top + s]])
                overlap = box_iou(box, known.float()).max().item()
                if 0 < overlap < max_iou:
                    found.append(box)
                    kept += 1
                    if kept == per_face:
                        break
        if found:
            out.append(crop_windows(scene, torch.cat(found)))
    return torch.cat(out)
