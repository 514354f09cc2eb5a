"""The pipeline with spotting: synthetic clip with planted micro-expressions, a video without a
face, per-frame state and timings, and the degraded mode without a recognition model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mestudio.capture import open_source
from mestudio.config import AppConfig
from mestudio.engine.pipeline import NO_MODEL, Pipeline
from mestudio.spotting.metrics import match_intervals

DEMO = "demo:duration=10,seed=0,blinks=1"


@pytest.fixture(scope="module")
def demo_run():
    """One pass of the spotting pipeline (no recognition) over a 10 s synthetic clip:
    ``(results, events emitted by finish(), pipeline, planted events, fps)``."""
    pipeline = Pipeline(spotting=True, recognition=False)
    with open_source(DEMO) as src:
        results = list(pipeline.run(src))
        planted = list(src.clip.events)
        fps = src.fps
    late = pipeline.finish()
    pipeline.close()
    return results, late, pipeline, planted, fps


def test_micro_events_are_found_near_the_planted_ones(demo_run) -> None:
    results, _late, pipeline, planted, _fps = demo_run
    truth = [e for e in planted if e.kind == "micro"]
    micro = [e for e in pipeline.events if e.kind == "micro"]
    matches = match_intervals(micro, truth, iou=0.5)
    print(f"planted micro {[(e.onset, e.offset) for e in truth]}; "
          f"spotted {[(e.onset, e.apex, e.offset, e.roi) for e in pipeline.events]}")
    assert len(truth) == 3
    assert len(matches) >= len(truth) - 1          # recall >= 2/3 at IoU >= 0.5
    assert len(micro) <= len(truth) + 1            # at most one false event (the blink)
    for i, j, _iou in matches:
        assert abs(micro[i].apex - truth[j].apex) <= 3   # apex within 0.1 s
    # Events are numbered in emission order and every one is reported exactly once.
    assert [e.id for e in pipeline.events] == list(range(len(pipeline.events)))
    emitted = [e for r in results for e in r.events]
    assert emitted + _late == pipeline.events
    assert all(e.prediction is None for e in pipeline.events)   # recognition off


def test_events_are_emitted_online_within_the_configured_delay(demo_run) -> None:
    results, _late, pipeline, _planted, fps = demo_run
    # the flow-threshold spotter: emit_delay_s; the expression spotter waits for its
    # opening and merge window too (ExpressionSpotter.emit_within_s)
    delay = getattr(pipeline.spotter, "emit_within_s", AppConfig().spotter.emit_delay_s)
    for r in results:
        for ev in r.events:
            assert ev.emitted_index == r.frame.index
            assert r.frame.timestamp_s <= ev.offset_s + delay + 1.0 / fps + 1e-6
            assert ev.onset <= ev.apex <= ev.offset < r.frame.index


def test_every_frame_has_spotter_state_and_stage_timings(demo_run) -> None:
    results, _late, _pipeline, _planted, _fps = demo_run
    states = {r.spotter.state for r in results}
    assert results[0].spotter.state == "calibrating"
    assert {"idle", "in_event"} <= states or {"idle", "rising"} <= states
    for r in results:
        assert {"track", "signal", "spot", "total", "decode"} <= set(r.timings_ms)
        assert set(r.spotter.signal) >= {"brow_left", "brow_right"}
        assert np.isfinite(r.spotter.combined)
    calibrated = [r.spotter for r in results if r.spotter.state != "calibrating"]
    assert all(s.threshold > s.baseline for s in calibrated)
    per_frame = [r.timings_ms["track"] + r.timings_ms["signal"] + r.timings_ms["spot"]
                 for r in results]
    med = float(np.median(per_frame))
    print(f"tracking + spotting: median {med:.2f} ms/frame, p90 "
          f"{np.percentile(per_frame, 90):.2f} ms (640x480, shared machine)")
    # Budget ~10 ms/frame; the bound is loose because the test machine is shared and busy.
    assert med < 40.0


def test_finalised_spotter_states_cover_every_face_frame(demo_run) -> None:
    _results, _late, pipeline, _planted, _fps = demo_run
    # pop_spotter_states() was never called during the run: the last 4096 are kept.
    states = pipeline.pop_spotter_states()
    assert [i for i, _t, _s in states] == list(range(300))
    assert pipeline.pop_spotter_states() == []


def test_video_without_a_face_gives_no_events_and_no_crash(video_dir: Path) -> None:
    pipeline = Pipeline(recognition=False)
    with open_source(video_dir / "no_face.mp4") as src:
        results = list(pipeline.run(src))
    assert pipeline.finish() == []
    pipeline.close()
    assert len(results) == 95 and pipeline.frames_with_face == 0
    assert pipeline.events == []
    assert all(r.spotter is not None and r.spotter.state == "no_face" for r in results)


def test_spotting_off_leaves_spotter_state_empty(video_dir: Path) -> None:
    pipeline = Pipeline(spotting=False, recognition=True)
    with open_source(video_dir / "single_face.mp4") as src:
        results = list(pipeline.run(src, max_frames=5))
    assert all(r.spotter is None and r.events == [] for r in results)
    assert pipeline.recognizer is None and pipeline.model_info is None
    assert pipeline.finish() == []


def test_missing_model_is_a_degraded_mode_not_an_error(tmp_path: Path,
                                                       video_dir: Path) -> None:
    cfg = AppConfig()
    cfg.recognition.model = str(tmp_path / "missing.onnx")
    pipeline = Pipeline(cfg)
    assert pipeline.model_info is None and pipeline.recognizer is None
    assert any(line.startswith(NO_MODEL) and "missing.onnx" in line
               for line in pipeline.degraded)
    with open_source(video_dir / "single_face.mp4") as src:
        result = next(pipeline.run(src))
    assert NO_MODEL in result.info["degraded"]
    assert result.spotter is not None                    # spotting still runs
    pipeline.close()


def test_roi_signal_follows_the_trackers_crop_geometry() -> None:
    """Box-only crops put the eyes where the tracker's config says: the ROI signal must place
    its regions with the same geometry (a non-default eye line / distance moves them)."""
    from mestudio.spotting.rois import canonical_geometry, roi_masks

    cfg = AppConfig()
    cfg.tracker.align_eye_y, cfg.tracker.align_eye_dist = 0.45, 0.34
    pipeline = Pipeline(cfg, recognition=False)
    try:
        assert pipeline.signal.tracker_config is cfg.tracker
        got = pipeline.signal.rois(128)
        want = roi_masks(canonical_geometry(128, cfg.tracker), 128)
        default = roi_masks(canonical_geometry(128), 128)
        assert got.keys() == want.keys()
        assert all(np.array_equal(got[k], want[k]) for k in want)
        assert not all(np.array_equal(got[k], default[k]) for k in default)
    finally:
        pipeline.close()
