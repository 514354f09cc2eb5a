"""The live engine without Qt: a LiveSession plays a clip through the real pipeline like a
camera, finds the planted micro-expression, hands every result to its subscribers, makes
the overlays from the flow spotting used, pauses, seeks and stops."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mestudio.capture.base import FrameSource
from mestudio.config import AppConfig
from mestudio.engine.live import LiveSession, SessionListener
from mestudio.spotting.metrics import match_intervals
from mestudio.types import FaceObservation, Frame, FrameResult, SpotEvent


class Recorder(SessionListener):
    def __init__(self) -> None:
        self.statuses: list[tuple[str, str]] = []
        self.infos: list[dict] = []
        self.ended = threading.Event()
        self.failures: list[str] = []
        self.packets = 0

    def on_status(self, status: str, message: str) -> None:
        self.statuses.append((status, message))

    def on_pipeline_info(self, info: dict) -> None:
        self.infos.append(info)

    def on_ended(self) -> None:
        self.ended.set()

    def on_failed(self, message: str) -> None:
        self.failures.append(message)

    def on_packet(self) -> None:
        self.packets += 1


def _drive(session: LiveSession, until, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "the session did not get there in time"
        session.step()


def test_a_clip_played_live_through_the_real_pipeline_finds_its_micro_expression():
    cfg = AppConfig()
    cfg.recognition.enabled = False
    listener = Recorder()
    session = LiveSession(cfg, listener=listener)
    results: list[FrameResult] = []
    session.subscribe(results.append)
    session.set_overlay_needs(flow=True, strain=True)
    session.open_source("demo:duration=6,seed=0")
    taken = []
    try:
        _drive(session, listener.ended.is_set)
        packet = session.take_packet()
        taken.append(packet)
        pipe = session.pipeline
        events = list(pipe.events)
        signal_size = cfg.spotter.signal_size
        stats = session.stats()
    finally:
        session.close()
    assert not listener.failures
    info = listener.infos[-1]
    assert info["spotting"] and not info["recognition"] and info["overlays"]["flow"]
    assert listener.statuses[0][0] == "running" and listener.statuses[-2][0] == "ended"
    # a 30 fps file is paced like a camera; on this machine it keeps up
    indices = [r.frame.index for r in results]
    assert indices == sorted(set(indices)) and len(indices) >= 0.9 * 180
    assert stats.processed == len(results) and stats.processed + stats.dropped >= 170
    # the planted micro-expression (frames 140-148) is found; blinks are not micro events
    micro = [e for e in events if e.kind == "micro"]
    truth = [SpotEvent(140, 144, 148, 140 / 30, 144 / 30, 148 / 30, "micro", "", 0.0)]
    assert len(match_intervals(micro, truth, iou=0.5)) == 1, events
    # overlays are the flow that spotting measured (signal size), and its strain
    with_face = [r for r in results if r.face.face_found and r.flow is not None]
    assert len(with_face) >= 0.8 * len(results)
    r = with_face[-1]
    assert r.flow.shape == (signal_size, signal_size, 2) and r.strain.shape == r.flow.shape[:2]
    assert "overlay" in r.timings_ms
    # the display packet carries the pictures on the aligned crop
    packet = taken[0]
    assert packet is not None and packet.flow is not None and packet.strain is not None
    side = cfg.tracker.align_size
    assert packet.flow.shape == (side, side, 4) and packet.strain.shape == (side, side, 4)
    assert packet.samples and packet.samples[-1][0] == results[-1].frame.index


def test_without_overlays_the_pipeline_keeps_no_flow():
    cfg = AppConfig()
    cfg.recognition.enabled = False
    listener = Recorder()
    session = LiveSession(cfg, listener=listener, packets=False)
    results: list[FrameResult] = []
    session.subscribe(results.append)
    session.open_source("demo:duration=1,seed=1")
    try:
        _drive(session, listener.ended.is_set)
    finally:
        session.close()
    assert results and all(r.flow is None and r.strain is None for r in results)
    assert session.take_packet() is None  # packets off: nothing accumulates


class Numbered(FrameSource):
    """A seekable clip whose frames carry their index in the first pixel."""

    def __init__(self, n: int = 400, fps: float = 50.0) -> None:
        super().__init__()
        self.name, self.fps, self.n_frames, self.size, self.seekable = "numbered", fps, n, \
            (32, 24), True

    def _read(self, i: int) -> Frame:
        img = np.zeros((24, 32, 3), np.uint8)
        img[0, 0] = (i % 256, i // 256, 0)
        return Frame(i, i / self.fps, img)


class Counting:
    """A pipeline double: records the frames it saw and its resets."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.resets = 0
        self.events: list = []
        self.model_info = None
        self.spotting = False
        self.degraded: list[str] = []
        self.closed = False

    def process(self, frame: Frame, capture_time: float | None = None) -> FrameResult:
        self.seen.append(int(frame.image[0, 0, 0]) + 256 * int(frame.image[0, 0, 1]))
        return FrameResult(frame=frame, face=FaceObservation(face_found=False),
                           capture_time=capture_time)

    def reset(self) -> None:
        self.resets += 1

    def finish(self) -> list:
        return []

    def close(self) -> None:
        self.closed = True


