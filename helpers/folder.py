"""Your own images: a folder with one sub-folder per class (torchvision's ImageFolder layout).

    my_images/
      cats/  a.jpg b.png ...
      dogs/  c.jpg ...

Every image is converted to RGB (grayscale, palette and RGBA images included) and resized
to `image_size` x `image_size`, then the whole set is held in memory as uint8 like the
other datasets. Problems are reported up front, all at once, with the files named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import DatasetError, ImageData

__all__ = ["IMAGE_EXTENSIONS", "load_folder", "scan_folder"]

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
        return np.asarray(im, dtype=np.uint8)


def load_folder(
    root: str | Path,
    image_size: int = 32,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    skip_bad: bool = False,
) -> ImageData:
    """Load an ImageFolder-style directory into memory as an `ImageData` (RGB, square).

    Unreadable files raise a DatasetError listing them all; with `skip_bad=True` they are
    skipped and listed in a warning instead. The train/test split is stratified.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size={image_size!r} must be a whole number >= 1, e.g. 32")
    files = scan_folder(root)
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
