"""Semantic and instance segmentation: transposed convolution, pixel metrics, a small U-Net.

- `conv_transpose_output_size` and `conv_transpose2d` (scatter-add, checked against PyTorch);
- `confusion_matrix` of label maps and the metrics read off it: `iou_per_class`, `mean_iou`
  (classes absent from both prediction and truth ignored), `pixel_accuracy`, `dice_per_class`,
  `foreground_iou`;
- `UNet` (Ronneberger et al., 2015, made small), `train_segmenter`, `predict_masks`;
- the classical baseline `otsu_threshold` and the simple instance baseline `label_instances`
  (connected components), scored with `match_instances`;
- `SCENE_CLASSES`: ImageNet classes that name a scene or place rather than an object.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .core import resolve_device
from .metrics import confusion_matrix as _label_confusion

__all__ = [
    "SCENE_CLASSES",
    "UNet",
    "confusion_matrix",
    "conv_transpose2d",
    "conv_transpose_output_size",
    "dice_per_class",
    "foreground_iou",
    "iou_per_class",
    "label_instances",
    "match_instances",
    "mean_iou",
    "otsu_threshold",
    "pixel_accuracy",
    "predict_masks",
    "train_segmenter",
]

# --------------------------------------------------------------------------- transposed convolution


def conv_transpose_output_size(
    h_in: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1, output_padding: int = 0
) -> int:
    """H_out = (H_in - 1)·s - 2p + d·(k - 1) + output_padding + 1 (PyTorch's ConvTranspose2d)."""
    for name, value, low in [("h_in", h_in, 1), ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                             ("padding", padding, 0), ("dilation", dilation, 1),
                             ("output_padding", output_padding, 0)]:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} must be a whole number >= {low}")
    if output_padding >= max(stride, dilation):
        raise ValueError(f"output_padding={output_padding} must be smaller than stride ({stride}) or dilation ({dilation})")
    out = (h_in - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1
    if out < 1:
        raise ValueError(f"padding={padding} is too large: the output would have size {out}")
    return out


def conv_transpose2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> torch.Tensor:
    """Transposed convolution as a scatter-add: each input pixel adds `x · kernel` into the output.

    x: `[B, C_in, H, W]`; weight: `[C_in, C_out, k_h, k_w]` (PyTorch's layout, groups=1).
    Input pixel (i, j) adds its weighted kernel at output (i·s + a·d, j·s + b·d); the result
    is then cropped by `padding` on every side (`output_padding` extra rows/columns at the end).
    """
    if x.ndim != 4 or weight.ndim != 4 or x.shape[1] != weight.shape[0]:
        raise ValueError(f"x {tuple(x.shape)} must be [B, C_in, H, W] and weight {tuple(weight.shape)} "
                         f"[C_in, C_out, kH, kW] with the same C_in")
    b, _, h, w = x.shape
    c_out, kh, kw = weight.shape[1:]
    h_out = conv_transpose_output_size(h, kh, stride, padding, dilation, output_padding)
    w_out = conv_transpose_output_size(w, kw, stride, padding, dilation, output_padding)
    full_h = (h - 1) * stride + dilation * (kh - 1) + 1 + output_padding
    full_w = (w - 1) * stride + dilation * (kw - 1) + 1 + output_padding
    full = x.new_zeros(b, c_out, full_h, full_w)
    contrib = torch.einsum("bihw,ioyx->boyxhw", x, weight)  # [B, C_out, kH, kW, H, W]
    for a in range(kh):
        for c in range(kw):
            top, left = a * dilation, c * dilation
            full[:, :, top:top + (h - 1) * stride + 1:stride, left:left + (w - 1) * stride + 1:stride] += contrib[:, :, a, c]
    out = full[:, :, padding:padding + h_out, padding:padding + w_out]
    return out if bias is None else out + bias.view(1, -1, 1, 1)


# --------------------------------------------------------------------------- metrics


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Pixel counts `[n_classes, n_classes]` (row = true class, column = predicted) of two label maps."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    for name, t in (("pred", pred), ("target", target)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n_classes):
            raise ValueError(f"{name} has labels in [{int(t.min())}, {int(t.max())}]; valid: 0..{n_classes - 1}")
    return _label_confusion(target.flatten(), pred.flatten(), n_classes)


def _cm(cm: torch.Tensor) -> torch.Tensor:
    cm = torch.as_tensor(cm).double()
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square [C, C], got shape {tuple(cm.shape)}")
    return cm


def iou_per_class(cm: torch.Tensor) -> torch.Tensor:
    """IoU_c = TP / (TP + FP + FN) per class; NaN for a class absent from both prediction and truth."""
    cm = _cm(cm)
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))


