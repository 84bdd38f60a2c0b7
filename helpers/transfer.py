"""Your own images by transfer learning: a folder of photos in, a trained classifier out.

    report = transfer.check_folder("~/my_images")      # every problem named, before any work
    feats = transfer.extract_features(report, cache_dir="build/cache")  # one streamed pass, cached
    head = transfer.fit_linear_head(feats.pooled[train], y[train])     # seconds
    model = transfer.assemble_classifier(head, classes=report.classes)
    transfer.save_classifier("build/model.pt", model, report.classes, image_size=128)
    transfer.predict_folder("build/model.pt", "~/new_photos")          # file, predicted, probability

The backbone is the offline EfficientNet-Lite0 of `helpers.pretrained`. Its frozen part is run
once over the files (a `DataLoader` with worker processes) and the result is cached on disk,
keyed by the file list (paths, sizes, modification times) and the model settings, so a rerun
does not touch the images again. Nothing is ever written into the user's folder.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .core import interactive, resolve_device
from .folder import IMAGE_EXTENSIONS
from .imagedata import DatasetError
from .pretrained import NORMALISATION, EfficientNetTail, load_pretrained

__all__ = [
    "CLASSIFIER_FORMAT",
    "Features",
    "FolderReport",
    "assemble_classifier",
    "check_folder",
    "extract_features",
    "fit_linear_head",
    "load_classifier",
    "make_demo_folder",
    "predict_folder",
    "read_image",
    "save_classifier",
    "split_indices",
]

#: Written into every saved classifier; `load_classifier` refuses other files.
CLASSIFIER_FORMAT = "helpers.transfer/1"
CROP_FRACTION = 0.875  # resize the shorter side to size / 0.875, centre-crop size x size (ImageNet protocol)
_MEAN, _STD = NORMALISATION["inception"]  # what EfficientNet-Lite0 expects (measured in 4.4)


# --------------------------------------------------------------------------- checking a folder


@dataclass
class FolderReport:
    """What `check_folder` found: the usable files (one label each) and every problem, by name."""

    root: Path
    classes: list[str]
    files: list[Path]
    labels: list[int]
    sizes: list[tuple[int, int]]
    modes: list[str]
    formats: list[str]
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    too_small: list[tuple[str, tuple[int, int]]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (skipped copy, kept file)
    ignored: list[str] = field(default_factory=list)  # files without an image extension

    def counts(self) -> dict[str, int]:
        """Usable images per class."""
        c = Counter(self.labels)
        return {name: c[i] for i, name in enumerate(self.classes)}

    def relative(self, path: Path) -> str:
        """A file's path relative to the folder (what the notebook prints: no absolute paths)."""
        return path.relative_to(self.root).as_posix()

    def table(self):
        """One row per class: usable images, colour modes, file formats, range of the shorter side."""
        import pandas as pd

        rows = []
        for i, (name, n) in enumerate(self.counts().items()):
            mine = [k for k, label in enumerate(self.labels) if label == i]
            sides = [min(self.sizes[k]) for k in mine]
            rows.append({"class": name, "images": n,
                         "modes": ", ".join(f"{m} {c}" for m, c in Counter(self.modes[k] for k in mine).items()),
                         "formats": ", ".join(sorted({self.formats[k] for k in mine})),
                         "shorter side (px)": f"{min(sides)}–{max(sides)}"})
        return pd.DataFrame(rows)

    def problems(self, few: int = 10, imbalance: float = 3.0) -> list[str]:
        """One line per thing a user should look at (skipped files, tiny classes, mixed inputs)."""
        out = []
        for rel, why in self.unreadable:
            out.append(f"skipped unreadable file {rel} ({why})")
        for rel, (w, h) in self.too_small:
            out.append(f"skipped {rel}: {w}x{h} pixels is too small to use")
        for copy_, kept in self.duplicates:
            out.append(f"skipped {copy_}: an exact copy (same bytes) of {kept}")
        if self.ignored:
            shown = ", ".join(self.ignored[:5]) + (" ..." if len(self.ignored) > 5 else "")
            out.append(f"ignored {len(self.ignored)} file(s) that are not images by extension: {shown}")
        counts = self.counts()
        for name, n in counts.items():
            if n < few:
                out.append(f"class {name!r} has only {n} images: its test accuracy rests on very few")
        if max(counts.values()) > imbalance * min(counts.values()):
            out.append(f"classes are imbalanced ({min(counts.values())} to {max(counts.values())} images)")
        if len(set(self.modes)) > 1:
            mix = ", ".join(f"{m} {n}" for m, n in Counter(self.modes).most_common())
            out.append(f"mixed colour modes ({mix}): all are converted to RGB")
        if len(set(self.sizes)) > 1:
            sides = [min(s) for s in self.sizes]
            out.append(f"mixed sizes (shorter side {min(sides)} to {max(sides)} px): "
                       "each is resized and centre-cropped")
        return out


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _probe(path: Path) -> tuple[tuple[int, int], str, str]:
    """(size, mode, format) of an image; decodes it (cheaply, in draft mode) so broken files fail here."""
    from PIL import Image

    with Image.open(path) as im:
        size, mode, fmt = im.size, im.mode, im.format or "?"
        im.draft("RGB", (64, 64))
        im.load()
    return size, mode, fmt


