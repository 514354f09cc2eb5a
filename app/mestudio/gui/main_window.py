"""The live window: source picker, video with overlays, signal plot, event table,
probability bars, status bar, settings.

The window is a view (STYLE.md, napari-like): the :class:`PipelineWorker` owns the model
(pipeline, capture) and hands over :class:`DisplayPacket`\\ s; the window only draws them and
sends commands (open, pause, settings).

Keys: Space play/pause · Ctrl+D demo clip · Ctrl+O open video · Ctrl+Shift+O open image
folder · Ctrl+, settings · B box · L landmarks · R ROIs · F flow · S strain · G Grad-CAM ·
E emotion · [ / ] previous / next Grad-CAM stream · Tab / Shift+Tab next / previous face
(every face analysed; a click on a face does the same) · F11 full screen · Ctrl+Q quit.

With every face analysed (``tracker.faces = "all"``) each face's box and number are drawn in
its own colour; the signal plot shows one face at a time (the selected one, highlighted;
by default the largest) and the event table has a ``face`` column.

Review mode (:mod:`mestudio.gui.review`) and session recording (:mod:`mestudio.gui.recording`)
add their menu entries through their ``install_main_window(window)`` once the window is built.
"""

from __future__ import annotations

import collections
import logging
import sys
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QSizePolicy,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mestudio.config import AppConfig
from mestudio.engine.overlays import AUTO_STREAM
from mestudio.gui.settings_dialog import SettingsDialog
from mestudio.gui.widgets import plain_label, plain_tooltip
from mestudio.gui.widgets.event_table import COLUMNS, EventTable
from mestudio.gui.widgets.prob_bars import ProbBars
from mestudio.gui.widgets.signal_plot import SignalPlot
from mestudio.gui.widgets.video_view import OVERLAY_LABELS, OVERLAYS, VideoView
from mestudio.gui.worker import (
    DisplayPacket,
    EventView,
    PipelineWorker,
    SessionStats,
    SourceInfo,
    default_config,
)
from mestudio.types import SpotEvent, SpotterState

log = logging.getLogger(__name__)

#: Optional modules that add to the main window (``install_main_window(window)``).

OVERLAY_KEYS = {"box": "B", "landmarks": "L", "rois": "R", "flow": "F", "strain": "S",
                "gradcam": "G", "emotion": "E"}
VIDEO_FILTER = ("Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v *.mpg *.mpeg *.wmv);;"
                "All files (*)")
#: Least time between two display updates (seconds): ~40 Hz at most, so a 30 fps source
#: shows every frame while a faster one is merged to the display rate.
DISPLAY_INTERVAL_S = 1.0 / 40.0
#: Least time between two plot redraws (seconds): the plot scrolls at ~20 Hz at most
#: (pyqtgraph redraws cost the GUI thread a few ms each).
PLOT_INTERVAL_S = 1.0 / 20.0
#: How long the emotion tag stays next to the face after an event (seconds).
EMOTION_TAG_S = 3.0
#: Every-face mode: spotter samples kept per face, so the plot can switch faces at once.
FACE_HISTORY = 1200


def list_cameras() -> list[tuple[int, str]]:
    """Cameras as ``(index, name)``: names from ``/sys/class/video4linux`` on Linux (capture
    nodes only); elsewhere, or when none is listed, indices 0..3 without names."""
    found: list[tuple[int, str]] = []
    base = Path("/sys/class/video4linux")
    if sys.platform.startswith("linux") and base.is_dir():
        for dev in sorted(base.glob("video*")):
            try:
                index = int(dev.name[5:])
                node_index = (dev / "index").read_text().strip() if (dev / "index").exists() \
                    else "0"
                if node_index != "0":
                    continue  # metadata node of a camera that is listed already
                name = (dev / "name").read_text().strip() or f"camera {index}"
            except (OSError, ValueError):
                continue
            found.append((index, name))
    return found


