"""The course's models: MLP, LeNet-5, a small VGG-style CNN and a small ResNet.

Also the depthwise-separable convolution block of MobileNet and the cost formulas that go
with it (`conv_cost`, `separable_cost`), checked against the built modules in the tests.

Every model takes the image shape `(C, H, W)` and the number of classes, so the same
code works on 8x8 digits, 28x28 MNIST and 32x32 CIFAR-10. `build_model(name, ...)` makes
one by name (the checkpoint helpers use it to rebuild a saved model).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .fastnet import FastNet

__all__ = [
    "MODELS",
    "MLP",
    "DepthwiseSeparable",
    "LeNet5",
    "SmallResNet",
    "SmallVGG",
    "build_model",
    "conv_cost",
    "count_macs",
    "count_parameters",
    "separable_cost",
    "summary",
]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _dry_run(model: nn.Module, in_shape: Sequence[int], hooks: list) -> None:
    """One eval-mode forward pass on a zero image (for the hooks), then remove the hooks."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, *in_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)


def count_macs(model: nn.Module, in_shape: Sequence[int]) -> int:
    """Multiply-accumulate operations of one forward pass on one image `(C, H, W)`.

    Counts `Conv2d` (k_h * k_w * C_in / groups per output value) and `Linear` layers, the
    layers that dominate the cost; activations, pooling and normalisation are ignored.
    """
    total = 0
    hooks = []

    def conv_hook(mod: nn.Conv2d, _inp, out) -> None:
        nonlocal total
        k_h, k_w = mod.kernel_size
        total += out.numel() * k_h * k_w * mod.in_channels // mod.groups

    def linear_hook(mod: nn.Linear, _inp, out) -> None:
        nonlocal total
        total += out.numel() * mod.in_features

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear_hook))
    _dry_run(model, in_shape, hooks)
    return int(total)


class _Described(nn.Module):
    """Adds a readable repr line with the parameter count, and remembers build arguments."""

    arch: str = ""

    def extra_repr(self) -> str:
        return f"params={count_parameters(self):,}"


