"""The kiosk pipeline without a window: a :class:`~mestudio.engine.live.LiveSession` → event log
(no Qt).

:class:`KioskSession` is what ``mestudio kiosk`` runs in its worker thread and what
``mestudio bench soak`` runs headless for hours: the same live engine as the live window
(capture, pacing, the pipeline built by :meth:`Pipeline.from_config
<mestudio.engine.pipeline.Pipeline.from_config>`), with the event log as its consumer. It keeps nothing of the pictures it
processes: frames go through the tracker and the spotter and are dropped; the only thing
written anywhere is one row per event in the SQLite event log (see
:mod:`mestudio.analytics.eventlog`).

What is logged:

* every spotted micro- and macro-expression (kind, emotion, confidence, duration). A
  micro-expression is logged when its emotion arrives from the recogniser, or without an
  emotion after ``KioskConfig.prediction_wait_s`` (or at once when no model is loaded);
* every visit: a face that stayed in view at least ``visit_min_s`` seconds, logged with its
  duration once no face was seen for ``visit_gap_s`` seconds. With every face analysed
  (``tracker.faces = "all"``) visits are counted by face track: each track that stays at
  least ``visit_min_s`` is a visit, so several people in view at once are several visits;
  a visit ends when its track ends (the face left) or its face was not seen for
  ``visit_gap_s``.

Events and visits carry the face's track number within the run (``face`` in the log: 1, 2,
... never reused in a run; 0 with one face analysed): a counter, not an identity.

A damaged event log never stops the kiosk: it is moved aside
(``events.sqlite.corrupt-<time>``) and a fresh one is started, at start-up or when the damage
shows while running; :attr:`KioskSession.notices` and ``KioskStatus.notice`` say so (the
operator's status line). An event that cannot be written for another reason (disk full) is
logged as an error and the kiosk goes on.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from mestudio.analytics.eventlog import EventLog, EventLogError
from mestudio.config import AppConfig
from mestudio.engine.live import LiveSession, SessionListener, default_capture
from mestudio.types import FrameResult, SpotEvent

log = logging.getLogger(__name__)


class VisitTracker:
    """Turns per-frame face presence into visits (wall-clock seconds).

    Args:
        min_s: shortest presence that counts as a visit (seconds).
        gap_s: absence that ends a visit (seconds); shorter gaps (a turned head, a missed
            detection) do not split it.
    """

    def __init__(self, min_s: float = 1.0, gap_s: float = 2.0) -> None:
        self.min_s = float(min_s)
        self.gap_s = float(gap_s)
        self._start: float | None = None
        self._last_seen: float | None = None

    @property
    def active(self) -> bool:
        """A face is (or was until less than ``gap_s`` ago) in view for at least
        ``min_s``."""
        return (self._start is not None and self._last_seen is not None
                and self._last_seen - self._start >= self.min_s)

    def update(self, face_found: bool, now: float) -> float | None:
        """Feed one frame at wall time ``now`` (seconds); returns the duration of a visit
        that just ended, else None."""
        ended = None
        if self._last_seen is not None and now - self._last_seen >= self.gap_s:
            ended = self._close()
        if face_found:
            if self._start is None:
                self._start = now
            self._last_seen = now
        return ended

    def _close(self) -> float | None:
        assert self._start is not None and self._last_seen is not None
        duration = self._last_seen - self._start
        self._start = self._last_seen = None
        return duration if duration >= self.min_s else None

    def finish(self) -> float | None:
        """End of session: the duration of the visit in progress (if it counts)."""
        if self._start is None:
            return None
        return self._close()


class FaceVisits:
    """Visits counted per face track (every-face mode; one :class:`VisitTracker` each).

    In the single-face mode the one face is track 0 and this behaves exactly as one
    :class:`VisitTracker`. A track that is no longer listed (its face left and the tracker
    ended it) ends its visit at once.

    Args:
        min_s, gap_s: as :class:`VisitTracker`.
    """

    def __init__(self, min_s: float = 1.0, gap_s: float = 2.0) -> None:
        self.min_s = float(min_s)
        self.gap_s = float(gap_s)
        self._tracks: dict[int, VisitTracker] = {}

    @property
    def active(self) -> bool:
        """At least one visit counts already (not logged yet)."""
        return any(t.active for t in self._tracks.values())

    @property
    def active_count(self) -> int:
        """Visits in progress that count already (people in view long enough)."""
        return sum(t.active for t in self._tracks.values())

    def update(self, faces: dict[int, bool], now: float) -> list[tuple[int, float]]:
        """Feed one frame: ``{track number: face found}`` of every track the frame lists.
        Returns ``(track, duration_s)`` of the visits that ended."""
        ended: list[tuple[int, float]] = []
        for fid in [f for f in self._tracks if f not in faces]:
            dur = self._tracks.pop(fid).finish()  # the track ended: the face left
            if dur is not None:
                ended.append((fid, dur))
        for fid, found in faces.items():
            tracker = self._tracks.get(fid)
            if tracker is None:
                if not found:
                    continue
                tracker = self._tracks[fid] = VisitTracker(self.min_s, self.gap_s)
            dur = tracker.update(found, now)
            if dur is not None:
                ended.append((fid, dur))
        return ended

    def tick(self, now: float) -> list[tuple[int, float]]:
        """No frame came: every track's face counts as not seen."""
        return self.update({fid: False for fid in self._tracks}, now)

    def finish(self) -> list[tuple[int, float]]:
        """End of session: the visits in progress that count."""
        out = [(fid, dur) for fid, t in self._tracks.items()
               if (dur := t.finish()) is not None]
        self._tracks.clear()
        return out


