"""Face detection: YuNet (``cv2.FaceDetectorYN``) when its model file is found, else the
Haar cascade shipped with OpenCV.

Detection runs on a copy of the frame downscaled to at most ``detect_max_width`` pixels
wide; boxes and points come back in frame pixels. YuNet also gives five points (eye
centres, nose tip, mouth corners); for Haar boxes the eyes are estimated from the box.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mestudio import modelfiles
from mestudio.face.align import box_eyes
from mestudio.face.config import TrackerConfig

log = logging.getLogger(__name__)

#: YuNet's five points, in its output order, named as seen in the image.
YUNET_POINTS = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")


#: Side (pixels) a followed face is enlarged to for :meth:`_Detector.detect_near`.
NEAR_FACE_PX = 96.0


@dataclass
class Detection:
    """One detected face.

    Attributes:
        box: ``(x, y, w, h)`` in frame pixels.
        score: confidence in ``[0, 1]``.
        points: named points in frame pixels (YuNet: ``YUNET_POINTS``; Haar: estimated
            ``left_eye``/``right_eye``).
        estimated: True when ``points`` were guessed from the box.
    """

    box: tuple[float, float, float, float]
    score: float
    points: dict[str, tuple[float, float]] = field(default_factory=dict)
    estimated: bool = False

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ax, ay, aw, ah = a[:4]
    bx, by, bw, bh = b[:4]
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return float(inter / (aw * ah + bw * bh - inter))


class _Detector(abc.ABC):
    name = "detector"
    gives_points = False

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config

    def _downscale(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        import cv2

        h, w = image.shape[:2]
        limit = self.config.detect_max_width
        if limit and w > limit:
            s = limit / w
            small = cv2.resize(image, (limit, max(1, round(h * s))), interpolation=cv2.INTER_AREA)
            return small, s
        return image, 1.0

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR ``(H, W, 3)`` frame, largest first."""
        small, s = self._downscale(image)
        dets = self._detect(small, 1.0 / s)
        dets = [d for d in dets if min(d.box[2], d.box[3]) >= self.config.min_face_px]
        dets.sort(key=lambda d: d.area, reverse=True)
        return dets

    def detect_near(self, image: np.ndarray, box: tuple[float, float, float, float],
                    margin: float = 1.0) -> list[Detection]:
        """Faces in the region around ``box`` (``margin`` box sides on each side), detected
        at the region's own resolution, largest first, in frame pixels.

        The whole-frame pass works on a copy at most ``detect_max_width`` wide: in a large
        frame a face far from the camera (a crowd at 1080p) shrinks below what the detector
        sees, and the face being followed would be lost and replaced by the largest one.
        Around its last box the face is seen at full size, enlarged to ``near_face_px``
        when smaller (the detector misses many faces of 40–60 px that it finds at twice
        the size)."""
        import cv2

        x, y, w, h = box
        height, width = image.shape[:2]
        x0, y0 = max(0, int(x - margin * w)), max(0, int(y - margin * h))
        x1, y1 = min(width, int(x + w + margin * w)), min(height, int(y + h + margin * h))
        if x1 - x0 < 16 or y1 - y0 < 16 or (x1 - x0 >= width and y1 - y0 >= height):
            return []
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        f = min(4.0, max(1.0, NEAR_FACE_PX / max(min(w, h), 1.0)))
        if f > 1.0:
            crop = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR)
        out = []
        for d in self.detect(crop):
            bx, by, bw, bh = (v / f for v in d.box)
            if min(bw, bh) < 0.5 * self.config.min_face_px:
                continue  # the face followed is known: only nonsense sizes are left out
            out.append(Detection((bx + x0, by + y0, bw, bh), d.score,
                                 {k: (p[0] / f + x0, p[1] / f + y0) for k, p in d.points.items()},
                                 d.estimated))
        return out

    @abc.abstractmethod
    def _detect(self, small: np.ndarray, scale: float) -> list[Detection]:
        """Faces in the downscaled image, boxes and points multiplied by ``scale``."""


class YuNetDetector(_Detector):
    """OpenCV's YuNet CNN detector (boxes + 5 points, works from ~10 px faces)."""

    name = "YuNet"
    gives_points = True

    def __init__(self, model_path: Path, config: TrackerConfig) -> None:
        super().__init__(config)
        import cv2

        from mestudio.errors import ModelFileError

        self.path = Path(model_path)
        try:
            self._net = cv2.FaceDetectorYN.create(str(self.path), "", (320, 320),
                                                  config.score_threshold, 0.3, 50)
        except cv2.error as exc:
            raise ModelFileError(f"{self.path}: not a usable YuNet model ({exc.err})") from exc
        self._input_size = (320, 320)

    def _detect(self, small: np.ndarray, scale: float) -> list[Detection]:
        h, w = small.shape[:2]
        if (w, h) != self._input_size:
            self._net.setInputSize((w, h))
            self._input_size = (w, h)
        _, faces = self._net.detect(small)
        out = []
        if faces is None:
            return out
        for row in faces:
            x, y, bw, bh = (float(v) * scale for v in row[:4])
            pts = {name: (float(row[4 + 2 * k]) * scale, float(row[5 + 2 * k]) * scale)
                   for k, name in enumerate(YUNET_POINTS)}
            out.append(Detection((x, y, bw, bh), float(row[14]), pts))
        return out


class HaarDetector(_Detector):
    """OpenCV's frontal-face Haar cascade (fallback; no points, frontal faces only).

    The score is ``n / (n + 4)`` for a box confirmed by ``n`` neighbouring detections.
    """

    name = "Haar cascade"

    def __init__(self, config: TrackerConfig) -> None:
        super().__init__(config)
        import cv2

        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():  # pragma: no cover - broken OpenCV install
            from mestudio.errors import ModelFileError

            raise ModelFileError(f"OpenCV's Haar cascade could not be loaded from {path}")

    def _detect(self, small: np.ndarray, scale: float) -> list[Detection]:
        import cv2

        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        gray = cv2.equalizeHist(gray)
        min_side = max(12, int(self.config.min_face_px / scale))
        rects, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=1.1, minNeighbors=4, minSize=(min_side, min_side))
        out = []
        for (x, y, w, h), n in zip(np.asarray(rects).reshape(-1, 4),
                                   np.asarray(neighbours).reshape(-1), strict=True):
            box = (float(x) * scale, float(y) * scale, float(w) * scale, float(h) * scale)
            score = float(n) / (float(n) + 4.0)
            left, right = box_eyes(box, self.config)
            out.append(Detection(box, score, {"left_eye": left, "right_eye": right},
                                 estimated=True))
        return out


def create_detector(config: TrackerConfig | None = None) -> tuple[_Detector, list[str]]:
    """The best available detector and the degraded-mode lines that apply.

    Raises:
        ModelFileError: an explicit ``detector_model`` path that does not exist or load.
    """
    cfg = config or TrackerConfig()
    path = modelfiles.find_model(modelfiles.YUNET, cfg.detector_model or None)
    if path is not None:
        return YuNetDetector(path, cfg), []
    line = (f"YuNet model ({modelfiles.YUNET}) not found: using the Haar cascade (frontal "
            "faces only, less accurate; `mestudio models fetch` downloads YuNet)")
    log.debug(line)
    return HaarDetector(cfg), [line]
