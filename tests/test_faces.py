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
    scorer = faces.windowed(faces.cnn_scorer(Brightness(), mean=(0.0,), std=(1.0,)), sizes=(60,), stride_fraction=0.25)
    _, scores, _ = scorer([bright_square()])
    (found,) = faces.detect(scorer, [bright_square()], threshold=0.999, iou=0.3)
    boxes = found["boxes"]
    assert int((scores >= 0.999).sum()) > len(boxes) >= 1  # several overlapping windows fire, NMS keeps fewer
    assert box_iou(boxes[:1], torch.tensor([[40.0, 40.0, 100.0, 100.0]])).item() > 0.6  # the best box is on the square
    assert torch.all(found["scores"][:-1] >= found["scores"][1:])  # best first
    if len(boxes) > 1:
        assert box_iou(boxes, boxes).fill_diagonal_(0).max() <= 0.3
    with pytest.raises(ValueError, match="threshold"):
        faces.detect(scorer, [bright_square()], threshold=2)


def test_a_scorer_outside_zero_one_is_an_error():
    with pytest.raises(ValueError, match="scores in"):
        faces.windowed(lambda w: torch.full((len(w),), 3.0), sizes=(60,))([bright_square()])
    with pytest.raises(ValueError, match="sizes"):
        faces.windowed(lambda w: w, sizes=())


def test_crop_windows_resizes_the_boxes():
    img = np.zeros((100, 100), dtype=np.uint8)
    img[10:60, 20:70] = 200
    crops = faces.crop_windows(img, torch.tensor([[20.0, 10.0, 70.0, 60.0], [0.0, 50.0, 50.0, 100.0]]))
    assert crops.shape == (2, 1, 25, 25) and crops.dtype == torch.uint8
    assert crops[0].eq(200).all()  # the bright square fills the first box exactly
    assert crops[1, 0, :5, 10:].eq(200).all() and crops[1, 0, 5:].eq(0).all()  # rows 50-59, x 20-49 of the second
    assert faces.crop_windows(img, torch.zeros(0, 4)).shape == (0, 1, 25, 25)
    with pytest.raises(ValueError, match="outside"):
        faces.crop_windows(img, torch.tensor([[120.0, 0.0, 150.0, 30.0]]))


def test_mine_negatives_returns_the_false_positives_best_first():
    scorer = faces.windowed(faces.cnn_scorer(Brightness(), mean=(0.0,), std=(1.0,)), sizes=(60,))
    img = bright_square()
    _, scores, _ = scorer([img])
    hard, n_false = faces.mine_negatives(scorer, [img, img], threshold=0.9, limit=3)
    assert n_false == 2 * int((scores >= 0.9).sum()) > 0  # every window above threshold counts, in each image
    assert 2 <= len(hard) <= 3 and hard.shape[1:] == (1, 25, 25)  # one per image at least (NMS within each)
    brightness = hard.float().mean(dim=(1, 2, 3))
    assert torch.all(brightness[:-1] >= brightness[1:]) and brightness[0] > 200
    none, zero = faces.mine_negatives(scorer, [np.zeros((100, 100), dtype=np.uint8)], threshold=0.9)
    assert len(none) == 0 and zero == 0
    with pytest.raises(ValueError, match="limit"):
        faces.mine_negatives(scorer, [img], limit=-1)


def test_facenet_scores_windows_and_its_logit_map_equals_window_by_window():
    torch.manual_seed(0)
    model = faces.FaceNet(width=4)
    assert model(torch.zeros(3, 1, 25, 25)).shape == (3, 2)
    x = torch.randn(2, 1, 40, 57)
    out = model.logit_map(x)
    assert out.shape == (2, 2, (40 - 25) // 4 + 1, (57 - 25) // 4 + 1)
    assert torch.allclose(out[1, :, 2, 5], model(x[1:2, :, 8:33, 20:45])[0], atol=1e-5)  # window at (8, 20)
    assert torch.allclose(out[0, :, -1, -1], model(x[0:1, :, 12:37, 32:57])[0], atol=1e-5)  # the last window
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(90, 110), dtype=np.uint8)
    mean, std = (0.5,), (0.25,)
    b_dense, s_dense, o_dense = faces.dense(model, [30, 50], mean, std)([image, image[:60]])
    b_win, s_win, o_win = faces.windowed(faces.cnn_scorer(model, mean, std), [30, 50], 4 / 25)([image, image[:60]])
    assert torch.equal(o_dense, o_win) and torch.allclose(b_dense, b_win)
    assert torch.allclose(s_dense.float(), s_win, atol=1e-5)
    with pytest.raises(ValueError, match="at least"):
        model.logit_map(torch.zeros(1, 1, 20, 30))
    with pytest.raises(ValueError, match="logit_map"):
        model(torch.zeros(1, 1, 30, 30))


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


