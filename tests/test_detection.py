"""helpers.detection: every piece checked against torchvision or pycocotools."""

from __future__ import annotations

import math
import zipfile

import numpy as np
import pytest
import torch
import torchvision

from helpers import detection as D
from helpers.canvases import make_canvases
from helpers.data import DatasetError


def _boxes(n: int, g: torch.Generator, side: float = 100.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * side
    wh = torch.rand(n, 2, generator=g) * 40 + 2
    return torch.cat([xy, xy + wh], 1)


def _scene(seed: int = 1, n_images: int = 40, n_classes: int = 3):
    """Random ground truth and noisy detections: some hits, duplicates, wrong classes, clutter."""
    g = torch.Generator().manual_seed(seed)
    gts, preds = [], []
    for _ in range(n_images):
        k = int(torch.randint(0, 6, (1,), generator=g))
        gb, gl = _boxes(k, g), torch.randint(0, n_classes, (k,), generator=g)
        gts.append({"boxes": gb, "labels": gl})
        nb = gb + torch.randn(gb.shape, generator=g) * 4
        nb = torch.cat([torch.minimum(nb[:, :2], nb[:, 2:]), torch.maximum(nb[:, :2], nb[:, 2:]) + 0.5], 1)
        m = int(torch.randint(0, 8, (1,), generator=g))
        pb = torch.cat([nb, nb[: k // 2] + 1, _boxes(m, g)])
        pl = torch.cat([gl, gl[: k // 2], torch.randint(0, n_classes, (m,), generator=g)])
        pl = torch.where(torch.rand(len(pl), generator=g) < 0.1, (pl + 1) % n_classes, pl)
        preds.append({"boxes": pb, "scores": torch.rand(len(pb), generator=g), "labels": pl})
    return preds, gts


def test_box_iou_equals_torchvision():
    g = torch.Generator().manual_seed(0)
    a, b = _boxes(40, g), _boxes(25, g)
    assert torch.allclose(D.box_iou(a, b), torchvision.ops.box_iou(a, b), atol=1e-6)
    assert torch.allclose(D.box_iou(a, a).diagonal(), torch.ones(40))
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        D.box_iou(a[:, :3], b)


def test_nms_and_batched_nms_keep_the_same_indices_as_torchvision():
    g = torch.Generator().manual_seed(1)
    for threshold in (0.1, 0.3, 0.5, 0.7):
        boxes, scores = _boxes(120, g, 60), torch.rand(120, generator=g)
        labels = torch.randint(0, 4, (120,), generator=g)
        assert torch.equal(D.nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))
        ours = D.batched_nms(boxes, scores, labels, threshold)
        assert torch.equal(ours, torchvision.ops.batched_nms(boxes, scores, labels, threshold))
    assert len(D.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)) == 0
    assert D.box_area(torch.tensor([[0.0, 0.0, 2.0, 3.0]])).item() == 6.0


def test_anchors_equal_torchvisions_anchor_generator():
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList

    gen = AnchorGenerator(sizes=((16, 32),), aspect_ratios=((0.5, 1.0, 2.0),))
    ref = gen(ImageList(torch.zeros(1, 1, 48, 40), [(48, 40)]), [torch.zeros(1, 8, 12, 10)])[0]
    ours = D.make_anchors((12, 10), 4, (16, 32), (0.5, 1.0, 2.0), offset=0)
    assert ours.shape == (12 * 10 * 6, 4)
    assert torch.equal(ours.round(), ref)  # torchvision rounds its base anchors to whole pixels
    a = D.make_anchors((2, 2), 8, (16,), (2.0,))
    w, h = a[0, 2] - a[0, 0], a[0, 3] - a[0, 1]
    assert torch.isclose(h / w, torch.tensor(2.0)) and torch.isclose(w * h, torch.tensor(256.0))
    assert torch.equal((a[:, :2] + a[:, 2:]) / 2, torch.tensor([[4.0, 4], [12, 4], [4, 12], [12, 12]]))


def test_match_anchors_equals_torchvisions_matcher():
    from torchvision.models.detection._utils import Matcher

    g = torch.Generator().manual_seed(2)
    anchors = D.make_anchors((24, 24), 4, (16, 32))
    for allow in (True, False):
        boxes = _boxes(5, g, 80)
        ref = Matcher(0.5, 0.4, allow_low_quality_matches=allow)(D.box_iou(boxes, anchors))
        assert torch.equal(D.match_anchors(anchors, boxes, allow_low_quality=allow), ref)
    assert (D.match_anchors(anchors, torch.zeros(0, 4)) == -1).all()


def test_fcos_targets_positive_cells_distances_and_centreness():
    boxes = torch.tensor([[8.0, 8.0, 40.0, 24.0], [20.0, 12.0, 28.0, 20.0]])
    t = D.fcos_targets(boxes, torch.tensor([3, 5]), (12, 12), 4)
    centres = D.cell_centres((12, 12), 4)
    pos = t["labels"] >= 0
    inside0 = (centres[:, 0] > 8) & (centres[:, 0] < 40) & (centres[:, 1] > 8) & (centres[:, 1] < 24)
    assert torch.equal(pos, inside0)  # the small box lies inside the big one
    inner = (centres[:, 0] > 20) & (centres[:, 0] < 28) & (centres[:, 1] > 12) & (centres[:, 1] < 20)
    assert (t["labels"][inner] == 5).all() and (t["labels"][inside0 & ~inner] == 3).all()  # smallest wins
    ltrb = t["ltrb"][pos]
    rebuilt = torch.cat([centres[pos] - ltrb[:, :2], centres[pos] + ltrb[:, 2:]], 1)
    assert torch.equal(rebuilt, boxes[t["box"][pos]])
    c = t["centreness"][pos]
    assert (c > 0).all() and (c <= 1).all() and (t["centreness"][~pos] == 0).all()
    left, tp, r, b = ltrb.unbind(1)
    assert torch.allclose(c, torch.sqrt(torch.minimum(left, r) / torch.maximum(left, r)
                                        * torch.minimum(tp, b) / torch.maximum(tp, b)))
    narrow = D.fcos_targets(boxes, torch.tensor([3, 5]), (12, 12), 4, centre_radius=1.0)
    assert 0 < int((narrow["labels"] >= 0).sum()) < int(pos.sum())
    sized = D.fcos_targets(boxes, torch.tensor([3, 5]), (12, 12), 4, size_range=(0, 8))
    assert set(sized["labels"][sized["labels"] >= 0].tolist()) == {5}
    assert (D.fcos_targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), (3, 3), 4)["labels"] == -1).all()


def test_average_precision_by_hand():
    gts = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 0])}]
    preds = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]]),
              "scores": torch.tensor([0.9, 0.8, 0.7, 0.6]), "labels": torch.tensor([0, 0, 0, 0])}]
    r = D.average_precision(preds, gts, 0.5)
    # hit, duplicate, clutter, hit: precision 1, 1/2, 1/3, 1/2 at recall 0.5, 0.5, 0.5, 1
    assert r.tp.tolist() == [True, False, False, True] and r.n_gt == 2
    assert np.allclose(r.recall, [0.5, 0.5, 0.5, 1.0])
    # interpolated: 1.0 for recall 0..0.5 (51 points), 0.5 for 0.51..1 (50 points)
    assert math.isclose(r.ap, (51 * 1.0 + 50 * 0.5) / 101, rel_tol=1e-9)
    assert math.isnan(D.average_precision(preds, gts, 0.5, label=1).ap)


