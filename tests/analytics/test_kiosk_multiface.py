"""The kiosk with every face analysed: visits counted by face track, events logged with the
track number only, and the event log's migration from schema version 1 (no ``face``)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import replace

import numpy as np

from mestudio.analytics.eventlog import COLUMNS, SCHEMA_VERSION, EventLog
from mestudio.capture.base import FrameSource
from mestudio.capture.live import LiveCapture
from mestudio.config import AppConfig
from mestudio.engine.kiosk import FaceVisits, KioskSession
from mestudio.types import FaceObservation, FaceResult, Frame, FrameResult, Prediction, SpotEvent


class Clip(FrameSource):
    def __init__(self, n: int = 100) -> None:
        super().__init__()
        self.name, self.fps, self.n_frames, self.size, self.seekable = "clip", 30.0, n, (64, 48), True

    def _read(self, i: int) -> Frame:
        return Frame(i, i / 30.0, np.full((48, 64, 3), 90, np.uint8))


class TwoFaces:
    """Pipeline double of the every-face mode: track ``fid`` is listed on frames
    ``[start, end)`` (a track ends when it is no longer listed); events are emitted at their
    ``emitted_index`` with their ``face_id``; a micro event's emotion comes 2 frames later."""

    def __init__(self, tracks: dict[int, tuple[int, int]], script: list[SpotEvent]) -> None:
        self.tracks = tracks
        self.script = sorted(script, key=lambda e: e.emitted_index)
        self.pending: list[tuple[int, SpotEvent]] = []
        self.model_info = {"name": "scripted"}
        self.events: list[SpotEvent] = []
        self.selected_face = None

    def process(self, frame, capture_time=None):
        i = frame.index
        faces = [FaceResult(fid, FaceObservation(face_found=True, box=(10.0 * fid, 5, 8, 8)))
                 for fid, (a, b) in self.tracks.items() if a <= i < b]
        events, updated = [], []
        while self.script and i >= self.script[0].emitted_index:
            ev = self.script.pop(0)
            events.append(ev)
            self.events.append(ev)
            self.pending.append((i + 2, ev))
        for due, ev in list(self.pending):
            if i >= due:
                self.pending.remove((due, ev))
                pred = Prediction(np.array([0.7, 0.3], np.float32), "surprise", 0.7,
                                  ("surprise", "other"))
                updated.append(replace(ev, prediction=pred))
        primary = faces[0].face if faces else FaceObservation(face_found=False)
        return FrameResult(frame=frame, face=primary, events=events, updated_events=updated,
                           faces=faces)

    def finish(self):
        return []

    def close(self):
        pass


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        self.t += 0.1
        return self.t


def _ev(i: int, onset: int, face: int) -> SpotEvent:
    return SpotEvent(onset, onset + 2, onset + 8, onset / 30, (onset + 2) / 30, (onset + 8) / 30,
                     "micro", "brows", 1.0, emitted_index=onset + 12, id=i, face_id=face)


def test_two_people_at_once_are_two_visits_and_events_carry_their_track(tmp_path):
    cfg = AppConfig()
    cfg.tracker.faces = "all"
    # faces 1 and 2 together for a while; face 3 only glimpsed (no visit)
    pipe = TwoFaces({1: (0, 60), 2: (10, 90), 3: (30, 32)},
                    [_ev(0, 20, 1), _ev(1, 40, 2), _ev(2, 50, 2)])
    db = tmp_path / "k.sqlite"
    cap = LiveCapture(lambda: Clip(100), pace=True)
    session = KioskSession(cfg, lambda: Clip(100), db, pipeline=pipe, capture=cap, clock=Clock())
    most_active = 0
    for _ in range(300):
        st = session.step(timeout=1.0)
        most_active = max(most_active, session.visits.active_count)
        if st.state == "ended":
            break
    session.close()
    assert most_active == 2  # both in view long enough: the screen counts two visitors
    with EventLog(db, readonly=True) as elog:
        rows = elog.events()
    visits = sorted((r.face, r.duration_s) for r in rows if r.kind == "visit")
    assert [f for f, _d in visits] == [1, 2], visits
    assert all(d >= 1.0 for _f, d in visits)
    micro = sorted((r.face, r.emotion) for r in rows if r.kind == "micro")
    assert micro == [(1, "surprise"), (2, "surprise"), (2, "surprise")]
    assert session.logged == {"micro": 3, "macro": 0, "visit": 2}


def test_face_visits_single_track_behaves_like_one_visit_tracker():
    v = FaceVisits(min_s=1.0, gap_s=2.0)
    ended = []
    for t, face in enumerate([True] * 15 + [False] * 10 + [True] * 10 + [False] * 25):
        ended += v.update({0: face}, t / 10)
    assert [f for f, _d in ended] == [0] and abs(ended[0][1] - 3.4) < 1e-6
    # a track that is no longer listed ends its visit at once
    for t in range(20):
        v.update({5: True}, 10 + t / 10)
    assert v.active and v.active_count == 1
    assert [f for f, _d in v.update({}, 12.0)] == [5]
    assert not v.active and v.finish() == []


_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, time_unix REAL NOT NULL,
    exhibit TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('micro', 'macro', 'visit')),
    emotion TEXT,
    confidence REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    duration_s REAL NOT NULL CHECK (duration_s >= 0));
CREATE INDEX events_time ON events (time_unix);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO events (time, time_unix, exhibit, kind, emotion, confidence, duration_s)
    VALUES ('2025-01-02T10:00:00.000+00:00', 1735812000.0, 'hall', 'micro', 'surprise', 0.8,
            0.3);
INSERT INTO events (time, time_unix, exhibit, kind, emotion, confidence, duration_s)
    VALUES ('2025-01-02T10:00:05.000+00:00', 1735812005.0, 'hall', 'visit', NULL, NULL, 12.0);
"""


def _v1_file(path):
    con = sqlite3.connect(path)
    con.executescript(_V1)
    con.commit()
    con.close()


def test_an_old_event_log_is_read_as_it_is_and_migrated_when_written(tmp_path):
    db = tmp_path / "old.sqlite"
    _v1_file(db)
    with EventLog(db, readonly=True) as elog:  # `mestudio stats` on an old file
        rows = elog.events()
    assert [(r.kind, r.face) for r in rows] == [("micro", None), ("visit", None)]
    proc = subprocess.run([sys.executable, "-m", "mestudio", "stats", "--db", str(db),
                           "--by", "exhibit"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hall" in proc.stdout

    with EventLog(db, exhibit="hall") as elog:  # a kiosk opens it: migrated in place
        elog.log_spot_event(_ev(7, 10, 2))
        elog.log("visit", duration_s=3.0, face=2)
    con = sqlite3.connect(db)
    cols = tuple(r[1] for r in con.execute("PRAGMA table_info(events)"))
    version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    con.close()
    assert cols == COLUMNS and int(version) == SCHEMA_VERSION == 2
    with EventLog(db, readonly=True) as elog:
        rows = elog.events()
    assert [(r.kind, r.face) for r in rows] == [("micro", None), ("visit", None),
                                                ("micro", 2), ("visit", 2)]
    assert rows[0].emotion == "surprise" and rows[1].duration_s == 12.0
    EventLog(db).close()  # opening a migrated file again changes nothing
    proc = subprocess.run([sys.executable, "-m", "mestudio", "stats", "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
