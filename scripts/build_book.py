"""Build the course book: an offline HTML site (build/html/, Chinese in build/html/zh/) and
A4 PDFs (build/course.pdf, build/course.zh.pdf).

    python scripts/build_book.py --html                     # build/executed/ -> build/html/ (+ zh/)
    python scripts/build_book.py --html --source notebooks  # from the committed notebooks
    python scripts/build_book.py --pdf                      # HTML, then build/course.pdf and course.zh.pdf

The Chinese edition is the same notebooks (same executed outputs) with each markdown cell's
translation from i18n/zh/<notebook>.po swapped in (scripts/i18n.py); its pages keep the
English pages' heading ids, and every page links to the same page in the other language.

The site: `index.html` (chapters in English and Chinese from `helpers.CHAPTERS`, each
notebook with a short description and the run time from `times.json`), one page per notebook
with its outputs, previous/next links and a sidebar with the book's contents and the page's
sections, `glossary.html` (from `helpers/glossary.csv`), and `course.html`: the whole course
on one page, which is what the PDF prints. It works offline from `file://`: nbconvert renders
only the cells (book/templates/book drops its <head>, which loads require.js, MathJax and
mermaid from CDNs); MathJax 2 comes from the installed `jupyter-server-mathjax` package and is
copied to `_static/mathjax/`; images are embedded by nbconvert; fonts are local (Chinese in
Noto Sans CJK SC from the `mplfonts` wheel, copied to `_static/fonts/` and loaded by @font-face).

Why the PDF is printed by headless Chromium (driven by Playwright) rather than LaTeX:
nbconvert's LaTeX route needs a TeX installation (texlive with xelatex and xeCJK, hundreds of
MB) and silently drops the Chinese glyphs when the CJK packages are missing; it also renders
outputs differently from the book. Printing the HTML book gives the PDF exactly what the
reader sees on screen: the same MathJax typesetting, embedded figures and CJK fonts, with only
`chromium` as a system package. Playwright (not `chromium --print-to-pdf`)
because the CLI prints on the load event, before MathJax has finished typesetting; with
Playwright we wait until MathJax's queue is done and every image is decoded, block every
non-`file://` request, and ask Chromium for A4, page numbers and PDF bookmarks (`outline`)
built from the headings. It drives the system Chromium (`/usr/bin/chromium` or `$CHROMIUM`);
no browser is downloaded.
"""

from __future__ import annotations

import argparse
import ast
import csv
import datetime as dt
import html
import importlib.util
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "executed"
HTML_DIR = ROOT / "build" / "html"
PDF_PATH = ROOT / "build" / "course.pdf"

#: The system Chromium that prints the PDF and runs the browser tests (never downloaded).
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
#: Flags for a quiet, offline headless Chromium in a container (no sandbox, no GPU, no
#: background traffic to Google services).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
]


# --------------------------------------------------------------------------- reading


def read_chapters() -> dict[str, tuple[str, str]]:
    """`helpers.CHAPTERS`, read from helpers/core.py without importing torch."""
    tree = ast.parse((ROOT / "helpers" / "core.py").read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "CHAPTERS" for t in targets) and node.value:
            return ast.literal_eval(node.value)
    import helpers  # fall back to the real thing

    return dict(helpers.CHAPTERS)


def read_glossary() -> list[dict[str, str]]:
    """The rows of helpers/glossary.csv (english, chinese, definition, notebook)."""
    path = ROOT / "helpers" / "glossary.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("english")]


def read_times(source: Path) -> tuple[dict[str, float], str]:
    """Run times (seconds per notebook file) from `source/times.json`, else build/executed/."""
    for path in (source / "times.json", EXECUTED / "times.json"):
        if path.exists():
            note = "" if path.parent == source else "times from the last course run"
            return json.loads(path.read_text(encoding="utf-8")), note
    return {}, "not timed yet: run `make course`"


def _strip_markdown(text: str) -> str:
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # images
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links -> their text
    text = re.sub(r"`([^`]*)`", r"\1", text)  # inline code -> its text
    text = re.sub(r"\*\*|\*|(?<!\w)__|__(?!\w)|(?<!\w)_(?=\S)|(?<=\S)_(?!\w)", "", text)  # emphasis
    return re.sub(r"\s+", " ", text).strip()


