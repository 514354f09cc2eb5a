"""Face tracking across frames: detect rarely, follow the landmarks, smooth, align.

Per frame (LBF mode, the normal case):

1. *Fit* the LBF landmarks in the eye-normalised patch placed by the previous frame's
   (raw) landmarks — about 0.3 ms.
2. *Check* the fit: the grey patch is correlated with the patch saved at the last
   confirmed detection; a low correlation (the face left, a cut in the video) or an
   implausible jump in eye distance makes the fit *suspect*.
3. *Detect* when the last detection is ``detect_every_s`` old, when the fit is suspect,
   or (every ``search_every_s``) after a miss. A detection that overlaps the tracked box
   confirms the face (refreshing the box geometry and the appearance patch); none for
   ``lost_after_misses`` attempts in a row loses it. Several faces: the one overlapping
   the tracked box is followed, and when none is tracked the largest is taken.
4. *Smooth* the landmarks with a One-Euro filter over the frame timestamps.
5. *Align*: similarity from eyes (+ nose base) to the canonical crop (:mod:`.align`).

Degraded modes (listed in :attr:`FaceTracker.degraded`): without an LBF model but with
YuNet, YuNet runs on every frame and its 5 points serve as landmarks; without either,
the Haar cascade runs on every frame and alignment uses eye positions estimated from the
box (``mode == "box-only"``).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from mestudio.face.align import BlinkHold, alignment_transform, cut_crop, transform_points
from mestudio.face.config import TrackerConfig
from mestudio.face.detect import YUNET_POINTS, Detection, _Detector, create_detector, iou
from mestudio.face.landmarks import LbfLandmarker, create_landmarker
from mestudio.face.smoothing import OneEuroFilter
from mestudio.types import Box, FaceObservation, Frame

log = logging.getLogger(__name__)

#: Side of the down-sampled patch used for the appearance check (pixels).
_CHECK_SIZE = 32


def _normalised_patch(patch: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm float32 vector of a grey patch, down-sampled to 32x32."""
    import cv2

    small = cv2.resize(patch, (_CHECK_SIZE, _CHECK_SIZE), interpolation=cv2.INTER_AREA)
    v = small.astype(np.float32).ravel()
    v -= v.mean()
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-6 else v


