"""Configuration of the online spotter. Every duration is in seconds (fps-independent)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SpotterConfig:
    """Spotting settings.

    Attributes:
        sensitivity: 0..1, higher finds weaker movements (and more false events); sets the
            threshold factor k (9 noise units at 0.5, see ``threshold_k_*``).
        reference_window_s: the flow reference frame is re-chosen every this many seconds
            (at the first "quiet" frame after this age, see :mod:`mestudio.spotting.signal`).
        lowpass_hz: low-pass cut-off of the motion signal (Hz).
        baseline_window_s: length of the running baseline of the person's own motion.
        calibration_s: time before the first event may be emitted (baseline warm-up).
        min_duration_s: shortest event (onset..offset) reported.
        micro_max_s: longest micro-expression; longer events are macro.
        max_duration_s: longest event followed before it is closed as macro.
        offset_fraction: onset/offset are where the signal falls to this fraction of the peak
            (above the baseline). 0.2 rather than the ~1/3 of the literature: with the
            smooth rise and fall of real and synthetic movements, 1/3 gives intervals ~40 %
            shorter than the annotated ones and IoU close to the 0.5 limit.
        emit_delay_s: an event is emitted at most this long after its offset (for frame
            rates >= 25 fps; the low-pass look-ahead plus the merge window fit in it).

        signal_size: side (pixels) to which the aligned crop is resized before the flow is
            computed (smaller = faster, coarser; 64 starts to miss 1 %-of-face movements,
            96 costs ~1.5x the time of 80 for no measured gain). Signal values are always reported in pixels
            of a 128-px canonical crop, whatever this size and the tracker's crop size.
        flow_method: a method of :func:`mestudio.flow.fast_flow`: ``"dis-fine"`` (OpenCV
            DIS, medium preset refined to full resolution: the most accurate on 1-px local
            movements and the cleanest under head motion), ``"dis-medium"`` (about 3x cheaper,
            but stops at half resolution and misses much of a faint mouth movement),
            ``"dis-fast"``, ``"dis-ultrafast"``, ``"farneback"`` (accurate, cheap, but leaks
            head motion into the brows) or ``"tvl1"`` (torch; worth it on a GPU).
        normalize_illumination: divide out the global illumination of each grey crop (gain
            and brightness gradient) before the flow, so illumination drift is not motion.
        reference_max_age_s: the reference frame is replaced after this many seconds even when
            the face never becomes quiet (slow drift, a held expression), by the latest
            frame of the last ``reference_history_s`` seconds that was as still as the
            stillest one (during a held expression: a frame from before its onset).
        reference_history_s: how far back frames are kept as reference candidates.
        reference_settle_s: a frame becomes the new reference only when every frame within
            this many seconds before and after it was quiet too (never the start or the tail
            of a movement).
        quiet_factor: a frame is "quiet" (may become the new reference) when its motion is at
            most this many times the typical motion of quiet frames.
        mask_eyes_in_image: the eye regions of every frame are replaced by a smooth fill
            from the surrounding skin before the flow, so blinks and gaze shifts produce no
            flow at all (the ROIs also exclude the eyes).
        head_motion: ``"similarity"`` (robust fit of translation + rotation + scale to the flow
            of rigid face parts, then subtracted) or ``"translation"`` (mean flow of the nose
            ridge subtracted, SOFTNet style) or ``"none"``.
        stabilize_px: when the fitted head motion moves some face pixel by more than this
            (pixels of the flow image), the frame is warped back by it and the flow computed
            again (SPOTTING.md method 4's stabilisation); 0 = never.
        stabilize_prepass: a cheaper flow method (:func:`mestudio.flow.fast_flow`) used
            only to measure the head motion before the accurate flow: when it is larger than
            ``stabilize_px`` the accurate flow is computed once, on the frame warped back by
            it, instead of twice (about a third of the signal's cost on talking faces); ""
            = off (the accurate flow measures the head motion itself).
        top_fraction: per ROI, the signal is the magnitude of the mean flow vector of this
            fraction of its pixels with the largest flow.
        threshold_k_low: threshold in noise units (the spread of the lower half of the
            ROI's recent signal, ~1 standard deviation) above its baseline at sensitivity 1.
        threshold_k_high: the same at sensitivity 0 (interpolated geometrically in between).
        min_rise_px: smallest peak height above the baseline at sensitivity 0.5, in pixels of a
            128-px crop (scaled by the same geometric law as the k factor).
        split_valley_fraction: a double peak is split into two events when the valley
            between the two peaks drops to this fraction of the smaller peak's height above
            the baseline (without reaching the offset level); 0 = off (default: a movement
            that does not come back to rest is one event; on talking faces splitting turned
            continuous activity into false micro events).
        merge_gap_s: a movement starting again within this many seconds after an event's
            offset continues that event (continuous activity such as talking is one event);
            shortened automatically so that events are still emitted within
            ``emit_delay_s``.
        rebaseline_s: recovery after long movements: when, over this many seconds of
            samples outside events, a ROI's signal stayed above its threshold (a long
            movement outlived its event) or entirely under its lower noise band (a long
            movement ended), its baseline and noise unit restart from those samples instead
            of mixing the two levels (see :mod:`mestudio.spotting.spotter`); 0 = off.
        gap_break_s: a jump in timestamps longer than this (dropped frames, a seek) restarts
            the signal and ends any event in progress without emitting it.
        recalibrate_after_s: after the face has been absent this long, the baseline is
            re-learnt (a new person may have arrived).

        method: ``"expression"`` (default: :class:`~mestudio.spotting.expression.
            ExpressionSpotter`, expressions as held displacements from rest, talking left
            out, micro-expressions from the flow-threshold detector) or ``"threshold"``
            (:class:`~mestudio.spotting.spotter.OnlineSpotter` alone: every movement over
            an adaptive threshold; tuned on planted movements only).
        expression_open_s: the opening in time: displacements held at least this long
            count, shorter bumps (syllables, blinks) do not.
        expression_unit_px: the unit of height above rest at sensitivity 0.5 (pixels of a
            128-px crop; scaled with the sensitivity like ``min_rise_px``).
        expression_offset: activity starts and ends at this many units above rest.
        expression_k_brows, expression_k_cheeks, expression_k_mouth: an expression lifts
            one part (brows, nose wings/cheeks, mouth corners) at least this many units
            above its rest; less is "moving" (talking, head motion), not an event.
        expression_split: a valley under this fraction of the smaller neighbouring peak
            separates two expressions.
        expression_merge_s: activity resuming within this gap continues the expression.
        expression_min_s: each side of a split lasts at least this long.
        expression_change: an expression also ends where the face's configuration changes
            without returning to rest (a grin becomes a pout): the ROIs' displacement
            vectors ``expression_change_s`` after a moment differ from those
            ``expression_change_s`` before it by this many times the expression's median
            displacement; 0 = never split this way.
        expression_change_s: half the time over which that change is measured.
        expression_change_min_s: each expression cut out this way lasts at least this long.
        rest_window_s: the rest level is a low percentile of the last this many seconds.
        rest_quantile: that percentile (the face rests at least this share of the time).
        still_before_s: a macro movement of the flow-threshold detector that is too small
            for an expression is still reported when the face was at rest this long before
            it (a posed or planted movement on a still face; talking never is).
    """

    sensitivity: float = 0.5
    reference_window_s: float = 0.5
    lowpass_hz: float = 5.0
    baseline_window_s: float = 4.0
    calibration_s: float = 0.5
    min_duration_s: float = 0.04
    micro_max_s: float = 0.5
    max_duration_s: float = 4.0
    offset_fraction: float = 0.2
    emit_delay_s: float = 0.3
    signal_size: int = 80
    flow_method: str = "dis-fine"
    normalize_illumination: bool = True
    reference_max_age_s: float = 3.0
    reference_history_s: float = 2.0
    reference_settle_s: float = 0.1
    quiet_factor: float = 1.5
    mask_eyes_in_image: bool = True
    head_motion: str = "similarity"
    stabilize_px: float = 0.3
    stabilize_prepass: str = "dis-medium"
    top_fraction: float = 0.25
    threshold_k_low: float = 3.4
    threshold_k_high: float = 24.0
    min_rise_px: float = 0.15
    split_valley_fraction: float = 0.0
    merge_gap_s: float = 0.15
    rebaseline_s: float = 0.5
    gap_break_s: float = 0.5
    recalibrate_after_s: float = 2.0
    method: str = "expression"
    expression_open_s: float = 0.4
    expression_unit_px: float = 1.2
    expression_offset: float = 0.5
    expression_k_brows: float = 6.0
    expression_k_cheeks: float = 2.0
    expression_k_mouth: float = 4.5
    expression_split: float = 0.7
    expression_merge_s: float = 0.2
    expression_min_s: float = 0.2
    expression_change: float = 1.5
    expression_change_s: float = 0.1
    expression_change_min_s: float = 0.3
    rest_window_s: float = 8.0
    rest_quantile: float = 10.0
    still_before_s: float = 1.0


SPOTTER_METHODS = ("expression", "threshold")


def make_spotter(config: SpotterConfig | None = None):  # noqa: ANN201 - either spotter
    """The online spotter ``config.method`` names (see :class:`SpotterConfig`)."""
    cfg = config or SpotterConfig()
    if cfg.method == "threshold":
        from mestudio.spotting.spotter import OnlineSpotter

        return OnlineSpotter(cfg)
    if cfg.method == "expression":
        from mestudio.spotting.expression import ExpressionSpotter

        return ExpressionSpotter(cfg)
    raise ValueError(f"unknown spotter method {cfg.method!r}: use one of "
                     f"{', '.join(SPOTTER_METHODS)}")
