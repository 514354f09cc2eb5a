"""Offline augmentation (issue 14): the paper's x5 expansion, built per fold from the
fold's TRAINING samples only, on the maps or on the frames before the flow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mestudio.errors import ConfigError
from mestudio.training.augment import (
    OFFLINE_VARIANTS,
    AugmentParams,
    apply_transform,
    offline_variant,
)
from mestudio.training.config import TrainConfig
from mestudio.training.features import FeatureSet, FeatureSpec
from mestudio.training.runner import make_folds, offline_training_set, run_protocol

pytestmark = pytest.mark.usefixtures("torch_one_thread")
S = 24


def _features() -> FeatureSet:
    rng = np.random.default_rng(1)
    ids, labels, subjects = [], [], []
    for s in range(3):
        for c in ("a", "b", "c"):
            ids.append(f"d/S{s}/{c}")
            labels.append(c)
            subjects.append(f"d/S{s}")
    n = len(ids)
    return FeatureSet(ids, labels, subjects, ["d"] * n,
                      {"flow": rng.normal(size=(n, 3, S, S)).astype(np.float32),
                       "frames": rng.random((n, 3, 1, S, S)).astype(np.float32)},
                      FeatureSpec())


def test_offline_set_is_five_variants_of_the_training_samples_only():
    feats = _features()
    cfg = TrainConfig(aug_mode="offline")
    seen: dict[tuple[str, str], np.ndarray] = {}
    for fold in make_folds(feats, "loso"):
        pool = offline_training_set(feats, fold.train, cfg)
        assert len(pool) == 5 * len(fold.train)
        assert set(pool.source) == set(fold.train)
        test_subject = fold.name
        assert not {feats.subjects[i] for i in pool.source} & {test_subject}
        assert not any(i.startswith(test_subject + "/") for i in pool.ids(feats))
        assert sorted(set(pool.variant)) == sorted(OFFLINE_VARIANTS)
        for k, x in pool.inputs.items():
            assert x.shape == (5 * len(fold.train), *feats.inputs[k].shape[1:])
        # the original rows are the samples as they are
        orig = pool.variant == "original"
        np.testing.assert_array_equal(pool.inputs["flow"][orig],
                                      feats.inputs["flow"][pool.source[orig]])
        # a sample's variants are the same in every fold that trains on it
        for row, (i, v) in enumerate(zip(pool.source, pool.variant, strict=True)):
            key = (feats.ids[i], str(v))
            if key in seen:
                np.testing.assert_array_equal(seen[key], pool.inputs["flow"][row])
            seen[key] = pool.inputs["flow"][row]
    assert len(offline_training_set(feats, np.arange(4), cfg.replace(aug_expansion=3))) == 12


def test_offline_variants_are_flip_rotations_and_noise():
    feats = _features()
    idx = np.arange(len(feats))
    pool = offline_training_set(feats, idx, TrainConfig(aug_mode="offline"))
    params = AugmentParams()
    x = {k: torch.from_numpy(v) for k, v in feats.inputs.items()}
    n = len(feats)
    flip = apply_transform(x, torch.ones(n, dtype=torch.bool), torch.zeros(n))
    np.testing.assert_allclose(pool.inputs["flow"][pool.variant == "flip"], flip["flow"].numpy())
    angles = [offline_variant(i, "rotate+", params).angle_deg for i in feats.ids]
    assert all(params.rotation_deg / 2 <= a <= params.rotation_deg for a in angles)
    assert [offline_variant(i, "rotate-", params).angle_deg for i in feats.ids] == \
        [-a for a in angles]
    rot = apply_transform(x, torch.zeros(n, dtype=torch.bool),
                          torch.tensor([math.radians(a) for a in angles]))
    np.testing.assert_allclose(pool.inputs["frames"][pool.variant == "rotate+"],
                               rot["frames"].numpy(), atol=1e-6)
    noisy = pool.inputs["flow"][pool.variant == "noise"]
    diff = noisy - feats.inputs["flow"]
    assert 0 < np.abs(diff).mean() < 0.2 * np.abs(feats.inputs["flow"]).mean()


def test_offline_training_sees_five_times_the_training_samples(tmp_path):
    feats = _features()
    cfg = TrainConfig(epochs=1, batch_size=10, aug_mode="offline", final_model=False)
    trained: dict[str, list[str]] = {}

    def hook(event: str, **info) -> None:
        if event == "train_batch":
            trained.setdefault(info["fold"], []).extend(info["ids"])

    run_protocol(feats, ("a", "b", "c"), cfg, out_dir=tmp_path, hook=hook, progress=False)
    for fold, ids in trained.items():
        assert len(ids) == 1 * 5 * 6                 # epochs x 5 x training samples
        assert not any(i.startswith(fold + "/") for i in ids)
    with pytest.raises(ConfigError, match="aug_stage=frames"):
        offline_training_set(feats, np.arange(3), cfg.replace(aug_stage="frames"))


def test_frames_stage_recomputes_the_flow_from_transformed_crops(tmp_path):
    from mestudio.training.augment import offline_variants
    from mestudio.training.datasets import get_dataset
    from mestudio.training.features import (
        attach_offline_variants,
        load_features,
        make_spec,
        prepare_features,
    )
    from training.fixtures import build_casme2, make_casme2_rows

    rows = make_casme2_rows(n_subjects=2, per_class=1, length=5,
                            classes=("happiness", "disgust"))
    release = build_casme2(tmp_path / "CASME2", layout="cropped", rows=rows, quirks=False,
                           size=48)
    samples = get_dataset("casme2").load(release.root, mapping="native")
    spec = make_spec("keyframes", align="none", align_size=48)
    cache = tmp_path / "cache"
    prepare_features(samples, cache, spec, workers=1, progress=False)
    feats, missing = load_features(samples, cache, spec)
    assert not missing
    params = AugmentParams()
    attach_offline_variants(feats, samples, cache, offline_variants(5), params, progress=False)
    assert sorted(feats.variants) == sorted(set(OFFLINE_VARIANTS) - {"original"})
    flip = feats.variants["flip"]
    # frames of the flip variant are the mirrored frames; its flow was computed again
    np.testing.assert_allclose(flip["frames"], feats.inputs["frames"][..., ::-1], atol=0.02)
    assert flip["flow"].shape == feats.inputs["flow"].shape
    assert not np.allclose(flip["flow"], feats.inputs["flow"])
    pool = offline_training_set(feats, np.array([0, 1]), TrainConfig(aug_mode="offline",
                                                                     aug_stage="frames"))
    assert len(pool) == 10 and set(pool.source) == {0, 1}
    np.testing.assert_array_equal(pool.inputs["flow"][pool.variant == "noise"],
                                  feats.variants["noise"]["flow"][[0, 1]])
    # cached: a second call reads the same arrays
    again = attach_offline_variants(feats.subset(np.arange(len(feats))), samples, cache,
                                    offline_variants(5), params, progress=False)
    np.testing.assert_array_equal(again.variants["rotate+"]["flow"],
                                  feats.variants["rotate+"]["flow"])
