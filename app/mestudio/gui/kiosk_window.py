"""The museum kiosk: full screen, no controls, a large friendly display of what the system
sees, the consent and privacy notice, and an event log in SQLite.

Nothing of the picture is stored: frames live in memory for one step of the pipeline (and, if
``KioskConfig.show_camera``, for one repaint of the mirror) and are dropped. The only output
is one row per event in the SQLite log (:mod:`mestudio.analytics.eventlog`).

The window cannot be closed by the visitor (no buttons, close requests are ignored); staff
close it with ``KioskConfig.exit_keys`` (default Ctrl+Shift+Q). A camera that disappears is
reopened by ``LiveCapture`` while the screen says that the camera is taking a break.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QPainter, QPainterPath, QPen, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from mestudio.colours import EMOTION_ALIASES
from mestudio.config import AppConfig
from mestudio.engine.kiosk import KioskSession, KioskStatus
from mestudio.errors import MestudioError
from mestudio.gui.widgets import plain_label, plain_tooltip
from mestudio.predtext import (
    SYNTHETIC_BADGE_COLOUR,
    agreement_text,
    emotion_text,
    macro_caveat,
    model_mark,
    named_by_text,
)

log = logging.getLogger(__name__)

#: Shown when assets/kiosk_notice.md cannot be found (the same promises, shorter).
FALLBACK_NOTICE = (
    "## About this exhibit\n\nThis screen looks for fleeting facial expressions and guesses "
    "which emotion they resemble.\n\n**It is not a lie detector.**\n\n**No pictures, no video "
    "and no face data are stored.** No one is identified. Only anonymous counts are kept: "
    "time, exhibit, kind of movement, guessed emotion, confidence and duration.")

#: The face icon's expression for each emotion (see :class:`FaceIcon`).
MOODS = {"happiness": "happy", "positive": "happy", "surprise": "surprised",
         "fear": "surprised", "disgust": "disgusted", "contempt": "disgusted",
         "anger": "angry", "sadness": "sad", "negative": "sad", "repression": "neutral",
         "others": "neutral"}


def load_notice() -> str:
    """The consent and privacy notice (Markdown) from ``assets/kiosk_notice.md``."""
    from mestudio.gui.app import assets_dir

    candidates = []
    base = assets_dir()
    if base is not None:
        candidates.append(base / "kiosk_notice.md")
    candidates.append(Path(__file__).resolve().parents[3] / "assets" / "kiosk_notice.md")
    for path in candidates:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    log.warning("assets/kiosk_notice.md not found: showing the short notice")
    return FALLBACK_NOTICE


#: Words for visitors, per emotion label: (a micro-expression, a longer expression).
VISITOR_WORDS = {
    "happiness": ("A fleeting smile!", "You smiled"),
    "positive": ("A fleeting smile!", "You smiled"),
    "surprise": ("A flash of surprise!", "You looked surprised"),
    "negative": ("A fleeting frown!", "You frowned"),
    "sadness": ("A flash of sadness!", "You looked sad"),
    "disgust": ("A flash of disgust!", "You looked disgusted"),
    "anger": ("A flash of anger!", "You looked cross"),
    "fear": ("A flash of fear!", "You looked afraid"),
    "contempt": ("A flash of contempt!", "A look of contempt"),
    "repression": ("A held-back expression!", "A held-back expression"),
}
# the expression model's classes (FER2013 adjectives) read as the nouns above
for _alias, _noun in EMOTION_ALIASES.items():
    MOODS[_alias] = MOODS[_noun]
    VISITOR_WORDS[_alias] = VISITOR_WORDS[_noun]
#: Said with every guess on the visitor screen.
VISITOR_CAVEAT = "Computers often get this wrong."
#: The kiosk's staff key: shows the model's numbers under the visitor text.
STAFF_KEYS = "Ctrl+Shift+D"


def visitor_headline(label: str, kind: str) -> str:
    """A visitor's words for an expression the model named ``label``: "You smiled", "A
    flash of surprise!" (a label from a model file that is not in :data:`VISITOR_WORDS`
    is shown as it is, as plain text)."""
    micro, macro = VISITOR_WORDS.get(label.lower(), (f"A flash of {label}!",
                                                     f"An expression like {label}"))
    return micro if kind == "micro" else macro


def staff_details(ev: Any) -> str:
    """The numbers staff see under the visitor text (the staff key): kind, class,
    confidence, the ensemble's agreement, where the emotion comes from."""
    pred = ev.prediction
    if pred is None:
        return f"staff: {ev.kind} event, no emotion"
    parts = [f"staff: {ev.kind}", emotion_text(pred, ev.kind),
             f"{pred.confidence * 100:.0f} %"]
    agreement = agreement_text(pred)
    if agreement:
        parts.append(agreement)
    parts.append(named_by_text(pred, ev.kind))
    if ev.kind == "macro":
        parts.append(macro_caveat(pred))
    return " · ".join(parts)