@pytest.mark.parametrize("seed", [1, 2])
def test_mean_average_precision_equals_pycocotools(seed):
    preds, gts = _scene(seed)
    ours = D.mean_average_precision(preds, gts, n_classes=3)
    ref = D.coco_evaluate(preds, gts, n_classes=3)
    for key in ("map", "map50", "map75"):
        assert abs(ours[key] - ref[key]) < 1e-6, (key, ours[key], ref[key])
    assert 0 < ours["map"] < ours["map50"] < 1
    assert ours["per_class"].shape == (3, 10)


def test_single_class_average_precision_equals_pycocotools():
    preds, gts = _scene(3, n_classes=1)
    ref = D.coco_evaluate(preds, gts, n_classes=1)
    assert abs(D.average_precision(preds, gts, 0.5).ap - ref["map50"]) < 1e-6
    assert abs(D.average_precision(preds, gts, 0.5, label=0).ap - ref["map50"]) < 1e-6


def test_max_detections_cap_and_bad_lists():
    preds, gts = _scene(4)
    capped = D.average_precision(preds, gts, 0.5, label=0, max_detections=1)
    assert all(len(m["order"]) <= 1 for m in capped.matches)
    with pytest.raises(ValueError, match="one dict per image"):
        D.average_precision(preds[:3], gts)
    with pytest.raises(ValueError, match="lacks"):
        D.average_precision([{"boxes": torch.zeros(0, 4)}], gts[:1])


