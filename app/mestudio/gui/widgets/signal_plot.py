"""The motion-signal plot (pyqtgraph): per-ROI signals, the combined signal, the adaptive
threshold and shaded spotted intervals (micro and macro in different colours).

Two modes:

* **live** (default) - :meth:`SignalPlot.append` buffers one frame's :class:`SpotterState`
  (cheap, any rate); :meth:`SignalPlot.refresh` pushes the last ``window_s`` seconds to the
  curves and scrolls (call it at display rate, not per frame).
* **whole video** (review) - :meth:`SignalPlot.set_whole_video` shows a complete recording;
  a draggable cursor (:meth:`SignalPlot.set_cursor`) marks the current time and the
  ``cursor_moved(seconds)`` signal reports where the user dragged or clicked.

Times are seconds on the x axis; signals are pixels of flow magnitude.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from mestudio.gui.widgets import (
    MACRO_COLOUR,
    MICRO_COLOUR,
    PLOT_BACKGROUND,
    plain_label,
    roi_colour,
)
from mestudio.types import SpotEvent, SpotterState

THRESHOLD_COLOUR = "#ff5d5d"
#: Height of the legend row above the plot area (pixels).
LEGEND_ROW_PX = 18
#: Free space above the highest sample, as a fraction of the shown range: the event labels
#: sit there, above the curves.
HEADROOM = 0.28
#: Event label rows: a label that would overlap the previous one takes the next row down
#: (at most this many; each a label's height lower, from the top of the plot).
LABEL_ROWS = (0, 1, 2)
#: A label's height (pixels), the step between rows.
LABEL_ROW_PX = 22.0
COMBINED_COLOUR = "#f2f4f8"


class _Ring:
    """Column store of the last ``capacity`` samples (time + named float series)."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self.n = 0
        self.t = np.empty(capacity, dtype=np.float64)
        self.cols: dict[str, np.ndarray] = {}

    def clear(self) -> None:
        self.n = 0
        self.cols.clear()

    def append(self, t: float, values: dict[str, float]) -> None:
        if self.n == self.capacity:
            keep = self.capacity // 2
            self.t[:keep] = self.t[self.n - keep:self.n]
            for col in self.cols.values():
                col[:keep] = col[self.n - keep:self.n]
            self.n = keep
        i = self.n
        self.t[i] = t
        for name, v in values.items():
            if name not in self.cols:
                self.cols[name] = np.full(self.capacity, np.nan, dtype=np.float64)
            self.cols[name][i] = v
        for name, col in self.cols.items():
            if name not in values:
                col[i] = np.nan
        self.n += 1


