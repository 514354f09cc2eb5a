"""Per-frame ROI motion signal on the aligned face crop (SPOTTING.md, method 4, online).

For every frame with a face:

1. the aligned crop is converted to grey, resized to ``signal_size`` pixels and its global
   illumination (gain and brightness gradient, a plane in log intensity) is divided out, so
   that illumination drift does not look like motion;
2. the eye regions are replaced by a smooth fill from the surrounding skin: blinks and gaze
   shifts change no texture, hence cause no flow (not even flow spread into the brows);
3. dense optical flow (:func:`mestudio.flow.fast_flow`, default DIS refined to full
   resolution) is computed from a *reference frame* to the
   current frame, after warping the current frame back by the head motion predicted from
   the previous frame;
4. residual head motion is removed: a similarity motion (translation, rotation, scale about
   the nose) is fitted robustly (Tukey-weighted least squares) to the flow of rigid face
   parts (nose, temples, lower face sides; not the cheeks, which smiles lift) and
   subtracted; when it still moves the face by more than ``stabilize_px``, the frame is
   warped back by it and the flow measured again (method 4's iterated stabilisation: a
   tracker jump of a pixel or two must not leak into the ROIs);
5. per ROI (brows, nose wings, mouth corners, left and right; eyes excluded) the signal is
   the magnitude of the mean flow vector of the ``top_fraction`` of its pixels with the
   largest flow, in pixels of a 128-px canonical crop.

Reference policy ("quiet-gated sliding reference"). A micro-expression leaves the face and
comes back, so the flow from a *neutral* reference rises during the movement and returns to
the noise floor after it: one clean bump per movement, whatever its length (40-500 ms) and
the frame rate. The reference is replaced once it is ``reference_window_s`` old, by a
recent frame in the middle of a quiet stretch (every frame within ``reference_settle_s``
before and after it moved less than ``quiet_factor`` times the typical quiet level), so it
is never re-chosen at the start, in the middle or in the tail of a movement. The
alternatives behave worse: a ring buffer ("the frame W seconds ago") echoes every movement W
seconds later, when the moved frame becomes the reference, and turns the start and the end
of a held macro-expression into two short, micro-like bumps; a fixed re-choice every W
seconds cuts the movements that straddle it in two and leaves a residual when the reference
was taken mid-movement. ``reference_max_age_s`` bounds the age (slow pose drift, a held
expression): the reference then becomes the latest of the stillest recent frames, i.e.
during a held expression a frame from before its onset.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from mestudio.spotting.config import SpotterConfig
from mestudio.spotting.rois import (
    ROI_NAMES,
    FaceGeometry,
    canonical_geometry,
    eye_mask,
    geometry_from_observation,
    nose_ridge_mask,
    rigid_mask,
    roi_masks,
)
from mestudio.types import FaceObservation

log = logging.getLogger(__name__)

SIGNAL_UNIT_PX = 128
"""Signal values are pixels of a crop of this side (independent of the processing size)."""


class _Flow:
    """The dense flow used for the signal: ``(H, W)`` uint8 pair -> ``(H, W, 2)`` float32,
    computed by :func:`mestudio.flow.fast_flow` (the one place flow methods live; default
    ``"dis-fine"``: OpenCV DIS refined to full resolution)."""

    def __init__(self, method: str) -> None:
        from mestudio.flow.fast import FAST_FLOW_METHODS, fast_flow

        if method not in FAST_FLOW_METHODS:
            raise ValueError(f"unknown flow_method {method!r}: use one of "
                             f"{', '.join(FAST_FLOW_METHODS)}")
        self.method = method
        self._fast = fast_flow

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return self._fast(prev, nxt, method=self.method)


def _fit_similarity(xy: np.ndarray, uv: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Robust least-squares similarity motion ``(tx, ty, a, b)`` with
    ``u = tx + a x - b y``, ``v = ty + b x + a y`` (``xy`` centred, ``(N, 2)``; ``uv`` ``(N, 2)``
    flow in pixels). Iteratively re-weighted (Tukey biweight) so that local (expression)
    motion inside the region is ignored.
    Solved through the 4x4 normal equations (cheap: a few reductions over N)."""
    x, y = xy[:, 0], xy[:, 1]
    u, v = uv[:, 0], uv[:, 1]
    r2 = x * x + y * y
    xu_yv = x * u + y * v
    xv_yu = x * v - y * u
    w = np.ones(len(x))
    p = np.zeros(4)
    for it in range(iterations):
        sw, swx, swy, swr = w.sum(), w @ x, w @ y, w @ r2
        m = np.array([[sw, 0.0, swx, -swy],
                      [0.0, sw, swy, swx],
                      [swx, swy, swr, 0.0],
                      [-swy, swx, 0.0, swr]])
        rhs = np.array([w @ u, w @ v, w @ xu_yv, w @ xv_yu])
        try:
            p = np.linalg.solve(m, rhs)
        except np.linalg.LinAlgError:
            return np.zeros(4)
        if it == iterations - 1:
            break
        tx, ty, a, b = p
        ru = tx + a * x - b * y - u
        rv = ty + b * x + a * y - v
        mag = np.sqrt(ru * ru + rv * rv)
        c = 1.5 * float(np.median(mag)) + 0.02
        z = np.minimum(mag / (3.0 * c), 1.0)
        w = (1.0 - z * z) ** 2  # Tukey's biweight: clear outliers get no weight at all
    return p