def mean_iou(cm: torch.Tensor) -> float:
    """Mean IoU over the classes present in the prediction or the truth (NaN ones ignored)."""
    return float(torch.nanmean(iou_per_class(cm)))


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Fraction of pixels whose predicted class is the true class."""
    cm = _cm(cm)
    return float(cm.diag().sum() / cm.sum().clamp(min=1))


def dice_per_class(cm: torch.Tensor) -> torch.Tensor:
    """Dice_c = 2·TP / (2·TP + FP + FN) per class (= F1); NaN for a class absent from both."""
    cm = _cm(cm)
    tp = cm.diag()
    denom = cm.sum(0) + cm.sum(1)
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.full_like(tp, math.nan))


def foreground_iou(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> float:
    """IoU of two foreground masks (any non-zero value is foreground), over all pixels given."""
    p, t = torch.as_tensor(np.asarray(pred) != 0), torch.as_tensor(np.asarray(target) != 0)
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} must have the same shape")
    union = (p | t).sum().item()
    return float((p & t).sum().item() / union) if union else 1.0


# --------------------------------------------------------------------------- the model


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A small U-Net: `depth` times (two 3x3 convs, 2x2 max-pool) down, transposed convs + skips up.

    Input `[B, in_channels, H, W]` with H and W divisible by 2**depth; output logits
    `[B, n_classes, H, W]` (one score per class and pixel).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 11, width: int = 16, depth: int = 2):
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("n_classes", n_classes, 2),
                                 ("width", width, 1), ("depth", depth, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} must be a whole number >= {low}")
        self.depth = depth
        widths = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0])] +
                                  [_double_conv(widths[i], widths[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))])
        self.merge = nn.ModuleList([_double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2**self.depth or x.shape[-2] % 2**self.depth:
            raise ValueError(f"input size {tuple(x.shape[-2:])} must be divisible by 2**depth = {2**self.depth}")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))  # [B, w·2^i, H/2^i, W/2^i]
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))  # upsample 2x, concatenate the skip
        return self.head(x)


def _as_input(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    return images.float() / 255.0


def train_segmenter(
    model: nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    *,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Train with per-pixel cross-entropy (AdamW, one-cycle schedule); returns the mean loss per epoch.

    images: uint8 `[N, C, H, W]` (scaled to [0, 1]); masks: int64 `[N, H, W]` class per pixel.
    """
    x_all = _as_input(images)
    if masks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"masks {tuple(masks.shape)} must be [N, H, W] matching images {tuple(images.shape)}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs={epochs} and batch_size={batch_size} must be >= 1")
    dev = resolve_device(device)
    model.to(dev).train()
    x_all, y_all = x_all.to(dev), masks.long().to(dev)
    gen = torch.Generator().manual_seed(seed)
    steps = math.ceil(len(x_all) / batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.2)
    losses = []
    for _ in range(epochs):
        order, total = torch.randperm(len(x_all), generator=gen).to(dev), 0.0
        for s in range(steps):
            idx = order[s * batch_size:(s + 1) * batch_size]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x_all))
    return losses


