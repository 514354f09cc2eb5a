"""Every face in the picture, each with a stable number: multi-face tracking.

:class:`MultiFaceTracker` keeps one follower :class:`~mestudio.face.tracker.FaceTracker` per
face (landmarks fitted on every frame, sharing one detector and one landmark model) and
runs the detector on the whole frame at most every ``detect_every_s`` (sooner while a face
is missing or fewer faces are tracked than allowed, every ``search_every_s``). Each
detection run is matched to the tracks by an **optimal assignment** (Hungarian method,
:func:`mestudio.face.assignment.assign`) on a cost that combines the box overlap (1 − IoU)
and the distance between the eyes, relative to the face size; the prediction of a missing
track moves it with its recent velocity, so a face that passes behind another is found again
where it went. The velocity is robust (Theil–Sen: the median of the pairwise velocities of the
sightings of the last ``VELOCITY_WINDOW_S``), and a missing face is looked for at two places,
the cheaper match wins: on the robust line through those sightings (with their median size) —
the last few fits of a face that is being covered drift (the landmarks slide, the box shrinks)
and must not decide where it is looked for — and at its last sighting moved by the velocity
(a sudden move, e.g. out of the picture, is not in the trend). The predicted centre stays
inside the picture: a face that left it comes back from where it left.

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
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mestudio.face.assignment import assign
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
#: Sightings over this many seconds give a track's velocity.
VELOCITY_WINDOW_S = 1.0


@dataclass
class Track:
    """One followed face.

    Attributes:
        face_id: its number in this run (from 1; never reused).
        tracker: the follower tracker fitting its landmarks.
        first_seen_t, last_seen_t: timestamps (s) of its first and latest sighting.
        box: its latest box (frame pixels).
        eyes: its latest eye centres ``(2, 2)`` (frame pixels), or None.
        velocity: box centre velocity (pixels per second): the median of the pairwise
            velocities of the sightings of the last :data:`VELOCITY_WINDOW_S`.
        history: those sightings, ``(t, centre x, centre y, width, height)``.
        observation: what it gave in the latest frame (``face_found`` False while missing).
    """

    face_id: int
    tracker: FaceTracker
    first_seen_t: float
    last_seen_t: float
    box: Box
    eyes: np.ndarray | None = None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    history: deque[tuple[float, float, float, float, float]] = field(default_factory=deque)
    observation: FaceObservation = field(
        default_factory=lambda: FaceObservation(face_found=False))

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])

    def predicted_box(self, t: float, bounds: tuple[int, int] | None = None,
                      trend: bool = True) -> Box:
        """Where it should be at time ``t`` (while it is missing), extrapolating for at most
        1 s: with ``trend``, the robust line through its recent sightings with their median
        size; without, its last box moved by its velocity. The centre is kept inside
        ``bounds`` ``(width, height)`` when given."""
        x, y, w, h = self.box
        dt = min(max(0.0, t - self.last_seen_t), 1.0)
        centre = np.array([x + w / 2, y + h / 2]) + self.velocity * dt
        if trend and self.history:
            a = np.array(self.history, np.float64)
            centre = np.median(a[:, 1:3] + self.velocity * (self.last_seen_t + dt - a[:, :1]),
                               axis=0)
            w, h = (float(v) for v in np.median(a[:, 3:5], axis=0))
        if bounds is not None:
            centre = np.clip(centre, 0.0, np.array(bounds, np.float64))
        return (float(centre[0] - w / 2), float(centre[1] - h / 2), w, h)

    def predictions(self, t: float, bounds: tuple[int, int] | None = None
                    ) -> list[tuple[Box, np.ndarray | None]]:
        """The places a missing face may be found at time ``t``: ``(box, eyes)`` of the
        trend of its sightings (right after a drifting, covered fit) and of its last
        sighting moved by its velocity (right after a sudden move, e.g. out of the
        picture); the eyes are its last eyes moved with the box."""
        out = []
        x0, y0, w0, h0 = self.box
        for trend in (True, False):
            box = self.predicted_box(t, bounds, trend)
            eyes = None
            if self.eyes is not None:
                x1, y1, w1, h1 = box
                eyes = self.eyes + np.array([x1 + w1 / 2 - x0 - w0 / 2,
                                             y1 + h1 / 2 - y0 - h0 / 2])
            out.append((box, eyes))
        return out


def _eyes(obs_or_det: FaceObservation | Detection) -> np.ndarray | None:
    pts = obs_or_det.named_points if isinstance(obs_or_det, FaceObservation) else \
        obs_or_det.points
    if "left_eye" in pts and "right_eye" in pts:
        return np.array([pts["left_eye"], pts["right_eye"]], np.float64)
    return None


def _robust_velocity(history: deque[tuple[float, float, float, float, float]]) -> np.ndarray:
    """Theil–Sen velocity ``(vx, vy)`` of sightings ``(t, x, y, …)``: the median of the
    velocities between every pair (a few drifted sightings do not move it)."""
    if len(history) < 2:
        return np.zeros(2)
    a = np.array(history, np.float64)
    i, j = np.triu_indices(len(a), 1)
    dt = a[j, 0] - a[i, 0]
    ok = dt > 1e-6
    if not ok.any():
        return np.zeros(2)
    v = (a[j, 1:3] - a[i, 1:3])[ok] / dt[ok, None]
    return np.median(v, axis=0)


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
        ids = sorted(self.tracks)
        used: set[int] = set()
        bounds = (frame.image.shape[1], frame.image.shape[0])
        if ids:
            cost = np.full((len(ids), len(dets)), 1e6)
            for i, fid in enumerate(ids):
                tr = self.tracks[fid]
                obs = tr.observation
                places = [(obs.box, _eyes(obs))] if obs.face_found and obs.box is not None \
                    else tr.predictions(t, bounds)
                for j, det in enumerate(dets):
                    c = min(match_cost(box, eyes, det) for box, eyes in places)
                    if c <= MAX_COST:
                        cost[i, j] = c
            rows, cols = assign(cost)
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
        x, y, w, h = obs.box
        hist = tr.history
        if not hist or t > hist[-1][0]:
            hist.append((t, x + w / 2, y + h / 2, w, h))
        while hist and t - hist[0][0] > VELOCITY_WINDOW_S:
            hist.popleft()
        tr.velocity = _robust_velocity(hist)
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
                # a track dropped as a duplicate earlier in this loop has no box any more
                if a.observation.box is None or b.observation.box is None:
                    continue
                if b.face_id in self.tracks and a.face_id in self.tracks and \
                        iou(a.observation.box, b.observation.box) > DUPLICATE_IOU:
                    b.tracker.reset()
                    b.observation = FaceObservation(face_found=False, n_faces=self._n_faces)
