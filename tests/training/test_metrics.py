"""Metrics on hand-made predictions; pooling aligns by sample id."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from mestudio.errors import DatasetError
from mestudio.training.metrics import (
    binary_auc,
    compute_metrics,
    pool_predictions,
    pooled_metrics,
    save_confusion_png,
)

CLASSES = ("happy", "sad", "surprise")


def _onehot(k: int, p: float = 0.8) -> list[float]:
    v = [(1 - p) / 2] * 3
    v[k] = p
    return v


def test_uf1_uar_accuracy_by_hand():
    # true:  0 0 0 0 1 1 2 2
    # pred:  0 0 0 1 1 0 2 1
    y = [0, 0, 0, 0, 1, 1, 2, 2]
    pred = [0, 0, 0, 1, 1, 0, 2, 1]
    m = compute_metrics(y, np.array([_onehot(k) for k in pred]), CLASSES)
    # class 0: TP 3 FP 1 FN 1 -> F1 6/8; recall 3/4
    # class 1: TP 1 FP 2 FN 1 -> F1 2/5; recall 1/2
    # class 2: TP 1 FP 0 FN 1 -> F1 2/3; recall 1/2
    assert m["uf1"] == pytest.approx((6 / 8 + 2 / 5 + 2 / 3) / 3)
    assert m["uar"] == pytest.approx((3 / 4 + 1 / 2 + 1 / 2) / 3)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["precision"] == pytest.approx((3 / 4 + 1 / 3 + 1) / 3)
    assert m["confusion"] == [[3, 1, 0], [1, 1, 0], [0, 1, 1]]
    assert m["per_class"]["sad"]["support"] == 2


def test_auc_by_hand_with_ties():
    # positives score 0.9, 0.5 ; negatives 0.5, 0.1, 0.2
    # pairs: (0.9 > all 3) = 3 ; (0.5 vs 0.5 tie) = 0.5 ; (0.5 > 0.1, 0.2) = 2 -> 5.5 / 6
    assert binary_auc([1, 1, 0, 0, 0], [0.9, 0.5, 0.5, 0.1, 0.2]) == pytest.approx(5.5 / 6)
    assert binary_auc([1, 1, 0], [0.1, 0.2, 0.9]) == 0.0
    assert math.isnan(binary_auc([1, 1], [0.3, 0.4]))
    y = [0, 0, 1, 1, 2, 2]
    probs = np.array([[.6, .3, .1], [.5, .4, .1], [.2, .7, .1], [.4, .5, .1], [.1, .2, .7],
                      [.3, .3, .4]])
    m = compute_metrics(y, probs, CLASSES)
    assert m["auc"] == pytest.approx(1.0)            # every class ranked perfectly
    assert m["per_class"]["happy"]["auc"] == 1.0


def test_pooling_aligns_by_id_whatever_the_order():
    ids = [f"d/s{i % 3}/clip{i}" for i in range(9)]
    labels = {sid: i % 3 for i, sid in enumerate(ids)}
    truth_pred = {sid: (lab if i != 4 else 0) for i, (sid, lab) in enumerate(labels.items())}
    folds = [{sid: _onehot(truth_pred[sid]) for sid in ids if sid.split("/")[1] == f"s{k}"}
             for k in range(3)]
    ref = pooled_metrics(pool_predictions(folds, labels, CLASSES))
    # shuffle the order inside each fold, the order of the folds and of the label dict
    rnd = random.Random(3)
    shuffled = []
    for f in folds:
        items = list(f.items())
        rnd.shuffle(items)
        shuffled.append(dict(items))
    rnd.shuffle(shuffled)
    items = list(labels.items())
    rnd.shuffle(items)
    got = pooled_metrics(pool_predictions(shuffled, dict(items), CLASSES))
    assert got["uf1"] == ref["uf1"] and got["confusion"] == ref["confusion"]
    assert ref["accuracy"] == pytest.approx(8 / 9)


def test_pooling_refuses_duplicates_and_missing_folds():
    labels = {"a": 0, "b": 1}
    with pytest.raises(DatasetError, match="two folds"):
        pool_predictions([{"a": _onehot(0)}, {"a": _onehot(0), "b": _onehot(1)}], labels, CLASSES)
    with pytest.raises(DatasetError, match="no prediction"):
        pool_predictions([{"a": _onehot(0)}], labels, CLASSES)


def test_groups_and_confusion_png(tmp_path):
    labels = {"casme2/a": 0, "casme2/b": 1, "samm/c": 2, "samm/d": 0}
    preds = {k: _onehot(v) for k, v in labels.items()}
    preds["samm/d"] = _onehot(2)
    pooled = pool_predictions([preds], labels, CLASSES,
                              groups={k: k.split("/")[0] for k in labels})
    m = pooled_metrics(pooled)
    assert m["groups"]["casme2"]["accuracy"] == 1.0
    assert m["groups"]["samm"]["accuracy"] == 0.5
    png = save_confusion_png(m["confusion"], CLASSES, tmp_path / "cm.png", title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000


def test_report_files_are_written_under_a_temporary_name(tmp_path, monkeypatch):
    """The training report (json, md, confusion png) appears only complete: each file is
    written beside its target and renamed over it (issue 22, item 14); a failing write
    leaves the previous report as it was."""
    import os

    from mestudio.training import report as report_mod
    from mestudio.training.report import write_report

    monkeypatch.setattr(report_mod, "markdown", lambda r, png=None: f"# report\n![cm]({png})\n")
    labels = {"casme2/a": 0, "casme2/b": 1, "samm/c": 2}
    m = pooled_metrics(pool_predictions([{k: _onehot(v) for k, v in labels.items()}], labels,
                                        CLASSES))
    report = {**m, "classes": list(CLASSES), "dataset": "casme2", "protocol": "loso",
              "model": "m3enet", "config": {}}
    renamed: list[str] = []
    real_replace = os.replace

    def spy(src, dst):
        renamed.append(os.path.basename(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    paths = write_report(report, tmp_path)
    assert sorted(renamed) == sorted(p.name for p in paths.values())
    before = {p: p.read_bytes() for p in paths.values()}

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_report(report, tmp_path)
    assert {p: p.read_bytes() for p in paths.values()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())