_LOG_LUT = np.log(np.arange(256, dtype=np.float32) + 1.0)
_PLANE_CACHE: dict[tuple[int, int], np.ndarray] = {}


def _plane_pinv(h: int, w: int) -> np.ndarray:
    """Pseudo-inverse ``(3, h*w)`` of the design matrix ``[1, x, y]`` (cached per size)."""
    key = (h, w)
    if key not in _PLANE_CACHE:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        X = np.stack([np.ones(h * w), xs.ravel() / w - 0.5, ys.ravel() / h - 0.5], axis=1)
        _PLANE_CACHE[key] = np.linalg.pinv(X).astype(np.float32)
    return _PLANE_CACHE[key]


def normalize_illumination(gray: np.ndarray) -> np.ndarray:
    """Remove global illumination changes from a grey crop: a plane fitted to the log
    intensity (overall gain and a linear brightness gradient in any direction) is divided
    out and the mean level set to ~128. Being global, a local change (an eye closing) does
    not leak into its surroundings. Input/output uint8 ``(H, W)``."""
    h, w = gray.shape
    logi = _LOG_LUT[gray]
    c = _plane_pinv(h, w) @ logi.ravel()
    ys = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
    xs = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :]
    plane = c[0] + c[1] * xs + c[2] * ys
    gain = np.exp(np.float32(math.log(128.0)) - plane)
    return cv2.convertScaleAbs(gray.astype(np.float32) * gain)


_RIGID_MAX_PIXELS = 700
"""At most this many pixels of the rigid region enter the head-motion fit."""

_HISTORY_MIN_STEP_S = 0.01
"""Frames kept for the reference history are at least this far apart (bounds memory)."""


@dataclass
class _Recent:
    t: float
    gray: np.ndarray
    geom: FaceGeometry
    motion: float
    quiet: bool


