"""``mestudio.engine.analysis.analyze_video``, headless: a whole synthetic clip gives its planted
events, progress, frames.csv and the motion signals; stopping midway keeps what was found
(``complete`` False, ``last_frame``); unreadable images are recorded; a pipeline double
(the review window's tests use one) goes through the same loop. The read-ahead threads
(decoding, tracking) keep the frame order and the results, stay bounded, respect
``max_frames`` and stop cleanly on a stop, a failing source, pipeline or tracker."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from mestudio.capture import open_source
from mestudio.capture.base import FrameSource
from mestudio.config import AppConfig
from mestudio.engine.analysis import READ_AHEAD, AnalysisResult, analyze_video
from mestudio.errors import SourceError
from mestudio.spotting.metrics import match_intervals
from mestudio.types import FaceObservation, Frame, FrameResult, SpotEvent, SpotterState

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
                          "spotter", "recognition", "degraded", "unreadable_frames", "notes",
                          "faces", "max_faces"]
    assert meta["faces"] == "primary" and meta["max_faces"] == 4
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


# ------------------------------------------------------------------------- read-ahead


class _Counted(FrameSource):
    """``n`` small frames; counts the reads; optionally raises at frame ``fail_at``."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        super().__init__()
        self.name, self.fps, self.n_frames, self.size = "counted", 30.0, n, (64, 48)
        self.fail_at = fail_at
        self.reads = 0

    def __iter__(self):  # noqa: ANN204
        for i in range(self.n_frames or 0):
            if i == self.fail_at:
                raise SourceError(f"frame {i} is damaged")
            self.reads += 1
            yield Frame(i, i / 30.0, np.full((48, 64, 3), i % 256, np.uint8))


class _Recorder(_Double):
    """A pipeline double that records the frames it got and how far the source was read."""

    def __init__(self, source: _Counted, fail_at: int | None = None) -> None:
        super().__init__()
        self.source, self.fail_at = source, fail_at
        self.seen: list[int] = []
        self.lead: list[int] = []

    def process(self, frame, capture_time=None):  # noqa: ANN001, ANN201
        if frame.index == self.fail_at:
            raise ValueError("the pipeline failed")
        self.seen.append(frame.index)
        self.lead.append(self.source.reads - len(self.seen))
        return super().process(frame, capture_time)


def _no_leak(before: set[threading.Thread]) -> None:
    """No thread started since ``before`` is still alive (threads of earlier tests may end
    meanwhile; they do not count)."""
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, left


def test_read_ahead_keeps_order_and_stays_bounded() -> None:
    before = set(threading.enumerate())
    src = _Counted(200)
    double = _Recorder(src)
    res = analyze_video(src, _config(), pipeline=double, read_ahead=4)
    assert res.complete and double.seen == list(range(200)) and src.reads == 200
    assert max(double.lead) <= 4 + 2        # never more than the queue (+ one in hand)
    _no_leak(before)


def test_read_ahead_reads_exactly_max_frames() -> None:
    before = set(threading.enumerate())
    src = _Counted(200)
    double = _Recorder(src)
    res = analyze_video(src, _config(), pipeline=double, max_frames=30)
    assert res.complete and res.n_frames == 30 and double.seen == list(range(30))
    assert src.reads == 30                   # the decode thread did not read beyond
    _no_leak(before)


def test_a_source_that_fails_midway_fails_the_analysis_at_that_frame() -> None:
    before = set(threading.enumerate())
    src = _Counted(100, fail_at=37)
    double = _Recorder(src)
    with pytest.raises(SourceError, match="frame 37 is damaged"):
        analyze_video(src, _config(), pipeline=double)
    assert double.seen == list(range(37))   # every frame before it was processed
    _no_leak(before)


def test_a_pipeline_that_fails_midway_stops_the_threads() -> None:
    before = set(threading.enumerate())
    src = _Counted(500)
    double = _Recorder(src, fail_at=20)
    with pytest.raises(ValueError, match="the pipeline failed"):
        analyze_video(src, _config(), pipeline=double)
    assert src.reads < 20 + 2 * READ_AHEAD + 3
    _no_leak(before)


def test_a_stop_leaves_a_seekable_source_at_the_first_unprocessed_frame() -> None:
    before = set(threading.enumerate())
    stop = threading.Event()

    def on_result(result: FrameResult) -> None:
        if result.frame.index == 39:
            stop.set()

    with open_source("demo:duration=4,seed=2") as src:
        res = analyze_video(src, _config(), stop=stop, on_result=on_result)
        assert not res.complete and res.last_frame == 39 and res.n_frames == 40
        _no_leak(before)
        assert next(iter(src)).index == 40    # as a serial loop leaves it


@pytest.mark.parametrize("spec", ["demo:duration=4,seed=3", "demo:duration=3,seed=5,blinks=1"])
def test_read_ahead_gives_the_same_results_as_a_serial_loop(tmp_path: Path, spec: str) -> None:
    """Decoding and tracking in their own threads change nothing in the outputs."""
    before, cv_threads = set(threading.enumerate()), cv2.getNumThreads()
    runs = {}
    for ahead in (0, READ_AHEAD):
        seen: list[int] = []
        res = analyze_video(spec, _config(), read_ahead=ahead, keep_signals=True,
                            frames_csv=tmp_path / f"frames{ahead}.csv",
                            on_result=lambda r, seen=seen: seen.append(r.frame.index))
        runs[ahead] = res
        assert seen == list(range(res.n_frames)) and res.complete
        _no_leak(before)
        assert cv2.getNumThreads() == cv_threads   # OpenCV's pool size is put back
    serial, ahead = runs[0], runs[READ_AHEAD]
    assert (tmp_path / "frames0.csv").read_bytes() == \
        (tmp_path / f"frames{READ_AHEAD}.csv").read_bytes()
    assert [(e.onset, e.apex, e.offset, e.kind) for e in serial.events] == \
        [(e.onset, e.apex, e.offset, e.kind) for e in ahead.events]
    assert serial.signals is not None and ahead.signals is not None
    assert np.array_equal(serial.signals.combined, ahead.signals.combined, equal_nan=True)
    assert ahead.timings.track_ms > 0       # tracking time measured in its thread


def test_read_ahead_on_a_real_video_is_identical(tmp_path: Path, video_dir: Path) -> None:
    clip = video_dir / "single_face.mp4"
    for ahead in (0, READ_AHEAD):
        analyze_video(clip, _config(), read_ahead=ahead, frames_csv=tmp_path / f"f{ahead}.csv")
    assert (tmp_path / "f0.csv").read_bytes() == (tmp_path / f"f{READ_AHEAD}.csv").read_bytes()


def test_a_tracker_that_fails_fails_the_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    from mestudio.face.tracker import FaceTracker

    before = set(threading.enumerate())
    real = FaceTracker.update

    def update(self, frame):  # noqa: ANN001, ANN202
        if frame.index == 12:
            raise RuntimeError("tracker broke")
        return real(self, frame)

    monkeypatch.setattr(FaceTracker, "update", update)
    seen: list[int] = []
    with pytest.raises(RuntimeError, match="tracker broke"):
        analyze_video("demo:duration=2,seed=1", _config(),
                      on_result=lambda r: seen.append(r.frame.index))
    assert seen == list(range(12))
    _no_leak(before)
