"""Kiosk event log: what is stored, durability under a killed writer, privacy of the schema."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mestudio.analytics.eventlog import COLUMNS, EventLog, EventLogError
from mestudio.types import Prediction, SpotEvent


def _event(kind="micro", label="surprise", conf=0.8, onset_s=1.0, offset_s=1.3):
    pred = None
    if label is not None:
        pred = Prediction(probs=np.array([conf, 1 - conf], np.float32), label=label,
                          confidence=conf, classes=(label, "other"),
                          cams=np.ones((2, 5, 8, 8), np.float32))
    return SpotEvent(onset=30, apex=35, offset=39, onset_s=onset_s, apex_s=onset_s + 0.15,
                     offset_s=offset_s, kind=kind, roi="brows", peak=1.2, prediction=pred)


def test_logged_events_read_back_with_exactly_the_logged_fields(tmp_path):
    db = tmp_path / "kiosk.sqlite"
    with EventLog(db, exhibit="hall-a") as elog:
        elog.log_spot_event(_event())
        elog.log_spot_event(_event(kind="macro", label=None, offset_s=3.0))
        elog.log("visit", duration_s=12.5, exhibit="hall-b")
    with EventLog(db, readonly=True) as elog:
        rows = elog.events()
        assert [r.kind for r in rows] == ["micro", "macro", "visit"]
        micro, macro, visit = rows
        assert micro.exhibit == "hall-a" and micro.emotion == "surprise"
        assert micro.confidence == pytest.approx(0.8) and micro.duration_s == pytest.approx(0.3)
        assert macro.emotion is None and macro.confidence is None
        assert macro.duration_s == pytest.approx(2.0)
        assert visit.exhibit == "hall-b" and visit.duration_s == pytest.approx(12.5)
        assert abs(micro.time_unix - time.time()) < 60
        assert micro.local_datetime.tzinfo is not None
        assert elog.count("micro") == 1 and elog.count() == 3
        assert [r.kind for r in elog.events(exhibit="hall-b")] == ["visit"]


def test_schema_holds_no_image_face_or_identity_columns(tmp_path):
    db = tmp_path / "kiosk.sqlite"
    EventLog(db).close()
    con = sqlite3.connect(db)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables - {"sqlite_sequence"} == {"events", "meta"}
    cols = [r[1] for r in con.execute("PRAGMA table_info(events)")]
    assert tuple(cols) == COLUMNS
    types = {r[2].upper() for r in con.execute("PRAGMA table_info(events)")}
    assert "BLOB" not in types
    con.close()


def test_database_runs_in_wal_mode_with_full_sync(tmp_path):
    elog = EventLog(tmp_path / "k.sqlite")
    try:
        conn = elog._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        elog.close()


def test_invalid_values_are_refused_or_clamped(tmp_path):
    with EventLog(tmp_path / "k.sqlite") as elog:
        with pytest.raises(ValueError):
            elog.log("portrait")
        elog.log("micro", confidence=1.7, duration_s=-1)
        (row,) = elog.events()
        assert row.confidence == 1.0 and row.duration_s == 0.0


def test_not_a_database_gives_a_user_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(EventLogError):
        EventLog(bad, readonly=True)
    with pytest.raises(EventLogError, match="does not exist"):
        EventLog(tmp_path / "missing.sqlite", readonly=True)


_WRITER = textwrap.dedent("""
    import sys, time
    from mestudio.analytics.eventlog import EventLog
    elog = EventLog(sys.argv[1], exhibit="soak")
    i = 0
    while True:
        rowid = elog.log("micro", emotion="happiness", confidence=0.5, duration_s=0.2)
        print(rowid, flush=True)   # acknowledged only after COMMIT returned
        i += 1
""")


def test_nothing_acknowledged_is_lost_when_the_writer_is_killed(tmp_path):
    db = tmp_path / "kiosk.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    acked: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(acked) < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        proc.send_signal(signal.SIGKILL)  # mid-stream, no clean-up
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acked) >= 40, "writer did not start"
    with EventLog(db, readonly=True) as elog:
        ids = [r.id for r in elog.events()]
        assert elog.integrity_ok()
    assert set(acked) <= set(ids)
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    # the file is still writable after the crash
    with EventLog(db) as elog:
        elog.log("visit", duration_s=1.0)
        assert elog.count() == len(ids) + 1
