"""Your own images: a folder with one sub-folder per class (torchvision's ImageFolder layout).

    my_images/
      cats/  a.jpg b.png ...
      dogs/  c.jpg ...

Every image is converted to RGB (grayscale, palette and RGBA images included) and resized
to `image_size` x `image_size`, then the whole set is held in memory as uint8 like the
other datasets. Problems are reported up front, all at once, with the files named.

Large folders do not fit in memory: when the uint8 images would take more than
`IN_MEMORY_LIMIT_BYTES` (1 GiB, about 350,000 RGB images at 32x32 or 7,000 at 224x224),
`load_dataset("folder", ...)` returns a `FolderStream` instead, which reads and resizes the
images in a standard `DataLoader` with worker processes; `fit`, `evaluate` and `predict`
accept either. Pass `in_memory=True/False` to force one or the other.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .imagedata import DatasetError, ImageData, channel_stats

__all__ = ["IMAGE_EXTENSIONS", "IN_MEMORY_LIMIT_BYTES", "FolderStream", "load_folder", "scan_folder", "stream_folder"]

#: Above this many bytes of uint8 pixels a folder is streamed from disk instead of held in memory.
IN_MEMORY_LIMIT_BYTES = 1 << 30

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def scan_folder(root: str | Path) -> dict[str, list[Path]]:
    """Class name -> image files (by extension), checking the layout. Raises DatasetError."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"image folder {str(root)!r} does not exist; expected one sub-folder per class, "
            "e.g. my_images/cats/*.jpg and my_images/dogs/*.jpg"
        )
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        found = ", ".join(p.name for p in class_dirs) or "none"
        raise DatasetError(
            f"image folder {str(root)!r} has {len(class_dirs)} class sub-folder(s) ({found}); "
            "classification needs at least two: put each class's images in its own sub-folder"
        )
    files = {
        d.name: sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        for d in class_dirs
    }
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise DatasetError(
            f"image folder {str(root)!r}: class folder(s) {', '.join(map(repr, empty))} contain no "
            f"images (looked for {', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder"
        )
    return files


def _read_image(path: Path, image_size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (image_size * 2, image_size * 2))  # fast path for huge JPEGs
        im = im.convert("RGBA") if im.mode in ("P", "LA", "PA") else im
        if im.mode == "RGBA":  # composite transparency onto white, not black
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        im = im.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.array(im, dtype=np.uint8)  # a writable copy


