"""Frame-number parsing, sheet reading, AU parsing and the annotation-fix table."""

from __future__ import annotations

from pathlib import Path

import pytest

from mestudio.errors import DatasetError
from mestudio.training.datasets import FIXES, get_dataset, parse_action_units
from mestudio.training.datasets.fixes import FixTarget, apply_fixes
from mestudio.training.datasets.frames import (
    format_ranges,
    frame_number,
    list_frames,
    normalized_name,
)
from mestudio.training.datasets.sheets import (
    cell_id,
    cell_int,
    cell_text,
    find_header,
    read_csv,
    read_sheet,
)


@pytest.mark.parametrize("name, number", [
    ("img46.jpg", 46),
    ("reg_img46.jpg", 46),
    ("006_05562.jpg", 5562),
    ("006_5562.jpg", 5562),
    ("EP01_5-012.jpg", 12),
    ("reg_EP01_5-7.jpg", 7),
    ("image036237.bmp", 36237),
    ("img001.jpg", 1),
    ("12.jpg", 12),
    ("cover.jpg", None),
])
def test_frame_number_is_the_last_digit_run(name, number):
    assert frame_number(name) == number


def test_frames_sorted_numerically_and_junk_ignored(tmp_path: Path):
    for name in ["img10.jpg", "img2.jpg", "img1.jpg", "._img3.jpg", "Thumbs.db", "notes.txt",
                 "img3.JPG"]:
        (tmp_path / name).write_bytes(b"x")
    frames = list_frames(tmp_path)
    assert [n for n, _ in frames] == [1, 2, 3, 10]
    assert [p.name for _, p in frames] == ["img1.jpg", "img2.jpg", "img3.JPG", "img10.jpg"]
    assert list_frames(tmp_path / "missing") == []


def test_name_normalization_and_ranges():
    assert normalized_name("EP02_01f") == "ep2_1f"
    assert normalized_name("s01_ne_01") == normalized_name("s1_ne_01")
    assert format_ranges([97, 98, 99, 100, 105]) == "97-100, 105"


def test_cells_keep_ids_as_strings():
    assert cell_id("006") == "006"
    assert cell_id("01") == "01"
    assert cell_id(6.0, width=3) == "006"       # a number cell lost its padding
    assert cell_id(1, width=2) == "01"
    assert cell_text(46.0) == "46"
    assert cell_int("46") == 46 and cell_int(46.0) == 46
    for missing in ("/", "\\", "-", "", None, "n/a"):
        assert cell_int(missing) is None


def test_action_units_with_or_and_slash():
    assert parse_action_units("R12 + R15 or R14") == ("AU12", "AU14", "AU15")
    assert parse_action_units("1+2/43") == ("AU1", "AU2", "AU43")
    assert parse_action_units("R14A") == ("AU14",)
    assert parse_action_units("") == ()


def test_csv_with_crlf_and_empty_rows(tmp_path: Path):
    path = tmp_path / "gt.csv"
    path.write_bytes(b"casme2,sub01,EP02_01f,1\r\n\r\nsmic,s01,s01_ne_01,0\r\n\r\n")
    sheet = read_csv(path)
    assert sheet.rows[0] == ["casme2", "sub01", "EP02_01f", "1"]
    assert sheet.rows[1] == []
    assert sheet.rows[2][2] == "s01_ne_01"
    assert len(sheet.rows) == 3


def test_broken_and_wrong_sheets_raise_dataset_error(tmp_path: Path):
    import openpyxl

    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="cannot read annotation sheet"):
        read_sheet(broken)
    html = tmp_path / "download.xlsx"
    html.write_text("<html>login required</html>")
    with pytest.raises(DatasetError, match="not a readable"):
        read_sheet(html)

    wb = openpyxl.Workbook()
    wb.active.title = "Data"
    wb.create_sheet("Other")
    wb.active.append(["Subject", "Filename", "OnsetFrame"])
    path = tmp_path / "two.xlsx"
    wb.save(path)
    with pytest.raises(DatasetError, match="no sheet 'MICRO_ONLY'.*'Data', 'Other'"):
        read_sheet(path, "MICRO_ONLY")
    sheet = read_sheet(path, "data")  # case-insensitive
    with pytest.raises(DatasetError, match="lacks column\\(s\\) 'OffsetFrame'"):
        find_header(sheet, {"subject": ("Subject",), "onset": ("OnsetFrame",),
                            "offset": ("OffsetFrame",)})


def test_fix_table_is_documented_data():
    ids = [f.id for f in FIXES]
    assert len(ids) == len(set(ids))
    for fix in FIXES:
        assert fix.field in ("onset", "apex", "offset")
        assert len(fix.reason) > 20, fix.id


def test_specific_fix_only_replaces_the_official_value():
    target = FixTarget(onset=73, apex=94, offset=110, texts={}, derived=set())
    applied = apply_fixes("casme2", "16/EP01_08", "cropped", target)
    assert target.offset == 96 and [a.fix_id for a in applied] == ["casme2-cropped-16/EP01_08-offset"]
    corrected = FixTarget(onset=73, apex=94, offset=96, texts={}, derived=set())
    assert apply_fixes("casme2", "16/EP01_08", "cropped", corrected) == []
    raw = FixTarget(onset=73, apex=94, offset=110, texts={}, derived=set())
    assert apply_fixes("casme2", "16/EP01_08", "raw", raw) == [] and raw.offset == 110


def test_unknown_dataset_and_mapping_are_user_errors():
    with pytest.raises(DatasetError, match="unknown dataset 'casme9'.*casme2"):
        get_dataset("casme9")  # casme3 is CAS(ME)^3 part A (long videos)
    assert get_dataset("CAS(ME)^2").name == "casme_sq"
    assert get_dataset("CASME-II").name == "casme2"
    assert get_dataset("smic-hs").name == "smic"
    with pytest.raises(DatasetError, match="no '5class' class mapping"):
        get_dataset("smic").classes("5class")
    with pytest.raises(DatasetError, match="no layout 'selected'"):
        get_dataset("samm", layout="selected")
