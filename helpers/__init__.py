"""Shared helpers for the course 深度学习在图像识别中的应用 (deep learning for image recognition).

One module per concern:

- `core`: `setup`, `check_params`, device and seeding, the run report
- `data`: `load_dataset`, the embedded digits, scikit-image photos, batched augmentation
- `folder`: your own images in one-folder-per-class layout
- `models`: MLP, LeNet-5, small VGG, small ResNet
- `training`: `fit`, `evaluate`, `predict`, checkpoints
- `metrics`: accuracy, top-k, confusion matrix, precision/recall/F1
- `plots`: the book's style and common figures
"""

from .core import (
    CHAPTERS,
    DATASETS,
    Params,
    RunReport,
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
