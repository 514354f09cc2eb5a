"""Regions of interest on the aligned face crop.

The spotting signal is measured in six regions where micro-expressions move the skin
(brows: AU1/2/4; nose wings: AU9/10; mouth corners: AU10/12/14/15/24), left and right, and
is referenced to the rigid parts of the face (nose ridge and tip, temples, sides and bottom
of the lower face; not the cheeks, which smiles lift) from which the residual head motion is
estimated. The eyes are excluded everywhere, so blinks do not count.

Geometry (:class:`FaceGeometry`, crop pixels) comes from the tracker's named points (eye
centres, nose, mouth corners: whatever the landmark model gives) mapped into the crop, plus
the brow and eye contours of 68-point landmarks when present; in box-only mode, or for points
a model does not give, from the canonical geometry of the aligned crop (eyes at
``(0.5 ± eye_dist/2)·S``, ``eye_y·S``; nose and mouth from ``face.align.canonical_points`` or
average adult proportions in units of the inter-ocular distance ``d``). Names ``*_left`` /
``*_right`` are image left / right (the subject's right / left).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

ROI_NAMES: tuple[str, ...] = ("brow_left", "brow_right", "nose_left", "nose_right",
                              "mouth_left", "mouth_right")
"""The regions whose motion forms the spotting signal."""

# Average-adult proportions in units of the inter-ocular distance d (eye centre to eye
# centre), measured downwards from the eye line (YuNet-style points on frontal faces): nose
# tip ~0.6 d, mouth centre ~1.08 d, mouth half-width ~0.42 d, nose wings ~0.27 d beside the
# tip, brows ~0.35 d above the eyes.
NOSE_BELOW_EYES = 0.6
MOUTH_BELOW_EYES = 1.08
MOUTH_HALF_WIDTH = 0.42
NOSE_WING_HALF_WIDTH = 0.27
EYE_HALF_WIDTH = 0.38          # eye mask, units of d: lateral half-width,
EYE_TOP = 0.32                 # extent above the eye centre (the upper lid travels here),
EYE_BOTTOM = 0.16              # extent below it
BROW_BOTTOM = 0.33             # brow ROIs span from this far above the eye centre
BROW_TOP = 0.68                # up to this far


@dataclass(frozen=True)
class FaceGeometry:
    """Key points in crop pixels ``(x, y)``: eye centres (image left first), nose (tip or
    base, as the landmark model gives it), mouth corners; ``brow_*`` / ``eye_*_contour``:
    the 68-point brow ``(5, 2)`` and eye ``(6, 2)`` contours when known."""

    eye_l: tuple[float, float]
    eye_r: tuple[float, float]
    nose: tuple[float, float]
    mouth_l: tuple[float, float]
    mouth_r: tuple[float, float]
    brow_l: np.ndarray | None = None
    brow_r: np.ndarray | None = None
    eye_l_contour: np.ndarray | None = None
    eye_r_contour: np.ndarray | None = None

    @property
    def iod(self) -> float:
        """Inter-ocular distance in pixels."""
        return float(np.hypot(self.eye_r[0] - self.eye_l[0], self.eye_r[1] - self.eye_l[1]))

    def scaled(self, factor: float) -> FaceGeometry:
        """The same geometry for a crop resized by ``factor``."""
        def s(p):
            return None if p is None else (p[0] * factor, p[1] * factor)

        def a(x):
            return None if x is None else np.asarray(x, np.float64) * factor

        return FaceGeometry(s(self.eye_l), s(self.eye_r), s(self.nose), s(self.mouth_l),
                            s(self.mouth_r), a(self.brow_l), a(self.brow_r),
                            a(self.eye_l_contour), a(self.eye_r_contour))


def _canonical_params(tracker_config: Any = None) -> tuple[float, float]:
    if tracker_config is None:
        from mestudio.face.config import TrackerConfig

        tracker_config = TrackerConfig()
    return float(tracker_config.align_eye_y), float(tracker_config.align_eye_dist)


def canonical_geometry(size: int, tracker_config: Any = None) -> FaceGeometry:
    """Geometry of the canonical aligned crop of side ``size`` pixels (the tracker's
    ``align_eye_y`` / ``align_eye_dist``; ``face.align.canonical_points`` for nose and mouth,
    average proportions for what it does not give)."""
    eye_y, eye_dist = _canonical_params(tracker_config)
    from mestudio.face.align import canonical_points

    pts: dict[str, tuple[float, float]] = dict(canonical_points(size, tracker_config))
    d = eye_dist * size
    ye = eye_y * size
    xm = 0.5 * size
    base = {"left_eye": (xm - d / 2, ye), "right_eye": (xm + d / 2, ye)}
    for k in ("nose", "mouth_left", "mouth_right"):
        if k in pts:
            base[k] = pts[k]
    return geometry_from_points(base, size)


def geometry_from_points(points: Mapping[str, Sequence[float]], size: int,
                         landmarks68: np.ndarray | None = None) -> FaceGeometry:
    """Geometry from named points in crop pixels: ``left_eye`` and ``right_eye`` (required),
    ``nose`` or ``nose_tip``, ``mouth_left``, ``mouth_right`` (placed by average proportions
    from the eyes when missing). ``landmarks68``: 68 iBUG landmarks in crop pixels, whose
    brows and eye contours then shape the brow ROIs and the eye mask."""
    eyes = sorted([np.asarray(points["left_eye"], np.float64),
                   np.asarray(points["right_eye"], np.float64)], key=lambda p: float(p[0]))
    el, er = eyes
    d = float(np.hypot(*(er - el))) or 0.42 * size
    mid = 0.5 * (el + er)
    ex = (er - el) / d                       # along the eye line
    ey = np.array([-ex[1], ex[0]])           # down the face
    nose = points.get("nose", points.get("nose_tip"))
    nose_p = (np.asarray(nose, np.float64) if nose is not None
              else mid + NOSE_BELOW_EYES * d * ey)
    ml, mr = points.get("mouth_left"), points.get("mouth_right")
    if ml is not None and mr is not None:
        mouth = sorted([np.asarray(ml, np.float64), np.asarray(mr, np.float64)],
                       key=lambda p: float(p[0]))
    else:
        # Scaled by the measured eye-to-nose distance (long/short faces).
        k = float(np.clip(((nose_p - mid) @ ey) / (NOSE_BELOW_EYES * d), 0.6, 1.6))
        mc = mid + MOUTH_BELOW_EYES * d * k * ey
        mouth = [mc - MOUTH_HALF_WIDTH * d * ex, mc + MOUTH_HALF_WIDTH * d * ex]
    brow_l = brow_r = el_c = er_c = None
    if landmarks68 is not None and len(landmarks68) == 68:
        pts = np.asarray(landmarks68, np.float64)
        el_c, er_c = pts[36:42], pts[42:48]
        if el_c[:, 0].mean() > er_c[:, 0].mean():
            el_c, er_c = er_c, el_c
        brow_l, brow_r = pts[17:22], pts[22:27]
        if brow_l[:, 0].mean() > brow_r[:, 0].mean():
            brow_l, brow_r = brow_r, brow_l
    return FaceGeometry((float(el[0]), float(el[1])), (float(er[0]), float(er[1])),
                        (float(nose_p[0]), float(nose_p[1])),
                        (float(mouth[0][0]), float(mouth[0][1])),
                        (float(mouth[1][0]), float(mouth[1][1])), brow_l, brow_r, el_c, er_c)


def geometry_from_observation(face: Any, tracker_config: Any = None) -> FaceGeometry:
    """Geometry in the aligned crop of a :class:`~mestudio.types.FaceObservation`: its named
    points (eye centres, nose, mouth corners — whatever the landmark model gives) mapped into
    the crop with ``face.transform``, plus the 68 aligned landmarks when present; the
    canonical geometry in box-only mode or when points are missing."""
    size = int(face.aligned.shape[0])
    named = dict(face.named_points or {})
    m = face.transform
    lm = face.aligned_landmarks
    lm68 = np.asarray(lm) if lm is not None and len(lm) == 68 else None
    if m is not None and "left_eye" in named and "right_eye" in named \
            and face.mode == "landmarks":
        m = np.asarray(m, np.float64)
        crop_pts = {k: tuple(m[:, :2] @ np.asarray(v, np.float64) + m[:, 2])
                    for k, v in named.items() if len(v) == 2}
        try:
            return geometry_from_points(crop_pts, size, lm68)
        except (KeyError, ValueError, FloatingPointError):
            pass
    return canonical_geometry(size, tracker_config)


def _box(mask: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> None:
    h, w = mask.shape
    xa, xb = max(0, int(round(x0))), min(w, int(round(x1)))
    ya, yb = max(0, int(round(y0))), min(h, int(round(y1)))
    if xb > xa and yb > ya:
        mask[ya:yb, xa:xb] = True


def eye_mask(geom: FaceGeometry, size: int) -> np.ndarray:
    """Boolean ``(size, size)`` mask of both eyes (ellipses, or dilated 68-point contours)."""
    m = np.zeros((size, size), np.uint8)
    d = geom.iod
    for c, contour in ((geom.eye_l, geom.eye_l_contour), (geom.eye_r, geom.eye_r_contour)):
        ax = (max(1, int(round(EYE_HALF_WIDTH * d))), max(1, int(round(EYE_TOP * d))))
        cv2.ellipse(m, (int(round(c[0])), int(round(c[1]))), ax, 0, 180, 360, 1, -1)
        ax = (max(1, int(round(EYE_HALF_WIDTH * d))), max(1, int(round(EYE_BOTTOM * d))))
        cv2.ellipse(m, (int(round(c[0])), int(round(c[1]))), ax, 0, 0, 180, 1, -1)
        if contour is not None:
            hull = cv2.convexHull(np.round(contour).astype(np.int32))
            cv2.fillConvexPoly(m, hull, 1)
    if geom.eye_l_contour is not None:
        k = max(1, int(round(0.08 * d)))
        return np.asarray(cv2.dilate(m, np.ones((2 * k + 1, 2 * k + 1), np.uint8))) > 0
    return m.astype(bool)


def roi_masks(geom: FaceGeometry, size: int) -> dict[str, np.ndarray]:
    """Boolean ``(size, size)`` masks of the six ROIs (:data:`ROI_NAMES`), eyes excluded."""
    d = geom.iod
    eyes = eye_mask(geom, size)
    out: dict[str, np.ndarray] = {}
    for name, eye, brow in (("brow_left", geom.eye_l, geom.brow_l),
                            ("brow_right", geom.eye_r, geom.brow_r)):
        m = np.zeros((size, size), bool)
        inner = 1.0 if name == "brow_left" else -1.0   # direction towards the face centre
        if brow is not None:
            x0, x1 = brow[:, 0].min() - 0.05 * d, brow[:, 0].max() + 0.05 * d
            y0 = brow[:, 1].min() - 0.22 * d
            y1 = min(brow[:, 1].max() + 0.12 * d, eye[1] - BROW_BOTTOM * d)
            _box(m, x0, y0, x1, y1)
        else:
            xa, xb = eye[0] - inner * 0.36 * d, eye[0] + inner * 0.32 * d
            _box(m, min(xa, xb), eye[1] - BROW_TOP * d, max(xa, xb), eye[1] - BROW_BOTTOM * d)
        out[name] = m & ~eyes
    for name, sign in (("nose_left", -1.0), ("nose_right", 1.0)):
        m = np.zeros((size, size), bool)
        cx = geom.nose[0] + sign * NOSE_WING_HALF_WIDTH * d
        cy = geom.nose[1]
        _box(m, cx - 0.13 * d, cy - 0.25 * d, cx + 0.13 * d, cy + 0.1 * d)
        out[name] = m & ~eyes
    for name, corner in (("mouth_left", geom.mouth_l), ("mouth_right", geom.mouth_r)):
        m = np.zeros((size, size), bool)
        _box(m, corner[0] - 0.2 * d, corner[1] - 0.2 * d, corner[0] + 0.2 * d,
             corner[1] + 0.2 * d)
        out[name] = m & ~eyes
    return out


def nose_ridge_mask(geom: FaceGeometry, size: int) -> np.ndarray:
    """Boolean mask of the nose ridge (between the eyes down to above the nose base): the
    reference of the "translation" head-motion model."""
    d = geom.iod
    xm = 0.5 * (geom.eye_l[0] + geom.eye_r[0])
    ye = 0.5 * (geom.eye_l[1] + geom.eye_r[1])
    m = np.zeros((size, size), bool)
    _box(m, xm - 0.1 * d, ye + 0.08 * d, xm + 0.1 * d, geom.nose[1] - 0.18 * d)
    return m & ~eye_mask(geom, size)


def rigid_mask(geom: FaceGeometry, size: int, rois: dict[str, np.ndarray] | None = None,
               ) -> np.ndarray:
    """Boolean mask of the face parts used to estimate head motion: an ellipse around the
    face minus the eyes, the ROIs (with a margin), the mouth and the cheeks (what is left:
    nose ridge and tip, temples, the sides and bottom of the lower face)."""
    d = geom.iod
    xm = 0.5 * (geom.eye_l[0] + geom.eye_r[0])
    ye = 0.5 * (geom.eye_l[1] + geom.eye_r[1])
    ym = 0.5 * (geom.mouth_l[1] + geom.mouth_r[1])
    face = np.zeros((size, size), np.uint8)
    cy = 0.5 * ((ye - 0.75 * d) + (ym + 0.45 * d))
    ay = 0.5 * ((ym + 0.45 * d) - (ye - 0.75 * d))
    cv2.ellipse(face, (int(round(xm)), int(round(cy))), (int(round(0.95 * d)), int(round(ay))),
                0, 0, 360, 1, -1)
    excl = np.zeros((size, size), np.uint8)
    rois = rois if rois is not None else roi_masks(geom, size)
    for m in rois.values():
        excl |= m.astype(np.uint8)
    k = max(1, int(round(0.06 * d)))
    near_roi = np.asarray(cv2.dilate(excl, np.ones((2 * k + 1, 2 * k + 1), np.uint8))) > 0
    mouth = np.zeros((size, size), bool)
    _box(mouth, geom.mouth_l[0] - 0.1 * d, ym - 0.22 * d, geom.mouth_r[0] + 0.1 * d,
         ym + 0.25 * d)
    for sgn in (-1, 1):  # the cheeks (AU6 lifts them in smiles)
        xa, xb = xm + sgn * 0.14 * d, xm + sgn * 0.85 * d
        _box(mouth, min(xa, xb), ye + 0.12 * d, max(xa, xb), ym - 0.05 * d)
    return face.astype(bool) & ~near_roi & ~eye_mask(geom, size) & ~mouth
