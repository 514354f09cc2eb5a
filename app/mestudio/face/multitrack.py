"""Every face in the picture, each with a stable number: multi-face tracking.

:class:`MultiFaceTracker` keeps one follower :class:`~mestudio.face.tracker.FaceTracker` per
face (landmarks fitted on every frame, sharing one detector and one landmark model) and
runs the detector on the whole frame at most every ``detect_every_s`` (sooner while a face
is missing or fewer faces are tracked than allowed, every ``search_every_s``). Each
detection run is matched to the tracks by an **optimal assignment** (Hungarian method,
``scipy.optimize.linear_sum_assignment``) on a cost that combines the box overlap (1 − IoU)
and the distance between the eyes, relative to the face size; the prediction of a missing
track moves its last box with its recent velocity, so a face that passes behind another is
found again where it went.

Identities are **per run and per track**: a track gets the next integer ``face_id`` (from 1)
when it starts, keeps it while it is seen or missing for at most ``keep_s`` seconds, and the
number is never given to another face in the same run. Nothing that could re-identify a
person (no embedding, no picture) is kept: a face that comes back after ``keep_s`` is a new
track with a new number.

Several faces: new tracks start largest first, up to ``max_faces``; two tracks that end up on
the same face (boxes overlapping by more than ``duplicate_iou``) are merged into the older
one.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from mestudio.face.config import TrackerConfig
from mestudio.face.detect import Detection, iou
from mestudio.face.tracker import FaceTracker
from mestudio.types import Box, FaceObservation, Frame

log = logging.getLogger(__name__)

#: Default longest miss before a track ends (seconds).
KEEP_S = 1.0
#: Default most faces followed at once.
MAX_FACES = 4
#: A detection and a track cannot be matched beyond this cost.
MAX_COST = 1.6
#: Weight of the eye distance (in inter-ocular distances) in the matching cost.
EYE_WEIGHT = 0.5
#: Two tracks whose boxes overlap this much follow the same face: the younger one ends.
DUPLICATE_IOU = 0.5


@dataclass
class Track:
    """One followed face.

    Attributes:
        face_id: its number in this run (from 1; never reused).
        tracker: the follower tracker fitting its landmarks.
        first_seen_t, last_seen_t: timestamps (s) of its first and latest sighting.
        box: its latest box (frame pixels).
        eyes: its latest eye centres ``(2, 2)`` (frame pixels), or None.
        velocity: box centre velocity (pixels per second, smoothed).
        observation: what it gave in the latest frame (``face_found`` False while missing).
    """

    face_id: int
    tracker: FaceTracker
    first_seen_t: float
    last_seen_t: float
    box: Box
    eyes: np.ndarray | None = None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    observation: FaceObservation = field(
        default_factory=lambda: FaceObservation(face_found=False))

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])

    def predicted_box(self, t: float) -> Box:
        """Its box moved by its velocity to time ``t`` (while it is missing)."""
        dt = max(0.0, t - self.last_seen_t)
        x, y, w, h = self.box
        dx, dy = self.velocity * min(dt, 1.0)
        return (x + float(dx), y + float(dy), w, h)


def _eyes(obs_or_det: FaceObservation | Detection) -> np.ndarray | None:
    pts = obs_or_det.named_points if isinstance(obs_or_det, FaceObservation) else \
        obs_or_det.points
    if "left_eye" in pts and "right_eye" in pts:
        return np.array([pts["left_eye"], pts["right_eye"]], np.float64)
    return None


def match_cost(box: Box, eyes: np.ndarray | None, det: Detection) -> float:
    """Cost of continuing a track (``box``, ``eyes``) with ``det``: ``1 − IoU`` plus
    :data:`EYE_WEIGHT` × the mean eye displacement in inter-ocular distances (when both
    have eyes), or the box-centre displacement in face widths otherwise."""
    cost = 1.0 - iou(box, det.box)
    det_eyes = _eyes(det)
    if eyes is not None and det_eyes is not None and not det.estimated:
        iod = max(float(np.hypot(*(eyes[1] - eyes[0]))), 1.0)
        cost += EYE_WEIGHT * float(np.mean(np.hypot(*(det_eyes - eyes).T))) / iod
    else:
        c1 = np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])
        c2 = np.array([det.box[0] + det.box[2] / 2, det.box[1] + det.box[3] / 2])
        cost += EYE_WEIGHT * float(np.hypot(*(c2 - c1))) / max(box[2], 1.0)
    return cost


class MultiFaceTracker:
    """Follows up to ``max_faces`` faces with stable per-run numbers (see the module).

    Args:
        config: tracker settings (detector, landmarks, cadence, alignment).
        max_faces: most faces followed at once (new ones largest first).
        keep_s: a face missing for longer than this ends its track.

    Attributes:
        tracks: the live tracks (seen now or missing for at most ``keep_s``), by face_id.
        ended: face_ids whose track ended at the latest :meth:`update` (their analysis
            should be closed).
        degraded, landmark_names, detector_name, timings_ms: as :class:`FaceTracker`.
    """

    def __init__(self, config: TrackerConfig | None = None, *, max_faces: int = MAX_FACES,
                 keep_s: float = KEEP_S) -> None:
        self.config = config or TrackerConfig()
        if max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {max_faces}")
        self.max_faces = int(max_faces)
        self.keep_s = float(keep_s)
        self._models = FaceTracker(self.config)
        self.degraded = self._models.degraded
        self.landmark_names = self._models.landmark_names
        self.detector_name = self._models.detector_name
        self.tracks: dict[int, Track] = {}
        self.ended: list[int] = []
        self.timings_ms: dict[str, float] = {}
        self.n_detections = 0
        self._ids = itertools.count(1)
        self._last_detect_t: float | None = None
        self._last_t: float | None = None
        self._n_faces = 0

    # ------------------------------------------------------------------ public
    def reset(self) -> None:
        """End every track (a seek or a new source); numbers are not reused."""
        self.ended = list(self.tracks)
        self.tracks = {}
        self._last_detect_t = None
        self._last_t = None

    def update(self, frame: Frame) -> list[tuple[int, FaceObservation]]:
        """Track every face in ``frame``: ``(face_id, observation)`` of each live track,
        ordered by face_id (a missing track gives ``face_found`` False)."""
        t = float(frame.timestamp_s)
        self.ended = []
        if self._last_t is not None and (t < self._last_t
                                         or t - self._last_t > self.config.reset_gap_s):
            self.reset()  # a seek: nothing of the previous frames holds
        self._last_t = t
        image = frame.image
        timings = {"detect": 0.0, "landmarks": 0.0, "align": 0.0}
        dets: list[Detection] | None = None
        if self._detection_due(t):
            t0 = time.perf_counter()
            dets = self._models.detector.detect(image)
            timings["detect"] += (time.perf_counter() - t0) * 1e3
            self.n_detections += 1
            self._n_faces = len(dets)
            self._last_detect_t = t
        # 1. every track follows its face (a detection it needs reuses this frame's run)
        for tr in self.tracks.values():
            if dets is not None:
                tr.tracker.share_detections(image, dets)
            if tr.tracker.tracking:
                tr.observation = tr.tracker.update(frame)
                for k in timings:
                    timings[k] += tr.tracker.timings_ms.get(k, 0.0)
            else:
                tr.observation = FaceObservation(face_found=False, n_faces=self._n_faces)
        # 2. detections: found again / new faces
        if dets:
            self._associate(frame, dets, t, timings)
        # 3. bookkeeping
        self._drop_duplicates()
        for fid, tr in list(self.tracks.items()):
            obs = tr.observation
            if obs.face_found and obs.box is not None:
                self._seen(tr, obs, t)
            elif t - tr.last_seen_t > self.keep_s:
                del self.tracks[fid]
                self.ended.append(fid)
        self.timings_ms = timings
        return [(fid, self.tracks[fid].observation) for fid in sorted(self.tracks)]

    def finish(self) -> list[int]:
        """End every track (end of the stream); returns their face_ids."""
        ids = list(self.tracks)
        self.tracks = {}
        return ids

    # ---------------------------------------------------------------- internals
    def _detection_due(self, t: float) -> bool:
        last = self._last_detect_t
        if last is None or t < last:
            return True
        searching = len(self.tracks) < self.max_faces or any(
            not tr.observation.face_found for tr in self.tracks.values())
        every = self.config.search_every_s if searching else self.config.detect_every_s
        # searching for new faces need not run at the follower's pace: at most 4 Hz
        return t - last >= (max(every, 0.25) if searching else every)

    def _associate(self, frame: Frame, dets: list[Detection], t: float,
                   timings: dict[str, float]) -> None:
        from scipy.optimize import linear_sum_assignment

        ids = sorted(self.tracks)
        used: set[int] = set()
        if ids:
            cost = np.full((len(ids), len(dets)), 1e6)
            for i, fid in enumerate(ids):
                tr = self.tracks[fid]
                obs = tr.observation
                box = obs.box if obs.face_found and obs.box is not None else \
                    tr.predicted_box(t)
                eyes = _eyes(obs) if obs.face_found else tr.eyes
                for j, det in enumerate(dets):
                    c = match_cost(box, eyes, det)
                    if c <= MAX_COST:
                        cost[i, j] = c
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols, strict=True):
                if cost[i, j] >= 1e6:
                    continue
                used.add(int(j))
                tr = self.tracks[ids[i]]
                if not tr.observation.face_found:  # found again: restart its follower
                    tr.observation = self._seed(tr.tracker, frame, dets[j], timings)
        free = [d for j, d in enumerate(dets) if j not in used]
        for det in free:  # largest first (the detector sorts them)
            if len(self.tracks) >= self.max_faces:
                break
            if any(tr.observation.face_found and tr.observation.box is not None
                   and iou(tr.observation.box, det.box) > DUPLICATE_IOU
                   for tr in self.tracks.values()):
                continue
            follower = FaceTracker(self.config, follower=True, models=self._models)
            obs = self._seed(follower, frame, det, timings)
            if not obs.face_found or obs.box is None:
                continue
            fid = next(self._ids)
            self.tracks[fid] = Track(face_id=fid, tracker=follower, first_seen_t=t,
                                     last_seen_t=t, box=obs.box, eyes=_eyes(obs),
                                     observation=obs)
            log.debug("face %d appeared at %.2f s (box %s)", fid, t, obs.box)

    def _seed(self, tracker: FaceTracker, frame: Frame, det: Detection,
              timings: dict[str, float]) -> FaceObservation:
        obs = tracker.seed(frame, det)
        for k in ("landmarks", "align"):
            timings[k] += tracker.timings_ms.get(k, 0.0)
        return obs

    def _seen(self, tr: Track, obs: FaceObservation, t: float) -> None:
        assert obs.box is not None
        dt = t - tr.last_seen_t
        if dt > 0:
            c_old = np.array([tr.box[0] + tr.box[2] / 2, tr.box[1] + tr.box[3] / 2])
            c_new = np.array([obs.box[0] + obs.box[2] / 2, obs.box[1] + obs.box[3] / 2])
            tr.velocity = 0.7 * tr.velocity + 0.3 * (c_new - c_old) / dt
        tr.box, tr.last_seen_t = obs.box, t
        eyes = _eyes(obs)
        if eyes is not None:
            tr.eyes = eyes

    def _drop_duplicates(self) -> None:
        seen = [tr for tr in self.tracks.values()
                if tr.observation.face_found and tr.observation.box is not None]
        seen.sort(key=lambda tr: tr.face_id)
        for i, a in enumerate(seen):
            for b in seen[i + 1:]:
                if b.face_id in self.tracks and a.face_id in self.tracks and \
                        iou(a.observation.box, b.observation.box) > DUPLICATE_IOU:  # type: ignore[arg-type]
                    b.tracker.reset()
                    b.observation = FaceObservation(face_found=False, n_faces=self._n_faces)
