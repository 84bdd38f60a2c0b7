"""helpers.faces: the LFW subset, batched HOG, sliding windows, NMS, hard negatives, test scenes."""

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


def test_grey_uses_rgb2gray_weights_and_keeps_grey_images():
    from skimage.color import rgb2gray

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    g = faces.grey(rgb)
    assert g.dtype == np.uint8 and g.shape == (6, 7)
    assert np.array_equal(g, np.round(rgb2gray(rgb) * 255).astype(np.uint8))
    pure_green = np.zeros((2, 2, 3), dtype=np.uint8)
    pure_green[..., 1] = 255
    assert faces.grey(pure_green)[0, 0] == round(0.7154 * 255)  # BT.709-like, not BT.601's 0.587
    assert np.array_equal(faces.grey(g), g)
    assert faces.grey(np.ones((2, 2), dtype=bool)).max() == 255
    with pytest.raises(ValueError, match="grey"):
        faces.grey(np.zeros((2, 2, 5), dtype=np.uint8))


@pytest.mark.parametrize(("shape", "cell", "block", "orient"), [((25, 25), 5, 2, 9), ((30, 37), 4, 3, 8)])
def test_batched_hog_equals_scikit_image(shape, cell, block, orient):
    from skimage.feature import hog

    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.integers(0, 256, size=(12, 1, *shape), dtype=np.uint8))
    if shape == (25, 25):
        x[:4] = faces.load_faces()[0][:4]  # real faces too, not only noise
    ours = faces.hog_features(x, cell, block, orient, chunk=5)  # several chunks
    ref = np.stack([hog(img[0].numpy(), orientations=orient, pixels_per_cell=(cell, cell),
                        cells_per_block=(block, block)) for img in x])
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-5


def test_hog_rejects_colour_and_too_small_images():
    x, _ = faces.load_faces()
    with pytest.raises(ValueError, match="grey"):
        faces.hog_features(x.expand(-1, 3, -1, -1))
    with pytest.raises(ValueError, match="do not fit"):
        faces.hog_features(x[:2, :, :8, :8])


def test_hog_and_a_linear_svm_separate_faces_from_background():
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import LinearSVC

    x, y = faces.load_faces()
    feats = faces.hog_features(x)
    assert feats.shape == (200, 576)
    acc = cross_val_score(LinearSVC(C=0.1), feats, y.numpy(), cv=5).mean()
    assert acc > 0.8, acc


def test_svm_scorer_is_the_logistic_of_the_decision_value():
    from sklearn.svm import LinearSVC

    x, y = faces.load_faces()
    svm = LinearSVC(C=0.1).fit(faces.hog_features(x), y.numpy())
    scores = faces.svm_scorer(svm)(x)
    decision = svm.decision_function(faces.hog_features(x))
    assert scores.shape == (200,) and ((scores > 0) & (scores < 1)).all()
    assert torch.equal(scores >= 0.5, torch.from_numpy(decision >= 0))  # 0.5 is the SVM's boundary
    assert np.array_equal(np.argsort(scores.numpy(), kind="stable"), np.argsort(decision.astype(np.float32), kind="stable"))


def test_random_patches_are_resized_crops():
    img = np.arange(60 * 80, dtype=np.int64).reshape(60, 80) % 256
    img = img.astype(np.uint8)
    patches = faces.random_patches(img, 5, sizes=[50, 500], seed=0)
    assert patches.shape == (5, 1, 25, 25) and patches.dtype == torch.uint8
    with pytest.raises(ValueError, match="fits"):
        faces.random_patches(img, 1, sizes=[100])


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


def bright_square() -> np.ndarray:
    img = np.zeros((200, 200), dtype=np.uint8)
    img[40:100, 40:100] = 255
    return img


def test_detect_keeps_one_box_per_bright_square_after_nms():
    scorer = faces.cnn_scorer(Brightness(), mean=(0.0,), std=(1.0,))
    boxes, scores, before = faces.detect(scorer, bright_square(), sizes=(60,), stride_fraction=0.25,
                                         threshold=0.999, iou=0.3)
    assert before > len(boxes) >= 1  # several overlapping windows fire, NMS keeps fewer
    assert box_iou(boxes[:1], torch.tensor([[40.0, 40.0, 100.0, 100.0]])).item() > 0.6  # the best box is on the square
    assert torch.all(scores[:-1] >= scores[1:])  # best first
    if len(boxes) > 1:
        iou = box_iou(boxes, boxes).fill_diagonal_(0)
        assert iou.max() <= 0.3
    with pytest.raises(ValueError, match="threshold"):
        faces.detect(scorer, bright_square(), threshold=2)


def test_a_scorer_outside_zero_one_is_an_error():
    with pytest.raises(ValueError, match="scores in"):
        faces.score_windows(lambda w: torch.full((len(w),), 3.0), bright_square(), sizes=(60,))


def test_mine_negatives_returns_the_false_positives_best_first():
    scorer = faces.cnn_scorer(Brightness(), mean=(0.0,), std=(1.0,))
    img = bright_square()
    _, _, scores = faces.score_windows(scorer, img, (60,), 0.2)
    hard, n_false = faces.mine_negatives(scorer, [img, img], sizes=(60,), threshold=0.9, limit=3)
    assert n_false == 2 * int((scores >= 0.9).sum()) > 0  # every window above threshold counts, in each image
    assert 1 <= len(hard) <= 3 and hard.shape[1:] == (1, 25, 25)
    brightness = hard.float().mean(dim=(1, 2, 3))
    assert torch.all(brightness[:-1] >= brightness[1:]) and brightness[0] > 200
    none, zero = faces.mine_negatives(scorer, [np.zeros((100, 100), dtype=np.uint8)], sizes=(60,), threshold=0.9)
    assert len(none) == 0 and zero == 0


def test_paste_scenes_puts_known_faces_in_known_boxes():
    x, _ = faces.load_faces()
    background = np.zeros((150, 300), dtype=np.uint8)  # black, smaller than the scene: upscaled
    scenes, boxes = faces.paste_scenes(x[:10], [background], n_scenes=6, size=160, face_sizes=(30, 60),
                                       max_faces=3, seed=0)
    assert scenes.shape == (6, 160, 160) and scenes.dtype == torch.uint8 and len(boxes) == 6
    for scene, b in zip(scenes, boxes):
        assert 1 <= len(b) <= 3
        side = b[:, 2] - b[:, 0]
        assert torch.equal(side, b[:, 3] - b[:, 1]) and side.min() >= 30 and side.max() <= 60
        assert b.min() >= 0 and b.max() <= 160
        if len(b) > 1:
            assert box_iou(b, b).fill_diagonal_(0).max() == 0  # faces do not overlap
        inside = torch.zeros(160, 160, dtype=torch.bool)
        for x1, y1, x2, y2 in b.int().tolist():
            inside[y1:y2, x1:x2] = True
        assert scene[~inside].max() == 0 and scene[inside].float().mean() > 30  # faces only inside the boxes
    again, _ = faces.paste_scenes(x[:10], [background], n_scenes=6, size=160, face_sizes=(30, 60), seed=0)
    assert torch.equal(scenes, again)
    with pytest.raises(ValueError, match="face_sizes"):
        faces.paste_scenes(x[:10], [background], n_scenes=1, size=100, face_sizes=(30, 90))
