"""One-Euro filtering of landmark positions (Casiez, Roussel & Vogel, CHI 2012).

A low-pass filter whose cut-off rises with the speed of the signal: still faces get heavy
smoothing (no jitter), fast head motion gets little (no lag). Time-based: it uses the
frames' timestamps, so it behaves the same at 25 and at 200 fps.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff_hz: float | np.ndarray, dt_s: float) -> float | np.ndarray:
    """Smoothing factor of an exponential filter with cut-off ``cutoff_hz`` at step ``dt_s``."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """One-Euro filter over an array of points.

    Args:
        min_cutoff_hz: cut-off when still (Hz); lower = smoother.
        beta: how fast the cut-off rises with speed (per pixel/s); higher = less lag.
        d_cutoff_hz: cut-off of the speed estimate (Hz).

    Input ``x`` of shape ``(P, 2)`` (points in pixels) or any shape whose last axis holds
    the coordinates of one point: the speed that opens the filter is the per-point speed
    (norm over the last axis), so x and y of a point are filtered alike.
    """

    def __init__(self, min_cutoff_hz: float = 1.0, beta: float = 0.05,
                 d_cutoff_hz: float = 1.0) -> None:
        if min_cutoff_hz <= 0 or d_cutoff_hz <= 0:
            raise ValueError("One-Euro cut-off frequencies must be > 0 Hz")
        self.min_cutoff_hz = float(min_cutoff_hz)
        self.beta = float(beta)
        self.d_cutoff_hz = float(d_cutoff_hz)
        self.reset()

    def reset(self) -> None:
        """Forget the history; the next value passes unfiltered."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t_s: float) -> np.ndarray:
        """Filter ``x`` observed at time ``t_s`` (seconds); returns float64, same shape."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t_s)
            return x.copy()
        dt = float(t_s) - self._t
        if dt <= 0:
            # Same (or earlier) time stamp: nothing to integrate over; keep the state.
            return self._x.copy()
        self._t = float(t_s)
        dx = (x - self._x) / dt
        assert self._dx is not None
        self._dx = self._dx + _alpha(self.d_cutoff_hz, dt) * (dx - self._dx)
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) if x.ndim else abs(self._dx)
        cutoff = self.min_cutoff_hz + self.beta * speed
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        return self._x.copy()
