"""Long-video releases for spotting: CAS(ME)² long videos, SAMM Long Videos, CAS(ME)³ part A
(kinds, fps, intervals in frame numbers, every long video listed, quirks reported)."""

from __future__ import annotations

import json

import pytest

from mestudio.cli import main
from mestudio.errors import DatasetError
from mestudio.training.datasets import get_dataset
from training.datasets.longvideo_fixtures import build_casme3, build_casme_sq_lv, build_samm_lv


def _issues(report, kind):
    return [i.message for i in report.issues if i.kind == kind]


@pytest.fixture(scope="module")
def casme_sq_lv(tmp_path_factory):
    return build_casme_sq_lv(tmp_path_factory.mktemp("casme_sq_lv"))


@pytest.fixture(scope="module")
def samm_lv(tmp_path_factory):
    return build_samm_lv(tmp_path_factory.mktemp("samm_lv"))


@pytest.fixture(scope="module")
def casme3(tmp_path_factory):
    return build_casme3(tmp_path_factory.mktemp("casme3"))


def test_casme_sq_lv_lists_every_long_video_with_micro_and_macro(casme_sq_lv):
    report = get_dataset("cas(me)^2-lv").check(casme_sq_lv.root)
    assert report.fps == 30.0
    assert [v.id for v in report.videos] == casme_sq_lv.expected["videos"]
    assert report.kind_counts() == {"micro": 5, "macro": 3}
    videos = {v.id: v for v in report.videos}
    empty = videos["s19/19_0401girlcrashing"]
    assert empty.truth == [] and empty.n_frames == 40 and empty.frames[0] == 1
    assert any("19_0401girlcrashing" in m for m in _issues(report, "video without expression"))
    anger = videos["s15/15_0401girlcrashing"]
    got = [(t["onset"], t["offset"], t["kind"]) for t in anger.truth_intervals()]
    assert got == [(20, 25, "micro"), (30, 40, "macro")]  # offset 0 -> apex; 50 -> last frame
    assert {f.fix_id for f in report.fixes} == {"casme_sq_lv-offset-unknown", "apex-outside"}
    unverified = " ".join(_issues(report, "unverified"))
    assert "offset '0' taken as unknown" in unverified and "apex '35'" in unverified
    assert "assumptions" in report.to_text()


def test_samm_lv_sheet_quirks_and_layout(samm_lv):
    report = get_dataset("SAMM-LV").check(samm_lv.root)
    assert report.fps == 200.0 and report.info["header"].startswith("row 10")
    assert [v.id for v in report.videos] == samm_lv.expected["videos"]
    assert report.kind_counts() == {"micro": 3, "macro": 2}
    by_name = {s.filename: s for s in report.samples}
    assert by_name["006_1_1"].kind == "micro" and by_name["006_1_1"].native_label == "happiness"
    assert by_name["006_1_2"].kind == "macro" and by_name["006_1_2"].native_label == "unlabelled"
    assert (by_name["006_2_1"].onset, by_name["006_2_1"].offset) == (8, 12)  # offset 0
    assert by_name["006_2_1"].subject == "006"  # subject stored as the number 6
    assert len(_issues(report, "bad row")) == 1 and len(_issues(report, "row without folder")) == 1
    unverified = " ".join(_issues(report, "unverified"))
    assert "44-45" in unverified and "apex '30'" in unverified
    gap_video = next(v for v in report.videos if v.id == "007/007_1")
    assert gap_video.n_frames == 46 and gap_video.gaps() == [44, 45]
    assert any("008_1" in m for m in _issues(report, "video without expression"))


def test_samm_lv_without_the_micro_sheet_has_no_emotions(tmp_path):
    release = build_samm_lv(tmp_path, micro_sheet=False, n_frames=20)
    report = get_dataset("samm_lv").check(release.root)
    assert {s.native_label for s in report.samples} == {"unlabelled"}
    assert "none" in report.info["emotions"]


def test_casme3_micro_and_macro_sheets_colour_frames(casme3):
    report = get_dataset("cas(me)^3").check(casme3.root)
    assert report.fps == 30.0
    assert [v.id for v in report.videos] == casme3.expected["videos"]
    assert report.kind_counts() == {"micro": 3, "macro": 2}
    v = next(v for v in report.videos if v.id == "spNO.1/a")
    assert v.folder.name == "color" and v.frames[0] == 0 and v.n_frames == 40
    intervals = sorted((t["onset"], t["offset"]) for t in v.truth_intervals())
    assert intervals == [(0, 6), (4, 10)]  # onset 0 is a real frame here: not flagged
    assert not any("onset 0" in m for m in _issues(report, "unverified"))
    assert any("offset '0'" in m for m in _issues(report, "unverified"))
    assert any("shade" in m for m in _issues(report, "note"))


def test_casme3_without_macro_sheet_says_macro_is_not_scored(tmp_path):
    release = build_casme3(tmp_path, macro_sheet=False, n_frames=20)
    report = get_dataset("casme3").check(release.root)
    assert report.kind_counts()["macro"] == 0
    assert "not scored" in report.info["macro sheet"]


def test_casme3_without_frames_is_an_error(tmp_path):
    release = build_casme3(tmp_path, n_frames=5)
    import shutil

    shutil.rmtree(release.root / "data")
    with pytest.raises(DatasetError, match="spNO"):
        get_dataset("casme3").check(release.root)


def test_data_check_reports_long_videos(samm_lv, tmp_path, capsys):
    out = tmp_path / "check.json"
    assert main(["data", "check", "--dataset", "samm_lv", "--root", str(samm_lv.root),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "long videos 4" in text and "assumptions" in text and "verdict   usable" in text
    doc = json.loads(out.read_text())
    assert doc["kinds"] == {"micro": 3, "macro": 2} and len(doc["videos"]) == 4
    assert doc["assumptions"]
