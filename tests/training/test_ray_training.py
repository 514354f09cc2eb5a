"""``mestudio train --ray`` and ``mestudio data prepare --ray`` on a small synthetic release.

The folds run as Ray tasks through the local paths' per-fold function: the same predictions
as ``--workers 1``; a fold task that raises is retried once by Ray and, failing again,
reported (exit 1, ``failed_folds.json``) while the other folds finish. Without Ray, ``--ray``
is one line with the install command and exit 2. One local Ray (2 CPUs) serves the module.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mestudio.cli import main
from mestudio.raysupport import INSTALL_HINT, ray_available
from mestudio.training.synthetic import SyntheticSettings, generate

pytestmark = pytest.mark.usefixtures("torch_one_thread")

needs_ray = pytest.mark.skipif(not ray_available(),
                               reason=f"Ray is not installed ({INSTALL_HINT})")
FOLDS = ("synthetic/S01", "synthetic/S02")


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """2 identities (= 2 LOSO folds) x 5 classes x 2 samples, 128 px frames."""
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticSettings(per_class=2, max_identities=2, min_identities=2,
                                     video_frames=0, crop_size=128), workers=2, progress=False)
    return root


def _cli(args: list[str]) -> int:
    """``main(args)`` from a module fixture (the autouse logging restore is per test)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return main(args)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _train_args(release: Path, cache: Path, out: Path) -> list[str]:
    return ["train", "--dataset", "synthetic", "--root", str(release), "--model", "m3enet",
            "--seeds", "1", "--epochs", "1", "--batch-size", "8", "--set", "aug_expansion=1",
            "--threads", "1", "--cache", str(cache), "--out", str(out), "--no-final",
            "--no-progress", "--prepare-workers", "1"]


@pytest.fixture(scope="module")
def cache(release, tmp_path_factory) -> Path:
    """The features, prepared by the local path."""
    cache = tmp_path_factory.mktemp("features")
    assert _cli(["data", "prepare", "--dataset", "synthetic", "--root", str(release), "--cache",
                 str(cache), "--prepare-workers", "2", "--no-progress"]) == 0
    return cache


