"""The headless kiosk pipeline: what ends up in the event log (and nothing else)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from mestudio.analytics.eventlog import EventLog
from mestudio.capture.base import FrameSource
from mestudio.capture.live import LiveCapture
from mestudio.config import AppConfig
from mestudio.engine.kiosk import KioskSession, VisitTracker
from mestudio.types import FaceObservation, Frame, FrameResult, Prediction, SpotEvent


class Clip(FrameSource):
    """``n`` small frames at 30 fps, seekable."""

    def __init__(self, n: int = 90) -> None:
        super().__init__()
        self.name, self.fps, self.n_frames, self.size, self.seekable = "clip", 30.0, n, (64, 48), True

    def _read(self, i: int) -> Frame:
        return Frame(i, i / 30.0, np.full((48, 64, 3), i % 255, np.uint8))


class Scripted:
    """Pipeline double: face in view on frames [face_from, face_to); emits the given events
    at their ``emitted_index``; a micro event's prediction arrives ``delay`` frames later
    (``None`` label: never)."""

    def __init__(self, script, face=(0, 10**9), delay=3, model=True, kinds=None):
        self.script = sorted(script, key=lambda s: s[0].emitted_index)
        #: the recogniser's kinds (None: no recogniser object, micro only)
        self.recognizer = SimpleNamespace(kinds=tuple(kinds)) if kinds else None
        self.kinds = tuple(kinds) if kinds else ("micro",)
        self.face = face
        self.delay = delay
        self.pending = []
        self.model_info = {"name": "scripted"} if model else None
        self.events = []
        self.closed = False

    def process(self, frame, capture_time=None):
        events, updated = [], []
        while self.script and frame.index >= self.script[0][0].emitted_index:
            ev, label = self.script.pop(0)
            events.append(ev)
            self.events.append(ev)
            if label is not None and self.model_info is not None and ev.kind in self.kinds:
                self.pending.append((frame.index + self.delay, ev, label))
        for item in list(self.pending):
            if frame.index >= item[0]:
                self.pending.remove(item)
                pred = Prediction(np.array([0.8, 0.2], np.float32), item[2], 0.8,
                                  (item[2], "other"))
                updated.append(replace(item[1], prediction=pred))
        found = self.face[0] <= frame.index < self.face[1]
        return FrameResult(frame=frame, face=FaceObservation(face_found=found),
                           events=events, updated_events=updated)

    def finish(self):
        return []

    def close(self):
        self.closed = True


def _ev(i, onset, offset, kind="micro", emitted=None):
    return SpotEvent(onset, onset + 1, offset, onset / 30, (onset + 1) / 30, offset / 30, kind,
                     "brows", 1.0, emitted_index=emitted if emitted is not None else offset + 5,
                     id=i)


class FakeClock:
    def __init__(self):
        self.t = 1_700_000_000.0

    def __call__(self):
        self.t += 0.1
        return self.t


def _run(session, n_steps=200):
    for _ in range(n_steps):
        st = session.step(timeout=1.0)
        if st.state == "ended":
            break
    session.close()


def test_kiosk_session_logs_events_visits_and_nothing_else(tmp_path):
    cfg = AppConfig()
    cfg.kiosk.exhibit = "hall-7"
    cfg.kiosk.prediction_wait_s = 1.0
    script = [(_ev(0, 10, 18), "surprise"),          # emotion arrives 3 frames later
              (_ev(1, 30, 70, "macro"), None),        # macro: logged at once
              (_ev(2, 40, 48), None)]                 # micro whose emotion never comes
    pipe = Scripted(script, face=(5, 60))
    db = tmp_path / "k.sqlite"
    clock = FakeClock()
    cap = LiveCapture(lambda: Clip(90), pace=True)  # paced: no frame is skipped at 30 fps
    session = KioskSession(cfg, lambda: Clip(90), db, pipeline=pipe, capture=cap, clock=clock)
    _run(session)
    assert pipe.closed
    with EventLog(db, readonly=True) as elog:
        rows = elog.events()
    kinds = [(r.kind, r.emotion) for r in rows]
    assert ("micro", "surprise") in kinds
    assert ("macro", None) in kinds
    assert ("micro", None) in kinds  # logged without an emotion after the wait
    visits = [r for r in rows if r.kind == "visit"]
    assert len(visits) == 1 and visits[0].duration_s > 1.0
    assert {r.exhibit for r in rows} == {"hall-7"}
    assert len(rows) == 4
    assert session.logged == {"micro": 2, "macro": 1, "visit": 1}
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("k.sqlite")) == []


def test_a_macro_event_waits_for_its_emotion_when_the_recogniser_handles_macro(tmp_path):
    cfg = AppConfig()
    cfg.kiosk.prediction_wait_s = 1.0
    script = [(_ev(0, 10, 18), "surprise"), (_ev(1, 30, 70, "macro"), "happiness")]
    pipe = Scripted(script, face=(5, 60), kinds=("micro", "macro"))
    db = tmp_path / "k.sqlite"
    cap = LiveCapture(lambda: Clip(90), pace=True)
    session = KioskSession(cfg, lambda: Clip(90), db, pipeline=pipe, capture=cap,
                           clock=FakeClock())
    assert session.recognised_kinds == ("micro", "macro")
    _run(session)
    with EventLog(db, readonly=True) as elog:
        kinds = [(r.kind, r.emotion) for r in elog.events()]
    assert ("micro", "surprise") in kinds and ("macro", "happiness") in kinds


def test_without_a_model_micro_events_are_logged_at_once(tmp_path):
    cfg = AppConfig()
    pipe = Scripted([(_ev(0, 10, 18), "happiness")], model=False)
    cap = LiveCapture(lambda: Clip(40), pace=True)
    session = KioskSession(cfg, lambda: Clip(40), tmp_path / "k.sqlite", pipeline=pipe,
                           capture=cap, clock=FakeClock())
    status = None
    for _ in range(100):
        status = session.step(timeout=1.0)
        if session.logged["micro"]:
            break
    assert session.logged["micro"] == 1 and status.last_event is not None
    assert status.counts["micro"] == 1
    session.close()


def test_visit_tracker_ignores_short_gaps_and_glimpses():
    v = VisitTracker(min_s=1.0, gap_s=2.0)
    ended = [v.update(face, t / 10) for t, face in enumerate(
        [True] * 15 + [False] * 10 + [True] * 10 + [False] * 25 + [True] * 3 + [False] * 30)]
    durations = [d for d in ended if d is not None]
    assert len(durations) == 1  # the 1.5 s gap did not split the visit; the glimpse is no visit
    assert abs(durations[0] - 3.4) < 1e-6
    assert v.finish() is None


class FlakyCamera(FrameSource):
    """A live source that is 'unplugged' after 15 frames the first time it is opened."""

    opened = 0

    def __init__(self) -> None:
        super().__init__()
        FlakyCamera.opened += 1
        self.first = FlakyCamera.opened == 1
        self.name, self.fps, self.n_frames, self.size, self.seekable = "cam", 30.0, None, (64, 48), False

    def __iter__(self):
        import time

        from mestudio.errors import CameraError

        for i in range(10**6):
            if self.closed:
                return
            if self.first and i == 15:
                raise CameraError("camera 0 disconnected")
            time.sleep(1 / 60)
            yield Frame(i, i / 30.0, np.zeros((48, 64, 3), np.uint8))


def test_kiosk_session_survives_an_unplugged_camera(tmp_path):
    cfg = AppConfig()
    cfg.capture.reopen_initial_s = 0.3
    cfg.capture.reopen_max_s = 0.3
    FlakyCamera.opened = 0
    cap = LiveCapture(FlakyCamera, cfg.capture)
    session = KioskSession(cfg, FlakyCamera, tmp_path / "k.sqlite",
                           pipeline=Scripted([], model=False), capture=cap)
    states = []
    for _ in range(200):
        states.append(session.step(timeout=0.2).state)
        if "reconnecting" in states and states[-1] == "watching" and session.processed > 30:
            break
    session.close()
    assert "reconnecting" in states
    assert states[-1] == "watching" and FlakyCamera.opened >= 2


def test_counts_are_of_what_was_written_when_the_disk_is_full(tmp_path):
    """A full disk: every write fails; the close line said ``logged {'micro': 1, 'macro':
    6, 'visit': 1}`` with 0 rows written (issue 22, item 10). Counts are of stored rows."""
    from mestudio.analytics.eventlog import EventLogError

    cfg = AppConfig()
    cfg.kiosk.prediction_wait_s = 1.0
    script = [(_ev(0, 10, 18), None), (_ev(1, 30, 70, "macro"), None)]
    pipe = Scripted(script, face=(5, 60))
    cap = LiveCapture(lambda: Clip(90), pace=True)
    session = KioskSession(cfg, lambda: Clip(90), tmp_path / "k.sqlite", pipeline=pipe,
                           capture=cap, clock=FakeClock())

    def full(*a, **k):
        raise EventLogError("database or disk is full")

    session.elog.log_spot_event = full
    session.elog.log = full
    _run(session)
    assert session.logged == {"micro": 0, "macro": 0, "visit": 0}
    assert any("disk is full" in n for n in session.notices)


def test_todays_counts_are_of_this_exhibit(tmp_path):
    """Two exhibits share one log: the footer of "Demo" showed mostly the other exhibit's
    counts (issue 22, item 17). Counts are per exhibit."""
    from mestudio.analytics.eventlog import EventLog

    db = tmp_path / "k.sqlite"
    import time as _time

    with EventLog(db) as elog:
        for i in range(5):
            elog.log_spot_event(_ev(i, 10 + i, 12 + i), exhibit="Hall", time_unix=_time.time())
        elog.log_spot_event(_ev(9, 40, 42), exhibit="Demo", time_unix=_time.time())
    cfg = AppConfig()
    cfg.kiosk.exhibit = "Demo"
    session = KioskSession(cfg, lambda: Clip(10), db, pipeline=Scripted([]),
                           capture=LiveCapture(lambda: Clip(10), pace=True), clock=FakeClock())
    try:
        assert session.counts_today()["micro"] == 1
    finally:
        session.close()
