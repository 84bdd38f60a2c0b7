"""bench/pipeline.py --quick: the smoke run CI executes writes both result files with every table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "bench" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stats_and_pieces_change_the_recipe():
    bench = _bench()
    s = bench.stats([3.0, 1.0, 2.0])
    assert (s["median"], s["min"], s["max"]) == (2.0, 1.0, 3.0)
    base = bench.RECIPES["fashion_mnist"]
    for piece, _, change in bench.PIECES:
        assert change(base) != base, f"removing {piece!r} leaves the recipe unchanged"
    assert base == bench.RECIPES["fashion_mnist"]  # the changes copy, never edit the recipe


@pytest.mark.slow
def test_quick_run_writes_every_table(data_copy: Path, tmp_path: Path):
    result = _bench().main(["--quick", "--data-dir", str(data_copy), "--out", str(tmp_path),
                            "--models", "lenet5"])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["pipeline_quick.json", "pipeline_quick.md"]
    saved = json.loads((tmp_path / "pipeline_quick.json").read_text())
    assert saved["quick"] and {r["dataset"] for r in saved["recipe"]} == {"fashion_mnist", "mnist", "digits"}
    assert saved["ablation"][0]["removed"] == "full recipe" and len(saved["ablation"]) > 5
    assert all(len(r["ours_img_s"]["values"]) >= 3 for r in saved["throughput"])
    assert set(saved["conditions"]["load"]) >= {"recipe (cpu)", "ablation (cpu)", "throughput (cpu)"}
    md = (tmp_path / "pipeline_quick.md").read_text()
    for heading in ("## Conditions", "## The recipe against its goals", "## Ablation", "## Throughput"):
        assert heading in md
    assert md.count("| cpu |") == len(saved["recipe"]) + len(saved["ablation"]) + len(saved["throughput"])
    assert result["conditions"]["torch_threads"] == 2


def _course_time():
    spec = importlib.util.spec_from_file_location("bench_course_time", ROOT / "bench" / "course_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_course_time_table_goes_into_both_readmes_and_the_committed_one_is_there(tmp_path):
    ct = _course_time()
    for name in ("README.md", "README.zh.md"):
        (tmp_path / name).write_text("intro\n<!-- course-time:start -->\nold table\n<!-- course-time:end -->\nrest\n")
    lines = ["Course run time, default parameters, 2 CPU cores, no GPU, torch x.", "",
             "| notebook | seconds | comparisons | peak memory (MiB) | load |", "|---|---:|---:|---:|---|",
             "| 01_a.ipynb | 12.5 | 3.0 | 800 | 0.1 -> 0.9 |",
             "| **whole course (24 notebooks)** | **841** | | | |",
             "Goals: the whole course ≤ 360 s (not met), each notebook ≤ 60 s (over: 04f_faces.ipynb)."]
    ct.update_readmes(lines, root=tmp_path)
    en, zh = ((tmp_path / n).read_text() for n in ("README.md", "README.zh.md"))
    assert "old table" not in en and "| 01_a.ipynb | 12.5 | 3.0 | 800 | 0.1 -> 0.9 |" in en and en.endswith("rest\n")
    assert "| 笔记本 | 秒 | 对比实验 | 峰值内存（MiB） | 负载 |" in zh and "| 01_a.ipynb | 12.5 |" in zh
    assert "| **整门课程（24个笔记本）** | **841** |" in zh
    assert "目标：整门课程 ≤ 360秒（未达到），每个笔记本 ≤ 60秒（超出：04f_faces.ipynb）。" in zh
    (tmp_path / "README.md").write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers are missing"):
        ct.update_readmes(lines, root=tmp_path)
    # the committed READMEs carry the committed measurement (`bench/course_time.py --readme`)
    committed = (ROOT / "bench" / "results" / "course_time.md").read_text()
    assert committed in (ROOT / "README.md").read_text()


def test_course_time_counts_the_seconds_of_comparison_cells(tmp_path):
    """The 'comparisons' column: time in cells that call experiments.run / map_seeds, and only there."""
    import nbformat

    ct = _course_time()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(0.4)"),
                nbformat.v4.new_code_cell("time.sleep(0.8)  # stands for exp = experiments.run(...)"),
                nbformat.v4.new_markdown_cell("experiments.run( in prose does not count")]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    seconds, peak, comparisons = ct.time_notebook(path)
    assert comparisons >= 0.8 and seconds - comparisons >= 0.4 and peak > 0
