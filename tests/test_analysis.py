"""``mestudio.analysis.analyze_video``, headless: a whole synthetic clip gives its planted
events, progress, frames.csv and the motion signals; stopping midway keeps what was found
(``complete`` False, ``last_frame``); unreadable images are recorded; a pipeline double
(the review window's tests use one) goes through the same loop."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from mestudio.analysis import AnalysisResult, analyze_video
from mestudio.capture import open_source
from mestudio.config import AppConfig
from mestudio.spotting.metrics import match_intervals
from mestudio.types import FaceObservation, FrameResult, SpotEvent, SpotterState

DEMO = "demo:duration=10,seed=0,blinks=1"   # 300 frames, 3 planted micro-expressions


def _config(recognition: bool = False) -> AppConfig:
    cfg = AppConfig()
    cfg.recognition.enabled = recognition
    return cfg


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> tuple[AnalysisResult, list, Path, list]:  # noqa: ANN001
    csv_path = tmp_path_factory.mktemp("analysis") / "frames.csv"
    calls: list[tuple[int, int | None]] = []
    with open_source(DEMO) as src:
        planted = [e for e in src.clip.events if e.kind == "micro"]
        res = analyze_video(src, _config(), progress=lambda d, t: calls.append((d, t)),
                            frames_csv=csv_path, keep_signals=True)
    return res, planted, csv_path, calls


def test_a_whole_clip_gives_its_planted_events(whole) -> None:  # noqa: ANN001
    res, planted, _, _ = whole
    assert res.complete and res.last_frame == 299
    assert res.n_frames == 300 and res.frames_with_face == 300 and res.face_fraction == 1.0
    assert res.unreadable_frames == [] and res.model_info is None
    assert res.source_name == "demo" and res.fps == 30.0 and res.notes
    pairs = match_intervals([{"onset": e.onset, "offset": e.offset} for e in res.events],
                            [{"onset": e.onset, "offset": e.offset} for e in planted])
    assert len(pairs) >= 2                      # the planted micro-expressions are found
    assert [e.onset for e in res.events] == sorted(e.onset for e in res.events)
    assert all(e.prediction is None for e in res.events)
    assert res.timings.frames == 300 and res.timings.elapsed_s > 0
    assert res.timings.track_ms > 0 and res.timings.frames_per_s > 0
    meta = res.events_meta(DEMO)
    assert list(meta) == ["source", "fps", "n_frames", "complete", "last_frame", "model",
                          "spotter", "recognition", "degraded", "unreadable_frames", "notes"]
    assert meta["n_frames"] == 300 and meta["spotter"]["sensitivity"] == 0.5


def test_progress_frames_csv_and_signals(whole) -> None:  # noqa: ANN001
    res, _, csv_path, calls = whole
    assert calls[0] == (1, 300) and calls[-1] == (300, 300) and len(calls) == 300
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(300))
    assert {r["status"] for r in rows} == {"ok"}
    assert {"calibrating", "idle", "in_event"} <= {r["spot_state"] for r in rows}
    sig = res.signals
    assert sig is not None and len(sig.times) == 300 and np.isfinite(sig.times).all()
    # the signals are the final values, as in frames.csv
    combined = np.array([float(r["signal_combined"]) for r in rows])
    assert np.allclose(sig.combined, combined, atol=1e-3)
    for ev in res.events:
        assert sig.combined[ev.apex] > sig.threshold[ev.apex]


def test_stopping_midway_keeps_the_events_found_so_far(whole) -> None:  # noqa: ANN001
    full, _, _, _ = whole
    cut = 200
    assert any(e.offset < cut - 20 for e in full.events)
    stop = threading.Event()
    seen: list[int] = []

    def on_result(result: FrameResult) -> None:
        seen.append(result.frame.index)
        if result.frame.index == cut - 1:
            stop.set()

    res = analyze_video(DEMO, _config(), stop=stop, on_result=on_result)
    assert res.complete is False
    assert res.last_frame == cut - 1 and res.n_frames == cut and seen == list(range(cut))
    assert res.events                            # what was spotted is not lost
    assert all(e.offset <= res.last_frame for e in res.events)
    # the same events as the whole run, up to where it stopped
    early = [(e.onset, e.offset) for e in full.events if e.offset < cut - 20]
    assert early and set(early) <= {(e.onset, e.offset) for e in res.events}


def test_a_stop_function_before_the_first_frame_processes_nothing() -> None:
    res = analyze_video(DEMO, _config(), stop=lambda: True)
    assert res.complete is False and res.last_frame == -1 and res.n_frames == 0
    assert res.events == []


def test_max_frames_is_complete() -> None:
    res = analyze_video(DEMO, _config(), max_frames=45)
    assert res.complete and res.n_frames == 45 and res.last_frame == 44


def test_unreadable_images_are_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "seq"
    folder.mkdir()
    with open_source("demo:duration=0.8,seed=4") as src:
        for f in src:
            cv2.imwrite(str(folder / f"img{f.index:03d}.png"), cv2.resize(f.image, (320, 240)))
    (folder / "img005.png").write_bytes(b"not an image")
    (folder / "img023.png").write_bytes(b"not an image")      # the last one
    seen: list[tuple[int, str]] = []
    res = analyze_video(folder, _config(), frames_csv=tmp_path / "frames.csv",
                        on_result=lambda r: seen.append((r.frame.index,
                                                         r.info.get("status", "ok"))))
    assert res.complete and res.unreadable_frames == [5, 23]
    assert res.n_frames == 22 and res.last_frame == 22
    assert [i for i, _ in seen] == list(range(24))
    assert [i for i, s in seen if s == "unreadable"] == [5, 23]
    with (tmp_path / "frames.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows if r["status"] != "ok"] == ["unreadable"] * 2
    assert [int(r["frame"]) for r in rows] == list(range(24))


class _Double:
    """A pipeline double with only what the review window's doubles have."""

    def __init__(self) -> None:
        self.events: list[SpotEvent] = []
        self.degraded = ["double"]
        self.model_info = None
        self.finished = self.closed = False

    def process(self, frame, capture_time=None):  # noqa: ANN001, ANN201
        if frame.index == 20:
            self.events.append(SpotEvent(10, 12, 15, 10 / 30, 12 / 30, 15 / 30, "micro",
                                         "brows", 0.5, emitted_index=20, id=0))
        st = SpotterState(signal={"brows": frame.index / 100.0},
                          combined=frame.index / 100.0, threshold=0.5)
        return FrameResult(frame=frame, face=FaceObservation(face_found=False), spotter=st)

    def finish(self):  # noqa: ANN201
        self.finished = True
        return []

    def close(self) -> None:
        self.closed = True


