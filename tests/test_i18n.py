"""The Chinese edition: every markdown cell has a current translation, drift is caught, and
the translated notebooks are the English ones with only the markdown swapped.

The translations live in i18n/zh/<notebook>.po (gettext PO, msgctxt = cell id); the tool is
scripts/i18n.py. When a test here fails after an English edit: `make i18n` (marks the changed
cells fuzzy, keeps their old English), translate or check them, remove the fuzzy flag.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import nbformat
import polib
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def load_i18n():
    spec = importlib.util.spec_from_file_location("course_i18n", ROOT / "scripts" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["course_i18n"] = module
    spec.loader.exec_module(module)
    return module


i18n = load_i18n()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_markdown_cell_has_a_current_chinese_translation(path: Path):
    problems = i18n.check([path])
    assert not problems, (f"{len(problems)} cell(s) of {path.name} lack a current Chinese translation "
                          "(run `make i18n`, then translate i18n/zh/" + f"{path.stem}.po):\n"
                          + "\n".join(map(str, problems[:20])))


def test_translations_use_chinese_and_keep_heading_levels():
    """Each translation is Chinese (not the English pasted back) and keeps the cell's heading
    structure, so the Chinese pages can keep the English pages' anchors."""
    cjk = 0
    for path in NOTEBOOKS:
        for entry in i18n.load_po(path.stem):
            if not entry.msgstr:
                continue
            english_headings = [line.split(" ")[0] for line in entry.msgid.splitlines() if line.startswith("#")]
            chinese_headings = [line.split(" ")[0] for line in entry.msgstr.splitlines() if line.startswith("#")]
            assert english_headings == chinese_headings, f"{path.stem} {entry.msgctxt}: headings differ"
            chars = sum("\u4e00" <= ch <= "\u9fff" for ch in entry.msgstr)
            assert chars > 0 or len(entry.msgid) < 40, f"{path.stem} {entry.msgctxt}: no Chinese in the translation"
            cjk += chars
    assert cjk > 10_000, cjk


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A notebook and its PO file copied into a temp folder that i18n reads and writes."""
    source = ROOT / "notebooks" / "06z_glossary.ipynb"
    (tmp_path / "notebooks").mkdir()
    nb_path = tmp_path / "notebooks" / source.name
    shutil.copy2(source, nb_path)
    (tmp_path / "i18n" / "zh").mkdir(parents=True)
    monkeypatch.setattr(i18n, "I18N", tmp_path / "i18n")
    monkeypatch.setattr(i18n, "NOTEBOOKS", tmp_path / "notebooks")
    return nb_path


def translate_all(stem: str) -> None:
    po = i18n.load_po(stem)
    for e in po:
        e.msgstr = "中文：" + e.msgid
    i18n.save_po(po, stem)


def add_translated_cell(nb_path: Path, english: str, chinese: str) -> str:
    """Append a markdown cell, translate every cell, give the new one `chinese`; its cell id."""
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(english))
    nbformat.write(nb, nb_path)
    i18n.update([nb_path])
    translate_all(nb_path.stem)
    po = i18n.load_po(nb_path.stem)
    po[-1].msgstr = chinese
    i18n.save_po(po, nb_path.stem)
    return po[-1].msgctxt


def test_update_creates_entries_then_marks_a_changed_cell_fuzzy_with_its_old_english(sandbox):
    report = i18n.update([sandbox])
    n = len(i18n.markdown_cells(sandbox))
    assert report[sandbox.stem]["untranslated"] == n > 0
    assert [p.kind for p in i18n.check([sandbox])] == ["untranslated"] * n
    translate_all(sandbox.stem)
    assert i18n.check([sandbox]) == []

    nb = nbformat.read(sandbox, as_version=4)
    markdown = [c for c in nb.cells if c.cell_type == "markdown"]
    old_english = markdown[1].source
    markdown[1].source = old_english + "\n\nA new sentence."
    new_cell = nbformat.v4.new_markdown_cell("## A new section")
    nb.cells.append(new_cell)
    deleted = markdown[2]
    nb.cells.remove(deleted)
    nbformat.write(nb, sandbox)

    problems = i18n.check([sandbox])  # before `update`: the changed cell is stale, the new one missing
    kinds = {(p.cell_id, p.kind) for p in problems}
    assert (markdown[1].id, "stale") in kinds and (new_cell.id, "untranslated") in kinds
    assert (deleted.id, "orphan") in kinds
    assert all(p.notebook == sandbox.name for p in problems)

    report = i18n.update([sandbox])
    assert report[sandbox.stem]["fuzzy"] == 1 and report[sandbox.stem]["untranslated"] == 1
    assert report[sandbox.stem]["dropped"] == 1
    po = polib.pofile(str(i18n.po_path(sandbox.stem)))
    changed = next(e for e in po if e.msgctxt == markdown[1].id)
    assert "fuzzy" in changed.flags and changed.previous_msgid == old_english
    assert changed.msgstr == "中文：" + old_english  # the old translation is kept for the translator
    assert {(p.cell_id, p.kind) for p in i18n.check([sandbox])} == {(markdown[1].id, "fuzzy"),
                                                                    (new_cell.id, "untranslated")}


def test_a_translation_that_loses_a_formula_or_a_link_target_is_reported(sandbox):
    add_translated_cell(sandbox, "See $x^2$ and [4.1](04a_train_a_cnn.ipynb).", "参见 $x^3$ 和 [4.1](04a.ipynb)。")
    problems = i18n.check([sandbox])
    assert [p.kind for p in problems] == ["markup", "markup"]
    assert "$x^2$" in problems[0].detail and "04a_train_a_cnn.ipynb" in problems[1].detail


def test_emphasis_that_would_not_render_in_chinese_is_reported():
    """CommonMark leaves `*提示：*随` as literal asterisks; `*提示*：随` is italic."""
    assert i18n.markup_differences("*Hint:* compare.", "*提示：*比较。")
    assert not i18n.markup_differences("*Hint:* compare.", "*提示*：比较。")
    assert not i18n.markup_differences("Use `a*b` and $x_1$.", "使用 `a*b` 和 $x_1$。")


def test_translate_swaps_only_current_markdown_and_keeps_code_and_outputs(sandbox):
    i18n.update([sandbox])
    translate_all(sandbox.stem)
    nb = nbformat.read(sandbox, as_version=4)
    zh, swapped = i18n.translate(nb, sandbox.stem)
    assert swapped == len(i18n.markdown_cells(sandbox))
    for a, b in zip(nb.cells, zh.cells):
        if a.cell_type == "markdown" and a.source.strip():
            assert b.source == "中文：" + a.source
        else:
            assert a == b  # code, outputs, execution counts: untouched
    assert zh.metadata["language"] == "zh-CN"
    # a fuzzy entry is not used: the English stays until the translation is checked
    po = i18n.load_po(sandbox.stem)
    po[0].flags = ["fuzzy"]
    i18n.save_po(po, sandbox.stem)
    zh, swapped_now = i18n.translate(nb, sandbox.stem)
    assert swapped_now == swapped - 1
    assert next(c for c in zh.cells if c.cell_type == "markdown").source == nb.cells[0].source


def test_terminology_check_names_a_glossary_term_missing_from_the_translation(sandbox):
    cell_id = add_translated_cell(sandbox, "Deep learning uses a convolutional neural network.", "深度学习使用一种网络。")
    problems = [p for p in i18n.terminology([sandbox]) if p.cell_id == cell_id]
    assert any("convolutional neural network" in p.detail for p in problems), problems
    assert not any("'deep learning'" in p.detail for p in problems)  # 深度学习 is there


def test_build_writes_the_chinese_notebooks_from_executed_ones(sandbox, tmp_path):
    i18n.update([sandbox])
    translate_all(sandbox.stem)
    written = i18n.build(sandbox.parent, tmp_path / "zh")
    assert [p.name for p in written] == [sandbox.name]
    zh = nbformat.read(written[0], as_version=4)
    assert zh.cells[0].source.startswith("中文：")


def test_the_command_line_update_and_check(sandbox, capsys):
    assert i18n.main(["update"]) == 0
    assert "cells need translating" in capsys.readouterr().out
    assert i18n.main(["check"]) == 1
    out = capsys.readouterr().out
    assert sandbox.name in out and "untranslated" in out
