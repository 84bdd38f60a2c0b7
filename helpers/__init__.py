"""Shared helpers for the course 深度学习在图像识别中的应用 (deep learning for image recognition).

One module per concern, in layers: a module imports only from layers below it, so the
package reads bottom-up (`tests/test_structure.py` fails on any import cycle).

1. `style` (the plot style, CJK font) · `metrics` · `reference` (NumPy formulas) · `fastnet`
   · `canvases` (detection/segmentation scenes) · `vit` · `pretrained` · `features` · `selfsup`
   · `robustness` · `efficiency` · `export`
2. `core`: `setup`, `check_params` and its rules, `check`, device and seeding, run report
3. `imagedata`: `ImageData` in memory, normalise/augment/batch
4. `folder`: your own images (one sub-folder per class) · `data`: `load_dataset`, digits,
   MNIST, Fashion-MNIST, CIFAR-10, scikit-image photos · `experiments` (seeds, CIs)
5. `models`: MLP, LeNet-5, small VGG, small ResNet, FastNet · `segmentation` · `detection` ·
   `transfer` (your own folder by transfer learning) · `glossary`
6. `training`: `fit`, `evaluate`, `predict`, checkpoints · `arch_tour`
7. `plots`, `evaluation` and the topic modules built on training (`interpret`, `faces`,
   `debugging`)
"""

from .core import (
    CHAPTERS,
    DATASETS,
    Params,
    RunReport,
    check,
    check_params,
    default_data_dir,
    default_output_dir,
    resolve_device,
    seed_everything,
    setup,
)
from .data import PHOTOS, DatasetError, ImageData, load_dataset, load_digits, load_photo
from .models import build_model, count_parameters, summary
from .plots import plot_history, set_style, show_images
from .training import (
    CheckpointError,
    History,
    evaluate,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
)

__version__ = "0.1.0"

__all__ = [
    "CHAPTERS",
    "DATASETS",
    "CheckpointError",
    "DatasetError",
    "History",
    "ImageData",
    "PHOTOS",
    "Params",
    "RunReport",
    "build_model",
    "check",
    "check_params",
    "count_parameters",
    "default_data_dir",
    "default_output_dir",
    "evaluate",
    "fit",
    "load_checkpoint",
    "load_dataset",
    "load_digits",
    "load_photo",
    "plot_history",
    "predict",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
    "set_style",
    "setup",
    "show_images",
    "summary",
]
