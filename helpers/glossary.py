"""The course's bilingual glossary (`helpers/glossary.csv`): load, validate, render.

    frame = glossary.load()                 # english, chinese, definition, notebook, chapter
    problems = glossary.validate(frame)     # [] when every row is well-formed
    html = glossary.render_html(frame)      # one table, grouped by chapter

Rows are added by appending to the CSV (columns `english,chinese,definition,notebook`);
`notebook` is the stem of the notebook where the English term is explained.
"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

import pandas as pd

from .core import CHAPTERS, course_root

__all__ = ["COLUMNS", "GLOSSARY_CSV", "load", "missing_mentions", "notebook_text", "render_html", "validate"]

COLUMNS = ("english", "chinese", "definition", "notebook")
GLOSSARY_CSV = Path(__file__).resolve().parent / "glossary.csv"
_CJK = re.compile(r"[\u3400-\u9fff]")


def load(path: str | Path | None = None) -> pd.DataFrame:
    """The glossary as a DataFrame (strings, whitespace stripped) with an added `chapter` column.

    `chapter` is "6 FAQ · 常见问题与解答" style text from the notebook's two-digit prefix.
    Raises ValueError if the header is not exactly `english,chinese,definition,notebook`.
    """
    path = Path(path) if path is not None else GLOSSARY_CSV
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if tuple(frame.columns) != COLUMNS:
        raise ValueError(f"{path.name}: columns are {list(frame.columns)}, expected {list(COLUMNS)}")
    frame = frame.apply(lambda col: col.str.strip())
    frame["chapter"] = frame["notebook"].map(_chapter_label)
    return frame


def _chapter_label(notebook: str) -> str:
    prefix = notebook[:2]
    if prefix not in CHAPTERS:
        return "?"
    english, chinese = CHAPTERS[prefix]
    return f"{int(prefix)} {english} · {chinese}"


def validate(frame: pd.DataFrame, notebooks_dir: str | Path | None = None) -> list[str]:
    """Problems with the glossary rows, one readable line each ([] when it is well-formed).

    Checks: every column filled, no duplicate English term (case-insensitive), the Chinese
    column contains Chinese characters, and the `notebook` stem names an existing notebook.
    """
    nb_dir = Path(notebooks_dir) if notebooks_dir is not None else course_root() / "notebooks"
    problems = []
    for i, row in frame.iterrows():
        line = i + 2  # the CSV line (header is line 1)
        empty = [c for c in COLUMNS if not str(row[c]).strip()]
        if empty:
            problems.append(f"line {line} ({row['english'] or '?'}): empty column(s) {', '.join(empty)}")
            continue
        if not _CJK.search(row["chinese"]):
            problems.append(f"line {line} ({row['english']}): chinese={row['chinese']!r} has no Chinese characters")
        if not (nb_dir / f"{row['notebook']}.ipynb").is_file():
            problems.append(f"line {line} ({row['english']}): notebook {row['notebook']!r} does not exist "
                            f"in notebooks/ (give the stem, e.g. '02a_images_as_data')")
    keys = frame["english"].str.lower()
    for term in sorted(set(keys[keys.duplicated()])):
        lines = [str(i + 2) for i in frame.index[keys == term]]
        problems.append(f"duplicate English term {term!r} on lines {', '.join(lines)}")
    return problems


def notebook_text(path: str | Path) -> str:
    """All markdown and code source of a notebook as one string (outputs excluded)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    return "\n".join("".join(cell.get("source", "")) for cell in nb.get("cells", []))


def missing_mentions(frame: pd.DataFrame, notebooks_dir: str | Path | None = None) -> list[str]:
    """Terms that do not appear (case-insensitive) in the markdown or code of the notebook they name."""
    nb_dir = Path(notebooks_dir) if notebooks_dir is not None else course_root() / "notebooks"
    cache: dict[str, str] = {}
    missing = []
    for _, row in frame.iterrows():
        path = nb_dir / f"{row['notebook']}.ipynb"
        if not path.is_file():
            missing.append(f"{row['english']!r}: notebook {row['notebook']!r} does not exist")
            continue
        if row["notebook"] not in cache:
            cache[row["notebook"]] = notebook_text(path).lower()
        if row["english"].lower() not in cache[row["notebook"]]:
            missing.append(f"{row['english']!r} does not appear in {row['notebook']}.ipynb")
    return missing


def render_html(frame: pd.DataFrame, group_by_chapter: bool = True) -> str:
    """The glossary as HTML: one table per chapter (terms A-Z), or one A-Z table.

    Columns: English, 中文, definition, notebook. Cells are HTML-escaped.
    """
    cols = {"english": "English", "chinese": "中文", "definition": "Definition", "notebook": "Notebook"}

    def table(part: pd.DataFrame) -> str:
        part = part.sort_values("english", key=lambda s: s.str.lower())[list(cols)].rename(columns=cols)
        return part.to_html(index=False, escape=True, border=0, classes="glossary", justify="left")

    if not group_by_chapter:
        return table(frame)
    blocks = []
    order = sorted(frame["notebook"].str[:2].unique())
    for prefix in order:
        part = frame[frame["notebook"].str[:2] == prefix]
        label = escape(_chapter_label(prefix + "x"))
        blocks.append(f"<h3>Chapter {label} ({len(part)} terms)</h3>\n{table(part)}")
    return "\n".join(blocks)