def check_folder(folder: str | Path | None, min_side: int = 16, min_per_class: int = 2) -> FolderReport:
    """Check an image folder (one sub-folder per class) before any work; raise DatasetError on bad input.

    Errors (each message names the problem and the fix): no folder, a missing folder, no class
    sub-folders, one class, no readable images, images all too small (shorter side < `min_side`),
    a class with fewer than `min_per_class` usable images. Unreadable and too-small files and
    exact duplicates (same bytes) are skipped and listed in the report. Reads only.
    """
    from PIL import Image

    layout = "one sub-folder per class, e.g. my_images/cats/*.jpg and my_images/dogs/*.jpg"
    if folder is None or (isinstance(folder, str) and not folder.strip()):
        raise DatasetError(f"no folder given: pass the folder of your images ({layout}), "
                           "e.g. papermill ... -p folder ~/my_images")
    root = Path(folder).expanduser()
    if not root.exists():
        raise DatasetError(f"folder {str(folder)!r} does not exist; pass an existing folder with {layout}")
    if not root.is_dir():
        raise DatasetError(f"{str(folder)!r} is a file, not a folder; pass a folder with {layout}")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        loose = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        hint = f" (it holds {len(loose)} image file(s) directly: move them into class folders)" if loose else ""
        raise DatasetError(f"folder {root.name!r} has no class sub-folders{hint}; expected {layout}")
    if len(class_dirs) == 1:
        raise DatasetError(f"folder {root.name!r} has one class sub-folder ({class_dirs[0].name!r}); "
                           f"a classifier needs at least two classes: {layout}")
    Image.MAX_IMAGE_PIXELS = None  # we resize anything; the decompression-bomb check refuses big photos
    classes = [d.name for d in class_dirs]
    report = FolderReport(root, classes, [], [], [], [], [])
    seen: dict[str, str] = {}
    for label, d in enumerate(class_dirs):
        for path in sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith(".")):
            rel = path.relative_to(root).as_posix()
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                report.ignored.append(rel)
                continue
            try:
                size, mode, fmt = _probe(path)
            except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... on broken files
                why = f"{type(err).__name__}: {err}".replace(str(path), path.name)  # no absolute paths
                report.unreadable.append((rel, why[:120]))
                continue
            if min(size) < min_side:
                report.too_small.append((rel, size))
                continue
            digest = _sha1(path)
            if digest in seen:
                report.duplicates.append((rel, seen[digest]))
                continue
            seen[digest] = rel
            report.files.append(path)
            report.labels.append(label)
            report.sizes.append(size)
            report.modes.append(mode)
            report.formats.append(fmt)
    if not report.files:
        if report.too_small and not report.unreadable:
            raise DatasetError(f"every image in {root.name!r} is smaller than {min_side} pixels on its shorter "
                               f"side (e.g. {report.too_small[0][0]}: {report.too_small[0][1]}); "
                               "use larger images")
        what = f"{len(report.unreadable)} unreadable" if report.unreadable else "no"
        raise DatasetError(f"no readable images in {root.name!r} ({what} image file(s); looked for "
                           f"{', '.join(IMAGE_EXTENSIONS)}); expected {layout}")
    counts = report.counts()
    thin = {name: n for name, n in counts.items() if n < min_per_class}
    if thin:
        listed = ", ".join(f"{name!r} ({n})" for name, n in thin.items())
        raise DatasetError(f"class(es) {listed} have fewer than {min_per_class} usable images; every class "
                           "needs at least 2 (one to train on, one to test): add images or remove the folder")
    return report


