"""Object detection from the ground up: IoU, NMS, anchors, FCOS targets, COCO AP and a tiny detector.

Boxes are (x1, y1, x2, y2) in pixel edges, float32, as in torchvision. Predictions for a list
of images are a list of dicts {"boxes" [K, 4], "scores" [K], "labels" [K]}; ground truth a
list of dicts {"boxes", "labels"} (`Canvases.targets()` gives them).

Each piece is checked against its reference: `box_iou` / `nms` against `torchvision.ops`,
`make_anchors` against torchvision's `AnchorGenerator`, `match_anchors` against its `Matcher`,
`average_precision` / `mean_average_precision` against `pycocotools.cocoeval.COCOeval`.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .canvases import Canvases, to_coco

__all__ = [
    "COCO_IOU_THRESHOLDS", "PENN_FUDAN_URL", "APResult", "PennFudan", "TinyFCOS", "average_precision",
    "batched_nms", "box_area", "box_iou", "coco_evaluate", "decode", "detect", "error_analysis",
    "fcos_loss", "fcos_targets", "load_penn_fudan", "make_anchors", "match_anchors",
    "mean_average_precision", "nms", "penn_fudan_canvases", "show_detections", "train_detector",
]

#: COCO's IoU thresholds 0.50, 0.55, ..., 0.95 (np.linspace, exactly as COCOeval builds them).
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
#: COCO's 101 recall points 0.00, 0.01, ..., 1.00.
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


# --------------------------------------------------------------------------- IoU and NMS


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of each (x1, y1, x2, y2) box: [N, 4] -> [N]."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection over union of boxes a [N, 4] and b [M, 4] -> [N, M]."""
    if a.ndim != 2 or a.shape[-1] != 4 or b.ndim != 2 or b.shape[-1] != 4:
        raise ValueError(f"boxes must be [N, 4] and [M, 4] (x1, y1, x2, y2), got {tuple(a.shape)} and {tuple(b.shape)}")
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)  # [N, M]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    Take the best-scoring box, drop every remaining box whose IoU with it is above
    `iou_threshold`, repeat. Same result as `torchvision.ops.nms`.
    """
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.int64)
    order = torch.argsort(scores, descending=True, stable=True)
    iou = box_iou(boxes[order], boxes[order]).numpy() > iou_threshold  # [N, N] suppresses
    removed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= iou[i]
    return order[torch.tensor(keep, dtype=torch.int64)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS within each class separately (boxes of different classes never suppress each other)."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.int64)
    # shift each class's boxes far apart so that boxes of two classes never overlap
    offsets = labels.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


# --------------------------------------------------------------------------- anchors and FCOS targets


def cell_centres(feature_size: tuple[int, int], stride: int, offset: float = 0.5) -> torch.Tensor:
    """Centres (x, y) in pixels of the cells of an [H, W] feature map, row by row -> [H*W, 2]."""
    h, w = feature_size
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], 1).float().add(offset).mul(stride)


def make_anchors(feature_size: tuple[int, int], stride: int, sizes: Sequence[float],
                 ratios: Sequence[float] = (0.5, 1.0, 2.0), offset: float = 0.5) -> torch.Tensor:
    """Anchor boxes [H*W*A, 4] for each cell of a feature map, A = len(ratios) * len(sizes).

    An anchor of size s and aspect ratio r = height / width has width s/√r and height s·√r
    (area s²), centred on the cell centre ((x + offset) * stride, ...). Order: cells row by row,
    then ratios, then sizes, as torchvision's `AnchorGenerator` (which uses offset 0).
    """
    if not sizes or not ratios or min(sizes) <= 0 or min(ratios) <= 0:
        raise ValueError(f"sizes={list(sizes)} and ratios={list(ratios)} must be non-empty and > 0")
    r = torch.tensor(ratios, dtype=torch.float32)
    s = torch.tensor(sizes, dtype=torch.float32)
    ws = (s[None, :] / r.sqrt()[:, None]).flatten()  # [A], ratio-major
    hs = (s[None, :] * r.sqrt()[:, None]).flatten()
    half = torch.stack([-ws, -hs, ws, hs], 1) / 2  # [A, 4] around (0, 0)
    centres = cell_centres(feature_size, stride, offset).repeat(1, 2)  # [P, 4]
    return (centres[:, None, :] + half[None]).reshape(-1, 4)  # [P, A, 4] -> [P*A, 4]


def match_anchors(anchors: torch.Tensor, boxes: torch.Tensor, high: float = 0.5, low: float = 0.4,
                  allow_low_quality: bool = True) -> torch.Tensor:
    """For each anchor, the index of its ground-truth box, -1 (background) or -2 (ignored).

    IoU >= `high`: positive; < `low`: background; in between: ignored. With
    `allow_low_quality`, each box's best anchors are positive even below `high` (Faster R-CNN;
    RetinaNet). Same codes as torchvision's `Matcher`.
    """
    if len(boxes) == 0:
        return torch.full((len(anchors),), -1, dtype=torch.int64)
    iou = box_iou(boxes, anchors)  # [K, A]
    best, index = iou.max(0)
    matched = index.clone()
    matched[best < low] = -1
    matched[(best >= low) & (best < high)] = -2
    if allow_low_quality:
        best_per_box = iou.max(1, keepdim=True).values  # [K, 1]
        _, anchor_ids = torch.nonzero(iou == best_per_box, as_tuple=True)
        matched[anchor_ids] = index[anchor_ids]
    return matched


def fcos_targets(boxes: torch.Tensor, labels: torch.Tensor, feature_size: tuple[int, int], stride: int,
                 size_range: tuple[float, float] = (0.0, math.inf), centre_radius: float | None = None) -> dict[str, torch.Tensor]:
    """Anchor-free (FCOS) targets of one image on one feature map of `stride` pixels per cell.

    A cell is positive for a box when its centre lies inside the box (or, with
    `centre_radius`, within `centre_radius * stride` of the box centre) and its largest
    distance to the box sides lies in `size_range`; a cell inside several boxes takes the
    smallest. Returns, per cell [H*W]: `labels` (-1 = background), `box` (index, -1),
    `ltrb` [H*W, 4] (distances left, top, right, bottom in pixels) and `centreness`
    sqrt(min(l, r)/max(l, r) · min(t, b)/max(t, b)).
    """
    centres = cell_centres(feature_size, stride)  # [P, 2]
    p = len(centres)
    if len(boxes) == 0:
        return {"labels": torch.full((p,), -1, dtype=torch.int64), "box": torch.full((p,), -1, dtype=torch.int64),
                "ltrb": torch.zeros(p, 4), "centreness": torch.zeros(p)}
    cx, cy = centres[:, 0:1], centres[:, 1:2]  # [P, 1]
    ltrb = torch.stack([cx - boxes[:, 0], cy - boxes[:, 1], boxes[:, 2] - cx, boxes[:, 3] - cy], -1)  # [P, K, 4]
    inside = ltrb.min(-1).values > 0
    if centre_radius is not None:
        bcx, bcy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2  # [K]
        r = centre_radius * stride
        inside &= ((cx - bcx).abs() < r) & ((cy - bcy).abs() < r)
    reach = ltrb.max(-1).values
    ok = inside & (reach >= size_range[0]) & (reach <= size_range[1])
    area = box_area(boxes)[None].expand(p, -1).masked_fill(~ok, math.inf)  # [P, K]
    smallest, box = area.min(1)
    positive = torch.isfinite(smallest)
    box = torch.where(positive, box, torch.full_like(box, -1))
    chosen = ltrb[torch.arange(p), box.clamp(min=0)] * positive[:, None]  # [P, 4]
    lr, tb = chosen[:, [0, 2]], chosen[:, [1, 3]]
    centreness = torch.sqrt((lr.min(1).values / lr.max(1).values.clamp(min=1e-6))
                            * (tb.min(1).values / tb.max(1).values.clamp(min=1e-6)))
    lab = torch.where(positive, labels[box.clamp(min=0)], torch.full_like(box, -1))
    return {"labels": lab, "box": box, "ltrb": chosen, "centreness": centreness * positive}


# --------------------------------------------------------------------------- average precision (COCO)


@dataclass
class APResult:
    """Average precision of one class at one IoU threshold, with the curve it came from."""

    ap: float  # COCO's 101-point interpolated AP (nan when the class has no ground truth)
    precision: np.ndarray  # [101] interpolated precision at recall 0, 0.01, ..., 1
    recall: np.ndarray  # [D] recall after each detection (highest score first)
    raw_precision: np.ndarray  # [D] precision after each detection
    scores: np.ndarray  # [D] detection scores, sorted
    tp: np.ndarray  # [D] bool: matched a ground truth
    n_gt: int
    iou_threshold: float
    label: int | None = None
    matches: list[dict[str, np.ndarray]] = field(default_factory=list, repr=False)  # per image

    def __repr__(self) -> str:
        cls = "all classes pooled" if self.label is None else f"class {self.label}"
        return (f"APResult(ap={self.ap:.4f} @ IoU {self.iou_threshold:.2f}, {cls}, {len(self.scores)} detections, "
                f"{int(self.tp.sum())} true positives, {self.n_gt} ground-truth boxes)")


def _iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU in float64 NumPy (as COCO computes it): [N, 4], [M, 4] -> [N, M]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def _match_image(ious: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """COCO's greedy matching in one image: `ious` [D, G] with detections sorted by score.

    Each detection takes the still-unmatched ground-truth box of largest IoU >= t (on a tie
    COCOeval keeps the later box); returns per detection the gt index (-1: none) and the IoU.
    """
    nd, ng = ious.shape
    match, best_iou = np.full(nd, -1), np.zeros(nd)
    if nd == 0 or ng == 0:
        return match, best_iou
    taken = np.zeros(ng, dtype=bool)
    t = min(t, 1 - 1e-10)
    for d in range(nd):
        cand = np.where(taken, -1.0, ious[d])
        g = ng - 1 - int(np.argmax(cand[::-1]))
        if cand[g] >= t:
            match[d], best_iou[d], taken[g] = g, cand[g], True
    return match, best_iou


def _check_lists(preds: Sequence[dict], gts: Sequence[dict]) -> None:
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} prediction dicts for {len(gts)} images: pass one dict per image in both")
    for name, items, keys in (("preds", preds, ("boxes", "scores", "labels")), ("gts", gts, ("boxes", "labels"))):
        for i, d in enumerate(items):
            missing = [k for k in keys if k not in d]
            if missing:
                raise ValueError(f"{name}[{i}] lacks {missing}; each dict needs {list(keys)}")


def _numpy(items: Sequence[dict[str, torch.Tensor]]) -> list[dict[str, np.ndarray]]:
    return [{k: v.detach().cpu().double().numpy() if k != "labels" else v.detach().cpu().numpy()
             for k, v in d.items() if k in ("boxes", "scores", "labels")} for d in items]


def _ap_curves(preds: list[dict[str, np.ndarray]], gts: list[dict[str, np.ndarray]], thresholds: Sequence[float],
               label: int | None, max_detections: int) -> list[APResult]:
    """APResult per IoU threshold for one class (None: all boxes pooled); IoUs computed once per image."""
    per_t: list[dict[str, list]] = [{"scores": [], "tp": [], "matches": []} for _ in thresholds]
    n_gt = 0
    for p, g in zip(preds, gts):
        pk = slice(None) if label is None else p["labels"] == label
        gk = slice(None) if label is None else g["labels"] == label
        p_boxes, p_scores, g_boxes = p["boxes"][pk], p["scores"][pk], g["boxes"][gk]
        order = np.argsort(-p_scores, kind="mergesort")[:max_detections]
        ious = _iou_np(p_boxes[order], g_boxes) if len(order) and len(g_boxes) else np.zeros((len(order), len(g_boxes)))
        n_gt += len(g_boxes)
        for acc, t in zip(per_t, thresholds):
            match, iou = _match_image(ious, t)
            acc["scores"].append(p_scores[order])
            acc["tp"].append(match >= 0)
            acc["matches"].append({"order": order, "gt": match, "iou": iou})
    results = []
    for acc, t in zip(per_t, thresholds):
        score = np.concatenate(acc["scores"]) if acc["scores"] else np.zeros(0)
        order = np.argsort(-score, kind="mergesort")
        tp = np.concatenate(acc["tp"])[order] if acc["tp"] else np.zeros(0, dtype=bool)
        score = score[order]
        tp_sum, fp_sum = np.cumsum(tp), np.cumsum(~tp)
        recall = tp_sum / n_gt if n_gt else np.zeros(len(tp))
        raw = tp_sum / (tp_sum + fp_sum + np.spacing(1))  # as COCOeval
        interp = np.zeros(len(RECALL_POINTS))
        if len(raw):
            envelope = np.maximum.accumulate(raw[::-1])[::-1]  # precision made non-increasing
            at = np.searchsorted(recall, RECALL_POINTS, side="left")
            ok = at < len(envelope)
            interp[ok] = envelope[at[ok]]
        ap = float(interp.mean()) if n_gt else float("nan")
        results.append(APResult(ap, interp, recall, raw, score, tp, n_gt, float(t), label, acc["matches"]))
    return results


def average_precision(preds: Sequence[dict[str, torch.Tensor]], gts: Sequence[dict[str, torch.Tensor]],
                      iou_threshold: float = 0.5, label: int | None = None, max_detections: int = 100) -> APResult:
    """AP of one class (`label`; None pools all boxes, e.g. a one-class face detector) as COCOeval.

    In each image, detections (the `max_detections` best) are matched in descending score
    order to the unmatched ground-truth box of largest IoU >= `iou_threshold`; over all images,
    precision and recall after each detection give the curve, precision is made non-increasing
    from the right, and AP is its mean at the 101 recall points 0, 0.01, ..., 1. Boxes need
    x2 >= x1 and y2 >= y1 (COCOeval ignores unmatched boxes of negative area).
    """
    _check_lists(preds, gts)
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold={iou_threshold!r} must be in (0, 1]")
    return _ap_curves(_numpy(preds), _numpy(gts), [iou_threshold], label, max_detections)[0]


def mean_average_precision(preds: Sequence[dict[str, torch.Tensor]], gts: Sequence[dict[str, torch.Tensor]],
                           iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS, n_classes: int | None = None,
                           max_detections: int = 100) -> dict[str, Any]:
    """COCO's mAP: AP averaged over classes (those with ground truth) and IoU thresholds.

    Returns {"map": mean over `iou_thresholds`, "map50": at 0.5, "map75": at 0.75 (nan if
    not among the thresholds), "per_class": [n_classes, T] array of AP (nan: no ground truth)}.
    """
    _check_lists(preds, gts)
    p_np, g_np = _numpy(preds), _numpy(gts)
    if n_classes is None:
        every = [d["labels"] for d in p_np + g_np if len(d["labels"])]
        n_classes = int(np.concatenate(every).max()) + 1 if every else 0
    ts = [float(t) for t in iou_thresholds]
    table = np.array([[r.ap for r in _ap_curves(p_np, g_np, ts, c, max_detections)]
                      for c in range(n_classes)]).reshape(n_classes, len(ts))
    has_gt = ~np.isnan(table[:, 0]) if n_classes else np.zeros(0, dtype=bool)
    by_t = table[has_gt].mean(0) if has_gt.any() else np.full(len(ts), np.nan)

    def at(v: float) -> float:
        hit = [i for i, t in enumerate(ts) if abs(t - v) < 1e-9]
        return float(by_t[hit[0]]) if hit else float("nan")

    return {"map": float(np.mean(by_t)), "map50": at(0.5), "map75": at(0.75), "per_class": table,
            "iou_thresholds": np.array(ts)}


def coco_evaluate(preds: Sequence[dict[str, torch.Tensor]], gts: Sequence[dict[str, torch.Tensor]],
                  n_classes: int) -> dict[str, float]:
    """mAP@[.5:.95], mAP@0.5 and mAP@0.75 by pycocotools' COCOeval (its printing silenced).

    Uses COCOeval's defaults: area range "all" and maxDets=100 (its stats[0:3]); the same
    settings as `mean_average_precision`, so both agree to rounding.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    _check_lists(preds, gts)
    gt_json = to_coco(list(gts), n_classes)
    dets = []
    for i, p in enumerate(preds):
        for box, score, label in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
            dets.append({"image_id": i + 1, "category_id": int(label) + 1, "score": float(score),
                         "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    if not dets or not gt_json["annotations"]:
        return {"map": 0.0, "map50": 0.0, "map75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # COCO prints "loading annotations..." and tables
        coco = COCO()
        coco.dataset = gt_json
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(dets), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    s = evaluator.stats
    return {"map": float(s[0]), "map50": float(s[1]), "map75": float(s[2])}


def error_analysis(preds: Sequence[dict[str, torch.Tensor]], gts: Sequence[dict[str, torch.Tensor]],
                   iou_threshold: float = 0.5, score_threshold: float = 0.3) -> dict[str, Any]:
    """Count the errors of the detections scoring >= `score_threshold`, from COCO-style matches.

    - true positive: matched a box of its class (IoU >= threshold), each box at most once;
    - duplicate: unmatched, but overlaps an already-matched box of its class by >= threshold;
    - confusion: unmatched, overlaps a box of *another* class by >= threshold;
    - localisation: unmatched, overlaps a box of its class by 0.1..threshold;
    - background: anything else; missed: boxes no detection matched (with their sizes).
    """
    _check_lists(preds, gts)
    counts = dict.fromkeys(["true_positive", "duplicate", "confusion", "localisation", "background"], 0)
    missed_sides, found_sides, confusions = [], [], []
    for p, g in zip(preds, gts):
        keep = p["scores"] >= score_threshold
        boxes, scores, labels = p["boxes"][keep], p["scores"][keep], p["labels"][keep]
        order = torch.argsort(scores, descending=True, stable=True)
        boxes, labels = boxes[order], labels[order]
        iou = box_iou(boxes, g["boxes"]) if len(boxes) and len(g["boxes"]) else torch.zeros(len(boxes), len(g["boxes"]))
        matched = torch.zeros(len(g["boxes"]), dtype=torch.bool)
        for d in range(len(boxes)):
            same = g["labels"] == labels[d]
            cand = torch.where(same & ~matched, iou[d], torch.tensor(-1.0))
            if len(cand) and cand.max() >= iou_threshold:
                matched[int(torch.argmax(cand))] = True
                counts["true_positive"] += 1
            elif len(cand) and (iou[d][same & matched] >= iou_threshold).any():
                counts["duplicate"] += 1
            elif len(cand) and (iou[d][~same] >= iou_threshold).any():
                counts["confusion"] += 1
                other = int(torch.argmax(torch.where(~same, iou[d], torch.tensor(-1.0))))
                confusions.append((int(g["labels"][other]), int(labels[d])))
            elif len(cand) and (iou[d][same] >= 0.1).any():
                counts["localisation"] += 1
            else:
                counts["background"] += 1
        sides = (g["boxes"][:, 2:] - g["boxes"][:, :2]).max(1).values
        missed_sides += sides[~matched].tolist()
        found_sides += sides[matched].tolist()
    return {**counts, "missed": len(missed_sides), "missed_sides": np.array(missed_sides),
            "found_sides": np.array(found_sides), "confusions": confusions}


# --------------------------------------------------------------------------- a tiny FCOS-style detector


def _conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TinyFCOS(nn.Module):
    """A one-stage, anchor-free detector (FCOS-like) with one feature level of stride 4.

    Backbone: five 3x3 conv layers (the first two with stride 2, the last two dilated so that a
    cell sees a whole object: receptive field 63 px);
    heads: per cell, class logits [C], distances (l, t, r, b) in pixels and a centre-ness logit.
    """

    stride = 4

    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        self.n_classes = n_classes
        self.body = nn.Sequential(_conv(1, width // 2, 2), _conv(width // 2, width, 2), _conv(width, width),
                                  _conv(width, width, dilation=2), _conv(width, width, dilation=4))
        self.cls = nn.Conv2d(width, n_classes, 3, padding=1)
        self.box = nn.Conv2d(width, 5, 3, padding=1)  # l, t, r, b and centre-ness
        nn.init.constant_(self.cls.bias, -math.log((1 - 0.01) / 0.01))  # start at p = 0.01 (RetinaNet)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [B, 1, S, S] in [0, 1] -> logits [B, C, S/4, S/4], ltrb [B, 4, ...], centreness [B, 1, ...]."""
        f = self.body(x)
        box = self.box(f)
        return {"logits": self.cls(f), "ltrb": F.softplus(box[:, :4]) * self.stride * 4,
                "centreness": box[:, 4:]}


def _batch_targets(targets: Sequence[dict[str, torch.Tensor]], feature_size: tuple[int, int], stride: int,
                   centre_radius: float | None) -> dict[str, torch.Tensor]:
    per = [fcos_targets(t["boxes"], t["labels"], feature_size, stride, centre_radius=centre_radius) for t in targets]
    return {k: torch.stack([p[k] for p in per]) for k in per[0]}


def fcos_loss(out: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], stride: int) -> dict[str, torch.Tensor]:
    """FCOS's loss: focal loss over all cells, GIoU loss and centre-ness BCE over positive cells.

    `targets` holds the stacked `fcos_targets` of the batch ([B, P] labels, [B, P, 4] ltrb,
    [B, P] centreness); the focal and GIoU terms are divided by the number of positives.
    """
    from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

    b, c = out["logits"].shape[:2]
    logits = out["logits"].flatten(2).transpose(1, 2)  # [B, C, H, W] -> [B, P, C]
    ltrb = out["ltrb"].flatten(2).transpose(1, 2)  # [B, P, 4]
    ctr = out["centreness"].flatten(1)  # [B, P]
    labels = targets["labels"].to(logits.device)
    pos = labels >= 0
    n_pos = max(int(pos.sum()), 1)
    onehot = F.one_hot(labels.clamp(min=0), c).float() * pos[..., None]
    cls_loss = sigmoid_focal_loss(logits, onehot, reduction="sum") / n_pos
    # distances -> boxes around a common centre (0, 0): GIoU of the two boxes
    pred, true = ltrb[pos], targets["ltrb"].to(logits.device)[pos]
    to_box = lambda d: torch.stack([-d[:, 0], -d[:, 1], d[:, 2], d[:, 3]], 1)  # noqa: E731
    box_loss = generalized_box_iou_loss(to_box(pred), to_box(true), reduction="sum") / n_pos
    ctr_loss = F.binary_cross_entropy_with_logits(ctr[pos], targets["centreness"].to(logits.device)[pos],
                                                  reduction="mean") if pos.any() else ctr.sum() * 0
    return {"loss": cls_loss + box_loss + ctr_loss, "cls": cls_loss, "box": box_loss, "centreness": ctr_loss}


@torch.no_grad()
def decode(out: dict[str, torch.Tensor], stride: int, image_size: int, score_threshold: float = 0.05,
           nms_iou: float = 0.5, max_detections: int = 100, pre_nms: int = 300) -> list[dict[str, torch.Tensor]]:
    """Turn the detector's maps into boxes: score = √(p_class · p_centreness), top `pre_nms`, NMS per class."""
    b, c, h, w = out["logits"].shape
    centres = cell_centres((h, w), stride).to(out["logits"].device)  # [P, 2]
    scores = (torch.sigmoid(out["logits"]) * torch.sigmoid(out["centreness"])).sqrt().flatten(2)  # [B, C, P]
    ltrb = out["ltrb"].flatten(2).transpose(1, 2)  # [B, P, 4]
    results = []
    for i in range(b):
        s = scores[i].flatten()  # [C*P], class-major
        keep = torch.nonzero(s > score_threshold).flatten()
        keep = keep[torch.argsort(s[keep], descending=True)[:pre_nms]]
        cls, cell = keep // (h * w), keep % (h * w)
        d = ltrb[i, cell]
        boxes = torch.cat([centres[cell] - d[:, :2], centres[cell] + d[:, 2:]], 1).clamp(0, image_size)
        kept = batched_nms(boxes.cpu(), s[keep].cpu(), cls.cpu(), nms_iou)[:max_detections]
        results.append({"boxes": boxes.cpu()[kept], "scores": s[keep].cpu()[kept], "labels": cls.cpu()[kept]})
    return results


def _as_input(images_u8: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    return images_u8.to(device).float().div(255)


def train_detector(train: Canvases, epochs: int = 6, batch_size: int = 32, lr: float = 4e-3, seed: int = 0,
                   device: str | torch.device = "cpu", width: int = 32, centre_radius: float | None = None,
                   flip: bool = True) -> tuple[TinyFCOS, dict[str, list[float]]]:
    """Train a `TinyFCOS` on canvases (AdamW, one-cycle schedule, random horizontal flips).

    Returns the model (in eval mode) and its history: mean loss per epoch and seconds.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs={epochs} and batch_size={batch_size} must be >= 1")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = TinyFCOS(train.n_classes, width).to(device)
    feature = (train.size // model.stride, train.size // model.stride)
    steps = epochs * math.ceil(len(train) / batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    targets = _batch_targets(train.targets(), feature, model.stride, centre_radius)  # computed once
    flipped = _batch_targets([{"boxes": torch.stack([train.size - t["boxes"][:, 2], t["boxes"][:, 1],
                                                     train.size - t["boxes"][:, 0], t["boxes"][:, 3]], 1),
                               "labels": t["labels"]} for t in train.targets()], feature, model.stride,
                             centre_radius) if flip else None
    history: dict[str, list[float]] = {"loss": [], "seconds": []}
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        total, n = 0.0, 0
        for idx in torch.randperm(len(train), generator=g).split(batch_size):
            x = _as_input(train.images[idx], device)
            t = {k: v[idx] for k, v in targets.items()}
            if flipped is not None:  # mirror half of the batch, with its mirrored targets
                m = torch.rand(len(idx), generator=g) < 0.5
                x = torch.where(m.to(device)[:, None, None, None], x.flip(-1), x)
                t = {k: torch.where(m.view(-1, *[1] * (v.ndim - 1)), flipped[k][idx], v) for k, v in t.items()}
            loss = fcos_loss(model(x), t, model.stride)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        history["loss"].append(total / n)
        history["seconds"].append(time.perf_counter() - start)
    return model.eval(), history


@torch.no_grad()
def detect(model: TinyFCOS, images: torch.Tensor, score_threshold: float = 0.05, nms_iou: float = 0.5,
           batch_size: int = 256, max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
    """Run the detector on uint8 images [N, 1, S, S]: one {"boxes", "scores", "labels"} per image."""
    model.eval()
    device = next(model.parameters()).device
    preds = []
    for chunk in images.split(batch_size):
        preds += decode(model(_as_input(chunk, device)), model.stride, images.shape[-1], score_threshold,
                        nms_iou, max_detections)
    return preds


# --------------------------------------------------------------------------- Penn-Fudan pedestrians

#: The Penn-Fudan pedestrian database (Wang, Shi, Song & Shen, ACCV 2007), torchvision's tutorial set.
PENN_FUDAN_URL = "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip"
#: The zip's MD5. The authors publish none; set it once from a trusted copy
#: (`torchvision.datasets.utils.calculate_md5(path)`) or pass `md5=` to `load_penn_fudan`.
PENN_FUDAN_MD5: str | None = None


@dataclass
class PennFudan:
    """Pedestrian photos with one box and one instance mask per person."""

    images: list[torch.Tensor]  # uint8 [3, H_i, W_i]
    boxes: list[torch.Tensor]  # float32 [K_i, 4] xyxy
    masks: list[torch.Tensor]  # uint8 [H_i, W_i]: 0 = background, k = k-th pedestrian
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def targets(self) -> list[dict[str, torch.Tensor]]:
        """{"boxes", "labels"} per image; every label is 0 (pedestrian)."""
        return [{"boxes": b, "labels": torch.zeros(len(b), dtype=torch.int64)} for b in self.boxes]

    def __repr__(self) -> str:
        return f"PennFudan({len(self)} images, {sum(len(b) for b in self.boxes)} pedestrians)"


def boxes_from_instance_mask(mask: np.ndarray) -> torch.Tensor:
    """The tight box (x1, y1, x2, y2 in pixel edges) of each instance id > 0 of a mask, ids in order."""
    boxes = []
    for k in np.unique(mask):
        if k == 0:
            continue
        ys, xs = np.nonzero(mask == k)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def load_penn_fudan(data_dir: str | Path, download: bool = False, md5: str | None = PENN_FUDAN_MD5,
                    url: str = PENN_FUDAN_URL) -> PennFudan:
    """Penn-Fudan from `data_dir/PennFudanPed.zip` (downloaded first if `download`), checksum verified.

    Extracts to `data_dir/PennFudanPed/` and reads `PNGImages/*.png` with their
    `PedMasks/*_mask.png`; each mask's instance ids give one box per pedestrian. A missing or
    corrupt file raises a `DatasetError` naming the file and the fix.
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets.utils import check_integrity, download_url

    from .data import DatasetError

    root = Path(data_dir).expanduser()
    archive = root / "PennFudanPed.zip"
    folder = root / "PennFudanPed"
    fix = (f"download {url} into {root} (or call load_penn_fudan(data_dir, download=True)), "
           "or delete the damaged file and download it again")
    if download and not archive.exists():
        download_url(url, str(root), filename=archive.name, md5=md5)
    if not folder.is_dir():
        if not archive.exists():
            raise DatasetError(f"Penn-Fudan: {archive.name} is missing in {root}; {fix}")
        if not check_integrity(str(archive), md5):
            raise DatasetError(f"Penn-Fudan: {archive.name} fails its MD5 check (expected {md5}); {fix}")
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(root)
        except zipfile.BadZipFile as e:
            raise DatasetError(f"Penn-Fudan: {archive.name} is not a valid zip ({e}); {fix}") from e
    pngs = folder / "PNGImages"
    names = sorted(p.name for p in pngs.glob("*.png")) if pngs.is_dir() else []
    if not names:
        raise DatasetError(f"Penn-Fudan: no images in {pngs}; expected PNGImages/*.png and PedMasks/*_mask.png; {fix}")
    images, boxes, masks = [], [], []
    for name in names:
        mask_path = folder / "PedMasks" / name.replace(".png", "_mask.png")
        for path in (pngs / name, mask_path):
            if not path.is_file():
                raise DatasetError(f"Penn-Fudan: {path.relative_to(root)} is missing; {fix}")
        try:
            image = np.asarray(Image.open(pngs / name).convert("RGB"))
            mask = np.asarray(Image.open(mask_path))
        except (UnidentifiedImageError, OSError) as e:
            raise DatasetError(f"Penn-Fudan: cannot read {(pngs / name).relative_to(root)} or its mask "
                               f"({e.__class__.__name__}); {fix}") from e
        if mask.shape != image.shape[:2]:
            raise DatasetError(f"Penn-Fudan: {mask_path.relative_to(root)} is {mask.shape}, its image "
                               f"{image.shape[:2]}; {fix}")
        images.append(torch.from_numpy(image.copy()).permute(2, 0, 1))  # [H, W, 3] -> [3, H, W]
        masks.append(torch.from_numpy(mask.astype(np.uint8)))
        boxes.append(boxes_from_instance_mask(mask))
    return PennFudan(images, boxes, masks, names)


def penn_fudan_canvases(data: PennFudan, size: int = 96) -> Canvases:
    """Penn-Fudan as grey `size`x`size` canvases (one class, "pedestrian"), boxes and masks rescaled.

    Each photo is squashed to a square (aspect ratio not kept), so the course's detector and
    metrics run on it unchanged.
    """
    images, boxes, masks = [], [], []
    for img, box, mask in zip(data.images, data.boxes, data.masks):
        h, w = img.shape[-2:]
        grey = (img.float() * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True)
        images.append(F.interpolate(grey[None], size=(size, size), mode="bilinear", antialias=True)[0])
        boxes.append(box * torch.tensor([size / w, size / h, size / w, size / h]))
        masks.append(F.interpolate(mask[None, None].float(), size=(size, size), mode="nearest")[0, 0].long())
    inst = torch.stack(masks)
    return Canvases(torch.stack(images).round().clamp(0, 255).to(torch.uint8), boxes,
                    [torch.zeros(len(b), dtype=torch.int64) for b in boxes], (inst > 0).long(), inst,
                    ["pedestrian"], [], "penn_fudan")


def show_detections(canvases: Canvases, preds: Sequence[dict[str, torch.Tensor]] | None = None,
                    index: Sequence[int] = range(8), score_threshold: float = 0.3, ncols: int = 4, size: float = 2.4):
    """Canvases with their ground truth (green) and detections scoring >= `score_threshold` (red)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    index = list(index)
    nrows = math.ceil(len(index) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, index):
        ax.imshow(canvases.images[i, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        for (x1, y1, x2, y2), lab in zip(canvases.boxes[i].tolist(), canvases.labels[i].tolist()):
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="lime", lw=1.2))
            ax.text(x1, y1 - 1, canvases.classes[lab], color="lime", fontsize=6, va="bottom")
        if preds is not None:
            p = preds[i]
            for (x1, y1, x2, y2), lab, sc in zip(p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist()):
                if sc < score_threshold:
                    continue
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="red", lw=1, ls="--"))
                ax.text(x1, y2 + 1, f"{canvases.classes[lab]} {sc:.2f}", color="red", fontsize=6, va="top")
    fig.tight_layout()
    return fig
