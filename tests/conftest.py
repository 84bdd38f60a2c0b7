"""Shared fixtures: real MNIST / Fashion-MNIST copied from ../shared/data to a temp folder.

`.ci/run` sets COURSE_SHARED_DATA; locally it defaults to ../shared/data beside the repo.
We never write into that folder: torchvision extracts the .gz files next to themselves,
so every test gets a copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    env = os.environ.get("COURSE_SHARED_DATA")
    path = Path(env) if env else ROOT.parent / "shared" / "data"
    return path if (path / "MNIST" / "raw").is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only shared data folder (fails in CI, skips locally, when it is missing)."""
    path = shared_data_dir()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("COURSE_SHARED_DATA / ../shared/data with MNIST and FashionMNIST is missing")
        pytest.skip("../shared/data is not here")
    return path


@pytest.fixture(scope="session")
def data_copy(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of MNIST and Fashion-MNIST (.gz files) in torchvision's layout."""
    dest = tmp_path_factory.mktemp("data")
    for name in ("MNIST", "FashionMNIST"):
        shutil.copytree(shared_data / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: small models train faster, and stay fast on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
