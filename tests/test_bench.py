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