def describe(status: KioskStatus, greeting_s: float, now: float | None = None,
             staff: bool = False) -> tuple[str, str, str]:
    """The big friendly text of a status: ``(mood, headline, detail)``; ``mood`` names the
    face icon's expression (:data:`MOODS` values, ``"watching"``, ``"waiting"``,
    ``"sleeping"``). Visitor words only (no percentages, classes or model names); with
    ``staff`` the detail adds the model's numbers (:func:`staff_details`)."""
    now = time.time() if now is None else now
    ev = status.last_event
    if status.state == "reconnecting":
        return "sleeping", "The camera is taking a short break", "It will be back in a moment."
    if status.state == "error":
        return "sleeping", "The camera is not available", "Staff have been notified."
    if status.state == "starting":
        return "sleeping", "Getting ready…", "Warming up the camera and the models."
    if status.state == "ended":
        return "sleeping", "The demonstration has ended", ""
    if ev is not None and now - status.last_event_wall <= greeting_s:
        mood, headline, detail = _describe_event(ev)
        if staff:
            detail = f"{detail}\n{staff_details(ev)}"
        return mood, headline, detail
    if status.face_found:
        return "watching", "I am watching for fleeting expressions…", \
            "Try a very quick smile or a raised eyebrow."
    return "waiting", "Step in front of the camera", "Look at the screen and make a quick face."


def _describe_event(ev: Any) -> tuple[str, str, str]:
    pred = ev.prediction
    if ev.kind == "micro":
        ms = ev.duration_s * 1000
        if pred is not None and pred.emotion is not None:
            return (MOODS.get(pred.label.lower(), "neutral"),
                    visitor_headline(pred.label, "micro"),
                    f"It lasted {ms:.0f} ms — too quick to notice. {VISITOR_CAVEAT}")
        return ("surprised", "A fleeting expression!",
                f"It lasted {ms:.0f} ms — too quick to notice, and too quick to name.")
    if pred is not None and pred.emotion is not None:
        return (MOODS.get(pred.label.lower(), "neutral"), visitor_headline(pred.label, "macro"),
                f"An expression of {ev.duration_s:.1f} s. {VISITOR_CAVEAT}")
    return "happy", "A clear expression", f"An expression of {ev.duration_s:.1f} s."


class FaceIcon(QWidget):
    """A large drawn face whose expression follows the kiosk's state (no emoji font
    needed)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mood = "sleeping"
        self.colour = QColor("#eef1f6")
        self.setFixedSize(160, 160)

    def set_mood(self, mood: str, colour: str = "#eef1f6") -> None:
        if mood != self.mood or QColor(colour) != self.colour:
            self.mood, self.colour = mood, QColor(colour)
            self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802
        from PySide6.QtCore import QPointF

        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        s = min(self.width(), self.height())
        p.translate((self.width() - s) / 2, (self.height() - s) / 2)
        p.scale(s / 100.0, s / 100.0)
        fill = QColor(self.colour)
        fill.setAlpha(40)
        pen = QPen(self.colour, 4.0)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        p.setBrush(fill)
        p.drawEllipse(QRectF(4, 4, 92, 92))
        p.setBrush(self.colour)
        m = self.mood
        if m == "sleeping":
            p.drawLine(QPointF(28, 42), QPointF(42, 42))
            p.drawLine(QPointF(58, 42), QPointF(72, 42))
        else:
            r = 7.0 if m == "surprised" else 5.0
            for x in (35.0, 65.0):
                p.drawEllipse(QPointF(x, 40), r, r)
        p.setBrush(Qt.BrushStyle.NoBrush)
        if m == "surprised":
            p.drawLine(QPointF(26, 24), QPointF(42, 20))
            p.drawLine(QPointF(58, 20), QPointF(74, 24))
            p.drawEllipse(QPointF(50, 70), 8, 10)
        elif m == "angry":
            p.drawLine(QPointF(26, 26), QPointF(42, 32))
            p.drawLine(QPointF(58, 32), QPointF(74, 26))
            p.drawLine(QPointF(36, 72), QPointF(64, 72))
        elif m == "happy":
            p.drawArc(QRectF(30, 46, 40, 30), 200 * 16, 140 * 16)
        elif m == "sad":
            p.drawArc(QRectF(32, 64, 36, 24), 20 * 16, 140 * 16)
        elif m == "disgusted":
            path = QPainterPath(QPointF(34, 72))
            path.cubicTo(QPointF(42, 64), QPointF(50, 80), QPointF(66, 68))
            p.drawPath(path)
        elif m == "watching":
            p.drawArc(QRectF(34, 56, 32, 18), 220 * 16, 100 * 16)
        elif m == "waiting":
            p.drawLine(QPointF(38, 70), QPointF(62, 70))
            p.drawArc(QRectF(76, 2, 20, 20), 30 * 16, 120 * 16)  # a little wave
        else:  # neutral
            p.drawLine(QPointF(36, 70), QPointF(64, 70))
        p.end()


class _Mirror(QWidget):
    """The live picture, mirrored, in a rounded frame (never stored)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: np.ndarray | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)

    def set_image(self, image: np.ndarray | None) -> None:
        self._image = image
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(480, 360)

    def paintEvent(self, event: Any) -> None:  # noqa: N802
        from mestudio.gui.widgets.video_view import bgr_to_qimage

        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        if self._image is None:
            p.end()
            return
        img = bgr_to_qimage(self._image)
        img = img.flipped(Qt.Orientation.Horizontal) if hasattr(img, "flipped") else \
            img.mirrored(True, False)
        scale = min(self.width() / img.width(), self.height() / img.height())
        w, h = img.width() * scale, img.height() * scale
        rect = QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)
        path = QPainterPath()
        path.addRoundedRect(rect, 24, 24)
        p.setClipPath(path)
        p.drawImage(rect, img)
        p.end()


