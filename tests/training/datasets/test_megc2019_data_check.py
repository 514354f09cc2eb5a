"""MEGC2019 composite and the `mestudio data check` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mestudio.cli import main
from mestudio.training.datasets import get_dataset
from training.fixtures import build_casme2, build_megc2019


@pytest.fixture(scope="module")
def megc(tmp_path_factory):
    return build_megc2019(tmp_path_factory.mktemp("megc"))


def test_composite_joins_csv_rows_to_the_releases(megc):
    raw = megc.sheet.read_bytes()
    assert b"\r\n\r\n" in raw and not raw.startswith(b"dataset")  # CRLF, empty rows, no header
    report = get_dataset("megc2019").check(megc.root)
    assert report.rows == megc.expected["rows"] == 16
    assert len(report.samples) == megc.expected["samples"] == 15
    missing = [i for i in report.issues if i.kind == "row without folder"]
    assert len(missing) == 1 and "sub10/EP13_01" in missing[0].message
    folds = {s.fold for s in report.samples}
    assert {"casme2/01", "smic/s1", "samm/006"} <= folds
    assert len(folds) == 11
    samples = {s.id: s for s in report.samples}
    smic = samples["smic/s1/s1_ne_01"]   # csv writes s01/s01_ne_01
    assert smic.label == "negative" and smic.dataset == "smic" and smic.fps == 100.0
    samm = samples["samm/006/006_1_3"]   # csv writes subject 6
    assert samm.label == "negative" and samm.extra["source_label"] == "contempt"
    assert samples["casme2/06/EP01_2"].native_label == "negative"  # repression
    counts = report.class_counts("native")
    assert counts == {"negative": 8, "positive": 4, "surprise": 3}
    assert report.issue_counts().get("label mismatch", 0) == 0


def test_composite_label_disagreement_is_reported(tmp_path: Path):
    release = build_megc2019(tmp_path, csv_rows=[("casme2", "sub01", "EP02_01f", 0),
                                                 ("samm", "7", "007_3_1", 1)])
    report = get_dataset("megc2019").check(release.root)
    assert len(report.samples) == 2
    mismatch = [i for i in report.issues if i.kind == "label mismatch"]
    assert len(mismatch) == 1 and "EP02_01f" in mismatch[0].message
    assert {s.id: s.label for s in report.samples}["casme2/01/EP02_01f"] == "negative"


def test_data_check_cli_usable(megc, tmp_path: Path, capsys):
    out_json = tmp_path / "report.json"
    code = main(["data", "check", "--dataset", "casme2", "--root", str(megc.root / "CASME2"),
                 "--json", str(out_json)])
    text = capsys.readouterr().out
    assert code == 0
    assert "10 usable; 9 subjects" in text
    assert "5class      8: happiness 1, disgust 3" in text
    assert "apex-missing x1" in text and "04/EP12_01f: apex '/' -> 291" in text
    assert "row without folder x1" in text and "folder without row x1" in text
    assert "verdict   usable" in text
    data = json.loads(out_json.read_text())
    assert data["samples"] == 10 and data["class_counts"]["3class"]["negative"] == 5
    assert data["subjects"]["01"] == 2


def test_data_check_cli_errors(tmp_path: Path, capsys):
    assert main(["data", "check", "--dataset", "samm", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no SAMM coding sheet" in err and err.count("\n") == 1
    assert main(["data", "check", "--dataset", "nope", "--root", str(tmp_path)]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    # Sheet present, but no frame folder holds any row: printed report, then exit 2.
    release = build_casme2(tmp_path / "c2", layout="selected")
    for sub in (release.root / "CASME2_RAW_selected").iterdir():
        for folder in sub.iterdir():
            folder.rename(folder.with_name(folder.name + "_moved"))
    code = main(["data", "check", "--dataset", "casme2", "--root", str(release.root)])
    captured = capsys.readouterr()
    assert code == 2
    assert "NOT usable" in captured.out and "no usable CASME II sample" in captured.err


def test_data_offers_check_and_prepare(capsys):
    import argparse

    from mestudio.cli import build_parser

    def sub_actions(parser: argparse.ArgumentParser) -> set[str]:
        data = next(a for a in parser._subparsers._group_actions[0].choices.items()
                    if a[0] == "data")[1]
        return set(data._subparsers._group_actions[0].choices)

    assert sub_actions(build_parser()) == {"check", "prepare"}
    assert sub_actions(build_parser(only="data")) == {"check", "prepare"}
    assert main(["data"]) == 2
    assert "{check,prepare}" in capsys.readouterr().out
