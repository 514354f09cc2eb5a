"""The live window (offscreen): plays the demo clip, overlays toggle what is drawn, events
of planted micro-expressions fill the table, a camera failure shows a message while the
application keeps running, settings persist, and the commands make screenshots."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from mestudio.errors import CameraError, MestudioError
from mestudio.types import FrameResult, SpotterState

ROOT = Path(__file__).resolve().parents[2]


def pixels(widget) -> np.ndarray:
    """What the widget shows, as an RGB array (H, W, 3)."""
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(h, img.bytesPerLine())
    return arr[:, : w * 3].reshape(h, w, 3).copy()


def packet_for(fakes, index: int, size=(320, 240), spotter=True, events=(), updated=(),
               views=None, flow=None):
    from mestudio.gui.worker import DisplayPacket

    frame = fakes.SyntheticSource(size=size)._read(index)
    face = fakes.ScriptedPipeline.face_for(frame)
    state = SpotterState(signal={"brow_left": 0.2}, combined=0.2, threshold=0.5) \
        if spotter else None
    res = FrameResult(frame=frame, face=face, spotter=state, events=list(events),
                      updated_events=list(updated))
    return DisplayPacket(result=res, capture_time=None, flow=flow,
                         samples=[(index, frame.timestamp_s, state)], events=list(events),
                         updated_events=list(updated), event_views=dict(views or {}))


# ----------------------------------------------------------------------------- playing
def test_window_opens_and_plays_frames_of_the_demo_clip(qtbot, make_window, real_pipeline):
    window = make_window(pipeline_fn=None)  # the real Pipeline
    shown = []
    window.frames_shown.connect(shown.append)
    window.open_source("demo")
    qtbot.waitUntil(lambda: bool(shown) and shown[-1] >= 45, timeout=40000)
    assert window.video.has_frame()
    assert "demo clip" in window.windowTitle() and "640×480" in window.windowTitle()
    face = window.video._face
    assert face is not None and face.face_found  # the astronaut's face is tracked
    window._update_stats()
    assert "processed" in window.status_labels["processed"].text()
    assert window.worker.stats().processed >= 45
    assert window.act_play.isEnabled()


# ----------------------------------------------------------------------------- overlays
def test_overlays_toggle_what_is_drawn(qtbot, make_window, fakes):
    window = make_window(pipeline_fn=fakes.scripted_factory())
    flow = np.zeros((64, 64, 4), np.uint8)
    flow[..., 0] = 255
    flow[..., 3] = 220  # a strong red flow picture over the whole aligned face
    window.apply_packet(packet_for(fakes, 5, flow=flow))
    video = window.video
    qtbot.wait(20)
    base = pixels(video)

    # face box: switching it off through the View action changes the drawn pixels
    window.overlay_actions["box"].trigger()
    assert not video.overlay("box")
    no_box = pixels(video)
    assert np.abs(no_box.astype(int) - base).sum() > 1000
    window.overlay_actions["box"].trigger()
    assert np.array_equal(pixels(video), base)

    # landmarks
    window.set_overlay("landmarks", False)
    assert not window.overlay_actions["landmarks"].isChecked()
    assert not np.array_equal(pixels(video), base)
    window.set_overlay("landmarks", True)

    # flow: drawn over the face region (red), and the worker is asked to compute it
    assert not window.worker.session.overlay_needs[0]
    window.overlay_actions["flow"].trigger()
    assert window.worker.session.overlay_needs[0]
    with_flow = pixels(video)
    rect = video.image_rect()
    cx, cy = int(rect.center().x()), int(rect.center().y())
    assert with_flow[cy, cx, 0] > base[cy, cx, 0] + 40
    window.overlay_actions["flow"].trigger()
    assert not window.worker.session.overlay_needs[0]

    # Grad-CAM inset of the last event, with a stream selector
    ev = fakes.planted_event(2, 3, 4, 30.0)
    ev.id = 0
    ev.prediction = fakes.make_prediction("happiness")
    from mestudio.engine.overlays import event_view

    crop = packet_for(fakes, 3).result.face.aligned
    window.apply_packet(packet_for(fakes, 6, events=[ev], views={0: event_view(ev, crop)}))
    qtbot.wait(20)
    with_cam = pixels(video)
    # "auto" and the five streams; auto is the default
    assert window.stream_combo.isEnabled() and window.stream_combo.count() == 6
    assert window.stream_combo.currentData() == "auto" and video.cam_stream() == "auto"
    window.overlay_actions["gradcam"].trigger()
    no_cam = pixels(video)
    top_right = (slice(0, 120), slice(video.width() - 150, video.width()))
    assert np.abs(with_cam[top_right].astype(int) - no_cam[top_right]).sum() > 10000
    window.overlay_actions["gradcam"].trigger()
    other = next(s for s in ev.prediction.streams if s != video.shown_cam_stream())
    window.stream_combo.setCurrentText(other)
    assert video.cam_stream() == other and video.shown_cam_stream() == other
    assert not np.array_equal(pixels(video)[top_right], with_cam[top_right])


def test_gradcam_inset_shows_the_strongest_stream_by_default(qtbot, make_window, fakes):
    """The shipped model's map of the first stream (u) is often zero for the predicted
    class; "auto" shows the stream with the most Grad-CAM energy instead, by name, and the
    user can still pick any stream (the choice is kept for the next events)."""
    from mestudio.engine.overlays import event_view

    window = make_window(pipeline_fn=fakes.scripted_factory())
    video = window.video
    crop = packet_for(fakes, 3).result.face.aligned

    def event(ev_id: int, strong: int):
        ev = fakes.planted_event(2, 3, 4, 30.0)
        ev.id = ev_id
        pred = fakes.make_prediction("surprise", seed=ev_id)
        k = pred.classes.index("surprise")
        pred.cams[:, 0] = 0.0  # stream u: ReLU of a negative sum, zero everywhere
        yy, xx = np.mgrid[0:12, 0:12] / 11.0
        pred.cams[k, strong] = np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.2)  # broad
        ev.prediction = pred
        return ev

    ev = event(0, strong=3)
    view = event_view(ev, crop)
    assert view.auto_stream == "onset_apex" and "u" in view.empty_streams
    assert view.cams["u"][..., 3].max() == 0  # an empty stream draws nothing
    window.apply_packet(packet_for(fakes, 6, events=[ev], views={0: view}))
    qtbot.wait(20)
    assert video.cam_stream() == "auto" and video.shown_cam_stream() == "onset_apex"
    assert video.cam_caption() == "Grad-CAM · onset_apex (auto)"
    assert window.stream_combo.currentText() == "auto"
    assert "now onset_apex" in window.stream_combo.toolTip()
    top_right = (slice(0, 120), slice(video.width() - 150, video.width()))
    auto_px = pixels(video)[top_right]

    # the user picks u: the inset says it is empty for this class and draws no heat
    window.stream_combo.setCurrentIndex(window.stream_combo.findData("u"))
    assert video.cam_stream() == "u" and video.cam_caption().endswith("zero for this class")
    u_px = pixels(video)[top_right]
    assert np.abs(auto_px.astype(int) - u_px).sum() > 10000
    # the choice is kept for the next event; "auto" follows each event's strongest stream
    ev2 = event(1, strong=1)
    window.apply_packet(packet_for(fakes, 9, events=[ev2], views={1: event_view(ev2, crop)}))
    assert video.shown_cam_stream() == "u" and window.stream_combo.currentData() == "u"
    window.stream_combo.setCurrentIndex(0)
    assert video.cam_stream() == "auto" and video.shown_cam_stream() == "v"
    assert "now v" in window.stream_combo.toolTip()
    assert window.stream_menu.actions()[0].text() == "auto (v)"


def test_auto_stream_prefers_the_energy_before_normalisation():
    from types import SimpleNamespace

    from mestudio.engine.overlays import auto_cam_stream, cam_stream_scores

    cams = np.zeros((2, 3, 4, 4), np.float32)
    cams[1, 1] = 1.0  # normalised: a flat map of 1s (much mass)
    cams[1, 2, 0, 0] = 1.0  # one hot pixel
    pred = SimpleNamespace(cams=cams, classes=("a", "b"), label="b",
                           probs=np.array([0.2, 0.8]), streams=("u", "v", "w"))
    assert auto_cam_stream(pred) == 1 and cam_stream_scores(pred)[0] == 0
    pred.cam_energy = np.array([[0, 0, 0], [0.0, 0.1, 3.0]])  # raw energies (K, S)
    assert auto_cam_stream(pred) == 2
    pred.cam_energy = None
    pred.cams = np.zeros_like(cams)
    assert auto_cam_stream(pred) is None  # every map zero: nothing to show
    pred.cams = None
    assert auto_cam_stream(pred) is None and cam_stream_scores(pred) is None


# ----------------------------------------------------------------------------- events
def test_events_of_planted_micro_expressions_appear_in_the_table(qtbot, make_window, fakes):
    from mestudio.capture.demo import DemoSource

    demo = DemoSource(duration_s=5.0, size=(320, 240))
    planted = [e for e in demo.events if e.kind == "micro"]
    assert planted
    fps = demo.fps
    script = [(e.offset + 6, fakes.planted_event(e.onset, e.apex, e.offset, fps), e.label)
              for e in planted]
    script.append((planted[0].offset + 20,
                   fakes.planted_event(planted[0].offset + 8, planted[0].offset + 12,
                                 planted[0].offset + 30, fps, kind="macro"), None))
    window = make_window(pipeline_fn=fakes.scripted_factory(script=script))
    window.open_callable(lambda: DemoSource(duration_s=5.0, size=(320, 240)), "demo clip",
                         is_camera=False)
    with qtbot.waitSignal(window.finished, timeout=40000):
        pass
    rows = window.events.events()
    micro = [ev for ev in rows if ev.kind == "micro"]
    assert len(micro) == len(planted)
    model = window.events.event_model()
    for ev, truth in zip(micro, planted, strict=True):
        assert ev.onset == truth.onset and ev.offset == truth.offset
        row = model.row_of(ev.id)
        assert model.index(row, 5).data() == truth.label  # emotion column
        assert model.index(row, 6).data().endswith("%")
    macro = [ev for ev in rows if ev.kind == "macro"]
    if macro:  # planted late enough to be emitted within the clip
        row = model.row_of(macro[0].id)
        assert model.index(row, 5).data() == "—"  # never a made-up emotion
    assert len(window.plot.event_regions()) == len(rows)
    assert f"#{rows[-1].id}" in window.probs.title()  # "Last event": the newest one
    assert window.synthetic_badge.isVisible()  # the scripted model says it is synthetic
    # selecting a row shows that event
    window.events.select_event(micro[0].id)
    assert window._shown_event.id == micro[0].id
    assert window.probs.classes()  # its probability bars


def test_event_without_prediction_and_spotting_off_are_shown_honestly(qtbot, make_window, fakes):
    window = make_window(pipeline_fn=fakes.scripted_factory(recognition=False))
    ev = fakes.planted_event(1, 2, 3, 30.0)
    ev.id = 7
    window.apply_packet(packet_for(fakes, 4, spotter=False, events=[ev]))
    assert window.plot.note() == "spotting off"
    model = window.events.event_model()
    assert model.index(0, 5).data() == "—" and model.index(0, 6).data() == "—"
    assert "No emotion" in window.probs.message()
    assert not window.probs.classes()
    window.apply_packet(packet_for(fakes, 5, spotter=True))
    assert window.plot.note() == ""


def test_real_pipeline_spots_planted_micro_expressions_in_the_demo(qtbot, make_window,
                                                                 real_pipeline):
    from mestudio.capture.demo import DemoSource

    window = make_window(pipeline_fn=None)
    window.open_callable(lambda: DemoSource(duration_s=8.0), "demo clip", is_camera=False)
    qtbot.waitUntil(lambda: window.worker.stats().processed >= 10, timeout=30000)
    if window.plot.note() == "spotting off":
        pytest.skip("this build's Pipeline has no spotting stage yet")
    with qtbot.waitSignal(window.finished, timeout=60000):
        pass
    planted = [e for e in DemoSource(duration_s=8.0).events if e.kind == "micro"]
    found = [ev for ev in window.events.events() if ev.kind == "micro"]
    hits = [p for p in planted if any(ev.onset <= p.apex <= ev.offset for ev in found)]
    assert hits, (planted, found)


# ----------------------------------------------------------------------------- failures
def test_camera_failure_mid_stream_shows_a_message_and_the_app_keeps_running(qtbot,
                                                                            make_window, fakes):
    fakes.SyntheticSource.shared_failures.clear()
    cfg = fakes.fast_config()
    cfg.capture.reopen_initial_s = 0.4  # long enough to see the message
    window = make_window(pipeline_fn=fakes.scripted_factory(), config=cfg)
    # every banner shown, so that a busy machine (the banner may be up for a moment only,
    # if the GUI thread was starved meanwhile) cannot make the test miss it
    banners: list[str] = []
    set_banner = window.video.set_banner
    window.video.set_banner = lambda text: (banners.append(text), set_banner(text))[1]
    window.open_callable(lambda: fakes.SyntheticSource(n=600, fps=60.0, live=True,
                                                       fail_at=20, key="window"), "camera 0")
    qtbot.waitUntil(lambda: any("disconnected" in b for b in banners), timeout=20000)
    assert any("disconnected" in m for m in window.messages)
    assert "disconnected" in window.statusBar().currentMessage()
    frames = window._frames
    # the camera comes back: the banner goes away and frames flow again
    qtbot.waitUntil(lambda: window.video.banner() == "" and window._frames > frames + 10,
                    timeout=20000)
    assert window.isVisible()

    # a camera that cannot be opened at all: a message, and the window still works
    def broken():
        raise CameraError("camera 5 cannot be opened: is it plugged in?")

    window.open_callable(broken, "camera 5")
    qtbot.waitUntil(lambda: any("camera 5" in m for m in window.messages), timeout=15000)
    window.open_callable(lambda: fakes.SyntheticSource(n=30), "clip", is_camera=False)
    with qtbot.waitSignal(window.finished, timeout=20000):
        pass
    assert window.worker.isRunning() and window.isVisible()


# ----------------------------------------------------------------------------- settings
def test_settings_are_validated_saved_and_applied(qtbot, make_window, tmp_path, fakes):
    from mestudio.config import load_settings
    from mestudio.gui.settings_dialog import SettingsDialog

    window = make_window(pipeline_fn=fakes.scripted_factory())
    window.open_settings()
    dialog = window._settings_dialog
    assert isinstance(dialog, SettingsDialog) and dialog.isVisible()
    dialog.min_duration.setValue(0.6)  # longer than the longest micro-expression: refused
    dialog.accept()
    assert dialog.isVisible() and "Durations" in dialog.error.text()
    dialog.min_duration.setValue(0.05)
    dialog.micro_max.setValue(0.4)
    dialog.sensitivity_slider.setValue(80)
    dialog.device.setCurrentText("cpu")
    dialog.landmarks.edit.setText(str(tmp_path / "missing.yaml"))
    dialog.accept()
    assert dialog.isVisible() and "missing.yaml" in dialog.error.text()
    dialog.landmarks.edit.setText("")
    dialog.accept()
    assert not dialog.isVisible()
    saved = load_settings(tmp_path / "settings.json")
    assert saved.spotter.sensitivity == pytest.approx(0.8)
    assert saved.spotter.micro_max_s == pytest.approx(0.4)
    assert saved.recognition.device == "cpu"
    assert window.config().spotter.sensitivity == pytest.approx(0.8)
    qtbot.waitUntil(lambda: window.worker.config().spotter.micro_max_s == pytest.approx(0.4),
                    timeout=15000)
    # a new dialog starts from the saved values
    again = SettingsDialog(saved, settings_file=tmp_path / "settings.json")
    qtbot.addWidget(again)
    assert again.sensitivity.value() == pytest.approx(0.8)


# ----------------------------------------------------------------------------- commands
def test_run_gui_takes_a_screenshot_and_exits(qtbot, tmp_path):
    from PySide6.QtWidgets import QLabel

    from mestudio.gui.app import run_gui

    out = tmp_path / "shots" / "label.png"
    args = argparse.Namespace(screenshot=out, exit_after=0.2)
    label_holder = []

    def factory():
        label = QLabel("hello")
        label.resize(200, 80)
        label_holder.append(label)
        return label

    assert run_gui(factory, args) == 0
    img = QImage(str(out))
    assert not img.isNull() and img.width() == 200
    # the application still runs its event loop afterwards (a second window, dialogs):
    # closing the window must not leave a Quit event behind that stops every later loop
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()  # what pytest-qt and any later code do
    fired = []
    QTimer.singleShot(20, lambda: fired.append(1))
    qtbot.waitUntil(lambda: bool(fired), timeout=3000)


def test_no_display_is_a_one_line_error(monkeypatch):
    from mestudio.gui.app import check_display

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        with pytest.raises(MestudioError, match="no display"):
            check_display()
        monkeypatch.setenv("DISPLAY", ":987")
        with pytest.raises(MestudioError, match="not running"):
            check_display()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    check_display()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb platform is Linux")
def test_missing_xcb_cursor_library_is_a_one_line_error_not_an_abort(monkeypatch, capsys):
    """Qt aborts the process (core dump) when its xcb plugin cannot be loaded; the GUI
    commands must say what to install before they create the QApplication."""
    import mestudio.gui.app as gui_app
    from mestudio.cli import main

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", "localhost:7")  # a TCP display: not probed, xcb is used
    lookups: list[str] = []

    def no_cursor_lib(name: str) -> bool:
        lookups.append(name)
        return name != "libxcb-cursor.so.0"

    monkeypatch.setattr(gui_app, "_library_loads", no_cursor_lib)
    assert main(["demo", "--exit-after", "1"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    assert "libxcb-cursor.so.0" in err[0] and "sudo apt-get install libxcb-cursor0" in err[0]
    assert "QT_QPA_PLATFORM=offscreen" in err[0]
    # the plugin's other libraries are read from its ELF header and checked as well
    qt_dir = gui_app._qt_dir()
    if qt_dir is not None and (qt_dir / "plugins/platforms/libqxcb.so").is_file():
        assert "libxcb-icccm.so.4" in lookups and "libxcb.so.1" in lookups
    # several missing libraries: all named at once, with their Debian packages
    monkeypatch.setattr(gui_app, "_library_loads",
                        lambda n: n not in ("libxcb-cursor.so.0", "libxkbcommon-x11.so.0"))
    assert gui_app.missing_xcb_libraries()[0] == "libxcb-cursor.so.0"
    # all there: no error; other platforms are not checked
    monkeypatch.setattr(gui_app, "_library_loads", lambda n: True)
    gui_app.check_display()
    monkeypatch.setattr(gui_app, "_library_loads", lambda n: False)
    for platform in ("offscreen", "wayland"):
        monkeypatch.setenv("QT_QPA_PLATFORM", platform)
        monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
        gui_app.check_display()


def test_debian_package_names_of_libraries():
    from mestudio.gui.app import debian_package

    assert debian_package("libxcb-cursor.so.0") == "libxcb-cursor0"
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libX11-xcb.so.1") == "libx11-xcb1"


def _cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MAKELEVEL", None)
    env.update(extra)
    return env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="display check is Linux")
def test_demo_command_without_display_exits_2_without_traceback():
    env = _cli_env()
    for var in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "mestudio", "demo", "--exit-after", "1"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot open a window" in lines[0]
    assert "Traceback" not in proc.stderr


def test_demo_command_makes_a_screenshot_after_n_frames(tmp_path, real_pipeline):
    out = tmp_path / "demo.png"
    proc = subprocess.run([sys.executable, "-m", "mestudio", "-q", "demo", "--frames", "20",
                           "--screenshot", str(out), "--stats"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=_cli_env(QT_QPA_PLATFORM="offscreen"))
    assert proc.returncode == 0, proc.stderr
    img = QImage(str(out))
    assert not img.isNull() and img.width() >= 800
    assert "processed" in proc.stdout and "latency" in proc.stdout
    processed = int(proc.stdout.split("processed ")[1].split(",")[0])
    assert processed >= 20


def test_help_keys_lists_every_shortcut(make_window):
    """Help ▸ Keys lacked Ctrl+R (review) and Ctrl+Shift+R (record) (issue 22, item 18)."""
    window = make_window()
    text = window.keys_text()
    for keys in ("Ctrl+R", "Ctrl+Shift+R", "Ctrl+O", "F11"):
        assert keys in text, keys


def test_window_titles_do_not_repeat_the_application_name(make_window):
    """Qt adds the application's display name to every title on Linux; a title that
    starts with "mestudio" showed it twice (issue 22, item 18)."""
    from PySide6.QtGui import QGuiApplication

    window = make_window()
    assert "mestudio" in QGuiApplication.applicationDisplayName()
    assert "mestudio" not in window.windowTitle()
