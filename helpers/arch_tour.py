"""A tour of landmark ImageNet architectures, from torchvision's model definitions and metadata.

Each model is built from its torchvision definition with `weights=None` on PyTorch's `meta`
device (shapes only: no memory, no initialisation, nothing downloaded); its parameters are
counted and compared with the number torchvision publishes with its pretrained weights
(`get_model_weights(name).DEFAULT.meta`), which also gives the ImageNet-1K top-1/top-5
accuracy and the compute per 224x224 image (`_ops`, which torchvision labels GFLOPS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from .models import count_macs, count_parameters

__all__ = ["ARCHITECTURES", "Architecture", "build_without_weights", "plot_tour", "tour"]


@dataclass(frozen=True)
class Architecture:
    """One stop of the tour: torchvision name, display name, year, paper (authors, title, venue), key idea."""

    name: str
    label: str
    year: int
    paper: str
    idea: str
    family: str = "CNN"


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("alexnet", "AlexNet", 2012,
                 "Krizhevsky, Sutskever, Hinton: ImageNet classification with deep CNNs, NeurIPS 2012",
                 "large kernels, ReLU, dropout, two GPUs"),
    Architecture("vgg16", "VGG-16", 2015,
                 "Simonyan, Zisserman: Very deep convolutional networks, ICLR 2015",
                 "only 3×3 convolutions, stacked deep"),
    Architecture("googlenet", "GoogLeNet", 2015,
                 "Szegedy et al.: Going deeper with convolutions, CVPR 2015",
                 "Inception modules: parallel 1×1/3×3/5×5 branches"),
    Architecture("resnet50", "ResNet-50", 2016,
                 "He, Zhang, Ren, Sun: Deep residual learning for image recognition, CVPR 2016",
                 "residual connections, bottleneck blocks"),
    Architecture("densenet121", "DenseNet-121", 2017,
                 "Huang, Liu, van der Maaten, Weinberger: Densely connected CNNs, CVPR 2017",
                 "every layer sees all earlier feature maps"),
    Architecture("mobilenet_v2", "MobileNetV2", 2018,
                 "Sandler et al.: MobileNetV2: inverted residuals and linear bottlenecks, CVPR 2018",
                 "depthwise-separable convolutions, inverted residuals"),
    Architecture("mobilenet_v3_large", "MobileNetV3-L", 2019,
                 "Howard et al.: Searching for MobileNetV3, ICCV 2019",
                 "architecture search, squeeze-and-excitation, hard-swish"),
    Architecture("efficientnet_b0", "EfficientNet-B0", 2019,
                 "Tan, Le: EfficientNet: rethinking model scaling for CNNs, ICML 2019",
                 "compound scaling of depth, width and resolution"),
    Architecture("vit_b_16", "ViT-B/16", 2021,
                 "Dosovitskiy et al.: An image is worth 16x16 words, ICLR 2021",
                 "self-attention over 16×16 patches", "Transformer"),
    Architecture("swin_t", "Swin-T", 2021,
                 "Liu et al.: Swin Transformer: hierarchical ViT using shifted windows, ICCV 2021",
                 "attention in shifted local windows, a pyramid of resolutions", "Transformer"),
    Architecture("convnext_tiny", "ConvNeXt-T", 2022,
                 "Liu et al.: A ConvNet for the 2020s, CVPR 2022",
                 "a ResNet modernised with Transformer design choices"),
)

# build options that make the torchvision definition match the published weights (GoogLeNet's
# auxiliary classifiers are dropped once the weights are loaded) and skip a costly init
_BUILD_OPTIONS = {"googlenet": {"aux_logits": False, "init_weights": False}}


def build_without_weights(name: str, device: str | torch.device = "meta") -> nn.Module:
    """Build torchvision model `name` with `weights=None` (on `meta`: shapes only, nothing allocated)."""
    from torchvision.models import get_model, list_models

    if name not in list_models():
        raise ValueError(f"unknown torchvision model {name!r}; valid choices include: "
                         f"{', '.join(a.name for a in ARCHITECTURES)}")
    with torch.device(device):
        return get_model(name, weights=None, **_BUILD_OPTIONS.get(name, {}))


def tour(architectures: Sequence[Architecture] = ARCHITECTURES, macs: bool = True) -> pd.DataFrame:
    """One row per architecture: parameters (counted = published), GFLOPS, ImageNet top-1/top-5.

    With `macs=True` also `GMACs (counted)`: `count_macs` on one 224x224 image, run on the `meta`
    device (shapes only). Raises AssertionError when a counted parameter number differs from
    torchvision's metadata.
    """
    from torchvision.models import get_model_weights

    rows = []
    for arch in architectures:
        weights = get_model_weights(arch.name).DEFAULT
        meta = weights.meta
        model = build_without_weights(arch.name)
        counted = count_parameters(model, trainable_only=False)
        gmacs = count_macs(model, (3, 224, 224)) / 1e9 if macs else float("nan")
        del model  # one model at a time
        if counted != meta["num_params"]:
            raise AssertionError(f"{arch.name}: counted {counted:,} parameters, "
                                 f"torchvision's metadata says {meta['num_params']:,}")
        acc = meta["_metrics"]["ImageNet-1K"]
        rows.append({"model": arch.label, "year": arch.year, "family": arch.family,
                     "params (M)": counted / 1e6, "GFLOPS": meta["_ops"], "GMACs (counted)": gmacs,
                     "top-1 %": acc["acc@1"], "top-5 %": acc["acc@5"],
                     "weights": str(weights).split(".")[-1], "key idea": arch.idea,
                     "torchvision": arch.name})
    return pd.DataFrame(rows)


def plot_tour(table: pd.DataFrame, ax=None, title: str | None = None):
    """ImageNet top-1 against GFLOPS (log scale); marker area proportional to parameters."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.6))
    markers = {"CNN": "o", "Transformer": "s"}
    for family, group in table.groupby("family"):
        ax.scatter(group["GFLOPS"], group["top-1 %"], s=20 + 3 * group["params (M)"], alpha=0.6,
                   marker=markers.get(family, "o"), label=family)
    for _, row in table.iterrows():
        ax.annotate(f"{row['model']} ({row['year']})", (row["GFLOPS"], row["top-1 %"]),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set(xscale="log", xlabel="GFLOPS per 224×224 image (torchvision, log scale)",
           ylabel="ImageNet-1K top-1 accuracy (%)",
           title=title or "Accuracy vs compute (marker area ∝ parameters)")
    ax.margins(x=0.15, y=0.08)
    ax.legend(loc="lower right", fontsize=8)
    return ax
