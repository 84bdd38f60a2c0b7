"""The HTML book and the PDF, built from the committed notebooks (they carry the outputs of a
clean run, so CI does not execute every notebook again for the book).

Browser tests (`-m browser`) open the pages in headless Chromium through Playwright, driving
the system Chromium (`/usr/bin/chromium`); they skip when it is absent locally and fail in CI.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import nbformat
import pytest

# builds the whole book / starts a server: part of `make test`, not of the fast suite
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build_book.py"
#: The notebooks the book is built from: the committed ones (COURSE_BOOK_SOURCE overrides).
SOURCE = Path(os.environ.get("COURSE_BOOK_SOURCE", ROOT / "notebooks"))
CJK = re.compile(r"[\u4e00-\u9fff]")
CJK_FONTS = re.compile(r"CJK|Source Han|PingFang|YaHei|Noto Sans SC|Hiragino Sans GB", re.I)
#: TeX commands whose rendered symbol we look for in the PDF (after NFKC, which maps the
#: mathematical italic letters MathJax uses back to plain ones).
TEX_SYMBOLS = {
    r"\sum": "∑", r"\prod": "∏", r"\in": "∈", r"\times": "×", r"\partial": "∂", r"\nabla": "∇",
    r"\infty": "∞", r"\leq": "≤", r"\geq": "≥", r"\le": "≤", r"\ge": "≥", r"\approx": "≈",
    r"\alpha": "α", r"\beta": "β", r"\gamma": "γ", r"\delta": "δ", r"\epsilon": "ϵ",
    r"\eta": "η", r"\theta": "θ", r"\lambda": "λ", r"\mu": "μ", r"\sigma": "σ", r"\pi": "π",
    r"\odot": "⊙", r"\mathbb{R}": "R",
}


def load_build_book():
    """scripts/build_book.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("build_book", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_book"] = module
    spec.loader.exec_module(module)
    return module


bb = load_build_book()


def flat(text: str) -> str:
    """NFKC (Kangxi radicals and math italics -> ordinary characters), no whitespace."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def markdown_of(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def has_math(path: Path) -> bool:
    """Whether a notebook's markdown holds TeX ($$...$$, $...$, \\(...\\), \\[...\\])."""
    text = re.sub(r"```.*?```|`[^`]*`", "", markdown_of(path), flags=re.S)
    return bool(re.search(r"\$\$.+?\$\$|(?<![\\$])\$[^$\n]+\$|\\\(|\\\[", text, re.S))


def chapters_present(notebooks: list[Path]) -> dict[str, tuple[str, str]]:
    chapters = bb.read_chapters()
    return {nb.stem[:2]: chapters[nb.stem[:2]] for nb in notebooks if nb.stem[:2] in chapters}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> tuple[Path, list[dict[str, str]]]:
    """A copy of the notebooks and the glossary rows as they are now (others may be editing)."""
    folder = tmp_path_factory.mktemp("notebooks")
    for path in SOURCE.glob("[0-9]*.ipynb"):
        shutil.copy2(path, folder / path.name)
    if not any(folder.glob("*.ipynb")):
        pytest.fail(f"no notebooks in {SOURCE}")
    return folder, bb.read_glossary()


@pytest.fixture(scope="module")
def notebooks(snapshot) -> list[Path]:
    return sorted(snapshot[0].glob("[0-9]*.ipynb"))


@pytest.fixture(scope="module")
def book(snapshot, tmp_path_factory) -> Path:
    """The HTML book from the committed notebooks, built by the command line in a temp dir."""
    source = snapshot[0]
    out = tmp_path_factory.mktemp("book") / "html"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--html", "--source", str(source), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"HTML book built in {time.perf_counter() - start:.1f} s: {result.stdout.strip()}")
    return out


def require_chromium() -> None:
    """Skip (locally) or fail (in CI) when the system Chromium is missing."""
    if not Path(bb.CHROMIUM).exists():
        message = f"{bb.CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# --------------------------------------------------------------------------- no browser needed


def test_describe_uses_the_learning_goals():
    first = ("# 1 Title · Background · 背景介绍\n\n**Learning goals**\n- see *images*,\n"
             "- call `scaled_dot_product_attention`;\n- train a [model](x.ipynb).\n\n**Prerequisites**: none.")
    assert bb.describe(first) == "see images; call scaled_dot_product_attention; train a model."
    assert bb.describe("# T\n\nA plain paragraph about `code` and __bold__.") == "A plain paragraph about code and bold."
    assert bb.describe("# T\n\n" + "word " * 100).endswith(" …")


def test_links_between_notebooks_become_pages_or_anchors():
    body = '<a href="02a_x.ipynb#Top">x</a> <a href="99_gone.ipynb">y</a> <h2 id="Summary">S</h2><a href="#Summary">s</a>'
    page = bb.link_notebooks(body, {"02a_x", "01_a"}, in_print=False)
    assert 'href="02a_x.html#Top"' in page and 'href="99_gone.ipynb"' in page
    printed = bb.link_notebooks(body, {"02a_x", "01_a"}, in_print=True, stem="01_a")
    assert 'href="#02a_x--Top"' in printed and 'id="01_a--Summary"' in printed
    assert 'href="#01_a--Summary"' in printed


def test_index_lists_chapters_notebooks_descriptions_and_times(book, notebooks):
    index = html.unescape((book / "index.html").read_text(encoding="utf-8"))
    for english, chinese in chapters_present(notebooks).values():
        assert english in index and chinese in index
    for path in notebooks:
        assert (book / f"{path.stem}.html").is_file()
        item = re.search(rf'<li class="book-index-notebook">\s*<a href="{re.escape(path.stem)}\.html">'
                         r"(.*?)</li>", index, re.S)
        assert item, f"{path.stem} is not in the index"
        assert re.search(r'book-time[^>]*>(\d+\.\d s|not timed)<', item.group(1))
        assert 'class="book-description"' in item.group(1), f"{path.stem}: no description"
    assert (book / "glossary.html").is_file() and (book / "course.html").is_file()


def test_pages_have_previous_next_and_contents(book, notebooks):
    stems = [p.stem for p in notebooks]
    for i, stem in enumerate(stems):
        page = (book / f"{stem}.html").read_text(encoding="utf-8")
        pager = re.search(r'<nav class="book-pager".*?</nav>', page, re.S).group(0)
        prev = f"{stems[i - 1]}.html" if i else "index.html"
        nxt = f"{stems[i + 1]}.html" if i + 1 < len(stems) else "glossary.html"
        assert f'href="{prev}" rel="prev"' in pager and f'href="{nxt}" rel="next"' in pager
        ids = set(re.findall(r'\sid="([^"]+)"', page))
        toc = re.search(r'<ol class="book-sections">(.*?)</ol>', page, re.S)
        anchors = re.findall(r'href="#([^"]+)"', toc.group(1)) if toc else []
        assert anchors, f"{stem}: no table of contents"
        assert set(anchors) <= ids, f"{stem}: contents links to missing sections"


def zh_title(stem: str) -> str | None:
    """The translated title of a notebook (its first PO entry's first line), if translated."""
    import polib

    po_file = ROOT / "i18n" / "zh" / f"{stem}.po"
    if not po_file.exists():
        return None
    entries = [e for e in polib.pofile(str(po_file)) if e.msgstr and "fuzzy" not in e.flags]
    return entries[0].msgstr.splitlines()[0].lstrip("# ").strip() if entries else None


def test_chinese_pages_mirror_the_english_ones_with_a_language_switch(book, notebooks):
    """zh/ has the same pages, in Chinese, each linking to the same page in English and back;
    a Chinese page keeps the English page's heading ids, so links to sections work in both."""
    zh = book / "zh"
    for name in ["index.html", "glossary.html"] + [f"{p.stem}.html" for p in notebooks]:
        english, chinese = (book / name).read_text(encoding="utf-8"), (zh / name).read_text(encoding="utf-8")
        assert f'class="book-lang-switch" href="zh/{name}"' in english, name
        assert f'class="book-lang-switch" href="../{name}"' in chinese, name
        assert '<html lang="zh-Hans">' in chinese and '<html lang="en">' in english
        assert 'href="../_static/book.css"' in chinese
        if name[0].isdigit():
            title = zh_title(name[:-5])
            assert title and html.escape(title, quote=False) in chinese, f"{name}: Chinese title missing"
            ids = re.findall(r'<h[1-6] id="([^"]+)"', english)
            assert re.findall(r'<h[1-6] id="([^"]+)"', chinese) == ids, f"{name}: heading ids differ"
    assert (zh / "course.html").is_file()


def test_the_book_brings_its_own_chinese_font(book):
    """The CJK font is a file of the book (from the mplfonts wheel), loaded by @font-face."""
    css = (book / "_static" / "book.css").read_text(encoding="utf-8")
    face = re.search(r'@font-face\s*{[^}]*font-family:\s*"Noto Sans CJK SC"[^}]*url\("([^"]+)"\)', css)
    assert face, "no @font-face for the CJK font in book.css"
    font = book / "_static" / face.group(1)
    assert font.is_file() and font.stat().st_size > 1_000_000 and font.read_bytes()[:4] == b"OTTO"


def test_book_references_nothing_online(book):
    """No CDN: every script, stylesheet and image the pages load is a relative local file."""
    for page in book.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        loads = re.findall(r'<(?:script|img|link|iframe|source)\b[^>]*\s(?:src|href)="([^"]+)"', text)
        loads = [u for u in loads if not u.startswith("data:")]
        assert loads, page.name
        for url in loads:
            assert not re.match(r"^[a-z]+:|^//", url), f"{page.name} loads {url}"
            assert (book / url.split("?")[0]).is_file(), f"{page.name}: {url} is missing"
        assert "require.js" not in text and "cdnjs" not in text


# --------------------------------------------------------------------------- in Chromium


def _fonts_used(page, selector: str) -> list[dict]:
    """Chromium's platform fonts (family, glyph count) for the first element matching selector."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    assert node, f"no element {selector}"
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return fonts


def platform_fonts(page, selector: str) -> list[str]:
    """Font families Chromium really used for the text of the first element matching selector."""
    return [f["familyName"] for f in _fonts_used(page, selector) if f["glyphCount"] > 0]


def cjk_glyphs(page, selector: str) -> int:
    """How many glyphs of the first `selector` element Chromium drew with a CJK font."""
    return sum(f["glyphCount"] for f in _fonts_used(page, selector) if CJK_FONTS.search(f["familyName"]))


CHECK_PAGE = """() => {
  const text = (sel) => { const root = document.querySelector(sel).cloneNode(true);
    root.querySelectorAll('pre, code, script, .jp-InputArea-editor').forEach(e => e.remove());
    return root.textContent; };
  return {
    mathjax: window.MathJax ? document.documentElement.dataset.mathjax || 'pending' : 'absent',
    typeset: document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_SVG').length,
    mathErrors: document.querySelectorAll('.MathJax_Error, [class*=noError], merror').length,
    rawDisplayMath: text('main').includes('$$'),
    images: Array.from(document.images).map(i => ({src: i.src.slice(0, 60), w: i.naturalWidth, ok: i.complete})),
    cjk: (document.body.innerText.match(/[\\u4e00-\\u9fff]/g) || []).length,
    cjkWidth: Array.from(document.querySelectorAll('[lang=zh-Hans]')).map(e => e.getBoundingClientRect().width),
  };
}"""


@pytest.mark.browser
def test_pages_render_offline_in_chromium(book, notebooks, tmp_path):
    """Every page from file://: nothing but local files requested, none failed, MathJax done,
    images decoded, Chinese drawn in a CJK font. Screenshots go to tmp_path."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    pages = ["index.html", "glossary.html"] + [f"{p.stem}.html" for p in notebooks]
    with sync_playwright() as p:
        browser = bb.launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests, failed, errors = [], [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            blocked = bb.block_network(page)
            for name in pages:
                for log in (requests, failed, errors):
                    log.clear()
                page.goto((book / name).as_uri(), wait_until="load")
                bb.wait_until_rendered(page, timeout_ms=120_000)
                state = page.evaluate(CHECK_PAGE)
                page.screenshot(path=str(tmp_path / name.replace(".html", ".png")))
                external = [u for u in requests if not u.startswith(("file://", "data:"))]
                assert not external and not blocked, f"{name}: external requests {external or blocked}"
                assert not failed, f"{name}: failed requests {failed}"
                assert not errors, f"{name}: console errors {errors}"
                assert all(i["ok"] and i["w"] > 0 for i in state["images"]), f"{name}: {state['images']}"
                assert state["cjk"] > 0 and state["cjkWidth"] and min(state["cjkWidth"]) > 0, name
                fonts = platform_fonts(page, "[lang=zh-Hans]")
                assert any(CJK_FONTS.search(f) for f in fonts), f"{name}: Chinese drawn with {fonts}"
                assert not state["rawDisplayMath"], f"{name}: raw $$ left in the text"
                if name.startswith(tuple("0123456789")):
                    assert state["mathjax"] == "done", f"{name}: MathJax {state['mathjax']}"
                    assert state["mathErrors"] == 0, f"{name}: {state['mathErrors']} TeX errors"
                    if has_math(notebooks[0].parent / name.replace(".html", ".ipynb")):
                        assert state["typeset"] > 0, f"{name}: formulas in the notebook, none typeset"
                    title = page.locator("main h1").first
                    if CJK.search(title.inner_text()):  # Chinese inside English text: fallback font
                        fonts = platform_fonts(page, ".book-notebook h1")
                        assert any(CJK_FONTS.search(f) for f in fonts), f"{name}: h1 drawn with {fonts}"
        finally:
            browser.close()
    shots = sorted(tmp_path.glob("*.png"))
    assert len(shots) == len(pages) and all(s.stat().st_size > 10_000 for s in shots)


@pytest.mark.browser
def test_chinese_page_renders_and_the_language_switch_goes_both_ways(book, notebooks, tmp_path):
    """A zh/ page with formulas: MathJax typeset, Chinese drawn with the book's own font, no
    request leaves file://; the switch leads to the English page and back."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with_math = [p for p in notebooks if has_math(p)]
    name = f"{(with_math or notebooks)[0].stem}.html"
    # the browser sees no system CJK font (only DejaVu): the book's own font must carry the Chinese
    conf = tmp_path / "fonts.conf"
    conf.write_text('<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>'
                    f"<dir>/usr/share/fonts/truetype/dejavu</dir><cachedir>{tmp_path}/fc</cachedir></fontconfig>")
    with sync_playwright() as p:
        browser = bb.launch_chromium(p, env={**os.environ, "FONTCONFIG_FILE": str(conf)})
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            blocked = bb.block_network(page)
            page.goto((book / "zh" / name).as_uri(), wait_until="load")
            bb.wait_until_rendered(page)
            state = page.evaluate(CHECK_PAGE)
            page.screenshot(path=str(tmp_path / "zh.png"))
            assert state["mathjax"] == "done" and state["mathErrors"] == 0
            if with_math:
                assert state["typeset"] > 0
            assert state["cjk"] > 500, "the Chinese page has little Chinese text"
            for selector in (".book-notebook h1", ".book-notebook strong", ".book-sections a", ".book-pager a"):
                text = page.locator(selector).first.inner_text()
                glyphs = cjk_glyphs(page, selector)
                assert glyphs >= len(CJK.findall(text)) > 0, f"{selector}: {text!r} has boxes, not Chinese"
            page.click("a.book-lang-switch")
            page.wait_for_load_state("load")
            assert page.url.endswith(f"/{book.name}/{name}"), page.url
            assert page.evaluate("document.documentElement.lang") == "en"
            page.click("a.book-lang-switch")
            page.wait_for_load_state("load")
            assert page.url.endswith(f"/zh/{name}") and page.evaluate("document.documentElement.lang") == "zh-Hans"
            external = [u for u in requests if not u.startswith(("file://", "data:"))]
            assert not external and not blocked, external or blocked
        finally:
            browser.close()


# --------------------------------------------------------------------------- the PDF


@pytest.fixture(scope="module")
def pdf(book, tmp_path_factory) -> Path:
    require_chromium()
    path = tmp_path_factory.mktemp("pdf") / "course.pdf"
    start = time.perf_counter()
    bb.build_pdf(book, path)
    print(f"PDF printed in {time.perf_counter() - start:.1f} s")
    return path


@pytest.fixture(scope="module")
def zh_pdf(book, tmp_path_factory) -> Path:
    require_chromium()
    path = bb.zh_pdf_path(tmp_path_factory.mktemp("pdf") / "course.pdf")
    bb.build_pdf(book / "zh", path)
    return path


@pytest.mark.browser
def test_chinese_pdf_has_the_translated_titles_as_real_text(zh_pdf, notebooks):
    from pypdf import PdfReader

    reader = PdfReader(str(zh_pdf))
    text = "".join(page.extract_text() or "" for page in reader.pages)
    assert len(reader.pages) >= len(notebooks) + 3
    for path in notebooks:
        title = zh_title(path.stem)
        if title:
            assert flat(re.split(r"\s*·\s*", title)[0]) in flat(text), title
    assert not re.findall(r"[\u2e80-\u2fdf]", text), "CJK radicals instead of ideographs"
    assert "\ufffd" not in text


@pytest.fixture(scope="module")
def pdf_text(pdf) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(str(pdf)).pages]


@pytest.mark.browser
def test_pdf_is_a4_with_bookmarks_and_one_page_per_notebook_at_least(pdf, notebooks):
    from pypdf import PdfReader

    reader = PdfReader(str(pdf))
    assert len(reader.pages) >= len(notebooks) + 3  # cover, contents, notebooks, glossary
    width, height = float(reader.pages[0].mediabox.width), float(reader.pages[0].mediabox.height)
    assert abs(width - 595.3) < 2 and abs(height - 841.9) < 2, (width, height)  # A4 in points

    def titles(outline) -> list[str]:
        out = []
        for item in outline:
            out += titles(item) if isinstance(item, list) else [item.title]
        return out

    bookmarks = flat(" ".join(titles(reader.outline)))
    for english, chinese in chapters_present(notebooks).values():
        assert flat(english) in bookmarks and flat(chinese) in bookmarks


@pytest.mark.browser
def test_pdf_text_has_every_title_in_english_and_chinese_and_the_glossary(pdf_text, notebooks, snapshot):
    text = flat("".join(pdf_text))
    for english, chinese in chapters_present(notebooks).values():
        assert flat(english) in text, english
        assert flat(chinese) in text, chinese
    for path in notebooks:
        title = markdown_of(path).splitlines()[0].lstrip("# ").split(" · ")[0]
        assert flat(title) in text, title
    for row in snapshot[1]:
        assert flat(row["chinese"]) in text, row
    assert "\ufffd" not in "".join(pdf_text), "replacement characters (missing glyphs) in the PDF"


@pytest.mark.browser
def test_pdf_text_layer_has_real_chinese_and_no_fallback_fonts(pdf, pdf_text):
    """Chinese is real text (searchable, copyable: 应用, not the radical look-alike 应⽤), and no
    glyph came from a last-resort font (the boxes drawn for missing glyphs)."""
    from pypdf import PdfReader

    fonts = set()
    for page in PdfReader(str(pdf)).pages:
        for font in (page.get("/Resources", {}).get("/Font", {}) or {}).values():
            font = font.get_object()
            fonts.add(str(font.get("/BaseFont", font.get("/Subtype"))))
    assert not any("LastResort" in f or "Fallback" in f for f in fonts), fonts
    text = "".join(pdf_text)
    assert CJK.search(text)
    radicals = sorted(set(re.findall(r"[\u2e80-\u2fdf]", text)))
    assert not radicals, f"CJK radicals instead of ideographs in the PDF text: {radicals}"
    assert "\x01" not in text, "a space written as U+0001 (the web font's subset) is left in the text"


def test_radical_fix_rewrites_only_the_unicode_side():
    mapping = {0x2F64: 0x7528, 0x2EC5: 0x89C1}
    cmap = ("1 beginbfchar\n<2F64> <2F64>\nendbfchar\n"
            "2 beginbfrange\n<10> <11> <2EC4>\n<20> <21> [<2F64> <0041>]\nendbfrange")
    fixed = bb._fix_cmap(cmap, mapping)
    assert "<2F64> <7528>" in fixed  # the glyph code stays, the text becomes 用
    assert "<10> <11> [<2EC4> <89C1>]" in fixed and "[<7528> <0041>]" in fixed
    assert bb._fix_cmap("1 beginbfchar\n<01> <0041>\nendbfchar", mapping).endswith("<0041>\nendbfchar")
    assert chr(bb.radical_map()[0x2F64]) == "用"


@pytest.mark.browser
def test_pdf_shows_the_formulas_symbols(pdf_text, notebooks):
    expected = set()
    for path in notebooks:
        for formula in re.findall(r"\$\$(.+?)\$\$", markdown_of(path), re.S):
            for command, symbol in TEX_SYMBOLS.items():
                if re.search(re.escape(command) + r"(?![a-zA-Z])", formula):
                    expected.add(symbol)
    if not expected:
        pytest.skip("no notebook has a display formula with a symbol this test knows")
    text = flat("".join(pdf_text))
    missing = {s for s in expected if flat(s) not in text}
    assert not missing, f"formula symbols missing from the PDF text: {missing}"