def test_svm_scorer_gives_the_same_scores_in_chunks():
    from sklearn.svm import LinearSVC

    x, y = faces.load_faces()
    svm = LinearSVC(C=0.1).fit(faces.hog_features(x), y.numpy())
    whole, chunked = faces.svm_scorer(svm)(x), faces.svm_scorer(svm, chunk=7)(x)
    assert chunked.shape == (200,) and torch.allclose(whole, chunked)
    assert faces.svm_scorer(svm)(x[:0]).shape == (0,)
    with pytest.raises(ValueError, match="chunk"):
        faces.svm_scorer(svm, chunk=0)


def test_face_free_photos_are_grey_small_and_never_the_astronaut():
    hubble = faces.face_free_photo("hubble", max_side=300)  # 872x1000 colour originally
    assert hubble.dtype == np.uint8 and hubble.ndim == 2 and max(hubble.shape) <= 300 and min(hubble.shape) > 250
    moon = faces.face_free_photo("moon")
    import skimage.data
    assert np.array_equal(moon, skimage.data.moon())  # grey and small enough: unchanged
    with pytest.raises(ValueError, match="shows a face"):
        faces.face_free_photo("astronaut")
    with pytest.raises(ValueError, match="choose from"):
        faces.face_free_photo("mona_lisa")
    assert "camera" not in faces.FACE_FREE and "astronaut" not in faces.FACE_FREE


