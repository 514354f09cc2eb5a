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
    win.activateWindow()  # keys go to the active window
    qtbot.waitUntil(win.isActiveWindow, timeout=3000)
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


# ------------------------------------------------------------------ item 12: review window
class _OneEventAnalysis:
    """Analysis double: a ramp signal, and one event (where the file has two)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.events = [_ev(5, 8, 12, 0)]
        self.degraded: list[str] = []
        self.model_info = None

    def process(self, frame, capture_time=None):
        import time

        from mestudio.types import FaceObservation, FrameResult, SpotterState

        time.sleep(self.delay_s)
        st = SpotterState(signal={"brows": frame.index / 100.0}, combined=frame.index / 100.0,
                          threshold=0.5)
        return FrameResult(frame=frame, face=FaceObservation(face_found=False), spotter=st)

    def finish(self):
        return []

    def close(self):
        pass


def test_review_keys_help_lists_the_keys(qtbot, video):
    from mestudio.gui.review_window import keys_help

    text = keys_help()
    for key in ("Left / Right", "PgUp / PgDn", "Delete", "Ctrl+Z", "Ctrl+E", "Ctrl+Q"):
        assert key in text
    assert "(also listed" not in text
    win = _review(qtbot, video)
    try:
        qtbot.keyClick(win, Qt.Key.Key_F1)
        qtbot.waitUntil(lambda: getattr(win, "_keys_box", None) is not None
                        and win._keys_box.isVisible(), timeout=3000)
        assert "Delete" in win._keys_box.text() and "M " in win._keys_box.text()
        win._keys_box.close()
    finally:
        win.shutdown()


def test_review_ctrl_q_closes_the_window(qtbot, video):
    win = _review(qtbot, video)
    try:
        qtbot.keyClick(win, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: not win.isVisible(), timeout=3000)
    finally:
        win.shutdown()


def test_review_reopening_counts_the_loaded_events_and_says_analysing(qtbot, video):
    win = _review(qtbot, video, analyze=True,
                  pipeline_factory=lambda cfg: _OneEventAnalysis(delay_s=0.01))
    try:
        assert win.analysis_running and len(win.doc) == 2
        assert "analysing" in win.plot.note() and "no motion signal" not in win.plot.note()
        with qtbot.waitSignal(win.analysis_done, timeout=30000):
            pass
        done = [m for m in win.messages if m.startswith("analysis done")]
        assert done and "2 events" in done[-1] and "1 events" not in done[-1]
    finally:
        win.shutdown()


def test_review_delete_clears_the_panel(qtbot, video):
    win = _review(qtbot, video)
    try:
        win.select(1)
        qtbot.waitUntil(lambda: win.panel.details is not None
                        and win.panel.details.event.id == 1, timeout=10000)
        assert "30" in win.panel.tiles["onset"].caption
        win._guard(win.delete_selected)
        assert 1 not in win.doc
        assert win.panel.title.text() == "No event selected"
        assert all(not t.has_image() for t in win.panel.tiles.values())
        assert [t.caption for t in win.panel.tiles.values()] == \
            ["onset", "apex", "offset", "flow", "strain"]
        assert win.panel.probs.title() != "No event yet"
    finally:
        win.shutdown()


# ------------------------------------------------------------------ item 13: stored prediction
def test_review_prediction_of_an_added_event_is_stored(qtbot, video, tmp_path):
    import csv

    from mestudio.engine.event_details import EventDetails
    from mestudio.types import Prediction

    win = _review(qtbot, video)
    try:
        new_id = win.doc.add(44, 50)
        win.select(new_id)
        ann = win.doc.get(new_id)
        pred = Prediction(probs=np.asarray([0.1, 0.8, 0.1], np.float32), label="surprise",
                          confidence=0.8, classes=("happiness", "surprise", "others"))
        win._on_details(EventDetails(event=ann.event, prediction=pred))  # the loader's answer
        stored = win.doc.get(new_id)
        assert stored.event.prediction is pred and stored.label == "surprise"
        row = win.table._ids.index(new_id)
        texts = [win.table.item(row, c).text() for c in range(win.table.columnCount())]
        assert "surprise" in texts  # the label
        assert any(t.startswith("surprise 80") for t in texts)  # the model's prediction
        saved = json.loads(win.doc.save(tmp_path / "a.json").read_text())
        ev = next(e for e in saved["events"] if e["id"] == new_id)
        assert ev["emotion"] == "surprise" and ev["label"] == "surprise"
        rows = list(csv.reader(win.doc.export_csv(tmp_path / "s.csv").open()))
        assert rows[-1][2:5] == ["44", "47", "50"] and rows[-1][6] == "surprise"
        # a label the coder chose is kept when a new prediction arrives
        win.doc.set_label(new_id, "fear")
        win.doc.set_offset(new_id, 52)
        ann = win.doc.get(new_id)
        pred2 = Prediction(probs=np.asarray([0.7, 0.2, 0.1], np.float32), label="happiness",
                           confidence=0.7, classes=("happiness", "surprise", "others"))
        win._on_details(EventDetails(event=ann.event, prediction=pred2))
        assert win.doc.get(new_id).event.prediction is pred2
        assert win.doc.get(new_id).label == "fear"
    finally:
        win.shutdown()


# ------------------------------------------------------------------ item 14: live window
def _recorded_to_the_end(qtbot, make_window, fakes, tmp_path):
    """A live window that played a 30-frame clip to its end while recording it."""
    window = make_window(pipeline_fn=fakes.scripted_factory())
    window.open_callable(lambda: fakes.SyntheticSource(n=30, fps=60.0), "clip",
                         is_camera=False)
    qtbot.waitUntil(lambda: window.source_info is not None, timeout=15000)
    folder = window.recording.start(tmp_path / "recordings")
    with qtbot.waitSignal(window.finished, timeout=30000):
        pass
    return window, folder


def test_replay_stops_a_running_recording_first(qtbot, make_window, fakes, tmp_path):
    window, folder = _recorded_to_the_end(qtbot, make_window, fakes, tmp_path)
    window.toggle_play()  # Space after the end: replay
    assert window.recording.recorder is None  # stopped before the replay's first frame
    events_json = folder / "events.json"
    qtbot.waitUntil(lambda: events_json.is_file() and
                    json.loads(events_json.read_text())["recording"]["complete"],
                    timeout=15000)
    rows = (folder / "timestamps.csv").read_text().splitlines()[1:]
    assert 10 < len(rows) <= 30  # the played clip, none of the replay
    assert any("recording" in m and "saved" in m for m in window.messages)


def test_sensitivity_typed_at_normal_speed_is_kept(qtbot, tmp_path):
    from mestudio.gui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(AppConfig(), None, settings_file=tmp_path / "s.json")
    qtbot.addWidget(dialog)
    dialog.show()
    box = dialog.sensitivity
    box.selectAll()
    qtbot.keyClicks(box, "0.65")
    box.interpretText()  # what Enter / leaving the field does
    assert box.value() == pytest.approx(0.65)
    assert dialog.sensitivity_slider.value() == 65
    dialog.sensitivity_slider.setValue(30)
    assert box.value() == pytest.approx(0.30)


def test_last_event_follows_the_newest_and_says_computing(qtbot, make_window, fakes):
    from test_main_window import packet_for

    window = make_window(pipeline_fn=fakes.scripted_factory())
    window._on_pipeline_info({"recognition": True, "model_name": "m", "spotting": True})
    ev0 = fakes.planted_event(1, 2, 3, 30.0)
    ev0.id = 0
    window.apply_packet(packet_for(fakes, 4, events=[ev0]))
    assert "#0" in window.probs.title()
    assert window.probs.message() == "Computing the emotion…"
    assert "no recognition model" not in window.probs.message()
    ev1 = fakes.planted_event(10, 20, 40, 30.0, kind="macro")
    ev1.id = 1
    window.apply_packet(packet_for(fakes, 41, events=[ev1]))
    assert "#1" in window.probs.title()
    ev2 = fakes.planted_event(50, 52, 55, 30.0)
    ev2.id = 2
    window.apply_packet(packet_for(fakes, 56, events=[ev2]))
    assert "#2" in window.probs.title()


def test_camera_menu_without_cameras_says_so(qtbot, make_window, fakes, monkeypatch):
    import mestudio.capture.camera as camera
    import mestudio.gui.main_window as mw

    probed = []
    monkeypatch.setattr(mw, "list_cameras", lambda: [])
    monkeypatch.setattr(camera, "probe_cameras",
                        lambda indices=range(4), timeout_s=1.5: probed.append(1) or [])
    window = make_window(pipeline_fn=fakes.scripted_factory())
    window._fill_camera_menu()
    acts = window.camera_menu.actions()
    assert probed and [a.text() for a in acts] == ["No camera found"]
    assert not acts[0].isEnabled()
    monkeypatch.setattr(camera, "probe_cameras", lambda indices=range(4), timeout_s=1.5:
                        [(2, (640, 480))])
    window._fill_camera_menu()
    assert [a.text() for a in window.camera_menu.actions()] == ["camera 2"]


def test_missing_camera_says_the_camera_is_not_available(qtbot, make_window, fakes):
    from mestudio.errors import CameraError

    def no_camera():
        raise CameraError("camera 3 cannot be opened (no such device)")

    window = make_window(pipeline_fn=fakes.scripted_factory())
    window.open_callable(no_camera, "camera 3", is_camera=True)
    qtbot.waitUntil(lambda: "not available" in window.video._placeholder, timeout=10000)
    qtbot.wait(300)
    assert "Loading" not in window.video._placeholder


# ------------------------------------------------------------------ item 15: layout
def test_main_window_at_800x600_keeps_every_tool_and_column(qtbot, make_window, fakes):
    window = make_window(pipeline_fn=fakes.scripted_factory())
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.width() == 800, timeout=3000)
    qtbot.wait(50)
    shown = []
    for tb in (window.toolbar, window.view_toolbar):
        for act in tb.actions():
            widget = tb.widgetForAction(act)
            if act.isSeparator() or widget is None:
                continue
            assert widget.isVisible(), act.iconText() or act.text()
            assert tb.rect().contains(widget.geometry()), act.iconText()
            shown.append(act.iconText())
    for name in ("Demo", "Grad-CAM", "Emotion", "Settings…", "Record session"):
        assert name in shown
    assert window.view_toolbar.widgetForAction(
        window.view_toolbar.actions()[-1]) is not None  # the stream box
    assert window.stream_combo.isVisible()
    table = window.events
    from mestudio.gui.widgets.event_table import COLUMNS

    for name in ("emotion", "confidence"):
        col = COLUMNS.index(name)
        right = table.columnViewportPosition(col) + table.columnWidth(col)
        assert table.columnViewportPosition(col) >= 0 and right <= table.viewport().width(), name
    window.resize(1600, 900)  # wide: one row of toolbars again
    qtbot.waitUntil(lambda: not window.toolBarBreak(window.view_toolbar), timeout=3000)


def _shown(qtbot, widget, width: int, height: int):
    """``widget`` at ``width`` x ``height``, shown."""
    qtbot.addWidget(widget)
    widget.resize(width, height)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _shown_plot(qtbot):
    """A 700x220 signal plot, shown."""
    from mestudio.gui.widgets.signal_plot import SignalPlot

    return _shown(qtbot, SignalPlot(), 700, 220)


def test_plot_legend_and_event_labels_leave_the_curves_free(qtbot):

    plot = _shown_plot(qtbot)
    t = np.arange(300) / 30.0
    comb = 0.25 + 0.9 * np.exp(-((t - 9.6) ** 2) / 0.01)  # a peak under the old legend
    ev = SpotEvent(280, 288, 295, 280 / 30, 288 / 30, 295 / 30, "micro", "brows", 0.9, id=0)
    plot.set_whole_video(t, {"brow_left": np.full(300, 0.2)}, threshold=np.full(300, 0.6),
                         combined=comb, events=[ev])
    qtbot.wait(50)
    item = plot.getPlotItem()
    vb = item.getViewBox()
    legend = plot._legend.sceneBoundingRect()
    assert not legend.intersects(vb.sceneBoundingRect())  # a row of its own above
    peak = vb.mapViewToScene(pg_point(9.6, float(comb.max())))
    _ev, _region, label = plot._regions[0]
    label_rect = label.sceneBoundingRect()
    assert label_rect.bottom() <= peak.y() + 1  # above the highest sample
    zero = vb.mapViewToScene(pg_point(0.0, 0.0)).y()
    assert label_rect.bottom() < zero - 20  # not on the curves at y = 0


def pg_point(x: float, y: float):
    from PySide6.QtCore import QPointF

    return QPointF(x, y)


def test_adjacent_event_labels_do_not_overlap(qtbot):
    """Two events a fraction of a second apart: their labels overlapped (issue 22, item
    18); the second goes one row lower, both still above the curves."""

    plot = _shown_plot(qtbot)
    t = np.arange(300) / 30.0
    evs = [SpotEvent(a, a + 3, a + 8, a / 30, (a + 3) / 30, (a + 8) / 30, "micro", "brows",
                     0.9, id=i) for i, a in enumerate((100, 108, 200))]
    plot.set_whole_video(t, {"brow_left": np.full(300, 0.2)}, threshold=np.full(300, 0.6),
                         combined=np.full(300, 0.25), events=evs)
    qtbot.wait(50)
    rects = [plot._regions[i][2].sceneBoundingRect() for i in range(3)]
    assert not rects[0].intersects(rects[1])
    assert rects[2].top() == rects[0].top()          # far apart: the first row again


def _shown_view(qtbot):
    """An 800x600 video view, shown."""
    from mestudio.gui.widgets.video_view import VideoView

    return _shown(qtbot, VideoView(), 800, 600)


def test_gradcam_inset_leaves_the_face_and_its_tag_visible(qtbot):
    """At 800x600 the Grad-CAM inset covered the face box and the emotion tag (issue 22,
    item 18): it goes to a corner away from the face."""
    from PySide6.QtCore import QRectF

    from mestudio.types import FaceObservation

    view = _shown_view(qtbot)
    image = np.full((480, 640, 3), 90, np.uint8)
    box = (440.0, 40.0, 160.0, 180.0)                  # a face in the top right corner
    view.set_frame(image, FaceObservation(face_found=True, box=box))
    view.set_event_view(np.full((64, 64, 3), 128, np.uint8), None)
    view.repaint()
    qtbot.wait(20)
    assert view.inset_rect is not None
    target = view.image_rect()
    s = target.width() / 640
    face = QRectF(target.x() + box[0] * s, target.y() + box[1] * s, box[2] * s, box[3] * s)
    assert not view.inset_rect.intersects(face.adjusted(0, -40, 0, 0))


def test_a_recording_ended_by_a_replay_says_so_and_an_empty_one_leaves_no_folder(
        qtbot, make_window, fakes, tmp_path):
    """Recording, the clip ends, Space replays: the recording ended with no notice; started
    at the clip's end, a replay left a 0-frame folder that review refuses (issue 22, item
    15). Now the video says why it stopped, and a recording without a frame leaves nothing."""
    window, folder = _recorded_to_the_end(qtbot, make_window, fakes, tmp_path)
    window.toggle_play()                      # replay: the recording stops...
    assert "recording stopped (the clip is played again)" in window.video._banner  # visibly
    qtbot.waitUntil(lambda: (folder / "events.json").is_file(), timeout=15000)
    with qtbot.waitSignal(window.finished, timeout=30000):
        pass
    empty = window.recording.start(tmp_path / "recordings")   # at the end of the clip
    window.toggle_play()                      # replay at once: not a frame recorded
    assert window.recording.recorder is None
    qtbot.waitUntil(lambda: not empty.exists(), timeout=15000)
    assert any("no frame was recorded" in m for m in window.messages)


def test_an_event_tag_is_never_drawn_on_another_persons_face(qtbot):
    """Every face analysed: the emotion of face 5's event was drawn over the face shown
    when face 5 was not in view (issue 22, item 16). It is drawn on face 5 while it is in
    view, else in the corner with its number."""
    from mestudio.types import FaceObservation, FaceResult

    view = _shown_view(qtbot)
    image = np.full((480, 640, 3), 90, np.uint8)
    other = FaceObservation(face_found=True, box=(60.0, 100.0, 150.0, 170.0))
    five = FaceObservation(face_found=True, box=(400.0, 100.0, 150.0, 170.0))
    view.set_emotion("happiness", 0.8, "micro", show_s=30.0, face_id=5)
    view.set_frame(image, other, faces=[FaceResult(2, other, None, None, None),
                                        FaceResult(5, five, None, None, None)])
    view.repaint()
    qtbot.wait(20)
    target = view.image_rect()
    s = target.width() / 640
    assert view.emotion_rect is not None
    assert view.emotion_rect.left() >= target.x() + 400 * s - 1          # over face 5
    view.set_frame(image, other, faces=[FaceResult(2, other, None, None, None)])
    view.repaint()
    qtbot.wait(20)
    assert view.emotion_rect is not None
    assert view.emotion_rect.right() < target.x() + 60 * s or \
        view.emotion_rect.bottom() < target.y() + 100 * s - 30             # not on face 2


def test_review_panel_shows_the_numbers_of_the_file(qtbot, video):
    """Review's panel showed other numbers than events.json and the table (71 % against
    49 %) and replaced the stored prediction on a 2-frame apex move without a word (issue
    22, item 12). An event as recognised shows the stored numbers; an edit of its frames
    predicts again and says so."""
    from mestudio.engine.event_details import EventDetails
    from mestudio.types import Prediction

    classes = ("negative", "positive", "surprise")
    win = _review(qtbot, video)
    try:
        ann = win.doc.annotations[0]
        stored = Prediction(np.asarray([0.49, 0.3, 0.21], np.float32), "negative", 0.49,
                            classes)
        win.doc.store_prediction(ann.id, stored)
        win.doc.get(ann.id)
        win.select(ann.id)
        ann = win.doc.get(ann.id)
        other = Prediction(np.asarray([0.2, 0.71, 0.09], np.float32), "positive", 0.71, classes)
        win._on_details(EventDetails(event=ann.event, prediction=other))
        assert win.panel.probs._label == "negative"              # the file's numbers
        assert win.doc.get(ann.id).event.prediction is stored
        win.doc.set_apex(ann.id, ann.apex + 2)                     # a real edit
        ann = win.doc.get(ann.id)
        win._on_details(EventDetails(event=ann.event, prediction=other))
        assert win.doc.get(ann.id).event.prediction is other
        assert any("predicted again" in m for m in win.messages)
    finally:
        win.shutdown()
