"""Recording a live session: video + events.json that review mode can open frame-exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest

from mestudio.capture.recorder import SessionRecorder, new_recording_dir
from mestudio.errors import SourceError
from mestudio.events_io import read_events_json
from mestudio.types import FaceObservation, Frame, FrameResult, Prediction, SpotEvent

BITS, CELL = 12, 16
W, H = BITS * CELL, 64


def numbered(i: int) -> np.ndarray:
    """A frame whose top row of cells spells ``i`` in binary (decodable after compression)."""
    img = np.full((H, W, 3), 40, np.uint8)
    for b in range(BITS):
        if (i >> b) & 1:
            img[:CELL * 2, b * CELL:(b + 1) * CELL] = 230
    return img


def decode(img: np.ndarray) -> int:
    gray = img.mean(axis=2) if img.ndim == 3 else img
    return sum(1 << b for b in range(BITS)
               if gray[4:CELL * 2 - 4, b * CELL + 4:(b + 1) * CELL - 4].mean() > 135)


def _frame(i: int, fps: float = 25.0) -> Frame:
    return Frame(index=i, timestamp_s=i / fps + 0.003, image=numbered(i))


def _event(onset, apex, offset, fps=25.0, label=None, ev_id=-1):
    pred = None
    if label:
        pred = Prediction(probs=np.array([0.7, 0.3], np.float32), label=label, confidence=0.7,
                          classes=(label, "other"))
    return SpotEvent(onset, apex, offset, onset / fps, apex / fps, offset / fps, "micro", "brows",
                     1.0, emitted_index=offset + 5, prediction=pred, id=ev_id)


def _read_all(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def test_recording_maps_live_frame_indices_to_the_video_file(tmp_path):
    out = new_recording_dir(tmp_path)
    # the recording starts at source frame 100; frames 120..124 were dropped by the live loop
    source = [i for i in range(100, 180) if not 120 <= i <= 124]
    with SessionRecorder(out, fps=25.0, size=(W, H), source_name="camera 0") as rec:
        for i in source:
            rec.add_result(FrameResult(frame=_frame(i), face=FaceObservation(False)))
            if i == 150:  # an event emitted at frame 150 about frames 130..140
                rec.add_result(FrameResult(frame=_frame(151), face=FaceObservation(False),
                                           events=[_event(130, 134, 140, ev_id=7)]))
        # its prediction arrives later
        rec.add_event(_event(130, 134, 140, label="surprise", ev_id=7))
        rec.add_event(_event(60, 62, 70, ev_id=8))  # before the recording: not recorded
        rec.add_event(_event(118, 121, 126, ev_id=9))  # spans the dropped frames
    video = out / "video.avi"
    frames = _read_all(video)
    assert len(frames) == len(source)
    assert [decode(f) for f in frames] == source
    events, meta = read_events_json(out / "events.json")
    assert meta["source"] == "video.avi" and meta["fps"] == 25.0
    assert meta["n_frames"] == len(source) and meta["recording"]["complete"] is True
    assert [e.id for e in events] == [9, 7]
    ev9, ev7 = events
    # the recorded indices show the same source frames the live events referred to
    assert [decode(frames[k]) for k in (ev7.onset, ev7.apex, ev7.offset)] == [130, 134, 140]
    assert ev7.prediction is not None and ev7.prediction.label == "surprise"
    assert ev7.onset_s == pytest.approx(ev7.onset / 25.0)
    assert decode(frames[ev9.onset]) == 118 and decode(frames[ev9.offset]) == 126
    assert decode(frames[ev9.apex]) == 125  # apex 121 was dropped: the next recorded frame
    ts = (out / "timestamps.csv").read_text().splitlines()
    assert ts[0] == "frame,source_frame,timestamp_s" and len(ts) == len(source) + 1
    assert ts[1].startswith("0,100,4.003")


def test_events_json_is_current_while_recording(tmp_path):
    rec = SessionRecorder(tmp_path / "r", fps=30.0, size=(W, H))
    for i in range(20):
        rec.write_frame(_frame(i, 30.0))
    rec.add_event(_event(3, 5, 8, fps=30.0))
    doc = json.loads((tmp_path / "r" / "events.json").read_text())
    assert doc["recording"]["complete"] is False
    assert [(e["onset"], e["offset"]) for e in doc["events"]] == [(3, 8)]
    rec.close()
    assert json.loads((tmp_path / "r" / "events.json").read_text())["recording"]["complete"]


def test_bad_recording_settings_are_user_errors(tmp_path):
    with pytest.raises(SourceError, match="frames per second"):
        SessionRecorder(tmp_path / "a", fps=0, size=(W, H))
    rec = SessionRecorder(tmp_path / "b", fps=25, size=(W, H))
    rec.write_frame(Frame(0, 0.0, np.zeros((H, W, 3), np.uint8)))
    rec.close()
    with pytest.raises(SourceError, match="already holds a recording"):
        SessionRecorder(tmp_path / "b", fps=25, size=(W, H))


def test_a_recording_without_a_frame_leaves_no_folder(tmp_path):
    """Started and stopped before any frame (e.g. at the end of a clip): review would
    refuse the folder, so none is kept (issue 22, item 15)."""
    rec = SessionRecorder(tmp_path / "empty", fps=25, size=(W, H))
    assert rec.close() == tmp_path / "empty" and not (tmp_path / "empty").exists()


_CRASHER = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_recorder import numbered, _event
    from mestudio.capture.recorder import SessionRecorder
    from mestudio.types import Frame
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (240, 320, 3), np.uint8)  # realistic bit rate
    rec = SessionRecorder(sys.argv[1], fps=25.0, size=(320, 240))
    i = 0
    while True:
        img = np.roll(background, i, axis=1)
        img[:64, :192] = numbered(i)
        rec.write_frame(Frame(i, i / 25.0, img))
        if i % 10 == 9:
            rec.add_event(_event(i - 8, i - 5, i - 2))
            print(i, flush=True)
        i += 1
""")


def test_a_crash_loses_no_written_event_and_leaves_a_readable_video(tmp_path):
    out = tmp_path / "crash"
    proc = subprocess.Popen([sys.executable, "-c", _CRASHER, str(out), os.path.dirname(__file__)],
                            stdout=subprocess.PIPE, text=True)
    acked = []
    try:
        deadline = time.monotonic() + 30
        while len(acked) < 30 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acked) == 30, "recorder subprocess did not run"
    events, meta = read_events_json(out / "events.json")  # never torn
    assert meta["recording"]["complete"] is False
    assert len(events) >= len(acked)
    assert not list(out.glob(".*.part"))
    frames = _read_all(out / "video.avi")
    assert len(frames) >= 250  # all but the encoder's last buffer
    assert [decode(f) for f in frames] == list(range(len(frames)))


def test_video_size_is_taken_from_the_first_frame_when_unknown(tmp_path):
    with SessionRecorder(tmp_path / "r", fps=25.0, size=None) as rec:
        for i in range(5):
            rec.write_frame(_frame(i))
    frames = _read_all(tmp_path / "r" / "video.avi")
    assert len(frames) == 5 and frames[0].shape[:2] == (H, W)
    assert [decode(f) for f in frames] == list(range(5))
