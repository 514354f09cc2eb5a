"""Pipeline (tracking stage) over a file source, and the frames.csv writer."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mestudio.capture import open_source
from mestudio.csvio import BASE_COLUMNS, FramesCsvWriter
from mestudio.engine.pipeline import Pipeline


def test_pipeline_tracks_every_frame_with_timings(video_dir: Path) -> None:
    pipeline = Pipeline(spotting=False, recognition=False)
    with open_source(video_dir / "single_face.mp4") as src:
        results = list(pipeline.run(src, max_frames=20))
    assert [r.frame.index for r in results] == list(range(20))
    assert all(r.face.face_found and r.face.aligned.shape == (128, 128, 3) for r in results)
    assert all({"decode", "track", "detect", "landmarks", "align"} <= set(r.timings_ms)
               for r in results)
    assert pipeline.frames_processed == pipeline.frames_with_face == 20
    assert pipeline.finish() == [] and pipeline.degraded == []
    # Detection is amortised: far fewer detector runs than frames.
    assert pipeline.tracker.n_detections <= 3
    pipeline.close()


def _result(video_dir: Path):  # noqa: ANN202
    pipeline = Pipeline(spotting=False, recognition=False)
    with open_source(video_dir / "single_face.mp4") as src:
        return pipeline.tracker.landmark_names, next(pipeline.run(src, max_frames=1))


def test_frames_csv_has_landmark_pairs_and_extra_columns(video_dir: Path,
                                                         tmp_path: Path) -> None:
    names, result = _result(video_dir)
    path = tmp_path / "frames.csv"
    with FramesCsvWriter(path, names) as writer:
        writer.write(result, {"signal_brows": 0.25, "state": "idle"})
        writer.write(result, {"signal_brows": 0.5})
        with pytest.raises(ValueError, match="not columns"):
            writer.write(result, {"unknown": 1})
    rows = list(csv.DictReader(path.open()))
    header = list(rows[0])
    assert header[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert header[-2:] == ["signal_brows", "state"]
    assert [f"x_{n}" for n in names] == [h for h in header if h.startswith("x_")]
    assert rows[0]["face_found"] == "1" and rows[0]["state"] == "idle" and rows[1]["state"] == ""
    assert float(rows[0]["signal_brows"]) == 0.25
    x0 = float(rows[0][f"x_{names[0]}"])
    assert x0 == pytest.approx(float(result.face.landmarks[0][0]), abs=0.01)