class RoiSignal:
    """Per-frame ROI motion magnitudes from the aligned crops of one face.

    Call :meth:`update` for every frame (in time order). Cost at ``signal_size=80`` with
    ``"dis-fine"``: about 2 ms per frame on one (shared) CPU core, up to ~5 ms while the
    head moves a lot (a second, stabilised flow on most frames); head-motion fit and ROIs
    ~0.3 ms of it.

    Attributes:
        roi_names: the keys of the returned dict (:data:`~mestudio.spotting.rois.ROI_NAMES`).
        reference_age_s: age of the flow reference at the last frame (seconds).
        n_refreshes: how many times a reference was chosen (diagnostics).
        last_flow: residual flow of the last frame (property, for overlays).
    """

    def __init__(self, config: SpotterConfig | None = None, *,
                 tracker_config: Any = None) -> None:
        """``tracker_config``: the :class:`~mestudio.face.config.TrackerConfig` that made the
        crops (its canonical eye positions place the ROIs in box-only mode); default one."""
        self.config = config or SpotterConfig()
        self.tracker_config = tracker_config
        self._flow = _Flow(self.config.flow_method)
        self._pre = _Flow(self.config.stabilize_prepass) if self.config.stabilize_prepass \
            else None
        self.flow_method = self._flow.method
        self.roi_names: tuple[str, ...] = ROI_NAMES
        self.reference_age_s: float = 0.0
        self.n_refreshes = 0
        self.reset()

    # ----------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget the reference frame (next face frame becomes the reference)."""
        self._ref: np.ndarray | None = None
        self._eye_w: np.ndarray | None = None
        self._ref_t = 0.0
        self._last_t: float | None = None
        self._geom: FaceGeometry | None = None
        self._crop_size: int | None = None
        self._roi_idx: dict[str, np.ndarray] = {}
        self._rigid_idx = np.zeros(0, np.int64)
        self._rigid_xy = np.zeros((0, 2))
        self._nose_idx = np.zeros(0, np.int64)
        self._quiet: deque[tuple[float, float]] = deque()
        self._recent: deque[_Recent] = deque()
        self._last_raw: np.ndarray | None = None
        self._last_head = np.zeros(4)
        self._head_total = np.zeros(4)
        self._centre = (0.0, 0.0)
        self._radius = 0.0
        #: ``(R, 2)`` mean displacement (dx, dy) of each ROI at the last frame, pixels of a
        #: 128-px crop, head motion removed (zeros at a new reference; None without a
        #: face): which way the face moved, where :meth:`update` gives how far. The
        #: expression spotter tells one configuration of the face from the next with it.
        self.last_vectors: np.ndarray | None = None

    def _scale(self) -> float:
        return SIGNAL_UNIT_PX / float(self.config.signal_size)

    def _set_reference(self, gray: np.ndarray, geom: FaceGeometry, crop_size: int,
                       t: float) -> None:
        s = self.config.signal_size
        self._geom = geom
        g = geom.scaled(s / crop_size)
        rois = roi_masks(g, s)
        self._roi_idx = {k: np.flatnonzero(m) for k, m in rois.items()}
        empty = [k for k, v in self._roi_idx.items() if v.size == 0]
        if empty:
            log.debug("empty ROIs %s at signal size %d", empty, s)
        rig = rigid_mask(g, s, rois)
        rig_idx = np.flatnonzero(rig)
        if len(rig_idx) > _RIGID_MAX_PIXELS:  # a regular subsample is as good and cheaper
            rig_idx = rig_idx[:: int(math.ceil(len(rig_idx) / _RIGID_MAX_PIXELS))]
        self._rigid_idx = rig_idx
        ys, xs = np.divmod(self._rigid_idx, s)
        cx, cy = g.nose
        self._centre = (float(cx), float(cy))
        self._rigid_xy = np.stack([xs - cx, ys - cy], axis=1).astype(np.float64)
        self._radius = float(np.hypot(self._rigid_xy[:, 0], self._rigid_xy[:, 1]).max()
                             if len(self._rigid_xy) else 0.0)
        parts = [self._roi_idx.get(k, np.zeros(0, np.int64)) for k in self.roi_names]
        self._all_idx = np.concatenate(parts)
        self._all_xy = np.stack([self._all_idx % s - cx, self._all_idx // s - cy],
                                axis=1).astype(np.float64)
        ends = np.cumsum([len(p) for p in parts])
        self._spans = [(int(e - len(p)), int(e)) for p, e in zip(parts, ends, strict=True)]
        self._nose_idx = np.flatnonzero(nose_ridge_mask(g, s))
        if self.config.mask_eyes_in_image:
            k = max(1, int(round(0.06 * g.iod)))
            w = cv2.GaussianBlur(eye_mask(g, s).astype(np.float32), (2 * k + 1, 2 * k + 1), 0)
            self._eye_w = np.clip(w * 1.5, 0.0, 1.0)
            self._fill_sigma = max(1.0, 0.15 * g.iod)
            self._fill_norm = cv2.GaussianBlur(1.0 - self._eye_w, (0, 0), self._fill_sigma) + 1e-3
            gray = self._fill_eyes(gray)
        else:
            self._eye_w = None
        self._ref = gray
        self._ref_t = t
        self._head_total = np.zeros(4)
        self.n_refreshes += 1

    # ---------------------------------------------------------------------------- public
    def rois(self, size: int) -> dict[str, np.ndarray]:
        """Boolean ROI masks ``(size, size)`` for overlays on a crop of side ``size`` (the
        geometry of the current reference frame, else the canonical one)."""
        if self._geom is not None and self._crop_size:
            geom = self._geom.scaled(size / self._crop_size)
        else:
            geom = canonical_geometry(size, self.tracker_config)
        return roi_masks(geom, size)

    def update(self, face: FaceObservation, timestamp_s: float) -> dict[str, float] | None:
        """Motion of each ROI at this frame.

        Args:
            face: tracker output for the frame; ``face.aligned`` is the aligned crop (BGR
                ``(S, S, 3)`` uint8 or grey ``(S, S)``).
            timestamp_s: the frame's timestamp in seconds.

        Returns:
            ``{roi_name: magnitude}`` in pixels of a 128-px crop (head motion removed), or
            None when there is no face (the reference is then forgotten).
        """
        cfg = self.config
        if not face.face_found or face.aligned is None:
            self.reset()
            return None
        t = float(timestamp_s)
        if self._last_t is not None and (t < self._last_t or
                                         t - self._last_t > cfg.gap_break_s):
            log.debug("timestamp jump %.3f -> %.3f s: new reference", self._last_t, t)
            self.reset()
        self._last_t = t
        img = face.aligned
        crop_size = int(img.shape[0])
        gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        s = cfg.signal_size
        if gray.shape[0] != s or gray.shape[1] != s:
            interp = cv2.INTER_AREA if gray.shape[0] > s else cv2.INTER_LINEAR
            gray = cv2.resize(gray, (s, s), interpolation=interp)
        if cfg.normalize_illumination:
            gray = normalize_illumination(gray)
        if self._ref is None or crop_size != self._crop_size:
            self._crop_size = crop_size
            self._quiet.clear()
            self._recent.clear()
            self._set_reference(gray, geometry_from_observation(face, self.tracker_config),
                                crop_size, t)
            self.reference_age_s = 0.0
            self._last_raw = np.zeros((s * s, 2), np.float32)
            self._last_head = np.zeros(4)
            self.last_vectors = np.zeros((len(self.roi_names), 2))
            return {k: 0.0 for k in self.roi_names}
        assert self._ref is not None
        # Method 4's stabilisation: the frame is warped back by the head motion (predicted
        # from the previous frame, re-measured when the residual is still large) before the
        # flow that feeds the ROIs, so a global shift (a tracker jump) cannot leak into them.
        total = self._head_total.copy()
        stabilise = cfg.stabilize_px > 0
        # The head motion is measured by the coarse pre-pass when there is one (the accurate
        # flow then runs once), else by the accurate flow itself (computed again when the
        # frame has to be warped back).
        measure = self._pre if stabilise and self._pre is not None else self._flow
        moving = self._moving(gray, total)
        flow, params = self._flow_and_head(moving, measure)
        if stabilise and self._head_displacement(params) > cfg.stabilize_px:
            total = total + params
            moving = self._moving(gray, total)
            flow, params = self._flow_and_head(moving, self._flow)
        elif measure is not self._flow:
            flow, params = self._flow_and_head(moving, self._flow)
        self._head_total = total + params if cfg.stabilize_px > 0 else np.zeros(4)
        self._last_raw = flow
        self._last_head = params
        values = self._roi_magnitudes(flow, params)
        self.reference_age_s = t - self._ref_t
        self._maybe_refresh(values, gray, face, crop_size, t)
        return values

    @property
    def last_flow(self) -> np.ndarray | None:
        """Flow of the last frame from the reference with the head motion removed,
        ``(s, s, 2)`` float32 in pixels of the signal size ``s`` (for overlays), or None."""
        if self._last_raw is None or self._geom is None or not self._crop_size:
            return None
        s = self.config.signal_size
        flow = self._last_raw.reshape(s, s, 2).astype(np.float32)
        cx, cy = self._centre
        ys, xs = np.mgrid[0:s, 0:s].astype(np.float64)
        xs -= cx
        ys -= cy
        tx, ty, a, b = self._last_head
        model = np.stack([tx + a * xs - b * ys, ty + b * xs + a * ys], axis=-1)
        return (flow - model).astype(np.float32)

    # --------------------------------------------------------------------------- helpers
    def _fill_eyes(self, gray: np.ndarray) -> np.ndarray:
        """Replace the eye regions by a smooth fill from their surroundings (normalised
        convolution): blinks and gaze shifts change no texture, so they cause no flow, and
        the flow there (and next to it) follows the surrounding skin."""
        assert self._eye_w is not None
        g = gray.astype(np.float32)
        keep = 1.0 - self._eye_w
        fill = cv2.GaussianBlur(g * keep, (0, 0), self._fill_sigma) / self._fill_norm
        return cv2.convertScaleAbs(g * keep + fill * self._eye_w)

    def _moving(self, gray: np.ndarray, total: np.ndarray) -> np.ndarray:
        """``gray`` warped back by the head motion ``total``, eyes filled: what the flow from
        the reference is measured on."""
        warped = self._stabilised(gray, total)
        return self._fill_eyes(warped) if self._eye_w is not None else warped

    def _flow_and_head(self, moving: np.ndarray, flow_fn: _Flow
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Flow (``flow_fn``) reference -> ``moving`` (:meth:`_moving`) ``(s*s, 2)`` and the
        head motion fitted to it, ``(tx, ty, a, b)`` (similarity about the nose; translation
        only or zeros for the other ``head_motion`` modes)."""
        assert self._ref is not None
        flow = flow_fn(self._ref, moving).reshape(-1, 2)
        mode = self.config.head_motion
        params = np.zeros(4)
        if mode == "similarity" and self._rigid_idx.size >= 8:
            params = _fit_similarity(self._rigid_xy, flow[self._rigid_idx].astype(np.float64))
        elif mode in ("translation", "similarity") and self._nose_idx.size:
            params[:2] = flow[self._nose_idx].mean(0)
        elif mode not in ("none", "translation", "similarity"):
            raise ValueError(f"unknown head_motion {mode!r}: use similarity, translation or "
                             "none")
        return flow, params

    def _stabilised(self, gray: np.ndarray, params: np.ndarray) -> np.ndarray:
        """``gray`` warped back by the head motion ``params`` (``x -> x + T(x)`` sampled)."""
        if not np.any(params):
            return gray
        s = gray.shape[0]
        tx, ty, a, b = params
        cx, cy = self._centre
        m = np.array([[1.0 + a, -b, tx - a * cx + b * cy],
                      [b, 1.0 + a, ty - b * cx - a * cy]])
        return cv2.warpAffine(gray, m, (s, s), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    def _head_displacement(self, params: np.ndarray) -> float:
        """Largest displacement (pixels of the signal size) of the head motion over the face."""
        tx, ty, a, b = params
        return float(math.hypot(tx, ty) + math.hypot(a, b) * self._radius)

    def _roi_magnitudes(self, flow: np.ndarray, params: np.ndarray) -> dict[str, float]:
        """``flow`` ``(s*s, 2)`` minus the head motion ``params`` -> per-ROI magnitudes
        (pixels of a 128-px crop)."""
        tx, ty, a, b = params
        xy = self._all_xy
        uv = flow[self._all_idx].astype(np.float64)
        uv[:, 0] -= tx + a * xy[:, 0] - b * xy[:, 1]
        uv[:, 1] -= ty + b * xy[:, 0] + a * xy[:, 1]
        mag2 = uv[:, 0] ** 2 + uv[:, 1] ** 2
        scale = self._scale()
        out: dict[str, float] = {}
        vectors = np.zeros((len(self.roi_names), 2))
        for r, (name, (lo, hi)) in enumerate(zip(self.roi_names, self._spans, strict=True)):
            n = hi - lo
            if n == 0:
                out[name] = 0.0
                continue
            vectors[r] = uv[lo:hi].mean(0) * scale
            k = max(1, int(round(self.config.top_fraction * n)))
            part = uv[lo:hi]
            if k < n:
                part = part[np.argpartition(-mag2[lo:hi], k - 1)[:k]]
            m = part.mean(0)
            out[name] = float(math.hypot(m[0], m[1]) * scale)
        self.last_vectors = vectors
        return out

    def _maybe_refresh(self, values: dict[str, float], gray: np.ndarray,
                       face: FaceObservation, crop_size: int, t: float) -> None:
        """Replace the reference by a recent quiet frame when it is old enough.

        The new reference is the frame ``reference_settle_s`` ago, and only when every frame
        from ``2 * reference_settle_s`` ago until now was quiet: a frame at the start or in
        the tail of a movement is never chosen (its displacement would otherwise remain in
        the signal after the face returns to rest).
        """
        cfg = self.config
        c = max(values.values()) if values else 0.0
        while self._quiet and self._quiet[0][0] < t - cfg.baseline_window_s:
            self._quiet.popleft()
        if len(self._quiet) >= 3:
            level = cfg.quiet_factor * float(np.median([q for _, q in self._quiet]))
        else:
            level = math.inf
        quiet = c <= max(level, 1e-3)
        if quiet:
            self._quiet.append((t, c))
        geom = geometry_from_observation(face, self.tracker_config)
        if not self._recent or t - self._recent[-1].t >= _HISTORY_MIN_STEP_S:
            self._recent.append(_Recent(t, gray, geom, c, quiet))
        else:  # high frame rate: keep the history's memory bounded
            self._recent[-1] = _Recent(t, gray, geom, c, quiet and self._recent[-1].quiet)
        while len(self._recent) > 1 and self._recent[1].t <= t - cfg.reference_history_s:
            self._recent.popleft()
        age = t - self._ref_t
        if age < cfg.reference_window_s:
            return
        span = 2.0 * cfg.reference_settle_s
        stretch = [r for r in self._recent if r.t >= t - span - 1e-9]
        settled = self._recent[0].t <= t - span + 1e-9
        if settled and all(r.quiet for r in stretch):
            # The middle of a quiet stretch: neither the end of a movement nor the start of
            # the next one.
            chosen = min(stretch, key=lambda r: abs(r.t - (t - cfg.reference_settle_s)))
        elif age >= cfg.reference_max_age_s:
            # No quiet moment for a long time (drift, or a held expression): the latest frame
            # as still as the stillest one of the recent history; during a held expression
            # that is a frame from before its onset.
            floor = min(r.motion for r in self._recent)
            tol = max(0.5 * (level - floor), 0.0) if math.isfinite(level) else 0.0
            chosen = [r for r in self._recent if r.motion <= floor + tol][-1]
            log.debug("reference replaced after %.2f s without a quiet moment", age)
        else:
            return
        self._set_reference(chosen.gray, chosen.geom, crop_size, chosen.t)
        self._recent.clear()
