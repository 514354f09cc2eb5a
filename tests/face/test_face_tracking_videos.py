"""Face found/not found on the shared test videos, and transitions at the right time.

True transition times were established by inspecting the videos (contact sheets every 6th
frame, then the mean brightness and the mean absolute difference between consecutive
frames around the cut):

* ``face_then_noface.mov``: the face is on screen for frames 0-71 (last at 2.367 s); frame
  72 (t = 2.400 s) is black and the clip then shows an animated title over sky. The frame
  difference jumps from 1.5 to 145 grey levels exactly between frames 71 and 72, so the
  face disappears at 2.400 s.
* ``noface_then_face.mov``: sky + title until frame 95 (3.930 s); frame 96 (t = 3.945 s)
  cuts to the face (frame difference 77 grey levels against < 6 before). Its last frame,
  168, is black (mean brightness 0), so a face-free frame at the very end is right too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mestudio.capture import open_source
from mestudio.face.tracker import FaceTracker

_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def track(video: Path) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, face_found) over the whole video (cached per module)."""
    if video.name not in _CACHE:
        tracker = FaceTracker()
        assert tracker.detector_name == "YuNet" and tracker.landmark_count == 5
        ts, found = [], []
        with open_source(video) as src:
            for frame in src:
                obs = tracker.update(frame)
                ts.append(frame.timestamp_s)
                found.append(obs.face_found)
                if obs.face_found:
                    assert obs.aligned is not None and obs.aligned.shape == (128, 128, 3)
        _CACHE[video.name] = (np.array(ts), np.array(found))
    return _CACHE[video.name]


@pytest.mark.parametrize("name", ["single_face.mp4", "frontal_speech.mp4"])
def test_face_found_in_at_least_95_percent(video_dir: Path, name: str) -> None:
    _, found = track(video_dir / name)
    assert found.mean() >= 0.95


def test_no_face_video_reports_no_face(video_dir: Path) -> None:
    _, found = track(video_dir / "no_face.mp4")
    assert found.mean() == 0.0


def test_face_leaving_is_reported_within_half_a_second(video_dir: Path) -> None:
    ts, found = track(video_dir / "face_then_noface.mov")
    true_cut = 2.400
    before, after = found[ts < true_cut], found[ts >= true_cut + 0.5]
    assert before.mean() >= 0.95 and after.mean() == 0.0
    last_face = ts[np.flatnonzero(found)[-1]]
    # The face is reported until the cut and no longer than 0.5 s after it.
    assert true_cut - 0.5 <= last_face + 1e-3 and last_face < true_cut + 0.5


def test_face_arriving_is_reported_within_half_a_second(video_dir: Path) -> None:
    ts, found = track(video_dir / "noface_then_face.mov")
    true_cut = 3.945
    assert found[ts < true_cut].mean() == 0.0
    first_face = ts[np.flatnonzero(found)[0]]
    assert true_cut <= first_face < true_cut + 0.5
    face_part = found[(ts >= true_cut + 0.5) & (ts < 6.3)]
    assert face_part.mean() >= 0.95
