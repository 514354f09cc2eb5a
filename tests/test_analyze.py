"""``mestudio analyze``: frames.csv with spotting columns, events.csv and events.json, the
summary line, degraded modes, and recognition with a model (random and, when shipped, the
synthetic demo model against the planted action-unit patterns)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from mestudio.cli import main
from mestudio.engine.pipeline import NO_MODEL
from mestudio.events_io import CSV_COLUMNS, read_events_csv, read_events_json, write_events_json
from mestudio.spotting.metrics import match_intervals
from mestudio.spotting.rois import ROI_NAMES

DEMO = "demo:duration=10,seed=0,blinks=1"
SPOT_COLUMNS = [*(f"signal_{r}" for r in ROI_NAMES), "signal_combined", "spot_threshold",
                "spot_baseline", "spot_state", "spot_activity"]


def _analyze(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["analyze", *argv, "--no-progress"])
    return code, out.getvalue()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def spotted(tmp_path_factory) -> tuple[Path, str]:  # noqa: ANN001
    out = tmp_path_factory.mktemp("analyze")
    code, stdout = _analyze(DEMO, "--out", str(out), "--no-recognition")
    assert code == 0
    return out, stdout


def test_analyze_writes_the_three_files_with_documented_columns(spotted) -> None:
    out, stdout = spotted
    rows = _rows(out / "frames.csv")
    assert len(rows) == 300
    header = list(rows[0])
    assert header[:9] == ["frame", "timestamp", "face_found", "n_faces", "confidence",
                          "box_x", "box_y", "box_w", "box_h"]
    assert header[-len(SPOT_COLUMNS):] == SPOT_COLUMNS
    assert rows[0]["spot_state"] == "calibrating"
    states = {r["spot_state"] for r in rows}
    assert {"calibrating", "idle", "in_event"} <= states
    assert rows[0]["spot_activity"] == "calibrating"
    assert {r["spot_activity"] for r in rows} <= {"calibrating", "rest", "moving", "expression"}
    for r in rows:
        assert r["face_found"] == "1"
        assert all(r[c] != "" for c in SPOT_COLUMNS)          # every frame has a value
        values = [float(r[c]) for c in SPOT_COLUMNS[:-2]]
        assert np.isfinite(values).all() and min(values[:len(ROI_NAMES)]) >= 0
    with (out / "events.csv").open(newline="") as f:
        ev_header = next(csv.reader(f))
    assert ev_header == list(CSV_COLUMNS)                      # no prob_* without a model
    doc = json.loads((out / "events.json").read_text())
    assert doc["format"] == "mestudio-events/1" and doc["model"] is None
    assert doc["n_frames"] == 300 and doc["fps"] == 30.0
    assert doc["spotter"]["sensitivity"] == 0.5
    events = doc["events"]
    assert 2 <= len(events) <= 5
    for ev in events:
        assert {"onset", "apex", "offset", "onset_s", "apex_s", "offset_s", "kind", "roi",
                "peak", "emotion", "confidence", "probabilities"} <= set(ev)
        assert ev["emotion"] is None and ev["confidence"] is None and ev["probabilities"] == {}
        assert ev["onset_s"] == pytest.approx(ev["onset"] / 30, abs=1e-5)
        assert ev["onset"] <= ev["apex"] <= ev["offset"]
        # The apex frame is in an event in frames.csv, above the threshold.
        apex = rows[ev["apex"]]
        assert float(apex["signal_combined"]) > float(apex["spot_threshold"])
    line = stdout.strip().splitlines()
    assert len(line) == 1
    n_micro = sum(e["kind"] == "micro" for e in events)
    assert (f"{len(events)} events ({n_micro} micro, {len(events) - n_micro} macro)"
            in line[0])
    assert "recognition off" in line[0] and "ms/frame" in line[0]
    assert "events.csv" in line[0] and "events.json" in line[0]


def test_events_files_round_trip(spotted, tmp_path: Path) -> None:
    out, _ = spotted
    events, meta = read_events_json(out / "events.json")
    assert events == read_events_csv(out / "events.csv")
    again = json.loads(write_events_json(tmp_path / "events.json", events, meta).read_text())
    first = json.loads((out / "events.json").read_text())
    for a, b in zip(again.pop("events"), first.pop("events"), strict=True):
        # duration_s is recomputed from the rounded times: equal to 1e-6 s.
        assert a.pop("duration_s") == pytest.approx(b.pop("duration_s"), abs=2e-6)
        assert a == b
    assert again == first


def test_invalid_model_gives_degraded_mode_and_no_emotion(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x00garbage" * 64)
    code, stdout = _analyze(DEMO, "--out", str(tmp_path / "o"), "--model", str(bad),
                            "--max-frames", "90")
    assert code == 0
    line = stdout.strip()
    # ... and it is said before the work starts too, on stderr (a long recording in a
    # degraded mode can be stopped right away)
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "warning:" in ln]
    assert warnings and NO_MODEL in warnings[0]
    assert f"degraded: {NO_MODEL}" in line and "model.onnx" in line
    doc = json.loads((tmp_path / "o" / "events.json").read_text())
    assert doc["model"] is None and any(NO_MODEL in d for d in doc["degraded"])
    assert all(e["emotion"] is None for e in doc["events"])


def test_sensitivity_must_be_between_0_and_1(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    assert main(["analyze", DEMO, "--out", str(tmp_path), "--sensitivity", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sensitivity" in err[0]


def test_no_face_video_writes_empty_events(video_dir: Path, tmp_path: Path) -> None:
    code, stdout = _analyze(str(video_dir / "no_face.mp4"), "--out", str(tmp_path))
    assert code == 0 and "0 events (0 micro, 0 macro" in stdout
    rows = _rows(tmp_path / "frames.csv")
    assert len(rows) == 95 and {r["spot_state"] for r in rows} == {"no_face"}
    assert all(r["signal_combined"] == "" for r in rows)
    assert json.loads((tmp_path / "events.json").read_text())["events"] == []
    assert len(_rows(tmp_path / "events.csv")) == 0


def test_analyze_with_a_model_fills_emotion_columns(tmp_path_factory,  # noqa: ANN001
                                                    tmp_path: Path) -> None:
    from test_recognition import CLASSES, export_random_m3enet

    model = export_random_m3enet(tmp_path_factory)
    code, stdout = _analyze(DEMO, "--out", str(tmp_path), "--model", str(model))
    assert code == 0
    assert "model random_m3enet (synthetic demo model)" in stdout
    assert "degraded" not in stdout
    rows = _rows(tmp_path / "events.csv")
    assert rows and [c for c in rows[0] if c.startswith("prob_")] == \
        [f"prob_{c}" for c in CLASSES]
    for r in rows:
        if r["kind"] == "micro":
            assert r["emotion"] in CLASSES
            probs = np.array([float(r[f"prob_{c}"]) for c in CLASSES])
            assert probs.sum() == pytest.approx(1.0, abs=1e-3)
            assert float(r["confidence"]) == pytest.approx(probs.max(), abs=1e-4)
    doc = json.loads((tmp_path / "events.json").read_text())
    assert doc["model"]["synthetic"] is True and doc["model"]["classes"] == list(CLASSES)
    assert doc["recognition"]["failed"] == 0


def test_shipped_model_recognises_the_planted_au_patterns(tmp_path: Path) -> None:
    """The shipped synthetic model on a synthetic clip: the emotion of each spotted micro
    event that matches a planted one (IoU >= 0.5) is compared with the planted class."""
    from mestudio.modelfiles import find_model
    from mestudio.synth import CLASS_TO_3CLASS

    if find_model("m3enet_synthetic.onnx") is None:
        pytest.skip("models/m3enet_synthetic.onnx is not shipped yet")
    from mestudio.capture import open_source

    spec = "demo:duration=20,seed=4,blinks=1"
    code, stdout = _analyze(spec, "--out", str(tmp_path))
    assert code == 0 and "synthetic demo model" in stdout
    doc = json.loads((tmp_path / "events.json").read_text())
    classes = doc["model"]["classes"]
    with open_source(spec) as src:
        planted = [e for e in src.clip.events if e.kind == "micro"]

    def expected(label: str) -> str:
        return label if label in classes else CLASS_TO_3CLASS[label]

    micro = [e for e in doc["events"] if e["kind"] == "micro"]
    pairs = match_intervals(micro, [{"onset": e.onset, "offset": e.offset} for e in planted])
    hits = [micro[i]["emotion"] == expected(planted[j].label) for i, j, _ in pairs]
    rate = float(np.mean(hits)) if hits else 0.0
    print(f"recognition on matched events: {sum(hits)}/{len(hits)} = {rate:.2f} "
          f"({len(planted)} planted micro, {len(micro)} spotted micro)")
    assert len(hits) >= 4
    assert rate >= 0.6


def test_sigterm_stops_like_ctrl_c_and_keeps_what_was_found(tmp_path: Path) -> None:
    """``kill`` (SIGTERM) on analyze died at once with hidden temporary files left and the
    events lost (issue 22, item 9): it now stops after the current frame, writes the three
    files marked incomplete and exits 130; the next run on the folder removes the
    temporary files a killed run (kill -9) left behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".events.json.0123abcd.tmp"
    stale.write_text("{")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mestudio", "analyze", "demo:duration=300",
                             "--out",
                             str(out), "--no-recognition", "--max-frames", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            p.name.startswith(".frames.csv.") for p in out.iterdir()):
        time.sleep(0.1)
    time.sleep(1.0)                                  # some frames analysed
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    doc = json.loads((out / "events.json").read_text())
    assert doc["complete"] is False and doc["last_frame"] >= 0
    assert (out / "frames.csv").is_file() and (out / "events.csv").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["events.csv", "events.json", "frames.csv"]
    assert "Traceback" not in err
