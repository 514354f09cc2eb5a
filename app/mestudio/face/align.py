"""Alignment of a face to the canonical crop: a similarity transform from eyes (and nose).

CANONICAL geometry, in a crop of side ``S`` pixels (``TrackerConfig`` defaults in
brackets): the eye centres land at ``(0.5 ± align_eye_dist / 2) · S`` horizontally
[0.29 S, 0.71 S] and ``align_eye_y · S`` vertically [0.35 S]; the other points sit at
average human proportions measured in units of the inter-ocular distance ``d`` from the
mid-point of the eyes (from the 68-point annotations of the dlib example faces):

=============  ===================
point          offset (x, y) / d
=============  ===================
nose (base)    (0, 0.75)
mouth corners  (∓0.48, 1.06)
brows          (∓0.59, −0.33)
=============  ===================

``left``/``right`` are as seen in the image (``left_eye`` has the smaller x), i.e. the
mirror of the person's own left/right. The transform is the weighted least-squares
similarity (rotation, uniform scale, shift) from the eyes (weight 1) and the nose base
(``align_nose_weight``) to those positions, so every frame gets the same geometry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from mestudio.face.config import TrackerConfig
from mestudio.types import Box, FaceObservation

#: Offsets from the eye mid-point in units of the inter-ocular distance (x right, y down).
CANONICAL_OFFSETS: dict[str, tuple[float, float]] = {
    "left_eye": (-0.5, 0.0),
    "right_eye": (0.5, 0.0),
    "nose": (0.0, 0.75),
    "mouth_left": (-0.48, 1.06),
    "mouth_right": (0.48, 1.06),
    "left_brow": (-0.59, -0.33),
    "right_brow": (0.59, -0.33),
}


def canonical_points(size: int, config: TrackerConfig | None = None
                     ) -> dict[str, tuple[float, float]]:
    """Where the named points land in an aligned crop of side ``size`` pixels.

    Returns ``{name: (x, y)}`` in crop pixels for ``left_eye``, ``right_eye``, ``nose``,
    ``mouth_left``, ``mouth_right``, ``left_brow``, ``right_brow``.
    """
    cfg = config or TrackerConfig()
    d = cfg.align_eye_dist * size
    cx, cy = 0.5 * size, cfg.align_eye_y * size
    return {k: (cx + ox * d, cy + oy * d) for k, (ox, oy) in CANONICAL_OFFSETS.items()}


def similarity_transform(src: np.ndarray, dst: np.ndarray,
                         weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares similarity mapping ``src`` onto ``dst``.

    Args:
        src, dst: ``(N, 2)`` corresponding points (N >= 2, not all equal).
        weights: ``(N,)`` non-negative weights (default all 1).

    Returns:
        ``(2, 3)`` float64 matrix ``[[a, -b, tx], [b, a, ty]]``.
    """
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need >= 2 point pairs of shape (N, 2), got {src.shape}, {dst.shape}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    ps, qd = src - mu_s, dst - mu_d
    denom = float(w @ (ps ** 2).sum(axis=1))
    if denom <= 1e-12:
        raise ValueError("alignment points coincide")
    a = float(w @ (ps[:, 0] * qd[:, 0] + ps[:, 1] * qd[:, 1])) / denom
    b = float(w @ (ps[:, 0] * qd[:, 1] - ps[:, 1] * qd[:, 0])) / denom
    m = np.array([[a, -b, 0.0], [b, a, 0.0]])
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine transform to ``(P, 2)`` points; returns float64 ``(P, 2)``."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    return p @ m[:, :2].T + m[:, 2]


def box_eyes(box: Box, config: TrackerConfig | None = None
             ) -> tuple[tuple[float, float], tuple[float, float]]:
    """Eye centres estimated from a face box ``(x, y, w, h)`` (Haar-cascade proportions,
    ``box_eye_dx`` and ``box_eye_y``); used for box-only alignment."""
    cfg = config or TrackerConfig()
    x, y, w, h = (float(v) for v in box)
    ey = y + cfg.box_eye_y * h
    return (x + (0.5 - cfg.box_eye_dx) * w, ey), (x + (0.5 + cfg.box_eye_dx) * w, ey)