@pytest.fixture(scope="module")
def reference(release, cache, tmp_path_factory) -> Path:
    """``train --workers 1``: the fold records every other executor must reproduce."""
    out = tmp_path_factory.mktemp("run-local")
    assert _cli(_train_args(release, cache, out) + ["--workers", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray with 2 CPUs for the module (its session files in a short temp folder)."""
    if not ray_available():
        pytest.skip(f"Ray is not installed ({INSTALL_HINT})")
    from mestudio.raysupport import start_ray

    temp = tempfile.mkdtemp(prefix="ray")
    session = start_ray(num_cpus=2, temp_dir=temp)
    assert session.started and not session.cluster
    yield session
    session.close()
    shutil.rmtree(temp, ignore_errors=True)


def _fold_records(out: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["fold"]: json.loads(p.read_text())
            for p in sorted((out / "seed_1" / "folds").glob("*.json"))}


def _assert_same_folds(a: dict, b: dict) -> None:
    for key in ("fold", "seed", "epoch", "history", "predictions", "config_digest",
                "train_subjects", "test_subjects", "samples_seen"):
        assert a[key] == b[key], key


@needs_ray
def test_train_ray_gives_the_predictions_of_workers_1(ray_session, release, cache, reference,
                                                      tmp_path, capsys):
    out = tmp_path / "run-ray"
    capsys.readouterr()
    assert main(_train_args(release, cache, out) + ["--ray"]) == 0
    text = capsys.readouterr().out
    assert "local Ray, 2 CPUs" in text and "LOSO (2 folds, 1 seed(s)): UF1" in text
    ref, got = _fold_records(reference), _fold_records(out)
    assert sorted(ref) == sorted(got) == list(FOLDS)
    for fold in FOLDS:
        _assert_same_folds(got[fold], ref[fold])
    assert json.loads((out / "report.json").read_text())["summary"] == \
        json.loads((reference / "report.json").read_text())["summary"]
    assert not (out / "failed_folds.json").exists()


@needs_ray
def test_failing_fold_is_retried_once_then_reported(ray_session, release, cache, reference,
                                                    tmp_path, capsys, monkeypatch):
    """S01 fails its first attempt only: Ray's retry trains it (same predictions). S02 fails
    every attempt: tried twice, then reported; the run exits 1 and keeps S01's record."""
    out = tmp_path / "run-failing"
    monkeypatch.setenv("MESTUDIO_TEST_FAIL_FOLD", f"{FOLDS[0]}:1,{FOLDS[1]}:9")
    capsys.readouterr()
    assert main(_train_args(release, cache, out) + ["--ray"]) == 1
    text = capsys.readouterr().out
    folds_dir = out / "seed_1" / "folds"
    attempts = {f: len((folds_dir / f".{f.replace('/', '__')}.injected-failures")
                       .read_text().splitlines()) for f in FOLDS}
    assert attempts == {FOLDS[0]: 1, FOLDS[1]: 2}          # first try + one retry, no more
    got = _fold_records(out)
    assert list(got) == [FOLDS[0]]                          # the retried fold is done
    _assert_same_folds(got[FOLDS[0]], _fold_records(reference)[FOLDS[0]])
    assert "FAILED    1 fold(s) after 2 attempts" in text
    assert f"seed 1 fold {FOLDS[1]}: RuntimeError: injected failure 2 of fold" in text
    failed = json.loads((out / "failed_folds.json").read_text())
    assert [(f["seed"], f["fold"], f["attempts"]) for f in failed] == [(1, FOLDS[1], 2)]
    assert not (out / "report.json").exists()               # no pooled figures without S02
    # without the failure, a second run trains only S02 and pools both
    monkeypatch.delenv("MESTUDIO_TEST_FAIL_FOLD")
    assert main(_train_args(release, cache, out) + ["--ray"]) == 0
    assert "LOSO (2 folds, 1 seed(s))" in capsys.readouterr().out
    assert not (out / "failed_folds.json").exists()


@needs_ray
def test_data_prepare_ray_writes_the_local_cache(ray_session, release, cache, tmp_path,
                                                 capsys):
    cache_ray = tmp_path / "features-ray"
    args = ["data", "prepare", "--dataset", "synthetic", "--root", str(release), "--cache",
            str(cache_ray), "--no-progress", "--ray"]
    assert main(args) == 0
    assert "20 computed, 0 from the cache, 0 failed" in capsys.readouterr().out
    local = sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file())
    remote = sorted(p.relative_to(cache_ray) for p in cache_ray.rglob("*") if p.is_file())
    assert local == remote and sum(p.suffix == ".npz" for p in local) == 20
    for rel in local:
        if rel.suffix != ".npz":
            assert (cache / rel).read_bytes() == (cache_ray / rel).read_bytes()
            continue
        with np.load(cache / rel) as a, np.load(cache_ray / rel) as b:
            assert a.files == b.files
            for k in a.files:    # arrays bit for bit, and the metadata (fingerprint, spec)
                assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), (rel, k)
    assert main(args) == 0                                   # resumable, as the local path
    assert "0 computed, 20 from the cache" in capsys.readouterr().out


@needs_ray
def test_shared_storage_probe(ray_session, tmp_path):
    from mestudio.errors import ConfigError
    from mestudio.raysupport import RaySession, _probe, check_shared_storage

    with pytest.raises(ConfigError, match="absolute"):
        check_shared_storage(ray_session, write=[Path("relative/out")])
    with pytest.raises(ConfigError, match="does not exist"):
        check_shared_storage(ray_session, read=[tmp_path / "nowhere"])
    # as connected to a cluster: one probe task per node, the token files removed after
    as_cluster = RaySession(ray_session.ray, "test-cluster", started=False)
    check_shared_storage(as_cluster, read=[tmp_path], write=[tmp_path])
    assert list(tmp_path.iterdir()) == []
    # what a node answers when it does not see the driver's token (another disk)
    assert _probe([str(tmp_path / "nowhere")], [str(tmp_path / ".mestudio-probe-x")]) == \
        [str(tmp_path / "nowhere"), str(tmp_path)]


@pytest.mark.parametrize("command", ["train", "prepare"])
def test_ray_flag_without_ray_is_one_line_and_exit_2(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)            # `import ray` fails
    args = (["train", "--dataset", "synthetic"] if command == "train"
            else ["data", "prepare", "--dataset", "synthetic"])
    assert main(args + ["--root", str(tmp_path / "none"), "--ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and INSTALL_HINT in err[0], err
    assert not (tmp_path / "none").exists()                  # nothing done before the check