@dataclass
class KioskStatus:
    """What the kiosk screen shows after a frame (no picture is kept unless ``image`` is
    asked for, and it is never written anywhere).

    Attributes:
        state: ``"starting"``, ``"no_face"``, ``"watching"`` (a face is in view),
            ``"reconnecting"``, ``"ended"`` or ``"error"``.
        message: the capture's human message (e.g. "camera 0 disconnected — retrying").
        face_found: a face is tracked in this frame.
        faces: faces found in this frame (every-face mode; 0 or 1 otherwise).
        last_event: the most recent logged expression, or None.
        last_event_wall: ``time.time()`` when it was logged.
        counts: events logged today (``micro``, ``macro``, ``visit``), from the database.
        notice: a line for the operator about the event log (e.g. it was damaged and moved
            aside), or "".
        image: the current frame (BGR ``uint8`` ``(H, W, 3)``) for a live mirror, or None.
        processed, dropped: frames processed / dropped since the start.
        fps: processed frames per second.
    """

    state: str
    message: str = ""
    face_found: bool = False
    last_event: SpotEvent | None = None
    last_event_wall: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    image: np.ndarray | None = None
    processed: int = 0
    dropped: int = 0
    fps: float = 0.0
    notice: str = ""
    faces: int = 0


class _KioskListener(SessionListener):
    """The live session's callbacks the kiosk needs: the events flushed at the end of a
    stream, and a source that cannot be opened."""

    def __init__(self, kiosk: KioskSession) -> None:
        self.kiosk = kiosk
        self.flushed: list[SpotEvent] = []

    def on_flushed(self, events: list[SpotEvent]) -> None:
        self.flushed.extend(events)

    def take_flushed(self) -> list[SpotEvent]:
        out, self.flushed = self.flushed, []
        return out

    def on_source_failed(self, message: str) -> None:
        log.error("kiosk: %s", message)

    def on_failed(self, message: str) -> None:
        log.error("kiosk: %s", message)


