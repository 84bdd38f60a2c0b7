"""In-memory labelled images (`ImageData`) and the batch operations the training loop uses.

The lowest data layer: nothing here knows where images come from. `helpers.data` (MNIST,
Fashion-MNIST, digits, CIFAR-10) and `helpers.folder` (your own images) both build
`ImageData`; `helpers.training` batches, normalises and augments it as tensor operations.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch

__all__ = [
    "DatasetError",
    "class_balanced_indices",
    "ImageData",
    "augment_batch",
    "channel_stats",
    "iterate_batches",
    "normalize",
]


class DatasetError(ValueError):
    """A dataset could not be loaded; the message says which files and how to fix it."""


@dataclass
class ImageData:
    """A labelled image dataset held in memory as uint8 tensors.

    x_train, x_test: uint8 `[N, C, H, W]`; y_train, y_test: int64 `[N]`.
    mean, std: per-channel statistics of the training split, in [0, 1] units.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.mean:
            self.mean, self.std = channel_stats(self.x_train)

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape, `(C, H, W)`."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        c, h, w = self.shape
        return (
            f"ImageData({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"image=[{c}, {h}, {w}] uint8, classes={self.n_classes})"
        )

    def to(self, device: torch.device | str) -> ImageData:
        """The same data with its tensors on `device` (statistics unchanged)."""
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )

    def subset(self, n_per_class: int, seed: int = 0, recompute_stats: bool = True) -> ImageData:
        """A class-balanced subset of the training split (test split unchanged)."""
        idx = class_balanced_indices(self.y_train, n_per_class, seed)
        x = self.x_train[idx]
        stats = channel_stats(x) if recompute_stats else (self.mean, self.std)
        return replace(self, x_train=x, y_train=self.y_train[idx], mean=stats[0], std=stats[1])

    def split_validation(self, fraction: float = 0.1, seed: int = 0) -> tuple[ImageData, ImageData]:
        """Split the training set into (train, validation), stratified; test split kept on both."""
        gen = torch.Generator().manual_seed(seed)
        y = self.y_train.cpu()
        val_idx = []
        for c in torch.unique(y):
            members = torch.nonzero(y == c).flatten()
            members = members[torch.randperm(len(members), generator=gen)]
            val_idx.append(members[: max(1, round(fraction * len(members)))])
        val = torch.cat(val_idx).sort().values
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[val] = False
        train_idx = torch.nonzero(keep).flatten()
        dev = self.x_train.device
        train = replace(self, x_train=self.x_train[train_idx.to(dev)], y_train=self.y_train[train_idx.to(dev)])
        valid = replace(self, x_train=self.x_train[val.to(dev)], y_train=self.y_train[val.to(dev)])
        return train, valid


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images `[N, C, H, W]`, in [0, 1] units.

    Computed exactly from a 256-bin histogram per channel (no float copy of the dataset);
    the std is the sample std (n - 1), like `torch.std`.
    """
    if x.dtype != torch.uint8:
        xf = x.to(torch.float64) / 255.0
        mean, std = xf.mean(dim=(0, 2, 3)), xf.std(dim=(0, 2, 3))
    else:
        levels = torch.arange(256, dtype=torch.float64) / 255.0
        means, stds = [], []
        for c in range(x.shape[1]):
            counts = torch.bincount(x[:, c].reshape(-1).cpu().long(), minlength=256).double()
            n = counts.sum()
            m = (counts * levels).sum() / n
            var = (counts * (levels - m) ** 2).sum() / (n - 1).clamp(min=1)
            means.append(m)
            stds.append(var.sqrt())
        mean, std = torch.stack(means), torch.stack(stds)
    return tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)


def class_balanced_indices(y: torch.Tensor, n_per_class: int, seed: int) -> torch.Tensor:
    """Sorted indices of `n_per_class` random items of every class of `y` (what `ImageData.subset` keeps)."""
    gen = torch.Generator().manual_seed(seed)
    y = y.cpu()
    chosen = []
    for c in torch.unique(y):
        members = torch.nonzero(y == c).flatten()
        if len(members) < n_per_class:
            raise ValueError(
                f"class {int(c)} has only {len(members)} training images; "
                f"n_per_class={n_per_class} is too many"
            )
        chosen.append(members[torch.randperm(len(members), generator=gen)[:n_per_class]])
    return torch.cat(chosen).sort().values


# --------------------------------------------------------------------------- batches


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 `[B, C, H, W]` -> float32, scaled to [0, 1] then standardised per channel."""
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s


def augment_batch(
    x: torch.Tensor, pad: int = 2, flip: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random translation by up to `pad` pixels (and horizontal flip) for a whole batch at once.

    Works on any dtype; each image gets its own shift, computed with one gather instead of a
    Python loop over samples.
    """
    b, c, h, w = x.shape
    device = x.device
    if pad > 0:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device="cpu").to(device)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device="cpu").to(device)
        rows = (oy[:, None] + torch.arange(h, device=device))[:, :, None]  # [B, H, 1]
        cols = (ox[:, None] + torch.arange(w, device=device))[:, None, :]  # [B, 1, W]
        batch = torch.arange(b, device=device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # [B,H,W,C]->[B,C,H,W]
    if flip:
        mask = torch.rand(b, generator=generator, device="cpu").to(device) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x.contiguous()


def iterate_batches(
    n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
    """Index tensors of each batch over `n` items (shuffled with `generator` if asked)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]
