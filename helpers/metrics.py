"""Classification metrics written out in tensor code (tests check them against scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "accuracy",
    "classification_report",
    "confusion_matrix",
    "most_confused",
    "precision_recall_f1",
    "top_k_accuracy",
]


def _labels(y: torch.Tensor | Sequence[int]) -> torch.Tensor:
    return torch.as_tensor(y).long().cpu().flatten()


def accuracy(y_true, y_pred) -> float:
    """Fraction of predictions equal to the labels."""
    y_true, y_pred = _labels(y_true), _labels(y_pred)
    return (y_true == y_pred).float().mean().item()


def top_k_accuracy(y_true, scores: torch.Tensor, k: int = 5) -> float:
    """Fraction of samples whose label is among the `k` highest scores `[N, n_classes]`."""
    scores = torch.as_tensor(scores).cpu()
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the number of classes ({scores.shape[1]})")
    top = scores.topk(k, dim=1).indices
    return (top == _labels(y_true)[:, None]).any(dim=1).float().mean().item()


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> torch.Tensor:
    """Counts `[n_classes, n_classes]`: row = true class, column = predicted class."""
    y_true, y_pred = _labels(y_true), _labels(y_pred)
    n = n_classes or int(max(y_true.max(), y_pred.max())) + 1
    return torch.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)


def precision_recall_f1(y_true, y_pred, n_classes: int | None = None) -> dict[str, torch.Tensor]:
    """Per-class precision, recall, F1 and support (0 where a ratio is 0/0, as scikit-learn)."""
    cm = confusion_matrix(y_true, y_pred, n_classes).double()
    tp = cm.diag()
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual.long()}


def classification_report(y_true, y_pred, class_names: Sequence[str]):
    """Per-class precision/recall/F1/support plus macro averages, as a pandas DataFrame."""
    import pandas as pd

    stats = precision_recall_f1(y_true, y_pred, len(class_names))
    frame = pd.DataFrame({k: v.numpy() for k, v in stats.items()}, index=list(class_names))
    frame.loc["macro avg"] = [
        frame["precision"].mean(), frame["recall"].mean(), frame["f1"].mean(), frame["support"].sum()
    ]
    frame["support"] = frame["support"].astype(int)
    return frame.round(4)


def most_confused(y_true, y_pred, class_names: Sequence[str], top: int = 5) -> list[tuple[str, str, int]]:
    """The `top` (true, predicted, count) pairs with the most mistakes, largest first."""
    cm = confusion_matrix(y_true, y_pred, len(class_names)).clone()
    cm.fill_diagonal_(0)
    flat = cm.flatten()
    order = flat.argsort(descending=True)[:top]
    n = len(class_names)
    return [
        (class_names[int(i) // n], class_names[int(i) % n], int(flat[i]))
        for i in order
        if flat[i] > 0
    ]
