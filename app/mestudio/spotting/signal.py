"""Per-frame ROI motion signal on the aligned face crop (SPOTTING.md, method 4, online).

For every frame with a face:

1. the aligned crop is converted to grey, resized to ``signal_size`` pixels and its global
   illumination (gain and brightness gradient, a plane in log intensity) is divided out, so
   that illumination drift does not look like motion;
2. dense optical flow is computed from a *reference frame* to the current frame;
3. residual head motion is removed: a similarity motion (translation, rotation, scale) is
   fitted robustly (iteratively re-weighted least squares) to the flow of rigid face parts
   and subtracted (``head_motion="translation"``: the mean flow of the nose ridge);
4. per ROI (brows, nose wings, mouth corners; eyes masked out so blinks do not count) the
   signal is the magnitude of the mean flow vector of the ``top_fraction`` of its pixels with
   the largest flow, in pixels of a 128-px canonical crop.

Reference policy ("quiet-gated sliding reference"). A micro-expression leaves the face and
comes back, so the flow from a *neutral* reference rises during the movement and returns to
the noise floor after it: one clean bump per movement. The reference is therefore replaced
by the current frame only when it is at least ``reference_window_s`` old **and** the current
frame is quiet (its motion against the old reference is within ``quiet_factor`` times the
typical quiet level), so it is never re-chosen in the middle of a movement. A plain ring
buffer ("the frame W seconds ago") would be simpler but echoes every movement W seconds
later (when the moved frame becomes the reference) and turns the start and the end of a
held macro-expression into two short, micro-like bumps; a fixed re-choice every W seconds
cuts movements that straddle the re-choice into two. ``reference_max_age_s`` bounds the age
so slow drift (illumination, pose) and held expressions cannot grow the signal forever.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from mestudio.spotting.config import SpotterConfig
from mestudio.spotting.rois import (
    ROI_NAMES,
    FaceGeometry,
    canonical_geometry,
    geometry_from_landmarks,
    nose_ridge_mask,
    rigid_mask,
    roi_masks,
)
from mestudio.types import FaceObservation

log = logging.getLogger(__name__)

SIGNAL_UNIT_PX = 128
"""Signal values are pixels of a crop of this side (independent of the processing size)."""


class _Flow:
    """The dense flow used for the signal: ``(H, W)`` uint8 pair -> ``(H, W, 2)`` float32."""

    def __init__(self, method: str) -> None:
        self.method = method
        self._fast = None
        self._dis = None
        if method == "auto":
            try:
                from mestudio.flow import fast_flow  # type: ignore[attr-defined]

                self._fast = fast_flow
                self.method = "fast_flow"
            except Exception:  # noqa: BLE001 - flow module absent or incomplete
                try:
                    from mestudio.flow.fast import fast_flow  # type: ignore[no-redef]

                    self._fast = fast_flow
                    self.method = "fast_flow"
                except Exception:  # noqa: BLE001
                    self.method = "dis"
        if self.method == "dis":
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        elif self.method not in ("fast_flow", "farneback"):
            raise ValueError(f"unknown flow_method {method!r}: use auto, dis or farneback")

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        if self._fast is not None:
            return np.asarray(self._fast(prev, nxt), dtype=np.float32)
        if self._dis is not None:
            return self._dis.calc(prev, nxt, None)
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 9, 3, 5, 1.1, 0)


def _fit_similarity(xy: np.ndarray, uv: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Robust least-squares similarity motion ``(tx, ty, a, b)`` with
    ``u = tx + a x - b y``, ``v = ty + b x + a y`` (``xy`` centred, ``(N, 2)``; ``uv`` ``(N, 2)``
    flow in pixels). Huber-like re-weighting down-weights local (expression) motion.
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
        w = np.minimum(1.0, c / np.maximum(mag, 1e-9))
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


@dataclass
class _Recent:
    t: float
    gray: np.ndarray
    landmarks: np.ndarray | None
    motion: float
    quiet: bool


class RoiSignal:
    """Per-frame ROI motion magnitudes from the aligned crops of one face.

    Call :meth:`update` for every frame (in time order). Cost at ``signal_size=96``: about
    one millisecond per frame on one CPU core (flow ~0.5 ms, head-motion fit and ROIs ~0.5 ms).
    """

    def __init__(self, config: SpotterConfig | None = None) -> None:
        self.config = config or SpotterConfig()
        self._flow = _Flow(self.config.flow_method)
        self.flow_method = self._flow.method
        self.roi_names: tuple[str, ...] = ROI_NAMES
        self.reference_age_s: float = 0.0
        self.n_refreshes = 0
        self.reset()

    # ----------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget the reference frame (next face frame becomes the reference)."""
        self._ref: np.ndarray | None = None
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
        self._last_head = (np.zeros(2), None)

    def _scale(self) -> float:
        return SIGNAL_UNIT_PX / float(self.config.signal_size)

    def _geometry(self, pts: np.ndarray | None, crop_size: int) -> FaceGeometry:
        """Face geometry in aligned-crop pixels from the crop's landmarks (or canonical)."""
        eye_y, eye_dist = self._canonical_params()
        if pts is not None and len(pts) in (5, 68):
            try:
                return geometry_from_landmarks(np.asarray(pts), crop_size, eye_y, eye_dist)
            except Exception:  # noqa: BLE001 - odd landmarks: fall back to the canonical
                log.debug("landmark geometry failed; using the canonical geometry")
        return canonical_geometry(crop_size, eye_y, eye_dist)

    @staticmethod
    def _canonical_params() -> tuple[float, float]:
        from mestudio.face.config import TrackerConfig

        tc = TrackerConfig()
        return tc.align_eye_y, tc.align_eye_dist

    def _set_reference(self, gray: np.ndarray, landmarks: np.ndarray | None, crop_size: int,
                       t: float) -> None:
        s = self.config.signal_size
        geom = self._geometry(landmarks, crop_size)
        self._geom = geom
        g = geom.scaled(s / crop_size)
        rois = roi_masks(g, s)
        self._roi_idx = {k: np.flatnonzero(m) for k, m in rois.items()}
        empty = [k for k, v in self._roi_idx.items() if v.size == 0]
        if empty:
            log.debug("empty ROIs %s at signal size %d", empty, s)
        rig = rigid_mask(g, s, rois)
        self._rigid_idx = np.flatnonzero(rig)
        ys, xs = np.divmod(self._rigid_idx, s)
        cx, cy = g.nose
        self._rigid_xy = np.stack([xs - cx, ys - cy], axis=1).astype(np.float64)
        self._roi_xy = {k: np.stack([v % s - cx, v // s - cy], axis=1).astype(np.float64)
                        for k, v in self._roi_idx.items()}
        self._nose_idx = np.flatnonzero(nose_ridge_mask(g, s))
        self._ref = gray
        self._ref_t = t
        self.n_refreshes += 1

    # ---------------------------------------------------------------------------- public
    def rois(self, size: int) -> dict[str, np.ndarray]:
        """Boolean ROI masks ``(size, size)`` for overlays on a crop of side ``size`` (the
        geometry of the current reference frame, else the canonical one)."""
        if self._geom is not None and self._crop_size:
            geom = self._geom.scaled(size / self._crop_size)
        else:
            eye_y, eye_dist = self._canonical_params()
            geom = canonical_geometry(size, eye_y, eye_dist)
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
            self._set_reference(gray, face.aligned_landmarks, crop_size, t)
            self.reference_age_s = 0.0
            self._last_raw = np.zeros((s * s, 2), np.float32)
            self._last_head = (np.zeros(2), None)
            return {k: 0.0 for k in self.roi_names}
        assert self._ref is not None
        flow = self._flow(self._ref, gray).reshape(-1, 2)
        self._last_raw = flow
        values = self._roi_values(flow)
        self.reference_age_s = t - self._ref_t
        self._maybe_refresh(values, gray, face.aligned_landmarks, crop_size, t)
        return values

    @property
    def last_flow(self) -> np.ndarray | None:
        """Flow of the last frame from the reference with the head motion removed,
        ``(s, s, 2)`` float32 in pixels of the signal size ``s`` (for overlays), or None."""
        if self._last_raw is None or self._geom is None or not self._crop_size:
            return None
        s = self.config.signal_size
        flow = self._last_raw.reshape(s, s, 2).astype(np.float32)
        offset, params = self._last_head
        if params is None:
            return flow - offset.astype(np.float32)
        cx, cy = self._geom.scaled(s / self._crop_size).nose
        ys, xs = np.mgrid[0:s, 0:s].astype(np.float64)
        xs -= cx
        ys -= cy
        tx, ty, a, b = params
        model = np.stack([tx + a * xs - b * ys, ty + b * xs + a * ys], axis=-1)
        return (flow - model).astype(np.float32)

    # --------------------------------------------------------------------------- helpers
    def _roi_values(self, flow: np.ndarray) -> dict[str, float]:
        """``flow`` ``(s*s, 2)`` -> per-ROI magnitudes (pixels of a 128-px crop)."""
        cfg = self.config
        mode = cfg.head_motion
        params = None
        offset = np.zeros(2)
        if mode == "similarity" and self._rigid_idx.size >= 8:
            params = _fit_similarity(self._rigid_xy, flow[self._rigid_idx].astype(np.float64))
        elif mode in ("translation", "similarity") and self._nose_idx.size:
            offset = flow[self._nose_idx].mean(0)
        elif mode not in ("none", "translation", "similarity"):
            raise ValueError(f"unknown head_motion {mode!r}: use similarity, translation or "
                             "none")
        self._last_head = (offset, params)
        scale = self._scale()
        out: dict[str, float] = {}
        for name in self.roi_names:
            idx = self._roi_idx.get(name)
            if idx is None or idx.size == 0:
                out[name] = 0.0
                continue
            uv = flow[idx].astype(np.float64)
            if params is not None:
                tx, ty, a, b = params
                xy = self._roi_xy[name]
                uv = uv - np.stack([tx + a * xy[:, 0] - b * xy[:, 1],
                                    ty + b * xy[:, 0] + a * xy[:, 1]], axis=1)
            else:
                uv = uv - offset
            mag2 = uv[:, 0] ** 2 + uv[:, 1] ** 2
            k = max(1, int(round(cfg.top_fraction * len(mag2))))
            if k < len(mag2):
                sel = np.argpartition(-mag2, k - 1)[:k]
                uv = uv[sel]
            m = uv.mean(0)
            out[name] = float(math.hypot(m[0], m[1]) * scale)
        return out

    def _maybe_refresh(self, values: dict[str, float], gray: np.ndarray,
                       landmarks: np.ndarray | None, crop_size: int, t: float) -> None:
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
        self._recent.append(_Recent(t, gray, landmarks, c, quiet))
        span = 2.0 * cfg.reference_settle_s
        while len(self._recent) > 1 and self._recent[1].t <= t - span + 1e-9:
            self._recent.popleft()
        age = t - self._ref_t
        if age < cfg.reference_window_s:
            return
        settled = self._recent[0].t <= t - span + 1e-9
        if settled and all(r.quiet for r in self._recent):
            # The middle of a quiet stretch: neither the end of a movement nor the start of
            # the next one.
            chosen = min(self._recent, key=lambda r: abs(r.t - (t - cfg.reference_settle_s)))
        elif age >= cfg.reference_max_age_s:
            chosen = min(self._recent, key=lambda r: r.motion)
            log.debug("reference replaced after %.2f s without a quiet moment", age)
        else:
            return
        self._set_reference(chosen.gray, chosen.landmarks, crop_size, chosen.t)
        self._recent.clear()
