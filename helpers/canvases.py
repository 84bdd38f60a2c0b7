"""Synthetic detection/segmentation scenes: 28x28 items pasted at random sizes on a black canvas.

Each canvas holds 1..`max_objects` Fashion-MNIST (or MNIST) items, resized by a random factor
and pasted at random positions. The annotations are exact because we drew the scene:

- `boxes`: the tight box of each item's non-zero pixels, (x1, y1, x2, y2) in pixel *edges*
  (a single pixel at column 3 spans x1=3, x2=4), so `(x2 - x1) * (y2 - y1)` is its area, as
  in COCO and torchvision;
- `masks`: semantic masks (0 = background, c + 1 = an object of class c), pixels above 25 %
  of the item's brightest pixel;
- `instances`: instance masks (0 = background, k + 1 = the k-th object of that canvas).

Train canvases must come from the *training* split and evaluation canvases from the *test*
split so that no item is shared: `split_canvases` does exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["MASK_THRESHOLD", "Canvases", "make_canvases", "split_canvases", "to_coco"]

#: A pixel belongs to an item's mask when it is above this fraction of the item's maximum.
MASK_THRESHOLD = 0.25


@dataclass
class Canvases:
    """N grey canvases with their boxes, labels, semantic masks and instance masks."""

    images: torch.Tensor  # uint8 [N, 1, S, S]
    boxes: list[torch.Tensor]  # per image float32 [K_i, 4], (x1, y1, x2, y2) in pixels
    labels: list[torch.Tensor]  # per image int64 [K_i], 0..n_classes-1
    masks: torch.Tensor  # int64 [N, S, S]: 0 = background, c + 1 = object of class c
    instances: torch.Tensor  # int64 [N, S, S]: 0 = background, k + 1 = k-th object of the image
    classes: list[str]
    sources: list[torch.Tensor] = field(default_factory=list)  # per image int64 [K_i]: item indices
    origin: str = ""  # where the items came from, e.g. "fashion_mnist/test"

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> int:
        """The canvas side S in pixels."""
        return int(self.images.shape[-1])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def n_objects(self) -> int:
        """The total number of objects over all canvases."""
        return int(sum(len(b) for b in self.boxes))

    def targets(self) -> list[dict[str, torch.Tensor]]:
        """Per-image ground truth as torchvision detection targets: {"boxes", "labels"}."""
        return [{"boxes": b, "labels": lab} for b, lab in zip(self.boxes, self.labels)]

    def __getitem__(self, i: int) -> dict[str, Any]:
        """One canvas: image [1, S, S], boxes, labels, mask [S, S], instances [S, S]."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"canvas index {i} out of range for {len(self)} canvases")
        return {"image": self.images[i], "boxes": self.boxes[i], "labels": self.labels[i],
                "mask": self.masks[i], "instances": self.instances[i]}

    def subset(self, index) -> Canvases:
        """The canvases at `index` (a slice, a list or a tensor of indices)."""
        idx = list(range(len(self)))[index] if isinstance(index, slice) else [int(i) for i in index]
        return Canvases(self.images[idx], [self.boxes[i] for i in idx], [self.labels[i] for i in idx],
                        self.masks[idx], self.instances[idx], list(self.classes),
                        [self.sources[i] for i in idx] if self.sources else [], self.origin)

    def to_coco(self) -> dict[str, Any]:
        """The ground truth as a COCO-format dict (for pycocotools' COCO / COCOeval)."""
        return to_coco(self.targets(), self.classes, (self.size, self.size))

    def __repr__(self) -> str:
        counts = torch.bincount(torch.cat(self.labels), minlength=self.n_classes) if len(self) else []
        sides = torch.cat([b[:, 2:] - b[:, :2] for b in self.boxes]).max(1).values if len(self) else None
        side = f", box side {sides.min():.0f}-{sides.max():.0f} px" if sides is not None and len(sides) else ""
        origin = f", from {self.origin}" if self.origin else ""
        return (f"Canvases({len(self)} images [1, {self.size}, {self.size}] uint8, "
                f"{self.n_objects()} objects ({self.n_objects() / max(len(self), 1):.2f}/image{side}), "
                f"{self.n_classes} classes, per class min {int(min(counts, default=0))} "
                f"max {int(max(counts, default=0))}{origin})")