def _shorten(text: str, limit: int = 220) -> str:
    if len(text) <= limit:
        return text
    space = text.rfind(" ", 0, limit)
    cut = text[: space if space > limit // 2 else limit]  # Chinese has no spaces to cut at
    if cut.count("$") % 2:  # never cut a $formula$ in half
        cut = cut[: cut.rfind("$")]
    return cut.rstrip(" ,;:(") + " …"


def describe(first_markdown: str) -> str:
    """A one-line description from the title cell: its first paragraph, or its learning goals."""
    lines = first_markdown.splitlines()[1:]  # drop the title line
    paragraphs = re.split(r"\n\s*\n", "\n".join(lines).strip())
    for para in paragraphs:
        plain = _strip_markdown(para)
        if not plain or plain.lower().startswith(("prerequisite", "预备知识")):
            continue
        bullets = [_strip_markdown(b) for b in re.findall(r"^\s*[-*]\s+(.*)$", para, re.M)]
        if bullets:  # "**Learning goals** - a; - b" -> "a; b." (Chinese: "a；b。")
            chinese = bool(re.search(r"[\u4e00-\u9fff]", "".join(bullets)))
            sep, end = ("；", "。") if chinese else ("; ", ".")
            return _shorten(sep.join(b.rstrip(";.,；。，、 ") for b in bullets) + end)
        return _shorten(plain)
    return ""


@dataclass
class Notebook:
    """One notebook of the book, rendered."""

    path: Path
    stem: str
    chapter: str
    title: str
    short_title: str
    description: str
    body: str
    sections: list[dict] = field(default_factory=list)
    time_text: str = "not timed"
    prev: Notebook | None = None
    next: Notebook | None = None


_HEADING = re.compile(r'<h([1-4]) id="([^"]+)">(.*?)</h\1>', re.S)


def sections(body: str) -> list[dict]:
    """The h2/h3 headings of a rendered notebook: level, id and plain text."""
    out = []
    for level, ident, inner in _HEADING.findall(body):
        if level in ("2", "3"):
            text = re.sub(r"<a class=\"anchor-link\".*?</a>", "", inner, flags=re.S)
            text = html.unescape(re.sub(r"<[^>]+>", "", text)).strip()
            out.append({"level": int(level), "id": ident, "text": text})
    return out


def link_notebooks(body: str, stems: set[str], in_print: bool, stem: str = "") -> str:
    """Links to other notebooks point at their pages (or, on the print page, their sections).

    On the print page every id and in-page link of a notebook gets the notebook's stem as a
    prefix, so "Summary" in chapter 1 and "Summary" in chapter 2 stay distinct anchors.
    """
    def notebook_link(m: re.Match) -> str:
        name, anchor = Path(m.group(1)).stem, m.group(2) or ""
        if name not in stems:
            return m.group(0)
        if in_print:
            return f'href="#{name}--{anchor[1:]}"' if anchor else f'href="#nb-{name}"'
        return f'href="{name}.html{anchor}"'

    if in_print:  # first this notebook's own anchors, then links to the others
        body = re.sub(r'(\sid)="([^"]+)"', lambda m: f'{m.group(1)}="{stem}--{m.group(2)}"', body)
        body = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{stem}--{m.group(1)}"', body)
    return re.sub(r'href="(?!https?:|mailto:)([^"#]*?\.ipynb)(#[^"]*)?"', notebook_link, body)


def local_images(body: str, source: Path, out: Path) -> None:
    """Copy images that markdown cells reference by relative path next to the pages."""
    for src in set(re.findall(r'<img[^>]*\ssrc="([^"]+)"', body)):
        if re.match(r"^(data:|[a-z]+://)", src) or src.startswith("/"):
            continue
        for base in (source, NOTEBOOKS):
            file = (base / html.unescape(src)).resolve()
            if file.is_file() and ROOT in file.parents:
                (out / src).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, out / src)
                break


# --------------------------------------------------------------------------- building


def _exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="book", extra_template_basedirs=[str(BOOK / "templates")],
        exclude_anchor_links=False,
    )


