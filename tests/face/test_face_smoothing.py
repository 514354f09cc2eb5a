"""One-Euro smoothing: removes jitter on a still point, follows a real movement."""

from __future__ import annotations

import numpy as np

from mestudio.face.smoothing import OneEuroFilter


def test_jitter_is_reduced_and_motion_followed() -> None:
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=0.05)
    t = np.arange(120) / 30.0
    still = [f(np.array([[100.0, 50.0]]) + rng.normal(0, 1.0, (1, 2)), ti)[0] for ti in t]
    still = np.array(still[30:])
    assert still.std(axis=0).max() < 0.5  # 1 px of jitter in, under half a pixel out
    # A fast 40 px move over 0.1 s is followed: within 2 px 0.2 s after it ends.
    f.reset()
    for ti in t[:30]:
        f(np.array([[0.0, 0.0]]), ti)
    for k, ti in enumerate(t[30:34]):
        f(np.array([[10.0 * (k + 1), 0.0]]), ti)
    out = None
    for ti in t[34:40]:
        out = f(np.array([[40.0, 0.0]]), ti)
    assert abs(out[0, 0] - 40.0) < 2.0


def test_repeated_timestamp_keeps_the_state() -> None:
    f = OneEuroFilter()
    a = f(np.array([1.0, 2.0]), 0.0)
    b = f(np.array([5.0, 9.0]), 0.0)
    assert np.array_equal(a, b)
