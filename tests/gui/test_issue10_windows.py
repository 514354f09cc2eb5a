"""Defects found in the windows (issue 10): text from files and models shown as plain text,
the review window's keys, quit, messages and stored predictions, the live window's replay,
sensitivity, last-event panel, messages and camera menu, layout at 800×600, the kiosk chart."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt

from mestudio.config import AppConfig
from mestudio.errors import MestudioError
from mestudio.events_io import write_events_json
from mestudio.types import SpotEvent

HOSTILE = '<img src="file:///etc/hostname"><b>bold</b>'
FPS, N = 25.0, 60


def _ev(onset, apex, offset, ev_id, kind="micro"):
    return SpotEvent(onset, apex, offset, onset / FPS, apex / FPS, offset / FPS, kind,
                     "brows", 0.8, id=ev_id)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("issue10") / "session.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (96, 72))
    for i in range(N):
        img = np.full((72, 96, 3), 40, np.uint8)
        cv2.circle(img, (48, 36), 10 + i % 5, (90, 140, 200), -1)
        w.write(img)
    w.release()
    return path


@pytest.fixture()
def video(clip, tmp_path):
    """A private copy with two events beside it, one labelled with hostile HTML."""
    path = tmp_path / clip.name
    path.write_bytes(clip.read_bytes())
    write_events_json(tmp_path / "events.json", [_ev(5, 8, 12, 0), _ev(30, 33, 40, 1)],
                      {"source": path.name, "fps": FPS, "n_frames": N})
    doc = json.loads((tmp_path / "events.json").read_text())
    doc["events"][0]["label"] = HOSTILE
    (tmp_path / "events.json").write_text(json.dumps(doc))
    return path


def _review(qtbot, video, **kw):
    from mestudio.gui.review_window import ReviewWindow

    kw.setdefault("analyze", False)
    kw.setdefault("engine_factory", lambda: None)
    win = ReviewWindow(video, **kw)
    win.ask_on_close = False
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


# ------------------------------------------------------------------ item 7: plain text
def test_review_panel_shows_an_html_label_as_typed(qtbot, video):
    win = _review(qtbot, video)
    try:
        win.select(0)
        qtbot.waitUntil(lambda: HOSTILE in win.panel.title.text(), timeout=5000)
        assert win.panel.title.textFormat() == Qt.TextFormat.PlainText
        for label in (win.panel.notes, win.panel.cam_title, win.position_label,
                      win.mark_label, win.plot._note):
            assert label.textFormat() == Qt.TextFormat.PlainText
    finally:
        win.shutdown()


def test_live_window_status_labels_and_tooltips_are_plain(qtbot, make_window, fakes):
    window = make_window(pipeline_fn=fakes.scripted_factory())
    for label in window.status_labels.values():
        assert label.textFormat() == Qt.TextFormat.PlainText
    window._on_pipeline_info({"recognition": True, "model_name": HOSTILE,
                              "warning": HOSTILE})
    tip = window.status_labels["model"].toolTip()
    assert "<img" not in tip and "&lt;img" in tip


def test_kiosk_headline_and_detail_are_plain(qtbot):
    from mestudio.gui.kiosk_window import KioskWindow

    def factory():
        raise MestudioError(HOSTILE)

    win = KioskWindow(AppConfig(), factory)
    qtbot.addWidget(win, before_close_func=lambda w: w.shutdown())
    win.show()
    try:
        qtbot.waitUntil(lambda: HOSTILE in win.detail.text(), timeout=5000)
        for label in (win.headline, win.detail, win.footer):
            assert label.textFormat() == Qt.TextFormat.PlainText
    finally:
        win.shutdown()