def test_jitter_without_shift_or_scale_only_mirrors():
    x, _ = faces.load_faces()
    out = faces.jitter(x[:20], copies=3, shift=0, scale=(1, 1), seed=0)
    assert out.shape == (60, 1, 25, 25) and out.dtype == torch.uint8
    ref = x[:20].repeat(3, 1, 1, 1)
    same = (out == ref).flatten(1).all(1)
    mirrored = (out == ref.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_jitter_moves_a_dot_by_at_most_the_shift_and_keeps_its_size_within_the_scale():
    img = torch.zeros(1, 1, 25, 25, dtype=torch.uint8)
    img[0, 0, 8:17, 8:17] = 200  # a 9x9 square at the centre
    out = faces.jitter(img, copies=200, shift=2, scale=(0.9, 1.1), seed=1).float()
    ys, xs = torch.meshgrid(torch.arange(25.0), torch.arange(25.0), indexing="ij")
    mass = out.sum(dim=(1, 2, 3))
    cx, cy = (out[:, 0] * xs).sum((1, 2)) / mass, (out[:, 0] * ys).sum((1, 2)) / mass
    assert (cx - 12).abs().max() <= 2.05 and (cy - 12).abs().max() <= 2.05  # centre moved by <= 2 px
    assert (cx - 12).abs().max() > 1.5  # and it does move
    area = mass / (200 * 81)
    assert area.min() > 0.9**2 - 0.03 and area.max() < 1.1**2 + 0.03 and area.max() - area.min() > 0.2
    with pytest.raises(ValueError, match="copies"):
        faces.jitter(img, copies=0)


def test_windows_of_concatenates_the_windows_of_each_image_and_names_the_image():
    rng = np.random.default_rng(0)
    big, small = rng.integers(0, 256, (100, 120), dtype=np.uint8), rng.integers(0, 256, (40, 60), dtype=np.uint8)
    windows, boxes, owner = faces.windows_of([big, small], sizes=[30, 50], stride_fraction=0.5)
    w_big, b_big = faces.sliding_windows(big, [30, 50], 0.5)
    w_small, b_small = faces.sliding_windows(small, [30], 0.5)  # 50 does not fit the small image: skipped
    assert torch.equal(windows, torch.cat([w_big, w_small])) and torch.equal(boxes, torch.cat([b_big, b_small]))
    assert torch.equal(owner, torch.cat([torch.zeros(len(b_big)), torch.ones(len(b_small))]).long())
    empty = faces.windows_of([small], sizes=[100])
    assert [len(t) for t in empty] == [0, 0, 0]


def test_per_image_detections_keep_each_image_apart_best_first():
    scorer = faces.cnn_scorer(Brightness(), mean=(0.0,), std=(1.0,))
    dark = np.zeros((200, 200), dtype=np.uint8)
    windows, boxes, owner = faces.windows_of([bright_square(), dark, bright_square()], sizes=(60,), stride_fraction=0.25)
    scores = scorer(windows)
    dets = faces.per_image_detections(boxes, scores, owner, n_images=3, threshold=0.999, iou=0.3)
    assert len(dets) == 3 and len(dets[1]["boxes"]) == 0  # nothing fires on the dark image
    for d in (dets[0], dets[2]):
        assert len(d["boxes"]) >= 1 and torch.all(d["scores"][:-1] >= d["scores"][1:])
        assert box_iou(d["boxes"][:1], torch.tensor([[40.0, 40.0, 100.0, 100.0]])).item() > 0.6
        assert set(d) == {"boxes", "scores", "labels"} and d["labels"].eq(0).all()
    capped = faces.per_image_detections(boxes, scores, owner, n_images=3, threshold=0.0, iou=1.0, max_detections=4)
    assert [len(d["boxes"]) for d in capped] == [4, 4, 4]
    with pytest.raises(ValueError, match="owner"):
        faces.per_image_detections(boxes, scores, owner, n_images=2)


def test_precision_recall_at_reads_the_operating_point():
    from helpers.detection import average_precision

    gts = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]), "labels": torch.zeros(2, dtype=torch.long)}]
    preds = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 61]]),
              "scores": torch.tensor([0.9, 0.8, 0.3]), "labels": torch.zeros(3, dtype=torch.long)}]
    result = average_precision(preds, gts, 0.5)
    assert faces.precision_recall_at(result, 0.85) == (1.0, 0.5)  # one true positive
    assert faces.precision_recall_at(result, 0.5) == (0.5, 0.5)  # plus one false positive
    assert faces.precision_recall_at(result, 0.1) == (2 / 3, 1.0)  # plus the second face
    assert np.isnan(faces.precision_recall_at(result, 0.95)[0])  # no detection: precision undefined
    with pytest.raises(ValueError, match="threshold"):
        faces.precision_recall_at(result, 1.5)


def test_average_is_the_mean_score_over_the_same_windows():
    bright = faces.windowed(faces.cnn_scorer(Brightness(), mean=(0.0,), std=(1.0,)), sizes=(60,))
    half = faces.windowed(lambda w: torch.full((len(w),), 0.5), sizes=(60,))
    boxes, mean, owner = faces.average([bright, half])([bright_square(), bright_square()[:100]])
    b1, s1, o1 = bright([bright_square(), bright_square()[:100]])
    assert torch.equal(boxes, b1) and torch.equal(owner, o1)
    assert torch.allclose(mean, (s1.double() + 0.5) / 2)
    other = faces.windowed(lambda w: torch.full((len(w),), 0.5), sizes=(50,))
    with pytest.raises(ValueError, match="same windows"):
        faces.average([bright, other])([bright_square()])
    with pytest.raises(ValueError, match="at least one"):
        faces.average([])


def test_dense_svm_scans_the_hog_of_the_whole_image_like_window_by_window_hog():
    from sklearn.svm import LinearSVC

    x, y = faces.load_faces()
    svm = LinearSVC(C=0.1).fit(faces.hog_features(x), y.numpy())
    one = x[0, 0].numpy()  # a single 25x25 window: no neighbours, so exactly the per-window HOG
    _, s_dense, _ = faces.dense_svm(svm, [25])([one])
    assert torch.allclose(s_dense.float(), faces.svm_scorer(svm)(x[:1]), atol=1e-5)
    photo = faces.face_free_photo("coffee", max_side=160)
    b_dense, s_dense, o_dense = faces.dense_svm(svm, [30, 50])([photo, photo[:60]])
    b_win, s_win, o_win = faces.windowed(faces.svm_scorer(svm), [30, 50], 0.2)([photo, photo[:60]])
    assert torch.equal(o_dense, o_win) and torch.allclose(b_dense, b_win)  # the same windows, one HOG cell apart
    rank = lambda v: v.argsort().argsort().double()  # noqa: E731
    corr = torch.corrcoef(torch.stack([rank(s_dense), rank(s_win.double())]))[0, 1]
    assert corr > 0.9, corr  # only the windows' border gradients differ
    with pytest.raises(ValueError, match="weights"):
        faces.dense_svm(svm, [30], pixels_per_cell=4)


