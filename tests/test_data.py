"""Datasets: digits, MNIST/Fashion-MNIST from real .gz files, their error paths, batching helpers."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers
from helpers import data as hdata
from helpers.data import (
    DatasetError,
    augment_batch,
    channel_stats,
    iterate_batches,
    normalize,
    read_idx,
)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_digits_split_and_stats():
    d = helpers.load_digits()
    assert d.shape == (1, 8, 8) and d.x_train.dtype == torch.uint8
    assert len(d.y_train) + len(d.y_test) == 1797
    assert d.x_train.max() == 255 and d.n_classes == 10
    xf = d.x_train.double() / 255
    assert d.mean[0] == pytest.approx(xf.mean().item(), abs=1e-6)
    assert d.std[0] == pytest.approx(xf.std().item(), abs=1e-6)


def test_channel_stats_matches_float_formula():
    x = torch.randint(0, 256, (50, 3, 7, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    mean, std = channel_stats(x)
    xf = x.double() / 255
    assert np.allclose(mean, xf.mean(dim=(0, 2, 3)).numpy(), atol=1e-6)
    assert np.allclose(std, xf.std(dim=(0, 2, 3)).numpy(), atol=1e-6)


def test_subset_and_validation_split_are_stratified_and_disjoint():
    d = helpers.load_digits()
    s = d.subset(5, seed=1)
    assert torch.bincount(s.y_train).tolist() == [5] * 10
    train, valid = d.split_validation(0.2, seed=0)
    assert len(train.y_train) + len(valid.y_train) == len(d.y_train)
    counts = torch.bincount(valid.y_train, minlength=10)
    assert counts.min() >= 1
    with pytest.raises(ValueError, match="n_per_class"):
        d.subset(10_000)


def test_unknown_dataset_names_choices():
    with pytest.raises(ValueError, match="valid choices.*digits"):
        helpers.load_dataset("imagenet")


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_real_idx_datasets_load_without_writing(data_copy: Path, name: str, folder: str):
    before = sorted(p.name for p in (data_copy / folder / "raw").iterdir())
    d = helpers.load_dataset(name, data_dir=data_copy, download=False)
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(d.y_test).sum() == 10000 and torch.bincount(d.y_test).min() > 800
    assert d.n_classes == 10 and 0.1 < d.mean[0] < 0.4
    # nothing is extracted: a read-only data folder works
    assert sorted(p.name for p in (data_copy / folder / "raw").iterdir()) == before


def test_missing_files_offline_names_expected_files(tmp_path: Path):
    with pytest.raises(DatasetError) as err:
        helpers.load_dataset("fashion_mnist", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert "FashionMNIST" in msg and "digits" in msg and "offline" in msg


def _copy_mnist(data_copy: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "data"
    shutil.copytree(data_copy / "MNIST", dest / "MNIST")
    return dest


def test_truncated_gz_is_named_and_left_untouched(data_copy: Path, tmp_path: Path):
    root = _copy_mnist(data_copy, tmp_path)
    target = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:2000])
    before = md5(target)
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz.*(corrupt|truncated)"):
        helpers.load_dataset("mnist", data_dir=root, download=False)
    assert md5(target) == before


def test_wrong_checksum_is_named(data_copy: Path, tmp_path: Path):
    root = _copy_mnist(data_copy, tmp_path)
    target = root / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    labels = read_idx(target).copy()
    labels[0] = (labels[0] + 1) % 10  # a valid gzip with one wrong byte: only the checksum catches it
    header = b"\x00\x00\x08\x01" + len(labels).to_bytes(4, "big")
    target.write_bytes(gzip.compress(header + labels.tobytes()))
    before = md5(target)
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte.gz.*MD5"):
        helpers.load_dataset("mnist", data_dir=root, download=False)
    assert md5(target) == before


def test_read_idx_rejects_truncated_and_bad_magic(tmp_path: Path):
    good = b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes([1, 2, 3])
    (tmp_path / "ok.idx").write_bytes(good)
    assert read_idx(tmp_path / "ok.idx").tolist() == [1, 2, 3]
    (tmp_path / "short.idx").write_bytes(good[:-1])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "bad.idx").write_bytes(b"PK\x03\x04" + good[4:])
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad.idx")


def test_cifar10_missing_offline(tmp_path: Path):
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz.*digits"):
        helpers.load_dataset("cifar10", data_dir=tmp_path, download=False)


def test_normalize_matches_formula():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.2)
    ours = normalize(x, mean, std)
    ref = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert ours.dtype == torch.float32 and torch.allclose(ours, ref)


def test_augment_batch_shifts_each_image_within_pad():
    x = torch.zeros(64, 1, 9, 9, dtype=torch.uint8)
    x[:, :, 4, 4] = 255  # one bright pixel in the centre
    out = augment_batch(x, pad=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    pos = torch.nonzero(out[:, 0] == 255)[:, 1:]
    assert len(pos) == 64 and ((pos - 4).abs() <= 2).all()
    assert len({tuple(p.tolist()) for p in pos}) > 5  # different shifts per image
    flipped = augment_batch(torch.arange(4.0).view(1, 1, 1, 4).repeat(32, 1, 1, 1), pad=0, flip=True,
                            generator=torch.Generator().manual_seed(0))
    rows = {tuple(r.tolist()) for r in flipped[:, 0, 0]}
    assert rows == {(0.0, 1.0, 2.0, 3.0), (3.0, 2.0, 1.0, 0.0)}


def test_iterate_batches_covers_every_index_once():
    idx = torch.cat(list(iterate_batches(103, 10, shuffle=True, generator=torch.Generator().manual_seed(0))))
    assert sorted(idx.tolist()) == list(range(103))
    assert [len(b) for b in iterate_batches(25, 10, shuffle=False)] == [10, 10, 5]


def test_load_photo_and_unknown_photo():
    cat = helpers.load_photo("cat")
    assert cat.dtype == np.uint8 and cat.ndim == 3
    with pytest.raises(ValueError, match="bundled photos"):
        helpers.load_photo("dog")


def test_data_module_exports():
    assert {"read_idx", "load_dataset"} <= set(hdata.__all__)


def test_written_out_file_checksums_and_classes_are_torchvisions():
    """The archives are verified and read without importing torchvision; the constants must be its own."""
    from torchvision import datasets

    for name, cls in (("mnist", datasets.MNIST), ("fashion_mnist", datasets.FashionMNIST)):
        assert hdata._TV_RESOURCES[name] == [tuple(r) for r in cls.resources], name
        assert hdata._TV_CLASSES[name] == list(cls.classes), name
