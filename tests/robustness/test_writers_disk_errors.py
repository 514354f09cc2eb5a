"""``synth``, ``stats --csv/--chart`` and ``review --export`` on a full disk or in a
read-only folder: one line that says what and where, exit 2, no traceback, and no file that
looks complete but is not (a previous complete file stays as it was)."""

from __future__ import annotations

from pathlib import Path

import pytest
from robust_cli import SmallFs, error_line, mestudio, temp_leftovers

from mestudio.analytics.eventlog import EventLog
from mestudio.events_io import write_events_json
from mestudio.types import SpotEvent


def test_synth_on_a_full_disk_leaves_the_previous_clip_and_truth(small_fs: SmallFs) -> None:
    out = small_fs.path / "s"
    first = mestudio("synth", "--out", str(out), "--duration", "0.4", "--size", "64x48",
                     "--no-progress")
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"clip.mp4", "truth.json"}
    small_fs.fill()
    proc = mestudio("synth", "--out", str(out), "--duration", "4", "--seed", "3",
                    "--no-progress")
    line = error_line(proc, "synth")
    assert "disk full" in line and str(out) in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert temp_leftovers(out) == []


def test_synth_frames_in_a_read_only_folder(small_fs: SmallFs) -> None:
    small_fs.read_only()
    proc = mestudio("synth", "--out", str(small_fs.path / "s"), "--duration", "0.3",
                    "--frames", "--no-progress")
    line = error_line(proc, "synth")
    assert "read-only" in line and str(small_fs.path) in line


@pytest.fixture
def event_log(tmp_path: Path) -> Path:
    db = tmp_path / "events.sqlite"
    with EventLog(db, exhibit="hall") as elog:
        for i in range(20):
            elog.log("micro" if i % 2 else "visit", emotion="happiness", confidence=0.7,
                     duration_s=0.3, time_unix=1_700_000_000 + 3600 * i)
    return db


def test_stats_chart_and_csv_on_a_full_disk(small_fs: SmallFs, event_log: Path) -> None:
    chart = small_fs.path / "chart.png"
    chart.write_bytes(b"previous chart")
    small_fs.fill()
    proc = mestudio("stats", "--db", str(event_log), "--chart", str(chart))
    line = error_line(proc, "stats")
    assert "disk full" in line and str(chart) in line     # the file, not a temporary name
    assert chart.read_bytes() == b"previous chart"
    assert temp_leftovers(small_fs.path) == []


def test_stats_csv_in_a_read_only_folder(small_fs: SmallFs, event_log: Path) -> None:
    small_fs.read_only()
    proc = mestudio("stats", "--db", str(event_log), "--csv", str(small_fs.path / "s.csv"))
    line = error_line(proc, "stats")
    assert "read-only" in line and "s.csv" in line


def test_review_export_in_a_read_only_folder(small_fs: SmallFs, video_dir: Path,
                                             tmp_path: Path) -> None:
    video = video_dir / "single_face.mp4"
    events = tmp_path / "events.json"
    write_events_json(events, [SpotEvent(10, 14, 20, 10 / 30, 14 / 30, 20 / 30, "micro",
                                         "brows", 1.0, id=0)],
                      {"source": str(video), "fps": 30.0, "n_frames": 72})
    sheet = small_fs.path / "sheet.xlsx"
    small_fs.read_only()
    proc = mestudio("review", str(video), "--events", str(events), "--export", str(sheet))
    line = error_line(proc, "review")
    assert "read-only" in line and str(sheet) in line
    assert not sheet.exists()
