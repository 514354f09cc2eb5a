"""Configuration of the online spotter. Every duration is in seconds (fps-independent)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SpotterConfig:
    """Spotting settings.

    Attributes:
        sensitivity: 0..1, higher finds weaker movements (and more false events).
        reference_window_s: the flow reference frame is re-chosen every this many seconds.
        lowpass_hz: low-pass cut-off of the motion signal (Hz).
        baseline_window_s: length of the running baseline of the person's own motion.
        calibration_s: time before the first event may be emitted (baseline warm-up).
        min_duration_s: shortest event (onset..offset) reported.
        micro_max_s: longest micro-expression; longer events are macro.
        max_duration_s: longest event followed before it is closed as macro.
        offset_fraction: onset/offset are where the signal falls to this fraction of the peak.
        emit_delay_s: an event is emitted at most this long after its offset.
    """

    sensitivity: float = 0.5
    reference_window_s: float = 0.5
    lowpass_hz: float = 5.0
    baseline_window_s: float = 4.0
    calibration_s: float = 1.0
    min_duration_s: float = 0.04
    micro_max_s: float = 0.5
    max_duration_s: float = 4.0
    offset_fraction: float = 0.33
    emit_delay_s: float = 0.3
