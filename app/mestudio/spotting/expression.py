"""The spotter used on real faces: expressions as held displacements from the face at rest,
micro-expressions from the flow-threshold detector, talking and other movement left out.

Why (SPOTTING.md, "Real faces"; measured on the annotated real clips with
``mestudio spot-eval --annotations``): the flow-threshold detector of
:mod:`mestudio.spotting.spotter` adapts its threshold to the recent activity, so a long
movement blinds it, a face that is expressive while it calibrates never gets an event, and
talking (which moves the mouth and brows as much as many expressions) gives a stream of
events. This detector keeps what it does well (micro-expressions: short bumps over the
noise of a still face) and finds the rest differently:

1. **Regions.** The per-ROI signal (displacement from the reference frame, pixels of a
   128-px crop, head motion removed) is averaged per part: brows, nose wings/cheeks,
   mouth corners (the ROI name before ``_``).
2. **Held displacement.** A morphological *opening* in time (a running minimum then a
   running maximum over ``expression_open_s``) keeps plateaus at least that long at their
   height and removes shorter bumps: syllables, blinks leaking into the brows, tracker
   jitter. It is centred, so a sample is final ``expression_open_s`` after it was seen.
3. **Rest, never activity.** Each part's rest level is a low percentile
   (``rest_quantile``) of its raw signal over the last ``rest_window_s`` seconds: the face
   at rest, which activity cannot raise as long as the face rests a tenth of the time.
   Heights are counted in a fixed unit (``expression_unit_px``, scaled by the
   sensitivity), not in the spread of recent samples, so a long expression never raises
   the bar for the next one. Detection starts ``calibration_s`` after the face appears.
4. **Expression or movement.** A stretch where some part rises above its rest by more than
   ``expression_offset`` units is *activity*; it is an *expression* when one part rises by
   its own factor (``expression_k_brows`` / ``_cheeks`` / ``_mouth`` units): expressions
   move the cheeks and nose wings (smiles, disgust) or hold the mouth far from rest,
   while talking moves the mouth corners and brows moderately and the cheeks little. Below
   that the face is "moving" (talking, head motion): shown as such, never an event.
5. **One event per expression.** Onset and offset are where the held displacement crosses
   ``expression_offset``; activity resuming within ``expression_merge_s`` continues the
   event; a valley that falls below ``expression_split`` of the smaller of the two peaks
   around it (each side at least ``expression_min_s`` long) ends one expression and starts
   the next. Each part must be an expression on its own to be emitted. An expression is
   also cut where the face's *configuration* changes without a return to rest (a grin
   becoming a pout): the ROIs' displacement vectors (``RoiSignal.last_vectors``, passed to
   :meth:`ExpressionSpotter.update`) ``expression_change_s`` after a moment differ from
   those before it by ``expression_change`` times the expression's median displacement
   (:meth:`ExpressionSpotter._configuration_cuts`).
6. **Micro-expressions** come from :class:`~mestudio.spotting.spotter.OnlineSpotter`
   (unchanged, the detector tuned on planted movements): its ``micro`` events are kept
   unless they fall inside an expression found here; its ``macro`` events are replaced by
   this detector's.

Events are emitted once their offset and the merge window are final: at most the
low-pass look-ahead + ``expression_open_s + expression_merge_s`` plus one frame after the
offset (:attr:`ExpressionSpotter.delay_s`, 0.68 s by default); micro events wait for the
same decision.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from mestudio.spotting.config import SpotterConfig
from mestudio.spotting.spotter import OnlineSpotter, sensitivity_scale
from mestudio.types import SpotEvent, SpotterState

log = logging.getLogger(__name__)

ACTIVITY_WORDS = {
    "calibrating": "getting to know the face",
    "rest": "at rest",
    "moving": "talking or moving",
    "expression": "expression",
    "no_face": "no face",
}
"""What the face is doing, in words for the window (:attr:`SpotterState.activity`)."""


@dataclass
class _Obs:
    n: int
    index: int
    t: float
    g: np.ndarray                  # (P,) per-part raw displacement (px)
    segment: int
    ero: np.ndarray | None = None  # running minimum
    opened: np.ndarray | None = None
    z: np.ndarray | None = None    # (P,) height above rest in units
    s: float = 0.0                 # activity score: max z
    e: float = 0.0                 # expression score: max z / k


@dataclass
class _Open:
    """An expression in progress: its first sample, highest activity score so far, highest
    expression score, when it opened, and the lowest score since its peak."""

    start_n: int
    peak: float
    best_e: float
    t_open: float
    valley: float = math.inf
    valley_n: int = -1


def _part_of(roi: str) -> str:
    return roi.split("_", 1)[0]


class ExpressionSpotter:
    """Online spotter for real faces (module docstring); the interface of
    :class:`~mestudio.spotting.spotter.OnlineSpotter`.

    Attributes:
        state: the spotter state at the newest frame (the micro detector's signal and
            threshold, :attr:`SpotterState.activity` from this detector).
        events: every event emitted so far (emission order; ``id`` = position).
        micro: the micro-expression detector.
        delay_s: how long after its offset an event is decided, at most (plus a frame):
            the micro detector's low-pass look-ahead, the opening and the merge window.
    """

    def __init__(self, config: SpotterConfig | None = None) -> None:
        self.config = cfg = config or SpotterConfig()
        self.micro = OnlineSpotter(cfg)
        self._unit = float(cfg.expression_unit_px * sensitivity_scale(cfg))
        self._half = 0.5 * float(cfg.expression_open_s)
        self.delay_s = float(self.micro.delay_s + cfg.expression_open_s
                             + cfg.expression_merge_s)
        #: every event is emitted at most this long after its offset (three frame
        #: intervals of rounding included, at 25 fps and more)
        self.emit_within_s = self.delay_s + 0.12
        self.events: list[SpotEvent] = []
        self.state = SpotterState(state="calibrating", activity="calibrating")
        self._names: tuple[str, ...] | None = None
        self._parts: list[np.ndarray] = []
        self._k = np.ones(0)
        self._obs: deque[_Obs] = deque()
        self._n = 0
        self._segment = 0
        self._last_t: float | None = None
        self._held_micro: list[SpotEvent] = []
        self._index_now = -1
        # at most the last 4096 when nobody pops them (the live window and the kiosk do not)
        self._pending_states: deque[tuple[int, float, SpotterState]] = deque(maxlen=4096)
        self._activity: dict[int, tuple[str, float]] = {}
        #: frame index -> (timestamp, the ROIs' displacement vectors, flattened)
        self._vectors: dict[int, tuple[float, np.ndarray]] = {}
        self._e_now = 0.0
        self._reset_person()

    # ------------------------------------------------------------------------ lifecycle
    def _reset_person(self) -> None:
        self._calib_start: float | None = None
        self._rest_hist: deque[tuple[float, np.ndarray]] = deque()
        self._rest_cache: tuple[int, np.ndarray] | None = None
        self._cand: _Open | None = None
        self._closed: tuple[_Open, int] | None = None   # (event, offset n) in merge window
        self._done_n = -1          # last sample the detector has stepped over
        self._ero_next = 0         # first sample whose running minimum is not known
        self._done_t = -math.inf   # its timestamp
        self._last_end_n = -1      # no onset before this sample (previous event)
        self._armed = True
        self._activity_now = "calibrating"
        self._recent_activity: deque[tuple[float, str]] = deque()

    def reset(self) -> None:
        """Forget the person (a new source or a new face); emitted events are kept."""
        self._finish_segment(close_open=False)
        self.micro.reset()
        self._obs.clear()
        self._vectors.clear()
        self._last_t = None
        self._reset_person()
        self.state = SpotterState(state="calibrating", activity="calibrating")

    @property
    def roi_names(self) -> tuple[str, ...]:
        return self._names or ()

    # --------------------------------------------------------------------------- public
    def update(self, index: int, timestamp_s: float, signal: dict[str, float] | None,
               vectors: np.ndarray | None = None) -> list[SpotEvent]:
        """Feed one frame (see :meth:`OnlineSpotter.update`). This detector reads the micro
        detector's low-passed samples once they are final (a few frames later).
        ``vectors``: the ROIs' displacement vectors (``RoiSignal.last_vectors``), with
        which an expression is split where the face's configuration changes."""
        self._index_now = int(index)
        if vectors is not None and signal is not None:
            self._vectors[int(index)] = (float(timestamp_s),
                                        np.asarray(vectors, np.float64).reshape(-1))
            while len(self._vectors) > 4096:  # bounded: longer than any event
                del self._vectors[next(iter(self._vectors))]
        micro = self.micro.update(index, timestamp_s, signal)
        out = self._take_final()
        if signal is None:
            out += self._finish_segment(close_open=False)
            if self.micro._calib_start is None:  # the micro detector re-learns: so do we
                self._reset_person()
            self._activity_now = "no_face"
        elif self._last_t is not None:  # up to the newest final sample
            out += self._advance(self._last_t, force=False)
        self._held_micro += micro
        out += self._release_micro(force=False)
        self._refresh_state()
        return out

    def _take_final(self) -> list[SpotEvent]:
        """Take the micro detector's final (low-passed) samples as this detector's input."""
        cfg = self.config
        out: list[SpotEvent] = []
        for index, t, st in self.micro.pop_finalized():
            self._pending_states.append((index, t, st))
            if st.state == "no_face" or not st.signal:
                continue
            if self._last_t is not None and (t < self._last_t or t - self._last_t
                                             > cfg.gap_break_s):
                out += self._finish_segment(close_open=False)
                if t < self._last_t or t - self._last_t >= cfg.recalibrate_after_s:
                    self._reset_person()
            self._last_t = t
            if self._names is None:
                self._setup(tuple(st.signal))
            vals = np.array([float(st.signal.get(k, 0.0)) for k in self._names or ()])
            vals = np.nan_to_num(vals, nan=0.0, posinf=0.0, neginf=0.0)
            g = np.array([vals[p].mean() if p.size else 0.0 for p in self._parts])
            if self._calib_start is None:
                self._calib_start = t
            self._obs.append(_Obs(self._n, int(index), t, g, self._segment))
            self._n += 1
            self._rest_hist.append((t, g))
            while self._rest_hist and self._rest_hist[0][0] < t - cfg.rest_window_s:
                self._rest_hist.popleft()
        return out

    def finish(self) -> list[SpotEvent]:
        """End of stream: decide everything still open (see :meth:`OnlineSpotter.finish`)."""
        micro = self.micro.finish()
        out = self._take_final()
        out += self._finish_segment(close_open=True)
        self._held_micro += micro
        out += self._release_micro(force=True)
        self._refresh_state()
        return out

    def pop_finalized(self) -> list[tuple[int, float, SpotterState]]:
        """``(frame index, timestamp_s, state)`` of the frames whose state is final (the
        micro detector's low-passed signal and this detector's activity)."""
        out: list[tuple[int, float, SpotterState]] = []
        while self._pending_states:
            index, t, st = self._pending_states[0]
            known = self._activity.pop(index, None)
            if known is None and t > self._done_t and self._last_t is not None:
                break  # not decided yet
            self._pending_states.popleft()
            act, e = known if known is not None else (self._activity_now, self._e_now)
            out.append((index, t, self._view(st, act, e)))
        return out

    # ------------------------------------------------------------------------- internals
    def _setup(self, names: tuple[str, ...]) -> None:
        cfg = self.config
        self._names = names
        parts = list(dict.fromkeys(_part_of(n) for n in names))
        self._parts = [np.array([i for i, n in enumerate(names) if _part_of(n) == p])
                       for p in parts]
        factors = {"brow": cfg.expression_k_brows, "nose": cfg.expression_k_cheeks,
                   "mouth": cfg.expression_k_mouth}
        self._k = np.array([factors.get(p, cfg.expression_k_mouth) for p in parts])

    def _rest(self) -> np.ndarray:
        """Each part's rest level (computed once per new sample)."""
        if self._rest_cache is None or self._rest_cache[0] != self._n:
            g = np.array([x for _, x in self._rest_hist])
            self._rest_cache = (self._n, np.percentile(g, self.config.rest_quantile, axis=0))
        return self._rest_cache[1]

    def _advance(self, t_now: float, force: bool) -> list[SpotEvent]:
        """Compute the running minimum and the opening of the samples old enough (each
        once, in order), then step the detector over the newly opened ones."""
        out: list[SpotEvent] = []
        if not self._obs:
            return out
        h = self._half + 1e-9
        obs = self._obs
        first, last = obs[0].n, obs[-1].n

        def window(i: int, o: _Obs) -> list[_Obs]:
            return [q for q in itertools.islice(obs, max(0, i - 64), min(len(obs), i + 65))
                    if q.segment == o.segment and abs(q.t - o.t) <= h]

        n = max(self._ero_next, first)
        while n <= last:
            o = obs[n - first]
            if o.ero is None:
                if not (force or t_now - o.t >= h or o.segment != self._segment):
                    break
                o.ero = np.min([q.g for q in window(n - first, o)], axis=0)
            n += 1
        self._ero_next = n
        rest = self._rest() if self._rest_hist else None
        n = max(self._done_n + 1, first)
        while n < self._ero_next:
            o = obs[n - first]
            if o.opened is not None:  # stepped before the person was forgotten
                n += 1
                continue
            if not (force or t_now - o.t >= 2 * h or o.segment != self._segment):
                break
            o.opened = np.max([q.ero for q in window(n - first, o) if q.ero is not None],
                              axis=0)
            base = rest if rest is not None else o.g
            o.z = (o.opened - base) / self._unit
            o.s = float(o.z.max()) if o.z.size else 0.0
            o.e = float((o.z / self._k).max()) if o.z.size else 0.0
            out += self._step(o, self._index_now)
            n += 1
        horizon = self.config.max_duration_s + self.config.expression_open_s + 2.0
        while len(self._obs) > 2 and self._obs[0].t < t_now - horizon \
                and self._obs[0].n < self._done_n - 1:
            self._obs.popleft()
        return out

    def _obs_n(self, n: int) -> _Obs | None:
        if not self._obs or n < self._obs[0].n or n > self._obs[-1].n:
            return None
        return self._obs[n - self._obs[0].n]

    def _step(self, o: _Obs, index_now: int) -> list[SpotEvent]:
        cfg = self.config
        self._done_n, self._done_t = o.n, o.t
        off = cfg.expression_offset
        out: list[SpotEvent] = []
        calibrating = self._calib_start is None or o.t - self._calib_start < cfg.calibration_s
        if self._closed is not None:
            ev, end_n = self._closed
            end = self._obs_n(end_n)
            if end is None or o.t - end.t > cfg.expression_merge_s:
                out += self._emit(ev.start_n, end_n, index_now)
                self._closed = None
            elif o.e > 1.0 and self._armed:  # moving again within the merge window
                self._closed = None
                self._cand = ev
                ev.valley, ev.valley_n = math.inf, -1
        c = self._cand
        if c is None:
            if not self._armed and o.s <= off:
                self._armed = True
            if not calibrating and self._armed and o.e > 1.0:
                start = o.n
                while True:
                    prev = self._obs_n(start - 1)
                    if (prev is None or prev.segment != o.segment or prev.n <= self._last_end_n
                            or prev.opened is None or prev.s <= off
                            or (self._calib_start is not None
                                and prev.t - self._calib_start < cfg.calibration_s)):
                        break
                    start -= 1
                self._cand = _Open(start, o.s, o.e, o.t)
        else:
            c.best_e = max(c.best_e, o.e)
            if o.s <= off:
                self._cand = None
                self._closed = (c, o.n - 1)
                self._last_end_n = o.n - 1
            else:
                if o.s < c.valley:
                    c.valley, c.valley_n = o.s, o.n
                v = self._obs_n(c.valley_n) if c.valley_n >= 0 else None
                first_obs = self._obs_n(c.start_n)
                if (v is not None and first_obs is not None
                        and c.valley < cfg.expression_split * min(c.peak, o.s)
                        and v.t - first_obs.t >= cfg.expression_min_s
                        and o.t - v.t >= cfg.expression_min_s):
                    # A valley between two peaks: one expression ends, the next begins.
                    out += self._emit(c.start_n, c.valley_n - 1, index_now)
                    self._last_end_n = c.valley_n - 1
                    after = list(self._span(c.valley_n, o.n))
                    self._cand = _Open(c.valley_n, max(q.s for q in after),
                                       max(q.e for q in after), v.t)
                    c = self._cand
                elif o.s > c.peak:
                    c.peak = o.s
                    c.valley, c.valley_n = math.inf, -1
            if self._cand is not None and o.t - self._cand.t_open > cfg.max_duration_s:
                out += self._emit(self._cand.start_n, o.n, index_now)
                self._cand = None
                self._last_end_n = o.n
                self._armed = False
        act = ("calibrating" if calibrating else
               "expression" if (self._cand is not None and self._cand.best_e > 1.0)
               or o.e > 1.0 else "moving" if o.s > off else "rest")
        self._activity[o.index] = (act, o.e)
        if len(self._activity) > 4096:  # bounded when nobody pops the states
            del self._activity[next(iter(self._activity))]
        self._e_now = o.e
        self._recent_activity.append((o.t, act))
        while self._recent_activity and self._recent_activity[0][0] < o.t - 10.0:
            self._recent_activity.popleft()
        self._activity_now = act
        return out

    def _span(self, a: int, b: int):  # noqa: ANN202 - a generator of _Obs
        for n in range(a, b + 1):
            q = self._obs_n(n)
            if q is not None and q.opened is not None:
                yield q

    def _emit(self, start_n: int, end_n: int, index_now: int) -> list[SpotEvent]:
        """The stretch of samples ``start_n..end_n`` as an event (none when it never rose
        to an expression or is too short), or as several where the face's configuration
        changes (:meth:`_configuration_cuts`)."""
        onset, offset = self._obs_n(start_n), self._obs_n(end_n)
        if onset is None or offset is None or offset.index <= onset.index:
            return []
        span = list(self._span(start_n, end_n))
        if not span or max(q.e for q in span) <= 1.0:
            return []
        cuts = self._configuration_cuts(span)
        if not cuts:
            return self._emit_one(span, index_now)
        out: list[SpotEvent] = []
        bounds = [0, *cuts, len(span)]
        for a, b in itertools.pairwise(bounds):
            out += self._emit_one(span[a:b], index_now, kind="macro")
        return out

    def _configuration_cuts(self, span: list[_Obs]) -> list[int]:
        """Where, inside one expression, the face goes from one configuration to the next
        without returning to rest: positions ``k`` of ``span`` where the ROIs' displacement
        vectors (median of 5 frames) ``expression_change_s`` after ``k`` differ from those
        ``expression_change_s`` before it by more than ``expression_change`` times the
        expression's median displacement; the largest changes first, each piece at least
        ``expression_change_min_s`` long. None without the vectors of every sample."""
        cfg = self.config
        if cfg.expression_change <= 0 or len(span) < 4:
            return []
        got = [self._vectors.get(q.index) for q in span]
        if any(g is None for g in got):
            return []
        times = np.array([q.t for q in span])
        vec = np.stack([g[1] for g in got if g is not None])
        k5 = [np.median(vec[max(0, i - 2):i + 3], axis=0) for i in range(len(vec))]
        v = np.stack(k5)
        ref = float(np.median(np.linalg.norm(v, axis=1)))
        if ref <= 1e-6:
            return []
        w, least = cfg.expression_change_s, cfg.expression_change_min_s - 1e-9
        change = np.zeros(len(v))
        for i in range(len(v)):
            lo = int(np.searchsorted(times, times[i] - w - 1e-9))
            hi = int(np.searchsorted(times, times[i] + w + 1e-9)) - 1
            if lo < i < hi:
                change[i] = float(np.linalg.norm(v[hi] - v[lo])) / ref
        cuts: list[int] = []
        for i in np.argsort(-change, kind="stable"):
            if change[i] < cfg.expression_change:
                break
            if times[i] - times[0] < least or times[-1] - times[i - 1] < least:
                continue
            if all(abs(times[i] - times[j]) >= least for j in cuts):
                cuts.append(int(i))
        return sorted(cuts)

    def _emit_one(self, span: list[_Obs], index_now: int,
                  kind: str | None = None) -> list[SpotEvent]:
        """One event of the samples ``span`` (``kind`` None: by its duration)."""
        cfg = self.config
        onset, offset = span[0], span[-1]
        apex = max(span, key=lambda q: q.s)
        duration = offset.t - onset.t
        if duration < cfg.min_duration_s - 1e-9:
            return []
        # the part furthest above its expression factor at the apex; its first ROI names it
        part = int(np.argmax(apex.z / self._k)) if apex.z is not None and self._parts else 0
        rois = self._parts[part] if self._parts else np.zeros(0, int)
        names = self._names or ()
        if kind is None:
            kind = "micro" if duration <= cfg.micro_max_s + 1e-9 else "macro"
        ev = SpotEvent(onset=onset.index, apex=apex.index, offset=offset.index,
                       onset_s=onset.t, apex_s=apex.t, offset_s=offset.t,
                       kind=kind,  # type: ignore[arg-type]
                       roi=names[int(rois[0]) if rois.size else 0] if names else "",
                       peak=float(apex.opened[part]) if apex.opened is not None else 0.0,
                       emitted_index=int(index_now), id=len(self.events))
        self.events.append(ev)
        log.debug("expression %d: %s %d-%d-%d (%.2f s)", ev.id, ev.kind, ev.onset, ev.apex,
                  ev.offset, duration)
        return [ev]

    def _finish_segment(self, close_open: bool) -> list[SpotEvent]:
        t = self._obs[-1].t if self._obs else 0.0
        idx = self._obs[-1].index if self._obs else -1
        out = self._advance(t, force=True) if self._obs else []
        if self._cand is not None:
            c, self._cand = self._cand, None
            if close_open and self._obs:
                out += self._emit(c.start_n, self._obs[-1].n, idx)
        if self._closed is not None:
            c, end_n = self._closed
            self._closed = None
            out += self._emit(c.start_n, end_n, idx)
        self._segment += 1
        self._armed = True
        self._done_t = math.inf if close_open else self._done_t
        return out

    def _still_before(self, t: float) -> bool:
        """Whether the face was at rest (no activity above ``expression_offset``) for
        ``still_before_s`` seconds before ``t``, as far as this detector has seen."""
        span = self.config.still_before_s
        seen = [a for ts, a in self._recent_activity if t - span - 1e-9 <= ts < t]
        return bool(seen) and self._recent_activity[0][0] <= t - span + 0.05 and all(
            a in ("rest", "calibrating") for a in seen)

    def _release_micro(self, force: bool) -> list[SpotEvent]:
        """Events of the micro detector, once this detector has decided past their offset:
        micro events unless an expression found here covers them; macro events only on a
        face that was still before them (a planted or posed movement on a still face, which
        talking never is) and not covered either."""
        out: list[SpotEvent] = []
        keep: list[SpotEvent] = []
        for ev in self._held_micro:
            if not (force or self._done_t >= ev.offset_s):
                keep.append(ev)  # not decided yet
                continue
            if ev.kind != "micro" and not self._still_before(ev.onset_s):
                continue
            covered = any(e.onset <= ev.offset and ev.onset <= e.offset for e in self.events)
            if self._cand is not None:
                c = self._obs_n(self._cand.start_n)
                covered = covered or (c is not None and c.index <= ev.offset)
            if covered:
                log.debug("micro event %d-%d inside an expression: dropped", ev.onset,
                          ev.offset)
                continue
            ev = replace(ev, id=len(self.events), emitted_index=max(ev.emitted_index,
                                                                    self._index_now))
            self.events.append(ev)
            out.append(ev)
        self._held_micro = keep
        return out

    def _view(self, st: SpotterState, activity: str, e: float) -> SpotterState:
        """The micro detector's state ``st`` as the plot and ``frames.csv`` show it: this
        detector's activity, and one score for both detectors in pixels against one
        threshold (the height that makes the cheeks an expression; baseline 0, the face at
        rest): ``combined = threshold * max(expression score, micro score / k)``. It is
        above the threshold at the apex of every event; talking can cross it without an
        event (a movement the micro detector saw that is not an expression)."""
        if st.state == "no_face":
            return replace(st, activity="no_face")
        thr = self._unit * self.config.expression_k_cheeks
        span = st.threshold - st.baseline
        micro = (st.combined - st.baseline) / span if math.isfinite(span) and span > 0 else 0.0
        return replace(st, activity=activity, combined=float(max(e, micro, 0.0) * thr),
                       threshold=float(thr), baseline=0.0)

    def _provisional(self) -> float:
        """The expression score at the newest final sample, from the samples seen so far
        (a one-sided running minimum instead of the centred opening): for the live view."""
        if not self._obs or not self._rest_hist or not self._parts:
            return 0.0
        newest = self._obs[-1]
        near = [q.g for q in itertools.takewhile(
            lambda q: q.segment == newest.segment and newest.t - q.t <= self._half + 1e-9,
            reversed(self._obs))]
        z = (np.min(near, axis=0) - self._rest()) / self._unit
        return float((z / self._k).max()) if z.size else 0.0

    def _refresh_state(self) -> None:
        st = self.micro.state
        if st.state == "no_face" or self._calib_start is None:
            self.state = replace(st, activity="no_face" if st.state == "no_face"
                                 else self._activity_now)
            return
        self.state = self._view(st, self._activity_now, self._provisional())
