"""Run the course: execute notebooks top to bottom and render them.

    python scripts/run_course.py                  # all notebooks -> build/executed/, then HTML
    python scripts/run_course.py --in-place NB..  # re-execute committed notebooks in place
    python scripts/run_course.py --html-only      # render build/executed/ again
    python scripts/run_course.py 02a_images.ipynb # just some notebooks

Each notebook runs with its default parameters in a fresh kernel whose working directory is
`notebooks/`. The time each notebook took is printed and written to
`build/executed/times.json` (the HTML index shows it). When a notebook fails, the others
still run; the failures are listed at the end (notebook, cell, error) and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"
EXECUTED = BUILD / "executed"


def course_notebooks(names: list[str] | None = None) -> list[Path]:
    """The course's notebooks in reading order (or the ones named)."""
    if names:
        paths = [Path(n) if Path(n).exists() else NOTEBOOKS / Path(n).name for n in names]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            sys.exit(f"no such notebook: {', '.join(missing)}")
        return paths
    return sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


class QuietKernelManager(AsyncKernelManager):
    """A kernel manager that does not interrupt a kernel it is about to shut down.

    jupyter_client's `shutdown_kernel` first sends SIGINT, then a shutdown request. A kernel
    that is handling a message at that moment (it always is, right after the last cell) logs
    "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel." to the terminal, between
    notebooks. The notebook has finished, so there is nothing to interrupt: ask it to shut
    down (it is killed after the usual grace period if it does not).
    """

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:
            return
        await super()._async_interrupt_kernel()


#: The kernel's own log goes to this terminal: keep its errors, drop the warning that a local
#: kernel talks over TCP on 127.0.0.1 (printed once per notebook by recent ipykernels).
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


@dataclass
class Failure:
    """One notebook that failed: where and why."""

    notebook: str
    cell: str
    error: str

    def __str__(self) -> str:
        return f"{self.notebook}: {self.cell}: {self.error}"


def describe_failure(path: Path, exc: BaseException) -> Failure:
    """Which cell failed and the error's last line, from a papermill/nbclient exception."""
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc)).strip().splitlines()
    message = f"{ename}: {evalue[-1] if evalue else ''}"
    count = getattr(exc, "exec_count", None)
    cell = f"cell [{count}]" if count is not None else "before the first cell (kernel start)"
    return Failure(path.name, cell, message[:300])


def clean_metadata(nb) -> None:
    """Drop per-cell timestamps so re-running a notebook gives a reviewable diff."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    nb.metadata.pop("papermill", None)
    nb.metadata.get("widgets", {}).clear() if "widgets" in nb.metadata else None


def execute_in_place(path: Path, timeout: int = 900) -> float:
    """Restart + run all on a committed notebook and save it with its fresh outputs."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}},
        kernel_manager_class=QuietKernelManager, extra_arguments=KERNEL_ARGUMENTS,
    )
    try:
        client.execute()
    except Exception as exc:  # name the failing cell the way papermill's error does
        for cell in nb.cells:
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errors:
                exc.exec_count = cell.get("execution_count")
                exc.ename, exc.evalue = errors[0].get("ename", ""), errors[0].get("evalue", "")
                break
        raise
    seconds = time.perf_counter() - start
    clean_metadata(nb)
    nbformat.write(nb, path)
    return seconds


def execute_to_build(path: Path, executed: Path = EXECUTED, parameters: dict | None = None) -> float:
    """Execute one notebook with papermill into `executed/` (the committed file is untouched)."""
    import papermill as pm

    executed.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    pm.execute_notebook(
        str(path), str(executed / path.name), parameters=parameters or {},
        cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False,
        kernel_manager_class=QuietKernelManager, extra_arguments=KERNEL_ARGUMENTS,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--in-place", action="store_true", help="re-execute committed notebooks in place")
    parser.add_argument("--html-only", action="store_true", help="only render build/executed/ to HTML")
    parser.add_argument("--build", type=Path, default=BUILD, help="output folder (default: build/)")
    args = parser.parse_args()
    executed = args.build / "executed"

    times: dict[str, float] = {}
    times_file = executed / "times.json"
    if times_file.exists():
        times = json.loads(times_file.read_text())
    failures: list[Failure] = []
    if not args.html_only:
        total = time.perf_counter()
        for path in course_notebooks(args.notebooks):
            start = time.perf_counter()
            try:
                seconds = execute_in_place(path) if args.in_place else execute_to_build(path, executed)
            except Exception as exc:  # one failed notebook must not stop the others
                failures.append(describe_failure(path, exc))
                print(f"{time.perf_counter() - start:7.1f} s  {path.name}  FAILED: {failures[-1].cell}: "
                      f"{failures[-1].error}", flush=True)
                continue
            times[path.name] = round(seconds, 1)
            print(f"{seconds:7.1f} s  {path.name}", flush=True)
        print(f"{time.perf_counter() - total:7.1f} s  total")
        executed.mkdir(parents=True, exist_ok=True)
        times_file.write_text(json.dumps(times, indent=1))
        if not args.in_place:
            print(f"executed notebooks: {executed}/")
    if failures:
        print(f"\n{len(failures)} notebook(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
    if args.in_place:
        sys.exit(1 if failures else 0)
    # the Chinese notebooks: the executed ones with the translated markdown (i18n/zh/*.po)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "i18n.py"), "build", "--source", str(executed),
                    "--out", str(args.build / "zh")], check=True)
    book = [sys.executable, str(ROOT / "scripts" / "build_book.py"), "--html"]
    if args.build != BUILD:
        book += ["--source", str(executed), "--out", str(args.build / "html")]
    subprocess.run(book, check=True)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