def _tight_box(item: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2) in pixel edges of the non-zero pixels of a 2-D array (None if empty)."""
    rows, cols = np.nonzero(item.any(1)), np.nonzero(item.any(0))
    if rows[0].size == 0:
        return None
    return int(cols[0][0]), int(rows[0][0]), int(cols[0][-1]) + 1, int(rows[0][-1]) + 1


def _iou_one(box: tuple[int, ...], others: list[tuple[int, ...]]) -> float:
    """The largest IoU between `box` and the boxes in `others` (0 when there are none)."""
    best = 0.0
    for o in others:
        iw = min(box[2], o[2]) - max(box[0], o[0])
        ih = min(box[3], o[3]) - max(box[1], o[1])
        if iw <= 0 or ih <= 0:
            continue
        inter = iw * ih
        union = (box[2] - box[0]) * (box[3] - box[1]) + (o[2] - o[0]) * (o[3] - o[1]) - inter
        best = max(best, inter / union)
    return best


def make_canvases(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: list[str],
    n: int,
    size: int = 96,
    max_objects: int = 4,
    scale: tuple[float, float] = (0.7, 1.6),
    seed: int = 0,
    max_iou: float = 0.0,
    origin: str = "",
) -> Canvases:
    """`n` canvases of side `size`, each with 1..`max_objects` items from `images` (uint8 [M, 1, h, w]).

    Each item is resized by a factor drawn uniformly from `scale` and pasted at a random
    position; a position whose box overlaps an earlier box by IoU > `max_iou` is rejected
    (up to 100 tries, then the item is left out: 0.0 means no overlap at all). Where pixels of
    two items overlap, the brighter one is kept and the later item owns the mask pixel.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a grey tensor [M, 1, h, w], got {got}")
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (0..255), got {images.dtype}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape [{images.shape[0]}] (one per image), got {tuple(labels.shape)}")
    if len(images) == 0:
        raise ValueError("images is empty: pass at least one item to paste")
    if int(labels.min()) < 0 or int(labels.max()) >= len(classes):
        raise ValueError(f"labels must lie in 0..{len(classes) - 1} (len(classes)={len(classes)}), "
                         f"got {int(labels.min())}..{int(labels.max())}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be a whole number >= 1 (how many canvases)")
    if isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 1:
        raise ValueError(f"max_objects={max_objects!r} must be a whole number >= 1")
    lo, hi = scale
    if not 0 < lo <= hi:
        raise ValueError(f"scale={scale!r} must be (low, high) with 0 < low <= high")
    h, w = images.shape[-2:]
    biggest = round(max(h, w) * hi)
    if isinstance(size, bool) or not isinstance(size, int) or size < biggest:
        raise ValueError(f"size={size!r} is too small: the largest item is {biggest} px "
                         f"({max(h, w)} px x scale {hi}); use size >= {biggest} or a smaller scale")
    if not 0 <= max_iou < 1:
        raise ValueError(f"max_iou={max_iou!r} must be in [0, 1) (0 = objects never overlap)")

    rng = np.random.default_rng(seed)
    # draw the whole plan first (how many items, which, how big), then resize each size in one batch
    counts = rng.integers(1, max_objects + 1, size=n)
    picks = rng.integers(len(images), size=int(counts.sum()))
    sides = np.maximum(1, np.round(h * rng.uniform(lo, hi, size=len(picks)))).astype(int)
    resized: list[np.ndarray] = [np.empty(0)] * len(picks)
    for side in np.unique(sides):
        at = np.nonzero(sides == side)[0]
        width = max(1, round(w * int(side) / h))
        batch = F.interpolate(images[torch.from_numpy(picks[at])].float(), size=(int(side), width),
                              mode="bilinear", align_corners=False, antialias=True)
        batch = batch.round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()  # [B, 1, s, s] -> [B, s, s]
        for a, item in zip(at, batch):
            resized[a] = item
    canvas = np.zeros((n, size, size), dtype=np.uint8)
    masks = np.zeros((n, size, size), dtype=np.int64)
    instances = np.zeros((n, size, size), dtype=np.int64)
    all_boxes, all_labels, all_sources = [], [], []
    labels_np = labels.cpu().numpy()
    starts = np.concatenate([[0], np.cumsum(counts)])
    for i in range(n):
        boxes: list[tuple[int, int, int, int]] = []
        objs, srcs = [], []
        for a in range(starts[i], starts[i + 1]):
            j, item = int(picks[a]), resized[a]
            side_h, side_w = item.shape
            tight = _tight_box(item)
            if tight is None:  # an all-black item has no box
                continue
            for _ in range(100):
                top, left = int(rng.integers(0, size - side_h + 1)), int(rng.integers(0, size - side_w + 1))
                box = (left + tight[0], top + tight[1], left + tight[2], top + tight[3])
                if _iou_one(box, boxes) <= max_iou:
                    break
            else:
                continue  # no free place: leave this item out
            k = len(boxes)
            boxes.append(box)
            objs.append(int(labels_np[j]))
            srcs.append(j)
            region = canvas[i, top:top + side_h, left:left + side_w]
            np.maximum(region, item, out=region)
            on = item > MASK_THRESHOLD * item.max()
            masks[i, top:top + side_h, left:left + side_w][on] = labels_np[j] + 1
            instances[i, top:top + side_h, left:left + side_w][on] = k + 1
        all_boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        all_labels.append(torch.tensor(objs, dtype=torch.int64))
        all_sources.append(torch.tensor(srcs, dtype=torch.int64))
    return Canvases(torch.from_numpy(canvas)[:, None], all_boxes, all_labels, torch.from_numpy(masks),
                    torch.from_numpy(instances), list(classes), all_sources, origin)


