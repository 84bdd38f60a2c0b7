"""Time the whole course: every notebook with its default parameters, one after another.

    python bench/course_time.py            # all notebooks
    python bench/course_time.py 02a_*.ipynb

Each notebook runs in a fresh kernel (as nbval and `make course` run it); we record its wall
time, the kernel's peak resident memory (read inside the kernel after the last cell) and the
machine's 1-minute load average before and after it (a busy machine inflates the times).
Writes `bench/results/course_time.json` and `.md`. Goals (issue 15): the twenty notebooks of
the first edition in ≤ 300 s together on 2 idle CPU cores, no notebook over 60 s; the whole
course (later issues added notebooks with their own 60 s budgets) aims at ≤ 360 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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
BUDGET_TOTAL_S, BUDGET_COURSE_S, BUDGET_NOTEBOOK_S = 300, 360, 60
# notebooks added after the first edition (issues 16 and 17): outside the 300 s total of the twenty
LATER_NOTEBOOKS = {"04g_object_detection.ipynb", "04h_segmentation.ipynb", "04i_your_own_images.ipynb",
                   "06c_train_fast_on_a_cpu.ipynb"}


COMPARISON_CALLS = ("experiments.run(", "map_seeds(")  # a cell that runs a seeded comparison calls one


def time_notebook(path: Path, save: bool = False) -> tuple[float, float, float]:
    """Execute a notebook in a fresh kernel; return (seconds, peak memory in MiB, comparison seconds).

    Comparison seconds: the time of the cells that run seeded comparisons (`experiments.run`,
    `map_seeds`), so the table shows how much of a notebook its measured lessons cost.
    With `save`, the notebook is written back with its fresh outputs (as `make notebooks`).
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    comparisons = 0.0
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            cell_start = time.perf_counter()
            client.execute_cell(cell, index)
            if cell.cell_type == "code" and any(call in cell.source for call in COMPARISON_CALLS):
                comparisons += time.perf_counter() - cell_start
        seconds = time.perf_counter() - start
        probe = nbformat.v4.new_code_cell(PEAK_MEMORY_PROBE)
        nb.cells.append(probe)
        client.execute_cell(probe, len(nb.cells) - 1)
    peak = int(probe.outputs[0]["text"].strip()) / 2**20
    nb.cells.pop()
    if save:
        clean_metadata(nb)
        nbformat.write(nb, path)
    return seconds, peak, comparisons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*")
    parser.add_argument("--in-place", action="store_true",
                        help="also save each notebook with its fresh outputs (a clean run to commit)")
    parser.add_argument("--no-run", action="store_true",
                        help="time nothing: rebuild the .md table (and the READMEs with --readme) from the JSON")
    parser.add_argument("--readme", action="store_true",
                        help="also copy the table into README.md and README.zh.md (between the course-time markers)")
    args = parser.parse_args()
    import torch

    # timing some notebooks updates their rows and keeps the others' earlier measurements
    previous = RESULTS / "course_time.json"
    existing = {p.name for p in course_notebooks()}
    by_name = {r["notebook"]: r for r in json.loads(previous.read_text())["notebooks"]} if previous.exists() else {}
    for path in [] if args.no_run else course_notebooks(args.notebooks):
        load_before = os.getloadavg()[0]
        seconds, peak, comparisons = time_notebook(path, save=args.in_place)
        load_after = os.getloadavg()[0]
        by_name[path.name] = {"notebook": path.name, "seconds": round(seconds, 1), "peak_mib": round(peak),
                              "comparison_seconds": round(comparisons, 1),
                              "load_before": round(load_before, 2), "load_after": round(load_after, 2)}
        print(f"{seconds:7.1f} s  {peak:7.0f} MiB  load {load_before:.2f} -> {load_after:.2f}  {path.name}",
              flush=True)
    rows = [by_name[name] for name in sorted(by_name) if name in existing]
    first = [r for r in rows if r["notebook"] not in LATER_NOTEBOOKS]
    total, first_total = sum(r["seconds"] for r in rows), sum(r["seconds"] for r in first)
    first_comparisons = sum(r.get("comparison_seconds", 0.0) for r in first)
    machine = {
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(), "torch": torch.__version__,
    }
    result = {"machine": machine, "total_seconds": round(total, 1), "first_edition_seconds": round(first_total, 1),
              "first_edition_comparison_seconds": round(first_comparisons, 1),
              "notebooks": rows, "goal": {"first_edition_total_s": BUDGET_TOTAL_S, "course_total_s": BUDGET_COURSE_S,
                                          "per_notebook_s": BUDGET_NOTEBOOK_S}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "course_time.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"Course run time, default parameters, {machine['cpus']} CPU cores"
        f"{', GPU ' + machine['gpu'] if machine['gpu'] else ', no GPU'}, torch {machine['torch']}.",
        "Each notebook in a fresh kernel, one after another, nothing else running; load = the 1-minute "
        "load average before -> after (a notebook that runs its seeds in worker processes raises it itself: "
        "two busy cores read as about 2). Comparisons = the seconds of the cells that run seeded comparisons "
        "(`experiments.run`, `map_seeds`): what the measured lessons cost.",
        "", "| notebook | seconds | comparisons | peak memory (MiB) | load |", "|---|---:|---:|---:|---|",
    ]
    lines += [f"| {r['notebook']}{' (added later)' if r['notebook'] in LATER_NOTEBOOKS else ''} | {r['seconds']} "
              f"| {r.get('comparison_seconds', '?')} | {r['peak_mib']} "
              f"| {r.get('load_before', '?')} -> {r.get('load_after', '?')} |" for r in rows]
    lines.append(f"| **the first edition's {len(first)} notebooks** | **{first_total:.0f}** "
                 f"| **{first_comparisons:.0f}** | | |")
    lines.append(f"| **whole course ({len(rows)} notebooks)** | **{total:.0f}** | | | |")
    over = [r["notebook"] for r in rows if r["seconds"] > BUDGET_NOTEBOOK_S]
    lines += ["", f"Goals: the first edition's notebooks ≤ {BUDGET_TOTAL_S} s "
              f"({'met' if first_total <= BUDGET_TOTAL_S else 'not met'}), the whole course ≤ {BUDGET_COURSE_S} s "
              f"({'met' if total <= BUDGET_COURSE_S else 'not met'}), each notebook ≤ {BUDGET_NOTEBOOK_S} s "
              f"({'met' if not over else 'over: ' + ', '.join(over)}).",
              "", f"Outside the comparisons, the first edition's notebooks take {first_total - first_comparisons:.0f} s."]
    (RESULTS / "course_time.md").write_text("\n".join(lines) + "\n")
    if args.readme:
        update_readmes(lines)
    print(f"{total:7.1f} s  total -> {(RESULTS / 'course_time.md').relative_to(ROOT)}")


