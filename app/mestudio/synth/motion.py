"""Time courses: event profiles, smooth random tracks, head motion and illumination drift.

Everything here is a deterministic function of time (seconds) built once from a seed, so a
clip can render any frame directly (random access, no sequential state) and the same
configuration gives the same motion in seconds at any frame rate.
"""

from __future__ import annotations

import math

import numpy as np

from mestudio.synth.config import SynthConfig


def event_profile(t: float | np.ndarray, onset_s: float, apex_s: float,
                  offset_s: float) -> np.ndarray:
    """Raised-cosine rise onset→apex and fall apex→offset.

    Args:
        t: time(s) in seconds.
        onset_s, apex_s, offset_s: the event's key times (s), onset <= apex <= offset.
    Returns:
        Profile in ``[0, 1]``: 0 at and before onset, 1 at apex, 0 at and after offset;
        same shape as ``t``.
    """
    t = np.asarray(t, dtype=np.float64)
    rise = max(apex_s - onset_s, 1e-9)
    fall = max(offset_s - apex_s, 1e-9)
    up = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - onset_s) / rise, 0.0, 1.0))
    down = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - apex_s) / fall, 0.0, 1.0))
    out = np.where(t <= apex_s, up, down)
    return np.where((t <= onset_s) | (t >= offset_s), 0.0, out)


class SmoothTrack:
    """A smooth zero-mean random signal of unit standard deviation, evaluable at any time.

    An Ornstein–Uhlenbeck (mean-reverting random walk) process is sampled at knots spaced
    ``tau_s / 4`` apart and interpolated with Catmull–Rom splines, so it is continuous with
    a continuous derivative and wanders on the time scale ``tau_s``.

    Args:
        duration_s: time span covered (s); beyond it the track holds its end value.
        tau_s: correlation time (s).
        rng: random generator (consumed at construction only).
    """

    def __init__(self, duration_s: float, tau_s: float, rng: np.random.Generator) -> None:
        self.dt = max(tau_s / 4.0, 0.01)
        n = int(math.ceil(max(duration_s, 0.0) / self.dt)) + 4
        a = math.exp(-self.dt / max(tau_s, 1e-6))
        noise = rng.standard_normal(n)
        knots = np.empty(n)
        knots[0] = noise[0]
        s = math.sqrt(1.0 - a * a)
        for k in range(1, n):
            knots[k] = a * knots[k - 1] + s * noise[k]
        self.knots = knots

    def __call__(self, t: float | np.ndarray) -> np.ndarray:
        """Value(s) at time(s) ``t`` (s); a float for a scalar ``t``."""
        n = len(self.knots)
        if isinstance(t, (int, float)):
            x = min(max(t / self.dt, 0.0), n - 3.000001) + 1.0
            k = int(x)
            f = x - k
            q = self.knots
            p0, p1, p2, p3 = q[k - 1], q[k], q[k + 1], q[min(k + 2, n - 1)]
            return 0.5 * (2 * p1 + (-p0 + p2) * f + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f * f
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * f * f * f)  # type: ignore[return-value]
        ta = np.asarray(t, dtype=np.float64)
        xa = np.clip(ta / self.dt, 0.0, n - 3.000001) + 1.0  # knot 0 is the left pad
        ka = np.floor(xa).astype(int)
        fa = xa - ka
        a0, a1, a2, a3 = (self.knots[np.clip(ka + d, 0, n - 1)] for d in (-1, 0, 1, 2))
        return 0.5 * (2 * a1 + (-a0 + a2) * fa + (2 * a0 - 5 * a1 + 4 * a2 - a3) * fa * fa
                      + (-a0 + 3 * a1 - 3 * a2 + a3) * fa * fa * fa)


class HeadMotion:
    """Small natural head motion: slow drift plus tremor, as a global similarity transform.

    Args:
        duration_s: clip duration (s).
        config: amplitudes and time constants (fractions of face width, degrees, seconds).
        rng: random generator (consumed at construction only).
    """

    def __init__(self, duration_s: float, config: SynthConfig, rng: np.random.Generator) -> None:
        self.config = config
        c = config
        self.tx = SmoothTrack(duration_s, c.head_tau_s, rng)
        self.ty = SmoothTrack(duration_s, c.head_tau_s, rng)
        self.rot = SmoothTrack(duration_s, c.head_tau_s * 1.3, rng)
        self.scale = SmoothTrack(duration_s, c.head_tau_s * 2.0, rng)
        self.jx = SmoothTrack(duration_s, c.tremor_tau_s, rng)
        self.jy = SmoothTrack(duration_s, c.tremor_tau_s, rng)

    @property
    def active(self) -> bool:
        """False when every amplitude is zero (the transform is the identity)."""
        c = self.config
        return any(v > 0 for v in (c.head_shift, c.head_rotation_deg, c.head_scale,
                                   c.tremor_shift))

    def params(self, t: float, face_width: float) -> tuple[float, float, float, float]:
        """``(dx px, dy px, roll degrees, scale)`` at time ``t`` (s)."""
        c = self.config
        dx = face_width * (c.head_shift * float(self.tx(t)) + c.tremor_shift * float(self.jx(t)))
        dy = face_width * (c.head_shift * float(self.ty(t)) + c.tremor_shift * float(self.jy(t)))
        return dx, dy, c.head_rotation_deg * float(self.rot(t)), 1.0 + c.head_scale * float(self.scale(t))

    def matrix(self, t: float, center: np.ndarray, face_width: float) -> np.ndarray:
        """``(2, 3)`` float64 forward similarity transform (base image → frame) at ``t``.

        Rotation and scale are about ``center`` (pixels), then the translation.
        """
        dx, dy, deg, s = self.params(t, face_width)
        a = math.radians(deg)
        ca, sa = s * math.cos(a), s * math.sin(a)
        cx, cy = float(center[0]), float(center[1])
        return np.array([[ca, -sa, cx - ca * cx + sa * cy + dx],
                         [sa, ca, cy - sa * cx - ca * cy + dy]], dtype=np.float64)


class Illumination:
    """Slow brightness drift and a drifting left–right brightness gradient.

    Args:
        duration_s: clip duration (s).
        config: relative amplitudes and the time constant.
        rng: random generator (consumed at construction only).
    """

    def __init__(self, duration_s: float, config: SynthConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.gain = SmoothTrack(duration_s, config.illumination_tau_s, rng)
        self.gradient = SmoothTrack(duration_s, config.illumination_tau_s * 1.5, rng)

    @property
    def active(self) -> bool:
        return self.config.illumination_gain > 0 or self.config.illumination_gradient > 0

    def factors(self, t: float) -> tuple[float, float]:
        """``(gain, gradient)`` at ``t``: pixel value × (gain + gradient × x_rel), x_rel in [-1, 1]."""
        c = self.config
        return (1.0 + c.illumination_gain * float(self.gain(t)),
                c.illumination_gradient * float(self.gradient(t)))
