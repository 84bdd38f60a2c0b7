"""The bilingual glossary: well-formed, every term in the notebook it points to, rendered."""

from __future__ import annotations

import pytest

from helpers import glossary


@pytest.fixture(scope="module")
def frame():
    return glossary.load()


def test_has_the_four_columns_and_at_least_60_terms(frame):
    assert list(frame.columns[:4]) == list(glossary.COLUMNS)
    assert len(frame) >= 60, f"only {len(frame)} glossary terms; the course promises at least 60"


def test_every_row_is_well_formed(frame):
    problems = glossary.validate(frame)
    assert not problems, "\n".join(problems)


def test_every_term_appears_in_the_notebook_it_points_to(frame):
    missing = glossary.missing_mentions(frame)
    assert not missing, "\n".join(missing)


def test_every_chapter_is_labelled(frame):
    assert "?" not in set(frame["chapter"]), frame.loc[frame["chapter"] == "?", "notebook"].tolist()


def _write(tmp_path, rows: str):
    path = tmp_path / "g.csv"
    path.write_text("english,chinese,definition,notebook\n" + rows, encoding="utf-8")
    return path


def test_validate_names_each_problem(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    (nbs / "01_x.ipynb").write_text('{"cells": [{"cell_type": "markdown", "source": ["A Pixel here"]}]}')
    path = _write(tmp_path, 'pixel,像素,"one sample",01_x\n'
                            'Pixel,像素,"again",01_x\n'
                            'tensor,,"empty chinese",01_x\n'
                            'kernel,kernel,"no Chinese",01_x\n'
                            'stride,步幅,"missing notebook",09_nowhere\n')
    problems = glossary.validate(glossary.load(path), nbs)
    text = "\n".join(problems)
    assert "duplicate English term 'pixel' on lines 2, 3" in text
    assert "line 4 (tensor): empty column(s) chinese" in text
    assert "chinese='kernel' has no Chinese characters" in text
    assert "notebook '09_nowhere' does not exist" in text
    assert len(problems) == 4
    missing = glossary.missing_mentions(glossary.load(path), nbs)
    assert "'pixel'" not in " ".join(missing)  # case-insensitive match in markdown
    assert any("'kernel' does not appear in 01_x.ipynb" in m for m in missing)


def test_a_wrong_header_is_refused(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("term,zh,definition,notebook\nx,像,y,01_background\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected \\['english', 'chinese', 'definition', 'notebook'\\]"):
        glossary.load(path)


def test_render_groups_by_chapter_and_escapes(tmp_path, frame):
    html = glossary.render_html(frame)
    assert html.count("<table") == frame["notebook"].str[:2].nunique()
    assert "中文" in html and "Chapter 1 Background · 背景介绍" in html
    path = _write(tmp_path, 'a<b,甲,"x & y",01_background\n')
    small = glossary.render_html(glossary.load(path), group_by_chapter=False)
    assert "a&lt;b" in small and "x &amp; y" in small and small.count("<table") == 1
