"""``mestudio analyze`` stopped with Ctrl+C, on a full disk and in a read-only folder: the
events found so far are kept, files appear only when complete, a failed re-run leaves the
previous results, and every failure is one line with exit 2."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from robust_cli import ROOT, SmallFs, cli_env, error_line, mestudio, temp_leftovers

OUTPUTS = ("frames.csv", "events.csv", "events.json")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_ctrl_c_writes_the_events_found_so_far_and_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # A long synthetic source (60 s) that the test interrupts after a few seconds.
    proc = subprocess.Popen(
        [sys.executable, "-m", "mestudio", "analyze", "demo:duration=60,seed=0", "--out",
         str(out), "--no-progress"], cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        # Wait until about 4 s of video were processed (frames.csv, still under its
        # temporary name, has grown), so that the planted micro-expressions at ~2.5 s and
        # ~5 s can have been spotted.
        while time.monotonic() < deadline and proc.poll() is None:
            partial = list(out.glob(".frames.csv.*.tmp")) if out.is_dir() else []
            if partial and partial[0].stat().st_size > 24_000:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert not (out / "frames.csv").exists()      # nothing takes its name before the end
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted after frame" in stdout and "incomplete" in stdout
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert temp_leftovers(out) == []
    doc = json.loads((out / "events.json").read_text())
    assert doc["complete"] is False
    rows = _rows(out / "frames.csv")
    # Every frame up to the last one processed has its row, and no more.
    assert doc["last_frame"] == int(rows[-1]["frame"]) == len(rows) - 1
    assert 100 <= doc["last_frame"] < 1799
    assert doc["n_frames"] == len(rows)
    assert len(doc["events"]) >= 1                    # what was spotted is not lost
    assert all(e["offset"] <= doc["last_frame"] for e in doc["events"])
    assert len(_rows(out / "events.csv")) == len(doc["events"])


def test_help_documents_the_exit_codes() -> None:
    from mestudio.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices["analyze"]  # noqa: SLF001
    text = " ".join(sub.format_help().split())
    assert "130" in text and "Ctrl+C" in text and "complete" in text


def test_full_disk_keeps_the_previous_results_and_says_so_in_one_line(
        small_fs: SmallFs) -> None:
    out = small_fs.path / "out"
    first = mestudio("analyze", "demo:duration=1.5,seed=1", "--out", str(out),
                     "--no-recognition", "--no-progress")
    assert first.returncode == 0, first.stderr
    before = {name: (out / name).read_bytes() for name in OUTPUTS}
    small_fs.fill()
    again = mestudio("analyze", "demo:duration=6,seed=2", "--out", str(out),
                     "--no-recognition", "--no-progress")
    line = error_line(again, "analyze")
    assert "disk full" in line and str(out) in line
    # The folder still holds the complete first run, nothing of the failed one.
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before
    assert temp_leftovers(out) == []


def test_read_only_output_folder_is_one_line(small_fs: SmallFs) -> None:
    out = small_fs.path / "out"
    out.mkdir()
    small_fs.read_only()
    proc = mestudio("analyze", "demo:duration=1", "--out", str(out), "--no-recognition",
                    "--no-progress")
    line = error_line(proc, "analyze")
    assert "read-only" in line and str(out) in line
    assert list(out.iterdir()) == []
