"""``mestudio train`` end to end on a CASME II fixture release; ``mestudio bench train``."""

from __future__ import annotations

import json

import torch

from mestudio.cli import main
from mestudio.nets.checkpoint import load_checkpoint
from training.fixtures import build_casme2, make_casme2_rows


def test_train_on_casme2_fixture_end_to_end(tmp_path, capsys):
    torch.set_num_threads(1)
    rows = make_casme2_rows(n_subjects=3, per_class=1, length=5)
    release = build_casme2(tmp_path / "CASME2", layout="cropped", rows=rows, quirks=False,
                           size=64)
    out = tmp_path / "run"
    args = ["train", "--dataset", "casme2", "--root", str(release.root), "--model", "m3enet",
            "--protocol", "loso", "--seeds", "1,2", "--epochs", "1", "--batch-size", "8",
            "--set", "aug_expansion=1", "--align", "none", "--out", str(out), "--cache",
            str(tmp_path / "cache"), "--prepare-workers", "1", "--threads", "1"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "LOSO (3 folds, 2 seed(s)): UF1" in text
    report = json.loads((out / "report.json").read_text())
    assert report["classes"] == ["happiness", "disgust", "surprise", "repression", "others"]
    assert report["seeds"] == [1, 2] and len(report["folds"]) == 3
    assert sum(map(sum, report["confusion"])) == 2 * 15            # 15 samples x 2 seeds
    md = (out / "report.md").read_text()
    assert "| Model | Dataset | Acc | Precision | Recall | F1 | AUC |" in md
    assert "| Model | Dataset | UF1 | UAR |" in md and "±" in md
    assert (out / "report_confusion.png").stat().st_size > 1000
    model, info = load_checkpoint(out / "m3enet_casme2.pt")
    assert info["classes"] == report["classes"] and info["synthetic"] is False
    assert info["training"]["protocol"] == "loso" and "loso_uf1" in info["metrics"]
    assert info["preprocess"]                                        # travels with the model
    # running again resumes: every fold is found done
    assert main(args + ["--no-final"]) == 0
    assert "LOSO (3 folds" in capsys.readouterr().out


def test_bench_train_reports_samples_per_second(capsys):
    assert main(["bench", "train", "--arch", "ststnet", "--iters", "1", "--warmup", "0",
                 "--batch", "16"]) == 0
    text = capsys.readouterr().out
    assert "ststnet" in text and "samples/s" in text
