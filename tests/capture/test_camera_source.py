"""Cameras: an absent index fails fast; a camera that stops delivering is reported."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mestudio.capture import camera, open_source
from mestudio.capture.camera import CameraSource
from mestudio.errors import CameraError, SourceError


def test_absent_camera_index_raises_camera_error_quickly() -> None:
    t0 = time.perf_counter()
    with pytest.raises(CameraError, match="camera|index"):
        open_source("camera:9")
    with pytest.raises(CameraError):
        open_source(9)
    assert time.perf_counter() - t0 < 3.0


def test_camera_spec_must_name_an_index() -> None:
    with pytest.raises(SourceError, match="camera:N"):
        open_source("camera:front")


class _FakeCapture:
    """Delivers ``n`` frames, then nothing (the cable was pulled)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.released = False

    def read(self):  # noqa: ANN201
        if self.n <= 0:
            return False, None
        self.n -= 1
        time.sleep(0.002)
        return True, np.zeros((48, 64, 3), np.uint8)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


def test_camera_that_stops_delivering_raises_camera_error(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    fake = _FakeCapture(5)
    monkeypatch.setattr(camera, "_open_capture",
                        lambda *a, **k: (fake, np.zeros((48, 64, 3), np.uint8)))
    src = CameraSource(0, stall_timeout_s=0.2)
    assert src.size == (64, 48) and not src.seekable and src.n_frames is None
    got = []
    with pytest.raises(CameraError, match="stopped delivering"):
        for frame in src:
            got.append(frame)
    assert [f.index for f in got] == list(range(6))  # the first frame + 5 more
    assert all(b.timestamp_s > a.timestamp_s for a, b in zip(got, got[1:], strict=False))
    with pytest.raises(SourceError, match="live"):
        src.read(0)
    src.close()
    assert fake.released
