"""LiveCapture: newest frame wins under a slow consumer; a failing camera is reopened."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from mestudio.capture.base import FrameSource
from mestudio.capture.config import CaptureConfig
from mestudio.capture.live import LiveCapture
from mestudio.errors import CameraError
from mestudio.types import Frame

FAST = CaptureConfig(reopen_initial_s=0.02, reopen_max_s=0.1)


class FakeSource(FrameSource):
    """``n`` tiny frames at ``fps`` (delivered as fast as asked); raises CameraError after
    ``fail_after`` frames when set."""

    def __init__(self, n: int, fps: float = 100.0, fail_after: int | None = None,
                 seekable: bool = False, delay_s: float = 0.0) -> None:
        super().__init__()
        self.name, self.fps, self.size = "fake", fps, (8, 6)
        self.n_frames, self.seekable = n, seekable
        self.fail_after, self.delay_s = fail_after, delay_s

    def _read(self, i: int) -> Frame:
        return Frame(i, i / self.fps, np.full((6, 8, 3), i % 256, np.uint8))

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self._position, self.n_frames):
            if self.fail_after is not None and i >= self.fail_after:
                raise CameraError("camera 0 stopped delivering frames")
            if self.delay_s:
                time.sleep(self.delay_s)
            self._position = i + 1
            yield self._read(i)


def _drain(cap: LiveCapture, consumer_delay_s: float = 0.0, limit_s: float = 5.0
           ) -> list[Frame]:
    got, t_end = [], time.perf_counter() + limit_s
    while time.perf_counter() < t_end:
        item = cap.get(timeout=0.2)
        if item is None:
            if cap.finished:
                break
            continue
        got.append(item[0])
        if consumer_delay_s:
            time.sleep(consumer_delay_s)
    return got


def test_slow_consumer_gets_newest_frames_and_drops_count() -> None:
    cap = LiveCapture(lambda: FakeSource(300, delay_s=0.0005), FAST)
    cap.start()
    got = _drain(cap, consumer_delay_s=0.02)
    cap.stop()
    indices = [f.index for f in got]
    assert cap.captured == 300 and cap.status == "ended"
    assert cap.dropped > 100, "frames must be dropped, not queued"
    assert len(got) + cap.dropped == 300
    assert indices == sorted(indices) and indices[-1] == 299  # newest wins


def test_camera_error_is_reconnected_with_backoff_and_times_continue() -> None:
    opened = []

    def open_fn() -> FrameSource:
        opened.append(1)
        if len(opened) == 2:
            raise CameraError("camera 0 cannot be opened")  # still unplugged
        return FakeSource(10, fail_after=6 if len(opened) == 1 else None, delay_s=0.002)

    cap = LiveCapture(open_fn, FAST)
    statuses = set()
    cap.start()
    got = []
    t_end = time.perf_counter() + 5
    while time.perf_counter() < t_end:
        statuses.add(cap.status)
        if cap.status == "reconnecting":
            assert "retrying in" in cap.message
        item = cap.get(timeout=0.01)
        if item is not None:
            got.append(item[0])
        elif cap.finished:
            break
    cap.stop()
    assert len(opened) == 3 and cap.reconnects == 1
    assert "reconnecting" in statuses and cap.status == "ended"
    indices = [f.index for f in got]
    times = [f.timestamp_s for f in got]
    assert indices == sorted(set(indices)) and indices[-1] == 6 + 10 - 1
    assert all(b > a for a, b in zip(times, times[1:], strict=False))


def test_stop_joins_an_endless_source_promptly() -> None:
    cap = LiveCapture(lambda: FakeSource(10**9, delay_s=0.001), FAST)
    cap.start()
    assert cap.get(timeout=2.0) is not None
    t0 = time.perf_counter()
    cap.stop()
    assert time.perf_counter() - t0 < 1.0
    assert cap._thread is None and cap.finished


def test_pace_plays_in_real_time_and_loop_repeats_with_increasing_times() -> None:
    cap = LiveCapture(lambda: FakeSource(10, fps=50.0, seekable=True), FAST, pace=True,
                      loop=True)
    t0 = time.perf_counter()
    cap.start()
    got = []
    while len(got) < 25 and time.perf_counter() - t0 < 5:
        item = cap.get(timeout=0.5)
        if item is not None:
            got.append(item[0])
    elapsed = time.perf_counter() - t0
    cap.stop()
    indices = [f.index for f in got]
    # 2.5 passes over a 10-frame file: indices and times continue across the loop.
    assert indices == sorted(set(indices)) and indices[-1] >= 24
    assert cap.dropped <= 3  # paced: the consumer keeps up (a loaded CI box may miss one)
    times = {f.index: f.timestamp_s for f in got}
    assert all(times[i] == pytest.approx(i * 0.02) for i in times)
    assert elapsed > 0.4  # 25 frames at 50 fps take ~0.48 s when paced
