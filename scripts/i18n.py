"""Translations of the course's markdown cells, kept in gettext PO files beside the notebooks.

One PO file per notebook and language, `i18n/<lang>/<notebook stem>.po`, one entry per markdown
cell: `msgctxt` is the cell's id, `msgid` its English source, `msgstr` the translation. It is the
workflow of Sphinx's and Jupyter Book's i18n (and of Poedit / Weblate): when an English cell
changes, `update` keeps its translation but marks it fuzzy and records the old English as
`#| msgid` (previous msgid), so a translator sees what changed.

    python scripts/i18n.py update            # sync the PO files with the notebooks; list what needs work
    python scripts/i18n.py check             # exit 1 if any cell lacks a current translation
    python scripts/i18n.py terms             # glossary terms whose Chinese is missing from a translation
    python scripts/i18n.py build --source build/executed --out build/zh
                                             # the Chinese notebooks: executed outputs, Chinese markdown

The notebooks are never rewritten: the Chinese edition is built from them plus the PO files.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import nbformat
import polib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
I18N = ROOT / "i18n"
LANGUAGES = {"zh": "zh_CN"}  # our code -> the PO `Language` header
GLOSSARY = ROOT / "helpers" / "glossary.csv"

__all__ = ["Problem", "check", "update", "build", "markdown_cells", "po_path", "terminology", "translate"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """A markdown cell whose translation is missing, fuzzy, stale or malformed."""

    notebook: str
    cell_id: str
    kind: str  # "untranslated", "fuzzy", "stale", "orphan", "markup"
    detail: str = ""

    def __str__(self) -> str:
        extra = f": {self.detail}" if self.detail else ""
        return f"{self.notebook} cell {self.cell_id}: {self.kind}{extra}"


def notebooks(names: Iterable[str] | None = None) -> list[Path]:
    """The course notebooks (all, or those whose stem or file name is in `names`)."""
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if names:
        wanted = {Path(n).stem for n in names}
        paths = [p for p in paths if p.stem in wanted]
        missing = wanted - {p.stem for p in paths}
        if missing:
            raise SystemExit(f"no such notebook in {NOTEBOOKS}: {', '.join(sorted(missing))}")
    return paths


def markdown_cells(path: Path) -> list[tuple[str, str]]:
    """(cell id, source) of every non-empty markdown cell, in order."""
    nb = nbformat.read(path, as_version=4)
    cells = [(c["id"], c["source"]) for c in nb.cells if c.cell_type == "markdown" and c["source"].strip()]
    ids = [i for i, _ in cells]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path.name}: duplicate markdown cell ids; give each cell its own id")
    return cells


def po_path(stem: str, lang: str = "zh") -> Path:
    return I18N / lang / f"{stem}.po"


def _new_po(stem: str, lang: str) -> polib.POFile:
    po = polib.POFile(wrapwidth=0)
    po.metadata = {
        "Project-Id-Version": f"image-recognition-course {stem}",
        "Language": LANGUAGES[lang],
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
    }
    po.header = (f"Chinese translation of notebooks/{stem}.ipynb: one entry per markdown cell, msgctxt = cell id.\n"
                 "Edit msgstr (Poedit, Weblate or a text editor); run `python scripts/i18n.py update` after the "
                 "English changes.")
    return po


def load_po(stem: str, lang: str = "zh") -> polib.POFile:
    path = po_path(stem, lang)
    if not path.exists():
        return _new_po(stem, lang)
    po = polib.pofile(str(path), wrapwidth=0)
    return po


def save_po(po: polib.POFile, stem: str, lang: str = "zh") -> Path:
    path = po_path(stem, lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    po.wrapwidth = 0  # one line per msgid/msgstr line: diffs stay readable
    po.save(str(path))
    return path


def update(paths: Iterable[Path], lang: str = "zh") -> dict[str, Counter]:
    """Sync each notebook's PO file with its markdown cells, like `msgmerge`.

    New cells get an empty entry; a cell whose English changed keeps its translation, flagged
    fuzzy, with the old English kept as the previous msgid; entries of deleted cells are dropped.
    Entries keep the notebook's cell order. Returns per notebook the count of each state.
    """
    report: dict[str, Counter] = {}
    for path in paths:
        old = {e.msgctxt: e for e in load_po(path.stem, lang)}
        po = _new_po(path.stem, lang)
        if po_path(path.stem, lang).exists():
            po.metadata = load_po(path.stem, lang).metadata
        counts: Counter = Counter()
        for n, (cell_id, source) in enumerate(markdown_cells(path)):
            entry = polib.POEntry(msgctxt=cell_id, msgid=source, msgstr="",
                                  occurrences=[(f"notebooks/{path.name}", str(n))])
            previous = old.get(cell_id)
            if previous is not None and previous.msgstr:
                entry.msgstr = previous.msgstr
                entry.tcomment = previous.tcomment
                if previous.msgid != source:
                    entry.flags = ["fuzzy"]
                    entry.previous_msgid = previous.previous_msgid or previous.msgid
                elif "fuzzy" in previous.flags:
                    entry.flags = ["fuzzy"]
                    entry.previous_msgid = previous.previous_msgid
            state = ("untranslated" if not entry.msgstr else "fuzzy" if "fuzzy" in entry.flags else "translated")
            counts[state] += 1
            po.append(entry)
        counts["dropped"] = len(set(old) - {e.msgctxt for e in po})
        save_po(po, path.stem, lang)
        report[path.stem] = counts
    return report


#: Markup a translation must carry over unchanged: display and inline maths, link targets,
#: image paths and HTML anchors (the text around them is translated, these are not).
_KEEP = [
    ("maths", re.compile(r"\$\$.+?\$\$|(?<![\\$])\$[^$\n]+?\$", re.S)),
    ("link target", re.compile(r"\]\(([^)\s]+)\)")),
]


def _unrendered_emphasis(text: str) -> int:
    """How many `*`/`_` are left as literal characters once the markdown is rendered.

    CommonMark does not close `*提示：*随` (a closing `*` after punctuation and before a letter is
    not right-flanking), so the asterisks show; `*提示*：随` renders. Code and maths are ignored.
    """
    import mistune

    text = re.sub(r"```.*?```|`[^`]*`|\$\$.+?\$\$|\$[^$\n]+\$|^(?: {4}|\t).*$", "", text, flags=re.S | re.M)
    rendered = re.sub(r"<[^>]+>", "", mistune.html(text))
    return rendered.count("*") + rendered.count("_")


def markup_differences(english: str, chinese: str) -> list[str]:
    """What the translation lost or added of the markup that must stay as it is (see `_KEEP`),
    and emphasis that no longer renders."""
    out = []
    for name, pattern in _KEEP:
        a, b = Counter(pattern.findall(english)), Counter(pattern.findall(chinese))
        if a != b:
            lost, added = list((a - b).elements()), list((b - a).elements())
            out.append(f"{name} differs (missing {lost[:3]}, extra {added[:3]})")
    if _unrendered_emphasis(chinese) > _unrendered_emphasis(english):
        out.append("emphasis does not render (write *提示*：, not *提示：*; **粗体**，not **粗体，**)")
    return out


def check(paths: Iterable[Path], lang: str = "zh") -> list[Problem]:
    """Every markdown cell with no current translation (or with broken markup), named."""
    problems = []
    for path in paths:
        if not po_path(path.stem, lang).exists():
            problems.append(Problem(path.name, "-", "untranslated", f"no {po_path(path.stem, lang).relative_to(ROOT)}"))
            continue
        entries = {e.msgctxt: e for e in load_po(path.stem, lang)}
        cells = markdown_cells(path)
        for cell_id, source in cells:
            e = entries.get(cell_id)
            if e is None or not e.msgstr.strip():
                problems.append(Problem(path.name, cell_id, "untranslated", source.splitlines()[0][:60]))
            elif e.msgid != source:
                problems.append(Problem(path.name, cell_id, "stale",
                                        "the English changed since it was translated: run `update`"))
            elif "fuzzy" in e.flags:
                problems.append(Problem(path.name, cell_id, "fuzzy", "check it against the new English, then "
                                        "remove the fuzzy flag"))
            else:
                problems += [Problem(path.name, cell_id, "markup", d) for d in markup_differences(source, e.msgstr)]
        for cell_id in set(entries) - {i for i, _ in cells}:
            problems.append(Problem(path.name, cell_id, "orphan", "no such markdown cell any more: run `update`"))
    return problems


def translate(nb: nbformat.NotebookNode, stem: str, lang: str = "zh") -> tuple[nbformat.NotebookNode, int]:
    """A copy of `nb` with each markdown cell's current translation swapped in (and how many)."""
    nb = nbformat.from_dict(nb)  # a deep copy
    entries = {e.msgctxt: e for e in load_po(stem, lang)} if po_path(stem, lang).exists() else {}
    swapped = 0
    for cell in nb.cells:
        e = entries.get(cell.get("id"))
        if cell.cell_type == "markdown" and e is not None and e.msgstr and e.msgid == cell.source \
                and "fuzzy" not in e.flags:
            cell.source = e.msgstr
            swapped += 1
    nb.metadata["language"] = LANGUAGES[lang].replace("_", "-")
    return nb, swapped


