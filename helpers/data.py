"""Datasets as in-memory uint8 tensors, and the real photos bundled with scikit-image.

`load_dataset(name)` returns an `ImageData`: train and test images as one uint8 tensor each
(`[N, C, H, W]`), integer labels, class names, and the per-channel mean/std of the
*training* split (used for normalisation: the test split must not leak into it).

Small datasets (digits, MNIST, Fashion-MNIST, CIFAR-10, a small image folder) fit in memory,
so batching, normalisation and augmentation run as tensor operations on the training
device (see `helpers.training`), not per sample in Python.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch

from .core import DATASETS, default_data_dir
from .folder import load_folder
from .imagedata import (  # noqa: F401  (re-exported: helpers.data.ImageData etc.)
    DatasetError,
    ImageData,
    augment_batch,
    channel_stats,
    iterate_batches,
    normalize,
)

__all__ = [
    "PHOTOS",
    "DatasetError",
    "ImageData",
    "augment_batch",
    "iterate_batches",
    "load_dataset",
    "load_digits",
    "load_photo",
    "normalize",
    "prepare_image",
    "read_idx",
]


# --------------------------------------------------------------------------- embedded data


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    """scikit-learn's 1,797 real 8x8 handwritten digits, stratified train/test split.

    The 0..16 grey levels are rescaled to uint8 0..255 so every dataset has the same range.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # [N, 1, 8, 8]
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, bunch.target, test_size=test_fraction, stratify=bunch.target, random_state=split_seed
    )
    return ImageData(
        name="digits",
        x_train=torch.from_numpy(x_tr),
        y_train=torch.from_numpy(y_tr).long(),
        x_test=torch.from_numpy(x_te),
        y_test=torch.from_numpy(y_te).long(),
        classes=[str(d) for d in range(10)],
    )


#: Real photos bundled with scikit-image (no download), by the name used in the book.
PHOTOS = {
    "cat": "chelsea",
    "coffee": "coffee",
    "astronaut": "astronaut",
    "rocket": "rocket",
    "camera": "camera",
    "coins": "coins",
    "horse": "horse",
}


def load_photo(name: str) -> np.ndarray:
    """A real photo bundled with scikit-image as a uint8 array `[H, W, 3]` (or `[H, W]`)."""
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; bundled photos: {', '.join(sorted(PHOTOS))}")
    image = getattr(skimage.data, PHOTOS[name])()
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    return image


# --------------------------------------------------------------------------- torchvision sets

