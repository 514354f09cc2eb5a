"""``mestudio reproduce``: tables as data, paper numbers, resumable cells, the report."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from mestudio.cli import main
from mestudio.reproduce import PAPERS, paper_numbers, select_tables
from mestudio.reproduce.run import discover_datasets, guess_dataset, unavailable_reason
from mestudio.reproduce.tables import Row, paper_status, paper_value
from training.fixtures import build_casme2, build_megc2019, make_casme2_rows


def test_paper_numbers_are_data_with_sources():
    numbers = paper_numbers()
    assert numbers["m3enet"]["table4"]["m3enet"]["params_m"] == 6.01
    t2, t3, t4 = select_tables("m3enet", ["2", "3", "table4"])
    assert paper_value("m3enet", t4, "m3enet", "params") == pytest.approx(6_010_000)
    assert paper_value("m3enet", t3, "standard", "accuracy") == pytest.approx(0.815)
    assert paper_value("m3enet", t3, "no-aug", "accuracy") == pytest.approx(0.437)
    assert paper_value("m3enet", t2, "offapexnet", "auc", "casme") == pytest.approx(0.843)
    assert paper_value("m3enet", t4, "htnet", "latency_gpu_ms") == pytest.approx(13.59)
    (im3dr,) = select_tables("im3dr-mfer", ["ablations"])  # the former key still works
    assert paper_value("im3dr-mfer", im3dr, "full", "accuracy", "megc2019") == \
        pytest.approx(0.846)
    # the ablation rows are named by the paper without numbers: "not published", not invented
    assert paper_value("im3dr-mfer", im3dr, "mscaf", "accuracy", "casme2") is None
    assert paper_status("im3dr-mfer", im3dr, "mscaf", "accuracy", "casme2") == "not published"
    assert paper_status("m3enet", t3, "nonexistent", "accuracy") == "missing"
    for paper, tables in PAPERS.items():
        assert numbers[paper]["source"]
        for table in tables.values():
            assert numbers[paper][table.paper_key]["source"], (paper, table.key)


def test_rows_name_registered_networks_or_say_why_not():
    t2, t4 = select_tables("m3enet", ["2", "4"])
    reasons = {r.key: unavailable_reason(r) for r in (*t2.rows, *t4.rows)}
    assert set(reasons.values()) == {""}
    assert unavailable_reason(Row("capsnet2", "CapsNet 2", None)) == \
        "not implemented in mestudio"
    (im3dr,) = select_tables("im3dr-mfer", None)
    assert {unavailable_reason(r) for r in im3dr.rows} == {""}
    with pytest.raises(Exception, match="no table"):
        select_tables("m3enet", ["9"])


@pytest.mark.parametrize(("name", "expected"), [
    ("CASME2", "casme2"), ("CASME II", "casme2"), ("CAS(ME)^2", "casme_sq"),
    ("casme_sq", "casme_sq"), ("SAMM", "samm"), ("MMEW", "mmew"), ("CASME", "casme"),
    ("MEGC2019", "megc2019"), ("other", None)])
def test_dataset_folder_names(name, expected):
    assert guess_dataset(name) == expected


def test_the_composite_is_found_in_the_root_beside_its_releases(tmp_path):
    build_megc2019(tmp_path)
    found = discover_datasets(tmp_path, ("casme2", "samm", "megc2019"))
    assert found == {"casme2": tmp_path / "CASME2", "samm": tmp_path / "SAMM",
                     "megc2019": tmp_path}


def _table_lines(md: str, heading: str) -> list[str]:
    part = md.split(heading, 1)[1].split("\n## ", 1)[0]
    return [ln for ln in part.splitlines() if ln.startswith("| ") and "---" not in ln]


def test_reproduce_m3enet_end_to_end_and_resume(tmp_path, capsys):
    torch.set_num_threads(1)
    rows = make_casme2_rows(n_subjects=3, per_class=1, length=5)
    build_casme2(tmp_path / "data" / "CASME2", layout="cropped", rows=rows, quirks=False,
                 size=64)
    (tmp_path / "data" / "notes").mkdir()  # not a release: ignored
    out = tmp_path / "rep"
    args = ["reproduce", "m3enet", "--root", str(tmp_path / "data"), "--out", str(out),
            "--tables", "2,3,4", "--rows", "m3enet,ststnet,standard,no-aug",
            "--epochs", "1", "--seeds", "1", "--batch-size", "8", "--set", "aug_expansion=1",
            "--align", "none", "--cache", str(tmp_path / "cache"), "--prepare-workers", "1",
            "--threads", "1", "--latency-iters", "1"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "casme2" in text and "reproduce_m3enet.md" in text
    md = (out / "reproduce_m3enet.md").read_text()
    assert "## Table 2" in md and "## Table 3" in md and "## Table 4" in md
    # every published cell is in the report, none is "missing"; ours is beside it or the
    # row says why not
    assert "/ missing" not in md and "0 missing from paper_numbers.toml" in md
    assert "the paper's cells: 384 published" in md  # 330 + 30 + 24
    t2 = _table_lines(md, "## Table 2")
    assert len(t2) == 1 + 11 * 6  # header, 11 models x (5 datasets + average)
    assert [ln.split(" | ")[0][2:] for ln in t2[1::6]] == [
        "AlexNet", "VGG-16", "ResNet-18", "GoogLeNet", "OFF-ApexNet", "STSTNet", "HTNet",
        "LAENet", "SSRLTS-ViT", "CNNCapsNet", "M3ENet"]
    assert "EfficientNet" not in "\n".join(t2)
    m3_casme2 = next(ln for ln in t2 if ln.startswith("| M3ENet | CASME II | done |"))
    assert "/ 71.8 (" in m3_casme2 and "/ 80.3 (" in m3_casme2  # ours beside P and Acc
    assert "| AlexNet | CASME I | needs the licensed dataset | — / 33.8 |" in md
    assert "| M3ENet | Average | mean of 1 of 5 datasets |" in md
    assert "| STSTNet | SAMM | needs the licensed dataset |" in md
    assert "| AlexNet | CASME II | not run |" in md  # excluded by --rows
    # Table 4: ours beside theirs for all eight networks, the paper's latency needs a GPU
    rows4 = _table_lines(md, "## Table 4")[1:9]
    assert [ln.split(" | ")[1] for ln in rows4] == ["done"] * 8  # Table 4 is always whole
    assert all("needs a GPU / " in ln for ln in rows4)
    assert "| M3ENet | done | 6.01 / 6.01 (-0.00) | 42.87 / 42.87 (+0.00) |" in md
    assert "| VGG-16 | done | 107.03 / 33.61 (+73.42) |" in md
    assert "| HTNet | done | 0.99 / 139.65 (-138.66) |" in md
    assert "CPU latency (ms), ours" in md
    with open(out / "reproduce_m3enet.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    acc = [ln for ln in lines if ln["table"] == "3" and ln["row"] == "standard"
           and ln["dataset"] == "mean" and ln["metric"] == "accuracy"]
    assert acc and acc[0]["paper_value"] == "0.815" and acc[0]["ours"] != ""
    assert float(acc[0]["difference"]) == pytest.approx(float(acc[0]["ours"]) - 0.815)
    assert acc[0]["status"] == "mean of 1 of 5 datasets"
    paper_cells = [ln for ln in lines if ln["paper_status"]]
    assert len(paper_cells) == 384 and {ln["paper_status"] for ln in paper_cells} == \
        {"published"}
    needs = [ln for ln in lines if ln["table"] == "2" and ln["dataset"] == "mmew"]
    assert needs and {ln["status"] for ln in needs} == {"needs the licensed dataset"}
    cell = out / "cells" / "table2" / "m3enet" / "casme2" / "cell.json"
    record = json.loads(cell.read_text())
    assert record["status"] == "done" and "accuracy" in record["metrics"]
    assert record["argv"][:3] == ["train", "--dataset", "casme2"]
    assert "Classes and samples used" in md and "- CASME II: " in md
    # resume: every finished cell is skipped, the report is rewritten
    stamp = cell.stat().st_mtime_ns
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "training ..." not in text and text.count("done earlier (skipped)") >= 12
    assert cell.stat().st_mtime_ns == stamp


def test_reproduce_complexity_only_needs_no_data(tmp_path):
    out = tmp_path / "rep"
    assert main(["reproduce", "m3enet", "--root", str(tmp_path), "--out", str(out),
                 "--tables", "4", "--latency-iters", "1"]) == 0
    md = (out / "reproduce_m3enet.md").read_text()
    assert "| EfficientNet | done | 4.01 / 7.98 (-3.97) |" in md and "RTX 4090" in md
    # the configurations that reproduce the paper's counts, computed, beside ours
    assert ("| | the authors' HTNet (dim 256, heads 3, blocks 2-2-10), 3 x 48 x 48 in 12 px "
            "patches | 139.66 | 215.45 | 139.65 / 215.45 | **matches** |") in md
    assert "| | standard EfficientNet-B1 with its 1000-class ImageNet head" in md
    assert ("| | standard VGG-16 (no BN, 5 pools, FC 4096-4096-K), 3 x 48 x 48 | 33.62 | "
            "723.59 | 33.61 / 723.58 | **matches** |") in md
    assert ("| | ImageNet-form ResNet-18 (7x7/2 stem + max pool), 3 x 48 x 48 | 11.18 | "
            "98.44 | 11.17 / 98.44 | **matches** |") in md
    assert "the paper's cells: 24 published" in md


def test_reproduce_im3dr_mfer_uses_its_own_protocol(tmp_path):
    torch.set_num_threads(1)
    rows = make_casme2_rows(n_subjects=3, per_class=1, length=5)
    build_casme2(tmp_path / "data" / "CASME2", layout="cropped", rows=rows, quirks=False,
                 size=48)
    out = tmp_path / "rep"
    assert main(["reproduce", "im3dr-mfer", "--root", str(tmp_path / "data"), "--out",
                 str(out), "--rows", "full", "--light", "--epochs", "1", "--seeds", "1",
                 "--batch-size", "8", "--align", "none", "--cache", str(tmp_path / "cache"),
                 "--prepare-workers", "1", "--threads", "1"]) == 0
    md = (out / "reproduce_im3dr_mfer.md").read_text()
    lines = _table_lines(md, "## IM3DR-MFER")
    assert lines[0] == "| Model | Dataset | Ours | Acc |"  # accuracy only
    assert len(lines) == 1 + 5 * 3  # five rows x CASME II, SAMM, composite
    assert "| full model with CASANet and EVM pre-processing | CASME II | done |" in md
    assert ("| full model with CASANet and EVM pre-processing | Composite (MEGC 2019) | "
            "needs the licensed dataset | — / 84.6 |") in md
    assert "| dual-modal fusion without CASANet | CASME II | not run | — / n/p |" in md
    assert ("| dual-modal fusion without CASANet | SAMM | needs the licensed dataset | "
            "— / n/p |") in md
    assert "12 not published" in md and "0 missing" in md
    assert "3 classes (negative, positive, surprise" in md
    assert "CASME II: " in md and "classes negative, positive, surprise" in md
    record = json.loads((out / "cells" / "results" / "full" / "casme2" / "cell.json")
                        .read_text())
    argv = record["argv"]
    assert argv[argv.index("--mapping") + 1] == "3class"
    assert any(a.startswith("evm=") for a in argv)