def build(source: Path, out: Path, lang: str = "zh") -> list[Path]:
    """Write the translated copy of every notebook in `source` (executed ones) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.glob("*.ipynb")):
        nb, _ = translate(nbformat.read(path, as_version=4), path.stem, lang)
        target = out / path.name
        nbformat.write(nb, target)
        written.append(target)
    return written


def glossary_terms() -> list[tuple[str, str]]:
    """(English, Chinese) of every glossary row: `helpers/glossary.csv` is the terminology authority."""
    import csv

    with open(GLOSSARY, newline="", encoding="utf-8") as f:
        return [(row["english"].strip(), row["chinese"].strip()) for row in csv.DictReader(f)]


def terminology(paths: Iterable[Path], lang: str = "zh") -> list[Problem]:
    """Glossary terms whose English is in a cell but whose Chinese is not in its translation."""
    terms = [(en, zh) for en, zh in glossary_terms() if len(en) > 3]
    problems = []
    for path in paths:
        if not po_path(path.stem, lang).exists():
            continue
        for e in load_po(path.stem, lang):
            if not e.msgstr:
                continue
            for en, zh in terms:
                variants = [v.strip() for v in re.split(r"[/、,，;；]", zh) if v.strip()]
                if re.search(rf"\b{re.escape(en)}\b", e.msgid, re.I) and not any(v in e.msgstr for v in variants):
                    problems.append(Problem(path.name, e.msgctxt, "term", f"{en!r} -> {zh!r}"))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["update", "check", "terms", "build"])
    parser.add_argument("notebooks", nargs="*", help="notebook stems (default: all)")
    parser.add_argument("--lang", default="zh", choices=sorted(LANGUAGES))
    parser.add_argument("--source", type=Path, default=NOTEBOOKS, help="build: the (executed) notebooks")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "zh", help="build: where to write")
    args = parser.parse_args(argv)
    paths = notebooks(args.notebooks)
    if args.command == "update":
        report = update(paths, args.lang)
        todo = 0
        for stem, c in report.items():
            todo += c["untranslated"] + c["fuzzy"]
            print(f"{stem:40s} translated {c['translated']:3d} · fuzzy {c['fuzzy']:3d} · "
                  f"untranslated {c['untranslated']:3d}" + (f" · dropped {c['dropped']}" if c["dropped"] else ""))
        print(f"{todo} cells need translating (untranslated or fuzzy) in i18n/{args.lang}/")
        return 0
    if args.command == "build":
        written = build(args.source, args.out, args.lang)
        print(f"wrote {len(written)} notebooks to {args.out}")
        return 0
    problems = check(paths, args.lang) if args.command == "check" else terminology(paths, args.lang)
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
