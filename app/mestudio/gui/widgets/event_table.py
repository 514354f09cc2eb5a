"""The event table: one row per spotted event (time, duration, kind, ROI, emotion,
confidence, face). :class:`EventTableModel` holds the events (Qt model, no widget code) and
:class:`EventTable` is the view; review mode reuses both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from mestudio.engine.overlays import face_colour
from mestudio.gui.widgets import MACRO_COLOUR, MICRO_COLOUR, emotion_colour, plain_tooltip
from mestudio.predtext import (
    UNCERTAIN_TEXT,
    agreement_text,
    emotion_text,
    is_expression,
    macro_caveat,
    named_by_text,
)
from mestudio.types import SpotEvent

COLUMNS: tuple[str, ...] = ("#", "time", "duration", "kind", "ROI", "emotion", "confidence",
                            "face")
"""Model columns. ``face`` (the event's track number, "–" in the single-face mode) is the
last model column so the others keep their numbers; :class:`EventTable` shows it second and
hides it until :meth:`EventTable.set_faces_shown`."""

_Index = QModelIndex | QPersistentModelIndex


def format_time(seconds: float) -> str:
    """``m:ss.ss`` for a time in seconds."""
    m, s = divmod(max(0.0, float(seconds)), 60.0)
    return f"{int(m)}:{s:05.2f}"


class EventTableModel(QAbstractTableModel):
    """The events of one session, in emission order; rows are found by ``SpotEvent.id``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._events: list[SpotEvent] = []
        self._row_of: dict[int, int] = {}

    # Qt model interface
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._events)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        ev = self._events[index.row()]
        col = COLUMNS[index.column()]
        pred = ev.prediction
        if role == Qt.ItemDataRole.DisplayRole:
            if col == "#":
                return str(ev.id) if ev.id >= 0 else ""
            if col == "time":
                return format_time(ev.onset_s)
            if col == "duration":
                return f"{ev.duration_s * 1000:.0f} ms"
            if col == "kind":
                return ev.kind
            if col == "ROI":
                return ev.roi
            if col == "face":
                return str(ev.face_id) if ev.face_id > 0 else "–"
            # Compact cells (the row's tool tip has the full wording): an uncertain
            # prediction has no emotion ("uncertain" beside kind "micro") and shows its
            # agreement; a confident one its confidence.
            if col == "emotion":
                return "—" if pred is None else "uncertain" if pred.uncertain \
                    else emotion_text(pred, ev.kind)
            if col == "confidence":
                if pred is None:
                    return "—"
                return agreement_text(pred) if pred.uncertain else \
                    f"{pred.confidence * 100:.0f} %"
        elif role == Qt.ItemDataRole.ForegroundRole:
            if col == "kind":
                return QBrush(QColor(MICRO_COLOUR if ev.kind == "micro" else MACRO_COLOUR))
            if col == "emotion" and pred is not None and pred.emotion is not None:
                return QBrush(QColor(emotion_colour(pred.emotion)))
            if col in ("emotion", "confidence") and (pred is None or pred.uncertain):
                return QBrush(QColor("#6b7280"))
            if col == "face" and ev.face_id > 0:
                return QBrush(QColor(face_colour(ev.face_id)))
        elif role == Qt.ItemDataRole.TextAlignmentRole:
            if col in ("#", "time", "duration", "confidence", "face"):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        elif role == Qt.ItemDataRole.ToolTipRole:
            text = (f"frames {ev.onset}–{ev.apex}–{ev.offset} (onset–apex–offset), "
                    f"strongest in {ev.roi}, peak {ev.peak:.3f} px")
            if ev.face_id > 0:
                text = f"face {ev.face_id}: " + text
            if pred is not None and pred.uncertain and is_expression(pred):
                text += (f"\n{named_by_text(pred, ev.kind)}: neutral or below the model's "
                         "least confidence, no emotion is shown")
            elif pred is not None and pred.uncertain:
                text += (f"\n{UNCERTAIN_TEXT}: the ensemble's members disagree "
                         f"({agreement_text(pred)}), no emotion is shown")
            elif pred is not None:
                text += "\n" + ", ".join(f"{c} {p * 100:.0f}%"
                                         for c, p in zip(pred.classes, pred.probs, strict=False))
                if pred.agreement is not None:
                    text += f"; {agreement_text(pred)} of the ensemble's members"
                text += f"\n{named_by_text(pred, ev.kind)}"
                if ev.kind == "macro":
                    text += f"\n{macro_caveat(pred)}"
            return plain_tooltip(text)  # class and ROI names come from model files
        elif role == Qt.ItemDataRole.UserRole:
            return ev
        return None

    # events
    def events(self) -> list[SpotEvent]:
        return list(self._events)

    def event_at(self, row: int) -> SpotEvent:
        return self._events[row]

    def row_of(self, event_id: int) -> int | None:
        return self._row_of.get(event_id)

    def add_event(self, ev: SpotEvent) -> int:
        """Append an event (or update it when its id is already listed); returns its row."""
        if ev.id >= 0 and ev.id in self._row_of:
            return self.update_event(ev)
        row = len(self._events)
        self.beginInsertRows(QModelIndex(), row, row)
        self._events.append(ev)
        if ev.id >= 0:
            self._row_of[ev.id] = row
        self.endInsertRows()
        return row

    def update_event(self, ev: SpotEvent) -> int:
        """Replace the event with the same id (e.g. its prediction arrived); appends when
        unknown. Returns its row."""
        row = self._row_of.get(ev.id) if ev.id >= 0 else None
        if row is None:
            return self.add_event(ev)
        self._events[row] = ev
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
        return row

    def set_events(self, events: Iterable[SpotEvent]) -> None:
        self.beginResetModel()
        self._events = list(events)
        self._row_of = {ev.id: i for i, ev in enumerate(self._events) if ev.id >= 0}
        self.endResetModel()

    def remove_row(self, row: int) -> SpotEvent:
        self.beginRemoveRows(QModelIndex(), row, row)
        ev = self._events.pop(row)
        self._row_of = {e.id: i for i, e in enumerate(self._events) if e.id >= 0}
        self.endRemoveRows()
        return ev

    def clear(self) -> None:
        self.set_events([])


