"""The synthetic dataset: a LOSO-able release rendered with synth/, prepared and learnable."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from mestudio.cli import main
from mestudio.training import synthetic
from mestudio.training.datasets import get_dataset
from mestudio.training.synthetic import SyntheticSettings, generate

N_IDS, PER_CLASS = 3, 4


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """3 identities x 5 AU-pattern classes x 4 samples (faces from the shared data when
    present, else variants of the scikit-image astronaut)."""
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticSettings(per_class=PER_CLASS, max_identities=N_IDS, video_frames=0,
                                     min_identities=N_IDS), workers=2, progress=False)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("features")


def test_release_is_a_loso_dataset(release, capsys):
    assert main(["data", "check", "--dataset", "synthetic", "--root", str(release)]) == 0
    text = capsys.readouterr().out
    assert f"{N_IDS * 5 * PER_CLASS} usable; {N_IDS} subjects" in text
    samples = get_dataset("synthetic").load(release)
    by_subject: dict[str, set[str]] = {}
    for s in samples:
        by_subject.setdefault(s.subject, set()).add(s.label)
        assert s.onset < s.apex < s.offset and s.frame_paths[0].is_file()
        assert s.folder_frames()[0][0] < s.onset          # neutral frames before the onset
    assert all(labels == set(synthetic.SYNTH_CLASSES) for labels in by_subject.values())
    manifest = json.loads((release / "synthetic.json").read_text())
    identities = [v["identity"] for v in manifest["subjects"].values()]
    assert len(set(identities)) == N_IDS                  # one person per LOSO subject
    # 3-class mapping of the AU patterns
    three = get_dataset("synthetic").load(release, mapping="3class")
    assert {s.label for s in three} == {"negative", "positive", "surprise"}


def test_fallback_identities_are_flagged_as_not_distinct():
    ids, distinct, _ = synthetic._collect_identities(
        SyntheticSettings(faces_dir="none", min_identities=3, video_frames=0))
    assert len(ids) == 3 and distinct is False


def test_prepare_second_run_hits_the_cache(release, cache, capsys):
    args = ["data", "prepare", "--dataset", "synthetic", "--root", str(release), "--cache",
            str(cache), "--prepare-workers", "2"]
    assert main(args) == 0
    first = capsys.readouterr().out
    n = N_IDS * 5 * PER_CLASS
    assert f"{n} computed, 0 from the cache, 0 failed" in first
    t0 = time.perf_counter()
    assert main(args) == 0
    second = capsys.readouterr().out
    assert f"0 computed, {n} from the cache" in second
    assert time.perf_counter() - t0 < 20
    files = list(cache.rglob("*.npz"))
    assert len(files) == n
    with np.load(files[0]) as z:
        assert z["flow"].shape[0] == 3 and z["frames"].shape[:2] == (3, 1)


def test_brief_training_beats_chance(release, cache):
    """LOSO over 3 identities, m3enet, a few epochs: UF1 more than twice chance (0.2); 0.62 measured."""
    from mestudio.training.config import TrainConfig
    from mestudio.training.features import load_features, make_spec, prepare_features
    from mestudio.training.runner import run_protocol

    torch.set_num_threads(1)
    samples = get_dataset("synthetic").load(release)
    spec = make_spec("keyframes")
    prepare_features(samples, cache, spec, workers=2, progress=False)
    feats, missing = load_features(samples, cache, spec)
    assert not missing
    cfg = TrainConfig(epochs=8, batch_size=16, aug_expansion=2, seeds=(1,), final_model=False)
    res = run_protocol(feats, synthetic.SYNTH_CLASSES, cfg, out_dir=cache / "run",
                       progress=False)
    uf1 = res.per_seed[1]["uf1"]
    print(f"synthetic LOSO UF1 {uf1:.3f}, UAR {res.per_seed[1]['uar']:.3f}")
    assert uf1 > 0.45, res.per_seed[1]["confusion"]    # chance: 0.2 (5 balanced classes)