def load_folder(
    root: str | Path,
    image_size: int = 32,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    skip_bad: bool = False,
    in_memory: bool | None = None,
    num_workers: int | None = None,
) -> ImageData | FolderStream:
    """Load an ImageFolder-style directory into memory as an `ImageData` (RGB, square).

    Unreadable files raise a DatasetError listing them all; with `skip_bad=True` they are
    skipped and listed in a warning instead. The train/test split is stratified.
    `in_memory=None` (default) streams the folder with a DataLoader (`FolderStream`) only
    when it would need more than `IN_MEMORY_LIMIT_BYTES`; True/False forces the choice.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size={image_size!r} must be a whole number >= 1, e.g. 32")
    files = scan_folder(root)
    n_files = sum(len(v) for v in files.values())
    if in_memory is None:
        in_memory = n_files * 3 * image_size * image_size <= IN_MEMORY_LIMIT_BYTES
    if not in_memory:
        return stream_folder(root, image_size, test_fraction, split_seed, skip_bad, num_workers, files=files)
    classes = list(files)
    images, labels, bad = [], [], []
    Image.MAX_IMAGE_PIXELS = None  # we resize anything; the bomb check would refuse big photos
    for label, name in enumerate(classes):
        for path in files[name]:
            try:
                images.append(_read_image(path, image_size))
                labels.append(label)
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
                bad.append(f"{path} ({type(err).__name__}: {err})")
    if bad and not skip_bad:
        raise DatasetError(
            f"{len(bad)} file(s) in {str(root)!r} could not be read as images:\n  "
            + "\n  ".join(bad)
            + "\nFix or remove them, or pass skip_bad=True to skip them."
        )
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable image(s): " + "; ".join(bad), stacklevel=2)
    counts = np.bincount(labels, minlength=len(classes))
    if (counts < 2).any():
        thin = [classes[i] for i in np.flatnonzero(counts < 2)]
        raise DatasetError(
            f"class(es) {', '.join(map(repr, thin))} in {str(root)!r} have fewer than 2 readable "
            "images; a train/test split needs at least 2 per class"
        )
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # [N,H,W,C]->[N,C,H,W]
    y = torch.tensor(labels, dtype=torch.long)
    test_idx = _stratified_test_indices(y, test_fraction, split_seed)
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[test_idx] = False
    return ImageData(
        name="folder",
        x_train=x[keep],
        y_train=y[keep],
        x_test=x[test_idx],
        y_test=y[test_idx],
        classes=classes,
    )


def _stratified_test_indices(y: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for c in torch.unique(y):
        members = torch.nonzero(y == c).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        n_test = min(len(members) - 1, max(1, round(fraction * len(members))))
        picked.append(members[:n_test])
    return torch.cat(picked).sort().values


# --------------------------------------------------------------------------- streaming


class _FolderDataset(torch.utils.data.Dataset):
    """Reads and resizes one image per item: `(uint8 [3, S, S], label)`."""

    def __init__(self, paths: list[Path], labels: list[int], image_size: int) -> None:
        self.paths, self.labels, self.image_size = paths, labels, image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            image = _read_image(self.paths[i], self.image_size)
        except Exception as err:  # name the file even inside a worker process
            raise DatasetError(f"could not read {self.paths[i]}: {type(err).__name__}: {err}") from None
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), self.labels[i]  # [H,W,C]->[C,H,W]


class FolderStream:
    """A folder too large for memory: train/test `DataLoader`s of uint8 batches.

    Has the attributes `fit`/`evaluate` use from `ImageData` (`name`, `classes`, `shape`,
    `mean`, `std`, `n_classes`) plus `loader(split, batch_size, shuffle, seed)`.
    """

    def __init__(self, train: _FolderDataset, test: _FolderDataset, classes: list[str],
                 image_size: int, num_workers: int) -> None:
        self.name = "folder"
        self.train_set, self.test_set, self.classes = train, test, classes
        self.image_size, self.num_workers = image_size, num_workers
        self.mean, self.std = self._estimate_stats()

    @property
    def shape(self) -> tuple[int, int, int]:
        return (3, self.image_size, self.image_size)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def _estimate_stats(self, n: int = 512) -> tuple[tuple[float, ...], tuple[float, ...]]:
        idx = torch.randperm(len(self.train_set), generator=torch.Generator().manual_seed(0))[:n]
        x = torch.stack([self.train_set[int(i)][0] for i in idx])
        return channel_stats(x)

    def loader(self, split: str = "train", batch_size: int = 128, shuffle: bool | None = None,
               seed: int = 0) -> torch.utils.data.DataLoader:
        """A DataLoader over `split` ("train" or "test") with `num_workers` worker processes."""
        if split not in ("train", "test"):
            raise ValueError(f"split={split!r}; valid choices: 'train', 'test'")
        dataset = self.train_set if split == "train" else self.test_set
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=(split == "train") if shuffle is None else shuffle,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(seed),
            persistent_workers=False,
        )

    def __repr__(self) -> str:
        return (f"FolderStream(train={len(self.train_set)}, test={len(self.test_set)}, "
                f"image=[3, {self.image_size}, {self.image_size}] uint8, classes={self.n_classes}, "
                f"workers={self.num_workers})")


def stream_folder(
    root: str | Path,
    image_size: int = 32,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    skip_bad: bool = False,
    num_workers: int | None = None,
    files: dict[str, list[Path]] | None = None,
) -> FolderStream:
    """Like `load_folder`, but images stay on disk and are read by DataLoader workers.

    Every file's header is checked up front (cheap: no decoding), so a non-image file is
    reported before training starts; a file that fails to decode later raises a
    DatasetError naming it.
    """
    from PIL import Image, UnidentifiedImageError

    files = files if files is not None else scan_folder(root)
    classes = list(files)
    paths, labels, bad = [], [], []
    for label, name in enumerate(classes):
        for path in files[name]:
            try:
                with Image.open(path):
                    pass
                paths.append(path)
                labels.append(label)
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
                bad.append(f"{path} ({type(err).__name__}: {err})")
    if bad and not skip_bad:
        raise DatasetError(
            f"{len(bad)} file(s) in {str(root)!r} could not be read as images:\n  " + "\n  ".join(bad)
            + "\nFix or remove them, or pass skip_bad=True to skip them."
        )
    y = torch.tensor(labels, dtype=torch.long)
    test_idx = set(_stratified_test_indices(y, test_fraction, split_seed).tolist())
    train_i = [i for i in range(len(paths)) if i not in test_idx]
    test_i = sorted(test_idx)
    make = lambda ids: _FolderDataset([paths[i] for i in ids], [labels[i] for i in ids], image_size)  # noqa: E731
    workers = num_workers if num_workers is not None else min(4, os.cpu_count() or 1)
    return FolderStream(make(train_i), make(test_i), classes, image_size, workers)
