"""Configuration of synthetic micro-expression clips (timing, amplitudes, distractors).

All durations are in seconds and all amplitudes are fractions of the face width
(``FaceGeometry.face_width``, ≈ 2 × the inter-ocular distance), so the same configuration
gives the same motion in seconds and in face-relative pixels at any frame rate and any
image size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from mestudio.errors import ConfigError

Range = tuple[float, float]


@dataclass
class SynthConfig:
    """Timing, amplitude and distractor settings of a synthetic clip.

    Attributes:
        micro_rise_s: onset→apex duration of micro-expressions (s); real MEs: 1/15–1/10 s.
        micro_duration_s: onset→offset duration of micro-expressions (s), drawn uniformly.
        micro_max_s: upper bound of a micro-expression's duration (s), MEGC definition.
        micro_amplitude: peak displacement of micro-expressions as a fraction of face width.
        macro_rise_s: onset→apex duration of macro-expressions (s).
        macro_duration_s: onset→offset duration of macro-expressions (s), > micro_max_s.
        macro_amplitude: peak displacement of macro-expressions (fraction of face width).
        blink_duration_s: duration of a blink (s).
        blink_amplitude: peak upper-eyelid travel of a blink (fraction of face width;
            0.06 = 0.12 inter-ocular distances, about the height of an open eye).
        micro_every_s: mean spacing of micro-expressions when their count is not given (s).
        macro_every_s: mean spacing of macro-expressions when their count is not given (s).
        blink_every_s: mean spacing of blinks when their count is not given (s).
        min_gap_s: smallest gap between two planted events (s).
        lead_in_s: event-free time at the start (spotters calibrate there) (s).
        tail_s: event-free time at the end (s).
        au_variation: relative random variation of each AU's strength per event (0.2 = ±20 %).
        asymmetry: relative random left/right strength difference per event.
        head_shift: standard deviation of the slow head translation (fraction of face width).
        head_rotation_deg: standard deviation of the slow head roll (degrees).
        head_scale: standard deviation of the slow head scale change (relative).
        head_tau_s: correlation time of the slow head motion (s).
        tremor_shift: standard deviation of the fast head tremor (fraction of face width).
        tremor_tau_s: correlation time of the tremor (s).
        illumination_gain: standard deviation of the global brightness drift (relative).
        illumination_gradient: standard deviation of the left-right brightness gradient
            drift (relative difference between the image centre and its side edges).
        illumination_tau_s: correlation time of the illumination drift (s).
        noise_std: sensor noise standard deviation (grey levels, 0..255 scale).
    """

    micro_rise_s: Range = (1 / 15, 1 / 10)
    micro_duration_s: Range = (0.2, 0.45)
    micro_max_s: float = 0.5
    micro_amplitude: Range = (0.01, 0.03)
    macro_rise_s: Range = (0.25, 0.5)
    macro_duration_s: Range = (0.8, 2.0)
    macro_amplitude: Range = (0.04, 0.07)
    blink_duration_s: Range = (0.1, 0.3)
    blink_amplitude: float = 0.06
    micro_every_s: float = 2.5
    macro_every_s: float = 20.0
    blink_every_s: float = 6.0
    min_gap_s: float = 1.0
    lead_in_s: float = 1.0
    tail_s: float = 0.5
    au_variation: float = 0.2
    asymmetry: float = 0.15
    head_shift: float = 0.01
    head_rotation_deg: float = 0.6
    head_scale: float = 0.006
    head_tau_s: float = 1.5
    tremor_shift: float = 0.001
    tremor_tau_s: float = 0.1
    illumination_gain: float = 0.03
    illumination_gradient: float = 0.03
    illumination_tau_s: float = 4.0
    noise_std: float = 2.0

    def __post_init__(self) -> None:
        for name in ("micro_rise_s", "micro_duration_s", "micro_amplitude", "macro_rise_s",
                     "macro_duration_s", "macro_amplitude", "blink_duration_s"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ConfigError(f"synth: {name} must be a range (lo, hi) with 0 <= lo <= hi, "
                                  f"got {(lo, hi)}")
            setattr(self, name, (float(lo), float(hi)))
        if self.micro_duration_s[1] > self.micro_max_s + 1e-9:
            raise ConfigError(f"synth: micro_duration_s upper bound {self.micro_duration_s[1]} s "
                              f"exceeds micro_max_s {self.micro_max_s} s")
        if self.macro_duration_s[0] <= self.micro_max_s:
            raise ConfigError("synth: macro_duration_s must start above micro_max_s "
                              f"({self.micro_max_s} s) so macro events are not micro")
        if not 0 <= self.blink_amplitude <= 0.075:
            raise ConfigError("synth: blink_amplitude must be within 0..0.075 of the face width "
                              "(larger eyelid travel folds the image)")
        if self.noise_std < 0:
            raise ConfigError("synth: noise_std must be >= 0")

    def without_distractors(self) -> SynthConfig:
        """A copy with head motion, illumination drift and sensor noise switched off."""
        d = self.to_dict()
        for k in ("head_shift", "head_rotation_deg", "head_scale", "tremor_shift",
                  "illumination_gain", "illumination_gradient", "noise_std"):
            d[k] = 0.0
        return SynthConfig.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (ranges become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SynthConfig:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**kw)
