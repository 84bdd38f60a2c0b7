"""Evaluation beyond one accuracy number: predictions, confusion heatmap, worst mistakes.

    preds = evaluation.collect_predictions(model, data)          # probs, y_pred, y_true
    evaluation.plot_confusion(preds.y_true, preds.y_pred, data.classes)
    evaluation.plot_misclassified(data.x_test, preds, data.classes)

The counting itself (confusion matrix, per-class report, most-confused pairs) lives in
`helpers.metrics`; this module ties it to a model and draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from . import metrics
from .data import ImageData
from .training import predict

__all__ = ["Predictions", "collect_predictions", "misclassified", "plot_confusion", "plot_misclassified"]


@dataclass
class Predictions:
    """A model's output on one split: `probs` `[N, K]`, `y_pred` and `y_true` `[N]` (CPU)."""

    probs: torch.Tensor
    y_pred: torch.Tensor
    y_true: torch.Tensor

    @property
    def confidence(self) -> torch.Tensor:
        """The probability of the predicted class, `[N]`."""
        return self.probs.max(dim=1).values

    @property
    def accuracy(self) -> float:
        return metrics.accuracy(self.y_true, self.y_pred)


def collect_predictions(model: nn.Module, data: ImageData, split: str = "test", batch_size: int = 512) -> Predictions:
    """Softmax probabilities and predicted labels of `model` on `data`'s `split` ("test"/"train")."""
    if split not in ("test", "train"):
        raise ValueError(f"split={split!r}; valid choices: 'test', 'train'")
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    probs = predict(model, x, data.mean, data.std, batch_size).softmax(dim=1)
    return Predictions(probs=probs, y_pred=probs.argmax(dim=1), y_true=y.cpu().long())


def misclassified(preds: Predictions, top: int | None = None) -> torch.Tensor:
    """Indices of the wrong predictions, most confident mistakes first (at most `top`)."""
    wrong = torch.nonzero(preds.y_pred != preds.y_true).flatten()
    order = preds.confidence[wrong].argsort(descending=True)
    wrong = wrong[order]
    return wrong if top is None else wrong[:top]


def plot_confusion(
    y_true, y_pred, class_names: Sequence[str], normalize: bool = True, title: str | None = None
) -> plt.Figure:
    """Confusion-matrix heatmap (rows: true class, columns: predicted), row-normalised by default."""
    cm = metrics.confusion_matrix(y_true, y_pred, len(class_names)).double()
    values = cm / cm.sum(dim=1, keepdim=True).clamp(min=1) if normalize else cm
    n = len(class_names)
    size = min(9.0, 2.0 + 0.55 * n)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(values.numpy(), cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class" if normalize else "count")
    labels = [str(c)[:12] for c in class_names]
    ax.set_xticks(range(n), labels, rotation=45 if max(map(len, labels)) > 2 else 0, ha="right" if max(map(len, labels)) > 2 else "center")
    ax.set_yticks(range(n), labels)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                v = values[i, j].item()
                if v > 0:
                    text = f"{v:.2f}" if normalize else f"{int(v)}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=7,
                            color="white" if v > 0.5 * float(values.max()) else "black")
    ax.set(xlabel="predicted class", ylabel="true class", title=title or "Confusion matrix")
    ax.grid(False)
    fig.tight_layout()
    return fig


def plot_misclassified(
    images: torch.Tensor, preds: Predictions, class_names: Sequence[str], n: int = 16, ncols: int = 8
) -> plt.Figure:
    """The `n` most confident mistakes: each image titled 'true → predicted (confidence)'."""
    from .plots import to_display

    idx = misclassified(preds, top=n)
    if len(idx) == 0:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        return fig
    ncols = max(1, min(ncols, len(idx)))
    nrows = int(np.ceil(len(idx) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.55 * ncols, 1.75 * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, idx.tolist()):
        ax.imshow(to_display(images[i]), cmap="gray")
        t, p = class_names[int(preds.y_true[i])], class_names[int(preds.y_pred[i])]
        ax.set_title(f"{str(t)[:9]} → {str(p)[:9]}\n({preds.confidence[i]:.0%})", fontsize=8, color="crimson")
    fig.suptitle("Most confident mistakes: true → predicted (confidence)")
    fig.tight_layout()
    return fig
