"""Papermill reruns of notebook 4.1 on real Fashion-MNIST (a temp copy), small and fast.

The notebook writes `metrics.json` into `output_dir`; we assert on what it recorded.
Its own-folder mode moved to notebook 4.9 (`04i_your_own_images`): the old parameters now fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "04a_train_a_cnn.ipynb"


@pytest.mark.slow
def test_04a_runs_on_fashion_mnist(data_copy: Path, tmp_path: Path):
    papermill = pytest.importorskip("papermill")
    out_dir = tmp_path / "out"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "executed.ipynb"),
        parameters={"dataset": "fashion_mnist", "data_dir": str(data_copy), "output_dir": str(out_dir),
                    "model_name": "lenet5", "epochs": 3, "n_per_class": 100, "lr": 1e-2, "device": "cpu"},
        cwd=str(NOTEBOOK.parent),
        kernel_name="python3",
        progress_bar=False,
    )
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["dataset"] == "fashion_mnist" and metrics["model"] == "lenet5"
    assert metrics["epochs"] == 3 and metrics["n_train"] == 1000
    assert 0.4 < metrics["test_acc"] <= 1.0  # 10 classes: chance is 10 %; 1,000 images, 3 epochs
    assert (out_dir / metrics["checkpoint"]).is_file()
    assert len(list((out_dir / "new_images").glob("*.png"))) == 8
    executed = (tmp_path / "executed.ipynb").read_text()
    assert "T-shirt/top" in executed  # the real class names reached the outputs


@pytest.mark.slow
def test_04a_rejects_a_typo_in_a_parameter(tmp_path: Path):
    papermill = pytest.importorskip("papermill")
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter 'epoch'"):
        papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "bad.ipynb"), parameters={"epoch": 3},
                                   cwd=str(NOTEBOOK.parent), kernel_name="python3", progress_bar=False)


@pytest.mark.slow
@pytest.mark.parametrize("parameters, message", [
    ({"dataset": "folder"}, "parameter dataset='folder' is not a dataset this notebook knows"),
    ({"folder_root": "."}, "unknown parameter 'folder_root'"),
    ({"width": 0}, "parameter width=0 is out of range"),
    ({"model_name": "alexnet"}, "parameter model_name='alexnet' is not valid"),
])
def test_04a_rejects_the_folder_mode_and_bad_values(tmp_path: Path, parameters: dict, message: str):
    papermill = pytest.importorskip("papermill")
    with pytest.raises(papermill.PapermillExecutionError, match=message):
        papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "bad.ipynb"), parameters=parameters,
                                   cwd=str(NOTEBOOK.parent), kernel_name="python3", progress_bar=False)


def test_04a_defaults_to_fashion_mnist_and_every_parameter_has_a_rule():
    import json as _json

    cells = _json.loads(NOTEBOOK.read_text())["cells"]
    params = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    source = "".join(params["source"])
    assert 'dataset = "fashion_mnist"' in source and "folder_root" not in source
    names = [line.split("=")[0].strip() for line in source.splitlines() if "=" in line]
    check_cell = "".join(cells[cells.index(params) + 1]["source"])
    assert all(f"{n}={n}" in check_cell for n in names), names