def test_pause_seek_and_resume_on_a_file():
    pipe = Counting()
    listener = Recorder()
    session = LiveSession(AppConfig(), listener=listener, pipeline_fn=lambda cfg: pipe)
    session.open_callable(lambda: Numbered(fps=25.0), "numbered", is_camera=False)
    try:
        _drive(session, lambda: len(pipe.seen) >= 10)
        session.set_paused(True)
        session.step()
        n = len(pipe.seen)
        for _ in range(10):  # 0.5 s paused: at most the frame already in the slot
            session.step()
        assert len(pipe.seen) <= n + 1
        session.seek(300)
        _drive(session, lambda: 300 in pipe.seen)
        assert pipe.resets == 1
        for _ in range(6):  # still paused after showing the frame at the seek position
            session.step()
        assert pipe.seen[-1] == 300
        session.set_paused(False)
        _drive(session, lambda: len(pipe.seen) and pipe.seen[-1] >= 310)
        after = pipe.seen[pipe.seen.index(300):]
        assert after == list(range(300, 300 + len(after)))  # nothing skipped
        assert session.stats().dropped == 0
    finally:
        session.close()
    assert pipe.closed


def test_a_failing_subscriber_is_removed_and_reported_not_fatal():
    pipe = Counting()
    listener = Recorder()
    session = LiveSession(AppConfig(), listener=listener, pipeline_fn=lambda cfg: pipe)

    def broken(_result: FrameResult) -> None:
        raise RuntimeError("disk gone")

    session.subscribe(broken)
    session.open_callable(lambda: Numbered(n=30), "numbered", is_camera=False)
    try:
        _drive(session, listener.ended.is_set)
    finally:
        session.close()
    # the stream went on (a busy machine may drop a frame of the paced file)
    assert len(pipe.seen) + session.stats().dropped == 30 and len(pipe.seen) >= 25
    assert len(listener.failures) == 1 and "disk gone" in listener.failures[0]


def test_the_live_engine_imports_no_qt():
    code = ("import sys; import mestudio.engine.live, mestudio.engine.overlays, mestudio.engine.pipeline, "
            "mestudio.engine.kiosk; print(any(m.startswith('PySide6') for m in "
            "sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


@pytest.mark.parametrize("spec,label", [(0, "camera 0"), ("camera:2", "camera 2"),
                                        ("demo", "demo clip"), ("/x/clip.mp4", "clip.mp4")])
def test_source_labels(spec, label):
    from mestudio.engine.live import source_label

    assert source_label(spec) == label
