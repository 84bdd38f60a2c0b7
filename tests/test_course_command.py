"""`make course` = scripts/run_course.py: executes notebooks with papermill, then renders HTML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_run_course_executes_times_and_renders(tmp_path: Path):
    build = tmp_path / "build"
    result = subprocess.run(
        [sys.executable, "scripts/run_course.py", "01_background.ipynb", "--build", str(build)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "01_background.ipynb" in result.stdout and "total" in result.stdout
    executed = json.loads((build / "executed" / "01_background.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert outputs and not any(o["output_type"] == "error" for o in outputs)
    times = json.loads((build / "executed" / "times.json").read_text())
    assert times["01_background.ipynb"] > 0
    index = (build / "html" / "index.html").read_text(encoding="utf-8")
    assert "背景介绍" in index and (build / "html" / "01_background.html").is_file()


def test_a_failing_notebook_does_not_stop_the_others(tmp_path: Path):
    """`make course` goes on after a failure, lists it (notebook, cell, error) and exits 1."""
    import nbformat

    broken = tmp_path / "00_broken.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("raise ValueError('the dataset is missing: copy it to data/')")]
    nbformat.write(nb, broken)
    build = tmp_path / "build"
    result = subprocess.run(
        [sys.executable, "scripts/run_course.py", str(broken), "06z_glossary.ipynb", "--build", str(build)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "00_broken.ipynb  FAILED: cell [2]: ValueError" in result.stdout
    assert (build / "executed" / "06z_glossary.ipynb").is_file(), "the notebook after the failure must run"
    assert "1 notebook(s) failed" in result.stderr
    assert "00_broken.ipynb: cell [2]: ValueError: the dataset is missing: copy it to data/" in result.stderr
    # jupyter_client's interrupt-before-shutdown made every kernel log this between notebooks
    assert "KeyboardInterrupt caught" not in result.stdout + result.stderr
    assert "Kernel is running over TCP" not in result.stdout + result.stderr