class _EyeFrame:
    """A face-attached coordinate frame: origin at the eye mid-point, x along the eyes,
    unit = inter-ocular distance. Maps points between frame pixels and face units."""

    def __init__(self, left: np.ndarray, right: np.ndarray) -> None:
        self.origin = (left + right) / 2.0
        v = right - left
        self.d = float(np.hypot(*v)) or 1.0
        c, s = v / self.d
        self.rot = np.array([[c, -s], [s, c]])

    def to_face(self, p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, np.float64) - self.origin) @ self.rot / self.d

    def to_frame(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(q, np.float64) * self.d @ self.rot.T + self.origin


@dataclass
class _Track:
    """State of the followed face."""

    raw: np.ndarray                    # (P, 2) last raw fit (frame px); eyes (2, 2) box-only
    det_score: float
    last_detect_t: float
    rel_box: np.ndarray                # (cx, cy, w, h) of the box in face units
    rel_points: dict[str, np.ndarray] = field(default_factory=dict)  # YuNet extras
    template: np.ndarray | None = None
    quality: float = 1.0
    misses: int = 0
    filter: OneEuroFilter | None = None
    blink: BlinkHold | None = None     # eye points held through blinks (alignment only)
    align_filter: OneEuroFilter | None = None  # smoothing of the held points, while needed
    # The last frame, when its eye points rose but the eye patches did not (yet) show a
    # blink (BlinkHold.pending): the smoothing before it, its raw points and time.
    pending: tuple[OneEuroFilter, np.ndarray, float] | None = None


class FaceTracker:
    """Follows one primary face through a stream of frames.

    Args:
        config: tracker settings (models, detection cadence, smoothing, crop geometry).

    Attributes:
        landmark_count: 68 or 5 (LBF or YuNet points), 0 in box-only mode.
        landmark_names: names of those points, in the order of ``FaceObservation.landmarks``.
        degraded: human lines describing the degraded modes in effect (empty when the
            full YuNet + LBF set-up runs).
        detector_name: ``"YuNet"`` or ``"Haar cascade"``.
        timings_ms: milliseconds spent per stage in the last :meth:`update`
            (``detect``, ``landmarks``, ``align``).
        n_detections: detector runs since construction.

    Follower mode (``follower=True``, used by
    :class:`~mestudio.face.multitrack.MultiFaceTracker` for each of several faces): the
    tracker starts only on the detection it is given (:meth:`seed`), never picks another face
    by itself, and reports the face lost instead; the detector and landmark model may be
    shared (``models``), and a detection already run on the same frame is reused
    (:meth:`share_detections`).

    Raises:
        ModelFileError: an explicit model path in ``config`` that is missing or unusable.
    """

    detector: _Detector
    degraded: list[str]
    detector_name: str
    mode: str
    landmark_count: int
    _track: _Track | None
    _last_search_t: float | None
    _last_t: float | None

    def __init__(self, config: TrackerConfig | None = None, *, follower: bool = False,
                 models: FaceTracker | None = None) -> None:
        self.config = cfg = config or TrackerConfig()
        self.follower = bool(follower)
        # The frame the shared detections belong to (the array itself: an id() could be
        # reused by a later frame once this one is freed) and the detections.
        self._shared: tuple[np.ndarray, list[Detection]] | None = None
        if models is not None:
            self.detector, self.degraded = models.detector, list(models.degraded)
            self.detector_name = models.detector_name
            self.landmarker: LbfLandmarker | None = models.landmarker
            self.mode, self.landmark_count = models.mode, models.landmark_count
            self.landmark_names: tuple[str, ...] = models.landmark_names
            self.timings_ms: dict[str, float] = {}
            self.n_detections = 0
            self.reset()
            return
        self.detector, self.degraded = create_detector(cfg)
        self.detector_name = self.detector.name
        self.landmarker = create_landmarker(cfg.landmark_model)
        if self.landmarker is not None:
            self.mode = "lbf"
            self.landmark_count = self.landmarker.n_points
            self.landmark_names = self.landmarker.names
        elif self.detector.gives_points:
            self.mode = "yunet"
            self.landmark_count = 5
            self.landmark_names = YUNET_POINTS
            self.degraded.append("no LBF landmark model found: using YuNet's 5 points, "
                                 "detector on every frame (`mestudio models fetch` gets one)")
        else:
            self.mode = "box"
            self.landmark_count = 0
            self.landmark_names = ()
            self.degraded.append("no landmark model found: box-only alignment (eyes "
                                 "estimated from the face box)")
        self.timings_ms = {}
        self.n_detections = 0
        self.reset()

    # ------------------------------------------------------------------ public
    @property
    def tracking(self) -> bool:
        """A face is being followed."""
        return self._track is not None

    def share_detections(self, image: np.ndarray, dets: list[Detection]) -> None:
        """``dets`` are the detector's answer for ``image``: a detection this tracker needs
        on that same frame reuses them instead of running the detector again."""
        self._shared = (image, dets)

    def seed(self, frame: Frame, det: Detection) -> FaceObservation:
        """Start following the face of ``det`` in ``frame`` (forgetting any other)."""
        t = float(frame.timestamp_s)
        self.reset()
        self._last_t = t
        self.timings_ms = {"detect": 0.0, "landmarks": 0.0, "align": 0.0}
        if not self._start(frame.image, det, t):
            return FaceObservation(face_found=False, n_faces=self._n_faces)
        return self._observe(frame.image, t)

    def reset(self) -> None:
        """Forget the tracked face; the next frame starts with a detection."""
        self._track = None
        self._last_search_t = None
        self._last_t = None
        self._n_faces = 0

    def update(self, frame: Frame) -> FaceObservation:
        """Track the face in ``frame`` and return the observation with its aligned crop
        (side ``config.align_size``)."""
        t = float(frame.timestamp_s)
        if self._last_t is not None and (t < self._last_t
                                         or t - self._last_t > self.config.reset_gap_s):
            self.reset()  # a seek: the previous state says nothing about this frame
        self._last_t = t
        self.timings_ms = {"detect": 0.0, "landmarks": 0.0, "align": 0.0}
        image = frame.image
        if self._track is None:
            if self.follower or not self._acquire(image, t):
                return FaceObservation(face_found=False, n_faces=self._n_faces)
        elif self.mode == "lbf":
            if not self._follow_lbf(image, t):
                return FaceObservation(face_found=False, n_faces=self._n_faces)
        elif not self._follow_by_detection(image, t):
            return FaceObservation(face_found=False, n_faces=self._n_faces)
        return self._observe(image, t)

    # --------------------------------------------------------------- detection
    def _detect(self, image: np.ndarray) -> list[Detection]:
        shared = self._shared
        if shared is not None and shared[0] is image:
            self._n_faces = len(shared[1])
            return list(shared[1])
        t0 = time.perf_counter()
        dets = self.detector.detect(image)
        self.timings_ms["detect"] += (time.perf_counter() - t0) * 1e3
        self.n_detections += 1
        self._n_faces = len(dets)
        return dets

    def _acquire(self, image: np.ndarray, t: float) -> bool:
        """No face tracked: look for one (at most every ``search_every_s``)."""
        if self._last_search_t is not None and 0 <= t - self._last_search_t \
                < self.config.search_every_s:
            return False
        self._last_search_t = t
        dets = self._detect(image)
        for det in dets[:3]:  # largest first; a bad fit on one may still leave another
            if self._start(image, det, t):
                return True
        return False

    def _start(self, image: np.ndarray, det: Detection, t: float) -> bool:
        cfg = self.config
        left = np.array(det.points["left_eye"])
        right = np.array(det.points["right_eye"])
        template = None
        if self.mode == "lbf":
            assert self.landmarker is not None
            raw, patch = self._fit(image, left, right)
            left, right = self.landmarker.eye_centres(raw)
            d_det = float(np.hypot(*(np.array(det.points["right_eye"]) - det.points["left_eye"])))
            d_fit = float(np.hypot(*(right - left)))
            if not (0.5 < d_fit / max(d_det, 1e-6) < 2.0):
                return False  # the fit ran away: not a usable face
            template = _normalised_patch(patch)
        elif self.mode == "yunet":
            raw = np.array([det.points[n] for n in YUNET_POINTS], np.float64)
        else:
            raw = np.array([left, right])
        self._track = _Track(
            raw=np.asarray(raw, np.float64), det_score=det.score, last_detect_t=t,
            rel_box=np.zeros(4), template=template,
            filter=OneEuroFilter(cfg.smoothing_min_cutoff_hz, cfg.smoothing_beta,
                                 cfg.smoothing_d_cutoff_hz))
        if cfg.blink_hold and self.mode == "lbf":
            assert self.landmarker is not None
            lm = self.landmarker
            if lm.nose_idx is not None:
                self._track.blink = BlinkHold(
                    lm.left_eye_idx + lm.right_eye_idx, lm.nose_idx,
                    left_idx=lm.left_eye_idx, right_idx=lm.right_eye_idx,
                    threshold=cfg.blink_threshold, max_s=cfg.blink_max_s,
                    contrast_drop=cfg.blink_contrast_drop)
        self._confirm(det, t, blend=1.0)
        return True

    def _confirm(self, det: Detection, t: float, blend: float = 0.5) -> None:
        """A detection confirmed the track: refresh box geometry and extra points."""
        tr = self._track
        assert tr is not None
        ef = self._eye_frame(tr.raw)
        x, y, w, h = det.box
        rel = np.array([*ef.to_face(np.array([x + w / 2, y + h / 2])), w / ef.d, h / ef.d])
        tr.rel_box = rel if blend >= 1.0 else (1 - blend) * tr.rel_box + blend * rel
        if self.mode == "lbf" and not det.estimated:
            for name in ("mouth_left", "mouth_right"):
                if name in det.points:
                    q = ef.to_face(np.array(det.points[name]))
                    old = tr.rel_points.get(name)
                    tr.rel_points[name] = q if old is None or blend >= 1.0 else \
                        (1 - blend) * old + blend * q
        tr.det_score = det.score
        tr.last_detect_t = t
        tr.misses = 0

    # ---------------------------------------------------------------- tracking
    def _fit(self, image: np.ndarray, left: np.ndarray, right: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        assert self.landmarker is not None
        t0 = time.perf_counter()
        pts, patch = self.landmarker.fit(image, left, right, self.config.fit_patch_size)
        self.timings_ms["landmarks"] += (time.perf_counter() - t0) * 1e3
        return pts.astype(np.float64), patch

    def _eye_frame(self, raw: np.ndarray) -> _EyeFrame:
        if self.mode == "lbf":
            assert self.landmarker is not None
            left, right = self.landmarker.eye_centres(raw)
        else:
            left, right = raw[0], raw[1]
        return _EyeFrame(np.asarray(left, np.float64), np.asarray(right, np.float64))

    def _box_of(self, raw: np.ndarray) -> Box:
        tr = self._track
        assert tr is not None
        ef = self._eye_frame(raw)
        cx, cy = ef.to_frame(tr.rel_box[:2])
        w, h = tr.rel_box[2] * ef.d, tr.rel_box[3] * ef.d
        return (float(cx - w / 2), float(cy - h / 2), float(w), float(h))

    def _match(self, image: np.ndarray, dets: list[Detection], box: Box,
               rescue: bool) -> Detection | None:
        """The detection that continues the followed face (box overlap at least
        ``match_iou``): from the whole-frame pass, else, when the face would otherwise be
        lost or replaced (``rescue``) and the whole-frame pass sees no face near it, from a
        pass around its box at full resolution (:meth:`~mestudio.face.detect._Detector.
        detect_near`: a small face in a large frame), else None. A single miss of a
        well-fitted face, or a face the whole-frame pass still sees, changes nothing."""
        cfg = self.config

        def best_of(found: list[Detection]) -> Detection | None:
            best = max(found, key=lambda d: iou(d.box, box), default=None)
            return best if best is not None and iou(best.box, box) >= cfg.match_iou else None

        def close(d: Detection) -> bool:  # the whole-frame pass sees a face about there
            dx = (d.box[0] + d.box[2] / 2) - (box[0] + box[2] / 2)
            dy = (d.box[1] + d.box[3] / 2) - (box[1] + box[3] / 2)
            return math.hypot(dx, dy) < max(box[2], box[3])

        best = best_of(dets)
        if best is None and rescue and not any(close(d) for d in dets):
            t0 = time.perf_counter()
            best = best_of(self.detector.detect_near(image, box))
            self.timings_ms["detect"] += (time.perf_counter() - t0) * 1e3
        return best

    def _lose(self) -> None:
        self._track = None
        self._last_search_t = None

    def _follow_lbf(self, image: np.ndarray, t: float) -> bool:
        cfg = self.config
        tr = self._track
        assert tr is not None and self.landmarker is not None
        prev_left, prev_right = self.landmarker.eye_centres(tr.raw)
        raw, patch = self._fit(image, prev_left, prev_right)
        left, right = self.landmarker.eye_centres(raw)
        h, w = image.shape[:2]
        mid = (left + right) / 2
        if not (0 <= mid[0] < w and 0 <= mid[1] < h):
            self._lose()  # the face left the picture
            self._n_faces = 0
            return False
        d_prev = float(np.hypot(*(prev_right - prev_left)))
        ratio = float(np.hypot(*(right - left))) / max(d_prev, 1e-6)
        vec = _normalised_patch(patch)
        tr.quality = float(vec @ tr.template) if tr.template is not None else 1.0
        suspect = tr.quality < cfg.fit_min_quality or not (0.75 < ratio < 1.33)
        if not suspect:
            tr.raw = raw  # a suspect fit is not kept: the last good one stays
        interval = cfg.detect_every_s if tr.misses == 0 else cfg.search_every_s
        if not suspect and t - tr.last_detect_t < interval:
            return True
        dets = self._detect(image)
        box = self._box_of(tr.raw)
        best = self._match(image, dets, box,
                           rescue=suspect or tr.misses + 1 >= cfg.lost_after_misses)
        if best is not None:
            if suspect:
                # The detector still sees the face: refit from its eyes.
                tr.raw, patch = self._fit(image, np.array(best.points["left_eye"]),
                                          np.array(best.points["right_eye"]))
                vec = _normalised_patch(patch)
            self._confirm(best, t)
            tr.template = vec
            tr.quality = 1.0
            return True
        tr.misses += 1
        tr.last_detect_t = t
        if suspect and dets:
            self._lose()  # another face took the place of the tracked one
            return False if self.follower else self._start(image, dets[0], t)
        if tr.misses >= cfg.lost_after_misses or (suspect and
                                                  tr.quality < cfg.fit_min_quality / 2):
            # Missed repeatedly, or the picture changed completely and no face is seen.
            self._lose()
            return False
        return True

    def _follow_by_detection(self, image: np.ndarray, t: float) -> bool:
        """YuNet-points and box-only modes: the detector runs on every frame."""
        cfg = self.config
        tr = self._track
        assert tr is not None
        dets = self._detect(image)
        box = self._box_of(tr.raw)
        best = self._match(image, dets, box, rescue=tr.misses + 1 >= cfg.lost_after_misses)
        if best is None:
            tr.misses += 1
            if tr.misses < cfg.lost_after_misses:
                return True  # keep the last position for a frame or two
            self._lose()
            return self._start(image, dets[0], t) if dets and not self.follower else False
        if self.mode == "yunet":
            tr.raw = np.array([best.points[n] for n in YUNET_POINTS], np.float64)
        else:
            tr.raw = np.array([best.points["left_eye"], best.points["right_eye"]], np.float64)
        self._confirm(best, t, blend=1.0)
        return True

    # ---------------------------------------------------------------- output
    def _observe(self, image: np.ndarray, t: float) -> FaceObservation:
        cfg = self.config
        tr = self._track
        assert tr is not None and tr.filter is not None
        t0 = time.perf_counter()
        blink = tr.blink
        held = None
        if blink is not None:
            # The frame lets the hold check that the eyes look closed (not a head tilt).
            held = blink(tr.raw, t, image if cfg.blink_appearance else None)
        pending, tr.pending = tr.pending, None
        if blink is not None and blink.active and tr.align_filter is None:
            if blink.blinking and pending is not None:
                # The eye points rose a frame before the lid covered the eyes (the hold
                # starts a frame late): smooth as if that frame had been held too, so that
                # its drop leaves no trace in the crops from here on.
                tr.align_filter, raw, t_prev = pending
                tr.align_filter(blink.held(raw), t_prev)
            else:
                tr.align_filter = copy.deepcopy(tr.filter)  # the state before this frame
        if blink is not None and blink.pending:
            tr.pending = (copy.deepcopy(tr.filter), tr.raw.copy(), t)
        fitted = tr.filter(tr.raw, t)
        smooth = fitted
        if blink is not None and held is not None and tr.align_filter is not None:
            # The alignment (and the named eye points) use the eye points held through
            # blinks; the landmarks stay the fit. Outside blinks both are the same: once
            # the two smoothings meet again after a blink, the fit's is used alone.
            smooth = tr.align_filter(held, t)
            if not blink.active and float(np.abs(smooth - fitted).max()) < 0.01:
                tr.align_filter = None
        ef = self._eye_frame(smooth)
        named: dict[str, tuple[float, float]]
        landmarks: np.ndarray | None
        if self.mode == "lbf":
            assert self.landmarker is not None
            named = self.landmarker.named_points(smooth)
            for name, q in tr.rel_points.items():
                if name not in named:
                    x, y = ef.to_frame(q)
                    named[name] = (float(x), float(y))
            landmarks = fitted.astype(np.float32)
        elif self.mode == "yunet":
            named = {n: (float(p[0]), float(p[1])) for n, p in zip(YUNET_POINTS, smooth,
                                                                    strict=True)}
            landmarks = smooth.astype(np.float32)
        else:
            named = {}
            landmarks = None
        cx, cy = ef.to_frame(tr.rel_box[:2])
        bw, bh = tr.rel_box[2] * ef.d, tr.rel_box[3] * ef.d
        box = (float(cx - bw / 2), float(cy - bh / 2), float(bw), float(bh))
        if self.mode == "box":
            eyes = smooth[:2]
        else:
            eyes = np.array([named["left_eye"], named["right_eye"]]
                            + ([named["nose"]] if "nose" in named else []))
        m = alignment_transform(eyes, cfg.align_size, cfg)
        crop = cut_crop(image, m, cfg.align_size)
        self.timings_ms["align"] += (time.perf_counter() - t0) * 1e3
        confidence = tr.det_score * float(np.clip(tr.quality, 0.0, 1.0))
        if tr.misses:
            confidence *= 0.5
        return FaceObservation(
            face_found=True, n_faces=max(self._n_faces, 1), confidence=float(confidence),
            box=box, landmarks=landmarks, landmark_names=self.landmark_names,
            named_points=named, transform=m, aligned=crop,
            aligned_landmarks=None if landmarks is None else
            transform_points(landmarks, m).astype(np.float32),
            mode="box-only" if self.mode == "box" else "landmarks")