class KioskSession:
    """Capture → pipeline → event log, one frame per :meth:`step`.

    Args:
        config: application configuration (``config.kiosk`` for the exhibit and timings).
        open_fn: opens the frame source (called again by ``LiveCapture`` to reconnect).
        db_path: the SQLite event log.
        pace: play file sources in real time (like a camera).
        pipeline: an object with ``process(frame, capture_time)``, ``finish()``,
            ``model_info``, ``close()`` (default: :class:`mestudio.engine.pipeline.Pipeline`).
        capture: a ``LiveCapture``-like object (default: ``LiveCapture(open_fn, loop=...)``).
        keep_image: put the current frame into :class:`KioskStatus` (kiosk mirror).
        clock: wall clock (seconds since the epoch), injectable for tests.
    """

    def __init__(self, config: AppConfig, open_fn: Callable[[], Any], db_path: Any, *,
                 pace: bool = True, loop: bool | None = None, pipeline: Any = None,
                 capture: Any = None, keep_image: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        kc = config.kiosk
        self.exhibit = kc.exhibit
        #: Lines for the operator about the event log (damaged and moved aside, unwritable).
        self.notices: list[str] = []
        self.elog = EventLog(db_path, exhibit=kc.exhibit, recover=True)
        if self.elog.recovered is not None:
            self._notice_recovered(self.elog.recovered)
        self.keep_image = keep_image
        self._clock = clock
        notes: list[str] = []
        if pipeline is None:
            from mestudio.engine.pipeline import Pipeline

            pipeline = Pipeline.from_config(config, finish_timeout_s=kc.prediction_wait_s)
        if not config.recognition.enabled:
            notes.append("recognition is off in the settings")
        self.pipeline = pipeline
        self.recognition = bool(config.recognition.enabled
                                and getattr(pipeline, "model_info", None) is not None)
        #: The event kinds whose emotion is awaited before logging (the recogniser's kinds).
        self.recognised_kinds: tuple[str, ...] = tuple(
            getattr(getattr(pipeline, "recognizer", None), "kinds", ("micro",)))
        self._open_fn: Callable[[], Any] = open_fn
        self._pace = pace
        self._custom_capture = capture is not None
        capture_fn: Callable[..., Any] = default_capture
        if capture is not None:
            def capture_fn(_open: Callable[[], Any], _cfg: AppConfig, **_kw: Any) -> Any:
                return capture
        self._listener = _KioskListener(self)
        self.live = LiveSession(config, listener=self._listener, capture_fn=capture_fn,
                                pipeline_fn=lambda _cfg: pipeline,
                                loop=kc.loop_file if loop is None else loop, packets=False)
        #: Visits per face track (one track, 0, in the single-face mode).
        self.visits = FaceVisits(kc.visit_min_s, kc.visit_gap_s)
        self._pending: dict[int, tuple[SpotEvent, float, float]] = {}
        self._logged_ids: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._anon_id = -1
        self.processed = 0
        self.logged = {"micro": 0, "macro": 0, "visit": 0}
        self._counts_today = self._load_counts_today()
        self.last_event: SpotEvent | None = None
        self.last_event_wall = 0.0
        self._started = False
        self._closed = False
        self.degraded = [*notes, *(getattr(pipeline, "degraded", None) or [])]
        for line in self.degraded:
            log.warning("kiosk: %s", line)

    # ---------------------------------------------------------------- counts
    def _load_counts_today(self) -> dict[str, int]:
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0,
                                                       microsecond=0).timestamp()
        self._midnight = midnight
        counts: dict[str, int] = self._with_log(
            lambda: {k: self.elog.count(k, since=midnight, exhibit=self.exhibit)
                     for k in ("micro", "macro", "visit")},
            {"micro": 0, "macro": 0, "visit": 0})
        return counts

    # ---------------------------------------------------------------- damage
    def _notice_recovered(self, aside: Any) -> None:
        line = (f"the event log was damaged: moved aside to {aside.name}; a fresh log "
                "was started")
        log.error("kiosk: %s", line)
        self.notices.append(line)

    def _with_log(self, op: Callable[[], Any], fallback: Any = None) -> Any:
        """Run an event-log operation; a damaged log is moved aside and the operation
        retried on a fresh one; any other failure is logged and ``fallback`` returned
        (the kiosk keeps running)."""
        for attempt in (1, 2):
            try:
                return op()
            except EventLogError as exc:
                if exc.damaged and attempt == 1:
                    try:
                        self._notice_recovered(self.elog.recover(str(exc)))
                        continue
                    except EventLogError as again:
                        exc = again
                line = f"event log: {exc}"
                log.error("kiosk: %s", line)
                if not self.notices or self.notices[-1] != line:
                    self.notices.append(line)
                return fallback
        return fallback  # pragma: no cover - the loop always returns

    def counts_today(self) -> dict[str, int]:
        """Events logged since local midnight (this session and earlier ones)."""
        now = self._clock()
        if now - self._midnight >= 86400:
            self._counts_today = self._load_counts_today()
        return dict(self._counts_today)

    # ---------------------------------------------------------------- logging
    def _written(self, op: Callable[[], Any]) -> bool:
        """Run an event-log write (:meth:`_with_log`); whether it was stored."""
        def write() -> bool:
            op()
            return True

        return bool(self._with_log(write, fallback=False))

    def _log(self, ev: SpotEvent, when: float) -> None:
        written = self._written(lambda: self.elog.log_spot_event(ev, exhibit=self.exhibit,
                                                                 time_unix=when))
        if ev.id >= 0:
            self._logged_ids[ev.id] = None
            while len(self._logged_ids) > 4096:  # bounded memory over days of running
                self._logged_ids.popitem(last=False)
        if written:  # counts are of what the log holds (a full disk stores nothing)
            self.logged[ev.kind] += 1
            self._counts_today[ev.kind] = self._counts_today.get(ev.kind, 0) + 1
        self.last_event = ev
        self.last_event_wall = self._clock()

    def _log_visit(self, duration_s: float, end_wall: float, face: int = 0) -> None:
        if self._written(lambda: self.elog.log("visit", duration_s=duration_s,
                                               exhibit=self.exhibit,
                                               time_unix=end_wall - duration_s, face=face)):
            self.logged["visit"] += 1
            self._counts_today["visit"] = self._counts_today.get("visit", 0) + 1

    def _handle_events(self, result: FrameResult | None, now: float,
                       updated: list[SpotEvent] | None = None) -> None:
        """Log (or hold for their emotion) the events of a frame; ``result`` None: only
        predictions that arrived while no frame came (``updated``)."""
        events = result.events if result is not None else []
        updated = result.updated_events if result is not None else (updated or [])
        stream_now = result.frame.timestamp_s if result is not None else 0.0
        for ev in events:
            # when the movement started, on the wall clock (the stream may lag behind)
            lag = min(max(stream_now - ev.onset_s, 0.0), 30.0)
            when = now - lag
            if ev.kind in self.recognised_kinds and self.recognition and ev.prediction is None:
                key = ev.id if ev.id >= 0 else self._next_anon()
                self._pending[key] = (ev, when, now)
            else:
                self._log(ev, when)
        for ev in updated:
            entry = self._pending.pop(ev.id, None)
            if entry is not None:
                self._log(ev, entry[1])
        wait = self.config.kiosk.prediction_wait_s
        for key, (ev, when, emitted) in list(self._pending.items()):
            if now - emitted >= wait:
                del self._pending[key]
                log.info("no emotion for event %d after %.1f s: logged without", ev.id, wait)
                self._log(ev, when)

    def _next_anon(self) -> int:
        self._anon_id -= 1
        return self._anon_id

    # ---------------------------------------------------------------- running
    @property
    def capture(self) -> Any:
        """The live session's capture (None before :meth:`start` and after an error)."""
        return self.live.capture

    def start(self) -> None:
        """Open the source (a camera that is not there yet is waited for)."""
        if not self._started:
            self._started = True
            make = (lambda: None) if self._custom_capture else self._open_fn
            self.live.open_callable(make, "kiosk source", is_camera=not self._pace)
            self.live.run_commands()

    def step(self, timeout: float = 0.5) -> KioskStatus:
        """Process the newest frame (waiting at most ``timeout`` seconds for one) and log
        what happened; returns the status for the screen."""
        self.start()
        result = self.live.step(timeout=timeout)
        status, message = self.live.status, self.live.message
        now = self._clock()
        if self._listener.flushed:
            self._log_flushed(self._listener.take_flushed(), now)
        if result is None:
            for fid, dur in self.visits.tick(now):
                self._log_visit(dur, now, fid)
            poll = getattr(self.pipeline, "poll_predictions", None)
            if self._pending:
                self._handle_events(None, now, list(poll()) if callable(poll) else [])
            state = {"reconnecting": "reconnecting", "ended": "ended",
                     "error": "error"}.get(status, "starting" if not self.processed
                                           else "no_face")
            return self._status(state, message, False, None)
        self.processed += 1
        face = bool(result.face.face_found)
        tracks = {f.face_id: bool(f.face.face_found) for f in (result.faces or [])}
        if not tracks:  # a pipeline that lists no faces: its one face
            tracks = {0: face}
        for fid, dur in self.visits.update(tracks, now):
            self._log_visit(dur, now, fid)
        self._handle_events(result, now)
        image = result.frame.image if self.keep_image else None
        return self._status("watching" if face else "no_face", message, face, image,
                            sum(tracks.values()))

    def _status(self, state: str, message: str, face: bool,
                image: np.ndarray | None, faces: int = 0) -> KioskStatus:
        stats = self.live.stats()
        return KioskStatus(state=state, message=message, face_found=face, faces=faces,
                           last_event=self.last_event, last_event_wall=self.last_event_wall,
                           counts=self.counts_today(), image=image, processed=self.processed,
                           dropped=stats.dropped, fps=stats.processed_fps,
                           notice=self.notices[-1] if self.notices else "")

    def _log_flushed(self, events: list[SpotEvent], now: float) -> None:
        """The events of the end of the stream (with their predictions when they came):
        held ones with their time, the others unless already logged."""
        for ev in events:
            if ev.id in self._pending:
                self._log(ev, self._pending.pop(ev.id)[1])
            elif not self._already_logged(ev):
                self._log(ev, now - max(0.0, ev.offset_s - ev.onset_s))

    def close(self) -> None:
        """Stop capturing, flush the pipeline's last events and pending ones, log the visit
        in progress, close the database. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        now = self._clock()
        if self._started:
            self.live.finish_stream()
        self._log_flushed(self._listener.take_flushed(), now)
        for ev, when, _emitted in self._pending.values():
            self._log(ev, when)
        self._pending.clear()
        for fid, dur in self.visits.finish():
            self._log_visit(dur, now, fid)
        if self._started:
            self.live.close()
        else:
            try:
                self.pipeline.close()
            except Exception as exc:  # noqa: BLE001 - closing must go on
                log.warning("closing the pipeline failed: %s", exc)
        self.elog.close()
        log.info("kiosk session closed: %d frames, logged %s", self.processed, self.logged)

    def _already_logged(self, ev: SpotEvent) -> bool:
        return ev.id >= 0 and ev.id in self._logged_ids

    def __enter__(self) -> KioskSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
