"""Online onset/apex/offset spotter over the per-ROI motion signal.

Every duration is in seconds and every window uses the frames' real timestamps, so one
configuration works from 25 to 200 fps (and with irregular frame times).

Per frame (:meth:`OnlineSpotter.update`):

1. **Low-pass.** Each ROI signal is smoothed with a Gaussian kernel in *time* whose -3 dB
   cut-off is ``lowpass_hz`` (``sigma = sqrt(ln 2) / (2 pi f_c)``, 26.5 ms at 5 Hz). The kernel
   is centred (zero phase: onsets and offsets are not shifted) and truncated at
   ``min(3 sigma, emit_delay_s / 2)`` seconds (:attr:`OnlineSpotter.delay_s`), so a sample
   is final that many seconds after it was seen.
2. **Adaptive threshold.** Per ROI, the baseline is the running median over
   ``baseline_window_s`` seconds *of samples outside events* (each sample counts for its
   frame interval, so time spent inside events does not age the baseline out; a lasting
   change such as a held expression or talking enters once its event was closed at
   ``max_duration_s``) and the noise unit is the spread of the lower half of the
   distribution (median minus the 16th percentile: one standard deviation for normal
   noise, which movements cannot inflate), at least ``min_rise / k`` pixels. Both recover
   after long movements (see "Recovery" below). Each ROI's height above its baseline in its own noise
   units is ``z``; the detector follows ``score = max_roi z`` against the threshold ``k``,
   which goes geometrically from ``threshold_k_high`` (sensitivity 0) to
   ``threshold_k_low`` (sensitivity 1); ``min_rise`` (pixels) follows the same law. So a
   noisy region (a talking mouth) raises its own threshold, not the brows'. For plots the
   state reports it in pixels: ``combined = mean baseline + score * mean unit``, threshold
   ``mean baseline + k * mean unit``. Nothing is detected during the first
   ``calibration_s`` seconds with a face (state ``"calibrating"``).
3. **Peaks.** A crossing of the threshold opens a candidate (state ``"rising"`` until its
   apex, then ``"in_event"``); its apex is the maximum. It closes when the score falls to
   ``offset_fraction * peak`` (the offset); the onset is the last sample at or below that
   level before the apex. Overlapping responses of several ROIs are one event (the score is
   their maximum). A valley between two peaks that drops to ``split_valley_fraction`` of
   the smaller peak, yet not to the offset level, **splits** the double peak into two
   events. A movement that starts again within ``merge_gap_s`` after an offset continues
   the same event (**merge**: talking, chewing and other continuous activity become one long
   event instead of a string of short ones). Events are ``"micro"`` when
   ``offset_s - onset_s <= micro_max_s``, else ``"macro"``; a candidate still open after
   ``max_duration_s`` is closed as macro, and an event that opened before the previous
   movement came back under the threshold (re-armed by a fresh rise: the face never came to
   rest) is a continuation of a long movement and is macro too, however short. An event's ``roi`` is the ROI with the largest
   ``z`` at the apex, its ``peak`` that ROI's low-passed signal (pixels).
4. **Emission.** An event is returned by the :meth:`~OnlineSpotter.update` call at which
   its offset is final and the merge window has passed: at most
   ``delay_s + merge_gap_s`` plus one frame interval after the offset, which the
   configuration keeps below ``emit_delay_s``.

Recovery after long movements (issue 15: a laugh right after a long crying movement was
missed because the threshold had climbed to 25-32 px). Two failures had to go:

* the baseline window was wall-clock time, so after a few seconds inside events it held
  only the handful of samples between them (movement samples) — it now holds
  ``baseline_window_s`` seconds of samples *outside events*, so after an event the
  person's rest is still the baseline;
* when a movement outlived its event (closed at ``max_duration_s``), its samples entered
  the window and mixed two levels: the median crept up over seconds and the spread
  (median minus 16th percentile) measured the distance between the levels, not the
  noise, so the threshold exploded and stayed up for a whole window after the movement
  ended. Now each ROI is **re-baselined on a lasting level change**: when, over the last
  ``rebaseline_s`` seconds of baseline samples, every sample stayed above the threshold
  (and steady: the newest not the lowest, i.e. not a tail dying out) after a movement
  outlived its event, or — only after such a rise — the median fell more than ``k`` units
  under the baseline with every sample under it (the long movement ended), the ROI's
  baseline and noise unit restart
  from those recent samples (the older ones are ignored for that ROI, see
  :meth:`OnlineSpotter._rebaseline`). The unit used to detect the change is the smaller of
  the window's and the recent samples' (a mixed or noisy window has an inflated one).
  Until the new window is ``baseline_window_s`` long, the ROI's noise unit is at least its
  unit at rest (recorded when it was re-baselined upwards): half a second of samples
  underestimates the spread, and on talking faces that turned syllables into false micro
  events. A fall is followed only after a rise: on a talking face the window holds the
  sub-threshold movement of speech, every half-second pause would otherwise become the new
  rest and the next syllables micro events (false micro events per minute at sensitivity 0.7
  on the looped talking clip went from 2.2 to 0.6 with this rule; 1.0 before the recovery
  work).
  So a held expression becomes the baseline half a second after its event is closed (no
  string of events while it is held), and half a second after it ends the baseline is
  back at rest: a following broad movement gets its own onset/apex/offset, a following
  micro-expression is found. Alternatives not taken: capping how fast the baseline may
  rise (a held expression would then give a string of events) or freezing it after long
  events (a new rest level, e.g. a changed head pose, would never be learnt).

Frames without a face (``signal=None``) end the current segment: samples already seen are
finalised, an event still open is dropped (never emitted half-seen), and after
``recalibrate_after_s`` without a face the baseline is learnt again.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from mestudio.spotting.config import SpotterConfig
from mestudio.types import SpotEvent, SpotterState

log = logging.getLogger(__name__)

LOW_QUANTILE = 15.87
"""Percentile one standard deviation below the median of normal noise."""

_EMIT_MARGIN_S = 0.05
"""Room left for one frame interval (25 fps: 40 ms) between the merge window and the
emission deadline."""


_MAX_SAMPLE_SPAN_S = 0.1
"""A baseline sample stands for the time since the previous frame, at most this long (a
gap in the signal does not count as rest)."""


@dataclass
class _Sample:
    n: int                 # running sample number (monotonic within the spotter)
    index: int             # source frame index
    t: float               # timestamp (s)
    values: np.ndarray     # (R,) per-ROI values (raw or low-passed), pixels
    segment: int           # segment number (no-face gaps and time jumps start a new one)
    combined: float = 0.0  # score expressed in pixels (for plots)
    baseline: float = math.nan
    threshold: float = math.nan
    z: np.ndarray | None = None     # (R,) height above the ROI baselines in noise units
    score: float = 0.0              # max of z: what the detector thresholds


@dataclass
class _Candidate:
    bound_n: int                  # the onset may not go before this sample
    peak: float                   # score at the apex
    apex_n: int
    t_open: float                 # when it opened (for max_duration_s)
    onset_n: int | None = None    # fixed onset of an event that was continued (merge)
    valley_n: int | None = None
    valley: float = math.inf
    rising: bool = True
    continued: bool = False       # opened before the previous movement came back to rest


@dataclass
class _Closed:
    """A closed event waiting for the merge window to pass before it is emitted."""

    cand: _Candidate
    onset_n: int
    offset_n: int
    t_offset: float


def threshold_factor(config: SpotterConfig) -> float:
    """The ``k`` of the threshold for ``config.sensitivity`` (noise standard deviations)."""
    s = min(1.0, max(0.0, float(config.sensitivity)))
    return float(config.threshold_k_high * (config.threshold_k_low / config.threshold_k_high)
                 ** s)


def sensitivity_scale(config: SpotterConfig) -> float:
    """How a height given at sensitivity 0.5 scales at ``config.sensitivity`` (the law of
    the threshold factor): 1 at 0.5, larger when stricter."""
    return float(threshold_factor(config) / threshold_factor(replace(config, sensitivity=0.5)))


def min_rise(config: SpotterConfig) -> float:
    """Smallest peak height above the baseline (pixels) at ``config.sensitivity``."""
    return float(config.min_rise_px * sensitivity_scale(config))


class OnlineSpotter:
    """Finds onset/apex/offset of facial movements in the ROI signal, online.

    Attributes:
        state: :class:`~mestudio.types.SpotterState` at the latest frame (the low-passed
            signal estimated from the frames seen so far; threshold, baseline and the
            detector state).
        events: every event emitted so far, in emission order (``id`` = position).
        delay_s: look-ahead of the low-pass (seconds): a sample's smoothed value, and the
            decisions about it, are final this long after it was seen.
        merge_gap_s: the merge window actually used (seconds; ``config.merge_gap_s``
            shortened if needed so that events are emitted within ``emit_delay_s``).
    """

    def __init__(self, config: SpotterConfig | None = None) -> None:
        self.config = cfg = config or SpotterConfig()
        if cfg.lowpass_hz > 0:
            self._sigma = math.sqrt(math.log(2.0)) / (2.0 * math.pi * cfg.lowpass_hz)
            self.delay_s = min(3.0 * self._sigma, 0.5 * cfg.emit_delay_s)
        else:
            self._sigma = 0.0
            self.delay_s = 0.0
        self.merge_gap_s = max(0.0, min(cfg.merge_gap_s,
                                        cfg.emit_delay_s - self.delay_s - _EMIT_MARGIN_S))
        self._k = threshold_factor(cfg)
        self._min_rise = min_rise(cfg)
        self.events: list[SpotEvent] = []
        self.n_rebaselines = 0
        self.state = SpotterState(state="calibrating")
        self._names: tuple[str, ...] | None = None
        self._n = 0
        self._segment = 0
        self._raw: deque[_Sample] = deque()
        self._unfinal: deque[_Sample] = deque()
        self._hist: deque[_Sample] = deque()
        self._finalized_out: deque[tuple[int, float, SpotterState]] = deque(maxlen=4096)
        self._last_t: float | None = None
        self._gap_start: float | None = None
        self._reset_person()

    # ------------------------------------------------------------------------ lifecycle
    def _reset_person(self) -> None:
        """Forget the baseline and start calibrating again."""
        # (timestamp, values, the frame interval it stands for) of baseline samples
        self._base: deque[tuple[float, np.ndarray, float]] = deque()
        self._base_span = 0.0
        self._base_stats: tuple[np.ndarray, np.ndarray] | None = None
        self._base_updated_t = -math.inf
        self._cut: np.ndarray | None = None   # per ROI: baseline samples start here (s)
        self._unit_floor = np.zeros(0)          # per ROI: noise unit at rest (px), NaN = none
        self._raised = np.zeros(0, bool)        # per ROI: last re-baselined upwards
        self._px_map: tuple[np.ndarray, np.ndarray] | None = None
        self._calib_start: float | None = None
        self._armed = False
        self._rearm_min = math.inf
        self._outlived = False          # a movement went on after its event was closed
        self._continuing = False
        self._closed_t = -math.inf      # offset time of the latest event
        self._cand: _Candidate | None = None
        self._closed: _Closed | None = None
        self._last_offset_n = -1
        self._detector_state = "calibrating"

    def reset(self) -> None:
        """Forget everything except the emitted events (a new person or a new source)."""
        self._end_segment(-1, close_open=False)
        self._hist.clear()
        self._last_t = None
        self._gap_start = None
        self._reset_person()
        self.state = SpotterState(state="calibrating")

    # --------------------------------------------------------------------------- public
    def update(self, index: int, timestamp_s: float, signal: dict[str, float] | None,
               vectors: np.ndarray | None = None) -> list[SpotEvent]:
        """Feed one frame.

        Args:
            index: source frame index.
            timestamp_s: the frame's timestamp (seconds); should not decrease (a decrease or
                a jump longer than ``gap_break_s`` restarts the signal).
            signal: per-ROI motion from :class:`~mestudio.spotting.signal.RoiSignal`
                (pixels), or None when no face is tracked in this frame.
            vectors: the ROIs' displacement vectors (``RoiSignal.last_vectors``); this
                detector does not use them (the expression spotter does).

        Returns:
            the events decided at this frame (usually none), each with ``emitted_index`` =
            ``index``.
        """
        cfg = self.config
        t = float(timestamp_s)
        emitted: list[SpotEvent] = []
        if signal is None:
            emitted += self._end_segment(index, close_open=False)
            if self._gap_start is None:
                self._gap_start = t
            elif t - self._gap_start >= cfg.recalibrate_after_s and self._calib_start is not None:
                log.debug("face absent for %.1f s: re-learning the baseline", t - self._gap_start)
                self._reset_person()
            self._last_t = t
            self.state = SpotterState(signal={}, combined=0.0, threshold=self.state.threshold,
                                      baseline=self.state.baseline, state="no_face")
            return emitted
        if self._last_t is not None and (t < self._last_t or t - self._last_t > cfg.gap_break_s):
            log.debug("timestamp jump %.3f -> %.3f s: new signal segment", self._last_t, t)
            emitted += self._end_segment(index, close_open=False)
            if t < self._last_t or t - self._last_t >= cfg.recalibrate_after_s:
                self._reset_person()
        self._last_t = t
        self._gap_start = None
        if self._calib_start is None:
            self._calib_start = t
        if self._names is None:
            self._names = tuple(signal)
        vals = np.array([float(signal.get(k, 0.0)) for k in self._names], dtype=np.float64)
        vals = np.nan_to_num(vals, nan=0.0, posinf=0.0, neginf=0.0)
        s = _Sample(self._n, int(index), t, vals, self._segment)
        self._n += 1
        self._raw.append(s)
        self._unfinal.append(s)
        emitted += self._finalize(t, int(index), force=False)
        self._update_live_state(t)
        return emitted

    def finish(self) -> list[SpotEvent]:
        """End of stream: finalise every sample, emit a closed event still in its merge
        window and close an event whose apex has passed (its offset is the last frame).
        Returns the events emitted by this call."""
        idx = self._unfinal[-1].index if self._unfinal else (
            self._hist[-1].index if self._hist else -1)
        return self._end_segment(idx, close_open=True)

    def pop_finalized(self) -> list[tuple[int, float, SpotterState]]:
        """``(frame index, timestamp_s, state)`` of the samples finalised since the last call,
        with their final (centred) low-passed values: what ``frames.csv`` should record
        (:attr:`state` is the newest frame's provisional view). At most the last 4096 are
        kept when nobody pops them."""
        out = list(self._finalized_out)
        self._finalized_out.clear()
        return out

    @property
    def roi_names(self) -> tuple[str, ...]:
        """ROI names in the order of the signal (known after the first face frame)."""
        return self._names or ()

    # ------------------------------------------------------------------- signal handling
    def _end_segment(self, index: int, close_open: bool) -> list[SpotEvent]:
        emitted: list[SpotEvent] = []
        if self._unfinal:
            emitted += self._finalize(self._unfinal[-1].t, index, force=True)
        if self._cand is not None:
            c = self._cand
            self._cand = None
            if close_open and not c.rising and self._hist and self._hist[-1].n > c.apex_n:
                ev = self._emit(self._close(c, self._hist[-1].n), index)
                emitted += [ev] if ev is not None else []
            else:
                log.debug("dropping an unfinished movement (apex frame %d) at a segment end",
                          self._sample(c.apex_n).index if self._hist else -1)
        if self._closed is not None:
            ev = self._emit(self._closed, index)
            emitted += [ev] if ev is not None else []
        self._raw.clear()
        self._unfinal.clear()
        self._segment += 1
        self._armed = False
        self._rearm_min = math.inf
        if self._detector_state != "calibrating":
            self._detector_state = "idle"
        return emitted

    def _smooth(self, s: _Sample) -> np.ndarray:
        """Centred Gaussian low-pass of the raw sample ``s`` over its segment."""
        if self._sigma <= 0:
            return s.values
        half = self.delay_s + 1e-9
        near = [r for r in self._raw if r.segment == s.segment and abs(r.t - s.t) <= half]
        dt = (np.array([r.t for r in near]) - s.t) / self._sigma
        w = np.exp(-0.5 * dt * dt)
        return (w[:, None] * np.array([r.values for r in near])).sum(0) / w.sum()

    def _finalize(self, t_now: float, index_now: int, force: bool) -> list[SpotEvent]:
        emitted: list[SpotEvent] = []
        while self._unfinal and (force or self._unfinal[0].t <= t_now - self.delay_s + 1e-9):
            raw = self._unfinal.popleft()
            final = _Sample(raw.n, raw.index, raw.t, self._smooth(raw), raw.segment)
            emitted += self._step(final, index_now)
            keep_from = (self._unfinal[0].t if self._unfinal else raw.t) - self.delay_s - 1e-9
            while self._raw and self._raw[0].t < keep_from:
                self._raw.popleft()
        return emitted

    def _baseline(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-ROI running median and spread ``(R,)`` each (pixels), over the samples since
        the ROI's last re-baselining (see :meth:`_rebaseline`)."""
        cfg = self.config
        # The window holds baseline_window_s seconds of samples *outside events* (each
        # counts for its frame interval), not the last baseline_window_s of wall time:
        # after a long event the baseline is still the person's rest, not a few samples.
        while len(self._base) > 1 and self._base_span - self._base[0][2] >= \
                cfg.baseline_window_s - 1e-9:
            self._base_span -= self._base[0][2]
            self._base.popleft()
        # Recomputed at most 100 times per second (bounded cost at 200 fps).
        if self._base_stats is None or t - self._base_updated_t >= 0.01:
            ts = np.fromiter((x for x, _, _ in self._base), np.float64, len(self._base))
            v = np.array([x for _, x, _ in self._base], dtype=np.float64)
            if self._cut is None or self._cut.size != v.shape[1]:
                self._cut = np.full(v.shape[1], -math.inf)
                self._unit_floor = np.full(v.shape[1], np.nan)
                self._raised = np.zeros(v.shape[1], bool)
            self._base_stats = self._stats(ts, v)
            self._base_updated_t = t
            if cfg.rebaseline_s > 0 and self._rebaseline(t, ts, v):
                self._base_stats = self._stats(ts, v)
            # Until a re-baselined ROI has a whole window of new samples, its noise unit is
            # at least its unit at rest (a few samples underestimate the spread).
            med, spread = self._base_stats
            young = (t - self._cut < cfg.baseline_window_s) & np.isfinite(self._unit_floor)
            if young.any():
                self._base_stats = (med, np.where(young, np.maximum(spread, self._unit_floor),
                                                  spread))
        return self._base_stats

    def _stats(self, ts: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Median and spread (median minus the 16th percentile: one standard deviation for
        normal noise, from the lower half only, which movements cannot inflate) of the
        baseline samples ``v`` ``(N, R)`` taken at ``ts``, each ROI from its last cut on."""
        assert self._cut is not None
        if ts.size and float(self._cut.max()) > ts[0]:
            masked = np.where(ts[:, None] >= self._cut[None, :], v, np.nan)
            p16, med = np.nanpercentile(masked, (LOW_QUANTILE, 50.0), axis=0)
        else:
            p16, med = np.percentile(v, (LOW_QUANTILE, 50.0), axis=0)
        return med, med - p16

    def _rebaseline(self, t: float, ts: np.ndarray, v: np.ndarray) -> bool:
        """Restart the baseline of the ROIs whose level changed for good (module docstring,
        "Recovery"): over the last ``rebaseline_s`` seconds of baseline samples, the median
        stayed above the threshold (a long movement outlived its event) or, for a ROI
        re-baselined upwards, every sample stayed under the lower noise band (that movement
        ended). Their baseline then
        holds those recent samples only. Returns True when a ROI was re-baselined."""
        cfg = self.config
        assert self._cut is not None and self._base_stats is not None
        span = cfg.rebaseline_s
        recent = ts >= t - span - 1e-9
        n_recent = int(recent.sum())
        if n_recent < 3 or n_recent == ts.size or ts[recent][0] > t - 0.8 * span:
            return False  # nothing older to forget, or the recent samples cover too little
        med, spread = self._base_stats
        r = v[recent]
        r_p16, r_med = np.percentile(r, (LOW_QUANTILE, 50.0), axis=0)
        # The smaller of the two noise units: a window that mixes two levels (or a noisy
        # movement) has an inflated one, the other level's is the right scale.
        unit = np.maximum(np.minimum(spread, r_med - r_p16), self._min_rise / self._k)
        jump = self._k * unit
        # Up only for a movement that outlived its event (closed at max_duration_s, or no
        # return under the threshold for as long): not for the decaying tail of an event.
        outlived = self._outlived or (not self._armed and t - self._closed_t >= cfg.max_duration_s)
        # ... and steady: every sample above the threshold, the newest not the lowest
        # (a movement still dying out is left alone).
        up = (r.min(axis=0) - med > jump) & (r[-1] >= r_p16) & outlived
        down = (med - r_med > jump) & (r.max(axis=0) < med) & self._raised
        shift = (up | down) & (self._cut < t - span)
        if not shift.any():
            return False
        # The unit at rest, kept as a floor for the new window: the window's unit before a
        # rise (the person at rest), and no more than that before a fall.
        pre = np.maximum(spread, self._min_rise / self._k)
        self._unit_floor = np.where(up & shift, pre, np.where(
            down & shift, np.fmin(self._unit_floor, pre), self._unit_floor))
        self._cut[shift] = float(ts[recent][0])
        self._raised = np.where(shift, up, self._raised)
        self.n_rebaselines += 1
        log.debug("t=%.2f s: re-baselining %s (%s)", t,
                  ", ".join(n for n, k in zip(self._names or (), shift, strict=False) if k),
                  "level rose" if bool((up & shift).any()) else "level fell")
        return True

    def _sample(self, n: int) -> _Sample:
        return self._hist[n - self._hist[0].n]

    # ------------------------------------------------------------------------- detector
    def _step(self, s: _Sample, index_now: int) -> list[SpotEvent]:
        """Advance the detector by one final sample ``s`` (``index_now``: the frame being
        processed, i.e. the emission frame of whatever is decided now)."""
        cfg = self.config
        # Samples inside an event are left out of the baseline, so events do not move it;
        # a lasting change (a held expression, talking) enters it once the event has been
        # closed at max_duration_s.
        if self._cand is None or self._base_stats is None:
            dt = min(max(s.t - self._hist[-1].t, 0.0), _MAX_SAMPLE_SPAN_S) if self._hist else 0.0
            self._base.append((s.t, s.values, dt))
            self._base_span += dt
            med, spread = self._baseline(s.t)
        else:
            med, spread = self._base_stats
        # Each ROI in its own noise units (at least min_rise / k pixels, so that the
        # threshold is never below min_rise): a noisy ROI cannot dominate the others.
        unit = np.maximum(np.maximum(spread, self._min_rise / self._k), 1e-6)
        s.z = (s.values - med) / unit
        s.score = float(s.z.max()) if s.z.size else 0.0
        b_px, u_px = float(med.mean()), float(unit.mean())
        s.combined = b_px + u_px * s.score
        s.baseline = b_px
        s.threshold = b_px + self._k * u_px
        self._px_map = (med, unit)
        self._hist.append(s)
        horizon = cfg.max_duration_s + cfg.baseline_window_s + 1.0
        while len(self._hist) > 2 and self._hist[0].t < s.t - horizon:
            self._hist.popleft()
        emitted: list[SpotEvent] = []
        if self._closed is not None and s.t - self._closed.t_offset > self.merge_gap_s:
            ev = self._emit(self._closed, index_now)  # nothing followed: emit it
            emitted += [ev] if ev is not None else []
        if self._calib_start is None or s.t - self._calib_start < cfg.calibration_s:
            self._detector_state = "calibrating"
        else:
            emitted += self._detect(s, index_now)
        self._finalized_out.append((s.index, s.t, self._state_of(s, s.values)))
        return emitted

    def _detect(self, s: _Sample, index_now: int) -> list[SpotEvent]:
        cfg = self.config
        y, thr = s.score, self._k
        if self._cand is None:
            if not self._armed:
                # After an event, a new one needs the score back under the threshold or a
                # fresh rise of a whole threshold from its lowest point since.
                self._rearm_min = min(self._rearm_min, y)
                self._armed = y <= thr or y - self._rearm_min >= thr
                # Re-armed by a fresh rise without the signal coming back under the
                # threshold: the movement never stopped (continuation, never micro).
                self._continuing = self._armed and y > thr
                if self._armed:
                    self._outlived = False
            if not (self._armed and y > thr):
                self._detector_state = "idle" if self._closed is None else "in_event"
                return []
            if self._closed is not None:  # moving again within merge_gap_s: same event
                closed, self._closed = self._closed, None
                c = closed.cand
                c.onset_n, c.valley, c.valley_n = closed.onset_n, math.inf, None
                c.rising = y > c.peak
                if c.rising:
                    c.peak, c.apex_n = y, s.n
                self._cand = c
            else:
                self._cand = _Candidate(
                    bound_n=max(self._last_offset_n + 1, self._segment_start_n(s)),
                    peak=y, apex_n=s.n, t_open=s.t, continued=self._continuing)
            self._detector_state = "rising" if self._cand.rising else "in_event"
            return []
        emitted: list[SpotEvent] = []
        c = self._cand
        if y > c.peak:
            c.peak, c.apex_n, c.rising = y, s.n, True
            c.valley, c.valley_n = math.inf, None
            self._detector_state = "rising"
        else:
            c.rising = False
            self._detector_state = "in_event"
            if y <= cfg.offset_fraction * c.peak:
                # Fell to the offset level: closed, emitted once merge_gap_s has passed.
                self._cand = None
                self._closed = self._close(c, s.n)
                return []
            if y < c.valley:
                c.valley, c.valley_n = y, s.n
            elif c.valley_n is not None:
                v = self._sample(c.valley_n)
                if s.t - v.t > cfg.emit_delay_s - self.delay_s - _EMIT_MARGIN_S:
                    # Too late to end an event at this valley and still emit it in time.
                    c.valley, c.valley_n = y, s.n
                elif y > thr and c.valley <= cfg.split_valley_fraction * min(c.peak, y):
                    # A double peak: the first event ends at the valley, the second
                    # starts right after it (apex: its highest sample so far).
                    vn = c.valley_n
                    ev = self._emit(self._close(c, vn), index_now)
                    emitted += [ev] if ev is not None else []
                    best = max((self._sample(n) for n in range(vn + 1, s.n + 1)),
                               key=lambda q: q.score)
                    self._cand = _Candidate(bound_n=vn + 1, peak=best.score, apex_n=best.n,
                                            t_open=v.t, rising=best.n == s.n)
                    self._detector_state = "rising" if best.n == s.n else "in_event"
                    return emitted
        if self._cand is not None and s.t - self._cand.t_open > cfg.max_duration_s:
            self._outlived = True
            ev = self._emit(self._close(self._cand, s.n), index_now)
            emitted += [ev] if ev is not None else []
            self._cand = None
            self._detector_state = "idle"
        return emitted

    def _segment_start_n(self, s: _Sample) -> int:
        n = s.n
        for q in reversed(self._hist):
            if q.segment != s.segment:
                break
            n = q.n
        return n

    def _close(self, c: _Candidate, offset_n: int) -> _Closed:
        """The candidate ``c`` ended at sample ``offset_n``: find its onset."""
        self._armed = False
        self._rearm_min = math.inf
        self._last_offset_n = offset_n
        self._closed_t = self._sample(offset_n).t
        level = self.config.offset_fraction * c.peak
        n = c.apex_n
        lo = max(c.bound_n, self._hist[0].n)
        while n > lo and self._sample(n).score > level:
            n -= 1
        if c.onset_n is not None:
            n = min(n, max(c.onset_n, lo))
        return _Closed(c, n, offset_n, self._sample(offset_n).t)

    def _emit(self, closed: _Closed, index_now: int) -> SpotEvent | None:
        """Turn a closed candidate into a SpotEvent (None when shorter than
        ``min_duration_s``)."""
        if closed is self._closed:
            self._closed = None
        cfg = self.config
        onset, apex = self._sample(closed.onset_n), self._sample(closed.cand.apex_n)
        offset = self._sample(closed.offset_n)
        duration = offset.t - onset.t
        if duration < cfg.min_duration_s - 1e-9 or offset.index <= onset.index:
            log.debug("dropping a %.3f s movement at frame %d (shorter than %.3f s)",
                      duration, apex.index, cfg.min_duration_s)
            return None
        names = self._names or ()
        r = int(np.argmax(apex.z)) if apex.z is not None and apex.z.size else 0
        ev = SpotEvent(onset=onset.index, apex=apex.index, offset=offset.index,
                       onset_s=onset.t, apex_s=apex.t, offset_s=offset.t,
                       kind="micro" if duration <= cfg.micro_max_s + 1e-9
                       and not closed.cand.continued else "macro",
                       roi=names[r] if names else "",
                       peak=float(apex.values[r]) if apex.values.size else 0.0,
                       emitted_index=int(index_now), id=len(self.events))
        self.events.append(ev)
        log.debug("event %d: %s %d-%d-%d (%.3f s) roi %s peak %.3f px", ev.id, ev.kind,
                  ev.onset, ev.apex, ev.offset, duration, ev.roi, ev.peak)
        return ev

    # ---------------------------------------------------------------------------- state
    def _state_of(self, s: _Sample, values: np.ndarray) -> SpotterState:
        names = self._names or ()
        return SpotterState(signal={k: float(v) for k, v in zip(names, values, strict=False)},
                            combined=s.combined, threshold=s.threshold, baseline=s.baseline,
                            state=self._detector_state)

    def _update_live_state(self, t: float) -> None:
        """State at the newest frame: causal (one-sided) low-pass estimate of the signal,
        the latest threshold/baseline and the detector state."""
        if not self._raw:
            return
        newest = self._raw[-1]
        if self._sigma > 0:
            near = [r for r in self._raw if r.segment == newest.segment]
            dt = (np.array([r.t for r in near]) - t) / self._sigma
            w = np.exp(-0.5 * dt * dt)
            values = (w[:, None] * np.array([r.values for r in near])).sum(0) / w.sum()
        else:
            values = newest.values
        if self._px_map is not None:
            med, unit = self._px_map
            combined = float(med.mean() + unit.mean() * ((values - med) / unit).max())
        else:
            combined = float(values.max()) if values.size else 0.0
        last = self._hist[-1] if self._hist else None
        self.state = SpotterState(
            signal={k: float(v) for k, v in zip(self._names or (), values, strict=False)},
            combined=combined,
            threshold=last.threshold if last is not None else math.nan,
            baseline=last.baseline if last is not None else math.nan,
            state=self._detector_state)