def copy_static(out: Path, exporter, highlight_css: str) -> None:
    """JupyterLab's CSS, the pygments colours, the book's CSS and MathJax into out/_static/."""
    import jupyter_server_mathjax

    static = out / "_static"
    static.mkdir(parents=True, exist_ok=True)
    env = exporter.environment
    lab_css = "\n".join(
        env.loader.get_source(env, name)[0] for name in ("static/index.css", "static/theme-light.css")
    )
    (static / "jupyterlab.css").write_text(lab_css, encoding="utf-8")
    (static / "pygments.css").write_text(highlight_css, encoding="utf-8")
    shutil.copy2(BOOK / "book.css", static / "book.css")
    font = cjk_font_path()
    if font is None:
        raise SystemExit("the CJK font of the book is missing: pip install mplfonts (declared by the course)")
    (static / "fonts").mkdir(exist_ok=True)
    if not (static / "fonts" / font.name).exists():
        shutil.copy2(font, static / "fonts" / font.name)
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "mathjax" / "MathJax.js").exists():
        shutil.copytree(mathjax, static / "mathjax", dirs_exist_ok=True)


def default_source() -> Path:
    """build/executed/ when the course has run, else the committed notebooks (with outputs)."""
    if any(EXECUTED.glob("[0-9]*.ipynb")):
        return EXECUTED
    print("build/executed/ has no notebooks (run `make course`): using the committed notebooks/")
    return NOTEBOOKS


#: The book's languages: English is the source; each other one is built from i18n/<lang>/*.po
#: into out/<lang>/ (see scripts/i18n.py). The words of the page layout in each language.
UI = {
    "en": {"html_lang": "en", "contents": "Contents", "glossary": "Glossary", "terms": "terms",
           "switch": "中文", "switch_title": "这一页的中文版", "pager": "Previous and next",
           "built": "built", "subtitle": "A runnable course in Jupyter notebooks",
           "not_timed": "not timed", "time_title": "wall time of the last run",
           "intro": "A runnable course: every page below is a Jupyter notebook, shown with the outputs it "
                    "printed when it last ran from top to bottom. Run time is the wall time of that run",
           "th": ["English", "中文", "Definition", "Explained in"]},
    "zh": {"html_lang": "zh-Hans", "contents": "目录", "glossary": "术语表", "terms": "个术语",
           "switch": "English", "switch_title": "This page in English", "pager": "上一节与下一节",
           "built": "构建于", "subtitle": "一门可以运行的 Jupyter 笔记本课程",
           "not_timed": "未计时", "time_title": "上次运行的墙钟时间",
           "intro": "一门可以运行的课程：下面每一页都是一个 Jupyter 笔记本，连同它上次从头到尾运行时打印的输出一起展示。"
                    "运行时间是那次运行的墙钟时间",
           "th": ["English", "中文", "Definition（英文）", "讲解位置"]},
}
TIMES_NOTE_ZH = {"times from the last course run": "时间取自上次完整运行课程",
                 "not timed yet: run `make course`": "尚未计时：请运行 `make course`"}
BOOK_TITLE = {"en": "Deep learning for image recognition · 深度学习在图像识别中的应用",
              "zh": "深度学习在图像识别中的应用 · Deep learning for image recognition"}