def alignment_transform(points: Mapping[str, tuple[float, float]] | np.ndarray, size: int,
                        config: TrackerConfig | None = None) -> np.ndarray:
    """The ``(2, 3)`` transform from frame pixels to the canonical crop of side ``size``.

    Args:
        points: named points (``left_eye`` and ``right_eye`` required, ``nose`` used when
            present), or an array ``(2, 2)`` = eyes or ``(3, 2)`` = eyes + nose base.
    """
    cfg = config or TrackerConfig()
    canon = canonical_points(size, cfg)
    if isinstance(points, Mapping):
        if "left_eye" not in points or "right_eye" not in points:
            raise ValueError("alignment needs left_eye and right_eye")
        names = ["left_eye", "right_eye"] + (["nose"] if "nose" in points else [])
        src = np.array([points[n] for n in names], np.float64)
    else:
        src = np.asarray(points, np.float64).reshape(-1, 2)
        if len(src) not in (2, 3):
            raise ValueError(f"expected eyes (2, 2) or eyes + nose (3, 2), got {src.shape}")
        names = ["left_eye", "right_eye", "nose"][: len(src)]
    if src[0, 0] > src[1, 0]:
        src[[0, 1]] = src[[1, 0]]  # whichever convention the caller used, left = smaller x
    dst = np.array([canon[n] for n in names], np.float64)
    weights = np.array([1.0, 1.0, cfg.align_nose_weight][: len(names)])
    if len(names) == 3 and cfg.align_nose_weight <= 0:
        src, dst, weights = src[:2], dst[:2], weights[:2]
    return similarity_transform(src, dst, weights)


