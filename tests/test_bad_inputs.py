"""The bad-input matrix: every mistake a user can make gets a clear error and no side effects.

Each case builds its bad input in a temp folder, snapshots the folders a user owns, runs the
action, and checks (1) the error type and that its message names the problem and the fix,
(2) the snapshot is unchanged: no partial files, nothing overwritten.
Cases that must *work* (mixed image modes, tiny and huge images) check the result instead.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import helpers
from helpers.data import DatasetError
from helpers.training import CheckpointError

ROOT = Path(__file__).resolve().parent.parent
NB_04A = ROOT / "notebooks" / "04a_train_a_cnn.ipynb"


def snapshot(*folders: Path) -> dict[str, str]:
    """path -> md5 of every file below the folders (what must not change)."""
    state = {}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            state[str(p)] = hashlib.md5(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return state


# --------------------------------------------------------------------------- papermill

PAPERMILL_CASES = {
    "unknown parameter name": ({"epoch": 3}, ["unknown parameter 'epoch'", "did you mean 'epochs'"]),
    "wrong type": ({"epochs": "ten"}, ["epochs='ten'", "whole number"]),
    "negative epochs": ({"epochs": -1}, ["epochs=-1", ">= 1"]),
    "zero batch size": ({"batch_size": 0}, ["batch_size=0", ">= 1"]),
    "unknown dataset": ({"dataset": "imagenet"}, ["dataset='imagenet'", "valid choices", "'fashion_mnist'"]),
    "cuda without a GPU": ({"device": "cuda"}, ["no CUDA GPU", "device='auto'"]),
    "data_dir missing": ({"data_dir": "MISSING"}, ["data_dir=", "does not exist", "create it"]),
    "data_dir not writable": ({"data_dir": "READONLY"}, ["data_dir=", "not writable"]),
}


def _readonly_dir(tmp_path: Path) -> Path:
    """A folder this process cannot write to (root ignores permission bits, so try /proc/sys)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        return folder
    if Path("/proc/sys").is_dir() and not os.access("/proc/sys", os.W_OK):
        return Path("/proc/sys")
    pytest.skip("cannot make a non-writable folder here (running as root without /proc/sys)")


@pytest.mark.slow
@pytest.mark.parametrize("case", list(PAPERMILL_CASES))
def test_papermill_bad_parameter(case: str, tmp_path: Path):
    import papermill as pm

    parameters, words = PAPERMILL_CASES[case]
    if case == "cuda without a GPU" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    parameters = dict(parameters)
    if parameters.get("data_dir") == "MISSING":
        parameters["data_dir"] = str(tmp_path / "no_such_folder")
    elif parameters.get("data_dir") == "READONLY":
        parameters["data_dir"] = str(_readonly_dir(tmp_path))
    out_dir = tmp_path / "outputs"
    before = snapshot(ROOT / "data"), NB_04A.read_bytes()
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(NB_04A), str(tmp_path / "run.ipynb"),
                            parameters={**parameters, "output_dir": str(out_dir)},
                            cwd=str(NB_04A.parent), kernel_name="python3", progress_bar=False)
    assert err.value.ename == "ValueError", err.value.evalue
    for word in words:
        assert word in err.value.evalue
    assert "Traceback" not in err.value.evalue
    assert not out_dir.exists(), "nothing may be written before the parameters are checked"
    assert (snapshot(ROOT / "data"), NB_04A.read_bytes()) == before


# --------------------------------------------------------------------------- data files