def _i18n():
    """scripts/i18n.py as a module (scripts/ is not a package)."""
    if "course_i18n" in sys.modules:
        return sys.modules["course_i18n"]
    spec = importlib.util.spec_from_file_location("course_i18n", ROOT / "scripts" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["course_i18n"] = module  # dataclasses look their module up while it is executed
    spec.loader.exec_module(module)
    return module


_ANY_HEADING = re.compile(r'<h([1-6]) id="([^"]+)"')


def align_ids(body: str, english_body: str) -> str:
    """Give a translated page the English page's heading ids (matched by position), so links
    to `notebook.ipynb#english-heading` work in every language; unchanged if the headings differ."""
    ours, theirs = _ANY_HEADING.findall(body), _ANY_HEADING.findall(english_body)
    if [lvl for lvl, _ in ours] != [lvl for lvl, _ in theirs]:
        return body
    mapping = {a: b for (_, a), (_, b) in zip(ours, theirs) if a != b}
    if not mapping:
        return body
    pattern = re.compile(r'(\sid="|href="#)(' + "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True))
                         + r')"')
    return pattern.sub(lambda m: f'{m.group(1)}{mapping[m.group(2)]}"', body)


def render(paths: list[Path], exporter, times: dict, lang: str = "en", english: list[Notebook] | None = None,
           ) -> tuple[list[Notebook], str]:
    """Each notebook rendered to HTML (translated first when `lang` is not English)."""
    import nbformat

    i18n = _i18n() if lang != "en" else None
    notebooks: list[Notebook] = []
    highlight_css = ""
    for n, path in enumerate(paths):
        nb = nbformat.read(path, as_version=4)
        if i18n is not None:
            nb, _ = i18n.translate(nb, path.stem, lang)
        body, resources = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
        if english is not None:
            body = align_ids(body, english[n].body)
        highlight_css = highlight_css or "\n".join(resources.get("inlining", {}).get("css", []))
        first_md = next((c.source for c in nb.cells if c.cell_type == "markdown"), path.stem)
        title = first_md.splitlines()[0].lstrip("# ").strip() if first_md.strip() else path.stem
        seconds = times.get(path.name)
        notebooks.append(Notebook(
            path=path, stem=path.stem, chapter=path.stem[:2], title=title,
            short_title=re.split(r"\s*·\s*", title)[0], description=describe(first_md), body=body,
            sections=sections(body),
            time_text=f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else UI[lang]["not_timed"],
        ))
    for a, b in zip(notebooks, notebooks[1:]):
        a.next, b.prev = b, a
    return notebooks, highlight_css


def write_site(notebooks: list[Notebook], out: Path, lang: str, times_note: str) -> None:
    """index, glossary, one page per notebook and the print page (course.html) into `out`."""
    import jinja2

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("[0-9]*.html"):  # pages of notebooks that are gone
        old.unlink()
    chapters_def = read_chapters()
    stems = {nb.stem for nb in notebooks}
    chapters = []
    for key in sorted({nb.chapter for nb in notebooks}):
        english, chinese = chapters_def.get(key, (f"Chapter {key}", ""))
        number = str(int(key)) if key.isdigit() else key
        chapters.append({"key": key, "number": number, "english": english, "chinese": chinese,
                         "notebooks": [nb for nb in notebooks if nb.chapter == key]})
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(BOOK)), autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=False, lstrip_blocks=False,
    )
    page = env.get_template("page.html.j2")
    glossary = read_glossary()
    other = "zh" if lang == "en" else "en"
    if lang == "zh":
        times_note = TIMES_NOTE_ZH.get(times_note, times_note)
    common = {"chapters": chapters, "glossary": glossary, "stems": stems, "times_note": times_note,
              "titles": {nb.stem: nb.short_title for nb in notebooks}, "lang": lang, "T": UI[lang],
              "static": "_static" if lang == "en" else "../_static",
              # the same page in the other language: zh/ sits inside the English folder
              "switch_to": "zh/" if other == "zh" else "../"}

    def write(name: str, **context) -> None:
        text = page.render(**common, page_name=name, **context).lstrip()
        (out / name).write_text(text, encoding="utf-8")

    book_title = BOOK_TITLE[lang]
    for nb in notebooks:
        body = nb.body
        nb.body = _markup(link_notebooks(body, stems, in_print=False))
        write(f"{nb.stem}.html", kind="notebook", current=nb, math=True,
              page_title=f"{nb.short_title} · {book_title}")
        nb.body = body
    write("index.html", kind="index", current=None, math=True, page_title=book_title)
    write("glossary.html", kind="glossary", current=None, math=False,
          page_title=f"{UI[lang]['glossary']} · {book_title}")
    bodies = [nb.body for nb in notebooks]
    for nb in notebooks:
        nb.body = _markup(link_notebooks(nb.body, stems, in_print=True, stem=nb.stem))
    write("course.html", kind="course", current=None, math=True, page_title=book_title,
          build_date=dt.date.today().isoformat())
    for nb, body in zip(notebooks, bodies):  # the page bodies again (the other language aligns to them)
        nb.body = body