def split_canvases(data, n_train: int, n_test: int, seed: int = 0, **kwargs: Any) -> tuple[Canvases, Canvases]:
    """Train canvases from `data.x_train` and test canvases from `data.x_test` (no shared item).

    `data` is a `helpers.ImageData` (grey, e.g. `load_dataset("fashion_mnist")`); `kwargs` go
    to `make_canvases` (size, max_objects, scale, max_iou).
    """
    if data.x_train.shape[1] != 1:
        raise ValueError(f"canvases need grey images [N, 1, H, W]; {data.name!r} has {data.x_train.shape[1]} channels")
    train = make_canvases(data.x_train, data.y_train, data.classes, n_train, seed=seed,
                          origin=f"{data.name}/train", **kwargs)
    test = make_canvases(data.x_test, data.y_test, data.classes, n_test, seed=seed + 1_000_003,
                         origin=f"{data.name}/test", **kwargs)
    return train, test


def to_coco(targets: list[dict[str, torch.Tensor]], classes: list[str] | int,
            image_size: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """Ground truth (a list of {"boxes" xyxy, "labels"} per image) as a COCO-format dict.

    Image ids are 1..N in list order, category ids are label + 1 (COCO ids start at 1), boxes
    become [x, y, width, height] and `area` is the box area (we have no polygons); every
    annotation has iscrowd=0. `image_size` is (height, width), recorded for completeness.
    """
    names = [str(c) for c in range(classes)] if isinstance(classes, int) else list(classes)
    images, annotations = [], []
    for i, t in enumerate(targets):
        images.append({"id": i + 1, "height": int(image_size[0]), "width": int(image_size[1])})
        for box, label in zip(t["boxes"].tolist(), t["labels"].tolist()):
            if not 0 <= label < len(names):
                raise ValueError(f"label {label} in image {i} is outside 0..{len(names) - 1}")
            x1, y1, x2, y2 = box
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(label) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "iscrowd": 0})
    categories = [{"id": c + 1, "name": name} for c, name in enumerate(names)]
    return {"images": images, "annotations": annotations, "categories": categories}
