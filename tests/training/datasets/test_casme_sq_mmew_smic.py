"""CAS(ME)^2 (no header, naming rules), MMEW (two arrangements) and SMIC (label = folder)."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from mestudio.errors import DatasetError
from mestudio.training.datasets import CasmeSq, get_dataset
from training.fixtures import build_casme_sq, build_mmew, build_smic


@pytest.fixture(scope="module")
def casme_sq(tmp_path_factory):
    return build_casme_sq(tmp_path_factory.mktemp("casme_sq"))


def test_casme_sq_micro_rows_and_naming_rules(casme_sq):
    report = get_dataset("casme_sq").check(casme_sq.root)
    assert report.rows == 7 and len(report.samples) == 5
    assert report.skipped == {"macro-expression rows (not used for recognition)": 2}
    assert list(report.subjects()) == casme_sq.expected["subjects"] == ["s15", "s16", "s19"]
    samples = {(s.subject, s.filename): s for s in report.samples}
    s = samples[("s15", "disgust1_1")]
    assert s.folder is not None and s.folder.name == "15_0101disgustingteeth"  # code 101 -> 0101
    assert s.frame_paths[0].name == "img005.jpg" and s.frames == list(range(5, 13))
    assert samples[("s16", "happy1_1")].folder.name == "16_0502funnyerrors"
    assert len(s.folder_frames()) == 40  # the whole long video
    assert s.kind == "micro" and s.extra["sheet_subject"] == "1"


def test_casme_sq_offset_zero_uses_apex(casme_sq):
    samples = {(s.subject, s.filename): s for s in get_dataset("casme_sq").load(casme_sq.root)}
    s = samples[("s15", "anger1_1")]
    assert (s.onset, s.apex, s.offset) == (20, 25, 25)
    assert not s.apex_estimated  # the apex is coded; only the offset is derived
    assert any("casme_sq-offset-unknown" in f for f in s.fixes)


def test_casme_sq_mappings_and_macro(casme_sq):
    ds = get_dataset("casme_sq")
    three = ds.load(casme_sq.root, mapping="3class")
    assert len(three) == 4 and {s.label for s in three} == {"negative", "positive", "surprise"}
    with pytest.raises(DatasetError, match="no '5class'"):
        ds.load(casme_sq.root, mapping="5class")
    both = CasmeSq(kinds=("micro", "macro")).load(casme_sq.root)
    assert sorted(s.kind for s in both).count("macro") == 2


def test_casme_sq_missing_naming_sheet(tmp_path: Path):
    release = build_casme_sq(tmp_path, n_frames=15)
    wb = openpyxl.load_workbook(release.sheet)
    del wb["naming rule2"]
    wb.save(release.sheet)
    with pytest.raises(DatasetError, match="no sheet 'naming rule2'"):
        get_dataset("casme_sq").check(release.root)


def test_casme_sq_alternative_code_sheet_name(tmp_path: Path):
    release = build_casme_sq(tmp_path, n_frames=40, code_sheet="CASMEcode_final")
    assert len(get_dataset("casme_sq").load(release.root)) == 5


@pytest.mark.parametrize("arrangement, others", [("emotion", "others"),
                                                 ("emotion", "repression"),
                                                 ("subject", "others")])
def test_mmew_both_arrangements(tmp_path: Path, arrangement, others):
    release = build_mmew(tmp_path, arrangement=arrangement, others_folder=others)
    report = get_dataset("mmew").check(release.root)
    assert len(report.samples) == 6 and report.fps == 90.0
    assert report.info["folder arrangement"] == f"{arrangement}-first"
    samples = {s.filename: s for s in report.samples}
    other = samples["S02-07-002"]
    assert other.native_label == "others"
    # frame files 1..7 mapped onto the coded 20..26
    assert other.frames == list(range(20, 27)) and other.frame_paths[0].name == "1.jpg"
    assert report.issue_counts().get("label mismatch", 0) == 0
    if others == "repression":
        assert any("'repression' read as 'others'" in n for n in other.notes)
    assert {s.subject for s in report.samples} == {"S01", "S02", "S03"}
    three = get_dataset("mmew").load(release.root, mapping="3class")
    assert {s.filename for s in three if s.label == "negative"} == {"S01-02-001", "S03-04-001",
                                                                   "S03-05-001"}


def test_mmew_label_mismatch_reported(tmp_path: Path):
    release = build_mmew(tmp_path)
    (release.root / "Micro_Expression" / "happiness" / "S01-01-001").rename(
        release.root / "Micro_Expression" / "surprise" / "S01-01-001")
    report = get_dataset("mmew").check(release.root)
    assert any(i.kind == "label mismatch" and "S01-01-001" in i.message for i in report.issues)
    assert {s.filename: s.label for s in report.samples}["S01-01-001"] == "happiness"


def test_smic_hs_label_from_folder_apex_middle(tmp_path: Path):
    release = build_smic(tmp_path, variants=("HS", "VIS"))
    report = get_dataset("smic").check(release.root)
    assert report.title == "SMIC-HS" and report.fps == 100.0
    assert len(report.samples) == 5 and list(report.subjects()) == ["s1", "s2", "s3"]
    samples = {s.filename: s for s in report.samples}
    s = samples["s1_ne_01"]
    assert s.label == "negative" and s.frame_paths[0].name == "image036237.bmp"
    assert (s.onset, s.apex, s.offset) == (36237, 36240, 36243) and s.apex_estimated
    assert samples["s1_po_01"].frames == [8, 9, 10, 11, 12]
    assert all("non_micro" not in str(x.folder) for x in report.samples)
    assert report.issue_counts() == {}
    vis = get_dataset("smic-vis").check(release.root)
    assert vis.fps == 25.0 and vis.frames_root is not None and vis.frames_root.name == "VIS"
    assert vis.samples[0].id.startswith("smic-vis/")
    with pytest.raises(DatasetError, match="no SMIC-NIR frame folder"):
        get_dataset("smic-nir").check(release.root)


def test_smic_cropped(tmp_path: Path):
    release = build_smic(tmp_path, cropped=True)
    samples = get_dataset("smic").load(release.root, mapping="3class")
    assert samples[0].layout == "cropped"
    assert samples[0].frame_paths[0].name.startswith("reg_image")
