"""Instructors rerun notebooks with papermill: other parameters work, bad ones fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parent.parent
CH1 = ROOT / "notebooks" / "01_background.ipynb"

pytestmark = pytest.mark.slow


def run(notebook: Path, out: Path, **parameters) -> dict:
    pm.execute_notebook(
        str(notebook), str(out), parameters=parameters, cwd=str(notebook.parent),
        kernel_name="python3", progress_bar=False,
    )
    return json.loads(out.read_text())


def printed(nb: dict) -> str:
    return "\n".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                     for o in c.get("outputs", []))


def test_rerun_with_other_parameters_changes_the_result(tmp_path):
    nb = run(CH1, tmp_path / "out.ipynb", photo="coffee", epochs=3, seed=1)
    text = printed(nb)
    assert "photo 'coffee'" in text and "faces found: 0" in text
    assert "epochs=3" in text and "seed: 1" in text
    assert "History(epochs=3" in text


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"epoch": 3}, "unknown parameter 'epoch' (did you mean 'epochs'?)"),
        ({"epochs": "ten"}, "parameter epochs='ten' must be a whole number"),
        ({"photo": "dog"}, "parameter photo='dog' is not valid"),
    ],
)
def test_bad_parameters_fail_with_a_clear_message(tmp_path, parameters, message):
    with pytest.raises(pm.PapermillExecutionError) as err:
        run(CH1, tmp_path / "out.ipynb", **parameters)
    assert err.value.ename == "ValueError"
    assert message in err.value.evalue
