"""``mestudio reproduce``: tables as data, paper numbers, resumable cells, the report."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from mestudio.cli import main
from mestudio.reproduce import PAPERS, paper_numbers, select_tables
from mestudio.reproduce.run import guess_dataset, unavailable_reason
from mestudio.reproduce.tables import Row, paper_value
from training.fixtures import build_casme2, make_casme2_rows


def test_paper_numbers_are_data_with_sources():
    numbers = paper_numbers()
    assert numbers["m3enet"]["table4"]["m3enet"]["params"] == 6_010_000
    t3, t4 = select_tables("m3enet", ["3", "table4"])
    assert paper_value("m3enet", t3, "full", "accuracy") == pytest.approx(0.815)
    assert paper_value("m3enet", t3, "no-aug", "accuracy") == pytest.approx(0.437)
    assert paper_value("m3enet", t4, "m3enet", "latency_cuda_ms") == pytest.approx(5.08)
    assert paper_value("m3enet", t3, "no-flow", "accuracy") is None  # missing, not invented
    for paper, tables in PAPERS.items():
        for table in tables.values():
            assert numbers[paper][table.paper_key]["source"], (paper, table.key)


def test_rows_name_registered_networks_or_say_why_not():
    t2 = select_tables("m3enet", ["2"])[0]
    reasons = {r.key: unavailable_reason(r) for r in t2.rows}
    assert reasons["m3enet"] == reasons["htnet"] == reasons["alexnet"] == ""
    assert reasons["laenet"] == reasons["ssrlts-vit"] == reasons["cnncapsnet"] == ""
    assert unavailable_reason(Row("capsnet2", "CapsNet 2", None)) == \
        "not implemented in mestudio"
    with pytest.raises(Exception, match="no table"):
        select_tables("m3enet", ["9"])


@pytest.mark.parametrize(("name", "expected"), [
    ("CASME2", "casme2"), ("CASME II", "casme2"), ("CAS(ME)^2", "casme_sq"),
    ("casme_sq", "casme_sq"), ("SAMM", "samm"), ("MMEW", "mmew"), ("CASME", "casme"),
    ("other", None)])
def test_dataset_folder_names(name, expected):
    assert guess_dataset(name) == expected


def test_reproduce_m3enet_end_to_end_and_resume(tmp_path, capsys):
    torch.set_num_threads(1)
    rows = make_casme2_rows(n_subjects=3, per_class=1, length=5)
    build_casme2(tmp_path / "data" / "CASME2", layout="cropped", rows=rows, quirks=False,
                 size=64)
    (tmp_path / "data" / "notes").mkdir()  # not a release: ignored
    out = tmp_path / "rep"
    args = ["reproduce", "m3enet", "--root", str(tmp_path / "data"), "--out", str(out),
            "--tables", "2,3,4", "--rows", "m3enet,ststnet,htnet,full,no-aug",
            "--epochs", "1", "--seeds", "1", "--batch-size", "8", "--set", "aug_expansion=1",
            "--align", "none", "--cache", str(tmp_path / "cache"), "--prepare-workers", "1",
            "--threads", "1", "--latency-iters", "2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "casme2" in text and "reproduce_m3enet.md" in text
    md = (out / "reproduce_m3enet.md").read_text()
    assert "## Table 2" in md and "## Table 3" in md and "## Table 4" in md
    assert "| M3ENet | CASME II |" in md and "| HTNet | CASME II |" in md
    # Table 4: paper's 6.01 M parameters beside ours (6.006 M), difference printed
    assert "6.01 / 6.01 (-0.00)" in md and "42.81 / 42.87 (-0.06)" in md
    with open(out / "reproduce_m3enet.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    acc = [ln for ln in lines if ln["table"] == "3" and ln["row"] == "full"
           and ln["dataset"] == "mean" and ln["metric"] == "accuracy"]
    assert acc and acc[0]["paper_value"] == "0.815" and acc[0]["ours"] != ""
    assert float(acc[0]["difference"]) == pytest.approx(float(acc[0]["ours"]) - 0.815)
    cell = out / "cells" / "table2" / "m3enet" / "casme2" / "cell.json"
    record = json.loads(cell.read_text())
    assert record["status"] == "done" and "accuracy" in record["metrics"]
    assert record["argv"][:3] == ["train", "--dataset", "casme2"]
    # resume: every finished cell is skipped, the report is rewritten
    stamp = cell.stat().st_mtime_ns
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "training ..." not in text and text.count("done earlier (skipped)") >= 7
    assert cell.stat().st_mtime_ns == stamp


def test_reproduce_complexity_only_needs_no_data(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "m3enet", "--root", str(tmp_path), "--out", str(out),
                 "--tables", "4", "--rows", "m3enet,efficientnet_b0",
                 "--latency-iters", "1"]) == 0
    md = (out / "reproduce_m3enet.md").read_text()
    assert "EfficientNet-B0" in md and "RTX 4090" in md