class KioskWorker(QThread):
    """Runs a :class:`KioskSession` off the GUI thread; the newest status wins.

    Args:
        session_factory: builds the session (in this thread: opening the camera and loading
            the models take time).

    Signals:
        status_ready(): :meth:`take_status` has a new status.
        failed(str): the session could not be built (retried every ``retry_s`` seconds).
    """

    status_ready = Signal()
    failed = Signal(str)

    def __init__(self, session_factory: Callable[[], KioskSession], retry_s: float = 5.0,
                 parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("KioskWorker")
        self._factory = session_factory
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._status: KioskStatus | None = None
        self._visit_active = 0
        self._pending = False
        self.session: KioskSession | None = None

    def take_status(self) -> KioskStatus | None:
        """The newest status (None when there is none new)."""
        update = self.take_update()
        return update[0] if update is not None else None

    def take_update(self) -> tuple[KioskStatus, int] | None:
        """The newest status and the visits in progress (visitors in view long enough to
        count, not logged yet: visits are logged when they end; several with every face
        analysed); None when there is nothing new."""
        with self._lock:
            status, self._status = self._status, None
            self._pending = False
            active = self._visit_active
        return (status, active) if status is not None else None

    def stop(self, timeout_s: float = 10.0) -> None:
        """End the thread (the session is closed: pipeline flushed, event log written);
        returns once it has ended (a warning after ``timeout_s``)."""
        from mestudio.gui.worker import wait_for_thread

        self._stop.set()
        if self.isRunning():
            wait_for_thread(self, timeout_s)

    def _publish(self, status: KioskStatus, visit_active: int = 0) -> None:
        with self._lock:
            self._status = status
            self._visit_active = visit_active
            emit = not self._pending
            self._pending = True
        if emit:
            self.status_ready.emit()

    def run(self) -> None:  # noqa: D102 - QThread entry point
        session = None
        while not self._stop.is_set() and session is None:
            try:
                session = self._factory()
            except MestudioError as exc:
                log.error("kiosk cannot start: %s", exc)
                self.failed.emit(str(exc))
                self._publish(KioskStatus(state="error", message=str(exc)))
                self._stop.wait(self._retry_s)
            except Exception as exc:  # noqa: BLE001 - a kiosk keeps trying
                log.exception("kiosk cannot start")
                self.failed.emit(f"{type(exc).__name__}: {exc}")
                self._publish(KioskStatus(state="error", message=str(exc)))
                self._stop.wait(self._retry_s)
        if session is None:
            return
        self.session = session
        try:
            while not self._stop.is_set():
                try:
                    status = session.step(timeout=0.25)
                except Exception as exc:  # noqa: BLE001 - keep the exhibit running
                    log.exception("kiosk step failed")
                    status = KioskStatus(state="error", message=str(exc))
                    self._stop.wait(1.0)
                visits = getattr(session, "visits", None)
                active = int(bool(getattr(visits, "active", False)))
                self._publish(status, int(getattr(visits, "active_count", active)))
                if status.state == "ended":
                    break
        finally:
            session.close()


class KioskWindow(QWidget):
    """Full-screen kiosk display.

    Args:
        config: application settings (``config.kiosk``: exhibit, exit keys, timings).
        session_factory: builds the :class:`KioskSession` (called in the worker thread).

    Signals:
        finished(): the source ended (a file played without looping).
        ready_for_screenshot(): the screen shows a running session.
    """

    finished = Signal()
    ready_for_screenshot = Signal()

    def __init__(self, config: AppConfig, session_factory: Callable[[], KioskSession],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.setObjectName("KioskWindow")
        self.setWindowTitle(f"kiosk — {config.kiosk.exhibit}")  # Qt adds the application name
        self.setCursor(Qt.CursorShape.BlankCursor)
        self._exit_allowed = False
        self._screenshot_sent = False
        self._status: KioskStatus | None = None
        self._visit_active = 0
        self.frames_shown = 0

        self._headline_colour = "#eef1f6"
        self.face_icon = FaceIcon()
        self.headline = plain_label(QLabel("Getting ready…"))
        self.headline.setObjectName("KioskHeadline")
        self.headline.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.headline.setWordWrap(True)
        self.detail = plain_label(QLabel(""))
        self.detail.setObjectName("KioskDetail")
        self.detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail.setWordWrap(True)
        self.mirror = _Mirror()
        self.mirror.setVisible(config.kiosk.show_camera)
        self.notice = QLabel()
        self.notice.setObjectName("KioskNotice")
        self.notice.setTextFormat(Qt.TextFormat.MarkdownText)
        self.notice.setWordWrap(True)
        self.notice.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.notice.setText(load_notice())
        self.notice.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.footer = plain_label(QLabel(""))
        self.footer.setObjectName("KioskFooter")
        self.footer.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # which recognition model guesses the emotions: "SYNTHETIC DEMO MODEL" (amber) or
        # "real-data model · K classes" (plain text: it comes from the model file)
        self.model_mark = plain_label(QLabel(""))
        self.model_mark.setObjectName("KioskModelMark")
        self.model_mark.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.model_mark.hide()
        self._mark_synthetic = False
        self._mark_source: tuple[object, bool] | None = None

        centre = QVBoxLayout()
        centre.addStretch(1)
        centre.addWidget(self.face_icon, 0, Qt.AlignmentFlag.AlignHCenter)
        centre.addWidget(self.headline)
        centre.addWidget(self.detail)
        centre.addSpacing(12)
        centre.addWidget(self.mirror, 4)
        centre.addStretch(1)
        row = QHBoxLayout()
        row.setContentsMargins(32, 32, 32, 12)
        row.setSpacing(32)
        row.addLayout(centre, 3)
        row.addWidget(self.notice, 2)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 12)
        outer.addLayout(row, 1)
        outer.addWidget(self.footer)
        outer.addWidget(self.model_mark)
        self._restyle()

        seq = QKeySequence(config.kiosk.exit_keys)
        if seq.isEmpty():
            raise MestudioError(f"kiosk exit keys {config.kiosk.exit_keys!r} are not a valid key "
                                "combination; use e.g. Ctrl+Shift+Q")
        self.exit_shortcut = QShortcut(seq, self)
        #: Staff details (the model's numbers, which model runs) shown under the visitor
        #: text; toggled with STAFF_KEYS.
        self.staff = False
        self.staff_shortcut = QShortcut(QKeySequence(STAFF_KEYS), self)
        self.staff_shortcut.activated.connect(self.toggle_staff)
        self.exit_shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
        self.exit_shortcut.activated.connect(self.request_exit)

        self.worker = KioskWorker(session_factory, parent=self)
        self.worker.status_ready.connect(self._on_status)
        self._tick = QTimer(self)  # the greeting fades back to the idle text
        self._tick.timeout.connect(self._refresh_text)
        self._tick.start(500)
        self.worker.start()

    def _restyle(self) -> None:
        """Sizes follow the screen height (a style sheet, since the application's sets
        ``font-size`` on every widget)."""
        h = max(480, self.height())
        w = max(640, self.width())
        big = max(24, min(h // 15, w // 26))
        mid, small = max(16, min(h // 34, w // 60)), max(14, min(h // 46, w // 85))
        self.face_icon.setFixedSize(int(h / 4.2), int(h / 4.2))
        self.setStyleSheet(
            "#KioskWindow { background: #101218; }"
            "#KioskWindow QLabel { background: transparent; color: #eef1f6; }"
            f"#KioskWindow #KioskHeadline {{ font-size: {big}px; font-weight: bold;"
            f" color: {self._headline_colour}; }}"
            f"#KioskWindow #KioskDetail {{ font-size: {mid}px; color: #c5ccd8; }}"
            f"#KioskWindow #KioskNotice {{ font-size: {small}px; background: #1a1e27; border-radius: 18px;"
            " padding: 18px; color: #cfd5df; }"
            f"#KioskWindow #KioskFooter {{ font-size: {small}px; color: #8d96a7; }}"
            f"#KioskWindow #KioskModelMark {{ font-size: {small}px; "
            + (f"color: {SYNTHETIC_BADGE_COLOUR}; font-weight: bold; }}"
               if self._mark_synthetic else "color: #8d96a7; }"))

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._restyle()

    # ------------------------------------------------------------ status
    def _on_status(self) -> None:
        update = self.worker.take_update()
        if update is None:
            return
        status, self._visit_active = update
        self._status = status
        self._update_model_mark()
        if status.image is not None and self.config.kiosk.show_camera:
            self.mirror.set_image(status.image)
            self.frames_shown += 1
        self._refresh_text()
        if status.state == "ended":
            self.finished.emit()
        if not self._screenshot_sent and (status.face_found or status.processed >= 30):
            self._screenshot_sent = True
            self.ready_for_screenshot.emit()

    def _update_model_mark(self) -> None:
        """Show which recognition model runs (none: no mark)."""
        session = self.worker.session
        info = getattr(getattr(session, "pipeline", None), "model_info", None)
        on = bool(getattr(session, "recognition", True))
        # The mark changes only with the pipeline's model info: not recomputed every frame
        # (the info object itself is kept, so a new pipeline is always noticed).
        if self._mark_source is not None and self._mark_source[0] is info \
                and self._mark_source[1] == on:
            return
        self._mark_source = (info, on)
        text, description, synthetic = model_mark(info if isinstance(info, dict) and on
                                                  else None)
        if not self.staff and not synthetic:  # staff words: shown with the staff key
            text = ""
        if text != self.model_mark.text():
            self.model_mark.setText(text)
            self.model_mark.setToolTip(plain_tooltip(description))
            self.model_mark.setVisible(bool(text))
        if synthetic != self._mark_synthetic:
            self._mark_synthetic = synthetic
            self._restyle()

    def toggle_staff(self) -> None:
        """Show or hide the staff details (the model's numbers and name)."""
        self.staff = not self.staff
        self._mark_source = None  # the model mark follows
        self._update_model_mark()
        self._refresh_text()

    def _refresh_text(self) -> None:
        status = self._status or KioskStatus(state="starting")
        mood, headline, detail = describe(status, self.config.kiosk.greeting_s,
                                          staff=self.staff)
        colour = "#eef1f6"
        ev = status.last_event
        if ev is not None and ev.prediction is not None and \
                ev.prediction.emotion is not None and \
                time.time() - status.last_event_wall <= self.config.kiosk.greeting_s:
            from mestudio.gui.widgets import emotion_colour

            colour = emotion_colour(ev.prediction.emotion)
        self.face_icon.set_mood(mood, colour)
        self.headline.setText(headline)
        if colour != self._headline_colour:
            self._headline_colour = colour
            self._restyle()
        self.detail.setText(detail if not status.message or status.state == "watching"
                            else f"{detail} ({status.message})")
        c = status.counts
        self.footer.setText(
            f"Today at {self.config.kiosk.exhibit} — visits: {self.visits_today()} · "
            f"fleeting expressions: {c.get('micro', 0)} · other expressions: "
            f"{c.get('macro', 0)}  —  "
            "not a lie detector · no images are stored"
            + (f"  —  {status.notice}" if getattr(status, "notice", "") else ""))

    def status(self) -> KioskStatus | None:
        """The last status shown."""
        return self._status

    def visits_today(self) -> int:
        """Visits shown on screen: those logged today plus those in progress (a visit is
        logged only when it ends, but the visitors in front of the screen count)."""
        logged = (self._status.counts.get("visit", 0) if self._status is not None else 0)
        return int(logged) + int(self._visit_active)

    # ------------------------------------------------------------ closing
    def request_exit(self) -> None:
        """The configured key combination: stop and close."""
        log.info("kiosk exit requested (%s)", self.config.kiosk.exit_keys)
        self.shutdown()
        self.close()

    def shutdown(self) -> None:
        """Stop the worker (flushes the pipeline and the event log)."""
        self._exit_allowed = True
        self._tick.stop()
        if self.worker.isRunning():
            self.worker.stop()

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        if not self._exit_allowed:
            log.info("close request ignored: use %s to leave the kiosk",
                     self.config.kiosk.exit_keys)
            event.ignore()
            return
        super().closeEvent(event)
