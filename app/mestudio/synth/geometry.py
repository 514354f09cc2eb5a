"""Facial geometry for placing action-unit regions: 5 points and a face-aligned frame.

The geometry is the five points YuNet gives (both eye centres, nose tip, both mouth
corners). It is found with YuNet (``cv2.FaceDetectorYN``) when its model file is available
(:func:`mestudio.modelfiles.find_model`), else with OpenCV's Haar cascade plus standard face
proportions, or given explicitly.

Face-aligned coordinates: origin at the midpoint of the eyes, unit = the inter-ocular
distance (IOD), ``u`` along the eye line towards the image-right eye, ``v`` perpendicular
to it pointing down the face. "Left"/"right" always mean as seen in the image (the
image-left eye is the subject's right eye).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mestudio.errors import SourceError

log = logging.getLogger(__name__)

Point = tuple[float, float]

#: Face width (the YuNet box width) per inter-ocular distance; measured on the shared
#: photos (1.91–2.16, mean 2.0).
FACE_WIDTH_PER_IOD = 2.0

#: Haar box → five points, as fractions of the box (YuNet points relative to the Haar
#: box on the shared photos: eyes at 0.34/0.69 ± 0.09 of the width, 0.38 of the height;
#: symmetrised and rounded to the usual 0.3/0.7).
HAAR_PROPORTIONS: dict[str, Point] = {
    "eye_left": (0.3, 0.383),
    "eye_right": (0.7, 0.383),
    "nose": (0.5, 0.58),
    "mouth_left": (0.34, 0.745),
    "mouth_right": (0.66, 0.745),
}

POINT_NAMES = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class FaceGeometry:
    """Five facial points in image pixels.

    Attributes:
        eye_left, eye_right: eye centres ``(x, y)``; left = image-left (subject's right).
        nose: nose tip ``(x, y)``.
        mouth_left, mouth_right: mouth corners ``(x, y)`` (image-left, image-right).
        source: how it was found: ``"yunet"``, ``"haar"`` or ``"explicit"``.
    """

    eye_left: Point
    eye_right: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point
    source: str = "explicit"

    # ---- derived quantities -------------------------------------------------------------
    @property
    def points(self) -> np.ndarray:
        """``(5, 2)`` float64 array in :data:`POINT_NAMES` order."""
        return np.array([self.eye_left, self.eye_right, self.nose, self.mouth_left,
                         self.mouth_right], dtype=np.float64)

    @property
    def iod(self) -> float:
        """Inter-ocular distance in pixels."""
        return float(np.hypot(self.eye_right[0] - self.eye_left[0],
                              self.eye_right[1] - self.eye_left[1]))

    @property
    def face_width(self) -> float:
        """Face width in pixels (``FACE_WIDTH_PER_IOD`` × IOD ≈ the YuNet box width)."""
        return FACE_WIDTH_PER_IOD * self.iod

    @property
    def eyes_mid(self) -> np.ndarray:
        """Midpoint of the eyes ``(2,)`` pixels: origin of the face-aligned frame."""
        return (np.asarray(self.eye_left) + np.asarray(self.eye_right)) / 2

    @property
    def mouth_mid(self) -> np.ndarray:
        """Midpoint of the mouth corners ``(2,)`` pixels."""
        return (np.asarray(self.mouth_left) + np.asarray(self.mouth_right)) / 2

    @property
    def center(self) -> np.ndarray:
        """Face centre ``(2,)`` pixels (between eyes and mouth): pivot of head motion."""
        return (self.eyes_mid + self.mouth_mid) / 2

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors ``(e_u, e_v)`` of the face frame in image pixels (e_v points down)."""
        d = np.asarray(self.eye_right, dtype=np.float64) - np.asarray(self.eye_left)
        n = float(np.hypot(*d))
        e_u = d / n if n > 0 else np.array([1.0, 0.0])
        e_v = np.array([-e_u[1], e_u[0]])
        return e_u, e_v

    def reference(self, name: str) -> np.ndarray:
        """A named reference point ``(2,)`` pixels.

        Names: the five points, ``"eyes_mid"``, ``"mouth_mid"``, ``"center"``.
        """
        if name in POINT_NAMES:
            return np.asarray(getattr(self, name), dtype=np.float64)
        if name in ("eyes_mid", "mouth_mid", "center"):
            return getattr(self, name)
        raise KeyError(f"unknown reference point {name!r}")

    def to_image(self, ref: str, u: float, v: float) -> np.ndarray:
        """Image pixel ``(2,)`` of the point at face-frame offset ``(u, v)`` (IOD units) from
        the reference point ``ref``."""
        e_u, e_v = self.axes
        return self.reference(ref) + self.iod * (u * e_u + v * e_v)

    def roi(self, image_size: tuple[int, int], margin: tuple[float, float, float, float]
            = (2.0, 1.7, 2.0, 2.5)) -> tuple[int, int, int, int]:
        """Bounding box of the face region where expression fields live.

        Args:
            image_size: ``(width, height)`` of the image.
            margin: extent around the eye midpoint in IOD units (left, up, right, down),
                measured along the face axes.
        Returns:
            ``(x0, y0, x1, y1)`` integer pixel bounds (x1, y1 exclusive), clipped to the image.
        """
        left, up, right, down = margin
        corners = np.array([self.to_image("eyes_mid", u, v)
                            for u in (-left, right) for v in (-up, down)])
        w, h = image_size
        x0 = int(np.clip(np.floor(corners[:, 0].min()), 0, w))
        x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 1, 0, w))
        y0 = int(np.clip(np.floor(corners[:, 1].min()), 0, h))
        y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 1, 0, h))
        return x0, y0, x1, y1

    # ---- transforms ---------------------------------------------------------------------
    def transformed(self, matrix: np.ndarray) -> FaceGeometry:
        """The geometry mapped by a ``(2, 3)`` affine matrix (e.g. a crop/resize)."""
        m = np.asarray(matrix, dtype=np.float64)
        p = self.points @ m[:, :2].T + m[:, 2]
        return FaceGeometry.from_points(p, source=self.source)

    def mirrored(self, width: int) -> FaceGeometry:
        """The geometry of the horizontally mirrored image of the given width (pixels)."""
        p = self.points.copy()
        p[:, 0] = width - 1 - p[:, 0]
        # Mirroring swaps left and right.
        p = p[[1, 0, 2, 4, 3]]
        return FaceGeometry.from_points(p, source=self.source)

    # ---- (de)serialisation --------------------------------------------------------------
    @classmethod
    def from_points(cls, points: np.ndarray | Sequence[Sequence[float]] | Mapping[str, Sequence[float]],
                    source: str = "explicit") -> FaceGeometry:
        """Build from a ``(5, 2)`` array in :data:`POINT_NAMES` order, or a mapping.

        A mapping may use this module's names or the tracker's (``"left_eye"``,
        ``"right_eye"``, ``"nose"``, ``"mouth_left"``, ``"mouth_right"``); left and right
        are sorted by image x, so either naming convention works.
        """
        if isinstance(points, Mapping):
            def get(*names: str) -> np.ndarray:
                for n in names:
                    if n in points:
                        return np.asarray(points[n], dtype=np.float64)
                raise ValueError(f"geometry needs one of {names}; got {sorted(points)}")
            eyes = sorted([get("eye_left", "left_eye"), get("eye_right", "right_eye")],
                          key=lambda p: float(p[0]))
            mouth = sorted([get("mouth_left", "left_mouth"), get("mouth_right", "right_mouth")],
                           key=lambda p: float(p[0]))
            arr = np.array([eyes[0], eyes[1], get("nose", "nose_tip"), mouth[0], mouth[1]])
        else:
            arr = np.asarray(points, dtype=np.float64)
        if arr.shape != (5, 2) or not np.all(np.isfinite(arr)):
            raise ValueError(f"geometry needs 5 finite (x, y) points, got shape {arr.shape}")
        p = [tuple(float(c) for c in row) for row in arr]
        return cls(p[0], p[1], p[2], p[3], p[4], source=source)  # type: ignore[arg-type]

    @classmethod
    def from_box(cls, box: Sequence[float] | np.ndarray, source: str = "haar") -> FaceGeometry:
        """Five points from a face box ``(x, y, w, h)`` with :data:`HAAR_PROPORTIONS`."""
        x, y, w, h = (float(b) for b in box)
        pts = [(x + fx * w, y + fy * h) for fx, fy in
               (HAAR_PROPORTIONS[n] for n in POINT_NAMES)]
        return cls.from_points(pts, source=source)

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dict: the five points as ``[x, y]`` lists plus ``source``."""
        d: dict[str, object] = {n: [round(float(c), 3) for c in getattr(self, n)]
                                for n in POINT_NAMES}
        d["source"] = self.source
        d["face_width_px"] = round(self.face_width, 3)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> FaceGeometry:
        """Inverse of :meth:`to_dict`."""
        pts = {k: v for k, v in d.items() if k in POINT_NAMES}
        return cls.from_points(pts, source=str(d.get("source", "explicit")))  # type: ignore[arg-type]


# ---- detection ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _yunet(path: str):  # pragma: no cover - trivial cache
    import cv2

    return cv2.FaceDetectorYN.create(path, "", (320, 320), 0.6, 0.3, 5000)


@functools.lru_cache(maxsize=1)
def _haar():
    import cv2

    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected a (H, W) or (H, W, 3) image, got shape {image.shape}")


def detect_faces(image: np.ndarray, *, detector: str = "auto", model_path: str | Path | None = None,
                 max_width: int = 640, min_face_px: int = 24) -> list[FaceGeometry]:
    """Find every face of an image and return its geometry, largest first.

    Args:
        image: BGR ``uint8`` ``(H, W, 3)`` (grey ``(H, W)`` accepted).
        detector: ``"auto"`` (YuNet when its model file is found, else Haar), ``"yunet"``
            or ``"haar"``.
        model_path: explicit YuNet model file.
        max_width: the image is downscaled to at most this width for detection (pixels).
        min_face_px: smallest face box width kept (pixels of the full image).
    Returns:
        One :class:`FaceGeometry` per face in image pixels (possibly empty).
    """
    import cv2

    from mestudio.modelfiles import YUNET, find_model

    img = _as_bgr(np.asarray(image))
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    scale = min(1.0, max_width / float(w))
    small = cv2.resize(img, (round(w * scale), round(h * scale)),
                       interpolation=cv2.INTER_AREA) if scale < 1 else img
    use = detector
    path = None
    if detector in ("auto", "yunet"):
        path = find_model(YUNET, model_path)
        if path is None:
            if detector == "yunet":
                raise SourceError("YuNet model file not found: run `mestudio models fetch`")
            use = "haar"
        else:
            use = "yunet"
    faces: list[tuple[float, FaceGeometry]] = []
    if use == "yunet":
        assert path is not None
        det = _yunet(str(path))
        det.setInputSize((small.shape[1], small.shape[0]))
        _, found = det.detect(small)
        for row in ([] if found is None else found):
            pts = np.asarray(row[4:14], dtype=np.float64).reshape(5, 2) / scale
            bw = float(row[2]) / scale
            if bw >= min_face_px:
                faces.append((bw, FaceGeometry.from_points(pts, source="yunet")))
    elif use == "haar":
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        minsz = max(12, int(min_face_px * scale))
        boxes = _haar().detectMultiScale(gray, 1.1, 5, minSize=(minsz, minsz))
        for bx, by, bw, bh in ([] if boxes is None else boxes):
            box = np.array([bx, by, bw, bh], dtype=np.float64) / scale
            faces.append((float(box[2]), FaceGeometry.from_box(box, source="haar")))
    else:
        raise ValueError(f"detector must be 'auto', 'yunet' or 'haar', got {detector!r}")
    faces.sort(key=lambda f: -f[0])
    return [g for _, g in faces]


def estimate_geometry(image: np.ndarray, *, detector: str = "auto",
                      model_path: str | Path | None = None, what: str = "the image") -> FaceGeometry:
    """Geometry of the largest face of an image.

    Raises:
        SourceError: no face was found (the message names ``what``).
    """
    faces = detect_faces(image, detector=detector, model_path=model_path)
    if not faces:
        raise SourceError(f"no face found in {what}: give a frontal face photo or video, "
                          "or pass the face geometry explicitly")
    log.debug("face geometry of %s from %s: IOD %.1f px", what, faces[0].source, faces[0].iod)
    return faces[0]