def test_error_analysis_counts_each_kind():
    gts = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 44, 44]]),
            "labels": torch.tensor([0, 1, 0])}]
    preds = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [60, 60, 70, 70],
                                     [0, 0, 10, 30]]),
              "scores": torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5]), "labels": torch.tensor([0, 0, 0, 0, 0])}]
    e = D.error_analysis(preds, gts, 0.5, score_threshold=0.3)
    assert (e["true_positive"], e["duplicate"], e["confusion"], e["background"]) == (1, 1, 1, 1)
    assert e["localisation"] == 1 and e["missed"] == 2 and sorted(e["missed_sides"].tolist()) == [4.0, 10.0]
    assert e["confusions"] == [(1, 0)]


def test_decode_turns_maps_into_boxes():
    out = {"logits": torch.full((1, 2, 4, 4), -20.0), "ltrb": torch.full((1, 4, 4, 4), 2.0),
           "centreness": torch.full((1, 1, 4, 4), 20.0)}
    out["logits"][0, 1, 2, 1] = 20.0  # class 1 at row 2, column 1: centre (6, 10) with stride 4
    (p,) = D.decode(out, stride=4, image_size=16)
    assert p["labels"].tolist() == [1] and torch.allclose(p["boxes"], torch.tensor([[4.0, 8.0, 8.0, 12.0]]))
    assert p["scores"][0] > 0.99


@pytest.mark.slow
def test_tiny_detector_learns_on_canvases(one_thread):
    x = torch.zeros(40, 1, 28, 28, dtype=torch.uint8)
    y = torch.arange(40) % 2
    x[y == 0, 0, 6:22, 6:22] = 255  # class 0: a square
    x[y == 1, 0, 4:24, 12:16] = 255  # class 1: a bar
    train = make_canvases(x, y, ["square", "bar"], n=200, size=64, max_objects=3, seed=0)
    test = make_canvases(x, y, ["square", "bar"], n=50, size=64, max_objects=3, seed=1)
    model, history = D.train_detector(train, epochs=6, batch_size=16, lr=4e-3, width=16)
    assert history["loss"][-1] < history["loss"][0] / 2
    m = D.mean_average_precision(D.detect(model, test.images), test.targets(), n_classes=2)
    assert m["map50"] > 0.8, m


