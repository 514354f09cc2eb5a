"""``mestudio spot-eval --dataset`` end to end on a tiny CAS(ME)² long-video release made of
synthetic clips (a real face, one planted micro-expression): analysis through
analyze_video, events.json per video, MEGC scores, resuming, the report files, and the
sweep's replay of the recorded spotter inputs being exactly a full re-run."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from mestudio.cli import main
from mestudio.events_io import read_events_json
from mestudio.spotting.config import SpotterConfig
from mestudio.spotting.megc import INPUTS_NAME, load_spotter_inputs, replay_spotter
from training.datasets.longvideo_fixtures import build_synthetic_casme_sq_lv

VIDEO = "s15/15_0101disgustingteeth"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return build_synthetic_casme_sq_lv(tmp_path_factory.mktemp("synth_lv"), duration_s=2.5)


@pytest.fixture(scope="module")
def first_run(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("spot_eval") / "out"
    rc = main(["spot-eval", "--dataset", "cas(me)^2-lv", "--root", str(release.root),
               "--out", str(out), "--sweep", "sensitivity=0.3:0.9:0.3"])
    return rc, out


def _intervals(events):
    return sorted((e.onset, e.apex, e.offset, e.kind) for e in events)


def test_spot_eval_dataset_scores_the_planted_micro_expression(first_run, release, capsys):
    rc, out = first_run
    assert rc == 0
    doc = json.loads((out / "scores.json").read_text())
    assert doc["dataset"] == "casme_sq_lv" and doc["fps"] == 30.0
    micro = doc["pooled"]["micro"]
    assert (micro["tp"], micro["fn"]) == (1, 0)  # the planted micro-expression is found
    overall = doc["pooled"]["overall"]
    assert overall["tp"] == micro["tp"] + doc["pooled"]["macro"]["tp"]
    events, meta = read_events_json(out / "videos" / VIDEO / "events.json")
    assert meta["complete"] is True and meta["fps"] == 30.0 and meta["megc"]["video"] == VIDEO
    planted = release.expected["planted"]["15_0101disgustingteeth"][0]
    micro_events = [e for e in events if e.kind == "micro"]
    assert any(abs(e.apex - planted["apex"]) <= 3 for e in micro_events)  # source indices
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert rows[-1]["video"] == "POOLED" and int(rows[-1]["micro_tp"]) == micro["tp"]
    report = (out / "report.md").read_text()
    assert "mestudio spot-eval --dataset 'cas(me)^2-lv' --root" in report  # shell-quoted
    assert "0.0082" in report and "0.0364" in report and "optimistic" in report
    assert doc["sweep"]["replay_mismatches"] == []
    assert [v["value"] for v in doc["sweep"]["values"]] == [0.3, 0.6, 0.9]
    assert (out / "sweep.csv").is_file()


def test_spot_eval_dataset_resumes_and_force_reruns(first_run, release):
    _, out = first_run
    events_json = out / "videos" / VIDEO / "events.json"
    before = events_json.stat().st_mtime_ns
    assert main(["spot-eval", "--dataset", "casme_sq_lv", "--root", str(release.root),
                 "--out", str(out)]) == 0
    assert events_json.stat().st_mtime_ns == before                 # complete: not re-run
    assert main(["spot-eval", "--dataset", "casme_sq_lv", "--root", str(release.root),
                 "--out", str(out), "--force", "--max-frames", "40"]) == 0
    assert events_json.stat().st_mtime_ns != before
    _, meta = read_events_json(events_json)
    assert meta["n_frames"] == 40


def test_replaying_recorded_spotter_inputs_equals_a_full_rerun(release, tmp_path):
    out1, out2 = tmp_path / "a", tmp_path / "b"
    assert main(["spot-eval", "--dataset", "casme_sq_lv", "--root", str(release.root),
                 "--out", str(out1)]) == 0
    assert main(["spot-eval", "--dataset", "casme_sq_lv", "--root", str(release.root),
                 "--out", str(out2), "--sensitivity", "0.95"]) == 0
    calls = load_spotter_inputs(out1 / "videos" / VIDEO / INPUTS_NAME)
    base, _ = read_events_json(out1 / "videos" / VIDEO / "events.json")
    rerun, _ = read_events_json(out2 / "videos" / VIDEO / "events.json")
    assert _intervals(replay_spotter(calls, SpotterConfig())) == _intervals(base)
    high = dataclasses.replace(SpotterConfig(), sensitivity=0.95)
    assert _intervals(replay_spotter(calls, high)) == _intervals(rerun)


def test_spot_eval_dataset_usage_errors(release, tmp_path, capsys):
    assert main(["spot-eval", "--dataset", "casme2", "--root", str(release.root)]) == 2
    assert "not a long-video release" in capsys.readouterr().err
    assert main(["spot-eval", "--dataset", "casme_sq_lv"]) == 2
    assert main(["spot-eval", "--dataset", "casme_sq_lv", "--root", str(release.root),
                 "--sweep", "signal_size=64:96:16", "--out", str(tmp_path)]) == 2
    assert main(["spot-eval"]) == 2
