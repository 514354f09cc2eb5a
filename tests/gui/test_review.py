"""Review mode: frame-exact stepping, editing with undo, save/reload and export round trip."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt

from mestudio.annotations import AnnotationDocument
from mestudio.csvio import read_frames_csv
from mestudio.events_io import write_events_json
from mestudio.gui.review_window import ReviewWindow
from mestudio.types import SpotEvent

BITS, CELL = 10, 16
W, H = 240, 120
FPS = 25.0
N = 100


def numbered(i: int) -> np.ndarray:
    """A frame whose top band spells ``i`` in binary (survives lossy compression)."""
    img = np.full((H, W, 3), 50, np.uint8)
    cv2.circle(img, (W // 2, 80), 20 + (i % 7), (90, 140, 200), -1)
    for b in range(BITS):
        if (i >> b) & 1:
            img[:32, 8 + b * 22:8 + b * 22 + CELL] = 230
    return img


def decode(img: np.ndarray) -> int:
    g = img.mean(axis=2)
    return sum(1 << b for b in range(BITS)
               if g[6:26, 8 + b * 22 + 3:8 + b * 22 + CELL - 3].mean() > 140)


def _ev(onset, apex, offset, ev_id):
    return SpotEvent(onset, apex, offset, onset / FPS, apex / FPS, offset / FPS, "micro",
                     "brows", 0.8, id=ev_id)


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    d = tmp_path_factory.mktemp("review")
    path = d / "session.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    for i in range(N):
        w.write(numbered(i))
    w.release()
    return path


@pytest.fixture()
def video(numbered_video, tmp_path):
    """A private copy with an events.json beside it."""
    path = tmp_path / numbered_video.name
    path.write_bytes(numbered_video.read_bytes())
    write_events_json(tmp_path / "events.json", [_ev(20, 24, 30, 0), _ev(60, 63, 68, 1)],
                      {"source": path.name, "fps": FPS, "n_frames": N})
    return path


@pytest.fixture()
def window(qtbot, video):
    win = ReviewWindow(video, analyze=False, engine_factory=lambda: None)
    win.ask_on_close = False
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.shutdown()


def _key(qtbot, win, key, mod=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(win, key, mod)


def _shown(win) -> int:
    assert win.current_frame.index == win.index
    return decode(win.current_frame.image)


def test_stepping_lands_on_exact_frames(qtbot, window):
    assert window.n_frames == N and len(window.doc) == 2
    assert _shown(window) == 0
    for _ in range(3):
        _key(qtbot, window, Qt.Key.Key_Right)
    assert window.index == 3 and _shown(window) == 3
    _key(qtbot, window, Qt.Key.Key_PageDown)
    assert window.index == 28 and _shown(window) == 28
    _key(qtbot, window, Qt.Key.Key_Left)
    assert _shown(window) == 27
    _key(qtbot, window, Qt.Key.Key_PageUp)
    assert window.index == 2 and _shown(window) == 2
    _key(qtbot, window, Qt.Key.Key_End)
    assert window.index == N - 1 and _shown(window) == N - 1
    _key(qtbot, window, Qt.Key.Key_Right)  # stays on the last frame
    assert _shown(window) == N - 1
    _key(qtbot, window, Qt.Key.Key_Home)
    assert _shown(window) == 0
    _key(qtbot, window, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)  # next event
    assert window.selected == 0 and _shown(window) == 20
    _key(qtbot, window, Qt.Key.Key_N)
    assert window.selected == 1 and _shown(window) == 60
    _key(qtbot, window, Qt.Key.Key_P)
    assert window.selected == 0 and _shown(window) == 20
    # random access forwards and backwards (seeks across key frames)
    for i in (97, 5, 64, 63, 31, 0, 99, 50):
        window.go_to(i)
        assert _shown(window) == i


def test_playback_moves_forward_in_order_and_pauses(qtbot, window):
    window.set_speed(2.0)
    seen = []
    window.frame_changed.connect(seen.append)
    _key(qtbot, window, Qt.Key.Key_Space)
    assert window.playing
    qtbot.waitUntil(lambda: window.index >= 10, timeout=20000)
    _key(qtbot, window, Qt.Key.Key_Space)
    assert not window.playing
    stopped = window.index
    qtbot.wait(150)
    assert window.index == stopped and _shown(window) == stopped
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    _key(qtbot, window, Qt.Key.Key_Minus)
    assert window.speed == 1.0


def test_edit_undo_save_reload_export_round_trip(qtbot, window, video, tmp_path):
    doc = window.doc
    _key(qtbot, window, Qt.Key.Key_N)  # select event 0, at frame 20
    for _ in range(2):
        _key(qtbot, window, Qt.Key.Key_Right)
    _key(qtbot, window, Qt.Key.Key_O)  # onset -> 22
    window.go_to(26)
    _key(qtbot, window, Qt.Key.Key_A)  # apex -> 26
    window.go_to(34)
    _key(qtbot, window, Qt.Key.Key_F)  # offset -> 34
    assert (doc.get(0).onset, doc.get(0).apex, doc.get(0).offset) == (22, 26, 34)
    _key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.get(0).offset == 30
    _key(qtbot, window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert doc.get(0).offset == 34
    # a refused edit is a message, not a crash
    window.go_to(40)
    _key(qtbot, window, Qt.Key.Key_A)
    assert "between" in window.messages[-1] and doc.get(0).apex == 26
    window.set_label("surprise")
    window.set_aus("AU1+AU2")
    # add an event with M ... M
    window.go_to(80)
    _key(qtbot, window, Qt.Key.Key_M)
    assert window.doc.pending_onset == 80
    window.go_to(86)
    _key(qtbot, window, Qt.Key.Key_M)
    new = window.selected
    assert new not in (0, 1) and (doc.get(new).onset, doc.get(new).offset) == (80, 86)
    # delete event 1 and undo the deletion, then delete it for good
    window.select(1)
    _key(qtbot, window, Qt.Key.Key_Delete)
    assert 1 not in doc
    _key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert 1 in doc and window.selected == 1
    _key(qtbot, window, Qt.Key.Key_Delete)
    assert doc.modified and window.windowTitle().endswith("*")
    _key(qtbot, window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    saved = video.with_name("session.annotations.json")
    assert saved.is_file() and not doc.modified
    assert window.table.ids() == [0, new]
    # reopen: the annotation file beside the video wins over events.json
    again = ReviewWindow(video, analyze=False, engine_factory=lambda: None)
    qtbot.addWidget(again)
    try:
        got = [(a.id, a.onset, a.apex, a.offset, a.label, a.aus, a.origin)
               for a in again.doc.annotations]
        assert got == [(0, 22, 26, 34, "surprise", "AU1+AU2", "edited"),
                       (new, 80, 83, 86, None, "", "manual")]
        again.select(0, jump=True)
        assert decode(again.current_frame.image) == 22
        xlsx = again.export_coding_sheet(tmp_path / "sheet.xlsx")
        out_csv = again.export_coding_sheet(tmp_path / "sheet.csv")
    finally:
        again.shutdown()
    import openpyxl

    rows = [[c.value for c in r] for r in openpyxl.load_workbook(xlsx).active.iter_rows()]
    assert rows[0] == ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                       "Action Units", "Estimated Emotion"]
    assert rows[1][1:] == ["session", 22, 26, 34, "AU1+AU2", "surprise"]
    assert list(csv.reader(out_csv.open()))[2][2:5] == ["80", "83", "86"]
    doc_json = json.loads(saved.read_text())
    assert doc_json["format"] == "mestudio-annotations/1" and len(doc_json["events"]) == 2


def test_signals_from_frames_csv_and_plot_cursor(qtbot, video):
    t = np.arange(N) / FPS
    with (video.parent / "frames.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "timestamp", "face_found", "signal_brows", "signal_mouth",
                    "signal_combined", "spot_threshold", "spot_state"])
        for i in range(N):
            w.writerow([i, f"{t[i]:.4f}", 1, np.sin(i / 5) + 1, 0.1, 2.0 if i == 63 else 0.5,
                        1.2, "idle"])
    sig = read_frames_csv(video.parent / "frames.csv")
    assert set(sig.rois) == {"brows", "mouth"} and sig.peak_between(55, 70) == 63
    assert sig.threshold is not None and sig.threshold[10] == pytest.approx(1.2)
    win = ReviewWindow(video, analyze=False, engine_factory=lambda: None)
    qtbot.addWidget(win)
    try:
        assert win.signals is not None and win.plot.mode() == "whole"
        win._on_plot_cursor(2.0)  # a click on the plot at 2 s
        assert win.index == 50 and decode(win.current_frame.image) == 50
        assert abs(win.plot.cursor() - 2.0) < 1e-6
        win.go_to(55)
        win.mark()
        win.go_to(70)
        win.mark()
        assert win.doc.get(win.selected).apex == 63  # apex at the signal's peak
    finally:
        win.shutdown()


def test_annotation_file_given_explicitly_and_bad_files(qtbot, video, tmp_path):
    other = tmp_path / "mine.json"
    AnnotationDocument([_ev(10, 11, 12, 5)], fps=FPS, source=video.name).save(other)
    win = ReviewWindow(video, events=other, analyze=False, engine_factory=lambda: None)
    qtbot.addWidget(win)
    try:
        assert [a.id for a in win.doc.annotations] == [5]
    finally:
        win.shutdown()
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    from mestudio.errors import MestudioError

    with pytest.raises(MestudioError):
        ReviewWindow(video, events=bad, analyze=False, engine_factory=lambda: None)


# ---------------------------------------------------------------- analysis and recording
class NumberedClip:
    """A seekable FrameSource of numbered frames (no file)."""

    def __new__(cls, n: int = N, fps: float = FPS):
        from mestudio.capture.base import FrameSource
        from mestudio.types import Frame

        class _Clip(FrameSource):
            def __init__(self) -> None:
                super().__init__()
                self.name, self.fps, self.n_frames = "numbered clip", fps, n
                self.size, self.seekable = (W, H), True

            def _read(self, i: int) -> Frame:
                return Frame(i, i / fps, numbered(i))

        return _Clip()


class ScriptedSpotting:
    """Pipeline double for the analysis: a ramp signal per ROI and events emitted at given
    frames (so the review's handling of the analysis is tested without the spotter)."""

    def __init__(self, script, delay_s=0.0):
        self.delay_s = delay_s
        self.script = sorted(script, key=lambda e: e.emitted_index)
        self.events = []
        self.degraded = []
        self.model_info = None

    def process(self, frame, capture_time=None):
        import time

        from mestudio.types import FaceObservation, FrameResult, SpotterState

        time.sleep(self.delay_s)
        new = []
        while self.script and frame.index >= self.script[0].emitted_index:
            ev = self.script.pop(0)
            self.events.append(ev)
            new.append(ev)
        st = SpotterState(signal={"brows": frame.index / 100.0, "mouth": 0.2},
                          combined=frame.index / 100.0, threshold=0.5)
        return FrameResult(frame=frame, face=FaceObservation(face_found=False), spotter=st,
                           events=new)

    def finish(self):
        return []

    def close(self):
        pass


def test_without_events_the_video_is_analysed_in_the_background(qtbot, numbered_video,
                                                                 tmp_path):
    video = tmp_path / "fresh.mp4"
    video.write_bytes(numbered_video.read_bytes())
    ev = SpotEvent(30, 33, 36, 1.2, 1.32, 1.44, "micro", "brows", 0.7, emitted_index=45, id=0)
    win = ReviewWindow(video, engine_factory=lambda: None,
                       pipeline_factory=lambda cfg: ScriptedSpotting([ev], delay_s=0.01))
    qtbot.addWidget(win)
    try:
        assert win.analysis_running and not win.progress.isHidden()
        win._guard(win.mark)  # no hand edits while the analysis finds the events
        assert "still finding the events" in win.messages[-1]
        with qtbot.waitSignal(win.analysis_done, timeout=30000):
            pass
        assert not win.analysis_running
        assert [(a.onset, a.apex, a.offset, a.origin) for a in win.doc.annotations] == \
            [(30, 33, 36, "auto")]
        assert set(win.signals.rois) == {"brows", "mouth"}
        assert win.signals.combined[80] == pytest.approx(0.8)
        assert any("analysis done: 1 events" in m for m in win.messages)
        win.go_to(31)
        assert decode(win.current_frame.image) == 31
    finally:
        win.shutdown()


def test_cancelling_the_background_analysis_leaves_the_window_as_it_was(qtbot, numbered_video,
                                                                       tmp_path):
    import time

    video = tmp_path / "fresh.mp4"
    video.write_bytes(numbered_video.read_bytes())
    ev = SpotEvent(30, 33, 36, 1.2, 1.32, 1.44, "micro", "brows", 0.7, emitted_index=45, id=0)
    win = ReviewWindow(video, engine_factory=lambda: None,
                       pipeline_factory=lambda cfg: ScriptedSpotting([ev], delay_s=0.05))
    qtbot.addWidget(win)
    try:
        qtbot.waitUntil(lambda: win.progress.value() > 0, timeout=15000)
        t0 = time.perf_counter()
        win.cancel_analysis()
        assert time.perf_counter() - t0 < 5.0          # stops after the current frame
        assert not win.analysis_running and win.progress.isHidden()
        assert win.messages[-1] == "analysis cancelled"
        qtbot.wait(300)                                 # nothing late from the stopped thread
        assert len(win.doc) == 0 and win.signals is None
        assert not any("analysis done" in m for m in win.messages)
    finally:
        win.shutdown()


def test_a_recorded_live_session_opens_frame_exactly_in_review(qtbot, tmp_path):
    from mestudio.config import AppConfig
    from mestudio.gui.main_window import MainWindow
    from mestudio.gui.worker import PipelineWorker

    ev = SpotEvent(20, 23, 27, 20 / FPS, 23 / FPS, 27 / FPS, "micro", "brows", 0.7,
                   emitted_index=35, id=0)
    cfg = AppConfig()
    worker = PipelineWorker(cfg, pipeline_fn=lambda c: ScriptedSpotting([ev]))
    main = MainWindow(cfg, worker, settings_file=tmp_path / "settings.json")
    qtbot.addWidget(main)
    main.show()
    try:
        assert hasattr(main, "recording") and hasattr(main, "open_review")
        main.open_callable(lambda: NumberedClip(n=60), "numbered clip", is_camera=False)
        qtbot.waitUntil(lambda: main.source_info is not None, timeout=15000)
        folder = main.recording.start(tmp_path / "recordings")
        with qtbot.waitSignal(main.finished, timeout=30000):
            pass
        main.recording.stop()
        events_json = folder / "events.json"
        qtbot.waitUntil(lambda: json.loads(events_json.read_text())["recording"]["complete"],
                        timeout=15000)
    finally:
        main.shutdown()
    from mestudio.capture.recorder import resolve_video

    video = resolve_video(folder)
    assert video.name == "video.avi"
    ts = [line.split(",") for line in (folder / "timestamps.csv").read_text().splitlines()[1:]]
    win = ReviewWindow(video, analyze=False, engine_factory=lambda: None)
    qtbot.addWidget(win)
    try:
        assert win.n_frames == len(ts) > 10
        for k in (0, len(ts) // 2, len(ts) - 1):  # recorded frame k shows source frame ts[k]
            win.go_to(k)
            assert decode(win.current_frame.image) == int(ts[k][1])
        (a,) = win.doc.annotations
        win.select(a.id, jump=True)
        assert decode(win.current_frame.image) == 20  # the live event's onset frame
        win.go_to(a.offset)
        assert decode(win.current_frame.image) == 27
    finally:
        win.shutdown()


def test_review_command_exports_without_a_window(video, tmp_path, capsys):
    from mestudio.cli import main

    out = tmp_path / "coding.csv"
    assert main(["review", str(video), "--export", str(out), "--subject", "07"]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[1] == ["07", "session", "20", "24", "30", "", ""]
    assert main(["review", str(tmp_path / "missing.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err


class CamEngine:
    """Engine double with the InferenceEngine interface used by the event panel: returns a
    fixed prediction with one Grad-CAM map per stream (a blob whose place differs)."""

    input_kind = "keyframes"
    preprocess_config: dict = {}

    def __init__(self, zero_first: bool = False):
        self.inputs = None
        self.zero_first = zero_first

    def predict(self, inputs):
        from mestudio.types import Prediction

        self.inputs = inputs
        yy, xx = np.mgrid[0:12, 0:12] / 11.0
        cams = np.stack([np.exp(-((xx - c) ** 2 + (yy - 0.4) ** 2) / w)
                         for c, w in ((0.2, 0.02), (0.5, 0.02), (0.8, 0.08))]
                        )[None].repeat(2, axis=0).astype(np.float32)
        if self.zero_first:  # the predicted class's map of u: zero everywhere
            cams[1, 0] = 0.0
        return [Prediction(np.array([0.3, 0.7], np.float32), "surprise", 0.7,
                           ("happiness", "surprise"), cams=cams, streams=("u", "v", "strain"))]


def test_event_panel_pictures_from_a_real_face_video(qtbot, video_dir):
    import torch

    from mestudio.capture import open_source
    from mestudio.engine.event_details import compute_event_details
    from mestudio.gui.review_panels import EventPanel

    torch.set_num_threads(1)
    ev = SpotEvent(5, 12, 20, 5 / 30, 12 / 30, 20 / 30, "micro", "mouth", 0.5, id=3)
    with open_source(str(video_dir / "single_face.mp4")) as src:
        plain = compute_event_details(src.read, ev)
        engine = CamEngine()
        with_model = compute_event_details(src.read, ev, engine=engine)
        zero_u = compute_event_details(src.read, ev, engine=CamEngine(zero_first=True))
        # a macro event is recognised like a micro one (its own key frames), with the caveat
        macro_ev = SpotEvent(5, 20, 40, 5 / 30, 20 / 30, 40 / 30, "macro", "mouth", 0.5, id=4)
        macro = compute_event_details(src.read, macro_ev, engine=CamEngine())
    assert plain.aligned and set(plain.thumbs) == {"onset", "apex", "offset"}
    assert plain.flow is not None and plain.strain is not None
    assert plain.flow.shape[2] == 3 and plain.flow.std() > 0
    assert plain.prediction is None and not plain.cams
    from mestudio.predtext import MACRO_CAVEAT

    assert macro.prediction is not None and macro.prediction.label == "surprise"
    assert MACRO_CAVEAT in macro.notes and set(macro.cams) == {"u", "v", "strain"}
    assert any("no recognition model" in n for n in plain.notes)
    assert engine.inputs["flow"].shape[:2] == (1, 3) and engine.inputs["frames"].shape[:2] == (1, 3)
    assert set(with_model.cams) == {"u", "v", "strain"}
    assert with_model.prediction.label == "surprise"
    # each stream's map lands where its blob is: different pictures per stream
    u, strain = with_model.cams["u"].astype(float), with_model.cams["strain"].astype(float)
    assert np.abs(u - strain).mean() > 2
    panel = EventPanel()
    qtbot.addWidget(panel)
    panel.set_details(with_model, "surprise")
    assert panel.tiles["flow"].has_image() and panel.tiles["apex"].has_image()
    assert sorted(panel.cam_tiles) == ["strain", "u", "v"]
    assert panel.probs.classes() == ("happiness", "surprise")
    # auto: the strongest stream (strain, the broadest map) is highlighted and named
    assert with_model.cam_auto == "strain" and panel.shown_cam_stream() == "strain"
    assert panel.cam_tiles["strain"].highlighted and "strain (auto)" in panel.cam_title.text()
    # a zero map for the predicted class is said to be zero, and never the default
    assert zero_u.cam_empty == {"u"} and zero_u.cam_auto == "strain"
    assert np.array_equal(zero_u.cams["u"], zero_u.thumbs["apex"])  # no heat: the bare crop
    assert any("zero in u" in n for n in zero_u.notes)
    panel.set_details(zero_u, "surprise")
    assert panel.cam_tiles["u"].caption == "u · zero"
    assert panel.cam_tiles["strain"].caption == "strain · strongest"
    # the user picks a stream by clicking its tile; it stays picked for the next event
    qtbot.mouseClick(panel.cam_tiles["v"], Qt.MouseButton.LeftButton)
    assert panel.cam_stream == "v" and panel.cam_tiles["v"].highlighted
    assert not panel.cam_tiles["strain"].highlighted and "v (chosen)" in panel.cam_title.text()
    panel.set_details(with_model, "surprise")
    assert panel.shown_cam_stream() == "v"
    qtbot.mouseClick(panel.cam_tiles["v"], Qt.MouseButton.LeftButton)  # again: back to auto
    assert panel.cam_stream == "auto" and panel.shown_cam_stream() == "strain"


def test_help_keys_lists_every_shortcut(window):
    """Help ▸ Keys lacked Ctrl+O / Ctrl+Shift+O (issue 22, item 18): it now lists every
    shortcut of the window's actions."""
    text = window.keys_text()
    for keys in ("Ctrl+O", "Ctrl+Shift+O", "F1"):
        assert keys in text, keys


def test_every_face_file_marks_the_faces_and_the_plot_follows_the_selected_face(
        qtbot, numbered_video, tmp_path):
    """An every-face analysis: the video marks each face with its number, the plot says
    whose signal it shows and shades only that face's events; selecting an event of the
    other face switches the plot (and the face marked " · plot") to that face."""
    path = tmp_path / numbered_video.name
    path.write_bytes(numbered_video.read_bytes())
    ev1, ev2 = _ev(10, 14, 20, 0), _ev(60, 63, 68, 1)
    ev1.face_id, ev2.face_id = 1, 2
    write_events_json(tmp_path / "events.json", [ev1, ev2],
                      {"source": path.name, "fps": FPS, "n_frames": N, "faces": "all"})
    with (tmp_path / "frames.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "timestamp", "face_id", "face_found", "box_x", "box_y", "box_w",
                    "box_h", "signal_brows", "signal_combined", "spot_threshold"])
        for i in range(N):
            w.writerow([i, f"{i / FPS:.4f}", 1, 1, 10, 20, 60, 70, 1.0, 1.0, 2.0])
            if i >= 30:  # face 2 arrives later: face 1 is the one analysed longest
                w.writerow([i, f"{i / FPS:.4f}", 2, 1, 120, 20, 50, 60, 3.0, 3.0, 2.0])
    win = ReviewWindow(path, analyze=False, engine_factory=lambda: None)
    win.ask_on_close = False
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    try:
        assert win.plot.note().startswith("motion signal of face 1 (the face analysed longest")
        assert [e.face_id for e, _ in win.plot.event_regions()] == [1]
        win.go_to(40)
        assert sorted(f.face_id for f in win.video.faces()) == [1, 2]
        assert win.video.selected_face() == 1
        win.select(1)  # face 2's event
        assert win.plot_face == 2 and win.plot.note() == "motion signal of face 2"
        assert [e.face_id for e, _ in win.plot.event_regions()] == [2]
        assert win.video.selected_face() == 2
        box = next(f.face.box for f in win.video.faces() if f.face_id == 2)
        assert box == (120.0, 20.0, 50.0, 60.0)
    finally:
        win.shutdown()
