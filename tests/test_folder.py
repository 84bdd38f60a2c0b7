"""Your own images: a real folder of PNG/JPEG files on disk, and every way it can be wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import helpers
from helpers import folder
from helpers.data import DatasetError


def _save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def make_folder(root: Path, per_class: int = 4, size: int = 20) -> Path:
    """Two classes of real image files: dark squares (PNG) and bright squares (JPEG)."""
    rng = np.random.default_rng(0)
    for i in range(per_class):
        _save(root / "dark" / f"d{i}.png", rng.integers(0, 60, (size, size, 3), dtype=np.uint8))
        _save(root / "bright" / f"b{i}.jpg", rng.integers(190, 255, (size + 5, size, 3), dtype=np.uint8))
    return root


def test_load_folder_real_files(tmp_path: Path):
    root = make_folder(tmp_path / "imgs")
    d = helpers.load_dataset("folder", root=root, image_size=16)
    assert d.classes == ["bright", "dark"] and d.shape == (3, 16, 16)
    assert len(d.y_train) + len(d.y_test) == 8 and torch.bincount(d.y_test).tolist() == [1, 1]
    bright = d.x_train[d.y_train == 0].float().mean()
    dark = d.x_train[d.y_train == 1].float().mean()
    assert bright > 150 > 80 > dark


def test_mixed_modes_tiny_and_huge_images_work(tmp_path: Path):
    root = make_folder(tmp_path / "imgs", per_class=2)
    _save(root / "dark" / "gray.png", np.full((10, 10), 30, np.uint8))  # L
    rgba = np.zeros((12, 12, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: composited onto white
    _save(root / "bright" / "rgba.png", rgba, "RGBA")
    _save(root / "bright" / "one_pixel.png", np.full((1, 1, 3), 250, np.uint8))
    _save(root / "dark" / "huge.png", np.full((3000, 2500), 10, np.uint8))
    palette = Image.fromarray(np.full((8, 8, 3), 20, np.uint8)).convert("P")
    palette.save(root / "dark" / "palette.gif")
    d = folder.load_folder(root, image_size=8, test_fraction=0.3)
    assert d.shape == (3, 8, 8) and len(d.y_train) + len(d.y_test) == 9
    everything = torch.cat([d.x_train, d.x_test])
    assert everything.dtype == torch.uint8
    assert (everything.flatten(1).float().mean(1) > 240).sum() >= 2  # white RGBA + 1-pixel image


def test_one_class_is_an_error(tmp_path: Path):
    _save(tmp_path / "only" / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match="at least two"):
        folder.load_folder(tmp_path)


def test_missing_folder_is_an_error(tmp_path: Path):
    with pytest.raises(DatasetError, match="does not exist.*sub-folder per class"):
        folder.load_folder(tmp_path / "nope")


def test_empty_class_is_named(tmp_path: Path):
    root = make_folder(tmp_path / "imgs")
    (root / "empty_one").mkdir()
    (root / "empty_one" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="'empty_one'.*no images"):
        folder.load_folder(root)


def test_unreadable_files_listed_or_skipped_when_asked(tmp_path: Path):
    root = make_folder(tmp_path / "imgs")
    (root / "dark" / "fake.png").write_text("this is text, not a PNG")
    good = (root / "bright" / "b0.jpg").read_bytes()
    (root / "bright" / "cut.jpg").write_bytes(good[:5])  # truncated JPEG
    png = (root / "dark" / "d0.png").read_bytes()
    (root / "dark" / "corrupt.png").write_bytes(png[:40] + b"\x00" * 20 + png[60:])
    with pytest.raises(DatasetError) as err:
        folder.load_folder(root, image_size=8)
    msg = str(err.value)
    assert "fake.png" in msg and "cut.jpg" in msg and "corrupt.png" in msg and "skip_bad=True" in msg
    with pytest.warns(UserWarning, match="skipped 3 unreadable"):
        d = folder.load_folder(root, image_size=8, skip_bad=True)
    assert len(d.y_train) + len(d.y_test) == 8


def test_class_with_one_readable_image(tmp_path: Path):
    root = tmp_path / "imgs"
    _save(root / "a" / "1.png", np.zeros((4, 4), np.uint8))
    _save(root / "a" / "2.png", np.zeros((4, 4), np.uint8))
    _save(root / "b" / "1.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match="'b'.*fewer than 2"):
        folder.load_folder(root, image_size=4)


def test_bad_image_size():
    with pytest.raises(ValueError, match="image_size=0"):
        folder.load_folder(".", image_size=0)


def test_large_folder_streams_with_a_dataloader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = make_folder(tmp_path / "imgs", per_class=6)
    monkeypatch.setattr(folder, "IN_MEMORY_LIMIT_BYTES", 100)  # pretend the folder is huge
    stream = helpers.load_dataset("folder", root=root, image_size=8, num_workers=0)
    assert isinstance(stream, folder.FolderStream) and stream.shape == (3, 8, 8)
    xb, yb = next(iter(stream.loader("train", batch_size=4)))
    assert xb.shape == (4, 3, 8, 8) and xb.dtype == torch.uint8 and yb.dtype == torch.long
    model = helpers.build_model("mlp", stream.shape, 2, hidden=(16,))
    hist = helpers.fit(model, stream, epochs=2, batch_size=4, verbose=False, device="cpu")
    assert len(hist) == 2
    result = helpers.evaluate(model, stream)
    # evaluate() over the stream must agree with predictions made by hand on the same images
    xs = torch.stack([stream.test_set[i][0] for i in range(len(stream.test_set))])
    ys = torch.tensor([stream.test_set[i][1] for i in range(len(stream.test_set))])
    by_hand = (helpers.predict(model, xs, stream.mean, stream.std).argmax(1) == ys).float().mean().item()
    assert result["acc"] == pytest.approx(by_hand)
    # the in-memory path and the streamed path read identical pixels
    mem = folder.load_folder(root, image_size=8, in_memory=True)
    assert torch.equal(torch.stack([stream.test_set[i][0] for i in range(len(stream.test_set))]), mem.x_test)


def test_stream_reports_non_images_up_front(tmp_path: Path):
    root = make_folder(tmp_path / "imgs")
    (root / "dark" / "fake.jpg").write_text("nope")
    with pytest.raises(DatasetError, match="fake.jpg"):
        folder.stream_folder(root, image_size=8, num_workers=0)
