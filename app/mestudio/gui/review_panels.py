"""Review-mode panels: the timeline, the annotation table and the per-event panel
(onset/apex/offset thumbnails, flow and strain images, Grad-CAM per stream, probabilities).

The pictures of the per-event panel are computed off the GUI thread by
:func:`mestudio.engine.event_details.compute_event_details` (no Qt) through
:class:`EventDetailsLoader`; the widgets here only draw them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mestudio.annotations import Annotation
from mestudio.engine.event_details import THUMB_PX, EventDetails, compute_event_details
from mestudio.engine.overlays import (
    AUTO_STREAM,
)
from mestudio.gui.widgets import MACRO_COLOUR, MICRO_COLOUR, emotion_colour, plain_label
from mestudio.gui.widgets.prob_bars import ProbBars
from mestudio.predtext import prediction_text
from mestudio.types import SpotEvent

log = logging.getLogger(__name__)

class EventDetailsLoader(QObject):
    """Computes :class:`EventDetails` in a background thread, newest request wins.

    Args:
        open_source: opens a private frame source for the thread (sources are not shared
            between threads).
        engine_factory: returns the ``InferenceEngine`` to use, or None (called once, in the
            thread).
        macro_engine_factory: returns the expression model for macro events, or None
            (called once, in the thread).
        transforms_fn: an event -> its face's recorded alignment transforms (frame index ->
            ``(2, 3)`` or None; ``frames.csv`` of the analysis), or None: the crops are then
            those of live recognition (:func:`~mestudio.engine.event_details.compute_event_details`).

    Signals:
        ready(object): an :class:`EventDetails` for the latest request.
        failed(str): the latest request failed.
    """

    ready = Signal(object)
    failed = Signal(str)

    def __init__(self, open_source: Callable[[], Any],
                 engine_factory: Callable[[], Any] | None = None,
                 tracker_config: Any = None, parent: QObject | None = None,
                 macro_engine_factory: Callable[[], Any] | None = None,
                 transforms_fn: Callable[[SpotEvent], Any] | None = None) -> None:
        super().__init__(parent)
        self._transforms_fn = transforms_fn
        self._open_source = open_source
        self._engine_factory = engine_factory
        self._macro_engine_factory = macro_engine_factory
        self._tracker_config = tracker_config
        self._cond = threading.Condition()
        self._request: SpotEvent | None = None
        self._generation = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        self.busy = False

    def request(self, event: SpotEvent) -> None:
        """Compute the details of ``event`` (replaces a request not yet started); ignored
        after :meth:`stop`."""
        with self._cond:
            if self._stop:
                return
            self._request = event
            self._generation += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mestudio-event-details",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def stop(self, timeout_s: float = 20.0) -> None:
        """End the thread; after this returns no signal is emitted any more (the thread
        checks under the lock before emitting), so the owner may be deleted. Waits up to
        ``timeout_s`` for a computation in progress (the thread is a daemon: a computation
        that takes longer finishes on its own and its result is dropped)."""
        with self._cond:
            self._stop = True
            self._request = None
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("the event-details thread is still busy after %.0f s; its result "
                            "will be dropped", timeout_s)

    def _run(self) -> None:
        source = None
        engine = macro_engine = None
        engine_loaded = False
        try:
            while True:
                with self._cond:
                    while self._request is None and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                    event, gen = self._request, self._generation
                    self._request = None
                    self.busy = True
                assert event is not None
                try:
                    if source is None:
                        source = self._open_source()
                    if not engine_loaded:
                        engine_loaded = True
                        if self._engine_factory is not None:
                            try:
                                engine = self._engine_factory()
                            except Exception as exc:  # noqa: BLE001
                                log.warning("no recognition model for review: %s", exc)
                        if self._macro_engine_factory is not None:
                            try:
                                macro_engine = self._macro_engine_factory()
                            except Exception as exc:  # noqa: BLE001
                                log.warning("no expression model for review: %s", exc)
                    transforms = self._transforms_fn(event) if self._transforms_fn else None
                    details = compute_event_details(source.read, event, engine=engine,
                                                    tracker_config=self._tracker_config,
                                                    macro_engine=macro_engine,
                                                    transforms=transforms)
                except Exception as exc:  # noqa: BLE001 - report, keep serving
                    log.exception("event details failed")
                    with self._cond:
                        self.busy = False
                        # emitted under the lock: once stop() has set the flag, nothing
                        # reaches the (possibly deleted) receivers any more
                        if gen == self._generation and not self._stop:
                            self.failed.emit(str(exc))
                    continue
                with self._cond:
                    self.busy = self._request is not None
                    if gen == self._generation and not self._stop:
                        self.ready.emit(details)
        finally:
            if source is not None:
                source.close()


# ====================================================================== widgets
def _qimage(img: np.ndarray) -> QImage:
    from mestudio.gui.widgets.video_view import bgr_to_qimage

    return bgr_to_qimage(np.ascontiguousarray(img)).copy()


class ImageTile(QWidget):
    """A picture with a caption (aspect kept); ``highlighted`` draws an accent frame.

    Signals:
        clicked(): the user clicked the tile.
    """

    clicked = Signal()

    def __init__(self, caption: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = caption
        self.highlighted = False
        self._image: QImage | None = None
        self.setMinimumSize(72, 86)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_highlighted(self, on: bool) -> None:
        self.highlighted = bool(on)
        self.update()

    def set_caption(self, caption: str) -> None:
        self.caption = caption
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mousePressEvent(event)

    def set_image(self, img: np.ndarray | None, caption: str | None = None) -> None:
        self._image = _qimage(img) if img is not None else None
        if caption is not None:
            self.caption = caption
        self.update()

    def has_image(self) -> bool:
        return self._image is not None

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(THUMB_PX, THUMB_PX + 18)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#17191e"))
        area = QRectF(2, 2, self.width() - 4, self.height() - 20)
        if self._image is not None:
            scale = min(area.width() / self._image.width(), area.height() / self._image.height())
            w, h = self._image.width() * scale, self._image.height() * scale
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(QRectF(area.center().x() - w / 2, area.top(), w, h), self._image)
        else:
            p.setPen(QColor("#4a5060"))
            p.drawText(area, Qt.AlignmentFlag.AlignCenter, "—")
        if self.highlighted:
            p.setPen(QPen(QColor(MICRO_COLOUR), 2))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(1, 1, self.width() - 2, self.height() - 2))
        p.setPen(QColor("#e8ecf2") if self.highlighted else QColor("#aab2c0"))
        p.drawText(QRectF(0, self.height() - 18, self.width(), 16),
                   Qt.AlignmentFlag.AlignCenter, self.caption)
        p.end()


class EventPanel(QWidget):
    """Per-event panel: thumbnails (onset, apex, offset), flow and strain, Grad-CAM per
    stream, probabilities, and notes on what is unavailable."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("EventPanel")
        self.title = plain_label(QLabel("No event selected"))
        self.title.setObjectName("PanelTitle")
        self.title.setWordWrap(True)
        self.tiles = {k: ImageTile(k) for k in ("onset", "apex", "offset", "flow", "strain")}
        grid = QGridLayout()
        grid.setSpacing(4)
        for i, k in enumerate(("onset", "apex", "offset")):
            grid.addWidget(self.tiles[k], 0, i)
        grid.addWidget(self.tiles["flow"], 1, 0)
        grid.addWidget(self.tiles["strain"], 1, 1)
        self.cam_title = plain_label(QLabel("Grad-CAM"))
        self.cam_title.setObjectName("PanelTitle")
        self.cam_grid = QGridLayout()
        self.cam_grid.setSpacing(4)
        self.cam_tiles: dict[str, ImageTile] = {}
        #: which stream is highlighted: "auto" (the strongest of each event) or a name
        self.cam_stream = AUTO_STREAM
        self._cam_auto: str | None = None
        self._cam_empty: frozenset[str] = frozenset()
        self.probs = ProbBars()
        self.probs.setMinimumHeight(150)
        self.notes = plain_label(QLabel(""))
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #8d96a7;")
        inner = QWidget()
        col = QVBoxLayout(inner)
        col.setContentsMargins(4, 4, 4, 4)
        col.addWidget(self.title)
        col.addLayout(grid)
        col.addWidget(self.cam_title)
        col.addLayout(self.cam_grid)
        col.addWidget(self.probs)
        col.addWidget(self.notes)
        col.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.details: EventDetails | None = None

    def clear(self, text: str = "No event selected") -> None:
        """Nothing of the previous event stays: pictures, their frame numbers, probabilities."""
        self.details = None
        self.title.setText(text)
        for name, t in self.tiles.items():
            t.set_image(None, name)
        self._set_cams({})
        self.probs.clear(text, "Select an event in the table or on the timeline.")
        self.notes.setText("")

    def set_loading(self, ann: Annotation) -> None:
        """Show the event's header and stored prediction while the pictures are computed."""
        self.title.setText(self._title(ann.event, ann.label) + " · computing…")
        self.probs.set_prediction(ann.event.prediction, ann.event)

    @staticmethod
    def _title(ev: SpotEvent, label: str | None) -> str:
        frames = f"frames {ev.onset}–{ev.apex}–{ev.offset}"
        return (f"Event #{ev.id} · {ev.kind} · {frames} · {ev.duration_s * 1000:.0f} ms"
                + (f" · {label}" if label else ""))

    def _set_cams(self, cams: dict[str, np.ndarray], auto: str | None = None,
                  empty: frozenset[str] = frozenset()) -> None:
        for tile in self.cam_tiles.values():
            self.cam_grid.removeWidget(tile)
            tile.deleteLater()
        self.cam_tiles = {}
        self._cam_auto = auto if auto in cams else None
        self._cam_empty = frozenset(empty)
        for i, (name, img) in enumerate(cams.items()):
            tile = ImageTile(name)
            tile.set_image(img)
            tile.setToolTip("Click to highlight this stream for every event; click again "
                            "for auto (the strongest stream)")
            tile.clicked.connect(lambda n=name: self.set_cam_stream(
                AUTO_STREAM if self.cam_stream == n else n))
            self.cam_grid.addWidget(tile, i // 3, i % 3)
            self.cam_tiles[name] = tile
        self._update_cam_tiles()

    def set_cam_stream(self, stream: str) -> None:
        """Highlight ``stream``'s Grad-CAM (kept for the next events), or ``"auto"``: the
        stream with the strongest map of the predicted class for each event."""
        self.cam_stream = stream or AUTO_STREAM
        self._update_cam_tiles()

    def shown_cam_stream(self) -> str | None:
        """The highlighted stream (a chosen stream the event lacks falls back to auto)."""
        if self.cam_stream != AUTO_STREAM and self.cam_stream in self.cam_tiles:
            return self.cam_stream
        return self._cam_auto

    def _update_cam_tiles(self) -> None:
        shown = self.shown_cam_stream()
        for name, tile in self.cam_tiles.items():
            marks = []
            if name == self._cam_auto:
                marks.append("strongest")
            if name in self._cam_empty:
                marks.append("zero")
            tile.set_caption(name + (f" · {', '.join(marks)}" if marks else ""))
            tile.set_highlighted(name == shown)
        if not self.cam_tiles:
            self.cam_title.setText("Grad-CAM: not available")
        elif shown is None:
            self.cam_title.setText("Grad-CAM (predicted class): zero in every stream")
        else:
            how = "auto" if self.cam_stream == AUTO_STREAM or self.cam_stream != shown \
                else "chosen"
            self.cam_title.setText(f"Grad-CAM (predicted class) per stream — {shown} ({how})")

    def set_details(self, details: EventDetails, label: str | None = None) -> None:
        self.details = details
        ev = details.event
        self.title.setText(self._title(ev, label))
        crop_word = "aligned" if details.aligned else "frame"
        for k in ("onset", "apex", "offset"):
            idx = getattr(ev, k)
            self.tiles[k].set_image(details.thumbs.get(k), f"{k} {idx} ({crop_word})")
        self.tiles["flow"].set_image(details.flow, "flow u,v")
        self.tiles["strain"].set_image(details.strain, "strain")
        self._set_cams(details.cams, details.cam_auto, details.cam_empty)
        self.probs.set_prediction(details.prediction, ev)
        self.notes.setText("\n".join(details.notes))


class Timeline(QWidget):
    """The whole video as a bar: event markers (micro/macro colours, apex tick), the selected
    event outlined, a pending onset mark, and the cursor. Click or drag to seek.

    Signals:
        seek_requested(int): the user clicked/dragged at this frame.
    """

    seek_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Timeline")
        self.setMinimumHeight(44)
        self.setMaximumHeight(56)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.n_frames = 1
        self.cursor_frame = 0
        self.selected: int | None = None
        self.pending: int | None = None
        self._items: list[tuple[int, int, int, int, str, str | None]] = []

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(800, 48)

    def set_frames(self, n_frames: int) -> None:
        self.n_frames = max(1, int(n_frames))
        self.update()

    def set_annotations(self, annotations: Sequence[Annotation]) -> None:
        self._items = [(a.id, a.onset, a.apex, a.offset, a.kind, a.label) for a in annotations]
        self.update()

    def set_cursor(self, frame: int) -> None:
        self.cursor_frame = int(frame)
        self.update()

    def set_selected(self, ann_id: int | None) -> None:
        self.selected = ann_id
        self.update()

    def set_pending(self, frame: int | None) -> None:
        self.pending = frame
        self.update()

    def _x(self, frame: float) -> float:
        return 6 + (self.width() - 12) * (frame / max(1, self.n_frames - 1))

    def frame_at(self, x: float) -> int:
        f = (x - 6) / max(1.0, self.width() - 12) * (self.n_frames - 1)
        return int(min(max(round(f), 0), self.n_frames - 1))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#17191e"))
        h = self.height()
        bar = QRectF(6, 14, self.width() - 12, h - 24)
        p.fillRect(bar, QColor("#262a33"))
        for ann_id, on, ap, off, kind, label in self._items:
            colour = QColor(MICRO_COLOUR if kind == "micro" else MACRO_COLOUR)
            x0, x1 = self._x(on), max(self._x(off), self._x(on) + 2)
            fill = QColor(colour)
            fill.setAlpha(200 if ann_id == self.selected else 120)
            p.fillRect(QRectF(x0, bar.top(), x1 - x0, bar.height()), fill)
            p.setPen(QPen(QColor(emotion_colour(label)) if label else colour.lighter(), 2))
            xa = self._x(ap)
            p.drawLine(QPointF(xa, bar.top() - 4), QPointF(xa, bar.top()))
            if ann_id == self.selected:
                p.setPen(QPen(QColor("#ffffff"), 1.5))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRect(QRectF(x0 - 1, bar.top() - 1, x1 - x0 + 2, bar.height() + 2))
        if self.pending is not None:
            pen = QPen(QColor("#ffd166"), 2, Qt.PenStyle.DashLine)
            p.setPen(pen)
            xp = self._x(self.pending)
            p.drawLine(QPointF(xp, 2), QPointF(xp, h - 2))
        xc = self._x(self.cursor_frame)
        p.setPen(QPen(QColor("#ffffff"), 2))
        p.drawLine(QPointF(xc, 2), QPointF(xc, h - 2))
        f = QFont(self.font())
        f.setPointSizeF(max(7.0, f.pointSizeF() * 0.8))
        p.setFont(f)
        p.setPen(QColor("#8d96a7"))
        p.drawText(QRectF(6, 0, 200, 13), Qt.AlignmentFlag.AlignLeft, "0")
        p.drawText(QRectF(self.width() - 206, 0, 200, 13), Qt.AlignmentFlag.AlignRight,
                   str(self.n_frames - 1))
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.seek_requested.emit(self.frame_at(event.position().x()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.seek_requested.emit(self.frame_at(event.position().x()))


TABLE_COLUMNS = ("#", "face", "onset", "apex", "offset", "ms", "kind", "label", "predicted",
                 "AUs", "origin")
#: Columns of numbers (right-aligned).
NUMERIC_COLUMNS = frozenset({"#", "face", "onset", "apex", "offset", "ms"})


class AnnotationTable(QTableWidget):
    """The annotations, one row each; the selection follows the window's. Not focusable so
    the review keys (arrows) always step through the video.

    Signals:
        annotation_selected(int): the user clicked a row (annotation id).
        edit_requested(int, str): double-click on a row: ``(id, column name)``.
    """

    annotation_selected = Signal(int)
    edit_requested = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(TABLE_COLUMNS), parent)
        self.setObjectName("AnnotationTable")
        self.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(22)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self._ids: list[int] = []
        self._updating = False
        self.itemSelectionChanged.connect(self._on_selection)
        self.cellDoubleClicked.connect(self._on_double_click)

    def ids(self) -> list[int]:
        return list(self._ids)

    def set_annotations(self, annotations: Sequence[Annotation], selected: int | None) -> None:
        self._updating = True
        try:
            self.setRowCount(len(annotations))
            self._ids = [a.id for a in annotations]
            for r, a in enumerate(annotations):
                ev = a.event
                pred = ev.prediction
                values = [str(a.id), str(ev.face_id) if ev.face_id else "—",
                          str(a.onset), str(a.apex), str(a.offset),
                          f"{ev.duration_s * 1000:.0f}", a.kind, a.label or "—",
                          prediction_text(pred, ev.kind) if pred else "—",
                          a.aus, a.origin]
                for c, text in enumerate(values):
                    item = QTableWidgetItem(text)
                    if TABLE_COLUMNS[c] in NUMERIC_COLUMNS:
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                              | Qt.AlignmentFlag.AlignVCenter)
                    if TABLE_COLUMNS[c] == "kind":
                        item.setForeground(QColor(MICRO_COLOUR if a.kind == "micro"
                                                  else MACRO_COLOUR))
                    if TABLE_COLUMNS[c] == "label" and a.label:
                        item.setForeground(QColor(emotion_colour(a.label)))
                    self.setItem(r, c, item)
            self.select_id(selected)
        finally:
            self._updating = False

    def select_id(self, ann_id: int | None) -> None:
        was = self._updating
        self._updating = True
        try:
            if ann_id is None or ann_id not in self._ids:
                self.clearSelection()
            else:
                row = self._ids.index(ann_id)
                self.selectRow(row)
                item = self.item(row, 0)
                if item is not None:
                    self.scrollToItem(item)
        finally:
            self._updating = was

    def _on_selection(self) -> None:
        if self._updating:
            return
        rows = self.selectionModel().selectedRows()
        if rows:
            self.annotation_selected.emit(self._ids[rows[0].row()])

    def _on_double_click(self, row: int, col: int) -> None:
        if 0 <= row < len(self._ids):
            self.edit_requested.emit(self._ids[row], TABLE_COLUMNS[col])