_TV_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
#: torchvision's file names, MD5s and class names (`datasets.MNIST.resources`, `.classes`), written
#: out so that reading the local archives does not import torchvision (seconds, with torch._dynamo);
#: `tests/test_data.py` checks them against torchvision, which still does every download.
_TV_RESOURCES = {
    "mnist": [("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
              ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
              ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
              ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")],
    "fashion_mnist": [("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                      ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                      ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                      ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")],
}
_TV_CLASSES = {
    "mnist": ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
              "8 - eight", "9 - nine"],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_idx_archives(name: str, root: Path, resources: list[tuple[str, str]]) -> list[str]:
    """Verify the `.gz` files torchvision will use; return the names that are missing."""
    raw = root / _TV_FOLDERS[name] / "raw"
    missing = []
    for url, md5 in resources:
        filename = url.rsplit("/", 1)[-1]
        path = raw / filename
        extracted = raw / filename.removesuffix(".gz")
        if path.exists():
            actual = _md5(path)
            if actual != md5:
                raise DatasetError(
                    f"{path} is corrupt or truncated: its MD5 is {actual}, expected {md5} "
                    f"(torchvision's checksum). Delete it and download it again, or copy a good "
                    f"copy there; it was left untouched."
                )
        elif not extracted.exists():
            missing.append(filename)
    return missing


def _read_idx_checked(path: Path, expect_ndim: int) -> np.ndarray:
    """Read one IDX archive, turning any decoding problem into a DatasetError naming the file."""
    try:
        array = read_idx(path)
    except (OSError, EOFError, ValueError, gzip.BadGzipFile) as err:
        raise DatasetError(
            f"{path} could not be decoded ({type(err).__name__}: {err}); it is corrupt or "
            "truncated. Delete it and download it again, or copy a good copy there; "
            "it was left untouched."
        ) from None
    if array.ndim != expect_ndim:
        raise DatasetError(f"{path} holds a {array.ndim}-d array, expected {expect_ndim}-d; is it the right file?")
    return array


def _load_torchvision(name: str, data_dir: Path, download: bool) -> ImageData:
    """MNIST / Fashion-MNIST: read the verified `.gz` archives directly (nothing is extracted,
    so a read-only data folder works); download with torchvision only when they are missing."""
    resources = _TV_RESOURCES[name]
    raw = data_dir / _TV_FOLDERS[name] / "raw"
    missing = _check_idx_archives(name, data_dir, resources)
    gz_present = all((raw / url.rsplit("/", 1)[-1]).exists() for url, _ in resources)
    if gz_present:
        parts = {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            x = _read_idx_checked(raw / f"{prefix}-images-idx3-ubyte.gz", 3)
            y = _read_idx_checked(raw / f"{prefix}-labels-idx1-ubyte.gz", 1)
            if len(x) != len(y):
                raise DatasetError(f"{raw}: {prefix} has {len(x)} images but {len(y)} labels")
            parts[split] = (torch.from_numpy(x.copy())[:, None], torch.from_numpy(y.astype(np.int64)))
        return ImageData(
            name=name,
            x_train=parts["train"][0],
            y_train=parts["train"][1],
            x_test=parts["test"][0],
            y_test=parts["test"][1],
            classes=list(_TV_CLASSES[name]),
        )
    if missing and not download:
        raise DatasetError(_missing_message(name, data_dir, missing))
    from torchvision import datasets  # the download path: torchvision's mirrors and checksums

    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}[name]
    try:
        train = cls(str(data_dir), train=True, download=download)
        test = cls(str(data_dir), train=False, download=download)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        if missing:
            raise DatasetError(_missing_message(name, data_dir, missing) + f"\n(cause: {err})") from None
        raise DatasetError(
            f"could not read {name} from {raw}: {err}. "
            "The extracted files may be truncated: delete the files without .gz there and run again."
        ) from None
    return ImageData(
        name=name,
        x_train=train.data[:, None].contiguous(),
        y_train=train.targets.long(),
        x_test=test.data[:, None].contiguous(),
        y_test=test.targets.long(),
        classes=list(train.classes),
    )


def _missing_message(name: str, data_dir: Path, missing: list[str]) -> str:
    raw = data_dir / _TV_FOLDERS.get(name, name) / "raw" if name in _TV_FOLDERS else data_dir
    return (
        f"{name} is not in {raw} and could not be downloaded (offline?). Expected files: "
        f"{', '.join(missing)}. Download them (load_dataset({name!r}, download=True) with "
        f"internet access), or copy them into that folder, or point data_dir / "
        f"$COURSE_DATA_DIR at a folder that has them; the 'digits' dataset works offline."
    )


def _load_cifar10(data_dir: Path, download: bool) -> ImageData:
    from torchvision import datasets

    archive = data_dir / datasets.CIFAR10.filename
    folder = data_dir / datasets.CIFAR10.base_folder
    if archive.exists() and _md5(archive) != datasets.CIFAR10.tgz_md5:
        raise DatasetError(
            f"{archive} is corrupt or truncated (MD5 differs from torchvision's "
            f"{datasets.CIFAR10.tgz_md5}). Delete it and download again; it was left untouched."
        )
    if not archive.exists() and not folder.exists() and not download:
        raise DatasetError(_missing_message("cifar10", data_dir, [datasets.CIFAR10.filename]))
    try:
        train = datasets.CIFAR10(str(data_dir), train=True, download=download)
        test = datasets.CIFAR10(str(data_dir), train=False, download=download)
    except (OSError, RuntimeError) as err:
        raise DatasetError(
            f"cifar10 is not in {data_dir} and could not be downloaded (offline?). Expected "
            f"{datasets.CIFAR10.filename} (md5 {datasets.CIFAR10.tgz_md5}) there or its extracted "
            f"folder {datasets.CIFAR10.base_folder}/; the 'digits' dataset works offline. (cause: {err})"
        ) from None
    to_tensor = lambda d: torch.from_numpy(d).permute(0, 3, 1, 2).contiguous()  # noqa: E731 [N,H,W,C]->[N,C,H,W]
    return ImageData(
        name="cifar10",
        x_train=to_tensor(train.data),
        y_train=torch.tensor(train.targets),
        x_test=to_tensor(test.data),
        y_test=torch.tensor(test.targets),
        classes=list(train.classes),
    )


# --------------------------------------------------------------------------- dispatcher


def load_dataset(
    name: str = "digits",
    data_dir: str | Path | None = None,
    download: bool = True,
    **kwargs,
) -> ImageData:
    """Load a dataset by name: digits (embedded), mnist, fashion_mnist, cifar10 or folder.

    `data_dir` defaults to `$COURSE_DATA_DIR` or the repository's `data/`. torchvision
    datasets are downloaded there (checksums verified) when missing and `download` is True;
    offline, a DatasetError says which files are expected where. For `folder`, pass
    `root=` (one sub-folder per class) and optionally `image_size=`.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid choices: {', '.join(map(repr, DATASETS))}")
    if name == "digits":
        return load_digits(**kwargs)
    if name == "folder":
        return load_folder(**kwargs)
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if name == "cifar10":
        return _load_cifar10(root, download)
    return _load_torchvision(name, root, download)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST's format, optionally gzip-compressed) into a NumPy array.

    Raises ValueError when the header or the size does not match (a truncated file).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path.name} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(f"{path.name} has {len(data)} bytes, its header promises {expected} (truncated?)")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def prepare_image(image, shape: tuple[int, int, int]) -> torch.Tensor:
    """A new image (file path, PIL image, or uint8 array `[H, W]`/`[H, W, C]`) as the uint8
    tensor `[C, H, W]` a model trained on images of `shape` expects: converted to grey or RGB
    and resized with bilinear interpolation. Normalise it like the training data afterwards.
    """
    from PIL import Image

    c, h, w = shape
    if c not in (1, 3):
        raise ValueError(f"shape={shape!r}: the channel count must be 1 (grey) or 3 (RGB)")
    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            im.load()
            pil = im.copy()
    elif isinstance(image, Image.Image):
        pil = image
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8:
            raise ValueError(f"array images must be uint8 (0..255), got {array.dtype}")
        pil = Image.fromarray(array)
    pil = pil.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
    array = np.array(pil, dtype=np.uint8)
    return torch.from_numpy(array)[None] if c == 1 else torch.from_numpy(array).permute(2, 0, 1).contiguous()
