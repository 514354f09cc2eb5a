"""SAMM (MICRO_ONLY sheet, header on row 14, formula cells, padding) and CASME (xls)."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from mestudio.errors import DatasetError
from mestudio.training.datasets import get_dataset
from training.fixtures import build_casme, build_samm


@pytest.fixture(scope="module")
def samm(tmp_path_factory):
    return build_samm(tmp_path_factory.mktemp("samm"))


def test_samm_sheet_quirks(samm):
    # The fixture really has the quirks the loader must survive.
    ws = openpyxl.load_workbook(samm.sheet)["MICRO_ONLY"]
    assert ws["A14"].value == "Subject" and ws["G15"].value == "=F15-D15+1"
    report = get_dataset("samm").check(samm.root)
    assert report.sheet_name == "MICRO_ONLY" and report.info["header"].startswith("row 14")
    assert report.rows == 8 and len(report.samples) == 8
    assert list(report.subjects()) == samm.expected["subjects"]
    samples = {s.filename: s for s in report.samples}
    s = samples["006_1_2"]
    assert s.subject == "006" and s.fold == "samm/006"
    assert s.frame_paths[0].name == "006_05562.jpg" and s.frames == list(range(5562, 5571))
    assert s.extra["duration_frames"] == 9  # computed, the formula cell is not trusted
    assert samples["007_3_1"].frame_paths[0].name == "007_0850.jpg"  # 4-digit padding
    assert samples["037_2_1"].subject == "037"  # stored as the number 37
    assert len([x for x in report.samples if x.subject == "033"]) == 1


def test_samm_apex_outside_interval(samm):
    samples = {s.filename: s for s in get_dataset("samm").load(samm.root)}
    for name, apex in (("028_4_1", 103), ("032_3_1", 203)):
        s = samples[name]
        assert s.onset <= s.apex <= s.offset and s.apex == apex and s.apex_estimated
        assert any("apex-outside" in f for f in s.fixes)
    assert samples["028_4_1"].annotated_apex == 95


def test_samm_au_strings_and_mappings(samm):
    ds = get_dataset("samm")
    samples = {s.filename: s for s in ds.load(samm.root)}
    s = samples["007_3_1"]
    assert s.aus == "R12 + R15 or R14" and s.au_codes == ("AU12", "AU14", "AU15")
    assert samples["011_2_3"].au_codes == ("AU1", "AU2", "AU43")
    assert samples["028_4_1"].native_label == "other"
    five = ds.load(samm.root, mapping="5class")
    assert {s.label for s in five} <= set(ds.classes("5class"))
    assert {s.filename for s in five} == {"006_1_2", "006_1_3", "007_3_1", "011_2_3",
                                          "028_4_1", "037_2_1"}
    three = {s.filename: s.label for s in ds.load(samm.root, mapping="3class")}
    assert three["006_1_3"] == "negative"  # contempt
    assert three["032_3_1"] == "negative"  # fear
    assert "028_4_1" not in three          # other is excluded


def test_samm_wrong_sheet_name(tmp_path: Path):
    release = build_samm(tmp_path, sheet_name="Sheet1")
    wb = openpyxl.load_workbook(release.sheet)
    wb.create_sheet("MACRO")
    wb.save(release.sheet)
    with pytest.raises(DatasetError, match="no sheet 'MICRO_ONLY'"):
        get_dataset("samm").check(release.root)


def test_casme_xls(tmp_path: Path):
    release = build_casme(tmp_path)
    ds = get_dataset("casme")
    report = ds.check(release.root)
    assert report.sheet is not None and report.sheet.suffix == ".xls"
    assert report.layout == "selected" and len(report.samples) == 6
    assert list(report.subjects()) == release.expected["subjects"]
    samples = {s.filename: s for s in report.samples}
    padded, plain = samples["EP01_5"], samples["EP03_2"]
    assert padded.frame_paths[0].name == "EP01_5-010.jpg"
    assert plain.frame_paths[0].name == "EP03_2-7.jpg"
    assert (padded.onset, padded.apex, padded.offset) == (10, 14, 18)
    assert padded.extra["apex2"] is None           # '\' means not coded
    assert samples["EP03_2"].extra["apex2"] == 10
    tense = samples["EP05_4"]
    assert [p.name for p in tense.frame_paths][:3] == ["EP05_4-001.jpg", "EP05_4-002.jpg",
                                                       "EP05_4-003.jpg"]
    assert tense.frames[-1] == 12 and tense.fps == 60.0
    assert {s.label for s in ds.load(release.root, mapping="5class")} == {
        "disgust", "happiness", "tense", "repression", "surprise"}
    assert len(ds.load(release.root, mapping="3class")) == 4


def test_casme_cropped(tmp_path: Path):
    release = build_casme(tmp_path, cropped=True)
    samples = get_dataset("casme").load(release.root)
    assert samples[0].layout == "cropped"
    assert all(p.name.startswith("reg_") for s in samples for p in s.frame_paths)
