"""``mestudio bench live``: a very short run of the real live window (offscreen)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("PySide6")


def test_bench_live_reports_latency_and_counts_every_frame(tmp_path: Path) -> None:
    out = tmp_path / "live.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-m", "mestudio", "bench", "--json", str(out), "live",
         "--seconds", "2", "--fast-seconds", "1", "--warmup", "0.5", "--clip-seconds", "1",
         "--startup-runs", "1"],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    for needle in ("processed fps", "dropped frames", "latency p95 (ms)", "<= 100 at 30 fps",
                   "latency p95 by quarter", "RSS start/end", "load average"):
        assert needle in text, text
    figures = json.loads(out.read_text())["live"]
    nominal, fast = figures["nominal"], figures["fast"]
    assert isinstance(figures["recognition"], bool)
    assert nominal["source_fps"] == 30 and fast["source_fps"] == 120
    assert nominal["processed"] > 0 and nominal["displayed"] > 0
    assert math.isfinite(nominal["latency_p95_ms"]) and nominal["latency_p95_ms"] > 0
    # a new `mestudio live` process: seconds to its first painted frame, and its own memory
    startup = figures["startup"]
    assert len(startup["runs_s"]) == 1 and 0 < startup["first_frame_s_median"] < 60
    assert startup["own_process_rss_max_mb"] > 50
    assert "start to first painted frame" in text and "in its own process" in text
    for run in (nominal, fast):
        # newest frame wins: every captured frame is processed or counted as dropped
        # (one may be in flight when the counters are read)
        assert abs(run["captured"] - run["processed"] - run["dropped"]) <= 3, run


def test_bench_live_headless_drives_the_engine_without_qt(tmp_path: Path) -> None:
    out = tmp_path / "live.json"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mestudio", "bench", "--json", str(out),
         "live", "--headless", "--seconds", "1.5", "--fast-seconds", "0", "--warmup", "0.5",
         "--clip-seconds", "1", "--overlays", "flow,strain", "--no-recognition"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "PySide6" not in proc.stderr  # -X importtime lists every imported module
    figures = json.loads(out.read_text())["live"]
    nominal = figures["nominal"]
    assert figures["headless"] is True and figures["recognition"] is False
    assert nominal["processed"] > 20
    assert abs(nominal["captured"] - nominal["processed"] - nominal["dropped"]) <= 3, nominal
    assert "end of processing" in proc.stdout


def test_bench_live_faces_runs_one_stream_per_face_count(tmp_path: Path) -> None:
    out = tmp_path / "live.json"
    proc = subprocess.run(
        [sys.executable, "-m", "mestudio", "bench", "--json", str(out), "live", "--headless",
         "--faces", "1,2", "--seconds", "1.5", "--warmup", "0.5", "--clip-seconds", "1",
         "--no-recognition"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for needle in ("1 face, 30 fps", "2 faces, 30 fps", "<= 150 with 2 faces",
                   "faces found per frame"):
        assert needle in proc.stdout, proc.stdout
    figures = json.loads(out.read_text())["live"]
    runs = figures["faces"]
    assert sorted(runs) == ["1", "2"] and "fast" not in figures
    for n, run in runs.items():
        assert run["faces"] == int(n) and run["processed"] > 20
        assert run["faces_found_median"] == int(n)  # the replay shows that many faces
        assert math.isfinite(run["latency_p95_ms"])
        assert abs(run["captured"] - run["processed"] - run["dropped"]) <= 3, run
