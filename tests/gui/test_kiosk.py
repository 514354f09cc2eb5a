"""The kiosk: friendly full-screen display, privacy notice, exit keys, events to SQLite and
no picture written anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from mestudio.analytics.eventlog import EventLog
from mestudio.capture.base import FrameSource
from mestudio.capture.live import LiveCapture
from mestudio.config import AppConfig
from mestudio.engine.kiosk import KioskSession
from mestudio.gui.kiosk_window import KioskWindow, load_notice
from mestudio.types import FaceObservation, Frame, FrameResult, Prediction, SpotEvent

ROOT = Path(__file__).resolve().parents[2]


class Clip(FrameSource):
    def __init__(self, n: int = 60) -> None:
        super().__init__()
        self.name, self.fps, self.n_frames, self.size, self.seekable = "clip", 30.0, n, (96, 72), True

    def _read(self, i: int) -> Frame:
        return Frame(i, i / 30.0, np.full((72, 96, 3), 40 + i % 100, np.uint8))


class OneSurprise:
    """Pipeline double: a face throughout, one micro-expression recognised as surprise."""

    model_info = {"name": "scripted"}
    degraded: list[str] = []

    def __init__(self) -> None:
        self.sent = False
        self.events: list[SpotEvent] = []

    def process(self, frame, capture_time=None):
        events, updated = [], []
        if frame.index >= 12 and not self.sent:
            self.sent = True
            ev = SpotEvent(3, 5, 9, 0.1, 0.166, 0.3, "micro", "brows", 1.0, id=0)
            pred = Prediction(np.array([0.7, 0.3], np.float32), "surprise", 0.7,
                              ("surprise", "other"))
            events = [ev]
            updated = [replace(ev, prediction=pred)]
        return FrameResult(frame=frame, face=FaceObservation(face_found=True), events=events,
                           updated_events=updated)

    def finish(self):
        return []

    def close(self):
        pass


def test_notice_says_what_the_kiosk_is_not_and_what_it_keeps():
    text = load_notice()
    assert "not a lie detector" in text
    assert "No pictures, no video and no face data are stored" in text
    for field in ("time", "exhibit", "kind of movement", "emotion", "confidence", "duration"):
        assert field in text


def test_kiosk_window_shows_the_state_logs_and_exits_only_with_the_keys(qtbot, tmp_path):
    cfg = AppConfig()
    cfg.kiosk.exhibit = "hall-3"
    cfg.kiosk.greeting_s = 60.0
    db = tmp_path / "kiosk.sqlite"

    def factory():
        return KioskSession(cfg, lambda: Clip(), db, pipeline=OneSurprise(),
                            capture=LiveCapture(lambda: Clip(), pace=True, loop=True),
                            keep_image=True)

    win = KioskWindow(cfg, factory)
    # the kiosk ignores close requests: stop it explicitly should the test fail midway
    qtbot.addWidget(win, before_close_func=lambda w: w.shutdown())
    win.resize(1280, 720)
    win.show()
    qtbot.waitUntil(lambda: "surprise" in win.headline.text(), timeout=10000)
    assert "not a lie detector" in win.notice.text()
    assert "fleeting expressions: 1" in win.footer.text() and "hall-3" in win.footer.text()
    assert win.frames_shown > 0  # the live mirror shows frames (never stored)
    assert win.cursor().shape() == Qt.CursorShape.BlankCursor
    qtbot.waitUntil(lambda: win.status().processed >= 45, timeout=10000)  # a 1.5 s visit
    # the visitor in front of the screen is counted while the visit goes on...
    qtbot.waitUntil(lambda: "visits: 1 " in win.footer.text(), timeout=10000)
    win.close()  # a visitor's close request (Alt+F4) is ignored
    assert win.isVisible()
    with EventLog(db, readonly=True) as elog:  # ...though it is logged only when it ends
        assert [(r.kind, r.emotion, r.exhibit) for r in elog.events()] == \
            [("micro", "surprise", "hall-3")]
    qtbot.keyClick(win, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=10000)
    assert not win.worker.isRunning()
    with EventLog(db, readonly=True) as elog:
        kinds = [r.kind for r in elog.events()]
    assert kinds == ["micro", "visit"]  # the visit in progress is logged on exit


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm", ".npy", ".npz", ".mp4", ".avi", ".mkv", ".mov", ".webm", ".mjpg"}
MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF", b"\x1aE\xdf\xa3", b"\x93NUMPY")


def _pictures_under(root: Path) -> list[Path]:
    found = []
    for p in root.rglob("*"):
        if not p.is_file():
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES:
            found.append(p)
            continue
        with p.open("rb") as f:
            head = f.read(12)
        if any(head.startswith(m) for m in MAGIC) or head[4:8] == b"ftyp":
            found.append(p)
    return found


@pytest.mark.slow
def test_kiosk_command_writes_events_and_no_picture_anywhere(tmp_path, video_dir):
    source = video_dir / "single_face.mp4"
    home = tmp_path / "home"
    work = tmp_path / "cwd"
    for d in (home, work, tmp_path / "tmp"):
        d.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local/share"), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_STATE_HOME=str(home / ".local/state"), TMPDIR=str(tmp_path / "tmp"),
               QT_QPA_PLATFORM="offscreen", PYTHONDONTWRITEBYTECODE="1")
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "mestudio", "kiosk", "--exhibit", "test-hall", "--source",
         str(source), "--exit-after", "7", "--windowed"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.monotonic() - t0 < 90
    db = home / ".local/share/mestudio/events.sqlite"
    assert db.is_file(), proc.stderr[-2000:]
    with EventLog(db, readonly=True) as elog:
        rows = elog.events()
    assert rows, "the kiosk logged nothing"
    assert {r.exhibit for r in rows} == {"test-hall"}
    assert any(r.kind == "visit" for r in rows)  # the face in the clip is a visitor
    assert _pictures_under(tmp_path) == []


def test_kiosk_command_refuses_a_folder_as_database(tmp_path, capsys):
    from mestudio.cli import main

    assert main(["kiosk", "--db", str(tmp_path), "--source", "demo"]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and len(err.strip().splitlines()) == 1


def test_visitor_words_are_plain_and_staff_see_the_numbers():
    """The visitor screen showed "negative (macro)", "agreement 87 %", "real-data model ·
    3 classes" (issue 22, item 17): visitors read plain words, staff press the staff key."""
    import numpy as np

    from mestudio.engine.kiosk import KioskStatus
    from mestudio.gui.kiosk_window import describe
    from mestudio.types import Prediction, SpotEvent

    pred = Prediction(np.array([0.87, 0.1, 0.03], np.float32), "negative", 0.87,
                      ("negative", "positive", "surprise"))
    for kind, onset, offset, words in (("micro", 10, 16, "A fleeting frown!"),
                                       ("macro", 10, 60, "You frowned")):
        ev = SpotEvent(onset, onset + 2, offset, onset / 30, (onset + 2) / 30, offset / 30,
                       kind, "mouth", 1.0, prediction=pred)
        status = KioskStatus(state="watching", face_found=True, last_event=ev,
                             last_event_wall=1000.0)
        _mood, headline, detail = describe(status, greeting_s=10.0, now=1001.0)
        assert headline == words
        for staff_word in ("%", "macro", "micro", "model", "negative", "agreement"):
            assert staff_word not in headline + detail, (staff_word, headline, detail)
        _mood, _h, staff = describe(status, greeting_s=10.0, now=1001.0, staff=True)
        assert "87 %" in staff and "negative" in staff
