"""The video view: the current frame plus toggleable overlays, drawn with QPainter.

Overlays (names used by :meth:`VideoView.set_overlay`):

``box``        face box and detector confidence (frame pixels); with every face analysed,
               each face's box and number in its own colour (:data:`FACE_COLOURS`), the
               selected face (whose signal the plot shows) drawn thicker with a filled tag;
               a click on a face emits ``face_clicked(face_id)``;
``landmarks``  landmark points;
``rois``       the spotting regions of interest (given in aligned-crop pixels, mapped back to
               the frame through the inverse of the face's alignment transform);
``flow``       colour-coded optical flow of the aligned face (hue = direction, opacity =
               magnitude), mapped onto the face;
``strain``     optical strain magnitude of the aligned face, mapped onto the face;
``gradcam``    an inset with the aligned face at the apex of the last (or selected) event and
               the Grad-CAM heatmap of the predicted class for one stream;
``emotion``    the emotion and confidence of the last event next to the face (a kind-only tag
               when the event has no prediction - never a made-up emotion).

Everything heavy (flow, colour maps, CAM blending) is computed by the worker thread; this
widget only wraps arrays into ``QImage`` (no copy) and draws them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
    QTransform,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from mestudio.engine.overlays import AUTO_STREAM, FACE_COLOURS, OVERLAYS, face_colour
from mestudio.gui.widgets import MACRO_COLOUR, MICRO_COLOUR, emotion_colour, roi_colour
from mestudio.predtext import emotion_words
from mestudio.types import FaceObservation, FaceResult

__all__ = ["BOX_COLOUR", "DEFAULT_OVERLAYS", "FACE_COLOURS", "OVERLAY_LABELS", "OVERLAYS",
           "VideoView", "affine_to_qtransform", "bgr_to_qimage", "face_colour",
           "invert_affine", "mask_outlines"]

OVERLAY_LABELS = {
    "box": "Face box",
    "landmarks": "Landmarks",
    "rois": "Regions (ROIs)",
    "flow": "Optical flow",
    "strain": "Optical strain",
    "gradcam": "Grad-CAM of last event",
    "emotion": "Emotion + confidence",
}
DEFAULT_OVERLAYS = {"box": True, "landmarks": True, "rois": False, "flow": False,
                    "strain": False, "gradcam": True, "emotion": True}

BOX_COLOUR = QColor("#4cd97b")
LANDMARK_COLOUR = QColor("#ffd166")
BANNER_COLOUR = QColor(200, 60, 60, 215)
TEXT_COLOUR = QColor("#e6e9ef")


def bgr_to_qimage(image: np.ndarray) -> QImage:
    """Wrap a BGR ``uint8`` array ``(H, W, 3)`` (or grey ``(H, W)``, or RGBA ``(H, W, 4)``)
    in a ``QImage`` without copying. The caller keeps ``image`` alive while the QImage is
    used."""
    if image.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif image.shape[2] == 3:
        fmt = QImage.Format.Format_BGR888
    elif image.shape[2] == 4:
        fmt = QImage.Format.Format_RGBA8888
    else:
        raise ValueError(f"expected an image (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if not image.flags["C_CONTIGUOUS"]:
        image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    return QImage(image.data, w, h, int(image.strides[0]), fmt)


def affine_to_qtransform(m: np.ndarray) -> QTransform:
    """A ``(2, 3)`` affine matrix (x' = m @ [x, y, 1]) as a ``QTransform``."""
    return QTransform(float(m[0, 0]), float(m[1, 0]), float(m[0, 1]), float(m[1, 1]),
                      float(m[0, 2]), float(m[1, 2]))


def invert_affine(m: np.ndarray) -> np.ndarray | None:
    """Inverse of a ``(2, 3)`` affine transform, or None when singular."""
    a = np.vstack([np.asarray(m, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])
    if abs(np.linalg.det(a)) < 1e-12:
        return None
    return np.linalg.inv(a)[:2]


def mask_outlines(masks: dict[str, np.ndarray]) -> dict[str, list[QPolygonF]]:
    """Outer contours of binary ROI masks ``{name: (S, S) bool/uint8}`` as polygons in the
    mask's pixel coordinates."""
    import cv2

    out: dict[str, list[QPolygonF]] = {}
    for name, mask in masks.items():
        m = (np.asarray(mask) > 0).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        polys = []
        for c in contours:
            pts = c.reshape(-1, 2).astype(np.float64)
            if len(pts) >= 3:
                polys.append(QPolygonF([QPointF(x + 0.5, y + 0.5) for x, y in pts]))
        out[name] = polys
    return out


def activity_words(activity: str) -> str:
    """The spotter's view of a face in words (``"talking or moving"``), "" when unknown."""
    from mestudio.spotting.expression import ACTIVITY_WORDS

    return ACTIVITY_WORDS.get(activity, "") if activity and activity != "no_face" else ""


class VideoView(QWidget):
    """Shows frames with overlays. Call :meth:`set_frame` at display rate.

    Signals:
        overlay_toggled(name, on): an overlay was switched.
        face_clicked(face_id): every-face mode: the user clicked inside a face's box.
    """

    overlay_toggled = Signal(str, bool)
    face_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setObjectName("VideoView")
        self._overlays = dict(DEFAULT_OVERLAYS)
        self._array: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._face: FaceObservation | None = None
        self._activity = ""
        #: where the Grad-CAM inset was drawn last (widget pixels), None when not shown
        self.inset_rect: QRectF | None = None
        #: where the emotion tag was drawn last (widget pixels), None when not shown
        self.emotion_rect: QRectF | None = None
        self._faces: list[FaceResult] = []
        self._selected_face: int | None = None
        self._emotion_face: int | None = None
        self._inverse: QTransform | None = None
        self._flow: np.ndarray | None = None
        self._flow_q: QImage | None = None
        self._strain: np.ndarray | None = None
        self._strain_q: QImage | None = None
        self._roi_polys: dict[str, list[QPolygonF]] = {}
        self._capture_time: float | None = None
        self._latency_reported = True
        self._banner = ""
        self._placeholder = "Choose a source: Demo, a camera, or File ▸ Open video…"
        #: (label, confidence, kind, uncertain, agreement, source) of the tagged event
        self._emotion: tuple[str | None, float | None, str, bool, float | None, str] | None = None
        self._emotion_until = 0.0
        self._event_crop: np.ndarray | None = None
        self._event_crop_q: QImage | None = None
        self._cams: dict[str, np.ndarray] = {}
        self._cam_q: dict[str, QImage] = {}
        self._cam_stream = AUTO_STREAM
        self._cam_auto: str | None = None
        self._cam_empty: frozenset[str] = frozenset()
        self._event_caption = ""
        #: called with the capture→display latency (seconds) after a new frame is painted
        self.paint_listener: Callable[[float], None] | None = None
        self._font_small = QFont(self.font())
        self._font_small.setPointSizeF(max(8.0, self.font().pointSizeF() * 0.9))
        self._font_big = QFont(self.font())
        self._font_big.setPointSizeF(self.font().pointSizeF() * 1.25)
        self._font_big.setBold(True)

    # ------------------------------------------------------------------ overlays
    def overlay(self, name: str) -> bool:
        """Whether overlay ``name`` (one of :data:`OVERLAYS`) is shown."""
        return self._overlays[name]

    def overlays(self) -> dict[str, bool]:
        return dict(self._overlays)

    def set_overlay(self, name: str, on: bool) -> None:
        """Show or hide overlay ``name``."""
        if name not in self._overlays:
            raise ValueError(f"unknown overlay {name!r}; expected one of {OVERLAYS}")
        if self._overlays[name] == bool(on):
            return
        self._overlays[name] = bool(on)
        self.overlay_toggled.emit(name, bool(on))
        self.update()

    # ------------------------------------------------------------------ content
    def set_frame(self, image: np.ndarray, face: FaceObservation | None = None, *,
                  capture_time: float | None = None, flow: np.ndarray | None = None,
                  strain: np.ndarray | None = None, faces: list[FaceResult] | None = None,
                  selected: int | None = None, activity: str = "") -> None:
        """Show a new frame.

        Args:
            image: BGR ``uint8`` ``(H, W, 3)``; kept (not copied) until the next frame.
            face: the tracker's observation of this frame (box, landmarks, transform).
            capture_time: ``time.perf_counter()`` at capture, for the latency figure.
            flow: RGBA ``uint8`` ``(S, S, 4)`` flow picture of the aligned crop, or None.
            strain: RGBA ``uint8`` ``(S, S, 4)`` strain picture of the aligned crop, or None.
            faces: every face of the frame (``FrameResult.faces``); when they carry track
                numbers (every-face mode) each is drawn in its colour with its number, and
                ``face`` is the one the overlays (flow, strain, ROIs) belong to.
            selected: the highlighted face's number (whose signal the plot shows).
            activity: what the spotter thinks the face is doing
                (:attr:`~mestudio.types.SpotterState.activity`), shown in words under the
                face box (every-face mode: each face's own, from ``faces``).
        """
        self._activity = activity_words(activity)
        self._array = image
        self._faces = [f for f in (faces or []) if f.face_id != 0]
        self._selected_face = selected
        self._qimage = bgr_to_qimage(image)
        self._face = face
        inverse = None
        if face is not None and face.face_found and face.transform is not None:
            inv = invert_affine(face.transform)
            if inv is not None:
                inverse = affine_to_qtransform(inv)
        self._inverse = inverse
        self._flow = flow
        self._flow_q = bgr_to_qimage(flow) if flow is not None else None
        self._strain = strain
        self._strain_q = bgr_to_qimage(strain) if strain is not None else None
        self._capture_time = capture_time
        self._latency_reported = capture_time is None
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        """Forget the frame (shows the placeholder text)."""
        self._array = self._qimage = None
        self._face = None
        self._faces = []
        self._inverse = None
        self._flow = self._flow_q = self._strain = self._strain_q = None
        if placeholder is not None:
            self._placeholder = placeholder
        self.update()

    def has_frame(self) -> bool:
        return self._qimage is not None

    def set_rois(self, masks: dict[str, np.ndarray] | None) -> None:
        """ROI masks ``{name: (S, S)}`` in aligned-crop pixels (from ``RoiSignal.rois(S)``),
        or None when unknown."""
        self._roi_polys = mask_outlines(masks) if masks else {}
        self.update()

    def has_rois(self) -> bool:
        return bool(self._roi_polys)

    def set_banner(self, text: str) -> None:
        """A message bar over the top of the video (e.g. "camera 0 disconnected"); "" hides."""
        if text != self._banner:
            self._banner = text
            self.update()

    def banner(self) -> str:
        return self._banner

    def set_emotion(self, label: str | None, confidence: float | None, kind: str,
                    show_s: float = 3.0, *, uncertain: bool = False,
                    agreement: float | None = None, face_id: int | None = None,
                    source: str = "micro") -> None:
        """Tag the face with the last event for ``show_s`` seconds: ``label`` and
        ``confidence`` of its prediction (and the ensemble's ``agreement``), or only its
        ``kind`` when ``label`` is None; ``uncertain``: "micro-expression (uncertain)".
        ``face_id``: the event's face (every-face mode), tagged while it is in view."""
        if uncertain:
            label, confidence = None, None
        self._emotion_face = face_id or None
        self._emotion = (label, confidence, kind, uncertain, agreement, source)
        self._emotion_until = time.perf_counter() + show_s
        self.update()

    def set_event_view(self, crop: np.ndarray | None, cams: dict[str, np.ndarray] | None,
                       caption: str = "", *, auto_stream: str | None = None,
                       empty_streams: Iterable[str] = ()) -> None:
        """The Grad-CAM inset.

        Args:
            crop: aligned face at the event's apex, BGR ``uint8`` ``(S, S, 3)``, or None
                (hides the inset).
            cams: per stream, the heatmap as RGBA ``uint8`` ``(S, S, 4)`` (alpha = weight),
                or None/empty when the event has no Grad-CAM.
            caption: text under the inset (e.g. "happiness 72 %").
            auto_stream: the stream the ``"auto"`` setting shows (the strongest map of the
                predicted class, see :mod:`mestudio.engine.overlays`); None when all are zero.
            empty_streams: streams whose map is zero everywhere (said in the caption).
        """
        self._event_crop = crop
        self._event_crop_q = bgr_to_qimage(crop) if crop is not None else None
        self._cams = dict(cams or {})
        self._cam_q = {k: bgr_to_qimage(v) for k, v in self._cams.items()}
        self._cam_auto = auto_stream if auto_stream in self._cams else None
        self._cam_empty = frozenset(empty_streams)
        self._event_caption = caption
        self.update()

    def cam_streams(self) -> list[str]:
        return list(self._cams)

    def faces(self) -> list[FaceResult]:
        """The faces drawn with their numbers (every-face mode; empty otherwise)."""
        return list(self._faces)

    def selected_face(self) -> int | None:
        """The highlighted face's number, or None."""
        return self._selected_face

    def set_selected_face(self, face_id: int | None) -> None:
        """Highlight face ``face_id`` (until the next frame says otherwise)."""
        if face_id != self._selected_face:
            self._selected_face = face_id
            self.update()

    def face_at(self, pos: QPointF) -> int | None:
        """The number of the face whose box holds widget point ``pos`` (the smallest such
        box), or None."""
        if self._qimage is None or not self._faces:
            return None
        target = self.image_rect()
        scale = target.width() / self._qimage.width()
        x = (pos.x() - target.x()) / scale
        y = (pos.y() - target.y()) / scale
        hits = [(f.face.box[2] * f.face.box[3], f.face_id) for f in self._faces
                if f.face.face_found and f.face.box is not None
                and f.face.box[0] <= x <= f.face.box[0] + f.face.box[2]
                and f.face.box[1] <= y <= f.face.box[1] + f.face.box[3]]
        return min(hits)[1] if hits else None

    def mousePressEvent(self, event: Any) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            fid = self.face_at(event.position())
            if fid is not None:
                self.face_clicked.emit(fid)
                event.accept()
                return
        super().mousePressEvent(event)

    def set_cam_stream(self, stream: str) -> None:
        """Which stream's Grad-CAM the inset shows: a stream name, or ``"auto"`` (the
        default: the stream with the strongest map for each event)."""
        self._cam_stream = stream or AUTO_STREAM
        self.update()

    def cam_stream(self) -> str:
        """The stream setting (``"auto"`` or a stream name)."""
        return self._cam_stream

    def auto_cam_stream(self) -> str | None:
        """The stream ``"auto"`` stands for with the current event (None: all maps zero)."""
        return self._cam_auto

    def shown_cam_stream(self) -> str | None:
        """The stream whose map the inset draws now (None: none). A chosen stream that the
        current event does not have falls back to the automatic choice."""
        if self._cam_stream != AUTO_STREAM and self._cam_stream in self._cam_q:
            return self._cam_stream
        return self._cam_auto

    def cam_caption(self) -> str:
        """The first caption line of the inset (which stream, and whether it is empty)."""
        if self._event_crop_q is None or not self._cams:
            return "last event (no Grad-CAM)"
        shown = self.shown_cam_stream()
        if shown is None:
            return "Grad-CAM: zero in every stream"
        auto = shown == self._cam_auto and self._cam_stream != shown
        text = f"Grad-CAM · {shown}" + (" (auto)" if auto else "")
        if shown in self._cam_empty:
            text += " · zero for this class"
        return text

    # ------------------------------------------------------------------ painting
    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(800, 600)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(320, 240)

    def image_rect(self) -> QRectF:
        """Where the frame is drawn in widget pixels (aspect kept, centred)."""
        if self._qimage is None:
            return QRectF()
        w, h = self._qimage.width(), self._qimage.height()
        scale = min(self.width() / w, self.height() / h)
        dw, dh = w * scale, h * scale
        return QRectF((self.width() - dw) / 2, (self.height() - dh) / 2, dw, dh)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#0e0f12"))
        if self._qimage is None:
            p.setPen(QColor("#7d8594"))
            p.setFont(self._font_big)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            self._draw_banner(p)
            p.end()
            return
        target = self.image_rect()
        scale = target.width() / self._qimage.width()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 1.0)
        p.drawImage(target, self._qimage)
        view = QTransform(scale, 0, 0, scale, target.x(), target.y())
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        face = self._face
        # The Grad-CAM inset goes under the face's drawings, in a corner away from the
        # faces (their boxes and emotion tags stay visible in a small window).
        self.inset_rect = None
        if self._overlays["gradcam"]:
            boxes = [f.face.box for f in self._faces if f.face.face_found and f.face.box]
            if face is not None and face.face_found and face.box is not None:
                boxes.append(face.box)
            self._draw_inset(p, [view.mapRect(QRectF(*b)) for b in boxes])
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if face is not None and face.face_found:
            if self._inverse is not None:
                crop_to_widget = self._inverse * view
                p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
                if self._overlays["flow"] and self._flow_q is not None:
                    p.setTransform(crop_to_widget)
                    p.drawImage(QPointF(0, 0), self._flow_q)
                if self._overlays["strain"] and self._strain_q is not None:
                    p.setTransform(crop_to_widget)
                    p.drawImage(QPointF(0, 0), self._strain_q)
                if self._overlays["rois"] and self._roi_polys:
                    p.setTransform(crop_to_widget)
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    for i, (name, polys) in enumerate(self._roi_polys.items()):
                        pen = QPen(QColor(roi_colour(name, i)), 1.6)
                        pen.setCosmetic(True)
                        p.setPen(pen)
                        for poly in polys:
                            p.drawPolygon(poly)
                p.resetTransform()
            if self._faces:
                self._draw_faces(p, view, scale)
            elif self._overlays["box"] and face.box is not None:
                x, y, w, h = face.box
                r = view.mapRect(QRectF(x, y, w, h))
                pen = QPen(BOX_COLOUR, 2.0)
                p.setPen(pen)
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRect(r)
                p.setFont(self._font_small)
                p.drawText(QPointF(r.left() + 2, r.bottom() + 14),
                           f"face {face.confidence:.2f} · {face.mode}")
                if self._activity:
                    p.drawText(QPointF(r.left() + 2, r.bottom() + 30), self._activity)
            if self._overlays["landmarks"] and face.landmarks is not None and not self._faces:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QBrush(LANDMARK_COLOUR))
                radius = max(1.5, 2.2 * min(1.5, scale))
                for x, y in np.asarray(face.landmarks, dtype=np.float64).reshape(-1, 2):
                    p.drawEllipse(view.map(QPointF(x, y)), radius, radius)
            if self._overlays["emotion"]:
                self._draw_emotion(p, view, self._emotion_target(face))
        elif face is not None:
            p.setFont(self._font_small)
            p.setPen(QColor("#ffb347"))
            p.drawText(QPointF(target.left() + 10, target.bottom() - 10), "no face found")
        self._draw_banner(p)
        p.end()
        if not self._latency_reported and self._capture_time is not None:
            self._latency_reported = True
            if self.paint_listener is not None:
                self.paint_listener(time.perf_counter() - self._capture_time)

    def _emotion_target(self, face: FaceObservation) -> FaceObservation | None:
        """The face the emotion tag goes to: the event's face while it is in view; None when
        the event belongs to a face that is not in view (never another person's face: the
        tag then stands in the image's corner, with the face's number); the shown face when
        the event has no face number (the single-face mode)."""
        if self._emotion_face is None:
            return face
        for f in self._faces:
            if f.face_id == self._emotion_face and f.face.face_found:
                return f.face
        return None

    def _draw_faces(self, p: QPainter, view: QTransform, scale: float) -> None:
        """Every face (every-face mode): its landmarks, and its box and number in its own
        colour; the selected face thicker, with a filled tag."""
        p.resetTransform()
        if self._overlays["landmarks"]:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QBrush(LANDMARK_COLOUR))
            radius = max(1.5, 2.2 * min(1.5, scale))
            for f in self._faces:
                if f.face.face_found and f.face.landmarks is not None:
                    for x, y in np.asarray(f.face.landmarks, np.float64).reshape(-1, 2):
                        p.drawEllipse(view.map(QPointF(x, y)), radius, radius)
        if not self._overlays["box"]:
            return
        p.setFont(self._font_small)
        fm = p.fontMetrics()
        for f in self._faces:
            if not f.face.face_found or f.face.box is None:
                continue
            x, y, w, h = f.face.box
            r = view.mapRect(QRectF(x, y, w, h))
            colour = QColor(face_colour(f.face_id))
            selected = f.face_id == self._selected_face
            p.setPen(QPen(colour, 3.5 if selected else 1.8))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(r)
            words = activity_words(f.spotter.activity if f.spotter is not None else "")
            text = f"face {f.face_id}" + (" · plot" if selected else "") + (
                f" · {words}" if words else "")
            tag = QRectF(r.left(), r.bottom() + 3, fm.horizontalAdvance(text) + 10,
                         fm.height() + 4)
            if selected:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(colour)
                p.drawRoundedRect(tag, 4, 4)
                p.setPen(QColor("#101114"))
            else:
                p.setPen(colour)
            p.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)

    def emotion_tag(self) -> tuple[str, str] | None:
        """The face tag's text and colour while it is shown, else None."""
        if self._emotion is None or time.perf_counter() > self._emotion_until:
            return None
        label, conf, kind, uncertain, agreement, source = self._emotion
        agree = f" · agreement {agreement * 100:.0f} %" if agreement is not None else ""
        if label:
            # "happiness (macro)", "happiness (expression model)"
            shown = emotion_words(label, kind, source)
            text = (f"{shown}  {conf * 100:.0f} %{agree}" if conf is not None
                    else shown + agree)
            return text, emotion_colour(label)
        if uncertain:
            return f"{emotion_words(None, kind, source)}{agree}", MICRO_COLOUR
        return f"{kind}-expression", MICRO_COLOUR if kind == "micro" else MACRO_COLOUR

    def _draw_emotion(self, p: QPainter, view: QTransform, face: FaceObservation | None
                      ) -> None:
        tag = self.emotion_tag()
        self.emotion_rect = None
        if tag is None or (face is not None and face.box is None):
            return
        text, colour = tag[0], QColor(tag[1])
        if face is None or face.box is None:  # its face left: in the corner, its number
            target = self.image_rect()
            anchor = QPointF(target.left() + 8, target.top() + 60)
            text = f"face {self._emotion_face}: {text}"
        else:
            x, y, _w, _h = face.box
            anchor = view.map(QPointF(x, y))
        p.setFont(self._font_big)
        fm = p.fontMetrics()
        tw, th = fm.horizontalAdvance(text) + 16, fm.height() + 8
        rect = QRectF(anchor.x(), anchor.y() - th - 6, tw, th)
        if rect.top() < 2:
            rect.moveTop(2)
        self.emotion_rect = QRectF(rect)
        p.setPen(Qt.PenStyle.NoPen)
        bg = QColor(colour)
        bg.setAlpha(225)
        p.setBrush(bg)
        p.drawRoundedRect(rect, 6, 6)
        p.setPen(QColor("#101114"))
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

    def _draw_inset(self, p: QPainter, faces: list[QRectF] | None = None) -> None:
        """The Grad-CAM inset, in the first corner (top right, top left, bottom right,
        bottom left) where it covers none of ``faces`` (widget rectangles, with room above
        each for its emotion tag); top right when every corner covers one."""
        if self._event_crop_q is None:
            return
        side = max(96.0, min(220.0, self.width() * 0.24, self.height() * 0.4))
        margin = 10.0
        caption_h = 38.0
        w, h = float(self.width()), float(self.height())
        corners = [QRectF(w - side - margin, margin, side, side),
                   QRectF(margin, margin, side, side),
                   QRectF(w - side - margin, h - side - caption_h - margin, side, side),
                   QRectF(margin, h - side - caption_h - margin, side, side)]
        taken = [r.adjusted(-4, -48, 4, 4) for r in faces or []]  # the tag sits above
        rect = next((c for c in corners
                     if not any(c.adjusted(-4, -4, 4, caption_h).intersects(t)
                                for t in taken)), corners[0])
        self.inset_rect = QRectF(rect)
        p.resetTransform()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(14, 15, 18, 230))
        p.drawRoundedRect(rect.adjusted(-4, -4, 4, caption_h), 6, 6)
        p.drawImage(rect, self._event_crop_q)
        shown = self.shown_cam_stream()
        cam = self._cam_q.get(shown) if shown is not None else None
        if cam is not None:
            p.drawImage(rect, cam)
        p.setPen(QPen(QColor("#3a3f4b"), 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(rect)
        p.setPen(TEXT_COLOUR)
        p.setFont(self._font_small)
        first = self.cam_caption()
        p.drawText(QRectF(rect.left(), rect.bottom() + 2, side, 16),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, first)
        p.drawText(QRectF(rect.left(), rect.bottom() + 18, side, 16),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   self._event_caption)

    def _draw_banner(self, p: QPainter) -> None:
        if not self._banner:
            return
        p.resetTransform()
        p.setFont(self._font_big)
        h = p.fontMetrics().height() + 14
        rect = QRectF(0, 0, self.width(), h)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(BANNER_COLOUR)
        p.drawRect(rect)
        p.setPen(QColor("#ffffff"))
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter, self._banner)
