"""Spreadsheet cells (issue 22, item 4): formula triggers after leading spaces or in
full-width forms are neutralised, control characters never reach a CSV or xlsx cell."""

from __future__ import annotations

import csv

import pytest

from mestudio.csvio import append_xlsx_row, clean_text, is_formula_like, safe_text


@pytest.mark.parametrize("text", [
    '=HYPERLINK("http://x")', ' =1+1', '\u00a0=1+1', '\u3000=cmd', '\uff1d1+1', '\uff0bcmd',
    '  @SUM(A1)', '-2+3', '+cmd|x', '\t=1', '\r=1'])
def test_formula_like_text_is_quoted(text):
    out = safe_text(text)
    assert out.startswith("'") and is_formula_like(clean_text(text))


@pytest.mark.parametrize("text", ["-0.25", "1e-3", " 42 ", "smile", "AU4+AU7", "", " "])
def test_plain_text_and_numbers_are_unchanged(text):
    assert safe_text(text) == text


def test_control_characters_are_removed():
    assert clean_text("a\x00b\x1b[2Jc\u0085d") == "ab[2Jcd"
    assert clean_text("line\nbreak\ttab") == "line break tab"
    assert safe_text("\x00=1") == "'=1"


def test_nul_in_an_annotation_exports_to_xlsx_and_csv(tmp_path):
    from openpyxl import Workbook, load_workbook

    from mestudio.annotations import AnnotationDocument
    from mestudio.types import SpotEvent

    ev = SpotEvent(onset=1, apex=2, offset=3, onset_s=0.04, apex_s=0.08, offset_s=0.12,
                   kind="micro", roi="", peak=1.0)
    doc = AnnotationDocument([ev], fps=25.0, filename="clip.mp4")
    a = doc.annotations[0]
    doc.set_label(a.id, "hap\x00py")
    doc.set_aus(doc.annotations[0].id, "\u00a0=AU4\x00")
    xlsx, csv_path = tmp_path / "c.xlsx", tmp_path / "c.csv"
    doc.export_xlsx(xlsx)
    doc.export_csv(csv_path)
    ws = load_workbook(xlsx).active
    values = [c.value for c in ws[2]]
    assert "happy" in values and not any("\x00" in str(v) for v in values)
    rows = list(csv.reader(csv_path.open(encoding="utf-8")))
    assert "happy" in rows[1] and "'=AU4" in rows[1]
    ws2 = Workbook().active
    append_xlsx_row(ws2, ["x\x07y", 3])
    assert [c.value for c in ws2[1]] == ["xy", 3]
