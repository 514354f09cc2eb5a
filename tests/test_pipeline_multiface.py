"""Every face its own micro-expressions: the pipeline with ``tracker.faces = "all"`` on a
composite of two real faces, one with planted micro-expressions (the demo clip) and one
nearly still (``single_face.mp4``), side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mestudio.capture import open_source
from mestudio.config import AppConfig
from mestudio.engine.pipeline import Pipeline
from mestudio.spotting.metrics import match_intervals
from mestudio.types import Frame

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def left_frames(video_dir: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video_dir / "single_face.mp4"))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(f, (640, 360)))
    cap.release()
    if not frames:
        pytest.skip("single_face.mp4 could not be decoded")
    return frames + frames[-2:0:-1]  # ping-pong: no jump at the loop point


def _run(left: list[np.ndarray], cfg: AppConfig, duration: int = 10,
         hide_right: tuple[int, int] | None = None):
    demo = open_source(f"demo:duration={duration},seed=0")
    planted = [e for e in demo.clip.events if e.kind == "micro"]
    pipe = Pipeline.from_config(cfg)
    if any("LBF" in d or "YuNet" in d or "Haar" in d for d in pipe.degraded):
        pipe.close()
        pytest.skip(f"face models not found: {pipe.degraded}")
    results = []
    try:
        with demo:
            for fr in demo:
                right = cv2.resize(fr.image, (480, 360))
                if hide_right is not None and hide_right[0] <= fr.index < hide_right[1]:
                    right = np.full_like(right, 40)
                img = np.concatenate([left[fr.index % len(left)], right], axis=1)
                results.append(pipe.process(Frame(fr.index, fr.timestamp_s, img)))
        pipe.finish()
        return pipe, results, planted, pipe.pop_face_states()
    finally:
        pipe.close()


def test_each_face_gets_its_own_events_with_stable_numbers(left_frames, models_dir) -> None:
    cfg = AppConfig()
    cfg.tracker.faces = "all"
    pipe, results, planted, states = _run(left_frames, cfg)
    ids = sorted({f.face_id for r in results for f in r.faces})
    assert ids == [1, 2], ids  # two faces, numbered once, never renumbered
    right_id = next(f.face_id for f in results[-1].faces if f.face.box[0] > 600)
    micro = [e for e in pipe.events if e.kind == "micro"]
    # the planted events are found on the right face, as well as on a single face
    on_right = [e for e in micro if e.face_id == right_id]
    assert len(match_intervals(on_right, planted, iou=0.5)) == len(planted) == 3
    assert all(e.face_id == right_id for e in micro), [(e.face_id, e.onset) for e in micro]
    # recognition ran per face: the right face's events got an emotion
    assert all(e.prediction is not None for e in on_right)
    # every frame has a result per face; the long-format states cover both faces
    assert all(len(r.faces) == 2 for r in results[30:])
    assert {fid for fid, *_ in states} == {1, 2}
    per_face = {fid: [i for f, i, *_ in states if f == fid] for fid in (1, 2)}
    assert all(v == sorted(v) and len(v) >= 0.9 * len(results) for v in per_face.values())


def test_a_face_that_leaves_ends_its_events_and_comes_back_new(left_frames, models_dir) -> None:
    cfg = AppConfig()
    cfg.tracker.faces = "all"
    cfg.recognition.enabled = False
    # the right face is hidden for 3 s (frames 120-210): its track ends after 1 s
    pipe, results, _planted, _states = _run(left_frames, cfg, hide_right=(120, 210))
    ids = sorted({f.face_id for r in results for f in r.faces})
    assert ids == [1, 2, 3], ids  # the returning face is a new face, not 2 again
    during = [r for r in results if 160 <= r.frame.index < 200]
    assert all([f.face_id for f in r.faces] == [1] for r in during)
    # the primary face (FrameResult.face) is the largest face found: the left one
    assert all(r.face.face_found and r.face.box[0] < 640 for r in during)


def test_primary_mode_keeps_one_face_numbered_zero(left_frames, models_dir) -> None:
    cfg = AppConfig()
    cfg.recognition.enabled = False
    pipe, results, _planted, states = _run(left_frames, cfg, duration=4)
    assert all([f.face_id for f in r.faces] == [0] for r in results)
    assert all(e.face_id == 0 for e in pipe.events)
    assert {fid for fid, *_ in states} == {0}


def test_unknown_face_mode_is_one_clear_error() -> None:
    from mestudio.errors import ConfigError

    cfg = AppConfig()
    cfg.tracker.faces = "everyone"
    with pytest.raises(ConfigError, match="primary, all"):
        Pipeline(cfg, recognition=False)