class EventTable(QTableView):
    """View of an :class:`EventTableModel`; follows new rows unless the user scrolled up.

    Signals:
        event_selected(object): the user selected a row; the argument is the SpotEvent.
    """

    event_selected = Signal(object)

    def __init__(self, parent: QWidget | None = None,
                 model: EventTableModel | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("EventTable")
        self._model = model or EventTableModel(self)
        self.setModel(self._model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(22)
        self.setWordWrap(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self._size_columns()
        face = COLUMNS.index("face")
        header.moveSection(header.visualIndex(face), 1)  # "#", "face", "time", ...
        super().setColumnHidden(face, True)
        self.selectionModel().currentRowChanged.connect(self._on_row_changed)

    def _size_columns(self) -> None:
        """Column widths from the widest text each column can hold (rows come in one by one,
        so measuring contents would keep resizing)."""
        fm = self.fontMetrics()
        samples = {"#": "000", "time": "00:00.00", "duration": "0000 ms", "kind": "macro",
                   "ROI": "mouth_right", "emotion": "repression", "confidence": "100 %",
                   "face": "00"}
        bold = self.horizontalHeader().fontMetrics()
        self._natural_widths = []
        for col, name in enumerate(COLUMNS):
            text = samples.get(name, name)
            width = max(fm.horizontalAdvance(text), bold.horizontalAdvance(name) + 6) + 12
            self._natural_widths.append(width)
            self.setColumnWidth(col, width)

    def changeEvent(self, event) -> None:  # noqa: N802, ANN001
        super().changeEvent(event)
        if event.type() in (event.Type.FontChange, event.Type.StyleChange):
            self._size_columns()
            self.updateGeometry()

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        """Wide enough for every shown column: a narrow window (800 px) must not cut the
        emotion and confidence columns off."""
        hint = super().minimumSizeHint()
        widths = getattr(self, "_natural_widths", [])  # not the stretched last column
        cols = sum(w for c, w in enumerate(widths) if not self.isColumnHidden(c))
        return QSize(cols + self.verticalScrollBar().sizeHint().width()
                     + 2 * self.frameWidth() + 2, hint.height())

    def setColumnHidden(self, column: int, hide: bool) -> None:  # noqa: N802
        super().setColumnHidden(column, hide)
        self.updateGeometry()

    def set_faces_shown(self, shown: bool) -> None:
        """Show the ``face`` column (every-face mode); hidden in the single-face mode."""
        self.setColumnHidden(COLUMNS.index("face"), not shown)

    def faces_shown(self) -> bool:
        return not self.isColumnHidden(COLUMNS.index("face"))

    def event_model(self) -> EventTableModel:
        return self._model

    def add_event(self, ev: SpotEvent) -> None:
        bar = self.verticalScrollBar()
        follow = bar.value() >= bar.maximum() - 2
        self._model.add_event(ev)
        if follow:
            self.scrollToBottom()

    def update_event(self, ev: SpotEvent) -> None:
        self._model.update_event(ev)

    def clear(self) -> None:
        self._model.clear()

    def events(self) -> list[SpotEvent]:
        return self._model.events()

    def select_event(self, event_id: int) -> None:
        row = self._model.row_of(event_id)
        if row is not None:
            self.selectRow(row)

    def _on_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.event_selected.emit(self._model.event_at(current.row()))