def _mnist_copy(shared_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(shared_data / "MNIST", root / "MNIST")
    return root


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _png(path: Path, mode: str = "RGB", size: tuple[int, int] = (12, 12), value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    array = np.full((size[1], size[0], channels), value, dtype=np.uint8)
    Image.fromarray(array[..., 0] if channels == 1 else array, mode=mode).save(path)


def _folder(tmp_path: Path, classes: dict[str, int]) -> Path:
    root = tmp_path / "images"
    for name, n in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _png(root / name / f"{i}.png", value=40 * i % 255)
    return root


def case_missing_offline(tmp_path: Path, shared_data: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    return [empty], lambda: helpers.load_dataset("mnist", data_dir=empty, download=False)


def case_truncated_gz(tmp_path: Path, shared_data: Path):
    root = _mnist_copy(shared_data, tmp_path)
    _truncate(root / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz")
    return [root], lambda: helpers.load_dataset("mnist", data_dir=root, download=False)


def case_wrong_checksum(tmp_path: Path, shared_data: Path):
    root = _mnist_copy(shared_data, tmp_path)
    _flip_byte(root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz")
    return [root], lambda: helpers.load_dataset("mnist", data_dir=root, download=False)


def case_one_class(tmp_path: Path, shared_data: Path):
    root = _folder(tmp_path, {"cats": 4})
    return [root], lambda: helpers.load_dataset("folder", root=root)


def case_empty_class(tmp_path: Path, shared_data: Path):
    root = _folder(tmp_path, {"cats": 4, "dogs": 0})
    return [root], lambda: helpers.load_dataset("folder", root=root)


def case_non_image_file(tmp_path: Path, shared_data: Path):
    root = _folder(tmp_path, {"cats": 4, "dogs": 4})
    (root / "dogs" / "notes.png").write_text("this is text, not a picture")
    return [root], lambda: helpers.load_dataset("folder", root=root)


def case_corrupt_png(tmp_path: Path, shared_data: Path):
    root = _folder(tmp_path, {"cats": 4, "dogs": 4})
    _truncate(root / "cats" / "2.png")
    return [root], lambda: helpers.load_dataset("folder", root=root)


def case_not_a_checkpoint(tmp_path: Path, shared_data: Path):
    path = tmp_path / "ckpt" / "model.pt"
    path.parent.mkdir()
    path.write_text("definitely not a checkpoint")
    return [path.parent], lambda: helpers.load_checkpoint(path)


def case_other_architecture(tmp_path: Path, shared_data: Path):
    path = tmp_path / "ckpt" / "mlp.pt"
    helpers.save_checkpoint(path, helpers.build_model("mlp", (1, 8, 8), 10))
    other = helpers.build_model("lenet5", (1, 8, 8), 10)
    return [path.parent], lambda: helpers.load_checkpoint(path, model=other)


class _Payload:
    """Stands for an arbitrary object inside a pickle (loading it could run code)."""


def case_pickled_objects(tmp_path: Path, shared_data: Path):
    path = tmp_path / "ckpt" / "evil.pt"
    path.parent.mkdir()
    torch.save({"state_dict": {}, "meta": _Payload()}, path)
    return [path.parent], lambda: helpers.load_checkpoint(path)


DATA_CASES: dict[str, tuple[Callable, type[Exception], list[str]]] = {
    "missing files offline": (case_missing_offline, DatasetError,
                              ["train-images-idx3-ubyte.gz", "could not be downloaded", "'digits'"]),
    "truncated .gz": (case_truncated_gz, DatasetError, ["train-labels-idx1-ubyte.gz", "MD5"]),
    "wrong checksum": (case_wrong_checksum, DatasetError, ["t10k-labels-idx1-ubyte.gz", "MD5", "expected"]),
    "folder with one class": (case_one_class, DatasetError, ["cats", "at least two"]),
    "empty class": (case_empty_class, DatasetError, ["'dogs'", "no images"]),
    "non-image file": (case_non_image_file, DatasetError, ["notes.png", "skip_bad=True"]),
    "corrupt PNG": (case_corrupt_png, DatasetError, ["2.png", "skip_bad=True"]),
    "not a checkpoint": (case_not_a_checkpoint, CheckpointError, ["model.pt", "not a PyTorch checkpoint"]),
    "checkpoint of another architecture": (case_other_architecture, CheckpointError,
                                           ["does not fit this model", "mlp", "LeNet5"]),
    "checkpoint with pickled objects": (case_pickled_objects, CheckpointError,
                                        ["refused", "weights_only=True"]),
}


#: The cases that read MNIST files; the others need nothing and run anywhere.
NEEDS_SHARED_DATA = {"missing files offline", "truncated .gz", "wrong checksum"}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_or_checkpoint(case: str, tmp_path: Path, request: pytest.FixtureRequest):
    build, error, words = DATA_CASES[case]
    shared = request.getfixturevalue("shared_data") if case in NEEDS_SHARED_DATA else None
    owned, action = build(tmp_path, shared)
    before = snapshot(*owned)
    with pytest.raises(error) as err:
        action()
    message = str(err.value)
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    assert snapshot(*owned) == before, "the user's files must be left exactly as they were"


def test_pickle_payload_is_refused_by_a_weights_only_load(tmp_path: Path):
    """Guard for the case above: the payload is an arbitrary class, which torch's safe loader refuses.

    (Plain pickle would happily rebuild it, which is exactly the danger `weights_only` avoids.)
    """
    path = tmp_path / "payload.pt"
    torch.save({"meta": _Payload()}, path)
    assert pickle.loads(pickle.dumps(_Payload())).__class__ is _Payload
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


# --------------------------------------------------------------------------- inputs that must work


def test_mixed_grayscale_rgb_rgba_tiny_and_huge_images_load(tmp_path: Path):
    root = tmp_path / "images"
    _png(root / "a" / "gray.png", "L")
    _png(root / "a" / "rgba.png", "RGBA")
    _png(root / "a" / "one_pixel.png", "RGB", size=(1, 1))
    _png(root / "b" / "rgb.png", "RGB")
    _png(root / "b" / "huge.png", "RGB", size=(6000, 5000))
    with gzip.open(tmp_path / "unrelated.gz", "wb") as f:  # files beside the folder are ignored
        f.write(b"x")
    data = helpers.load_dataset("folder", root=root, image_size=16)
    assert data.shape == (3, 16, 16)
    assert len(data.y_train) + len(data.y_test) == 5
    assert data.x_train.dtype == torch.uint8