# --------------------------------------------------------------------------- a demo folder


def make_demo_folder(root: str | Path, per_class: int = 75, seed: int = 0, problems: bool = True) -> Path:
    """Write a small real-image folder (4 classes, mixed sizes/modes, PNG + JPEG) from scikit-image data.

    Classes: `face` and `not_face` (LFW crops, 25x25 grey, some enlarged), `texture` (grey crops
    of brick, grass, gravel), `photo` (colour crops of six photos, a fifth turned grey). With
    `problems`, adds one unreadable file, one exact duplicate and one 10x10 image, which
    `check_folder` must flag and skip. Returns `root`.
    """
    import skimage.data
    from PIL import Image

    if not 2 <= per_class <= 100:
        raise ValueError(f"per_class={per_class} must be in [2, 100] (LFW has 100 faces and 100 non-faces)")
    root = Path(root)
    rng = np.random.default_rng(seed)
    lfw = (skimage.data.lfw_subset() * 255).round().astype(np.uint8)  # [200, 25, 25]: 100 faces, 100 not
    for name, images, ext in (("face", lfw[:100], ".png"), ("not_face", lfw[100:], ".jpg")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(images[rng.permutation(100)[:per_class]]):
            side = int(rng.choice([25, 50, 75, 100]))
            Image.fromarray(a).resize((side, side), Image.Resampling.BICUBIC).save(root / name / f"{name}_{i:03d}{ext}")

    def crops(sources: list[np.ndarray], folder: str, grey_share: float) -> None:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            src = sources[i % len(sources)]
            h, w = src.shape[:2]
            side = int(rng.integers(48, min(h, w, 200)))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            im = Image.fromarray(src[top:top + side, left:left + side])
            if rng.random() < grey_share:
                im = im.convert("L")
            ext = ".png" if i % 2 else ".jpg"
            im.save(root / folder / f"{folder}_{i:03d}{ext}")

    d = skimage.data
    crops([d.brick(), d.grass(), d.gravel()], "texture", 0.0)
    crops([d.astronaut(), d.chelsea(), d.coffee(), d.rocket(), d.hubble_deep_field(), d.immunohistochemistry()],
          "photo", 0.2)
    if problems:
        (root / "face" / "notes.jpg").write_bytes(b"this is not a JPEG, just text saved with a .jpg name\n")
        first = sorted((root / "texture").glob("*.jpg"))[0]
        (root / "texture" / "texture_copy.jpg").write_bytes(first.read_bytes())
        Image.fromarray(lfw[150][:10, :10]).save(root / "not_face" / "tiny.png")
    return root


# --------------------------------------------------------------------------- reading and features


def read_image(path: str | Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One file -> (normalised float `[3, size, size]` for EfficientNet-Lite0, uint8 `[3, 64, 64]` thumbnail).

    Any mode is converted to RGB (transparency composited onto white); the shorter side is
    resized to size / 0.875 and the centre `size x size` cropped (the ImageNet protocol).
    """
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (size * 2, size * 2))  # fast path for large JPEGs
        im = im.convert("RGBA") if im.mode in ("P", "LA", "PA") else im
        if im.mode == "RGBA":
            im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
        im = im.convert("RGB")
        w, h = im.size
        scale = round(size / CROP_FRACTION) / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
        left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
        im = im.crop((left, top, left + size, top + size))
        thumb = np.asarray(im.resize((64, 64), Image.Resampling.BILINEAR))
        pixels = np.asarray(im)
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255  # [H, W, 3] -> [3, H, W]
    x = (x - torch.tensor(_MEAN).view(3, 1, 1)) / torch.tensor(_STD).view(3, 1, 1)
    return x, torch.from_numpy(thumb.copy()).permute(2, 0, 1)


class _Files(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return read_image(self.paths[i], self.size)
        except Exception as err:  # name the file even inside a worker process
            raise DatasetError(f"could not read {self.paths[i].name}: {type(err).__name__}: {err}") from None


@dataclass
class Features:
    """Cached outputs of the frozen network for each file, in the order of the report's files.

    pooled `[N, 1280]` (input of a linear head), acts `[N, C, h, w]` float16 (input of block
    `until`, what fine-tuning starts from), and the same two for the mirrored image
    (`pooled_flip`, `acts_flip`, the augmentation); thumbs uint8 `[N, 3, 64, 64]`.
    """

    pooled: torch.Tensor
    acts: torch.Tensor
    pooled_flip: torch.Tensor
    acts_flip: torch.Tensor
    thumbs: torch.Tensor
    until: int
    image_size: int
    key: str
    seconds: float
    from_cache: bool


def _cache_key(paths: Sequence[Path], image_size: int, until: int) -> str:
    """Hash of the file list (resolved paths, sizes, modification times) and the model settings."""
    entries = []
    for p in paths:
        st = p.stat()
        entries.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps({"files": entries, "model": "efficientnet_lite0", "normalisation": "inception",
                       "image_size": image_size, "until": until, "crop": CROP_FRACTION, "version": 1})
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _tail_features(model: nn.Module, h: torch.Tensor, until: int) -> torch.Tensor:
    for block in model._blocks[until:]:
        h = block(h)
    return model._swish(model._bn1(model._conv_head(h))).mean(dim=(2, 3))  # [B, 1280, h, w] -> [B, 1280]


def extract_features(
    files: FolderReport | Sequence[Path],
    cache_dir: str | Path,
    image_size: int = 128,
    until: int = 15,
    batch_size: int = 32,
    num_workers: int = 2,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
    model: nn.Module | None = None,
) -> Features:
    """Run the frozen EfficientNet-Lite0 once over the files (and their mirror images); cache the result.

    A `DataLoader` with `num_workers` processes reads the files; the cache file in `cache_dir` is
    keyed by the file list (paths, sizes, mtimes) and the settings, so a second call is a file
    read. `progress=None` shows a bar only in interactive sessions.
    """
    paths = list(files.files if isinstance(files, FolderReport) else files)
    if not paths:
        raise ValueError("extract_features needs at least one file")
    if not 0 <= until <= 16:
        raise ValueError(f"until={until} must be in [0, 16] (EfficientNet-Lite0 has 16 blocks)")
    start = time.perf_counter()
    key = _cache_key(paths, image_size, until)
    cache = Path(cache_dir) / f"features-{key}.pt"
    if cache.is_file():
        d = torch.load(cache, weights_only=True)
        return Features(d["pooled"], d["acts"], d["pooled_flip"], d["acts_flip"], d["thumbs"], until, image_size,
                        key, time.perf_counter() - start, True)
    dev = resolve_device(device)
    model = (model or load_pretrained("efficientnet_lite0")).to(dev).eval()
    loader = torch.utils.data.DataLoader(_Files(paths, image_size), batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers)
    if progress if progress is not None else interactive():
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="features", leave=False)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("pooled", "acts", "pooled_flip", "acts_flip", "thumbs")}
    with torch.inference_mode():
        for x, thumb in loader:
            x = torch.cat([x, x.flip(dims=[3])]).to(dev)  # [2B, 3, S, S]: the images, then their mirrors
            h = model._swish(model._bn0(model._conv_stem(x)))
            for block in model._blocks[:until]:
                h = block(h)
            pooled = _tail_features(model, h, until).float().cpu()
            h = h.half().cpu()
            b = len(thumb)
            out["acts"].append(h[:b])
            out["acts_flip"].append(h[b:])
            out["pooled"].append(pooled[:b])
            out["pooled_flip"].append(pooled[b:])
            out["thumbs"].append(thumb)
    d = {k: torch.cat(v) for k, v in out.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    torch.save(d, tmp)
    tmp.replace(cache)  # atomic: an interrupted run never leaves half a cache
    return Features(d["pooled"], d["acts"], d["pooled_flip"], d["acts_flip"], d["thumbs"], until, image_size,
                    key, time.perf_counter() - start, False)


def split_indices(
    labels: Sequence[int], test_fraction: float = 0.25, val_fraction: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stratified (train, val, test) indices: every class keeps >= 1 training image.

    Per class, round(test_fraction * n) images go to test (>= 1 when n >= 2), then
    round(val_fraction * rest) to validation (>= 1 when >= 2 remain).
    """
    if not (0 < test_fraction < 1 and 0 <= val_fraction < 1):
        raise ValueError(f"test_fraction={test_fraction} must be in (0, 1) and val_fraction={val_fraction} in [0, 1)")
    y = torch.as_tensor(list(labels))
    gen = torch.Generator().manual_seed(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for c in torch.unique(y):
        members = torch.nonzero(y == c).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        n_test = min(len(members) - 1, max(1, round(test_fraction * len(members))))
        rest = members[n_test:]
        n_val = 0 if val_fraction == 0 else min(len(rest) - 1, max(1, round(val_fraction * len(rest))))
        parts[2].append(members[:n_test])
        parts[1].append(rest[:n_val])
        parts[0].append(rest[n_val:])
    train, val, test = (torch.cat(p).sort().values for p in parts)
    return train, val, test


# --------------------------------------------------------------------------- heads and the classifier


def fit_linear_head(x: torch.Tensor, y: torch.Tensor, c: float = 0.1, max_iter: int = 2000) -> nn.Linear:
    """Logistic regression (scikit-learn, standardised features, L2 strength 1/c) as a torch `nn.Linear`.

    The standardisation is folded into the weights: W' = W / s, b' = b - W' mean, so the layer
    takes raw pooled features and can replace EfficientNet's `_fc`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)} labels")
    classes = torch.unique(y)
    if len(classes) < 2:
        raise ValueError(f"fit_linear_head needs at least two classes in y, got {classes.tolist()}")
    xn = x.double().numpy()
    scaler = StandardScaler().fit(xn)
    clf = LogisticRegression(C=c, max_iter=max_iter).fit(scaler.transform(xn), y.numpy())
    n_classes = int(y.max()) + 1
    w = np.zeros((n_classes, x.shape[1]))
    b = np.full(n_classes, -1e4)  # a class absent from y is never predicted
    coef, intercept = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # binary: scikit-learn stores one row, for the second class
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    w[clf.classes_] = coef / scaler.scale_
    b[clf.classes_] = intercept - (coef / scaler.scale_) @ scaler.mean_
    head = nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w))
        head.bias.copy_(torch.from_numpy(b))
    return head.eval()


def assemble_classifier(trained: nn.Linear | EfficientNetTail, backbone: nn.Module | None = None) -> nn.Module:
    """A whole EfficientNet-Lite0 classifier (images in, logits out): the pretrained trunk plus `trained`.

    `trained` is a linear head (replaces `_fc`) or an `EfficientNetTail` (its blocks, head
    convolution, batch norm and linear layer replace the last ones of the backbone).
    """
    model = copy.deepcopy(backbone if backbone is not None else load_pretrained("efficientnet_lite0")).cpu()
    if isinstance(trained, nn.Linear):
        model._fc = copy.deepcopy(trained).cpu()
    elif isinstance(trained, EfficientNetTail):
        start = len(model._blocks) - len(trained.blocks)
        for i, block in enumerate(trained.blocks):
            model._blocks[start + i] = copy.deepcopy(block).cpu()
        model._conv_head, model._bn1 = copy.deepcopy(trained.conv_head).cpu(), copy.deepcopy(trained.bn).cpu()
        model._fc = copy.deepcopy(trained.fc).cpu()
    else:
        raise ValueError(f"trained must be an nn.Linear or an EfficientNetTail, got {type(trained).__name__}")
    return model.eval()


def save_classifier(path: str | Path, model: nn.Module, classes: Sequence[str], image_size: int,
                    **meta: str | int | float) -> Path:
    """Save weights, class names and preprocessing in one file readable with `torch.load(weights_only=True)`."""
    if model._fc.out_features != len(classes):
        raise ValueError(f"the model has {model._fc.out_features} outputs but {len(classes)} class names were given")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CLASSIFIER_FORMAT, "arch": "efficientnet_lite0", "classes": list(map(str, classes)),
                "image_size": int(image_size), "crop_fraction": CROP_FRACTION, "mean": list(_MEAN),
                "std": list(_STD), "meta": dict(meta),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)
    return path


def load_classifier(path: str | Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata with `classes` and `image_size`) from a `save_classifier` file."""
    from efficientnet_lite_pytorch import EfficientNet

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no classifier file {str(path)!r}; train one with notebook 4.9 first")
    d = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(d, dict) or d.get("format") != CLASSIFIER_FORMAT:
        raise ValueError(f"{path.name!r} is not a classifier saved by helpers.transfer.save_classifier "
                         f"(format {CLASSIFIER_FORMAT!r})")
    model = EfficientNet.from_name("efficientnet-lite0")
    model._fc = nn.Linear(model._fc.in_features, len(d["classes"]))
    model.load_state_dict(d["state_dict"])
    return model.eval(), {k: v for k, v in d.items() if k != "state_dict"}


def predict_folder(model_path: str | Path, folder: str | Path, batch_size: int = 32,
                   device: str | torch.device = "cpu"):
    """Classify every image in `folder` (searched recursively) or one image file: a table (file, predicted, probability).

    Unreadable files get the prediction "unreadable" and no probability. Reads only.
    """
    import pandas as pd

    model, meta = load_classifier(model_path)
    dev = resolve_device(device)
    model.to(dev)
    folder = Path(folder).expanduser()
    if folder.is_file():
        paths, base = [folder], folder.parent
    elif folder.is_dir():
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        base = folder
    else:
        raise FileNotFoundError(f"{str(folder)!r} is neither an image file nor a folder")
    rows, batch, names = [], [], []

    def flush() -> None:
        if batch:
            with torch.inference_mode():
                probs = model(torch.stack(batch).to(dev)).float().softmax(dim=1).cpu()
            conf, pred = probs.max(dim=1)
            rows.extend({"file": n, "predicted": meta["classes"][int(k)], "probability": float(p)}
                        for n, k, p in zip(names, pred, conf))
            batch.clear()
            names.clear()

    for p in paths:
        try:
            x, _ = read_image(p, meta["image_size"])
        except Exception:  # a broken file gets a row, not an exception
            rows.append({"file": p.relative_to(base).as_posix(), "predicted": "unreadable", "probability": np.nan})
            continue
        batch.append(x)
        names.append(p.relative_to(base).as_posix())
        if len(batch) == batch_size:
            flush()
    flush()
    return pd.DataFrame(rows, columns=["file", "predicted", "probability"])
