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
    import cv2

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
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, m