def build_html(source: Path | None = None, out: Path = HTML_DIR, languages: tuple[str, ...] = ("en", "zh")) -> Path:
    """Render every notebook in `source` to the book in `out` (English) and `out/zh/` (Chinese,
    the same notebooks with the translations of i18n/zh/ swapped in); returns index.html."""
    start = time.perf_counter()
    if "jsonschema" not in sys.modules:
        # nbformat imports jsonschema, which builds ~40 lark parsers at import when the optional
        # rfc3987_syntax package is installed (~3 s of CPU, for an IRI format that notebooks never
        # use); without it jsonschema simply skips that format check.
        sys.modules.setdefault("rfc3987_syntax", None)

    source = Path(source) if source else default_source()
    paths = sorted(source.glob("[0-9]*.ipynb"))
    if not paths:
        raise SystemExit(f"no notebooks (NN_name.ipynb) in {source}")
    times, times_note = read_times(source)
    exporter = _exporter()
    english, highlight_css = render(paths, exporter, times, "en")
    write_site(english, out, "en", times_note)
    for lang in languages:
        if lang != "en":
            translated, _ = render(paths, exporter, times, lang, english=english)
            write_site(translated, out / lang, lang, times_note)
    for nb in english:
        for folder in [out] + [out / lang for lang in languages if lang != "en"]:
            local_images(nb.body, source, folder)
    copy_static(out, exporter, highlight_css)
    seconds = time.perf_counter() - start
    print(f"HTML book: {_rel(out / 'index.html')} ({len(english)} notebooks from "
          f"{_rel(source)}/, languages {', '.join(languages)}, {seconds:.1f} s)")
    return out / "index.html"


def _markup(text: str):
    from markupsafe import Markup

    return Markup(text)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- PDF


def launch_chromium(playwright, env: dict[str, str] | None = None):
    """Playwright's Chromium driver on the system Chromium, headless, with offline flags
    (`env`: the browser's environment, e.g. a FONTCONFIG_FILE that hides the system fonts)."""
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} not found: install Chromium (Debian: apt-get install chromium) "
                         "or point $CHROMIUM at it")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, env=env)


