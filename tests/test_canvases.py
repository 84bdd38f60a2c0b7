"""helpers.canvases: synthetic scenes whose boxes, masks and splits are exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers.canvases import MASK_THRESHOLD, Canvases, make_canvases, split_canvases, to_coco
from helpers.imagedata import ImageData


def _items(n: int = 20, value: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Small grey items: a filled rectangle of random size in a 28x28 black square."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    for i in range(n):
        t, left = torch.randint(0, 8, (2,), generator=g).tolist()
        hh, ww = torch.randint(8, 20, (2,), generator=g).tolist()
        x[i, 0, t:t + hh, left:left + ww] = value
    return x, torch.arange(n) % 3


def test_boxes_are_tight_around_each_instance_and_masks_agree():
    x, y = _items()
    c = make_canvases(x, y, ["a", "b", "c"], n=30, size=80, seed=1)
    assert len(c) == 30 and c.images.shape == (30, 1, 80, 80) and c.images.dtype == torch.uint8
    assert c.masks.dtype == torch.int64 and c.instances.shape == (30, 80, 80)
    for i in range(len(c)):
        assert c.boxes[i].dtype == torch.float32 and c.labels[i].dtype == torch.int64
        covered = torch.zeros(80, 80, dtype=torch.bool)
        for k, (box, label) in enumerate(zip(c.boxes[i], c.labels[i])):
            x1, y1, x2, y2 = box.long().tolist()
            inside = c.images[i, 0, y1:y2, x1:x2] > 0
            # tight: every edge row/column of the box holds a lit pixel
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            covered[y1:y2, x1:x2] = True
            ys, xs = torch.nonzero(c.instances[i] == k + 1, as_tuple=True)
            assert xs.min() >= x1 and xs.max() < x2 and ys.min() >= y1 and ys.max() < y2  # mask in box
            assert (c.masks[i][c.instances[i] == k + 1] == label + 1).all()
            assert label == y[c.sources[i][k]]
        assert not (c.images[i, 0] > 0)[~covered].any()  # complete: every lit pixel is in a box
        assert ((c.masks[i] > 0) == (c.instances[i] > 0)).all()
        assert int(c.instances[i].max()) == len(c.boxes[i])


def test_no_overlap_by_default_and_overlap_when_allowed():
    x, y = _items()
    c = make_canvases(x, y, ["a", "b", "c"], n=40, size=70, max_objects=5, seed=2)
    for b in c.boxes:
        for i in range(len(b)):
            for j in range(i + 1, len(b)):
                iw = min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0])
                ih = min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1])
                assert iw <= 0 or ih <= 0
    loose = make_canvases(x, y, ["a", "b", "c"], n=40, size=50, max_objects=5, seed=2, max_iou=0.5)
    assert loose.n_objects() > make_canvases(x, y, ["a", "b", "c"], n=40, size=50, max_objects=5, seed=2).n_objects()


def test_scale_sets_the_item_size_and_seed_repeats():
    x, y = _items(value=255)
    full = torch.full((4, 1, 28, 28), 255, dtype=torch.uint8)
    c = make_canvases(full, torch.zeros(4, dtype=torch.long), ["a"], n=20, size=64, scale=(1.5, 1.5))
    sides = torch.cat([b[:, 2:] - b[:, :2] for b in c.boxes])
    assert (sides == 42).all()  # round(28 * 1.5)
    a = make_canvases(x, y, ["a", "b", "c"], n=5, seed=3)
    b = make_canvases(x, y, ["a", "b", "c"], n=5, seed=3)
    assert torch.equal(a.images, b.images) and all(torch.equal(p, q) for p, q in zip(a.boxes, b.boxes))
    assert not torch.equal(a.images, make_canvases(x, y, ["a", "b", "c"], n=5, seed=4).images)


def test_pixels_are_the_resized_item_and_mask_threshold():
    item = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    item[0, 0, 4:24, 6:20] = torch.arange(20, dtype=torch.uint8)[:, None] * 12  # a ramp
    c = make_canvases(item, torch.zeros(1, dtype=torch.long), ["ramp"], n=1, size=40, max_objects=1,
                      scale=(1.0, 1.0))
    img = c.images[0, 0]
    assert torch.equal(torch.sort(img.flatten()).values[-560:], torch.sort(item.flatten()).values[-560:])
    on = img.float() > MASK_THRESHOLD * float(img.max())
    assert torch.equal(on, c.masks[0] > 0)
    resized = F.interpolate(item.float(), size=(28, 28), mode="bilinear", antialias=True).round()
    assert float(resized.max()) == float(img.max())


def test_split_canvases_takes_train_items_for_train_and_test_items_for_test():
    # train items are dim (value 90), test items bright (value 250): a mixed-up split shows in the pixels
    x_tr, y_tr = _items(30, value=90, seed=0)
    x_te, y_te = _items(10, value=250, seed=1)
    data = ImageData("toy", x_tr, y_tr, x_te, y_te, ["a", "b", "c"])
    train, test = split_canvases(data, n_train=25, n_test=15, size=64)
    assert int(train.images.max()) == 90 and int(test.images.min()) == 0 and int(test.images.max()) == 250
    assert all(int(train.images[i].max()) == 90 for i in range(len(train)))  # no bright test item
    assert train.origin == "toy/train" and test.origin == "toy/test"
    assert all(int(s.max()) < 10 for s in test.sources)
    assert not torch.equal(train.images[:15], test.images)  # different seeds as well


def test_repr_len_getitem_subset_and_targets():
    x, y = _items()
    c = make_canvases(x, y, ["a", "b", "c"], n=6, seed=5, origin="toy/test")
    text = repr(c)
    assert "6 images [1, 96, 96]" in text and f"{c.n_objects()} objects" in text and "toy/test" in text
    one = c[2]
    assert torch.equal(one["image"], c.images[2]) and torch.equal(one["boxes"], c.boxes[2])
    sub = c.subset([4, 1])
    assert isinstance(sub, Canvases) and len(sub) == 2 and torch.equal(sub.boxes[0], c.boxes[4])
    assert torch.equal(sub.masks[1], c.masks[1]) and len(c.subset(slice(0, 3))) == 3
    with pytest.raises(IndexError, match="out of range"):
        c[6]
    assert [t["labels"].tolist() for t in c.targets()] == [lab.tolist() for lab in c.labels]


def test_to_coco_converts_boxes_and_ids():
    targets = [{"boxes": torch.tensor([[1.0, 2.0, 11.0, 7.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    coco = to_coco(targets, ["a", "b", "c"], (32, 32))
    assert [im["id"] for im in coco["images"]] == [1, 2]
    (ann,) = coco["annotations"]
    assert ann["bbox"] == [1.0, 2.0, 10.0, 5.0] and ann["area"] == 50.0 and ann["category_id"] == 3
    assert ann["image_id"] == 1 and ann["iscrowd"] == 0 and len(coco["categories"]) == 3
    with pytest.raises(ValueError, match="outside 0..1"):
        to_coco(targets, 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 30}, "too small"),
    ({"n": 0}, "n=0"),
    ({"max_objects": 0}, "max_objects"),
    ({"scale": (1.2, 1.0)}, "scale"),
    ({"max_iou": 1.0}, "max_iou"),
])
def test_bad_arguments_name_the_value(kwargs, match):
    x, y = _items()
    args = {"n": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_canvases(x, y, ["a", "b", "c"], **args)


def test_bad_images_and_labels_are_rejected():
    x, y = _items()
    with pytest.raises(ValueError, match="uint8"):
        make_canvases(x.float(), y, ["a", "b", "c"], n=1)
    with pytest.raises(ValueError, match="grey"):
        make_canvases(x.repeat(1, 3, 1, 1), y, ["a", "b", "c"], n=1)
    with pytest.raises(ValueError, match=r"labels must lie in 0..1"):
        make_canvases(x, y, ["a", "b"], n=1)
    assert np.isclose(MASK_THRESHOLD, 0.25)
