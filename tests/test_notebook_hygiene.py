"""Every committed notebook: executed cleanly, small, titled, parameterised, no machine paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import helpers

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
ABSOLUTE_PATH = re.compile(r"(/work/|/tmp/|/root/|/home/\w+/|/Users/\w+/|[A-Z]:\\\\Users\\\\)")
MAX_BYTES = 2 * 1024 * 1024
# matplotlib objects, and a lone float such as `1.0658e-14` left as a cell's last expression
STRAY_REPR = re.compile(
    r"^(\[?<matplotlib\.|\[?<Axes|Text\(|\[<matplotlib|Line2D\(|<Figure size|"
    r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?$|np\.float64\()"
)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def _output_text(output: dict) -> str:
    if "text" in output:
        return "".join(output["text"])
    data = output.get("data", {})
    return "".join("".join(data[k]) for k in ("text/plain", "text/html", "text/markdown") if k in data)


def test_there_are_notebooks_for_every_chapter_so_far():
    assert NOTEBOOKS, "no notebooks found"
    assert NOTEBOOKS[0].name == "01_background.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
class TestNotebook:
    def test_executed_in_order_from_a_clean_run(self, path):
        counts = [c["execution_count"] for c in _code_cells(_load(path))]
        assert None not in counts, "cells without outputs: restart and run all (make notebooks)"
        assert counts == list(range(1, len(counts) + 1)), "execution counts out of order: restart + run all"

    def test_no_error_outputs(self, path):
        for cell in _code_cells(_load(path)):
            for out in cell.get("outputs", []):
                assert out["output_type"] != "error", f"error output committed: {out.get('ename')}"
                assert not (out.get("name") == "stderr" and "Traceback" in _output_text(out))

    def test_no_absolute_paths_of_this_machine(self, path):
        for cell in _code_cells(_load(path)):
            for out in cell.get("outputs", []):
                found = ABSOLUTE_PATH.search(_output_text(out))
                assert not found, f"output shows a machine path: ...{_output_text(out)[max(0, found.start() - 40):found.end() + 40]}..."

    def test_small_enough_for_review(self, path):
        assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"

    def test_first_code_cell_is_tagged_parameters_and_validated(self, path):
        cells = _code_cells(_load(path))
        assert "parameters" in cells[0]["metadata"].get("tags", []), "first code cell must be tagged 'parameters'"
        assert "check_params(" in "".join(cells[1]["source"]), "the cell after parameters must call check_params"

    def test_title_names_the_chapter_in_english_and_chinese(self, path):
        nb = _load(path)
        first_md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
        title = "".join(first_md["source"]).splitlines()[0]
        english, chinese = helpers.CHAPTERS[path.name[:2]]
        assert title.startswith("# ") and english in title and chinese in title, title

    def test_ends_with_the_run_report(self, path):
        last = "".join(_code_cells(_load(path))[-1]["source"])
        assert "run.finish()" in last, "the last code cell must print the run report (run.finish())"

    def test_no_stderr_output(self, path):
        """Warnings, log lines and progress bars go to stderr: a clean committed run has none."""
        for i, cell in enumerate(_code_cells(_load(path))):
            for out in cell.get("outputs", []):
                assert out.get("name") != "stderr", (
                    f"code cell {i + 1} has stderr output (a warning, log line or progress bar): "
                    f"{_output_text(out).strip()[:160]!r}; silence it at its source"
                )

    def test_no_stray_return_value_reprs(self, path):
        """`Text(0.5, 1.0, ...)`, `<matplotlib...>` or a bare number left by a cell's last expression."""
        for i, cell in enumerate(_code_cells(_load(path))):
            for out in cell.get("outputs", []):
                if out["output_type"] != "execute_result":
                    continue
                plain = "".join(out.get("data", {}).get("text/plain", ""))
                assert not STRAY_REPR.match(plain), (
                    f"code cell {i + 1} shows a stray return value {plain[:60]!r}: end the line with ';' or assign it"
                )
