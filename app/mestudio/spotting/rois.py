"""Regions of interest on the aligned face crop.

The spotting signal is measured in six regions where micro-expressions move the skin
(brows: AU1/2/4; nose wings: AU9/10; mouth corners: AU12/14/15/24) and is referenced to a
rigid region (nose ridge, forehead top, cheeks' outer parts, chin) from which the residual
head motion is estimated. The eyes are masked out everywhere, so blinks do not count.

Geometry comes, in order of preference, from 68-point landmarks in the crop (iBUG order),
from the named points of a 5-point model (eye centres, nose base), or from the canonical
geometry of the aligned crop (eyes at ``(0.5 ± eye_dist/2)·S``, ``eye_y·S``; face proportions
of an average adult in units of the inter-ocular distance ``d``). Names ``*_left`` /
``*_right`` are image left / right (the subject's right / left).
"""

from __future__ import annotations

from dataclasses import dataclass

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
BROW_BOTTOM = 0.33             # brow ROIs start this far above the eye centre


@dataclass(frozen=True)
class FaceGeometry:
    """Key points in crop pixels ``(x, y)``: eye centres (image left first), nose base,
    mouth corners; ``brows`` holds 68-point brow contours ``(5, 2)`` each when known."""

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


def canonical_geometry(size: int, eye_y: float = 0.35, eye_dist: float = 0.42) -> FaceGeometry:
    """Geometry of the canonical aligned crop of side ``size`` pixels (TrackerConfig
    ``align_eye_y``, ``align_eye_dist``). Uses ``face.align.canonical_points`` when it exists
    for eyes/nose/mouth, else average proportions."""
    pts: dict = {}
    try:  # the tracker's own canonical points, when that module is present
        from mestudio.face.align import canonical_points

        pts = dict(canonical_points(size))
    except Exception:  # noqa: BLE001 - module absent/incomplete: use our proportions
        pts = {}
    d = eye_dist * size
    ye = eye_y * size
    xm = 0.5 * size
    eyes = sorted([p for k, p in pts.items() if "eye" in k and len(p) == 2],
                  key=lambda p: p[0])
    eye_l, eye_r = (tuple(eyes[0]), tuple(eyes[-1])) if len(eyes) >= 2 else (
        (xm - d / 2, ye), (xm + d / 2, ye))
    nose = tuple(pts["nose"]) if "nose" in pts else (xm, ye + NOSE_BELOW_EYES * d)
    mouths = sorted([p for k, p in pts.items() if "mouth" in k and len(p) == 2],
                    key=lambda p: p[0])
    if len(mouths) >= 2:
        mouth_l, mouth_r = tuple(mouths[0]), tuple(mouths[-1])
    else:
        ym = ye + MOUTH_BELOW_EYES * d
        mouth_l, mouth_r = (xm - MOUTH_HALF_WIDTH * d, ym), (xm + MOUTH_HALF_WIDTH * d, ym)
    return FaceGeometry(eye_l, eye_r, nose, mouth_l, mouth_r)  # type: ignore[arg-type]


def geometry_from_landmarks(points: np.ndarray, size: int, eye_y: float = 0.35,
                            eye_dist: float = 0.42) -> FaceGeometry:
    """Geometry from landmarks in crop pixels ``(P, 2)``: 68 points (iBUG order) use brows,
    eye contours, nose and mouth corners; 5 points (4 eye corners + nose base, any order of
    the eye corners) give eye centres and nose; other counts fall back to the canonical
    geometry. Mouth corners missing from a model are placed by proportions."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    canon = canonical_geometry(size, eye_y, eye_dist)
    if len(pts) == 68:
        el_c, er_c = pts[36:42], pts[42:48]
        eye_a, eye_b = el_c.mean(0), er_c.mean(0)
        if eye_a[0] > eye_b[0]:
            el_c, er_c, eye_a, eye_b = er_c, el_c, eye_b, eye_a
        br_a, br_b = pts[17:22], pts[22:27]
        if br_a[:, 0].mean() > br_b[:, 0].mean():
            br_a, br_b = br_b, br_a
        m_a, m_b = pts[48], pts[54]
        if m_a[0] > m_b[0]:
            m_a, m_b = m_b, m_a
        return FaceGeometry(tuple(eye_a), tuple(eye_b), tuple(pts[33]), tuple(m_a),
                            tuple(m_b), br_a, br_b, el_c, er_c)  # type: ignore[arg-type]
    if len(pts) == 5:
        # Nose base = the point farthest below the line through the other four.
        order = np.argsort(pts[:, 1])
        nose = pts[order[-1]]
        corners = pts[order[:-1]]
        corners = corners[np.argsort(corners[:, 0])]
        eye_a, eye_b = corners[:2].mean(0), corners[2:].mean(0)
        d = float(np.hypot(*(eye_b - eye_a)))
        ye = 0.5 * (eye_a[1] + eye_b[1])
        xm = 0.5 * (eye_a[0] + eye_b[0])
        # Mouth placed by proportions, scaled by the measured eye-to-nose distance.
        k = max(0.5, min(1.6, (nose[1] - ye) / (NOSE_BELOW_EYES * d))) if d > 0 else 1.0
        ym = ye + MOUTH_BELOW_EYES * d * k
        return FaceGeometry(tuple(eye_a), tuple(eye_b), tuple(nose),  # type: ignore[arg-type]
                            (xm - MOUTH_HALF_WIDTH * d, ym), (xm + MOUTH_HALF_WIDTH * d, ym))
    return canon


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
        m = cv2.dilate(m, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
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
            _box(m, min(xa, xb), eye[1] - 0.68 * d, max(xa, xb), eye[1] - BROW_BOTTOM * d)
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
    face minus the eyes, the ROIs (with a margin) and the mouth."""
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
    excl = cv2.dilate(excl, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    mouth = np.zeros((size, size), bool)
    _box(mouth, geom.mouth_l[0] - 0.1 * d, ym - 0.22 * d, geom.mouth_r[0] + 0.1 * d,
         ym + 0.25 * d)
    return face.astype(bool) & ~excl.astype(bool) & ~eye_mask(geom, size) & ~mouth
