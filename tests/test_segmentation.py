"""helpers.segmentation: transposed convolution vs PyTorch, pixel metrics vs scikit-learn, U-Net, baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import metrics as skm
from torch import nn

from helpers import segmentation as seg

SETTINGS = [  # (kernel, stride, padding, dilation, output_padding)
    (3, 1, 0, 1, 0), (3, 2, 1, 1, 1), (4, 2, 1, 1, 0), (2, 2, 0, 1, 0), (5, 3, 2, 2, 1), (3, 2, 0, 2, 1),
]


@pytest.mark.parametrize("k,s,p,d,op", SETTINGS)
def test_output_size_matches_conv_transpose2d(k, s, p, d, op):
    layer = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, dilation=d, output_padding=op)
    for h in (1, 4, 7):
        assert layer(torch.zeros(1, 1, h, h)).shape[-1] == seg.conv_transpose_output_size(h, k, s, p, d, op)


def test_output_size_refuses_bad_settings():
    with pytest.raises(ValueError, match="output_padding"):
        seg.conv_transpose_output_size(4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="stride"):
        seg.conv_transpose_output_size(4, 3, stride=0)
    with pytest.raises(ValueError, match="padding"):
        seg.conv_transpose_output_size(1, 1, padding=1)


@pytest.mark.parametrize("k,s,p,d,op", SETTINGS)
def test_conv_transpose2d_matches_torch(k, s, p, d, op):
    gen = torch.Generator().manual_seed(k * 100 + s)
    x, w, b = torch.randn(2, 3, 5, 6, generator=gen), torch.randn(3, 4, k, k, generator=gen), torch.randn(4, generator=gen)
    ours = seg.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op, dilation=d)
    ref = F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op, dilation=d)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-5)


def test_conv_transpose2d_is_the_gradient_of_conv2d():
    x = torch.randn(1, 3, 4, 4)
    w = torch.randn(3, 2, 3, 3)  # conv2d's weight [C_out=3, C_in=2, 3, 3] seen from the other side
    z = torch.zeros(1, 2, 9, 9, requires_grad=True)
    (F.conv2d(z, w, stride=2) * x).sum().backward()
    assert torch.allclose(seg.conv_transpose2d(x, w, stride=2), z.grad, atol=1e-5)


def test_conv_transpose2d_refuses_channel_mismatch():
    with pytest.raises(ValueError, match="C_in"):
        seg.conv_transpose2d(torch.zeros(1, 3, 4, 4), torch.zeros(2, 1, 3, 3))


@pytest.fixture(scope="module")
def label_maps():
    """Two 5-class label maps that agree on about 60 % of the pixels; class 4 never occurs."""
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (3, 16, 16), generator=gen)
    noise = torch.randint(0, 4, (3, 16, 16), generator=gen)
    pred = torch.where(torch.rand(3, 16, 16, generator=gen) < 0.6, target, noise)
    return pred, target


def test_confusion_matrix_matches_sklearn(label_maps):
    pred, target = label_maps
    cm = seg.confusion_matrix(pred, target, 5)
    ref = skm.confusion_matrix(target.flatten(), pred.flatten(), labels=range(5))
    assert np.array_equal(cm.numpy(), ref)
    assert cm.sum() == pred.numel()


def test_confusion_matrix_refuses_bad_input(label_maps):
    pred, target = label_maps
    with pytest.raises(ValueError, match="valid: 0..2"):
        seg.confusion_matrix(pred, target, 3)
    with pytest.raises(ValueError, match="same shape"):
        seg.confusion_matrix(pred[0], target, 5)


def test_iou_and_miou_match_sklearn(label_maps):
    pred, target = label_maps
    cm = seg.confusion_matrix(pred, target, 5)
    iou = seg.iou_per_class(cm)
    ref = skm.jaccard_score(target.flatten(), pred.flatten(), labels=range(4), average=None)
    assert np.allclose(iou[:4].numpy(), ref)
    assert math.isnan(iou[4])  # absent from both: no IoU at all, not 0 and not 1
    assert seg.mean_iou(cm) == pytest.approx(skm.jaccard_score(target.flatten(), pred.flatten(), average="macro"))
    assert 0 < seg.mean_iou(cm) < 1


def test_pixel_accuracy_and_dice(label_maps):
    pred, target = label_maps
    cm = seg.confusion_matrix(pred, target, 5)
    assert seg.pixel_accuracy(cm) == pytest.approx(skm.accuracy_score(target.flatten(), pred.flatten()))
    dice = seg.dice_per_class(cm)
    ref = skm.f1_score(target.flatten(), pred.flatten(), labels=range(4), average=None)
    assert np.allclose(dice[:4].numpy(), ref)
    iou = seg.iou_per_class(cm)
    assert torch.allclose(dice[:4], 2 * iou[:4] / (1 + iou[:4]))


def test_metrics_refuse_a_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        seg.iou_per_class(torch.zeros(2, 3))


def test_foreground_iou():
    a = torch.zeros(4, 4, dtype=torch.long)
    b = torch.zeros(4, 4, dtype=torch.long)
    a[:2] = 3  # 8 pixels, any class counts as foreground
    b[1:3] = 1  # 8 pixels, 4 shared
    assert seg.foreground_iou(a, b) == pytest.approx(4 / 12)
    assert seg.foreground_iou(a, a) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        seg.foreground_iou(a, b[:2])


def test_unet_shapes_and_bad_inputs():
    model = seg.UNet(in_channels=1, n_classes=5, width=4, depth=2)
    assert model(torch.zeros(2, 1, 16, 12)).shape == (2, 5, 16, 12)
    with pytest.raises(ValueError, match="divisible"):
        model(torch.zeros(1, 1, 14, 14))
    with pytest.raises(ValueError, match="width"):
        seg.UNet(width=0)


def _squares(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey 16x16 images with one bright square (class 1) and one dim square (class 2)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 16, 16, dtype=torch.uint8)
    masks = torch.zeros(n, 16, 16, dtype=torch.long)
    for i in range(n):
        r, c = torch.randint(0, 4, (2,), generator=gen).tolist()
        images[i, 0, r:r + 5, c:c + 5], masks[i, r:r + 5, c:c + 5] = 250, 1
        r, c = torch.randint(9, 12, (2,), generator=gen).tolist()
        images[i, 0, r:r + 4, c:c + 4], masks[i, r:r + 4, c:c + 4] = 90, 2
    return images, masks


def test_train_segmenter_learns_a_toy_task(one_thread):
    images, masks = _squares(48, seed=0)
    torch.manual_seed(0)
    model = seg.UNet(1, 3, width=4, depth=1)
    losses = seg.train_segmenter(model, images, masks, epochs=8, batch_size=8, lr=1e-2)
    assert losses[-1] < losses[0] / 2
    test_images, test_masks = _squares(16, seed=1)
    pred = seg.predict_masks(model, test_images)
    assert pred.shape == test_masks.shape and pred.dtype == torch.long
    assert seg.mean_iou(seg.confusion_matrix(pred, test_masks, 3)) > 0.8


def test_train_segmenter_refuses_mismatched_masks():
    images, masks = _squares(4, seed=0)
    with pytest.raises(ValueError, match="masks"):
        seg.train_segmenter(seg.UNet(1, 3, 4, 1), images, masks[:, :8])
    with pytest.raises(ValueError, match="uint8"):
        seg.predict_masks(seg.UNet(1, 3, 4, 1), images.float())


def test_otsu_matches_skimage():
    import skimage.data
    from skimage.filters import threshold_otsu

    rng = np.random.default_rng(0)
    bimodal = np.concatenate([rng.normal(60, 10, 500), rng.normal(180, 20, 300)]).clip(0, 255).astype(np.uint8)
    for image in (skimage.data.coins(), skimage.data.camera(), bimodal.reshape(20, 40)):
        assert seg.otsu_threshold(image) == threshold_otsu(image)
    assert 60 < seg.otsu_threshold(bimodal) < 180  # between the two modes
    with pytest.raises(ValueError, match="uint8"):
        seg.otsu_threshold(np.zeros((4, 4), dtype=np.float32))


def test_label_instances_connectivity():
    mask = np.zeros((6, 6), dtype=np.int64)
    mask[0:2, 0:2] = 1
    mask[2:4, 2:4] = 3  # touches the first block only at a corner
    mask[5, 5] = 2
    labels, n = seg.label_instances(mask, connectivity=1)
    assert n == 3 and labels.shape == mask.shape and set(np.unique(labels)) == {0, 1, 2, 3}
    assert seg.label_instances(mask, connectivity=2)[1] == 2
    with pytest.raises(ValueError, match="connectivity"):
        seg.label_instances(mask, connectivity=3)


def test_match_instances():
    truth = np.zeros((8, 8), dtype=np.int64)
    truth[0:3, 0:3], truth[0:3, 4:7] = 1, 2
    same = seg.match_instances(truth * 5, truth)  # ids differ, regions identical
    assert (same["tp"], same["fp"], same["fn"], same["matched_iou"]) == (2, 0, 0, 1.0)
    merged = (truth > 0).astype(np.int64)
    merged[0:3, 3] = 1  # one blob covering both objects
    r = seg.match_instances(merged, truth)
    assert (r["tp"], r["fp"], r["fn"]) == (0, 1, 2) and r["recall"] == 0.0
    with pytest.raises(ValueError, match="iou_threshold"):
        seg.match_instances(truth, truth, iou_threshold=0)


def test_scene_classes_are_imagenet_classes():
    from helpers.pretrained import imagenet_classes

    classes = set(imagenet_classes())
    assert len(set(seg.SCENE_CLASSES)) == len(seg.SCENE_CLASSES)
    assert set(seg.SCENE_CLASSES) <= classes, set(seg.SCENE_CLASSES) - classes
    assert "seashore" in seg.SCENE_CLASSES and "tabby" not in seg.SCENE_CLASSES


@pytest.mark.slow
def test_unet_segments_fashion_canvases(data_copy, one_thread):
    import helpers
    from helpers import canvases

    data = helpers.load_dataset("fashion_mnist", data_dir=data_copy)
    train, test = canvases.split_canvases(data, 256, 64, seed=0, size=48, max_objects=2, scale=(0.7, 1.2))
    torch.manual_seed(0)
    model = seg.UNet(1, 11, width=8, depth=2)
    seg.train_segmenter(model, train.images, train.masks, epochs=4, batch_size=32, lr=1e-2)
    pred = seg.predict_masks(model, test.images)
    assert seg.foreground_iou(pred, test.masks) > 0.7
    assert seg.mean_iou(seg.confusion_matrix(pred, test.masks, 11)) > 0.1  # measured 0.133 (seed 0); all-background ~0.08