def align_face(image: np.ndarray, observation_or_points: FaceObservation | Mapping[str, tuple[
        float, float]] | np.ndarray, size: int, config: TrackerConfig | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Cut the canonical aligned crop out of ``image``.

    Args:
        image: BGR ``uint8`` ``(H, W, 3)`` (or grey ``(H, W)``).
        observation_or_points: a tracker observation (its eyes and nose, or its box in
            box-only mode), named points, or an eyes (+ nose) array (see
            :func:`alignment_transform`).
        size: side of the crop in pixels.

    Returns:
        ``(crop, transform)``: crop ``(size, size, 3)`` (same dtype/channels as ``image``),
        transform ``(2, 3)`` float64 from image pixels to crop pixels.

    Raises:
        ValueError: an observation without a face.
    """
    cfg = config or TrackerConfig()
    pts: Mapping[str, tuple[float, float]] | np.ndarray
    if isinstance(observation_or_points, FaceObservation):
        obs = observation_or_points
        if not obs.face_found:
            raise ValueError("cannot align: the observation has no face")
        if "left_eye" in obs.named_points and "right_eye" in obs.named_points:
            pts = obs.named_points
        elif obs.box is not None:
            pts = np.array(box_eyes(obs.box, cfg))
        else:
            raise ValueError("cannot align: the observation has neither eyes nor a box")
    else:
        pts = observation_or_points
    m = alignment_transform(pts, size, cfg)
    return cut_crop(image, m, size), m


def cut_crop(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """The aligned crop of side ``size`` that ``transform`` (frame pixels -> crop pixels,
    ``(2, 3)``) cuts out of ``image``: how the tracker, :func:`align_face` and review (with
    the transforms ``frames.csv`` recorded) all make one."""
    import cv2

    return cv2.warpAffine(image, np.asarray(transform, np.float64), (size, size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


#: Eye patch of the blink appearance check: (width, height) in inter-ocular distances.
EYE_PATCH: tuple[float, float] = (0.5, 0.3)
_GREY_BGR = np.array([0.114, 0.587, 0.299], np.float32)
#: A held blink ends when less than this part of ``BlinkHold.contrast_drop`` is left
#: (some hysteresis against the start, but not half: see ``BlinkHold``, *End*).
_REOPEN = 0.75


def eye_contrast(image: np.ndarray, centre: np.ndarray, d: float, *,
                 size: tuple[float, float] = EYE_PATCH, samples: int = 24) -> float:
    """Contrast of the grey patch around an eye: ``(median − 10th percentile) / median``.

    An open eye shows the dark iris, pupil and lash line against the skin and the white of
    the eye; closed, the patch is mostly skin-coloured lid with a thin lash line, and the
    low percentile comes up to the median. The patch is ``size · d`` (width, height) around
    ``centre``, read with a stride that keeps about ``samples`` columns (the cost does
    not grow with the face: a few hundred pixels; 5–10 µs), grey as
    ``0.114 B + 0.587 G + 0.299 R``.

    Args:
        image: BGR ``(H, W, 3)`` (or BGRA) or grey ``(H, W)`` frame.
        centre: eye centre ``(x, y)`` in frame pixels.
        d: inter-ocular distance (pixels).

    Returns:
        The contrast (≥ 0), or NaN when the patch lies (partly) outside the frame, is
        smaller than 4×3 pixels or black.
    """
    h, w = image.shape[:2]
    cx, cy, d = float(centre[0]), float(centre[1]), float(d)  # Python floats: cheaper
    half_w, half_h = 0.5 * size[0] * d, 0.5 * size[1] * d
    x0, x1 = math.floor(cx - half_w + 0.5), math.floor(cx + half_w + 0.5)
    y0, y1 = math.floor(cy - half_h + 0.5), math.floor(cy + half_h + 0.5)
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h or x1 - x0 < 4 or y1 - y0 < 3:
        return float("nan")
    step = max(1, int((x1 - x0) / max(samples, 1) + 0.5))
    patch = image[y0:y1:step, x0:x1:step]
    if patch.ndim == 3:
        grey = patch[..., :3].astype(np.float32) @ _GREY_BGR
    else:
        grey = patch.astype(np.float32)
    flat = grey.ravel()
    k_low, k_med = flat.size // 10, flat.size // 2
    part = np.partition(flat, (k_low, k_med))  # much cheaper than np.percentile here
    low, med = float(part[k_low]), float(part[k_med])
    return (med - low) / med if med > 0 else float("nan")


class BlinkHold:
    """Holds the eye points through blinks, so that the aligned crop does not follow the lid.

    The LBF eye corners (and the eye contours of the 68-point model) follow the closing
    upper lid: during a blink they drop by up to ~0.1 of the inter-ocular distance ``d`` and
    the eye-based alignment moves the crop with them. This filter watches the eye points in
    a face-attached frame anchored at the nose base (origin: nose, x along the eye line,
    unit ``d``): the mean height of the eye points above the nose is constant under head
    translation, roll, scale and turn, and a blink shows as a fast rise of that height
    (the eye points come down towards the nose).

    *Geometry*: the height ``v`` is compared with its median over the last ``window_s``
    of non-blink frames; ``v − median > threshold`` is a candidate blink.

    *Appearance* (when the caller passes the frame): a change of head pitch (e.g. an
    "oo" while speaking) moves the eye points towards the nose just as well, so a
    candidate becomes a blink only when the eyes look closed too. Per eye,
    :func:`eye_contrast` measures a small patch (:data:`EYE_PATCH`, ``0.5 d × 0.3 d``)
    around the eye centre, ``(median − 10th percentile) / median`` of its grey values: the
    dark iris, pupil and lashes against skin and sclera. Under the closed lid the patch is
    skin-coloured and the contrast falls to 0.65–0.8 of its open value; in a head tilt it
    stays within a few per cent. The ratio ``r`` of the contrast to its median over the same
    non-blink history (per eye, then the mean of both eyes) must be below
    ``1 − contrast_drop`` (0.88); a candidate without it is only ``pending`` (no hold; the
    frame joins the history, so a lasting tilt becomes the new reference). Without a
    frame (points-only callers), while there is no reference yet, or when both patches
    leave the frame, the geometric test alone decides.

    *End*: a blink ends when the eyes are open again — ``r`` back above
    ``1 − 0.75 · contrast_drop`` (0.91; not higher: the fitted eye points come up a few
    frames after the lid, and the patch centred on them shows the open eye a few per cent
    low meanwhile) —, when the geometric excess falls below ``threshold / 2``, or after
    ``max_s`` (then it was no blink — e.g. a held expression — and the new geometry is
    accepted: no lasting lag).

    *Hold*: during a blink the eye points are replaced by their pre-blink positions
    relative to the nose (median of the same window, in the face frame) with the pre-blink
    rotation and scale, placed across the eye line by the current nose base and along it
    by the current eye points themselves (the lid moves them across the line, not along
    it; the LBF nose base wanders sideways during a blink): the head's translation is
    followed through the blink, the lid's motion is not. When the hold ends, the output
    goes over from the held to the fitted points in ``release_s``. Outside
    blinks (and their release) the points pass unchanged.

    Args:
        eye_idx: indices of the eye points in the point array (both eyes).
        nose_idx: index of the nose base.
        left_idx, right_idx: indices whose means are the left and right eye centres (they
            define the eye line); default: the first and second half of ``eye_idx``.
        threshold: rise of the eye points that starts a blink (units of ``d``).
        max_s: longest hold (s).
        window_s: length of the reference history (s).
        release_s: fade-out of the hold after a blink (s).
        contrast_drop: fraction of its reference the eye contrast must lose for a blink
            (appearance check; used only when frames are passed).

    Attributes:
        blinking: a blink is held now.
        pending: the last frame rose like a blink, but the eyes looked open (no hold).
        n_blinks: blinks held since the last reset.
        excess: the last frame's rise of the eye points above their reference (``d``).
        contrast_ratio: the last frame's eye contrast over its reference (NaN when not
            measured).
    """

    def __init__(self, eye_idx: list[int], nose_idx: int, *,
                 left_idx: list[int] | None = None, right_idx: list[int] | None = None,
                 threshold: float = 0.03, max_s: float = 0.5, window_s: float = 1.0,
                 release_s: float = 0.15, contrast_drop: float = 0.12) -> None:
        self.eye_idx = list(eye_idx)
        half = len(self.eye_idx) // 2
        self.left_idx = list(left_idx) if left_idx is not None else self.eye_idx[:half]
        self.right_idx = list(right_idx) if right_idx is not None else self.eye_idx[half:]
        self.nose_idx = int(nose_idx)
        self.threshold = float(threshold)
        self.max_s = float(max_s)
        self.window_s = float(window_s)
        self.release_s = float(release_s)
        self.contrast_drop = float(contrast_drop)
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new face, or a seek)."""
        # (t, v, eye points in nose-anchored face units (K, 2), angle, d,
        #  left and right eye contrast (NaN where not measured))
        self._history: list[tuple[float, float, np.ndarray, float, float, float, float]] = []
        self._hold: tuple[np.ndarray, float, float] | None = None
        self._start_t = 0.0
        self._release_t = 0.0
        self.blinking = False
        self.n_blinks = 0
        self.excess = 0.0
        self.contrast_ratio = float("nan")
        self.pending = False

    def _face(self, pts: np.ndarray, left: np.ndarray, right: np.ndarray
              ) -> tuple[np.ndarray, float, float]:
        """Eye points in nose-anchored face units, the eye-line angle and ``d`` (from the
        points and the left and right eye centres)."""
        v = right - left
        d = float(np.hypot(*v)) or 1.0
        angle = float(np.arctan2(v[1], v[0]))
        c, s = np.cos(angle), np.sin(angle)
        rot = np.array([[c, -s], [s, c]])
        q = (pts[self.eye_idx] - pts[self.nose_idx]) @ rot / d
        return q, angle, d

    @staticmethod
    def _contrast(image: np.ndarray | None, left: np.ndarray, right: np.ndarray, d: float
                  ) -> tuple[float, float]:
        """Left and right eye contrast of this frame; NaN without a frame."""
        if image is None:
            return float("nan"), float("nan")
        return eye_contrast(image, left, d), eye_contrast(image, right, d)

    def _contrast_ratio(self, contrast: tuple[float, float]) -> float:
        """Mean over the eyes of contrast / its median in the history (NaN: unknown)."""
        ratios: list[float] = []
        for k, c in enumerate(contrast):
            if c != c:  # NaN
                continue
            col = [h[5] for h in self._history] if k == 0 else [h[6] for h in self._history]
            ref = sorted(x for x in col if x == x)  # a plain median: a few µs cheaper
            n = len(ref)
            if n >= 3:
                med = ref[n // 2] if n % 2 else 0.5 * (ref[n // 2 - 1] + ref[n // 2])
                if med > 0:
                    ratios.append(c / med)
        return sum(ratios) / len(ratios) if ratios else float("nan")

    def held(self, points: np.ndarray) -> np.ndarray:
        """``points`` (``(P, 2)``) with the eye points where the current hold puts them
        (pre-blink places; see the class notes); raises ``RuntimeError`` without a hold."""
        if self._hold is None:
            raise RuntimeError("no blink is held")
        return self._held(np.asarray(points, np.float64))

    def _held(self, pts: np.ndarray) -> np.ndarray:
        """``pts`` with the eye points at their pre-blink places (needs a hold)."""
        assert self._hold is not None
        ref_q, ref_angle, ref_d = self._hold
        c, s = np.cos(ref_angle), np.sin(ref_angle)
        rot = np.array([[c, -s], [s, c]])
        held = pts[self.nose_idx] + (ref_q * ref_d) @ rot.T
        # Along the eye line the eye points themselves say where the head went (the lid
        # moves them across it); across it the nose base does.
        ex = rot[:, 0]
        held += float(((pts[self.eye_idx] - held) @ ex).mean()) * ex
        out = pts.copy()
        out[self.eye_idx] = held
        return out

    @property
    def active(self) -> bool:
        """The output differs from the input: a blink is held or its hold fades out."""
        return self._hold is not None

    def __call__(self, points: np.ndarray, t: float,
                 image: np.ndarray | None = None) -> np.ndarray:
        """The points of time ``t`` (``(P, 2)`` frame pixels) with the eye points held
        during a blink (a new array; unchanged values outside blinks).

        ``image``: the frame the points were fitted in (BGR or grey); with it a blink
        also needs the eyes to look closed (see the class notes), without it the geometry
        alone decides.
        """
        pts = np.asarray(points, np.float64)
        out = pts.copy()
        t = float(t)
        hist = self._history
        if hist and t <= hist[-1][0] - 1e-9:
            self.reset()  # time went backwards: a seek
            hist = self._history
        left = pts[self.left_idx].mean(0)
        right = pts[self.right_idx].mean(0)
        q, angle, d = self._face(pts, left, right)
        v = float(q[:, 1].mean())
        contrast = self._contrast(image, left, right, d)
        while hist and hist[0][0] < t - self.window_s:
            hist.pop(0)
        if len(hist) >= 3:
            excess = v - float(np.median([h[1] for h in hist]))
        else:
            excess = 0.0
            if self.blinking:
                self.blinking = False
                self._release_t = t
        ratio = self._contrast_ratio(contrast)
        self.excess, self.contrast_ratio = excess, ratio
        self.pending = False
        seen = ratio == ratio  # not NaN: the appearance is known
        if self.blinking:
            reopened = seen and ratio > 1.0 - self.contrast_drop * _REOPEN
            if excess < self.threshold / 2 or reopened or t - self._start_t > self.max_s:
                if excess >= self.threshold / 2 and not reopened:
                    hist.clear()  # too long for a blink: the face changed; new reference
                self.blinking = False
                self._release_t = t
        elif excess > self.threshold and seen and ratio >= 1.0 - self.contrast_drop:
            self.pending = True  # the points rose, but the eyes look open (yet)
        elif excess > self.threshold:
            self.blinking = True
            self.n_blinks += 1
            self._start_t = t
            ref_q = np.median(np.stack([h[2] for h in hist]), axis=0)
            recent = hist[-5:]
            turn = np.array([h[3] for h in recent]) - recent[-1][3]
            turn = (turn + np.pi) % (2 * np.pi) - np.pi
            ref_angle = recent[-1][3] + float(np.median(turn))
            ref_d = float(np.median([h[4] for h in recent]))
            self._hold = (ref_q, ref_angle, ref_d)
        weight = 1.0 if self.blinking else 0.0
        if not self.blinking and self._hold is not None:
            weight = 1.0 - (t - self._release_t) / self.release_s if self.release_s > 0 else 0.0
            if weight <= 0:
                self._hold = None
        if self._hold is not None and weight > 0:
            held = self._held(pts)[self.eye_idx]
            out[self.eye_idx] = weight * held + (1.0 - weight) * pts[self.eye_idx]
        if not self.blinking:
            hist.append((t, v, q, angle, d, *contrast))
        return out
