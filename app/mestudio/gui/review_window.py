"""Review mode: step through a recorded session frame by frame, correct the spotted events and
export a coding sheet.

Opens a video file (or an image-sequence folder) with its annotations: ``--events FILE``, else
the first of ``<stem>.annotations.json``, ``annotations.json``, ``<stem>.events.json``,
``events.json`` beside it (see :func:`mestudio.annotations.find_annotation_file`). Without one,
the video is analysed in a background thread (the pipeline: tracking, spotting, recognition)
with a progress bar; that thread runs :func:`mestudio.engine.analysis.analyze_video`, the same
whole-video loop as ``mestudio analyze``. The motion signals of the whole video come from
``frames.csv`` beside the video (or beside the events file) when present, else from that
analysis.

Keys (also listed under Help ▸ Keys):

===================  =========================================================
Left / Right         previous / next frame
PgUp / PgDn          one second back / forward
Home / End           first / last frame
Ctrl+Left/Right, P/N previous / next event (selects it, jumps to its onset)
Space                play / pause;  ``-`` / ``+`` slower / faster (×0.1 … ×2)
O / A / F            set onset / apex / offset of the selected event to this frame
M                    mark an onset, then M again at the offset: adds an event
Esc                  cancel a pending mark
Delete               delete the selected event
L / U                change the label / the action units of the selected event
Ctrl+Z / Ctrl+Y      undo / redo
Ctrl+S / Ctrl+Shift+S  save / save as (annotation JSON)
Ctrl+E / Ctrl+Shift+E  export the coding sheet as xlsx / CSV
Ctrl+G               go to a frame number
F1                   this list of keys
Ctrl+W / Ctrl+Q      close the window (asks to save unsaved edits)
===================  =========================================================

Frame-exact: every display goes through ``FrameSource.read(i)`` and the window checks that
the returned ``Frame.index`` is ``i``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QThread, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from mestudio.annotations import (
    AnnotationDocument,
    AnnotationError,
    default_annotation_path,
    find_annotation_file,
)
from mestudio.config import AppConfig
from mestudio.csvio import VideoSignals, read_frames_csv
from mestudio.engine.event_details import EventDetails
from mestudio.errors import MestudioError
from mestudio.gui.review_panels import (
    AnnotationTable,
    EventDetailsLoader,
    EventPanel,
    Timeline,
)
from mestudio.gui.widgets import plain_label
from mestudio.gui.widgets.signal_plot import SignalPlot
from mestudio.gui.widgets.video_view import VideoView
from mestudio.predtext import emotion_text
from mestudio.types import FaceObservation, FaceResult, Frame, SpotEvent

log = logging.getLogger(__name__)

SPEEDS = (0.1, 0.25, 0.5, 1.0, 2.0)
FRAME_CACHE = 48
#: Labels offered in the label dialog besides the model's classes.
DEFAULT_LABELS = ("happiness", "disgust", "surprise", "sadness", "fear", "anger", "contempt",
                  "repression", "others")

_OPEN_WINDOWS: list[QMainWindow] = []


def keys_help() -> str:
    """The key table of the module docstring (what F1 / Help ▸ Keys shows)."""
    doc = __doc__ or ""
    start = doc.find("=====")
    end = doc.rfind("=====")
    table = doc[start:end].splitlines()[1:] if start >= 0 else []
    return "\n".join(line.replace("``", "") for line in table
                     if line.strip() and not line.startswith("==="))




# ====================================================================== analysis thread
@dataclass
class ReviewAnalysisResult:
    """What the background analysis produced."""

    signals: VideoSignals
    events: list[SpotEvent]
    model_info: dict | None
    degraded: list[str]
    n_frames: int


class AnalysisWorker(QThread):
    """Runs :func:`mestudio.engine.analysis.analyze_video` over the whole video in the background
    (the loop lives there; this thread only opens the source and turns its progress and
    result into signals). :meth:`cancel` stops it after the current frame; nothing is
    emitted then.

    Signals:
        progress(int, int): frames done, total (0 when unknown).
        done(object): a :class:`ReviewAnalysisResult`.
        failed(str): a user-facing message.
    """

    progress = Signal(int, int)
    done = Signal(object)
    failed = Signal(str)

    def __init__(self, open_source: Callable[[], Any], config: AppConfig,
                 pipeline_factory: Callable[[AppConfig], Any] | None = None,
                 parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("ReviewAnalysis")
        self._open_source = open_source
        self._config = config
        self._pipeline_factory = pipeline_factory
        self._cancel = threading.Event()
        self._last_emit = 0.0

    def cancel(self) -> None:
        self._cancel.set()

    def _on_progress(self, done: int, total: int | None) -> None:
        now = time.perf_counter()
        if now - self._last_emit > 0.1:
            self._last_emit = now
            self.progress.emit(done, max(total or 0, done))

    def run(self) -> None:  # noqa: D102 - QThread entry point
        from mestudio.engine.analysis import analyze_video

        source = pipeline = None
        try:
            source = self._open_source()
            if self._cancel.is_set():
                return
            notes: list[str] = []
            if self._pipeline_factory is not None:
                pipeline = self._pipeline_factory(self._config)
            elif not self._config.recognition.enabled:
                notes.append("recognition is off in the settings")
            res = analyze_video(source, self._config, pipeline=pipeline, stop=self._cancel,
                                progress=self._on_progress, keep_signals=True,
                                stop_finish_s=0.0)
            if not res.complete or self._cancel.is_set():
                return
            n = res.last_frame + 1
            assert res.signals is not None
            self.progress.emit(n, n)
            self.done.emit(ReviewAnalysisResult(res.signals, res.events, res.model_info,
                                                [*notes, *res.degraded], n))
        except MestudioError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - shown to the user, logged with traceback
            log.exception("review analysis failed")
            self.failed.emit(f"analysis failed: {type(exc).__name__}: {exc}")
        finally:
            if pipeline is not None:
                try:
                    pipeline.close()
                except Exception:  # noqa: BLE001
                    pass
            if source is not None:
                source.close()


# ====================================================================== the window
class ReviewWindow(QMainWindow):
    """Frame-by-frame review and annotation of one video.

    Args:
        path: a video file or an image-sequence folder.
        events: annotation/events JSON to open (default: looked up beside the video).
        config: settings (recognition model for the analysis and the Grad-CAM panel).
        analyze: run the pipeline in the background when no events file is found (and for
            the signal plot when there is no ``frames.csv``).
        open_source: ``open_source(path)`` used for every private source (tests).
        pipeline_factory: builds the analysis pipeline from the config (tests).
        engine_factory: returns the ``InferenceEngine`` for the event panel or None
            (default: the configured model, when it can be loaded).
        clamp_frames: clamp events that reach outside the video instead of refusing the
            events file (``--clamp-frames``).

    Signals:
        frame_changed(int): the current frame changed.
        analysis_done(): the background analysis finished (or failed).
        ready_for_screenshot(): the first frame and the analysis are shown.
        details_shown(object): the per-event panel shows new :class:`EventDetails`.
    """

    frame_changed = Signal(int)
    analysis_done = Signal()
    ready_for_screenshot = Signal()
    details_shown = Signal(object)

    def __init__(self, path: str | os.PathLike[str], *, events: str | os.PathLike[str] | None
                 = None, config: AppConfig | None = None, analyze: bool = True,
                 open_source: Callable[[Any], Any] | None = None,
                 pipeline_factory: Callable[[AppConfig], Any] | None = None,
                 engine_factory: Callable[[], Any] | None = None,
                 clamp_frames: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.clamp_frames = clamp_frames
        self.setObjectName("ReviewWindow")
        self.resize(1400, 900)
        self.config = config if config is not None else AppConfig()
        self.ask_on_close = True
        self.messages: list[str] = []
        self._open_fn = open_source or self._default_open
        self._pipeline_factory = pipeline_factory
        self._engine_factory = engine_factory if engine_factory is not None else \
            self._default_engine
        # the expression model for macro events, with the configured models (a caller's
        # own engine_factory recognises everything itself)
        self._macro_engine_factory = self._default_macro_engine if engine_factory is None \
            else None
        self._analysis: AnalysisWorker | None = None
        self._details: EventDetailsLoader | None = None
        self._cache: OrderedDict[int, Frame] = OrderedDict()
        self.source: Any = None
        self.doc: AnnotationDocument | None = None
        self.signals: VideoSignals | None = None
        #: The face whose motion signal the plot shows (every-face files; None: the face
        #: analysed longest), and which the video marks " · plot".
        self.plot_face: int | None = None
        self.index = 0
        self.current_frame: Frame | None = None
        self.selected: int | None = None
        self.speed = 1.0
        self._playing = False
        self._play_t0 = 0.0
        self._play_i0 = 0
        self._screenshot_sent = False
        self._analysis_running = False
        self._analysis_replaces = False
        self.frame_base = 0
        self._build_widgets()
        self._build_actions()
        self._play_timer = QTimer(self)
        self._play_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._play_timer.timeout.connect(self._on_play_tick)
        self.open(path, events=events, analyze=analyze)

    # ------------------------------------------------------------ defaults
    def _default_open(self, spec: Any) -> Any:
        from mestudio.capture import open_source

        return open_source(spec, self.config.capture)

    def _default_engine(self) -> Any:
        """The configured recognition model for the event panel, or None (the panel then
        says why Grad-CAM is missing)."""
        from mestudio.inference.engine import load_engine

        engine, notes = load_engine(self.config)
        for line in notes:
            log.info("review: %s", line)
        return engine

    def _default_macro_engine(self) -> Any:
        """The expression model that names macro events (as in live recognition), or None."""
        from mestudio.errors import MestudioError
        from mestudio.inference.engine import expression_engine_from_config

        if not self.config.recognition.enabled:
            return None
        try:
            return expression_engine_from_config(self.config.recognition)
        except (MestudioError, ImportError) as exc:
            log.info("review: no expression model: %s", exc)
            return None

    # ------------------------------------------------------------ building
    def _build_widgets(self) -> None:
        self.video = VideoView()
        self.video.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for name in self.video.overlays():
            self.video.set_overlay(name, False)
        self.panel = EventPanel()
        self.table = AnnotationTable()
        self.table.annotation_selected.connect(self._on_table_selected)
        self.table.edit_requested.connect(self._on_edit_requested)
        self.timeline = Timeline()
        self.timeline.seek_requested.connect(self.go_to)
        self.plot = SignalPlot(window_s=10.0)
        self.plot.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.plot.cursor_moved.connect(self._on_plot_cursor)

        def button(text: str, tip: str, slot: Callable[[], None]) -> QPushButton:
            b = QPushButton(text)
            b.setToolTip(tip)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(slot)
            return b

        self.play_button = button("Play", "Play / pause (Space)", self.toggle_play)
        transport = QHBoxLayout()
        transport.setContentsMargins(4, 0, 4, 0)
        for text, tip, slot in (
                ("|◀", "First frame (Home)", self.go_first),
                ("◀◀", "Previous event (Ctrl+Left)", self.previous_event),
                ("−1 s", "One second back (PgUp)", lambda: self.step_seconds(-1)),
                ("◀ 1", "Previous frame (Left)", lambda: self.step(-1))):
            transport.addWidget(button(text, tip, slot))
        transport.addWidget(self.play_button)
        for text, tip, slot in (
                ("1 ▶", "Next frame (Right)", lambda: self.step(1)),
                ("+1 s", "One second forward (PgDn)", lambda: self.step_seconds(1)),
                ("▶▶", "Next event (Ctrl+Right)", self.next_event),
                ("▶|", "Last frame (End)", self.go_last)):
            transport.addWidget(button(text, tip, slot))
        self.speed_combo = QComboBox()
        self.speed_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for s in SPEEDS:
            self.speed_combo.addItem(f"×{s:g}", s)
        self.speed_combo.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_combo.currentIndexChanged.connect(
            lambda i: self.set_speed(SPEEDS[i]))
        self.speed_combo.setToolTip("Playback speed (- / +)")
        transport.addWidget(self.speed_combo)
        self.position_label = plain_label(QLabel(""))
        self.position_label.setObjectName("ReviewPosition")
        transport.addWidget(self.position_label, 1)
        self.mark_label = plain_label(QLabel(""))
        self.mark_label.setStyleSheet("color: #ffd166;")
        transport.addWidget(self.mark_label)

        left = QWidget()
        lcol = QVBoxLayout(left)
        lcol.setContentsMargins(0, 0, 0, 0)
        lcol.addWidget(self.video, 1)
        lcol.addWidget(self.timeline)
        lcol.addLayout(transport)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.panel)
        right.addWidget(self.table)
        right.setSizes([640, 220])
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(left)
        top.addWidget(right)
        top.setSizes([900, 500])
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(top)
        main.addWidget(self.plot)
        main.setSizes([680, 200])
        self.setCentralWidget(main)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setFormat("analysing %p %")
        self.progress.hide()
        self.statusBar().addPermanentWidget(self.progress)
        self.cancel_button = QPushButton("Cancel analysis")
        self.cancel_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cancel_button.clicked.connect(self.cancel_analysis)
        self.cancel_button.hide()
        self.statusBar().addPermanentWidget(self.cancel_button)

    def _action(self, menu: Any, text: str, keys: str | list[str] | QKeySequence.StandardKey,
                slot: Callable[[], Any]) -> QAction:
        act = QAction(text, self)
        if isinstance(keys, list):
            act.setShortcuts([QKeySequence(k) for k in keys])
        elif isinstance(keys, QKeySequence.StandardKey):
            act.setShortcut(QKeySequence(keys))
        elif keys:
            act.setShortcut(QKeySequence(keys))
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        act.triggered.connect(lambda _checked=False: self._guard(slot))
        self.addAction(act)
        if menu is not None:
            menu.addAction(act)
        return act

    def _guard(self, slot: Callable[[], Any]) -> None:
        """Run a command; user errors go to the status bar instead of a traceback."""
        try:
            slot()
        except MestudioError as exc:
            self.show_message(str(exc), error=True)

    def _build_actions(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&Open video…", QKeySequence.StandardKey.Open, self.open_dialog)
        self._action(f, "Open &annotations…", "Ctrl+Shift+O", self.open_annotations_dialog)
        f.addSeparator()
        self.act_save = self._action(f, "&Save annotations", "Ctrl+S", self.save)
        self._action(f, "Save annotations &as…", "Ctrl+Shift+S", self.save_as_dialog)
        exp = f.addMenu("&Export")
        self._action(exp, "Coding sheet (&xlsx)…", "Ctrl+E",
                     lambda: self.export_dialog("xlsx"))
        self._action(exp, "Coding sheet (&CSV)…", "Ctrl+Shift+E",
                     lambda: self.export_dialog("csv"))
        self._action(exp, "&events.json…", "", self.export_events_dialog)
        self.act_frame_base = QAction("Count frames from 1 in exports", self, checkable=True)
        self.act_frame_base.toggled.connect(lambda on: setattr(self, "frame_base", int(on)))
        exp.addAction(self.act_frame_base)
        self._action(f, "Subject and file &name…", "", self.edit_subject_dialog)
        f.addSeparator()
        self._action(f, "Analyse &again", "", self.reanalyse)
        f.addSeparator()
        self._action(f, "&Close", ["Ctrl+W", QKeySequence(QKeySequence.StandardKey.Close)
                                   .toString()], self.close)
        self._action(f, "&Quit", "Ctrl+Q", self.close)

        e = mb.addMenu("&Edit")
        self.act_undo = self._action(e, "&Undo", ["Ctrl+Z"], self.undo)
        self.act_redo = self._action(e, "&Redo", ["Ctrl+Y", "Ctrl+Shift+Z"], self.redo)
        e.addSeparator()
        self._action(e, "Set &onset here", "O", lambda: self.set_boundary("onset"))
        self._action(e, "Set &apex here", "A", lambda: self.set_boundary("apex"))
        self._action(e, "Set o&ffset here", "F", lambda: self.set_boundary("offset"))
        self._action(e, "&Mark onset / offset (add event)", "M", self.mark)
        self._action(e, "Cancel mark", "Esc", self.cancel_mark)
        self._action(e, "&Delete event", ["Del", "Backspace"], self.delete_selected)
        self._action(e, "Change &label…", "L", self.label_dialog)
        self._action(e, "Action &units…", "U", self.aus_dialog)

        g = mb.addMenu("&Go")
        self._action(g, "Next frame", "Right", lambda: self.step(1))
        self._action(g, "Previous frame", "Left", lambda: self.step(-1))
        self._action(g, "Forward 1 s", "PgDown", lambda: self.step_seconds(1))
        self._action(g, "Back 1 s", "PgUp", lambda: self.step_seconds(-1))
        self._action(g, "First frame", "Home", self.go_first)
        self._action(g, "Last frame", "End", self.go_last)
        self._action(g, "Next event", ["Ctrl+Right", "N"], self.next_event)
        self._action(g, "Previous event", ["Ctrl+Left", "P"], self.previous_event)
        self._action(g, "Go to frame…", "Ctrl+G", self.go_to_dialog)
        g.addSeparator()
        self._action(g, "Play / pause", "Space", self.toggle_play)
        self._action(g, "Faster", ["+", "="], lambda: self.change_speed(1))
        self._action(g, "Slower", "-", lambda: self.change_speed(-1))
        h = mb.addMenu("&Help")
        self._action(h, "&Keys", "F1", self.show_keys)

    # ------------------------------------------------------------ opening
    def open(self, path: str | os.PathLike[str], *, events: str | os.PathLike[str] | None
             = None, analyze: bool = True) -> None:
        """Open a video (or image folder) and its annotations; see the module docstring.

        Raises:
            MestudioError: the video cannot be opened, or the annotation file is invalid.
        """
        self.stop_play()
        self.cancel_analysis()
        path = Path(path)
        source = self._open_fn(str(path))
        if not getattr(source, "seekable", False):
            source.close()
            raise MestudioError(f"{path} cannot be reviewed: frames cannot be read by number")
        if self.source is not None:
            self.source.close()
        self.source = source
        self.path = path
        self._cache.clear()
        self.fps = float(source.fps or 0) or 30.0
        if not source.fps:
            self.show_message("the video has no frame rate; assuming 30 fps")
        self.n_frames = int(source.n_frames or 0)
        if self.n_frames <= 0:
            raise MestudioError(f"{path} has no frames")
        ann_path = Path(events) if events is not None else find_annotation_file(path)
        self.signals = None
        self.plot_face = None
        folders = [ann_path.parent] if ann_path is not None else []
        folders.append(path if path.is_dir() else path.parent)
        frames_csv = next((f / "frames.csv" for f in folders if (f / "frames.csv").is_file()),
                          None)
        if frames_csv is not None:
            try:
                self.signals = read_frames_csv(frames_csv, self.n_frames)
            except (OSError, ValueError, KeyError) as exc:
                self.show_message(f"frames.csv unreadable ({exc}); signals not shown")
        # every face of the file is marked with its number (the plot's face thicker)
        self.video.set_overlay("box", bool(self.signals is not None and self.signals.faces))
        micro_max = self.config.spotter.micro_max_s
        if ann_path is not None:
            doc = AnnotationDocument.load(ann_path, fps=self.fps, n_frames=self.n_frames,
                                          micro_max_s=micro_max, video=path,
                                          clamp=self.clamp_frames)
            if not doc.source:
                doc.source = path.name
                doc.filename = path.stem
            self.show_message(f"opened {path.name} with {len(doc)} events from {ann_path.name}")
        else:
            doc = AnnotationDocument([], fps=self.fps, n_frames=self.n_frames,
                                     source=path.name, micro_max_s=micro_max)
        self._set_doc(doc)
        self.setWindowTitle(f"review — {path.name}")
        self.timeline.set_frames(self.n_frames)
        self._show_signals()
        self._restart_details_loader()
        self.show_frame(0)
        need_events = ann_path is None
        if analyze and (need_events or self.signals is None):
            self.start_analysis(replace_events=need_events)
        else:
            if need_events:
                self.show_message("no events file found and analysis is off: add events with M")
            self._maybe_ready()

    def _set_doc(self, doc: AnnotationDocument) -> None:
        self.doc = doc
        doc.add_listener(self._on_doc_changed)
        self.selected = None
        self._refresh_annotations()
        self.panel.clear()

    def _restart_details_loader(self) -> None:
        if self._details is not None:
            self._details.stop()
        path = str(self.path)
        self._details = EventDetailsLoader(lambda: self._open_fn(path), self._engine_factory,
                                           self.config.tracker, parent=self,
                                           macro_engine_factory=self._macro_engine_factory,
                                           transforms_fn=self._recorded_transforms)
        self._details.ready.connect(self._on_details)
        self._details.failed.connect(lambda msg: self.show_message(
            f"event pictures failed: {msg}", error=True))

    # ------------------------------------------------------------ analysis
    def start_analysis(self, replace_events: bool = True) -> None:
        """Analyse the video in the background (events when ``replace_events``, and the
        signals for the plot)."""
        self.cancel_analysis()
        path = str(self.path)
        worker = AnalysisWorker(lambda: self._open_fn(path), self.config,
                                self._pipeline_factory, parent=self)
        # Signals already queued by a worker that was cancelled since must not touch the
        # window: only the current worker's are handled.
        worker.progress.connect(
            lambda done, total: self._on_analysis_progress(done, total)
            if worker is self._analysis else None)
        worker.done.connect(lambda res: self._on_analysis_done(res, replace_events)
                            if worker is self._analysis else None)
        worker.failed.connect(lambda msg: self._on_analysis_failed(msg)
                              if worker is self._analysis else None)
        self._analysis = worker
        self._analysis_running = True
        self._analysis_replaces = replace_events
        self.progress.setRange(0, max(1, self.n_frames))
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        if self.signals is None:
            self.plot.set_note("motion signal: analysing…")
        self.show_message("analysing the video in the background…")
        worker.start()

    def reanalyse(self) -> None:
        """Run the analysis again and replace the events (asks when there are edits)."""
        if self.doc is not None and self.doc.modified and not self._confirm(
                "Replace the events with a new analysis? Unsaved edits are lost."):
            return
        self.start_analysis(replace_events=True)

    def cancel_analysis(self) -> None:
        """Stop the background analysis (if any) and wait for its thread to end."""
        from mestudio.gui.worker import wait_for_thread

        w, self._analysis = self._analysis, None
        if w is not None:
            w.cancel()
            wait_for_thread(w, 15.0, "the review analysis")
        if self._analysis_running:
            self._analysis_running = False
            self.progress.hide()
            self.cancel_button.hide()
            self.show_message("analysis cancelled")
            self.analysis_done.emit()

    @property
    def analysis_running(self) -> bool:
        return self._analysis_running

    def _on_analysis_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _on_analysis_done(self, res: ReviewAnalysisResult, replace_events: bool) -> None:
        self._analysis_running = False
        self._analysis = None
        self.progress.hide()
        self.cancel_button.hide()
        if res.n_frames and res.n_frames != self.n_frames:
            log.info("the video has %d frames (container said %d)", res.n_frames,
                     self.n_frames)
            self.n_frames = res.n_frames
            self.timeline.set_frames(self.n_frames)
        if self.signals is None:
            self.signals = res.signals
        if replace_events:
            assert self.doc is not None
            doc = AnnotationDocument(res.events, fps=self.fps, n_frames=self.n_frames,
                                     source=self.path.name, subject=self.doc.subject,
                                     micro_max_s=self.config.spotter.micro_max_s,
                                     model=res.model_info, faces=self.config.tracker.faces)
            self._set_doc(doc)
        self._show_signals()
        extra = f" ({'; '.join(res.degraded)})" if res.degraded else ""
        if replace_events:
            self.show_message(f"analysis done: {len(res.events)} events in {res.n_frames} "
                              "frames" + extra)
        else:  # the events are the file's; the analysis only brought the signals
            n = len(self.doc) if self.doc is not None else 0
            self.show_message(f"analysis done: motion signals of {res.n_frames} frames; "
                              f"{n} events from the annotation file" + extra)
        self.show_frame(self.index)
        self.analysis_done.emit()
        self._maybe_ready()

    def _on_analysis_failed(self, message: str) -> None:
        self._analysis_running = False
        self._analysis = None
        self.progress.hide()
        self.cancel_button.hide()
        self.show_message(message, error=True)
        self.analysis_done.emit()
        self._maybe_ready()

    def _maybe_ready(self) -> None:
        if not self._screenshot_sent and not self._analysis_running and \
                self.current_frame is not None:
            self._screenshot_sent = True
            if self.doc is not None and len(self.doc):
                # show a populated event panel: wait for its pictures (at most 30 s)
                fired = [False]

                def ready(*_: Any) -> None:
                    if not fired[0]:
                        fired[0] = True
                        QTimer.singleShot(300, self, self.ready_for_screenshot.emit)

                self.details_shown.connect(ready)
                QTimer.singleShot(30000, self, ready)
                self.select(self.doc.annotations[0].id)
            else:
                QTimer.singleShot(400, self, self.ready_for_screenshot.emit)

    def _show_signals(self) -> None:
        doc_events = self.doc.events if self.doc is not None else []
        sig = self.signals
        if sig is None or len(sig.times) == 0:
            times = np.arange(self.n_frames) / self.fps
            self.plot.set_whole_video(times, {}, events=doc_events)
            self.plot.set_note("motion signal: analysing…" if self._analysis_running
                               else "no motion signal (no frames.csv, no analysis)")
        else:
            sig = sig.of_face(self.plot_face)
            times = self._times_array()
            self.plot.set_whole_video(times, sig.rois, threshold=sig.threshold,
                                      combined=sig.combined, events=self._plot_events(doc_events))
            self.plot.set_note("" if sig.face_id is None else
                               f"motion signal of face {sig.face_id}"
                               + ("" if self.plot_face is not None
                                  else " (the face analysed longest; select an event of "
                                       "another face to see its signal)"))
        self.plot.set_cursor(self._time_of(self.index))

    def _times_array(self) -> np.ndarray:
        """Frame times (s) for the plot: the analysed timestamps where known, else i/fps."""
        t = np.arange(self.n_frames, dtype=np.float64) / self.fps
        if self.signals is not None:
            st = self.signals.times[:self.n_frames]
            ok = np.isfinite(st)
            t[:len(st)][ok] = st[ok]
        return t

    def _time_of(self, i: int) -> float:
        if self.current_frame is not None and self.current_frame.index == i:
            return float(self.current_frame.timestamp_s)
        if self.signals is not None and 0 <= i < len(self.signals.times) and \
                math.isfinite(self.signals.times[i]):
            return float(self.signals.times[i])
        return i / self.fps

    # ------------------------------------------------------------ frames
    def read_frame(self, i: int) -> Frame:
        """Frame ``i`` of the video (small cache; decoding happens in ``FrameSource``)."""
        f = self._cache.get(i)
        if f is not None:
            self._cache.move_to_end(i)
            return f
        f = self.source.read(i)
        self._cache[i] = f
        while len(self._cache) > FRAME_CACHE:
            self._cache.popitem(last=False)
        return f

    def show_frame(self, i: int) -> None:
        """Display frame ``i`` (clamped to the video)."""
        from mestudio.capture.base import FrameOutOfRange

        i = int(min(max(i, 0), self.n_frames - 1))
        try:
            frame = self.read_frame(i)
        except FrameOutOfRange:
            # the container over-counted: the real end is earlier
            n = self.source.n_frames or i
            if n < self.n_frames:
                self.n_frames = int(n)
                self.timeline.set_frames(self.n_frames)
                if self.doc is not None:
                    self.doc.n_frames = self.n_frames
                return self.show_frame(min(i, self.n_frames - 1))
            raise
        if frame.index != i:
            self.show_message(f"the video returned frame {frame.index} for frame {i}: "
                              "seeking in this file is not exact", error=True)
        self.index = i
        self.current_frame = frame
        self._draw_frame(frame.image, i)
        self.timeline.set_cursor(i)
        self.plot.set_cursor(frame.timestamp_s)
        self._update_position()
        self.frame_changed.emit(i)

    def _update_position(self) -> None:
        i, n = self.index, self.n_frames
        t = self._time_of(i)
        inside = self.doc.at_frame(i) if self.doc is not None else []
        where = ""
        if inside:
            a = inside[0]
            role = "onset" if i == a.onset else "apex" if i == a.apex else \
                "offset" if i == a.offset else "inside"
            where = f" · event #{a.id} ({role})"
        speed = f" · ×{self.speed:g}" if self.speed != 1.0 else ""
        self.position_label.setText(f"frame {i} / {n - 1} · {t:.3f} s{where}{speed}")

    def go_to(self, i: int) -> None:
        self.stop_play()
        self.show_frame(i)

    def step(self, n: int) -> None:
        """Move ``n`` frames (negative: back)."""
        self.go_to(self.index + n)

    def step_seconds(self, s: float) -> None:
        """Move ``s`` seconds (rounded to whole frames at the video's fps)."""
        self.go_to(self.index + int(round(s * self.fps)))

    def go_first(self) -> None:
        self.go_to(0)

    def go_last(self) -> None:
        self.go_to(self.n_frames - 1)

    def go_to_dialog(self) -> None:
        i, ok = QInputDialog.getInt(self, "Go to frame", f"Frame (0–{self.n_frames - 1}):",
                                    self.index, 0, self.n_frames - 1)
        if ok:
            self.go_to(i)

    def _on_plot_cursor(self, t: float) -> None:
        times = self._times_array()
        self.go_to(int(np.argmin(np.abs(times - t))) if len(times) else 0)

    # ------------------------------------------------------------ playback
    def set_speed(self, speed: float) -> None:
        """Playback speed (one of :data:`SPEEDS`)."""
        self.speed = min(SPEEDS, key=lambda s: abs(s - speed))
        idx = SPEEDS.index(self.speed)
        if self.speed_combo.currentIndex() != idx:
            self.speed_combo.setCurrentIndex(idx)
        if self._playing:
            self._play_t0, self._play_i0 = time.perf_counter(), self.index
            self._play_timer.start(self._tick_ms())
        self._update_position()

    def change_speed(self, direction: int) -> None:
        i = SPEEDS.index(self.speed) + direction
        self.set_speed(SPEEDS[min(max(i, 0), len(SPEEDS) - 1)])

    def _tick_ms(self) -> int:
        return max(5, int(1000.0 / (self.fps * self.speed)))

    def toggle_play(self) -> None:
        if self._playing:
            self.stop_play()
        else:
            self.play()

    def play(self) -> None:
        if self.index >= self.n_frames - 1:
            self.show_frame(0)
        self._playing = True
        self._play_t0, self._play_i0 = time.perf_counter(), self.index
        self.play_button.setText("Pause")
        self._play_timer.start(self._tick_ms())

    def stop_play(self) -> None:
        if self._playing:
            self._playing = False
            self._play_timer.stop()
            self.play_button.setText("Play")

    @property
    def playing(self) -> bool:
        return self._playing

    def _on_play_tick(self) -> None:
        target = self._play_i0 + int((time.perf_counter() - self._play_t0) * self.fps
                                     * self.speed)
        if target >= self.n_frames - 1:
            self.show_frame(self.n_frames - 1)
            self.stop_play()
            return
        if target != self.index:
            self.show_frame(target)

    # ------------------------------------------------------------ selection
    def select(self, ann_id: int | None, jump: bool = False) -> None:
        """Select an annotation (None clears); ``jump`` moves to its onset."""
        if ann_id is not None and (self.doc is None or ann_id not in self.doc):
            ann_id = None
        self.selected = ann_id
        self.table.select_id(ann_id)
        self.timeline.set_selected(ann_id)
        if ann_id is None:
            self.panel.clear()
            return
        assert self.doc is not None
        ann = self.doc.get(ann_id)
        sig = self.signals
        if sig is not None and sig.faces and ann.event.face_id in sig.faces and \
                ann.event.face_id != self._shown_face():
            self.plot_face = ann.event.face_id  # the plot follows the event's face
            self._show_signals()
            if self.current_frame is not None and not jump:
                self._draw_frame(self.current_frame.image, self.index)
        if jump:
            self.go_to(ann.onset)
        self.panel.set_loading(ann)
        if self._details is not None:
            self._details.request(ann.event)

    def _draw_frame(self, image: np.ndarray, i: int) -> None:
        """Show frame ``i`` with the faces of an every-face file marked."""
        self.video.set_frame(image, faces=self._faces_at(i), selected=self._shown_face())

    def _recorded_transforms(self, event: SpotEvent) -> Any:
        """Frame index -> the alignment transform ``analyze`` recorded for the event's face
        (``frames.csv``), or None without them: the event panel then cuts the very crops
        live recognition used, and shows the file's numbers."""
        sig = self.signals
        if sig is None:
            return None
        face = sig.of_face(event.face_id if sig.faces else None)
        if face.transforms is None or (sig.faces and face.face_id != event.face_id):
            return None
        return face.transform_at

    def _plot_events(self, events: list[SpotEvent]) -> list[SpotEvent]:
        """The events shaded on the plot: in an every-face file, those of the face whose
        signal it shows (another face's event over this signal would mislead)."""
        face = self._shown_face()
        return events if face is None else [e for e in events if e.face_id == face]

    def _shown_face(self) -> int | None:
        """The face whose signal the plot shows (every-face files), else None."""
        sig = self.signals
        if sig is None or not sig.faces:
            return None
        return sig.of_face(self.plot_face).face_id

    def _faces_at(self, i: int) -> list[FaceResult]:
        """The faces of frame ``i`` in an every-face ``frames.csv``: number and box."""
        sig = self.signals
        if sig is None or not sig.faces:
            return []
        out = []
        for fid, face in sig.faces.items():
            boxes = face.boxes
            if boxes is None or i >= len(boxes) or not np.isfinite(boxes[i]).all():
                continue
            box = tuple(float(v) for v in boxes[i])
            out.append(FaceResult(fid, FaceObservation(face_found=True, box=box)))  # type: ignore[arg-type]
        return out

    def _on_table_selected(self, ann_id: int) -> None:
        self.select(ann_id, jump=True)

    def _on_details(self, details: EventDetails) -> None:
        if self.selected is None or self.doc is None or self.selected not in self.doc:
            return
        ann = self.doc.get(self.selected)
        if (details.event.id, details.event.onset, details.event.apex, details.event.offset) != \
                (ann.id, ann.onset, ann.apex, ann.offset):
            return  # stale: the event was edited since
        stored = ann.event.prediction
        if details.prediction is not None and (ann.origin != "auto" or stored is None):
            # the prediction of an added or edited event is stored with it (table, JSON,
            # coding sheet), not only shown; an edit of its frames says it predicted again
            if self.doc.store_prediction(ann.id, details.prediction) and stored is not None:
                self.show_message(f"event {ann.id}: its frames changed, so it was predicted "
                                  f"again ({emotion_text(details.prediction, ann.kind)})")
            ann = self.doc.get(ann.id)
        elif stored is not None and details.prediction is not None:
            # An event as spotted and recognised (live, analyze): the panel shows the numbers
            # of the file and the table. Without recorded alignments (older files) review
            # aligned the frames itself: its Grad-CAM then says so when it reads otherwise.
            if details.prediction.label != stored.label:
                details.notes.append(
                    "Grad-CAM of review's own alignment of the frames, which the model "
                    f"reads as {emotion_text(details.prediction, ann.kind)}")
            details = dataclasses.replace(details, prediction=stored)
        self.panel.set_details(details, ann.label)
        self.details_shown.emit(details)

    def next_event(self) -> None:
        if self.doc is None:
            return
        a = self.doc.next_after(self.index)
        if a is None:
            self.show_message("no event after this frame")
            return
        self.select(a.id, jump=True)

    def previous_event(self) -> None:
        if self.doc is None:
            return
        a = self.doc.previous_before(self.index)
        if a is None:
            self.show_message("no event before this frame")
            return
        self.select(a.id, jump=True)

    # ------------------------------------------------------------ editing
    def _editable(self) -> AnnotationDocument:
        if self.doc is None:
            raise AnnotationError("no video is open")
        if self._analysis_running and self._analysis_replaces:
            raise AnnotationError("the analysis is still finding the events: wait for it, or "
                                  "cancel it to annotate by hand")
        return self.doc

    def _selected_or_fail(self) -> int:
        if self.selected is None or self.doc is None or self.selected not in self.doc:
            inside = self.doc.at_frame(self.index) if self.doc is not None else []
            if len(inside) == 1:
                self.select(inside[0].id)
                return inside[0].id
            raise AnnotationError("select an event first (click it in the table, or N/P)")
        return self.selected

    def set_boundary(self, which: str) -> None:
        """Set ``onset``/``apex``/``offset`` of the selected event to the current frame."""
        doc = self._editable()
        ann_id = self._selected_or_fail()
        {"onset": doc.set_onset, "apex": doc.set_apex, "offset": doc.set_offset}[which](
            ann_id, self.index)
        self.show_message(f"event #{ann_id}: {which} = frame {self.index}")

    def mark(self) -> None:
        """M: first press marks an onset, the second adds the event (apex at the signal
        peak when the signal is known)."""
        doc = self._editable()
        sig = self.signals
        new = doc.mark(self.index, apex=(sig.peak_between if sig is not None else None))
        if new is None:
            self.mark_label.setText(f"onset marked at {self.index} — M at the offset, Esc "
                                    "cancels")
            self.timeline.set_pending(self.index)
        else:
            self.mark_label.setText("")
            self.timeline.set_pending(None)
            self.select(new)
            a = doc.get(new)
            self.show_message(f"added event #{new}: frames {a.onset}–{a.apex}–{a.offset}")

    def cancel_mark(self) -> None:
        if self.doc is not None and self.doc.pending_onset is not None:
            self.doc.cancel_mark()
            self.mark_label.setText("")
            self.timeline.set_pending(None)
        elif self._playing:
            self.stop_play()

    def delete_selected(self) -> None:
        doc = self._editable()
        ann_id = self._selected_or_fail()
        doc.delete(ann_id)
        self.show_message(f"deleted event #{ann_id} (Ctrl+Z restores it)")

    def label_choices(self) -> list[str]:
        labels: list[str] = []
        model = self.doc.model if self.doc is not None else None
        classes = (model or {}).get("classes") if isinstance(model, dict) else None
        for src in (classes or [], [a.label for a in self.doc] if self.doc else [],
                    [a.predicted for a in self.doc] if self.doc else [], DEFAULT_LABELS):
            for c in src:
                if c and c not in labels:
                    labels.append(str(c))
        return labels

    def set_label(self, label: str | None) -> None:
        doc = self._editable()
        doc.set_label(self._selected_or_fail(), label)

    def set_aus(self, aus: str) -> None:
        doc = self._editable()
        doc.set_aus(self._selected_or_fail(), aus)

    def label_dialog(self) -> None:
        doc = self._editable()
        ann = doc.get(self._selected_or_fail())
        choices = self.label_choices()
        current = choices.index(ann.label) if ann.label in choices else 0
        text, ok = QInputDialog.getItem(self, "Label", f"Emotion of event #{ann.id} "
                                        "(type a new one or leave empty to clear):",
                                        ["", *choices], current + 1 if ann.label else 0, True)
        if ok:
            self.set_label(text)

    def aus_dialog(self) -> None:
        doc = self._editable()
        ann = doc.get(self._selected_or_fail())
        text, ok = QInputDialog.getText(self, "Action units",
                                        f"Action units of event #{ann.id} (e.g. AU4+AU7):",
                                        text=ann.aus)
        if ok:
            self.set_aus(text)

    def _on_edit_requested(self, ann_id: int, column: str) -> None:
        self.select(ann_id, jump=False)
        if column == "AUs":
            self._guard(self.aus_dialog)
        elif column in ("label", "predicted"):
            self._guard(self.label_dialog)
        elif column in ("onset", "apex", "offset"):
            assert self.doc is not None
            self.go_to(getattr(self.doc.get(ann_id), column))

    def undo(self) -> None:
        if self.doc is None or not self.doc.undo():
            self.show_message("nothing to undo")

    def redo(self) -> None:
        if self.doc is None or not self.doc.redo():
            self.show_message("nothing to redo")

    def _on_doc_changed(self, what: str, ann_id: int | None) -> None:
        if what in ("mark onset", "cancel mark", "save"):
            self._update_title()
            return
        if what == "store prediction":  # the panel shows it already: no new request
            self._refresh_annotations()
            return
        self._refresh_annotations()
        if ann_id is not None:
            self.select(ann_id)
        elif self.selected is not None and self.doc is not None and \
                self.selected not in self.doc:
            self.select(None)
        self.show_message(what)

    def _refresh_annotations(self) -> None:
        doc = self.doc
        anns = doc.annotations if doc is not None else []
        self.table.set_annotations(anns, self.selected)
        self.timeline.set_annotations(anns)
        self.timeline.set_selected(self.selected)
        self.plot.set_events(self._plot_events([a.event for a in anns]))
        self.act_undo.setEnabled(bool(doc and doc.can_undo))
        self.act_redo.setEnabled(bool(doc and doc.can_redo))
        self.act_undo.setText(f"&Undo {doc.undo_text}" if doc and doc.can_undo else "&Undo")
        self.act_redo.setText(f"&Redo {doc.redo_text}" if doc and doc.can_redo else "&Redo")
        self._update_title()
        if self.current_frame is not None:
            self._update_position()

    def _update_title(self) -> None:
        name = self.path.name if hasattr(self, "path") else ""
        star = " *" if self.doc is not None and self.doc.modified else ""
        self.setWindowTitle(f"review — {name}{star}")  # Qt adds the application name

    # ------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Save the annotations (default: where they came from, else
        ``<stem>.annotations.json`` beside the video)."""
        if self.doc is None:
            return None
        target = Path(path) if path is not None else (
            self.doc.path or default_annotation_path(self.path))
        out = self.doc.save(target)
        self.show_message(f"saved {len(self.doc)} events to {out}")
        return out

    def save_as_dialog(self) -> None:
        if self.doc is None:
            return
        name, _ = QFileDialog.getSaveFileName(self, "Save annotations",
                                              str(default_annotation_path(self.path)),
                                              "Annotations (*.json)")
        if name:
            self.save(name)

    def export_coding_sheet(self, path: str | os.PathLike[str]) -> Path:
        """Export the CASME II-style coding sheet; ``.xlsx`` or ``.csv`` by extension."""
        if self.doc is None:
            raise AnnotationError("no video is open")
        path = Path(path)
        if path.suffix.lower() == ".xlsx":
            out = self.doc.export_xlsx(path, self.frame_base)
        elif path.suffix.lower() == ".csv":
            out = self.doc.export_csv(path, self.frame_base)
        else:
            raise AnnotationError(f"export to .xlsx or .csv, not {path.suffix or 'no extension'}")
        self.show_message(f"coding sheet written: {out}")
        return out

    def export_dialog(self, kind: str) -> None:
        base = self.path.with_name(f"{self.path.stem}_coding.{kind}") if not self.path.is_dir() \
            else self.path / f"{self.path.name}_coding.{kind}"
        filt = "Excel workbook (*.xlsx)" if kind == "xlsx" else "CSV (*.csv)"
        name, _ = QFileDialog.getSaveFileName(self, "Export coding sheet", str(base), filt)
        if name:
            if not name.lower().endswith(f".{kind}"):
                name += f".{kind}"
            self.export_coding_sheet(name)

    def export_events(self, path: str | os.PathLike[str]) -> Path:
        """Write the (edited) events as a mestudio ``events.json``."""
        from mestudio.events_io import write_events_json

        assert self.doc is not None
        meta: dict[str, Any] = {"source": self.path.name, "fps": self.fps,
                                "n_frames": self.n_frames, "model": self.doc.model}
        if self.doc.faces is not None:
            meta["faces"] = self.doc.faces  # the events keep their face_id
        out = write_events_json(path, self.doc.events, meta)
        self.show_message(f"events written: {out}")
        return out

    def export_events_dialog(self) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self, "Export events.json", str(self.path.with_name(f"{self.path.stem}.events.json")),
            "events (*.json)")
        if name:
            self.export_events(name)

    def edit_subject_dialog(self) -> None:
        if self.doc is None:
            return
        subject, ok = QInputDialog.getText(self, "Subject", "Subject (coding sheet column):",
                                           text=self.doc.subject)
        if not ok:
            return
        filename, ok = QInputDialog.getText(self, "File name",
                                            "Filename (coding sheet column):",
                                            text=self.doc.filename)
        if ok:
            self.doc.subject, self.doc.filename = subject.strip(), filename.strip()

    def open_dialog(self) -> None:
        if not self._maybe_save():
            return
        name, _ = QFileDialog.getOpenFileName(
            self, "Open a video to review", str(self.path.parent),
            "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v *.mpg);;All files (*)")
        if name:
            self.open(name)

    def open_annotations_dialog(self) -> None:
        if not self._maybe_save():
            return
        name, _ = QFileDialog.getOpenFileName(self, "Open annotations", str(self.path.parent),
                                              "Annotations / events (*.json)")
        if name:
            self.open(self.path, events=name, analyze=False)

    # ------------------------------------------------------------ messages, closing
    def show_message(self, text: str, error: bool = False) -> None:
        self.messages.append(text)
        (log.warning if error else log.info)("review: %s", text)
        self.statusBar().showMessage(("⚠ " if error else "") + text, 8000)

    def keys_text(self) -> str:
        """What F1 / Help ▸ Keys shows: the key table, then every other shortcut of the
        window's actions."""
        from mestudio.gui.widgets import unlisted_shortcuts

        text = keys_help()
        return "\n".join([text, *unlisted_shortcuts(self, text)])

    def show_keys(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "Review keys", self.keys_text(),
                          QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setObjectName("ReviewKeys")
        font = box.font()
        font.setFamily("monospace")
        box.setFont(font)
        self._keys_box = box
        box.open()

    def _confirm(self, text: str) -> bool:
        from mestudio.gui.app import is_offscreen

        if is_offscreen():
            return True
        return QMessageBox.question(self, "mestudio review", text) == \
            QMessageBox.StandardButton.Yes

    def _maybe_save(self) -> bool:
        """Ask to save unsaved edits; False when the user cancels."""
        from mestudio.gui.app import is_offscreen

        if self.doc is None or not self.doc.modified or not self.ask_on_close or is_offscreen():
            return True
        answer = QMessageBox.question(
            self, "Unsaved annotations", "Save the changes to the annotations?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Cancel:
            return False
        if answer == QMessageBox.StandardButton.Save:
            try:
                self.save()
            except MestudioError as exc:
                self.show_message(str(exc), error=True)
                return False
        return True

    def shutdown(self) -> None:
        """Stop playback and the background threads, close the video."""
        self.stop_play()
        self.cancel_analysis()
        if self._details is not None:
            self._details.stop()
            self._details = None
        if self.source is not None:
            self.source.close()
            self.source = None

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self._maybe_save():
            event.ignore()
            return
        self.shutdown()
        super().closeEvent(event)


def open_review(path: str | os.PathLike[str], *, events: str | os.PathLike[str] | None = None,
                config: AppConfig | None = None, parent: QWidget | None = None) -> ReviewWindow:
    """Open a review window for ``path`` (a video or image folder) and show it; for the main
    window's File menu. The window keeps itself alive until closed.

    Raises:
        MestudioError: the video or its annotation file cannot be opened.
    """
    win = ReviewWindow(path, events=events, config=config, parent=None)
    win.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    _OPEN_WINDOWS.append(win)
    win.destroyed.connect(lambda *_: _OPEN_WINDOWS.remove(win) if win in _OPEN_WINDOWS
                          else None)
    win.show()
    return win
