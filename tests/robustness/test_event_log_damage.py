"""A damaged kiosk event log: the kiosk keeps working (the file is moved aside, a fresh log
started, the operator told), and ``mestudio stats`` reads what it can, reports the damage in
one line, and reads logs on read-only media without creating -wal/-shm files."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from robust_cli import SmallFs, mestudio

from mestudio.analytics.eventlog import EventLog
from mestudio.config import AppConfig
from mestudio.engine.kiosk import KioskSession
from mestudio.types import FaceObservation, Frame, FrameResult, SpotEvent

PAGE = 4096


def _log_with_rows(path: Path, n: int) -> None:
    """An event log of ``n`` micro events (one transaction: fast)."""
    EventLog(path, exhibit="hall").close()
    conn = sqlite3.connect(str(path))
    with conn:
        conn.executemany(
            "INSERT INTO events (time, time_unix, exhibit, kind, emotion, confidence, "
            "duration_s) VALUES ('2023-11-14T22:13:20+00:00', ?, 'hall', 'micro', "
            "'happiness', 0.6, 0.3)", [(1_700_000_000 + 60 * i,) for i in range(n)])
    conn.close()


def _damage(path: Path, first_page: int, pages: int = 3) -> None:
    """Overwrite whole pages of the file with garbage (what a failing disk does)."""
    rng = np.random.default_rng(0)
    with open(path, "r+b") as f:
        f.seek(first_page * PAGE)
        f.write(rng.integers(0, 256, pages * PAGE, dtype=np.uint8).tobytes())


class OneEventPipeline:
    """Pipeline double: a face on every frame and a macro event at frame 3."""

    model_info = None
    degraded: list[str] = []

    def process(self, frame: Frame, capture_time: float | None = None) -> FrameResult:
        events = [SpotEvent(0, 1, 2, 0.0, 0.03, 0.07, "macro", "mouth", 1.0, 3, id=0)] \
            if frame.index == 3 else []
        return FrameResult(frame=frame, face=FaceObservation(face_found=True), events=events)

    def finish(self) -> list[SpotEvent]:
        return []

    def close(self) -> None:
        pass


class InstantCapture:
    """Capture double: hands out frames at once, never drops any."""

    status, message, dropped = "running", "", 0

    def __init__(self) -> None:
        self.i = 0

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def get(self, timeout: float = 0.5) -> tuple[Frame, float]:
        self.i += 1
        return Frame(self.i - 1, (self.i - 1) / 30, np.zeros((8, 8, 3), np.uint8)), 0.0


def _session(db: Path) -> KioskSession:
    return KioskSession(AppConfig(), lambda: None, db, pipeline=OneEventPipeline(),
                        capture=InstantCapture())


def test_kiosk_starts_on_a_damaged_log_with_a_fresh_one(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    db = tmp_path / "events.sqlite"
    db.write_bytes(b"this is not a database, a disk error wrote here" * 200)
    with caplog.at_level(logging.ERROR):
        session = _session(db)
        statuses = [session.step() for _ in range(5)]
        session.close()
    aside = list(tmp_path.glob("events.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert statuses[-1].state == "watching"
    assert "damaged" in statuses[-1].notice and aside[0].name in statuses[-1].notice
    assert any("damaged" in r.getMessage() and aside[0].name in r.getMessage()
               for r in caplog.records)
    with EventLog(db, readonly=True) as elog:                # the fresh log works
        assert [e.kind for e in elog.events()] == ["macro"]


def test_kiosk_keeps_logging_when_the_damage_shows_while_running(tmp_path: Path) -> None:
    db = tmp_path / "events.sqlite"
    _log_with_rows(db, 3000)
    session = _session(db)
    assert session.step().notice == ""
    # The disk fails under the running kiosk: pages of the file turn to garbage.
    session.elog._conn.close()                               # noqa: SLF001
    _damage(db, 1, pages=40)
    session.elog._conn = sqlite3.connect(str(db), isolation_level=None,  # noqa: SLF001
                                         check_same_thread=False)
    statuses = [session.step() for _ in range(5)]            # count() and log() meet it
    session.close()
    assert statuses[-1].state == "watching"
    assert "damaged" in statuses[-1].notice
    assert len(list(tmp_path.glob("events.sqlite.corrupt-*"))) == 1
    with EventLog(db, readonly=True) as elog:
        assert [e.kind for e in elog.events()] == ["macro"]


def test_stats_reads_what_it_can_of_a_damaged_log(tmp_path: Path) -> None:
    db = tmp_path / "events.sqlite"
    _log_with_rows(db, 3000)
    pages = os.path.getsize(db) // PAGE
    _damage(db, pages - 12, pages=4)                          # leaves of the events table
    proc = mestudio("stats", "--db", str(db), "--by", "exhibit")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warn = [ln for ln in proc.stderr.splitlines() if "damaged" in ln]
    assert len(warn) == 1 and str(db) in warn[0]
    read = int(proc.stdout.split(": ", 1)[1].split()[0])
    assert 2000 < read < 3000                                # most rows, not all
    assert "damaged file: incomplete" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.sqlite"]  # no -wal/-shm


def test_stats_on_read_only_media(small_fs: SmallFs) -> None:
    db = small_fs.path / "events.sqlite"
    _log_with_rows(db, 5)
    small_fs.read_only()
    proc = mestudio("stats", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert "5 logged events" in proc.stdout
    assert sorted(p.name for p in small_fs.path.iterdir()) == ["events.sqlite"]


def test_kiosk_started_on_a_full_disk_waits_for_space(small_fs: SmallFs) -> None:
    """A kiosk started on a full disk exited 2 with "disk I/O error" (issue 22, item 10):
    it starts, says "disk full", tries again every 5 s, and runs once there is space."""
    import signal
    import subprocess
    import sys
    import time

    db = small_fs.path / "events.sqlite"
    small_fs.fill(leave=0)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1"}
    log = small_fs.path.parent / "kiosk.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mestudio", "kiosk", "--source", "demo",
                                 "--db", str(db), "--windowed", "--exit-after", "60"],
                                stdout=err, stderr=err, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "kiosk cannot start" not in log.read_text():
            time.sleep(0.2)
        for filler in small_fs.path.glob("filler-*"):
            filler.unlink()                        # space again: the next try starts it
        while time.monotonic() < deadline and "capture running" not in log.read_text():
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    text = log.read_text()
    assert rc == 0, text
    assert "disk full" in text and "capture running" in text, text
    assert "kiosk session closed" in text and "Traceback" not in text


def test_stats_reads_a_log_truncated_to_half(tmp_path: Path) -> None:
    """A log cut to half its size (a copy interrupted, a full disk) was refused outright as
    "not a mestudio event log" (issue 22, item 11): the rows that can be read are shown."""
    db = tmp_path / "events.sqlite"
    _log_with_rows(db, 3000)
    size = os.path.getsize(db)
    with open(db, "r+b") as f:
        f.truncate(size // 2 // PAGE * PAGE)
    proc = mestudio("stats", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    warn = [ln for ln in proc.stderr.splitlines() if "damaged" in ln]
    assert len(warn) == 1 and str(db) in warn[0]
    read = int(proc.stdout.split(": ", 1)[1].split()[0])
    assert 500 < read < 3000 and "damaged file: incomplete" in proc.stdout


def test_stats_says_when_an_index_page_is_damaged(tmp_path: Path) -> None:
    """A damaged index page passed silently (issue 22, item 11): the rows are all there, and
    the file's damage is said."""
    db = tmp_path / "events.sqlite"
    _log_with_rows(db, 3000)
    conn = sqlite3.connect(str(db))
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events_time'"
                        ).fetchone()[0]
    conn.close()
    _damage(db, root - 1, pages=1)
    proc = mestudio("stats", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert "3000 logged events" in proc.stdout
    warn = [ln for ln in proc.stderr.splitlines() if "damaged" in ln]
    assert len(warn) == 1 and str(db) in warn[0]