def test_jitter_relights_and_turns():
    x, _ = faces.load_faces()
    flat = faces.jitter(x[:5], copies=2, shift=0, scale=(1, 1), contrast=(0, 0), seed=0).float()
    means = x[:5].float().mean(dim=(1, 2, 3)).repeat(2)
    assert (flat.flatten(1) - means[:, None]).abs().max() <= 0.5  # contrast 0: every pixel is the image's mean
    lit = faces.jitter(x[:5], copies=50, shift=0, scale=(1, 1), brightness=40, seed=0).float().mean(dim=(1, 2, 3))
    shifts = lit - x[:5].float().mean(dim=(1, 2, 3)).repeat(50)
    assert shifts.abs().max() <= 40.5 and shifts.max() > 20 and shifts.min() < -20  # up to +-40 grey levels
    bar = torch.zeros(1, 1, 25, 25, dtype=torch.uint8)
    bar[0, 0, 11:14, 2:23] = 200  # a horizontal bar through the centre
    turned = faces.jitter(bar, copies=20, shift=0, scale=(1, 1), rotate=30, seed=0).float()
    assert not torch.equal(turned, bar.float().expand_as(turned).flip(-1)) and (turned != bar.float()).any()
    assert (turned[:, 0, 12, 12] > 150).all()  # turning about the centre keeps the centre
    mass = turned.sum(dim=(1, 2, 3)) / bar.float().sum()
    assert (mass - 1).abs().max() < 0.15  # and keeps the bar's area
    with pytest.raises(ValueError, match="rotate"):
        faces.jitter(bar, copies=1, rotate=-1)


def test_near_misses_overlap_a_face_but_less_than_max_iou():
    x, _ = faces.load_faces()
    background = np.full((150, 300), 30, dtype=np.uint8)
    scenes, boxes = faces.paste_scenes(x[:10], [background], n_scenes=4, size=160, face_sizes=(30, 60), seed=1)
    near = faces.near_misses(scenes, boxes, per_face=5, max_iou=0.4, seed=0)
    n_faces = sum(len(b) for b in boxes)
    assert near.shape[1:] == (1, 25, 25) and near.dtype == torch.uint8 and 0 < len(near) <= 5 * n_faces
    assert len(near) >= 4 * n_faces  # rejection sampling nearly always finds them
    # windows show part of a face and background, or a piece of a face; almost never background alone
    background_only = (near.flatten(1) == 30).all(dim=1).float().mean()
    assert (near.flatten(1) == 30).any(dim=1).float().mean() > 0.5 and background_only < 0.1
    with pytest.raises(ValueError, match="one face_boxes"):
        faces.near_misses(scenes, boxes[:2])


def test_mine_negatives_skips_windows_on_known_faces():
    scorer = faces.windowed(faces.cnn_scorer(Brightness(), mean=(0.0,), std=(1.0,)), sizes=(60,))
    img = bright_square()  # the bright square plays a face with a known box
    face = torch.tensor([[40.0, 40.0, 100.0, 100.0]])
    everything, n_all = faces.mine_negatives(scorer, [img], threshold=0.9, limit=50)
    off_face, n_off = faces.mine_negatives(scorer, [img], threshold=0.9, limit=50, face_boxes=[face], max_face_iou=0.1)
    assert n_all > n_off and len(everything) > len(off_face)
    _, scores, _ = scorer([img])
    boxes, _, _ = scorer([img])
    assert n_off == int(((scores >= 0.9) & (box_iou(boxes, face)[:, 0] < 0.1)).sum())
    with pytest.raises(ValueError, match="one per image"):
        faces.mine_negatives(scorer, [img], face_boxes=[face, face])