def test_a_pipeline_passed_in_is_used_and_left_open() -> None:
    double = _Double()
    res = analyze_video("demo:duration=1,seed=1", _config(), pipeline=double,
                        keep_signals=True)
    assert double.finished and not double.closed
    assert res.complete and res.n_frames == 30 and res.frames_with_face == 0
    assert [e.onset for e in res.events] == [10] and res.degraded == ["double"]
    assert res.signals is not None and set(res.signals.rois) == {"brows"}
    assert res.signals.combined[25] == pytest.approx(0.25)


def test_recognition_attaches_predictions(tmp_path_factory) -> None:  # noqa: ANN001
    """With a model, every micro event gets its prediction (``finish`` waits for those
    still pending when the clip ends)."""
    from mestudio.inference.engine import InferenceEngine
    from test_recognition import CLASSES, export_random_m3enet

    engine = InferenceEngine(export_random_m3enet(tmp_path_factory))
    try:
        res = analyze_video(DEMO, _config(recognition=True), engine=engine)
    finally:
        engine.close()
    micro = [e for e in res.events if e.kind == "micro"]
    assert micro and all(e.prediction is not None for e in micro)
    assert all(e.prediction.label in CLASSES for e in micro)
    assert res.model_info is not None and res.model_info["classes"] == list(CLASSES)
    assert res.recognition_stats is not None and res.recognition_stats["failed"] == 0
