"""Horizontal probability bars of one event's prediction (one bar per class)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from mestudio.gui.widgets import emotion_colour
from mestudio.predtext import agreement_text, macro_caveat, uncertain_text
from mestudio.types import Prediction, SpotEvent


class ProbBars(QWidget):
    """Class probabilities of the last (or selected) event.

    Shows the title (which event), then one bar per class with its percentage; the top
    class is highlighted. Without a prediction it says why instead of showing bars.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ProbBars")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self._classes: tuple[str, ...] = ()
        self._probs = np.zeros(0, dtype=np.float32)
        self._label = ""
        self._title = "No event yet"
        self._message = "Probabilities of the last micro-expression appear here."

    def set_prediction(self, prediction: Prediction | None, event: SpotEvent | None = None,
                       message: str = "") -> None:
        """Show ``prediction`` (None: show ``message`` or a reason derived from ``event``)."""
        if event is not None:
            number = f" #{event.id}" if event.id >= 0 else ""
            self._title = f"Event{number} · {event.kind} · at {event.onset_s:.2f} s"
        else:
            self._title = "Last event"
        if prediction is not None and prediction.uncertain:
            # the members of the ensemble disagree: no emotion (and no bars ranking them)
            self._classes = ()
            self._probs = np.zeros(0, dtype=np.float32)
            self._label = ""
            agreement = agreement_text(prediction)
            kind = event.kind if event is not None else "micro"
            self._message = (f"{uncertain_text(kind)}" + (f" · {agreement}" if agreement else "")
                             + ": the ensemble's members disagree, no emotion is shown.")
        elif prediction is None:
            self._classes = ()
            self._probs = np.zeros(0, dtype=np.float32)
            self._label = ""
            if message:
                self._message = message
            elif event is not None and event.kind != "micro":
                self._message = "Macro-expression: not classified."
            elif event is not None:
                self._message = "No emotion: no recognition model (or still computing)."
            else:
                self._message = "Probabilities of the last micro-expression appear here."
        else:
            self._classes = tuple(prediction.classes)
            self._probs = np.asarray(prediction.probs, dtype=np.float32).reshape(-1)
            self._label = prediction.label
            # a macro event: say which model named it (the expression model, or a
            # micro-trained one)
            macro = event is not None and event.kind == "macro"
            self._message = macro_caveat(prediction) if macro else ""
            if prediction.agreement is not None:
                self._title += f" · {agreement_text(prediction)}"
        self.setToolTip(macro_caveat(prediction) if prediction is not None and event is not None
                        and event.kind == "macro" else "")
        self.update()

    def clear(self, title: str = "No event yet", message: str = "") -> None:
        """Back to the "no event yet" state (or ``title`` / ``message``, e.g. review mode's
        "No event selected")."""
        self.set_prediction(None, message=message)
        self._title = title

    def title(self) -> str:
        return self._title

    def classes(self) -> tuple[str, ...]:
        return self._classes

    def probabilities(self) -> np.ndarray:
        return self._probs.copy()

    def message(self) -> str:
        return self._message

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(300, 40 + 26 * max(3, len(self._classes)))

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(200, 120)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), QColor("#17191e"))
        title_font = QFont(self.font())
        title_font.setBold(True)
        p.setFont(title_font)
        p.setPen(QColor("#e6e9ef"))
        p.drawText(QRectF(10, 6, w - 20, 20), Qt.AlignmentFlag.AlignLeft
                   | Qt.AlignmentFlag.AlignVCenter, self._title)
        p.setFont(self.font())
        if not len(self._classes):
            p.setPen(QColor("#7d8594"))
            p.drawText(QRectF(10, 30, w - 20, h - 36),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
                       | Qt.TextFlag.TextWordWrap, self._message)
            p.end()
            return
        k = len(self._classes)
        row_h = min(28.0, max(16.0, (h - 34) / k))
        name_w = min(110.0, w * 0.35)
        pct_w = 48.0
        bar_w = max(10.0, w - name_w - pct_w - 30)
        top = 32.0
        best = int(np.argmax(self._probs)) if len(self._probs) else -1
        for i, (name, prob) in enumerate(zip(self._classes, self._probs, strict=False)):
            y = top + i * row_h
            bold = i == best
            f = QFont(self.font())
            f.setBold(bold)
            p.setFont(f)
            p.setPen(QColor("#e6e9ef" if bold else "#aab2c0"))
            p.drawText(QRectF(10, y, name_w, row_h - 4),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
            bg = QRectF(10 + name_w, y + 3, bar_w, row_h - 10)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("#262a33"))
            p.drawRoundedRect(bg, 3, 3)
            colour = QColor(emotion_colour(name))
            if not bold:
                colour.setAlpha(150)
            p.setBrush(colour)
            p.drawRoundedRect(QRectF(bg.left(), bg.top(), bar_w * float(np.clip(prob, 0, 1)),
                                     bg.height()), 3, 3)
            p.setPen(QColor("#e6e9ef" if bold else "#aab2c0"))
            p.drawText(QRectF(bg.right() + 6, y, pct_w, row_h - 4),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       f"{prob * 100:.0f} %")
        p.end()
