"""The demo source: astronaut face, planted micro-expressions, seekable and fast."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mestudio.capture.base import FrameSource
from mestudio.capture.demo import DemoSource
from mestudio.errors import MestudioError, SourceError


def test_default_demo_is_a_20s_640x480_clip_with_micro_expressions():
    src = DemoSource()
    assert isinstance(src, FrameSource)
    assert src.size == (640, 480) and src.fps == 30.0 and src.n_frames == 600
    assert src.seekable and src.name == "demo"
    truth = src.truth()
    assert truth["format"] == "mestudio-truth/1" and truth["n_frames"] == 600
    micro = [e for e in src.events if e.kind == "micro"]
    blinks = [e for e in src.events if e.kind == "blink"]
    assert 6 <= len(micro) <= 8 and len(blinks) == 2
    assert not any(e.kind == "macro" for e in src.events)
    assert all(0.015 <= e.amplitude <= 0.03 for e in micro)
    onsets = [e.onset_s for e in micro]
    assert 1.5 <= np.mean(np.diff(onsets)) <= 3.5  # one every 2-3 s on average
    # Rendering a frame takes a few milliseconds (generous bound: shared, noisy machine).
    apex = micro[0].apex
    src.read(apex)
    times = []
    for i in range(apex - 5, apex + 5):
        t0 = time.perf_counter()
        frame = src.read(i)
        times.append(time.perf_counter() - t0)
    assert frame.image.shape == (480, 640, 3) and frame.image.dtype == np.uint8
    assert np.median(times) < 0.03
    src.close()


def test_read_i_equals_the_ith_iterated_frame():
    with DemoSource(duration_s=4.0, seed=3, size=(160, 120)) as src:
        frames = list(src)
        assert len(frames) == src.n_frames == 120
        micro = next(e for e in src.events if e.kind == "micro")
        for i in (0, micro.onset, micro.apex, 77, 119):
            f = src.read(i)
            assert f.index == i and f.timestamp_s == pytest.approx(i / 30.0)
            assert np.array_equal(f.image, frames[i].image)
        assert [f.index for f in frames] == list(range(120))
        # The micro-expression is visible in the rendered frames.
        assert not np.array_equal(frames[micro.onset].image, frames[micro.apex].image)
        with pytest.raises(SourceError):
            src.read(120)


def test_same_seed_same_demo_and_spec_options():
    a = DemoSource.from_spec("demo:fps=100,duration=3,seed=5,size=160x120")
    b = DemoSource(duration_s=3.0, fps=100.0, seed=5, size=(160, 120))
    assert a.fps == 100.0 and a.n_frames == 300 and a.size == (160, 120)
    assert a.truth()["events"] == b.truth()["events"]
    assert np.array_equal(a.read(150).image, b.read(150).image)
    assert a.read(150).timestamp_s == pytest.approx(1.5)
    with pytest.raises(MestudioError, match="unknown demo option"):
        DemoSource.from_spec("demo:colour=red")


def test_looping_demo_keeps_counting_frames():
    src = DemoSource(duration_s=2.0, size=(96, 72), loop=True)
    assert src.n_frames is None
    it = iter(src)
    frames = [next(it) for _ in range(65)]
    assert frames[-1].index == 64 and frames[-1].timestamp_s == pytest.approx(64 / 30)
    assert np.array_equal(frames[62].image, frames[2].image)