def block_network(page) -> list[str]:
    """Abort every request that is not file:// (or data:); returns the list of those aborted."""
    blocked: list[str] = []

    def handle(route):
        url = route.request.url
        if url.startswith(("file://", "data:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", handle)
    return blocked


def wait_until_rendered(page, timeout_ms: int = 180_000) -> None:
    """Wait until MathJax has typeset the page (if it has math) and every image is decoded."""
    page.wait_for_function(
        "() => !window.MathJax || document.documentElement.dataset.mathjax === 'done'",
        timeout=timeout_ms, polling=250,
    )
    page.wait_for_function(
        "() => Array.from(document.images).every(img => img.complete)", timeout=timeout_ms,
    )


def cjk_font_path() -> Path | None:
    """Noto Sans CJK SC from the `mplfonts` wheel: the one Chinese font of figures, HTML and PDF.

    The book's CSS loads it with @font-face from _static/fonts/, so pages and PDF need no
    system font package. Found without importing mplfonts (its import reconfigures matplotlib).
    """
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "fonts" / "NotoSansCJKsc-Regular.otf"
    return path if path.is_file() else None


def _cjk_font_file() -> tuple[str, int] | None:
    """The file and collection index of the Simplified Chinese font the book uses."""
    path = cjk_font_path()
    return (str(path), 0) if path else None


def radical_map() -> dict[int, int]:
    """CJK radical code point -> the ordinary ideograph drawn with the same glyph.

    Noto Sans CJK draws 用 (U+7528) and the Kangxi radical ⽤ (U+2F64) with one glyph, and
    Chromium's PDF writer labels a shared glyph with the lowest code point: the PDF then
    says 应⽤ and 常⻅ instead of 应用 and 常见, so copying and searching fail. Kangxi
    radicals decompose to their ideograph under NFKC; the CJK Radicals Supplement has no
    decomposition, so we ask the font which ideograph shares the glyph.
    """
    import unicodedata

    out = {}
    for cp in range(0x2F00, 0x2FE0):
        normal = unicodedata.normalize("NFKC", chr(cp))
        if len(normal) == 1 and normal != chr(cp):
            out[cp] = ord(normal)
    font_file = _cjk_font_file()
    if font_file:
        try:
            from fontTools.ttLib import TTFont

            cmap = TTFont(font_file[0], fontNumber=font_file[1], lazy=True).getBestCmap()
            ideograph = {}
            for cp, glyph in sorted(cmap.items()):
                if 0x4E00 <= cp <= 0x9FFF:
                    ideograph.setdefault(glyph, cp)
            out.update({cp: ideograph[cmap[cp]] for cp in range(0x2E80, 0x2F00)
                        if cmap.get(cp) in ideograph})
        except Exception as error:  # the fix is a nicety: never fail the build on it
            print(f"note: could not read {font_file[0]} ({error}); CJK radicals left as they are")
    return out


def _fix_cmap(text: str, mapping: dict[int, int]) -> str:
    """Rewrite the Unicode side of a ToUnicode CMap through `mapping` (code point -> code point)."""
    def dst(hexstr: str) -> str:
        try:
            chars = bytes.fromhex(hexstr).decode("utf-16-be")
        except ValueError:
            return hexstr
        fixed = "".join(chr(mapping.get(ord(c), ord(c))) for c in chars)
        return fixed.encode("utf-16-be").hex().upper() if fixed != chars else hexstr

    def bfchar(block: re.Match) -> str:
        return re.sub(r"(<[0-9A-Fa-f]+>\s*)<([0-9A-Fa-f]+)>",
                      lambda m: f"{m.group(1)}<{dst(m.group(2))}>", block.group(0))

    def bfrange(block: re.Match) -> str:
        def line(m: re.Match) -> str:
            lo, hi, array, first = m.group(1), m.group(2), m.group(3), m.group(4)
            if array is not None:  # <lo> <hi> [<u1> <u2> ...]: fix each entry
                fixed = re.sub(r"<([0-9A-Fa-f]+)>", lambda d: f"<{dst(d.group(1))}>", array)
                return f"<{lo}> <{hi}> [{fixed}]"
            count, start = int(hi, 16) - int(lo, 16) + 1, int(first, 16)
            if len(first) > 4 or not any(start + i in mapping for i in range(count)):
                return m.group(0)
            # <lo> <hi> <start> covers a radical: spell the range out as an array
            entries = " ".join(f"<{dst(f'{start + i:04X}')}>" for i in range(count))
            return f"<{lo}> <{hi}> [{entries}]"

        return re.sub(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(?:\[([^\]]*)\]|<([0-9A-Fa-f]+)>)",
                      line, block.group(0))

    text = re.sub(r"beginbfchar.*?endbfchar", bfchar, text, flags=re.S)
    return re.sub(r"beginbfrange.*?endbfrange", bfrange, text, flags=re.S)


def fix_cjk_text(pdf_path: Path) -> int:
    """Make the PDF's text layer say 用/见 where Chromium wrote radicals (and a space where it
    wrote U+0001); returns the number of CMaps fixed.

    The fixed ToUnicode streams are appended as an incremental update (new objects, an xref
    section and a trailer pointing back at the original one), so the rest of the file, its
    bookmarks and tags included, is left byte for byte as Chromium wrote it.
    """
    from pypdf import PdfReader

    # Chromium writes the space of a web font's subset (the book's @font-face CJK font) as U+0001
    mapping = {**radical_map(), 0x0001: 0x0020}
    raw = pdf_path.read_bytes()
    if not raw.rstrip().endswith(b"%%EOF") or b"\nxref\n" not in raw:
        return 0  # not the classic-xref file Chromium writes: leave it alone
    reader = PdfReader(str(pdf_path))
    fixed: dict[tuple[int, int], bytes] = {}
    seen: set[tuple[int, int]] = set()
    for page in reader.pages:
        fonts = page.get("/Resources", {}).get("/Font", {}) or {}
        for font in fonts.values():
            font = font.get_object()
            ref = font.raw_get("/ToUnicode") if "/ToUnicode" in font else None
            if ref is None or not hasattr(ref, "idnum") or (ref.idnum, ref.generation) in seen:
                continue
            seen.add((ref.idnum, ref.generation))
            text = ref.get_object().get_data().decode("latin-1")
            new = _fix_cmap(text, mapping)
            if new != text:
                fixed[(ref.idnum, ref.generation)] = new.encode("latin-1")
    if not fixed:
        return 0
    prev = int(re.findall(rb"startxref\s+(\d+)", raw)[-1])
    out = bytearray(raw if raw.endswith(b"\n") else raw + b"\n")
    offsets = {}
    for (num, gen), data in sorted(fixed.items()):
        offsets[num] = (len(out), gen)
        out += b"%d %d obj\n<< /Length %d >>\nstream\n" % (num, gen, len(data)) + data + b"\nendstream\nendobj\n"
    xref = len(out)
    out += b"xref\n"
    for num, (offset, gen) in sorted(offsets.items()):
        out += b"%d 1\n%010d %05d n \n" % (num, offset, gen)
    trailer = reader.trailer
    extra = b""
    for key in ("/Root", "/Info"):
        if key in trailer:
            value = trailer.raw_get(key)
            extra += b" %s %d %d R" % (key.encode(), value.idnum, value.generation)
    if "/ID" in trailer:
        ids = trailer["/ID"]
        extra += b" /ID [<%s> <%s>]" % tuple(
            (getattr(i, "original_bytes", None) or bytes(i)).hex().encode() for i in ids)
    out += b"trailer\n<< /Size %d /Prev %d%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        int(trailer["/Size"]), prev, extra, xref)
    pdf_path.write_bytes(bytes(out))
    return len(fixed)


