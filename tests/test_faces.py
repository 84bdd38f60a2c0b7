"""helpers.faces: the LFW subset, HOG baseline, sliding windows and NMS."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from helpers import faces


def test_lfw_subset_is_balanced_faces_first():
    x, y = faces.load_faces()
    assert x.shape == (200, 1, 25, 25) and x.dtype == torch.uint8
    assert y[:100].eq(1).all() and y[100:].eq(0).all()


def test_hog_and_a_linear_svm_separate_faces_from_background():
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import LinearSVC

    x, y = faces.load_faces()
    feats = faces.hog_features(x)
    assert feats.shape[0] == 200
    acc = cross_val_score(LinearSVC(C=0.1), feats, y.numpy(), cv=5).mean()
    assert acc > 0.8, acc
    with pytest.raises(ValueError, match="grey"):
        faces.hog_features(x.expand(-1, 3, -1, -1))


def test_sliding_windows_are_resized_crops_at_the_right_boxes():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(100, 120), dtype=np.uint8)
    windows, boxes = faces.sliding_windows(img, [50], stride_fraction=0.2)
    assert windows.shape == (len(boxes), 1, 25, 25) and len(boxes) == 6 * 8
    x1, y1, x2, y2 = (int(v) for v in boxes[9])
    ref = F.interpolate(torch.from_numpy(img[y1:y2, x1:x2]).float()[None, None], size=(25, 25), mode="area")
    assert torch.equal(ref.round()[0].to(torch.uint8), windows[9])
    with pytest.raises(ValueError, match="window size"):
        faces.sliding_windows(img, [500])


class Brightness(torch.nn.Module):
    """A fake face model: P(face) grows with the window's mean brightness."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(5.0))

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3)) * self.gain
        return torch.stack([-m, m], dim=1)


def test_detect_keeps_one_box_per_bright_square_after_nms():
    img = np.zeros((200, 200), dtype=np.uint8)
    img[40:100, 40:100] = 255
    boxes, scores, before = faces.detect(Brightness(), img, mean=(0.0,), std=(1.0,), sizes=(60,),
                                         stride_fraction=0.25, threshold=0.999, iou=0.3)
    assert before > len(boxes) >= 1  # several overlapping windows fire, NMS keeps fewer
    assert box_iou(boxes[:1], torch.tensor([[40.0, 40.0, 100.0, 100.0]])).item() > 0.6  # the best box is on the square
    if len(boxes) > 1:
        iou = box_iou(boxes, boxes).fill_diagonal_(0)
        assert iou.max() <= 0.3
    with pytest.raises(ValueError, match="threshold"):
        faces.detect(Brightness(), img, (0.0,), (1.0,), threshold=2)
