"""CASME II: both sheet versions, the three frame layouts, quirks, class mappings."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from mestudio.errors import DatasetError
from mestudio.training.datasets import get_dataset
from training.fixtures import build_casme2


@pytest.fixture(scope="module")
def raw_release(tmp_path_factory):
    return build_casme2(tmp_path_factory.mktemp("casme2_raw"))


def by_key(samples):
    return {(s.subject, s.filename): s for s in samples}


def test_raw_layout_loads_every_row_with_frames(raw_release):
    ds = get_dataset("casme2")
    report = ds.check(raw_release.root)
    assert report.layout == "raw"
    assert report.rows == raw_release.expected["rows"] == 11
    assert len(report.samples) == raw_release.expected["samples"] == 10
    assert list(report.subjects()) == raw_release.expected["subjects"]
    s = by_key(report.samples)[("01", "EP02_01f")]
    assert (s.onset, s.apex, s.offset) == (46, 59, 86)
    assert s.frames == list(range(46, 87))
    assert s.frame_paths[0].name == "img46.jpg" and s.frame_paths[-1].name == "img86.jpg"
    assert s.fps == 200.0 and s.aus == "12" and s.label == "happiness"
    assert s.id == "casme2/01/EP02_01f" and s.fold == "casme2/01"
    assert s.extra["objective_class"] == "1"
    # The RAW folder holds context frames for clip models.
    whole = [n for n, _ in s.folder_frames()]
    assert whole[0] == 44 and whole[-1] == 88
    assert [p.name for p in s.keyframe_paths] == ["img46.jpg", "img59.jpg", "img86.jpg"]


def test_frames_sorted_by_number_not_lexically(raw_release):
    s = by_key(get_dataset("casme2").load(raw_release.root))[("01", "EP03_02")]
    names = [p.name for p in s.frame_paths]
    assert names.index("img2.jpg") < names.index("img10.jpg")
    assert s.frames == sorted(s.frames)


def test_quirks_are_handled_and_reported(raw_release):
    report = get_dataset("casme2").check(raw_release.root)
    samples = by_key(report.samples)
    slash = samples[("04", "EP12_01f")]
    assert slash.apex == 291 and slash.apex_estimated and slash.annotated_apex is None
    assert any("apex-missing" in f for f in slash.fixes)
    at_onset = samples[("05", "EP09_05f")]
    assert at_onset.apex == 24 and at_onset.annotated_apex == 20 and at_onset.apex_estimated
    for irregular in ("EP09f", "EP01_2", "EP06_02_01"):
        assert any(s.filename == irregular for s in report.samples)
    assert not samples[("01", "EP02_01f")].apex_estimated
    kinds = report.issue_counts()
    assert kinds == {"row without folder": 1, "folder without row": 1}
    text = report.to_text()
    assert "sub10/EP13_01 not found" in text and "sub10/EP99_99" in text
    assert {f.fix_id for f in report.fixes} == {"apex-missing", "apex-at-onset"}


def test_class_mappings(raw_release):
    ds = get_dataset("casme2")
    native = ds.load(raw_release.root)
    five = ds.load(raw_release.root, mapping="5class")
    three = ds.load(raw_release.root, mapping="3class")
    assert len(native) == 10
    assert {s.native_label for s in native} - {s.label for s in five} == {"fear", "sadness"}
    assert len(five) == 8 and set(ds.classes("5class")) >= {s.label for s in five}
    assert ds.classes("3class") == ("negative", "positive", "surprise")
    counts = {c: sum(s.label == c for s in three) for c in ds.classes("3class")}
    assert counts == {"negative": 5, "positive": 1, "surprise": 1}  # disgust 3 + repression 2
    assert all(s.native_label in ("disgust", "repression") for s in three if s.label == "negative")


def test_2014_sheet_and_cropped_layout(tmp_path: Path):
    release = build_casme2(tmp_path, version="2014", layout="cropped")
    report = get_dataset("casme2").check(release.root)
    assert report.layout == "cropped"
    assert "2014" in report.info["sheet version"]
    subjects = {s.subject for s in report.samples}
    assert "01" in subjects and "1" not in subjects  # numbers in the sheet -> 2 digits
    s = by_key(report.samples)[("16", "EP01_08")]
    assert (s.onset, s.apex, s.offset) == (73, 94, 96)
    assert s.frame_paths[0].name == "reg_img73.jpg" and s.frames[-1] == 96
    assert any(f.fix_id == "casme2-cropped-16/EP01_08-offset" for f in report.fixes)
    assert report.issue_counts().get("missing frames", 0) == 0


def test_missing_frames_are_reported_not_fatal(tmp_path: Path):
    release = build_casme2(tmp_path, layout="selected")
    folder = release.root / "CASME2_RAW_selected" / "sub01" / "EP02_01f"
    for n in (46, 50, 51, 86):
        (folder / f"img{n}.jpg").unlink()
    report = get_dataset("casme2").check(release.root)
    s = by_key(report.samples)[("01", "EP02_01f")]
    assert (s.onset, s.offset) == (47, 85)
    assert 50 not in s.frames and len(s.frames) == 37
    assert any("46, 50-51, 86" in i.message for i in report.issues if i.kind == "missing frames")
    # Folder present but empty: reported, sample left out.
    for p in (release.root / "CASME2_RAW_selected" / "sub02" / "EP09f").iterdir():
        p.unlink()
    report = get_dataset("casme2").check(release.root)
    assert ("02", "EP09f") not in by_key(report.samples)
    assert any("holds no frame image" in i.message for i in report.issues)


def test_layout_choice_and_errors(tmp_path: Path):
    release = build_casme2(tmp_path, layout="selected")
    build_casme2(tmp_path, layout="cropped")  # both layouts, same sheet
    auto = get_dataset("casme2").check(release.root)
    assert auto.layout == "selected" and auto.other_layouts == ["cropped"]
    assert get_dataset("casme2", layout="cropped").check(release.root).layout == "cropped"
    with pytest.raises(DatasetError, match="no raw frame folder"):
        get_dataset("casme2", layout="raw").check(release.root)


def test_broken_sheet_is_a_clear_error(tmp_path: Path):
    release = build_casme2(tmp_path, layout="selected")
    wb = openpyxl.load_workbook(release.sheet)
    ws = wb["Sheet1"]
    ws.delete_cols(6)  # OffsetFrame
    wb.save(release.sheet)
    with pytest.raises(DatasetError, match="lacks column\\(s\\) 'OffsetFrame'"):
        get_dataset("casme2").check(release.root)
    release.sheet.write_bytes(b"\x00garbage")
    with pytest.raises(DatasetError, match="not a readable"):
        get_dataset("casme2").load(release.root)
    with pytest.raises(DatasetError, match="no CASME II coding sheet"):
        get_dataset("casme2").check(tmp_path / "CASME2_RAW_selected")
    with pytest.raises(DatasetError, match="is not a folder"):
        get_dataset("casme2").check(tmp_path / "nowhere")


def test_bad_rows_unexpected_labels_and_duplicates(tmp_path: Path):
    from training.fixtures import CodedRow, casme2_quirky_rows

    rows = casme2_quirky_rows()[:3] + [
        CodedRow("01", "EP19_01", "abc", 5, 9, "4", "disgust", frames=range(5, 10)),  # not a number
        CodedRow("01", "EP19_02", 20, 15, 10, "4", "disgust", frames=range(10, 21)),  # reversed
        CodedRow("02", "EP19_03", 1, 2, 3, "4", ""),                 # no label
        CodedRow("02", "EP19_04", 1, 2, 4, "4", "contempt"),         # not a CASME II class
        CodedRow("01", "EP02_01f", 46, 59, 86, "12", "happiness"),   # coded twice
    ]
    release = build_casme2(tmp_path, layout="selected", rows=rows, quirks=False)
    report = get_dataset("casme2").check(release.root)
    kinds = report.issue_counts()
    assert kinds["bad row"] == 3 and kinds["unexpected label"] == 1 and kinds["duplicate"] == 1
    text = report.to_text()
    assert "onset 'abc' is not a frame number" in text
    assert "offset 10 before onset 20" in text and "no emotion label" in text
    ids = [s.id for s in report.samples]
    assert len(ids) == len(set(ids)) == 5
    assert report.class_counts("native")["contempt"] == 1
    assert "contempt" not in {s.native_label for s in get_dataset("casme2").load(
        release.root, mapping="5class")}