class MainWindow(QMainWindow):
    """The mestudio live window.

    Args:
        config: settings (default: the user's saved settings).
        worker: the processing worker (default: a :class:`PipelineWorker` on ``config``);
            the window starts it and stops it in :meth:`shutdown`.
        settings_file: where the settings dialog saves (default: user config folder).
        screenshot_frames: emit ``ready_for_screenshot`` once this many frames were
            processed (or when the source ends).

    Signals:
        finished(): the source ended and its last events are shown.
        ready_for_screenshot(): ``screenshot_frames`` frames were shown.
        frames_shown(int): number of frames processed since the source was opened,
            emitted after each display update.
        source_changed(object): a source was opened (:class:`SourceInfo`).
    """

    finished = Signal()
    ready_for_screenshot = Signal()
    frames_shown = Signal(int)
    source_changed = Signal(object)

    def __init__(self, config: AppConfig | None = None, worker: PipelineWorker | None = None,
                 *, settings_file: Path | None = None, screenshot_frames: int = 240,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MainWindow")
        self.setWindowTitle("")  # Qt adds the application name
        self.resize(1360, 860)
        self._config = config if config is not None else default_config()
        self.worker = worker if worker is not None else PipelineWorker(self._config)
        self._settings_file = settings_file
        self.screenshot_frames = int(screenshot_frames)
        self._spec: Any = None
        self.source_info: SourceInfo | None = None
        self._ended = False
        self._shutdown_done = False
        self._frames = 0
        #: seconds from the program's start to the first frame painted (None until then)
        self.first_frame_s: float | None = None
        self._screenshot_sent = False
        self._last_plot = 0.0
        self._last_display = 0.0
        self._views: dict[int, EventView] = {}
        self._shown_event: SpotEvent | None = None
        self._latest_event: SpotEvent | None = None
        self._pipeline_info: dict[str, Any] = {}
        self._hinted_real_model = False
        # every-face mode: the face the user chose (None: the largest), the face the plot
        # shows, each face's recent samples, the faces of the newest frame
        self._multi = self._config.tracker.faces == "all"
        self._selected_face: int | None = None
        self._plot_face: int | None = None
        self._face_history: dict[int, collections.deque[tuple[float, SpotterState | None]]] \
            = {}
        self._present_faces: list[int] = []
        self._found_faces: list[int] = []
        self.messages: list[str] = []  # every user-facing message shown (tests, logs)

        self._build_widgets()
        self._build_actions()
        self._build_status_bar()
        self._connect_worker()
        self._stats_timer = QTimer(self)
        self._stats_timer.timeout.connect(self._update_stats)
        self._stats_timer.start(500)
        self._plot_timer = QTimer(self)
        self._plot_timer.timeout.connect(self.plot.refresh)
        self._plot_timer.start(100)
        self._display_timer = QTimer(self)
        self._display_timer.setSingleShot(True)
        self._display_timer.timeout.connect(self._on_packet_ready)
        self._install_extensions()
        if not self.worker.isRunning():
            self.worker.start()

    # ------------------------------------------------------------------ building
    def _build_widgets(self) -> None:
        self.video = VideoView()
        self.video.paint_listener = self.worker.record_display_latency
        self.plot = SignalPlot(window_s=10.0)
        self.probs = ProbBars()
        self.events = EventTable()
        self.events.setColumnHidden(COLUMNS.index("ROI"), True)  # in the row's tooltip
        self.events.event_selected.connect(self._show_event)
        self.events.set_faces_shown(self._multi)
        self.video.face_clicked.connect(self.select_face)

        side = QWidget()
        side.setObjectName("SidePanel")
        col = QVBoxLayout(side)
        col.setContentsMargins(6, 6, 6, 6)
        col.setSpacing(6)
        title = QLabel("Last event")
        title.setObjectName("PanelTitle")
        col.addWidget(title)
        col.addWidget(self.probs, 2)
        title = QLabel("Events")
        title.setObjectName("PanelTitle")
        col.addWidget(title)
        col.addWidget(self.events, 3)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.video)
        top.addWidget(side)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 1)
        top.setSizes([900, 460])
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(top)
        main.addWidget(self.plot)
        main.setStretchFactor(0, 3)
        main.setStretchFactor(1, 1)
        main.setSizes([600, 220])
        self.setCentralWidget(main)

    def _build_actions(self) -> None:
        menu = self.menuBar()
        self.file_menu = menu.addMenu("&File")
        self.act_demo = self._action("&Demo clip", lambda: self.open_source("demo"), "Ctrl+D")
        self.camera_menu = QMenu("&Camera", self)
        self.camera_menu.aboutToShow.connect(self._fill_camera_menu)
        self.act_open = self._action("Open &video…", self.open_video_dialog,
                                     QKeySequence.StandardKey.Open)
        self.act_folder = self._action("Open image &folder…", self.open_folder_dialog,
                                       "Ctrl+Shift+O")
        self.act_settings = self._action("&Settings…", self.open_settings, "Ctrl+,")
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.file_menu.addAction(self.act_demo)
        self.file_menu.addMenu(self.camera_menu)
        self.file_menu.addAction(self.act_open)
        self.file_menu.addAction(self.act_folder)
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.act_settings)
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.act_quit)

        self.act_play = self._action("Pause", self.toggle_play, QKeySequence(Qt.Key.Key_Space))
        self.act_play.setEnabled(False)
        self.act_play.setToolTip("Play / pause (Space)")

        self.view_menu = menu.addMenu("&View")
        self.overlay_actions: dict[str, QAction] = {}
        for name in OVERLAYS:
            act = QAction(OVERLAY_LABELS[name], self)
            act.setCheckable(True)
            act.setShortcut(QKeySequence(OVERLAY_KEYS[name]))
            act.setChecked(self.video.overlay(name))
            act.toggled.connect(lambda on, n=name: self.set_overlay(n, on))
            self.view_menu.addAction(act)
            self.overlay_actions[name] = act
        self.video.overlay_toggled.connect(self._sync_overlay_action)
        self.view_menu.addSeparator()
        self.stream_menu = self.view_menu.addMenu("Grad-CAM &stream")
        self._stream_group = QActionGroup(self)
        self.view_menu.addAction(self._action("Previous stream", lambda: self._step_stream(-1),
                                              "["))
        self.view_menu.addAction(self._action("Next stream", lambda: self._step_stream(1), "]"))
        self.view_menu.addSeparator()
        self.act_next_face = self._action("Next &face", lambda: self.cycle_face(1),
                                          QKeySequence(Qt.Key.Key_Tab))
        self.act_prev_face = self._action("Previous face", lambda: self.cycle_face(-1),
                                          QKeySequence(Qt.Key.Key_Backtab))
        for act in (self.act_next_face, self.act_prev_face):
            act.setToolTip("Every face analysed: show the next face's signal (or click a face)")
            act.setEnabled(self._multi)  # else Tab moves the keyboard focus, as usual
            self.view_menu.addAction(act)
        self.view_menu.addSeparator()
        self.view_menu.addAction(self._action("&Full screen", self._toggle_fullscreen, "F11"))
        self.help_menu = menu.addMenu("&Help")
        self.help_menu.addAction(self._action("&Keys", self._show_keys))
        self.help_menu.addAction(self._action("&About mestudio", self._show_about))

        tb = self.addToolBar("Main")
        tb.setObjectName("MainToolBar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.act_demo.setIconText("Demo")
        self.act_open.setIconText("Video…")
        self.act_folder.setIconText("Folder…")
        self.act_settings.setIconText("Settings…")
        tb.addAction(self.act_demo)
        cam_button = QToolButton()
        cam_button.setText("Camera")
        cam_button.setMenu(self.camera_menu)
        cam_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        cam_button.setToolTip("Open a camera")
        tb.addWidget(cam_button)
        tb.addAction(self.act_open)
        tb.addAction(self.act_folder)
        tb.addSeparator()
        tb.addAction(self.act_play)
        tb.addSeparator()
        tb.addAction(self.act_settings)  # extensions (Record) add theirs after it
        # The overlays and the stream box have a toolbar of their own: beside the main
        # one in a wide window, on a second row in a narrow one (see resizeEvent).
        vtb = self.addToolBar("View")
        vtb.setObjectName("ViewToolBar")
        vtb.setMovable(False)
        vtb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.view_toolbar = vtb
        tb = vtb
        for name in OVERLAYS:
            act = self.overlay_actions[name]
            act.setIconText({"box": "Box", "landmarks": "Landmarks", "rois": "ROIs",
                             "flow": "Flow", "strain": "Strain", "gradcam": "Grad-CAM",
                             "emotion": "Emotion"}[name])
            act.setToolTip(f"{OVERLAY_LABELS[name]} ({OVERLAY_KEYS[name]})")
            tb.addAction(act)
        self.stream_combo = QComboBox()
        self.stream_combo.setToolTip("Which stream's Grad-CAM the inset shows (auto: the "
                                     "stream with the strongest map for the predicted class)")
        self.stream_combo.setMinimumContentsLength(11)
        self.stream_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.stream_combo.setEnabled(False)
        self.stream_combo.addItem("stream", "")
        self.stream_combo.currentIndexChanged.connect(
            lambda i: self._on_stream_chosen(str(self.stream_combo.itemData(i) or "")))
        tb.addWidget(self.stream_combo)
        self.toolbar = self.findChild(type(tb), "MainToolBar")

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._arrange_toolbars()
        self._fit_status_bar()

    def _arrange_toolbars(self) -> None:
        """One row of toolbars when both fit the window's width, else two (nothing of
        either toolbar goes into an overflow menu)."""
        main, view = self.__dict__.get("toolbar"), self.__dict__.get("view_toolbar")
        if main is None or view is None:
            return
        need = main.sizeHint().width() + view.sizeHint().width() + 8
        wrap = need > self.width()
        if wrap != self.toolBarBreak(view):
            if wrap:
                self.insertToolBarBreak(view)
            else:
                self.removeToolBarBreak(view)

    def _action(self, text: str, slot: Any,
                shortcut: str | QKeySequence | QKeySequence.StandardKey | None = None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(lambda _checked=False: slot())
        return act

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumWidth(120)
        self.busy_bar.setMaximumHeight(14)
        self.busy_bar.hide()
        sb.addWidget(self.busy_bar)
        self.status_labels: dict[str, QLabel] = {}
        for key, tip in (("capture", "frames per second delivered by the source"),
                         ("processed", "frames per second through tracking and spotting"),
                         ("dropped", "frames skipped because processing was busy"),
                         ("latency", "capture → display latency, median / 95th percentile"),
                         ("device", "where the recognition model runs"),
                         ("model", "recognition model")):
            label = plain_label(QLabel(""))
            label.setObjectName(f"Status_{key}")
            label.setToolTip(tip)
            label.setMinimumWidth(24)  # narrow windows: these give way to the model badge
            sb.addPermanentWidget(label)
            self.status_labels[key] = label
        # The model badge: amber "SYNTHETIC DEMO MODEL", or a plain "real-data model ·
        # K classes"; its tool tip is the model's description (text from the model file).
        self.model_badge = plain_label(QLabel(""))
        self.model_badge.setObjectName("ModelBadge")
        self.model_badge.setProperty("synthetic", False)
        self.model_badge.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self.model_badge.hide()
        self.synthetic_badge = self.model_badge  # the older name
        sb.addPermanentWidget(self.model_badge)
        self._update_stats()
        self._set_model_labels()

    def _connect_worker(self) -> None:
        w = self.worker
        w.packet_ready.connect(self._on_packet_ready)
        w.busy.connect(self._on_busy)
        w.source_opened.connect(self._on_source_opened)
        w.source_failed.connect(self._on_source_failed)
        w.capture_status.connect(self._on_capture_status)
        w.pipeline_info.connect(self._on_pipeline_info)
        w.ended.connect(self._on_ended)
        w.failed.connect(self._on_failed)
        self._sync_overlay_needs()

    def _install_extensions(self) -> None:
        """Review mode and session recording add their File-menu entries (imported here,
        once the window exists, so that the window module does not depend on them)."""
        from mestudio.gui import recording, review

        for module in (review, recording):
            module.install_main_window(self)

    # ------------------------------------------------------------------ commands
    def config(self) -> AppConfig:
        return self._config

    @property
    def current_spec(self) -> Any:
        """What :meth:`open_source` was last given (a spec string, camera index or path;
        a ``("callable", ...)`` tuple for :meth:`open_callable`), None before any."""
        return self._spec

    def _stop_recording(self, reason: str = "the source changed") -> bool:
        """Stop and save a running recording (File ▸ Record session) before the source
        changes, while the worker still holds this source's events, and say so on the
        video. True when one ran."""
        recording = getattr(self, "recording", None)
        if recording is None or getattr(recording, "recorder", None) is None:
            return False
        recording.stop(reason=reason)
        return True

    def open_source(self, spec: Any) -> None:
        """Open a source (``"demo"``, a camera index, a file or folder path); the old
        source's plot and events are cleared."""
        self._stop_recording()
        self._spec = spec
        self._reset_view()
        self.worker.set_paused(False)
        self.worker.open_source(spec)

    def open_callable(self, open_fn: Any, label: str, *, is_camera: bool = True) -> None:
        """Open a custom source factory (see :meth:`PipelineWorker.open_callable`)."""
        self._stop_recording()
        self._spec = ("callable", open_fn, label, is_camera)
        self._reset_view()
        self.worker.set_paused(False)
        self.worker.open_callable(open_fn, label, is_camera=is_camera)

    def _reopen(self) -> None:
        spec = self._spec
        if isinstance(spec, tuple) and spec and spec[0] == "callable":
            self.open_callable(spec[1], spec[2], is_camera=spec[3])
        elif spec is not None:
            self.open_source(spec)

    def open_video_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video", str(Path.home()),
                                              VIDEO_FILTER)
        if path:
            self.open_source(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of images",
                                                str(Path.home()))
        if path:
            self.open_source(path)

    def toggle_play(self) -> None:
        """Pause / resume; after the end of a file, play it again from the start (a running
        recording is stopped and saved first: the replay is not part of it)."""
        if self._ended:
            stopped = self._stop_recording("the clip is played again")
            self._reopen()
            if stopped:  # after the reopen, which clears the video's banner; for 8 s
                note = self.messages[-1]
                self.video.set_banner(note)
                QTimer.singleShot(8000, self, lambda: self.video.set_banner("")
                                  if self.video.banner() == note else None)
            return
        paused = not self.worker.is_paused()
        self.worker.set_paused(paused)
        self._set_play_text(paused)

    def _set_play_text(self, paused: bool) -> None:
        self.act_play.setText("Play" if paused else "Pause")

    def set_overlay(self, name: str, on: bool) -> None:
        """Show or hide an overlay (also what the View menu and the keys do)."""
        self.video.set_overlay(name, on)
        self._sync_overlay_needs()

    def _sync_overlay_action(self, name: str, on: bool) -> None:
        act = self.overlay_actions.get(name)
        if act is not None and act.isChecked() != on:
            act.setChecked(on)
        self._sync_overlay_needs()

    def _sync_overlay_needs(self) -> None:
        self.worker.set_overlay_needs(self.video.overlay("flow"), self.video.overlay("strain"))

    def open_settings(self) -> None:
        dialog = SettingsDialog(self._config, self, settings_file=self._settings_file)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)

        def done(code: int) -> None:
            if code == SettingsDialog.DialogCode.Accepted:
                self.apply_config(dialog.config())
                self.statusBar().showMessage(f"Settings saved to {dialog.saved_path}", 5000)
        dialog.finished.connect(done)
        dialog.open()
        self._settings_dialog = dialog

    def apply_config(self, config: AppConfig) -> None:
        """Use new settings (the worker rebuilds the pipeline off the GUI thread)."""
        self._config = config
        self._set_multi(config.tracker.faces == "all")
        self.worker.set_config(config)

    # ------------------------------------------------------------------ faces
    def _set_multi(self, multi: bool) -> None:
        """Every-face mode on/off: the face column, the face keys."""
        if multi == self._multi:
            return
        self._multi = multi
        self.events.set_faces_shown(multi)
        for act in (self.act_next_face, self.act_prev_face):
            act.setEnabled(multi)
        if not multi:
            self._selected_face = None
            self._face_history.clear()
            self.plot.set_face(None)
            self.video.set_selected_face(None)

    def selected_face(self) -> int | None:
        """The face chosen by a click or Tab (None: the largest, the default)."""
        return self._selected_face

    def plot_face(self) -> int | None:
        """The face whose signal the plot shows (0 in the single-face mode; None before any
        face)."""
        return self._plot_face

    def select_face(self, face_id: int | None) -> None:
        """Show face ``face_id``'s signal (its track number; None: the largest face): the
        worker follows it (samples, overlays, ``result.face``), the plot switches to its
        history and the video highlights it."""
        fid = None if face_id is None else int(face_id)
        self._selected_face = fid
        self.worker.select_face(fid)
        if fid is not None and fid in self._face_history:
            self._switch_plot_face(fid)
            self.plot.refresh()
        self.video.set_selected_face(self._plot_face if self._multi else None)

    def cycle_face(self, step: int = 1) -> None:
        """Tab / Shift+Tab: the next (previous) face in view, by number."""
        found = sorted(self._found_faces)
        if not self._multi or not found:
            return
        current = self._plot_face
        if current in found:
            nxt = found[(found.index(current) + step) % len(found)]
        else:
            nxt = found[0] if step > 0 else found[-1]
        self.select_face(nxt)

    def _switch_plot_face(self, face_id: int | None) -> None:
        """The plot shows face ``face_id``: its recent samples and its events."""
        self._plot_face = face_id
        if face_id is None:
            return
        self.plot.set_samples(self._face_history.get(face_id, ()))
        self.plot.set_events([ev for ev in self.events.events() if ev.face_id == face_id])
        self.plot.set_face(face_id or None)

    def _plot_wants(self, ev: SpotEvent) -> bool:
        return not self._multi or ev.face_id == self._plot_face

    def _fill_camera_menu(self) -> None:
        self.camera_menu.clear()
        cams = list_cameras()
        if not cams:  # nothing listed by the system: probe like `mestudio doctor` does
            from mestudio.capture.camera import probe_cameras

            cams = [(i, f"camera {i}") for i, _size in probe_cameras(range(4), timeout_s=1.0)]
        if not cams:
            none = QAction("No camera found", self.camera_menu)
            none.setEnabled(False)
            self.camera_menu.addAction(none)
        for index, name in cams:
            text = f"{name} ({index})" if name != f"camera {index}" else name
            act = QAction(text, self.camera_menu)
            act.triggered.connect(lambda _=False, i=index: self.open_source(i))
            self.camera_menu.addAction(act)

    def _toggle_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    def keys_text(self) -> str:
        """What Help ▸ Keys shows: the key table of the module docstring, then every other
        shortcut of the window's actions (review, recording)."""
        from mestudio.gui.widgets import unlisted_shortcuts

        text = (__doc__ or "").split("Keys: ")[1].split("\n\n")[0].replace(
            "\n", " ").replace(" · ", "\n")
        return "\n".join([text, *unlisted_shortcuts(self, text)])

    def _show_keys(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "Keys", self.keys_text(),
                          QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.open()

    def _show_about(self) -> None:
        from mestudio import __version__
        from mestudio.gui.app import asset_path

        about = asset_path("about.txt")
        text = about.read_text(encoding="utf-8") if about else "mestudio"
        QMessageBox.about(self, "About mestudio", f"mestudio {__version__}\n\n{text}")

    def show_message(self, text: str, *, banner: bool = True, dialog: bool = False) -> None:
        """Tell the user something: status bar, the video banner, optionally a dialog
        (non-blocking)."""
        self.messages.append(text)
        log.info("%s", text)
        self.statusBar().showMessage(text, 10000)
        if banner:
            self.video.set_banner(text)
        if dialog:
            box = QMessageBox(QMessageBox.Icon.Warning, "mestudio", text,
                              QMessageBox.StandardButton.Ok, self)
            box.setTextFormat(Qt.TextFormat.PlainText)
            box.setObjectName("MessageBox")
            box.open()

    # ------------------------------------------------------------------ worker events
    def _reset_view(self) -> None:
        self._ended = False
        self._frames = 0
        self._screenshot_sent = False
        self._views.clear()
        self._shown_event = self._latest_event = None
        self._face_history.clear()
        self._present_faces, self._found_faces = [], []
        self._plot_face = None
        if self._selected_face is not None:  # numbers start again with a new source
            self._selected_face = None
            self.worker.select_face(None)
        self.plot.set_face(None)
        self.plot.clear_data()
        self.events.clear()
        self.probs.clear()
        self.video.set_event_view(None, None)
        self.video.set_banner("")
        self._set_streams([])

    def _on_busy(self, text: str) -> None:
        self.busy_bar.setVisible(bool(text))
        if text:
            self.statusBar().showMessage(text)
            if not self.video.has_frame():
                self.video.clear(text)
        else:
            self.statusBar().clearMessage()

    def _on_source_opened(self, info: SourceInfo) -> None:
        self.source_info = info
        w, h = info.size
        fps = f", {info.fps:.0f} fps" if info.fps else ""
        size = f" ({w}×{h}{fps})" if w and h else ""
        self.setWindowTitle(f"{info.label}{size}")  # Qt adds the application name
        self.act_play.setEnabled(True)
        self._set_play_text(False)
        if self.worker.stats().status != "reconnecting":
            self.video.set_banner("")
        self.source_changed.emit(info)

    def _on_source_failed(self, message: str) -> None:
        self.act_play.setEnabled(self._spec is not None)
        self._ended = True
        self._set_play_text(True)
        if not self.video.has_frame():
            self.video.clear("No source")
        self.show_message(message, dialog=True)

    def _on_capture_status(self, status: str, message: str) -> None:
        if status in ("reconnecting", "error"):
            if not self.video.has_frame():  # not "Loading the models…" any longer
                self.video.clear("The camera is not available" if self._is_camera_spec()
                                 else "The source is not available")
            self.show_message(message or f"source {status}")
        elif status == "running":
            self.video.set_banner("")
        elif status == "ended":
            self.statusBar().showMessage(message or "end of the source", 5000)

    def _on_pipeline_info(self, info: dict[str, Any]) -> None:
        self._pipeline_info = dict(info)
        self.plot.set_spotting_enabled(bool(info.get("spotting", True)))
        self.video.set_rois(info.get("rois"))
        self.overlay_actions["rois"].setEnabled(bool(info.get("rois")))
        for name, available in (info.get("overlays") or {}).items():
            act = self.overlay_actions.get(name)
            if act is not None:
                act.setEnabled(bool(available))
                act.setToolTip(f"{OVERLAY_LABELS[name]} ({OVERLAY_KEYS[name]})" if available
                               else f"{OVERLAY_LABELS[name]}: not available in this build")
        self._set_model_labels()
        notes = [*info.get("degraded", [])]
        if info.get("warning"):
            notes.insert(0, info["warning"])
            self.show_message(info["warning"], banner=False)
        elif info.get("synthetic") and not self._hinted_real_model:
            # the first window says which model it uses, and how to get the real-data one
            self._hinted_real_model = True
            from mestudio.predtext import REAL_MODEL_HINT

            notes.append(REAL_MODEL_HINT)
            self.show_message(REAL_MODEL_HINT, banner=False)
        self.status_labels["model"].setToolTip(
            plain_tooltip("\n".join(["recognition model", *notes])))

    def _is_camera_spec(self) -> bool:
        spec = self._spec
        if isinstance(spec, tuple) and spec and spec[0] == "callable":
            return bool(spec[3])
        return isinstance(spec, int) or (isinstance(spec, str) and spec.startswith("camera"))

    def _on_ended(self) -> None:
        self._ended = True
        self._set_play_text(True)
        self.act_play.setText("Replay")
        QTimer.singleShot(0, self._after_end)

    def _after_end(self) -> None:
        self._on_packet_ready()
        self.plot.refresh()
        if not self._screenshot_sent:
            self._screenshot_sent = True
            self.ready_for_screenshot.emit()
        self.finished.emit()

    def _on_failed(self, message: str) -> None:
        self.show_message(message)

    def _on_packet_ready(self) -> None:
        """Take the worker's packet, at most every :data:`DISPLAY_INTERVAL_S` (the worker
        keeps merging newer frames into it meanwhile)."""
        wait = self._last_display + DISPLAY_INTERVAL_S - time.perf_counter()
        if wait > 0.002:
            if not self._display_timer.isActive():
                self._display_timer.start(int(wait * 1000) + 1)
            return
        packet = self.worker.take_packet()
        if packet is not None:
            self._last_display = time.perf_counter()
            self.apply_packet(packet)

    def _first_frame_painted(self) -> None:
        """Paint the first frame now and log how long the window took to show it, from the
        program's start (what a user waits for; ``mestudio bench live`` reads it)."""
        self.video.repaint()
        from mestudio import STARTED_AT

        now = time.time()
        self.first_frame_s = now - STARTED_AT
        log.info("first frame painted %.2f s after the program started (at %.3f)",
                 self.first_frame_s, now)

    def apply_packet(self, packet: DisplayPacket) -> None:
        """Show a packet: frame and overlays, plot samples, new/updated events."""
        res = packet.result
        faces = [f for f in (getattr(res, "faces", None) or []) if f.face_id != 0]
        face_samples = getattr(packet, "face_samples", None) or {}
        if (faces or face_samples) and not self._multi:
            self._set_multi(True)
        if self._multi:
            self._follow_faces(packet, faces, face_samples)
        else:
            self._plot_face = 0
        if packet.merged:
            self.video.set_frame(res.frame.image, res.face, capture_time=packet.capture_time,
                                 flow=packet.flow, strain=packet.strain, faces=faces,
                                 selected=self._plot_face if self._multi else None,
                                 activity=res.spotter.activity if res.spotter is not None
                                 else "")
            if self.first_frame_s is None:
                self._first_frame_painted()
        states = 0
        for _index, _t, state in packet.samples:
            if state is not None:
                states += 1
        if not self._multi:
            for _index, t, state in packet.samples:
                self.plot.append(t, state)
        if packet.samples:
            # The data decide: frames without a SpotterState mean the spotter is off.
            spotting = states > 0
            if spotting != (self.plot.note() != "spotting off"):
                self.plot.set_spotting_enabled(spotting)
        for ev_id, view in packet.event_views.items():
            self._views[ev_id] = view
        for ev in packet.events:
            self.events.add_event(ev)
            if self._plot_wants(ev):
                self.plot.add_event(ev)
            self._latest_event = ev  # "Last event": the newest, whatever its kind
            self._show_event(ev, tag=True)
        for ev in packet.updated_events:
            self.events.update_event(ev)
            if self._plot_wants(ev):
                self.plot.update_event(ev)
            if self._latest_event is not None and ev.id == self._latest_event.id:
                self._latest_event = ev
                self._show_event(ev, tag=True)
            elif self._shown_event is not None and ev.id == self._shown_event.id:
                self._show_event(ev)
        while len(self._views) > 300:
            self._views.pop(next(iter(self._views)))
        now = time.perf_counter()
        if now - self._last_plot >= PLOT_INTERVAL_S:
            self._last_plot = now
            self.plot.refresh()
        self._frames += packet.merged
        self.frames_shown.emit(self._frames)
        if not self._screenshot_sent and self._frames >= self.screenshot_frames:
            self._screenshot_sent = True
            self.ready_for_screenshot.emit()

    def _follow_faces(self, packet: DisplayPacket, faces: list[Any],
                      face_samples: dict[int, list[Any]]) -> None:
        """Every-face mode: keep each face's recent samples, forget the faces whose track
        ended, decide whose signal the plot shows and feed it."""
        if packet.merged:
            self._present_faces = [f.face_id for f in faces]
            self._found_faces = [f.face_id for f in faces if f.face.face_found]
        for fid, samples in face_samples.items():
            hist = self._face_history.get(fid)
            if hist is None:
                hist = self._face_history[fid] = collections.deque(maxlen=FACE_HISTORY)
            hist.extend((t, state) for _i, t, state in samples)
        if packet.merged:
            for fid in [f for f in self._face_history if f not in self._present_faces]:
                del self._face_history[fid]  # its track ended (numbers are never reused)
            if self._selected_face is not None and \
                    self._selected_face not in self._present_faces:
                self._selected_face = None  # the chosen face left: back to the largest
                self.worker.select_face(None)
        shown = self._selected_face
        if shown is None:
            shown = getattr(packet, "face_id", None)
            if shown is None or shown not in self._face_history:
                shown = self._plot_face if self._plot_face in self._face_history else None
        if shown is not None and shown != self._plot_face:
            self._switch_plot_face(shown)  # its history holds this packet's samples
        elif shown is not None:
            for _i, t, state in face_samples.get(shown, ()):
                self.plot.append(t, state)

    def _show_event(self, ev: SpotEvent, tag: bool = False) -> None:
        self._shown_event = ev
        pred = ev.prediction
        message = ""
        kinds = self._pipeline_info.get("recognised_kinds", ["micro"])
        if pred is None and self._pipeline_info.get("recognition") and ev.kind in kinds:
            message = "Computing the emotion…"
        elif pred is None and ev.kind == "micro":
            message = "No emotion: no recognition model."
        self.probs.set_prediction(pred, ev, message=message)
        view = self._views.get(ev.id)
        if view is not None:
            self.video.set_event_view(view.crop, view.cams, view.caption,
                                      auto_stream=view.auto_stream,
                                      empty_streams=view.empty_streams)
            self._set_streams(list(view.cams))
        else:
            self.video.set_event_view(None, None)
            self._set_streams([])
        if tag:
            self.video.set_emotion(pred.emotion if pred else None,
                                   pred.confidence if pred else None, ev.kind, EMOTION_TAG_S,
                                   uncertain=bool(pred and pred.uncertain),
                                   agreement=pred.agreement if pred else None,
                                   face_id=ev.face_id,
                                   source=pred.source if pred else "micro")

    def _set_streams(self, streams: list[str]) -> None:
        """Fill the stream selector: ``auto`` (named after the stream it stands for with
        this event) and the event's streams; the user's setting is kept."""
        current = self.video.cam_stream()
        auto = self.video.auto_cam_stream()
        items: list[tuple[str, str]] = []
        if streams:
            items.append(("auto", AUTO_STREAM))  # the inset names the stream it stands for
            items += [(name, name) for name in streams]
        self.stream_combo.setToolTip(
            "Which stream's Grad-CAM the inset shows; auto: the stream with the strongest "
            "map for the predicted class" + (f" (now {auto})" if auto else ""))
        self.stream_combo.blockSignals(True)
        self.stream_combo.clear()
        for text, data in items:
            self.stream_combo.addItem(text, data)
        if not items:
            self.stream_combo.addItem("stream", "")
        else:
            index = self.stream_combo.findData(current)
            self.stream_combo.setCurrentIndex(index if index >= 0 else 0)
        self.stream_combo.setEnabled(bool(streams))
        self.stream_combo.blockSignals(False)
        for act in list(self._stream_group.actions()):
            self._stream_group.removeAction(act)
        self.stream_menu.clear()
        for text, data in items:
            act = QAction(f"auto ({auto})" if data == AUTO_STREAM and auto else text,
                          self.stream_menu)
            act.setData(data)
            act.setCheckable(True)
            act.setChecked(data == current)
            act.triggered.connect(lambda _=False, d=data: self.stream_combo.setCurrentIndex(
                max(0, self.stream_combo.findData(d))))
            self._stream_group.addAction(act)
            self.stream_menu.addAction(act)

    def _on_stream_chosen(self, name: str) -> None:
        """The user picked ``name`` (a stream, or ``"auto"``) in the selector or menu."""
        if name == AUTO_STREAM or (name and name in self.video.cam_streams()):
            self.video.set_cam_stream(name)
            for act in self._stream_group.actions():
                act.setChecked(act.data() == name)

    def _step_stream(self, step: int) -> None:
        n = self.stream_combo.count()
        if n > 1 and self.stream_combo.isEnabled():
            self.stream_combo.setCurrentIndex((self.stream_combo.currentIndex() + step) % n)

    # ------------------------------------------------------------------ status bar
    def _set_model_labels(self) -> None:
        info = self._pipeline_info
        labels = self.status_labels
        labels["device"].setText(f"device {info.get('device', 'CPU')}")
        if info.get("recognition"):
            labels["model"].setText(f"model {info.get('model_name') or 'loaded'}")
        elif info:
            labels["model"].setText("no model: events without emotion")
        else:
            labels["model"].setText("model —")
        self._set_model_badge(info)

    def _set_model_badge(self, info: dict[str, Any]) -> None:
        badge = self.model_badge
        text = str(info.get("badge") or "") if info.get("recognition") else ""
        synthetic = bool(info.get("synthetic")) and bool(text)
        badge.setText(text)
        tip = str(info.get("model_description") or "")
        if synthetic:
            tip = ("The recognition model was trained on synthetic faces only: its emotions "
                   "demonstrate the software, they are not evidence about real people."
                   + (f"\n{tip}" if tip else ""))
        badge.setToolTip(plain_tooltip(tip))
        if badge.property("synthetic") != synthetic:
            badge.setProperty("synthetic", synthetic)
            badge.style().unpolish(badge)
            badge.style().polish(badge)
        badge.setVisible(bool(text))
        # never cut (the window may be 800 px wide): the other status labels give way
        badge.setMinimumWidth(0)
        badge.setMinimumWidth(badge.sizeHint().width() if text else 0)
        self._fit_status_bar()

    #: Status labels in the order they keep their place in a narrow window.
    #: the status labels a narrow window keeps first (the model's name is also in the
    #: badge and the title; the drops and the latency say whether the figures can be trusted)
    STATUS_PRIORITY = ("processed", "dropped", "latency", "device", "capture", "model")

    def _fit_status_bar(self) -> None:
        """A narrow window hides the least useful status labels rather than cutting them
        (the model badge always shows in full)."""
        labels = self.__dict__.get("status_labels")
        badge = self.__dict__.get("model_badge")
        if not labels or badge is None:
            return
        room = self.statusBar().width() - 24
        for w in (badge, self.busy_bar):
            if not w.isHidden():
                room -= w.sizeHint().width() + 8
        for key in self.STATUS_PRIORITY:
            label = labels[key]
            need = label.sizeHint().width() + 6
            fits = need <= room
            if fits:
                room -= need
            if label.isHidden() == fits:
                label.setVisible(fits)

    def _update_stats(self) -> None:
        s: SessionStats = self.worker.stats()
        labels = self.status_labels

        def ms(v: float) -> str:
            return "—" if v != v else f"{v:.0f}"

        labels["capture"].setText(f"capture {s.capture_fps:4.1f} fps")
        labels["processed"].setText(f"processed {s.processed_fps:4.1f} fps")
        labels["dropped"].setText(f"dropped {s.dropped}")
        labels["latency"].setText(f"latency {ms(s.latency_p50_ms)}/{ms(s.latency_p95_ms)} ms")
        self._fit_status_bar()

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Stop the worker (closes the source and the pipeline). Safe to call twice."""
        if self._shutdown_done:
            return
        self._shutdown_done = True
        self._stats_timer.stop()
        self._plot_timer.stop()
        self._display_timer.stop()
        self.worker.stop()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)


def format_summary(summary: dict[str, float]) -> str:
    """One readable line of the worker's whole-run figures."""
    def ms(key: str) -> str:
        v = summary.get(key, float("nan"))
        return "n/a" if v != v else f"{v:.0f} ms"

    return (f"frames: captured {summary.get('captured', 0):.0f}, processed "
            f"{summary.get('processed', 0):.0f}, displayed {summary.get('displayed', 0):.0f}, "
            f"dropped {summary.get('dropped', 0):.0f}; capture→display latency p50 "
            f"{ms('display_latency_p50_ms')}, p95 {ms('display_latency_p95_ms')}, max "
            f"{ms('display_latency_max_ms')}; capture→processed p95 "
            f"{ms('processing_latency_p95_ms')}")


def run_main_window(spec: Any, args: Any, config: AppConfig | None = None) -> int:
    """What ``mestudio demo`` and ``mestudio live`` run: the main window on ``spec`` with the
    common ``--screenshot``/``--exit-after`` handling (and ``--frames``, ``--stats``).

    Raises:
        MestudioError: no display; a source path that does not exist.
    """
    from mestudio.errors import ConfigError, SourceError
    from mestudio.gui.app import run_gui
    from mestudio.gui.worker import describe_spec_kind

    if not isinstance(spec, int) and describe_spec_kind(spec) == "missing":
        raise SourceError(f"{spec}: no such file or folder; give a video file, a folder of "
                          "images, 'demo', or use --camera N")
    overlays: list[str] | None = None
    if getattr(args, "overlays", None) is not None:
        overlays = [o.strip().lower() for o in args.overlays.split(",") if o.strip()]
        unknown = sorted(set(overlays) - set(OVERLAYS))
        if unknown:
            raise ConfigError(f"unknown overlay(s) {', '.join(unknown)}; choose from "
                              f"{', '.join(OVERLAYS)}")
    holder: dict[str, MainWindow] = {}

    def factory() -> MainWindow:
        window = MainWindow(config, screenshot_frames=getattr(args, "frames", 240) or 240)
        if overlays is not None:
            for name in OVERLAYS:
                window.set_overlay(name, name in overlays)
        window.open_source(spec)
        holder["window"] = window
        return window

    code = run_gui(factory, args)
    window = holder.get("window")
    if getattr(args, "stats", False) and window is not None:
        print(format_summary(window.worker.summary()))
    return code
