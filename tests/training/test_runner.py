"""The LOSO/LODO runner: no test subject in training or validation; resumable per fold."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch

from mestudio.errors import ConfigError
from mestudio.training.config import TrainConfig
from mestudio.training.features import FeatureSet, FeatureSpec
from mestudio.training.runner import apply_ablation, make_folds, run_protocol

CLASSES = ("a", "b", "c")
S = 24


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _features(n_subjects: int = 4, per_class: int = 2, datasets: tuple[str, ...] = ("d",)
              ) -> FeatureSet:
    rng = np.random.default_rng(0)
    ids, labels, subjects, names, flows, frames = [], [], [], [], [], []
    for ds in datasets:
        for s in range(n_subjects):
            for c, label in enumerate(CLASSES):
                for r in range(per_class):
                    ids.append(f"{ds}/S{s}/{label}{r}")
                    labels.append(label)
                    subjects.append(f"{ds}/S{s}")
                    names.append(ds)
                    f = rng.normal(size=(3, S, S)).astype(np.float32)
                    f[0] += c - 1.0
                    flows.append(f)
                    frames.append(rng.random((3, 1, S, S)).astype(np.float32))
    return FeatureSet(ids, labels, subjects, names,
                      {"flow": np.stack(flows), "frames": np.stack(frames)}, FeatureSpec())


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=1, batch_size=8, aug_expansion=2, seeds=(1,), final_model=False)
    base.update(kw)
    return TrainConfig(**base)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __call__(self, event: str, **info) -> None:
        self.events.append((event, info))

    def ids(self, event: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for e, info in self.events:
            if e == event:
                out[info["fold"]] |= set(info["ids"])
        return out


def test_loso_never_trains_or_validates_on_the_test_subject(tmp_path):
    feats = _features(n_subjects=4)
    rec = Recorder()
    res = run_protocol(feats, CLASSES, _cfg(validation="subjects", val_fraction=0.34),
                       out_dir=tmp_path, hook=rec, progress=False)
    trained, validated, tested = rec.ids("train_batch"), rec.ids("validate"), rec.ids("test")
    subject_of = dict(zip(feats.ids, feats.subjects, strict=True))
    assert sorted(tested) == ["d/S0", "d/S1", "d/S2", "d/S3"]
    for fold, test_ids in tested.items():
        assert {subject_of[i] for i in test_ids} == {fold}
        assert trained[fold] and validated[fold]
        train_subjects = {subject_of[i] for i in trained[fold]}
        val_subjects = {subject_of[i] for i in validated[fold]}
        assert fold not in train_subjects and fold not in val_subjects
        assert not train_subjects & val_subjects          # validation = held-out TRAINING subjects
        assert len(train_subjects | val_subjects) == 3
    # every sample predicted exactly once, pooled by id
    pooled = res.pooled[1]
    assert sorted(pooled.ids) == sorted(feats.ids)
    assert 0.0 <= res.per_seed[1]["uf1"] <= 1.0


def test_lodo_holds_out_whole_datasets(tmp_path):
    feats = _features(n_subjects=2, per_class=1, datasets=("casme2", "samm"))
    folds = make_folds(feats, "lodo")
    assert [f.name for f in folds] == ["casme2", "samm"]
    rec = Recorder()
    run_protocol(feats, CLASSES, _cfg(), protocol="lodo", out_dir=tmp_path, hook=rec,
                 progress=False)
    dataset_of = dict(zip(feats.ids, feats.datasets, strict=True))
    for fold, ids in rec.ids("train_batch").items():
        assert {dataset_of[i] for i in ids} == {"casme2", "samm"} - {fold}
    with pytest.raises(ConfigError):
        make_folds(_features(n_subjects=2, per_class=1), "lodo")   # one dataset only


def test_second_run_skips_finished_folds(tmp_path):
    feats = _features(n_subjects=3, per_class=1)
    cfg = _cfg(seeds=(1, 2))
    first = run_protocol(feats, CLASSES, cfg, out_dir=tmp_path, progress=False)
    assert len(first.trained) == 6 and not first.skipped
    assert (tmp_path / "seed_2" / "folds" / "d__S1.json").is_file()
    rec = Recorder()
    again = run_protocol(feats, CLASSES, cfg, out_dir=tmp_path, hook=rec, progress=False)
    assert not again.trained and len(again.skipped) == 6
    assert not rec.ids("train_batch")                      # nothing trained again
    assert again.summary["uf1"]["mean"] == first.summary["uf1"]["mean"]
    # an interrupted run: one fold's file missing -> only that fold is trained
    (tmp_path / "seed_1" / "folds" / "d__S2.json").unlink()
    third = run_protocol(feats, CLASSES, cfg, out_dir=tmp_path, progress=False)
    assert third.trained == [(1, "d/S2")]
    # other settings -> the old folds do not count
    fourth = run_protocol(feats, CLASSES, cfg.replace(lr=5e-4), out_dir=tmp_path,
                          progress=False)
    assert len(fourth.trained) == 6


def test_ablations_change_only_their_inputs():
    g = torch.Generator().manual_seed(0)
    x = {"flow": torch.randn(4, 3, S, S), "frames": torch.rand(4, 3, 1, S, S)}
    assert torch.count_nonzero(apply_ablation(x, "no-flow")["flow"]) == 0
    assert torch.equal(apply_ablation(x, "no-flow")["frames"], x["frames"])
    assert torch.count_nonzero(apply_ablation(x, "no-rgb")["frames"]) == 0
    single = apply_ablation(x, "single-rgb")["frames"]
    assert torch.equal(single[:, 0], x["frames"][:, 1]) and torch.equal(single[:, 2],
                                                                         x["frames"][:, 1])
    permuted = apply_ablation(x, "permuted-rgb", g)["frames"]
    assert torch.equal(permuted.sort(dim=1).values, x["frames"].sort(dim=1).values)
    assert not torch.equal(permuted, x["frames"])
    assert torch.equal(apply_ablation(x, "shuffled-rgb")["flow"], x["flow"])