ZH = [  # (pattern, replacement) for the table's prose lines in the Chinese README; the numbers stay
    (r"^Course run time, default parameters, (\d+) CPU cores, no GPU, torch (\S+)\.$",
     r"整门课程的运行时间：默认参数，\1个CPU核心，无GPU，torch \2。"),
    (r"^Course run time, default parameters, (\d+) CPU cores, GPU (.+), torch (\S+)\.$",
     r"整门课程的运行时间：默认参数，\1个CPU核心，GPU \2，torch \3。"),
    (r"^Each notebook in a fresh kernel.*$",
     "每个笔记本在新的内核中依次运行，期间没有其他任务；负载 = 运行前 -> 运行后的1分钟平均负载"
     "（在工作进程中并行运行各随机种子的笔记本自己就会抬高负载：两个忙碌的核心读数约为2）。"
     "对比实验 = 运行多种子对比的单元格（`experiments.run`、`map_seeds`）所用的秒数：即这些经过测量的结论的代价。"),
    (r"^\| notebook \| seconds \| comparisons \| peak memory \(MiB\) \| load \|$",
     "| 笔记本 | 秒 | 对比实验 | 峰值内存（MiB） | 负载 |"),
    (r" \(added later\) \|", "（后来加入） |"),
    (r"\*\*the first edition's (\d+) notebooks\*\*", r"**第一版的\1个笔记本**"),
    (r"\*\*whole course \((\d+) notebooks\)\*\*", r"**整门课程（\1个笔记本）**"),
    (r"^Goals: ", "目标："),
    (r"the first edition's notebooks ≤ (\d+) s", r"第一版的笔记本 ≤ \1秒"),
    (r"the whole course ≤ (\d+) s", r"整门课程 ≤ \1秒"),
    (r"each notebook ≤ (\d+) s", r"每个笔记本 ≤ \1秒"),
    (r" \(met\)", "（已达到）"), (r" \(not met\)", "（未达到）"),
    (r" \(over: ([^)]*)\)", r"（超出：\1）"),
    (r"）, ", "），"), (r"）\.$", "）。"),
    (r"^Outside the comparisons, the first edition's notebooks take (\d+) s\.$", r"除去对比实验，第一版的笔记本用时\1秒。"),
]


def to_chinese(line: str) -> str:
    """One line of the table in the Chinese README's words."""
    for pattern, replacement in ZH:
        line = re.sub(pattern, replacement, line)
    return line


def update_readmes(lines: list[str], root: Path = ROOT) -> None:
    """Replace the table between `<!-- course-time:start/end -->` in both READMEs."""
    for name, translate in (("README.md", False), ("README.zh.md", True)):
        path = root / name
        text = path.read_text()
        start, end = "<!-- course-time:start -->\n", "<!-- course-time:end -->"
        if start not in text or end not in text:
            sys.exit(f"{name}: the course-time markers are missing; add {start.strip()} and {end} around the table")
        body = "\n".join(to_chinese(line) if translate else line for line in lines) + "\n"
        head, rest = text.split(start, 1)
        path.write_text(head + start + body + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    main()