def zh_pdf_path(pdf_path: Path) -> Path:
    """Where the Chinese PDF goes: build/course.pdf -> build/course.zh.pdf."""
    return pdf_path.with_name(f"{pdf_path.stem}.zh{pdf_path.suffix}")


def build_pdf(html_dir: Path = HTML_DIR, pdf_path: Path = PDF_PATH) -> Path:
    """Print html_dir/course.html with headless Chromium to an A4 PDF with bookmarks."""
    from playwright.sync_api import sync_playwright

    start = time.perf_counter()
    course = html_dir / "course.html"
    if not course.exists():
        raise SystemExit(f"{course} is missing: build the HTML first (--html)")
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    footer = ('<div style="font-size:8px;width:100%;text-align:center;color:#666;'
              'font-family:DejaVu Sans,sans-serif"><span class="pageNumber"></span> / '
              '<span class="totalPages"></span></div>')
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            blocked = block_network(page)
            page.goto(course.resolve().as_uri(), wait_until="load", timeout=120_000)
            wait_until_rendered(page)
            page.emulate_media(media="print")
            page.pdf(
                path=str(pdf_path), format="A4", print_background=True, outline=True, tagged=True,
                display_header_footer=True, header_template="<span></span>", footer_template=footer,
                margin={"top": "16mm", "bottom": "18mm", "left": "14mm", "right": "14mm"},
            )
        finally:
            browser.close()
    if blocked:
        raise SystemExit("the book asked for non-local resources: " + ", ".join(sorted(set(blocked))))
    fix_cjk_text(pdf_path)
    from pypdf import PdfReader

    pages = len(PdfReader(str(pdf_path)).pages)
    print(f"PDF: {_rel(pdf_path)} ({pages} A4 pages, {pdf_path.stat().st_size / 1e6:.1f} MB, "
          f"{time.perf_counter() - start:.1f} s)")
    return pdf_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--html", action="store_true", help="build the HTML book (the default)")
    parser.add_argument("--pdf", action="store_true", help="build the HTML book, then print it to the PDF")
    parser.add_argument("--source", type=Path, default=None,
                        help="folder of notebooks with outputs (default: build/executed/, "
                             "else notebooks/)")
    parser.add_argument("--out", type=Path, default=HTML_DIR, help="HTML folder (default: build/html/)")
    parser.add_argument("--pdf-path", type=Path, default=PDF_PATH,
                        help="PDF file (default: build/course.pdf)")
    args = parser.parse_args(argv)
    if args.source is not None and not args.source.is_dir():
        parser.error(f"--source {args.source}: not a folder")
    build_html(args.source, args.out)
    if args.pdf:
        build_pdf(args.out, args.pdf_path)
        build_pdf(args.out / "zh", zh_pdf_path(args.pdf_path))  # the Chinese edition beside it


if __name__ == "__main__":
    sys.exit(main())
