"""Eulerian video magnification amplifies subtle in-band changes and leaves the rest alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mestudio.preprocess.evm import eulerian_magnify, temporal_bandpass


def _clip(amplitude: float, freq_hz: float, fps: float = 30.0, t: int = 30) -> np.ndarray:
    """[T, 1, 32, 32] clip: a flat 0.5 image whose brightness oscillates slowly."""
    times = np.arange(t) / fps
    signal = amplitude * np.sin(2 * np.pi * freq_hz * times)
    return (0.5 + signal[:, None, None, None] * np.ones((t, 1, 32, 32))).astype(np.float32)


def test_in_band_change_is_amplified_by_one_plus_alpha():
    clip = _clip(0.01, 3.0)
    out = eulerian_magnify(clip, fps=30.0, low_hz=1.0, high_hz=5.0, alpha=9.0, levels=2)
    assert isinstance(out, np.ndarray) and out.shape == clip.shape
    gain = (out - out.mean(0)).std() / (clip - clip.mean(0)).std()
    assert 9.0 < gain < 11.0  # 1 + alpha


def test_out_of_band_change_and_static_clip_are_kept():
    static = np.full((10, 3, 24, 24), 0.3, dtype=np.float32)
    np.testing.assert_allclose(eulerian_magnify(static, fps=30.0), static, atol=1e-5)
    fast = _clip(0.01, 12.0)  # 12 Hz, outside the 1-5 Hz band
    out = eulerian_magnify(fast, fps=30.0, low_hz=1.0, high_hz=5.0, alpha=9.0, levels=2)
    gain = (out - out.mean(0)).std() / (fast - fast.mean(0)).std()
    assert gain < 1.5


def test_batched_torch_input_and_errors():
    clip = torch.rand(2, 8, 1, 16, 16)
    out = eulerian_magnify(clip, fps=100.0)
    assert isinstance(out, torch.Tensor) and out.shape == clip.shape
    with pytest.raises(ValueError, match="shape"):
        eulerian_magnify(np.zeros((8, 16, 16), np.float32), fps=30.0)
    with pytest.raises(ValueError, match="low_hz"):
        eulerian_magnify(np.zeros((8, 1, 16, 16), np.float32), fps=30.0, low_hz=5, high_hz=1)
    band = temporal_bandpass(torch.ones(16, 4), fps=30.0, low_hz=1.0, high_hz=5.0)
    assert band.abs().max() < 1e-6  # a constant has no in-band energy
