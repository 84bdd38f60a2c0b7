"""Render the executed notebooks (build/executed/) to an HTML book in build/html/.

A first version: one page per notebook plus an index. (The full offline book with
navigation, MathJax and a PDF is built in the publishing issue.)
"""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = ROOT / "build" / "executed"
HTML = ROOT / "build" / "html"


def build_html() -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    notebooks = sorted(EXECUTED.glob("[0-9]*.ipynb"))
    if not notebooks:
        raise SystemExit("no executed notebooks in build/executed/: run `make course` first")
    HTML.mkdir(parents=True, exist_ok=True)
    times = json.loads((EXECUTED / "times.json").read_text()) if (EXECUTED / "times.json").exists() else {}
    exporter = HTMLExporter(template_name="lab")
    items = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(nb)
        out = HTML / (path.stem + ".html")
        out.write_text(body, encoding="utf-8")
        title = next((c.source.splitlines()[0].lstrip("# ") for c in nb.cells if c.cell_type == "markdown"), path.stem)
        items.append(f'<li><a href="{out.name}">{html.escape(title)}</a> ({times.get(path.name, "?")} s)</li>')
    index = HTML / "index.html"
    index.write_text(
        "<!doctype html><meta charset='utf-8'><title>深度学习在图像识别中的应用</title>"
        "<h1>Deep learning for image recognition · 深度学习在图像识别中的应用</h1><ol>"
        + "\n".join(items) + "</ol>",
        encoding="utf-8",
    )
    print(f"HTML book: {index.relative_to(ROOT)}")
    return index


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--html", action="store_true", help="build the HTML book (default)")
    parser.add_argument("--pdf", action="store_true", help="build the PDF (not yet implemented here)")
    args = parser.parse_args()
    if args.pdf:
        raise SystemExit("the PDF build is not implemented yet")
    build_html()