def predict_masks(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The most probable class per pixel, int64 `[N, H, W]` (eval mode, no gradients), on the CPU."""
    x_all = _as_input(images)
    dev = next(model.parameters()).device
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x_all), batch_size):
            out.append(model(x_all[i:i + batch_size].to(dev)).argmax(1).cpu())  # [B, C, H, W] -> [B, H, W]
    return torch.cat(out) if out else torch.zeros(0, *images.shape[2:], dtype=torch.long)


# --------------------------------------------------------------------------- classical and instance baselines


def otsu_threshold(image: np.ndarray | torch.Tensor) -> int:
    """Otsu's threshold of a uint8 image: the t maximising between-class variance of {≤ t} vs {> t}."""
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.size == 0:
        raise ValueError(f"otsu_threshold needs a non-empty uint8 image, got {a.dtype} of size {a.size}")
    hist = np.bincount(a.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)  # pixels <= t
    w1 = w0[-1] - w0  # pixels > t
    m0 = np.cumsum(hist * levels) / np.maximum(w0, 1)
    m1 = (np.sum(hist * levels) - np.cumsum(hist * levels)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return int(np.argmax(between[:-1]))


def label_instances(mask: torch.Tensor | np.ndarray, connectivity: int = 1) -> tuple[np.ndarray, int]:
    """Instances as connected components of the foreground (mask != 0): (labels 1..n, n).

    `connectivity=1`: 4-neighbours; `2`: 8-neighbours.
    """
    from scipy import ndimage

    if connectivity not in (1, 2):
        raise ValueError(f"connectivity={connectivity!r}; valid: 1 (4-neighbours) or 2 (8-neighbours)")
    fg = np.asarray(mask) != 0
    if fg.ndim != 2:
        raise ValueError(f"mask must be one [H, W] map, got shape {fg.shape}")
    labels, n = ndimage.label(fg, structure=ndimage.generate_binary_structure(2, connectivity))
    return labels.astype(np.int64), int(n)


def match_instances(
    pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, iou_threshold: float = 0.5
) -> dict[str, float]:
    """Match predicted to true instances (ids > 0) one-to-one by IoU ≥ `iou_threshold` (greedy, best first).

    Returns tp, fp, fn, precision, recall, F1 and the mean IoU of the matched pairs.
    """
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold={iou_threshold!r} must be in (0, 1]")
    p, t = np.asarray(pred).astype(np.int64), np.asarray(target).astype(np.int64)
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and target {t.shape} must have the same shape")
    p_ids, t_ids = [i for i in np.unique(p) if i > 0], [i for i in np.unique(t) if i > 0]
    pairs = []
    for i in p_ids:
        pm = p == i
        for j in t_ids:
            tm = t == j
            inter = np.logical_and(pm, tm).sum()
            if inter:
                pairs.append((inter / np.logical_or(pm, tm).sum(), i, j))
    used_p, used_t, ious = set(), set(), []
    for iou, i, j in sorted(pairs, reverse=True):
        if iou >= iou_threshold and i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            ious.append(iou)
    tp, fp, fn = len(ious), len(p_ids) - len(ious), len(t_ids) - len(ious)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1,
            "matched_iou": float(np.mean(ious)) if ious else math.nan}


# --------------------------------------------------------------------------- scenes

#: ImageNet-1k classes that name a scene or a place (landscapes and buildings/rooms seen from
#: inside or as a whole) rather than an object: our selection, for measuring how much of a
#: classifier's probability lands on "where" rather than "what".
SCENE_CLASSES: tuple[str, ...] = (
    "alp", "cliff", "coral reef", "geyser", "lakeside", "promontory", "sandbar", "seashore", "valley",
    "volcano", "bakery", "barbershop", "barn", "boathouse", "bookshop", "butcher shop", "castle", "church",
    "cinema", "cliff dwelling", "confectionery", "dam", "dock", "fountain", "greenhouse", "grocery store",
    "home theater", "library", "lumbermill", "monastery", "mosque", "palace", "patio", "pier",
    "planetarium", "prison", "restaurant", "shoe shop", "steel arch bridge", "suspension bridge",
    "tobacco shop", "toyshop", "triumphal arch", "viaduct", "breakwater", "stupa",
)
