"""helpers.transfer: folder checks (every bad input), demo folder, splits, cached features, heads, save/predict."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from helpers import pretrained, transfer
from helpers.imagedata import DatasetError

LFW = (skimage.data.lfw_subset() * 255).round().astype(np.uint8)  # [200, 25, 25]: 100 faces, 100 non-faces


def make_folder(root: Path, per_class: dict[str, int], side: int = 40) -> Path:
    """A real-image folder: LFW faces / non-faces (enlarged to `side`) and grey brick crops."""
    sources = {"face": LFW[:100], "not_face": LFW[100:], "brick": None}
    brick = skimage.data.brick()
    for name, n in per_class.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            src = sources.get(name)
            a = brick[i * 20:i * 20 + 60, i * 7:i * 7 + 60] if src is None else src[i]
            Image.fromarray(a).resize((side, side)).save(root / name / f"{name}_{i}.png")
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- bad input, each with its message


def test_no_folder_is_a_clear_error():
    with pytest.raises(DatasetError, match="no folder given"):
        transfer.check_folder(None)
    with pytest.raises(DatasetError, match="no folder given"):
        transfer.check_folder("  ")


def test_missing_folder_and_a_file_are_errors(tmp_path: Path):
    with pytest.raises(DatasetError, match="does not exist"):
        transfer.check_folder(tmp_path / "nope")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        transfer.check_folder(tmp_path / "a.txt")


def test_no_class_subfolders_says_to_move_loose_images(tmp_path: Path):
    Image.fromarray(LFW[0]).save(tmp_path / "loose.png")
    with pytest.raises(DatasetError, match=r"no class sub-folders \(it holds 1 image file"):
        transfer.check_folder(tmp_path)


def test_one_class_is_an_error(tmp_path: Path):
    make_folder(tmp_path, {"face": 3})
    with pytest.raises(DatasetError, match="one class sub-folder \\('face'\\)"):
        transfer.check_folder(tmp_path)


def test_a_class_with_fewer_than_two_images_is_named(tmp_path: Path):
    make_folder(tmp_path, {"face": 3, "not_face": 1})
    with pytest.raises(DatasetError, match=r"'not_face' \(1\) have fewer than 2 usable images"):
        transfer.check_folder(tmp_path)


def test_no_readable_images(tmp_path: Path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="no readable images .*2 unreadable"):
        transfer.check_folder(tmp_path)


def test_images_too_small(tmp_path: Path):
    make_folder(tmp_path, {"face": 2, "not_face": 2}, side=8)
    with pytest.raises(DatasetError, match="smaller than 16 pixels"):
        transfer.check_folder(tmp_path)


def test_empty_class_folder_counts_as_too_few(tmp_path: Path):
    make_folder(tmp_path, {"face": 3})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"'empty' \(0\)"):
        transfer.check_folder(tmp_path)


# --------------------------------------------------------------------------- problems flagged, files skipped


def test_problems_are_listed_and_skipped(tmp_path: Path):
    make_folder(tmp_path, {"face": 4, "not_face": 4})
    (tmp_path / "face" / "broken.jpg").write_bytes(b"text, not a JPEG")
    (tmp_path / "face" / "z_copy.png").write_bytes((tmp_path / "face" / "face_0.png").read_bytes())
    Image.fromarray(LFW[150][:10, :10]).save(tmp_path / "not_face" / "tiny.png")
    (tmp_path / "not_face" / "readme.txt").write_text("notes")
    Image.fromarray(np.stack([LFW[120]] * 3, axis=-1)).resize((60, 50)).save(tmp_path / "not_face" / "rgb.jpg")
    before = snapshot(tmp_path)
    report = transfer.check_folder(tmp_path)
    assert report.counts() == {"face": 4, "not_face": 5}
    assert [rel for rel, _ in report.unreadable] == ["face/broken.jpg"]
    assert str(tmp_path) not in report.unreadable[0][1]  # no absolute path in the message
    assert report.duplicates == [("face/z_copy.png", "face/face_0.png")]
    assert report.too_small == [("not_face/tiny.png", (10, 10))]
    assert report.ignored == ["not_face/readme.txt"]
    text = "\n".join(report.problems())
    for expected in ("broken.jpg", "exact copy", "too small", "only 4 images", "mixed colour modes", "mixed sizes"):
        assert expected in text, expected
    table = report.table()
    assert table["images"].tolist() == [4, 5] and table.loc[1, "modes"] == "L 4, RGB 1"
    assert table.loc[1, "formats"] == "JPEG, PNG" and table.loc[1, "shorter side (px)"] == "40–50"
    assert snapshot(tmp_path) == before  # read only


def test_demo_folder_is_real_mixed_and_flagged(tmp_path: Path):
    root = transfer.make_demo_folder(tmp_path / "demo", per_class=6)
    report = transfer.check_folder(root)
    assert report.classes == ["face", "not_face", "photo", "texture"]
    assert report.counts() == {"face": 6, "not_face": 6, "photo": 6, "texture": 6}
    assert {"PNG", "JPEG"} <= set(report.formats) and "L" in report.modes and "RGB" in report.modes
    assert len(report.unreadable) == len(report.duplicates) == len(report.too_small) == 1
    with pytest.raises(ValueError, match="per_class"):
        transfer.make_demo_folder(tmp_path / "x", per_class=101)


# --------------------------------------------------------------------------- splits and reading


def test_split_indices_stratified_disjoint_and_deterministic():
    labels = [0] * 10 + [1] * 2 + [2] * 3
    tr, va, te = transfer.split_indices(labels, test_fraction=0.3, val_fraction=0.25, seed=1)
    all_ = torch.cat([tr, va, te])
    assert sorted(all_.tolist()) == list(range(15))  # a partition
    y = torch.tensor(labels)
    assert set(y[tr].tolist()) == {0, 1, 2} and set(y[te].tolist()) == {0, 1, 2}  # every class in train and test
    assert (y[te] == 0).sum() == 3 and (y[va] == 0).sum() == 2
    again = transfer.split_indices(labels, test_fraction=0.3, val_fraction=0.25, seed=1)
    assert all(torch.equal(a, b) for a, b in zip((tr, va, te), again))
    with pytest.raises(ValueError, match="test_fraction"):
        transfer.split_indices(labels, test_fraction=0)


def test_read_image_grey_rgba_and_crop(tmp_path: Path):
    Image.fromarray(LFW[0]).resize((50, 80)).save(tmp_path / "g.png")
    rgba = np.zeros((40, 40, 4), np.uint8)  # fully transparent: must become white, not black
    Image.fromarray(rgba).save(tmp_path / "t.png")
    x, thumb = transfer.read_image(tmp_path / "g.png", 32)
    assert x.shape == (3, 32, 32) and thumb.shape == (3, 64, 64) and thumb.dtype == torch.uint8
    assert torch.equal(x[0], x[1]) and x.min() >= -1 and x.max() <= 1  # grey -> equal channels, [-1, 1]
    xt, _ = transfer.read_image(tmp_path / "t.png", 32)
    assert torch.allclose(xt, torch.ones_like(xt))  # white is +1 after (x - 0.5) / 0.5


# --------------------------------------------------------------------------- heads and the whole classifier


@pytest.mark.parametrize("n_classes", [2, 3])
def test_linear_head_reproduces_scikit_learn(n_classes: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(60, 5)) * [1, 10, 0.1, 3, 1] + [0, 5, 0, 0, 2])
    y = torch.from_numpy(rng.integers(0, n_classes, 60))
    head = transfer.fit_linear_head(x.float(), y, c=0.5)
    scaler = StandardScaler().fit(x.numpy())
    ref = LogisticRegression(C=0.5, max_iter=2000).fit(scaler.transform(x.numpy()), y.numpy())
    with torch.no_grad():
        ours = head(x.float()).softmax(dim=1).numpy()
    np.testing.assert_allclose(ours, ref.predict_proba(scaler.transform(x.numpy())), atol=1e-4)
    with pytest.raises(ValueError, match="two classes"):
        transfer.fit_linear_head(x.float(), torch.zeros(60, dtype=torch.long))


@pytest.fixture(scope="module")
def lite0():
    return pretrained.load_pretrained("efficientnet_lite0")


@pytest.fixture()
def small_folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "imgs", {"face": 3, "not_face": 3})


@pytest.mark.slow  # loads EfficientNet-Lite0 and runs it (a few seconds)
def test_features_are_cached_and_a_touched_file_recomputes(small_folder: Path, tmp_path: Path, lite0):
    report = transfer.check_folder(small_folder)
    cache = tmp_path / "cache"
    first = transfer.extract_features(report, cache, image_size=32, num_workers=0, model=lite0)
    assert not first.from_cache and first.pooled.shape == (6, 1280) and first.acts.dtype == torch.float16
    assert first.thumbs.shape == (6, 3, 64, 64) and not torch.equal(first.pooled, first.pooled_flip)
    second = transfer.extract_features(report, cache, image_size=32, num_workers=0, model=lite0)
    assert second.from_cache and second.key == first.key and torch.equal(second.pooled, first.pooled)
    os.utime(report.files[0], ns=(1, 1))  # a new modification time: the key changes
    third = transfer.extract_features(report, cache, image_size=32, num_workers=0, model=lite0)
    assert not third.from_cache and third.key != first.key
    x = torch.stack([transfer.read_image(p, 32)[0] for p in report.files])
    with torch.no_grad():  # the cached pooled features are the network's own
        ref = lite0.extract_features(x).mean(dim=(2, 3))
    torch.testing.assert_close(first.pooled, ref, atol=1e-4, rtol=1e-4)
    assert list(cache.glob("*.tmp")) == []


@pytest.mark.slow  # loads EfficientNet-Lite0 and runs it (a few seconds)
def test_whole_classifier_matches_the_cached_path(small_folder: Path, tmp_path: Path, lite0):
    report = transfer.check_folder(small_folder)
    feats = transfer.extract_features(report, tmp_path / "c", image_size=32, until=15, num_workers=0, model=lite0)
    y = torch.tensor(report.labels)
    head = transfer.fit_linear_head(feats.pooled, y)
    x = torch.stack([transfer.read_image(p, 32)[0] for p in report.files])
    with torch.no_grad():
        whole = transfer.assemble_classifier(head, lite0)(x)
        torch.testing.assert_close(whole, head(feats.pooled), atol=1e-3, rtol=1e-3)
    tail = pretrained.EfficientNetTail(lite0, 15, 2)
    with torch.no_grad():
        tail.blocks[0]._project_conv.weight.mul_(1.5)  # a changed block must be carried over
        torch.testing.assert_close(transfer.assemble_classifier(tail, lite0)(x), tail(feats.acts.float()),
                                   atol=0.05, rtol=0.05)
    with pytest.raises(ValueError, match="nn.Linear or an EfficientNetTail"):
        transfer.assemble_classifier(torch.nn.ReLU(), lite0)


@pytest.mark.slow  # loads EfficientNet-Lite0 and runs it (a few seconds)
def test_save_load_and_predict_folder_round_trip(small_folder: Path, tmp_path: Path, lite0):
    report = transfer.check_folder(small_folder)
    feats = transfer.extract_features(report, tmp_path / "c", image_size=32, num_workers=0, model=lite0)
    head = transfer.fit_linear_head(feats.pooled, torch.tensor(report.labels), c=10.0)
    model = transfer.assemble_classifier(head, lite0)
    path = transfer.save_classifier(tmp_path / "m" / "clf.pt", model, report.classes, 32, method="linear")
    raw = torch.load(path, weights_only=True)
    assert raw["classes"] == ["face", "not_face"] and raw["image_size"] == 32 and raw["meta"] == {"method": "linear"}
    (small_folder / "face" / "broken.png").write_bytes(b"no")
    before = snapshot(small_folder)
    table = transfer.predict_folder(path, small_folder)
    assert snapshot(small_folder) == before
    assert list(table.columns) == ["file", "predicted", "probability"] and len(table) == 7
    assert table.set_index("file").loc["face/broken.png", "predicted"] == "unreadable"
    ok = table[table["predicted"] != "unreadable"]
    with torch.no_grad():
        probs = head(feats.pooled).softmax(dim=1)
    expected = [report.classes[int(k)] for k in probs.argmax(1)]
    assert ok["predicted"].tolist() == expected  # same order: sorted relative paths
    np.testing.assert_allclose(ok["probability"].to_numpy(), probs.max(1).values.numpy(), atol=1e-3)
    one = transfer.predict_folder(path, report.files[0])
    assert one["file"].tolist() == [report.files[0].name]
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a classifier saved by"):
        transfer.load_classifier(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="2 outputs but 3 class names"):
        transfer.save_classifier(tmp_path / "x.pt", model, ["a", "b", "c"], 32)
    with pytest.raises(FileNotFoundError):
        transfer.predict_folder(path, tmp_path / "nowhere")