def _penn_fudan_fixture(root, corrupt: str | None = None):
    """A PennFudanPed.zip in the real layout: PNGImages/*.png and PedMasks/*_mask.png."""
    from PIL import Image

    src = root / "src" / "PennFudanPed"
    (src / "PNGImages").mkdir(parents=True)
    (src / "PedMasks").mkdir()
    for i, n_people in enumerate((1, 2, 3), start=1):
        image = np.full((30 + i, 40, 3), 60 * i, dtype=np.uint8)
        mask = np.zeros((30 + i, 40), dtype=np.uint8)
        for k in range(1, n_people + 1):
            mask[5:20 + k, 10 * k - 8:10 * k - 2] = k
        Image.fromarray(image).save(src / "PNGImages" / f"FudanPed0000{i}.png")
        Image.fromarray(mask).save(src / "PedMasks" / f"FudanPed0000{i}_mask.png")
    if corrupt == "mask":
        (src / "PedMasks" / "FudanPed00002_mask.png").unlink()
    if corrupt == "image":
        (src / "PNGImages" / "FudanPed00003.png").write_bytes(b"not a png")
    archive = root / "PennFudanPed.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(src.rglob("*")):
            z.write(path, path.relative_to(root / "src"))
    return archive


def test_load_penn_fudan_reads_the_real_layout_and_checks_the_checksum(tmp_path):
    from torchvision.datasets.utils import calculate_md5

    archive = _penn_fudan_fixture(tmp_path)
    with pytest.raises(DatasetError, match="fails its MD5 check"):
        D.load_penn_fudan(tmp_path, md5="0" * 32)
    data = D.load_penn_fudan(tmp_path, md5=calculate_md5(str(archive)))
    assert len(data) == 3 and data.names[0] == "FudanPed00001.png" and "6 pedestrians" in repr(data)
    assert data.images[1].shape == (3, 32, 40) and data.images[1].dtype == torch.uint8
    assert data.boxes[2].tolist() == [[2.0, 5.0, 8.0, 21.0], [12.0, 5.0, 18.0, 22.0], [22.0, 5.0, 28.0, 23.0]]
    assert data.targets()[1]["labels"].tolist() == [0, 0]
    assert int(data.masks[2].max()) == 3


def test_load_penn_fudan_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(DatasetError, match=r"PennFudanPed.zip is missing.*download https://www.cis.upenn.edu"):
        D.load_penn_fudan(tmp_path)
    (tmp_path / "PennFudanPed.zip").write_bytes(b"truncated")
    with pytest.raises(DatasetError, match="not a valid zip"):
        D.load_penn_fudan(tmp_path)
    for kind, name in (("mask", "FudanPed00002_mask.png"), ("image", "FudanPed00003.png")):
        root = tmp_path / kind
        root.mkdir()
        _penn_fudan_fixture(root, corrupt=kind)
        with pytest.raises(DatasetError, match=name) as err:
            D.load_penn_fudan(root)
        assert "download it again" in str(err.value)


def test_penn_fudan_canvases_rescale_boxes_and_masks(tmp_path):
    _penn_fudan_fixture(tmp_path)
    data = D.load_penn_fudan(tmp_path, md5=None)
    c = D.penn_fudan_canvases(data, size=64)
    assert c.images.shape == (3, 1, 64, 64) and c.classes == ["pedestrian"] and c.n_objects() == 6
    assert torch.allclose(c.boxes[0], data.boxes[0] * torch.tensor([64 / 40, 64 / 31, 64 / 40, 64 / 31]))
    assert int(c.instances[2].max()) == 3 and set(c.masks[2].unique().tolist()) == {0, 1}


def test_show_detections_draws_truth_and_confident_detections():
    import matplotlib.pyplot as plt

    x = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    x[:, 0, 8:20, 8:20] = 255
    c = make_canvases(x, torch.zeros(4, dtype=torch.long), ["square"], n=2, size=48, max_objects=2)
    preds = [{"boxes": b, "scores": torch.tensor([0.9, 0.1][: len(b)]), "labels": lab}
             for b, lab in zip(c.boxes, c.labels)]
    fig = D.show_detections(c, preds, index=[0, 1], score_threshold=0.5, ncols=2)
    n_patches = sum(len(ax.patches) for ax in fig.axes)
    assert n_patches == c.n_objects() + sum(int((p["scores"] >= 0.5).sum()) for p in preds)
    plt.close(fig)