class SignalPlot(pg.PlotWidget):
    """Per-ROI motion signals with threshold and spotted intervals.

    Signals:
        cursor_moved(float): whole-video mode; the user dragged the cursor or clicked at
            this time (seconds).
    """

    cursor_moved = Signal(float)

    def __init__(self, parent: QWidget | None = None, window_s: float = 10.0,
                 max_regions: int = 60) -> None:
        super().__init__(parent=parent, background=PLOT_BACKGROUND)
        self.window_s = float(window_s)
        self.max_regions = max_regions
        self._mode = "live"
        self._ring = _Ring()
        self._dirty = False
        self._spotting = True
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._roi_order: list[str] = []
        self._regions: dict[int, tuple[SpotEvent, pg.LinearRegionItem, pg.InfLineLabel]] = {}
        self._label_ends = [-math.inf] * len(LABEL_ROWS)  # per label row: where it is free
        self._anon = 0
        item = self.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setLabel("bottom", "time (s)")
        item.setLabel("left", "motion (px)")
        for axis in ("bottom", "left"):
            item.getAxis(axis).enableAutoSIPrefix(False)
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setMouseEnabled(x=False, y=False)
        # The legend is a row of its own above the plot area (the hidden title's row), so
        # it never covers a peak of the signal.
        self._legend = pg.LegendItem(colCount=10, labelTextSize="8pt", verSpacing=-6)
        item.layout.removeItem(item.titleLabel)
        item.titleLabel.hide()
        item.layout.addItem(self._legend, 0, 1, Qt.AlignmentFlag.AlignLeft)
        self._legend.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Maximum)
        item.layout.setRowFixedHeight(0, LEGEND_ROW_PX)
        item.legend = self._legend  # curves made with a name join it
        self._combined = self._make_curve("combined", COMBINED_COLOUR, width=2.0)
        self._threshold = self._make_curve("threshold", THRESHOLD_COLOUR, width=1.5,
                                           style=Qt.PenStyle.DashLine)
        self._cursor = pg.InfiniteLine(angle=90, movable=True,
                                       pen=pg.mkPen("#ffffff", width=1.5),
                                       hoverPen=pg.mkPen("#27c4b4", width=2.5))
        self._cursor.setZValue(50)
        self._cursor.sigPositionChanged.connect(self._on_cursor_dragged)
        self._cursor.hide()
        self.addItem(self._cursor, ignoreBounds=True)
        self.scene().sigMouseClicked.connect(self._on_scene_clicked)
        self._note = plain_label(QLabel(self))
        self._note.setObjectName("PlotNote")
        self._note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._note.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self._note.setStyleSheet("color: #7d8594; font-size: 13pt; background: transparent;")
        self._note.hide()
        self._face_label = plain_label(QLabel(self))
        self._face_label.setObjectName("PlotFace")
        self._face_label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self._face_label.hide()
        self._face: int | None = None
        self.setXRange(0, self.window_s, padding=0)
        self.setMinimumHeight(140)

    # ------------------------------------------------------------------ helpers
    def _make_curve(self, name: str, colour: str, width: float = 1.2,
                    style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> pg.PlotDataItem:
        pen = pg.mkPen(colour, width=width, style=style)
        curve = self.plot([], [], pen=pen, name=name, connect="finite")
        curve.setClipToView(True)
        return curve

    def _roi_curve(self, name: str) -> pg.PlotDataItem:
        curve = self._curves.get(name)
        if curve is None:
            order = len(self._roi_order)
            self._roi_order.append(name)
            # legend labels are HTML: a ROI name read from a frames.csv is escaped
            curve = self._make_curve(html.escape(name), roi_colour(name, order), width=1.0)
            curve.setZValue(-1)
            self._curves[name] = curve
        return curve

    def resizeEvent(self, ev) -> None:  # noqa: N802, ANN001
        super().resizeEvent(ev)
        note = self.__dict__.get("_note")  # resizeEvent runs inside the base __init__
        if note is not None:
            note.setGeometry(0, 0, self.width(), self.height())
        self._place_face_label()

    def _place_face_label(self) -> None:
        label = self.__dict__.get("_face_label")
        if label is not None:
            label.adjustSize()
            label.move(self.width() - label.width() - 8, 2)

    def set_face(self, face_id: int | None) -> None:
        """Every-face mode: whose signal is shown ("face N" in its colour at the top
        right); None or 0 hides the label (single-face mode)."""
        from mestudio.engine.overlays import face_colour

        self._face = face_id
        if not face_id:
            self._face_label.hide()
            return
        self._face_label.setText(f"signal of face {face_id}")
        self._face_label.setStyleSheet(f"color: {face_colour(face_id)}; font-weight: bold; "
                                       "background: transparent;")
        self._place_face_label()
        self._face_label.show()

    def face(self) -> int | None:
        """The face set with :meth:`set_face`."""
        return self._face

    def set_note(self, text: str) -> None:
        """A grey note over the plot ("spotting off", "no face"...); "" hides it."""
        self._note.setText(text)
        self._note.setVisible(bool(text))

    def note(self) -> str:
        return self._note.text() if self._note.isVisible() else ""

    # ------------------------------------------------------------------ live mode
    def clear_data(self) -> None:
        """Forget every sample and interval (new source)."""
        self._ring.clear()
        for curve in [*self._curves.values(), self._combined, self._threshold]:
            curve.setData([], [])
        for name in list(self._curves):
            curve = self._curves.pop(name)
            self._legend.removeItem(curve)
            self.removeItem(curve)
        self._roi_order.clear()
        for key in list(self._regions):
            self._remove_region(key)
        self._label_ends = [-math.inf] * len(LABEL_ROWS)
        self._dirty = False
        self.setXRange(0, self.window_s, padding=0)

    def set_spotting_enabled(self, on: bool) -> None:
        """Show "spotting off" when the pipeline runs without a spotter."""
        self._spotting = on
        self.set_note("" if on else "spotting off")

    def append(self, timestamp_s: float, state: SpotterState | None) -> None:
        """Buffer one frame of the spotter (None = spotting off for this frame)."""
        if state is None:
            return
        values = {f"roi:{k}": float(v) for k, v in state.signal.items()}
        values["combined"] = float(state.combined)
        values["threshold"] = float(state.threshold)
        self._ring.append(float(timestamp_s), values)
        self._dirty = True

    def sample_count(self) -> int:
        return self._ring.n

    def set_samples(self, samples: Iterable[tuple[float, SpotterState | None]]) -> None:
        """Replace the buffered samples (live mode) by ``(timestamp_s, state)`` pairs, e.g.
        another face's history; drawn at the next :meth:`refresh`."""
        self._ring.clear()
        for curve in [*self._curves.values(), self._combined, self._threshold]:
            curve.setData([], [])
        for t, state in samples:
            self.append(t, state)
        self._dirty = True

    def samples(self, column: str = "combined") -> tuple[np.ndarray, np.ndarray]:
        """The buffered ``(times, values)`` of one column (``"combined"``, ``"threshold"``
        or ``"roi:<name>"``); empty arrays when unknown."""
        ring = self._ring
        col = ring.cols.get(column)
        if col is None:
            return np.empty(0), np.empty(0)
        return ring.t[:ring.n].copy(), col[:ring.n].copy()

    def refresh(self) -> None:
        """Draw the buffered samples of the last ``window_s`` seconds and scroll."""
        if self._mode != "live" or not self._dirty:
            return
        self._dirty = False
        ring = self._ring
        n = ring.n
        if n == 0:
            return
        t = ring.t[:n]
        start = int(np.searchsorted(t, t[-1] - self.window_s - 0.5))
        ts = t[start:]
        for key, col in ring.cols.items():
            if key.startswith("roi:"):
                self._roi_curve(key[4:]).setData(ts, col[start:n])
        if "combined" in ring.cols:
            self._combined.setData(ts, ring.cols["combined"][start:n])
        if "threshold" in ring.cols:
            self._threshold.setData(ts, ring.cols["threshold"][start:n])
        t_end = float(t[-1])
        self.setXRange(max(0.0, t_end - self.window_s), max(self.window_s, t_end), padding=0)
        self._fit_y([col[start:n] for col in ring.cols.values()])

    def _fit_y(self, columns: list[np.ndarray]) -> None:
        """Y range from 0 (or the lowest sample) to the highest sample plus
        :data:`HEADROOM`, where the event labels are drawn."""
        highs = [float(np.nanmax(c)) for c in columns if len(c) and np.isfinite(c).any()]
        lows = [float(np.nanmin(c)) for c in columns if len(c) and np.isfinite(c).any()]
        if not highs:
            return
        lo, hi = min(0.0, *lows), max(highs)
        span = max(hi - lo, 1e-3)
        self.setYRange(lo, lo + span / (1.0 - HEADROOM), padding=0)

    # ------------------------------------------------------------------ intervals
    def _region_key(self, ev: SpotEvent) -> int:
        if ev.id >= 0:
            return ev.id
        self._anon -= 1
        return self._anon

    def _remove_region(self, key: int) -> None:
        _ev, region, _label = self._regions.pop(key)
        self.removeItem(region)

    @staticmethod
    def _event_text(ev: SpotEvent) -> str:
        pred = ev.prediction
        if pred is not None:
            from mestudio.predtext import emotion_text

            return emotion_text(pred, ev.kind) if pred.uncertain else \
                f"{emotion_text(pred, ev.kind)} {pred.confidence * 100:.0f}%"
        return ev.kind

    def add_event(self, ev: SpotEvent) -> None:
        """Shade the interval ``[onset_s, offset_s]`` of an event (micro/macro colours)."""
        key = self._region_key(ev)
        if key in self._regions:
            self.update_event(ev)
            return
        colour = QColor(MICRO_COLOUR if ev.kind == "micro" else MACRO_COLOUR)
        fill = QColor(colour)
        fill.setAlpha(70)
        edge = QColor(colour)
        edge.setAlpha(160)
        region = pg.LinearRegionItem(values=(ev.onset_s, max(ev.offset_s, ev.onset_s + 1e-3)),
                                     movable=False, brush=pg.mkBrush(fill),
                                     pen=pg.mkPen(edge, width=1))
        region.setZValue(-10)
        # at the top of the line, in the headroom above the curves (never on them at y = 0);
        # a label that would run into the previous one goes one row lower
        text = self._event_text(ev)
        row = self._label_row(ev.onset_s, text)
        plot_px = max(float(self.getPlotItem().getViewBox().height()), 60.0)
        label = pg.InfLineLabel(region.lines[0], text=text,
                                position=max(0.98 - row * LABEL_ROW_PX / plot_px, 0.5),
                                anchors=[(0, 0), (0, 0)], color=colour.name())
        self.addItem(region, ignoreBounds=True)
        self._regions[key] = (ev, region, label)
        while len(self._regions) > self.max_regions:
            self._remove_region(next(iter(self._regions)))

    def _label_row(self, start_s: float, text: str) -> int:
        """The first label row free at ``start_s`` for a label of ``text`` (its width in
        seconds at the current zoom), else the one that frees first."""
        (x0, x1), _ = self.viewRange()
        sec_per_px = max(x1 - x0, 1e-6) / max(self.width() - 60, 200)
        width_s = (7.0 * len(text) + 10.0) * sec_per_px
        ends = self._label_ends
        row = next((r for r, end in enumerate(ends) if end <= start_s),
                   min(range(len(ends)), key=lambda r: ends[r]))
        ends[row] = start_s + width_s
        return row

    def update_event(self, ev: SpotEvent) -> None:
        """Refresh an event's interval and label (e.g. its prediction arrived)."""
        entry = self._regions.get(ev.id) if ev.id >= 0 else None
        if entry is None:
            self.add_event(ev)
            return
        _old, region, label = entry
        region.setRegion((ev.onset_s, max(ev.offset_s, ev.onset_s + 1e-3)))
        label.setFormat(self._event_text(ev))
        self._regions[ev.id] = (ev, region, label)

    def set_events(self, events: Iterable[SpotEvent]) -> None:
        """Replace every shaded interval."""
        for key in list(self._regions):
            self._remove_region(key)
        self._label_ends = [-math.inf] * len(LABEL_ROWS)
        for ev in events:
            self.add_event(ev)

    def event_regions(self) -> list[tuple[SpotEvent, tuple[float, float]]]:
        """The shaded intervals: (event, (start_s, end_s)), oldest first."""
        return [(ev, tuple(region.getRegion())) for ev, region, _l in self._regions.values()]

    # ------------------------------------------------------------------ whole-video mode
    def set_whole_video(self, times_s: np.ndarray, signals: dict[str, np.ndarray],
                        threshold: np.ndarray | None = None, combined: np.ndarray | None = None,
                        events: Iterable[SpotEvent] = ()) -> None:
        """Show a complete recording (review mode).

        Args:
            times_s: ``(N,)`` timestamps of the frames in seconds.
            signals: per-ROI ``(N,)`` motion signals in pixels (NaN where no face).
            threshold: ``(N,)`` adaptive threshold, or None.
            combined: ``(N,)`` combined signal, or None.
            events: intervals to shade.
        """
        self.clear_data()
        self._mode = "whole"
        t = np.asarray(times_s, dtype=np.float64)
        for name, values in signals.items():
            self._roi_curve(name).setData(t, np.asarray(values, dtype=np.float64))
        if combined is not None:
            self._combined.setData(t, np.asarray(combined, dtype=np.float64))
        if threshold is not None:
            self._threshold.setData(t, np.asarray(threshold, dtype=np.float64))
        self._fit_y([np.asarray(v, dtype=np.float64) for v in
                     [*signals.values(), *(c for c in (combined, threshold) if c is not None)]])
        self._cursor.show()
        span = (float(t[0]), float(t[-1])) if len(t) else (0.0, 1.0)
        self.setXRange(span[0], max(span[1], span[0] + 1e-3), padding=0.01)
        self.set_events(events)  # after the range: label rows depend on the zoom
        self.getPlotItem().setMouseEnabled(x=True, y=False)
        self.set_note("" if len(t) else "no signal")

    def set_live_mode(self) -> None:
        """Back to scrolling live mode (clears the plot)."""
        self.clear_data()
        self._mode = "live"
        self._cursor.hide()
        self.getPlotItem().setMouseEnabled(x=False, y=False)

    def mode(self) -> str:
        return self._mode

    def set_cursor(self, t_s: float) -> None:
        """Move the whole-video cursor to ``t_s`` seconds (does not emit ``cursor_moved``)."""
        self._cursor.blockSignals(True)
        self._cursor.setValue(float(t_s))
        self._cursor.blockSignals(False)

    def cursor(self) -> float:
        return float(self._cursor.value())

    def _on_cursor_dragged(self) -> None:
        if self._mode == "whole":
            self.cursor_moved.emit(float(self._cursor.value()))

    def _on_scene_clicked(self, ev) -> None:  # noqa: ANN001
        if self._mode != "whole" or ev.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        t = float(vb.mapSceneToView(ev.scenePos()).x())
        self.set_cursor(t)
        self.cursor_moved.emit(t)
