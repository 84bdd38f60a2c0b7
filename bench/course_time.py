"""Time the whole course: every notebook with its default parameters, one after another.

    python bench/course_time.py            # all notebooks
    python bench/course_time.py 02a_*.ipynb

Each notebook runs in a fresh kernel (as nbval and `make course` run it); we record its wall
time and the kernel's peak resident memory (read inside the kernel after the last cell).
Writes `bench/results/course_time.json` and `.md`. Goal: the course in ≤ 5 min on 2 CPU
cores, no notebook over 90 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # run_course.py lives beside this project's scripts

from run_course import NOTEBOOKS, clean_metadata, course_notebooks  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PEAK_MEMORY_PROBE = (
    "import resource, sys\n"
    "_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print(_rss * (1 if sys.platform == 'darwin' else 1024))"  # bytes (Linux reports KiB)
)
BUDGET_TOTAL_S, BUDGET_NOTEBOOK_S = 300, 90


def time_notebook(path: Path, save: bool = False) -> tuple[float, float]:
    """Execute a notebook in a fresh kernel; return (seconds, peak memory in MiB).

    With `save`, the notebook is written back with its fresh outputs (as `make notebooks`).
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        seconds = time.perf_counter() - start
        probe = nbformat.v4.new_code_cell(PEAK_MEMORY_PROBE)
        nb.cells.append(probe)
        client.execute_cell(probe, len(nb.cells) - 1)
    peak = int(probe.outputs[0]["text"].strip()) / 2**20
    nb.cells.pop()
    if save:
        clean_metadata(nb)
        nbformat.write(nb, path)
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*")
    parser.add_argument("--in-place", action="store_true",
                        help="also save each notebook with its fresh outputs (a clean run to commit)")
    args = parser.parse_args()
    import torch

    # timing some notebooks updates their rows and keeps the others' earlier measurements
    previous = RESULTS / "course_time.json"
    existing = {p.name for p in course_notebooks()}
    by_name = {r["notebook"]: r for r in json.loads(previous.read_text())["notebooks"]} if previous.exists() else {}
    for path in course_notebooks(args.notebooks):
        seconds, peak = time_notebook(path, save=args.in_place)
        by_name[path.name] = {"notebook": path.name, "seconds": round(seconds, 1), "peak_mib": round(peak)}
        print(f"{seconds:7.1f} s  {peak:7.0f} MiB  {path.name}", flush=True)
    rows = [by_name[name] for name in sorted(by_name) if name in existing]
    total = sum(r["seconds"] for r in rows)
    machine = {
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(), "torch": torch.__version__,
    }
    result = {"machine": machine, "total_seconds": round(total, 1), "notebooks": rows,
              "goal": {"total_s": BUDGET_TOTAL_S, "per_notebook_s": BUDGET_NOTEBOOK_S}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "course_time.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"Course run time, default parameters, {machine['cpus']} CPU cores"
        f"{', GPU ' + machine['gpu'] if machine['gpu'] else ', no GPU'}, torch {machine['torch']}.",
        "", "| notebook | seconds | peak memory (MiB) |", "|---|---:|---:|",
    ]
    lines += [f"| {r['notebook']} | {r['seconds']} | {r['peak_mib']} |" for r in rows]
    lines.append(f"| **total** | **{total:.0f}** | |")
    over = [r["notebook"] for r in rows if r["seconds"] > BUDGET_NOTEBOOK_S]
    lines += ["", f"Goal: total ≤ {BUDGET_TOTAL_S} s ({'met' if total <= BUDGET_TOTAL_S else 'not met'}), "
              f"each notebook ≤ {BUDGET_NOTEBOOK_S} s ({'met' if not over else 'over: ' + ', '.join(over)})."]
    (RESULTS / "course_time.md").write_text("\n".join(lines) + "\n")
    print(f"{total:7.1f} s  total -> {(RESULTS / 'course_time.md').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