class MLP(_Described):
    """Flatten -> [Linear -> ReLU -> Dropout] x len(hidden) -> Linear."""

    arch = "mlp"

    def __init__(
        self,
        in_shape: Sequence[int],
        n_classes: int,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = int(torch.tensor(in_shape).prod())
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNet5(_Described):
    """LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, as it is usually taught today.

    Inputs smaller than 20 pixels (the 8x8 digits) get padding in the second convolution
    so the feature maps do not shrink to nothing.
    """

    arch = "lenet5"

    def __init__(self, in_shape: Sequence[int], n_classes: int) -> None:
        super().__init__()
        c, h, _ = in_shape
        pad2 = 2 if h < 20 else 0
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=pad2), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *in_shape)).numel()
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, n_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallVGG(_Described):
    """VGG-style: blocks of two 3x3 conv-BN-ReLU layers and a 2x2 max pool, then global pooling."""

    arch = "vgg"

    def __init__(
        self, in_shape: Sequence[int], n_classes: int, widths: Sequence[int] = (32, 64, 128)
    ) -> None:
        super().__init__()
        c, h, _ = in_shape
        layers: list[nn.Module] = []
        size = h
        for w in widths:
            layers += [_conv_bn(c, w), _conv_bn(w, w)]
            if size >= 4:  # never pool 8x8 digits below 2x2
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(c, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut: out = ReLU(F(x) + shortcut(x)) (He et al., 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(_Described):
    """A small ResNet: a 3x3 stem, one BasicBlock per stage (stride 2 between stages), global pooling."""

    arch = "resnet"

    def __init__(
        self, in_shape: Sequence[int], n_classes: int, widths: Sequence[int] = (32, 64, 128)
    ) -> None:
        super().__init__()
        c = in_shape[0]
        self.stem = _conv_bn(c, widths[0])
        blocks = []
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(widths[max(i - 1, 0)], w, stride=1 if i == 0 else 2))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class DepthwiseSeparable(nn.Module):
    """Depthwise k x k conv (one filter per channel) -> BN -> ReLU -> pointwise 1x1 conv -> BN -> ReLU.

    The building block of MobileNet (Howard et al., 2017): it replaces one k x k convolution
    over all channels, whose cost is `conv_cost`, by two cheap ones, `separable_cost`.
    """

    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1) -> None:
        super().__init__()
        if k < 1 or k % 2 == 0:
            raise ValueError(f"k={k} must be an odd kernel size >= 1 (e.g. 3 or 5)")
        self.depthwise = nn.Conv2d(c_in, c_in, k, stride=stride, padding=k // 2, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.depthwise(x)))
        return torch.relu(self.bn2(self.pointwise(x)))


def _check_sizes(**sizes: int) -> None:
    bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if bad:
        raise ValueError(f"sizes must be whole numbers >= 1; got {bad}")


def conv_cost(c_in: int, c_out: int, k: int, h_out: int, w_out: int, bias: bool = False) -> dict[str, int]:
    """Parameters and MACs of a standard k x k convolution: P = C_out(k^2 C_in [+1]), MACs = H W C_out k^2 C_in."""
    _check_sizes(c_in=c_in, c_out=c_out, k=k, h_out=h_out, w_out=w_out)
    return {"params": c_out * (k * k * c_in + int(bias)), "macs": h_out * w_out * c_out * k * k * c_in}


def separable_cost(c_in: int, c_out: int, k: int, h_out: int, w_out: int) -> dict[str, int]:
    """Parameters and MACs of a depthwise-separable convolution (no bias, batch norm not counted).

    Depthwise: C_in k^2 weights, H W C_in k^2 MACs; pointwise: C_in C_out weights, H W C_in C_out
    MACs. Relative to `conv_cost` both shrink by the factor 1/C_out + 1/k^2.
    """
    _check_sizes(c_in=c_in, c_out=c_out, k=k, h_out=h_out, w_out=w_out)
    return {"params": c_in * k * k + c_in * c_out, "macs": h_out * w_out * (c_in * k * k + c_in * c_out)}


MODELS: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "lenet5": LeNet5,
    "vgg": SmallVGG,
    "resnet": SmallResNet,
    "fastnet": FastNet,  # the fast CPU recipe's network (helpers.fastnet, chapter 6.3)
}


def build_model(name: str, in_shape: Sequence[int], n_classes: int, **kwargs) -> nn.Module:
    """Build a course model by name (`mlp`, `lenet5`, `vgg`, `resnet`, `fastnet`).

    The build arguments are stored on the model (`model.build_args`) so a checkpoint can
    rebuild it.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid choices: {', '.join(map(repr, MODELS))}")
    model = MODELS[name](tuple(in_shape), n_classes, **kwargs)
    model.build_args = {"name": name, "in_shape": list(in_shape), "n_classes": n_classes, **kwargs}
    return model


def summary(model: nn.Module, in_shape: Sequence[int]) -> str:
    """A layer table (output shape, parameters) from one forward pass on a dummy batch."""
    rows: list[tuple[str, str, int]] = []
    hooks = []
    for name, module in model.named_modules():
        if list(module.children()) or name == "":
            continue

        def hook(mod, _inp, out, name=name):
            n = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append((f"{name} ({type(mod).__name__})", str(list(out.shape)), n))

        hooks.append(module.register_forward_hook(hook))
    _dry_run(model, in_shape, hooks)
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'layer':<{width}}{'output shape':<20}{'params':>10}", "-" * (width + 30)]
    lines += [f"{n:<{width}}{s:<20}{p:>10,}" for n, s, p in rows]
    lines.append("-" * (width + 30))
    lines.append(f"{'total':<{width}}{'':<20}{count_parameters(model):>10,}")
    return "\n".join(lines)
