"""Video files: container timestamps, exact random access, clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mestudio.capture import open_source
from mestudio.capture.video import VideoFileSource
from mestudio.errors import SourceError


def _sequential(path: Path) -> tuple[list[np.ndarray], list[float]]:
    cap = cv2.VideoCapture(str(path))
    images, times = [], []
    while True:
        ok, img = cap.read()
        if not ok:
            return images, times
        images.append(img)
        times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)


def test_constant_rate_video_has_exact_times_and_size(video_dir: Path) -> None:
    with open_source(video_dir / "single_face.mp4") as src:
        assert isinstance(src, VideoFileSource)
        assert (src.size, src.fps, src.n_frames, src.seekable) == ((640, 360), 30.0, 72, True)
        frames = list(src)
    assert [f.index for f in frames] == list(range(72))
    assert np.allclose([f.timestamp_s for f in frames], np.arange(72) / 30.0, atol=1e-6)
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8


def test_variable_rate_hevc_keeps_container_times_and_seeks_exactly(video_dir: Path) -> None:
    """The HEVC .mov is variable-rate: its second frame comes 13.7 ms after the first and
    the nominal fps (26.5) matches no interval; a frame-number seek in OpenCV lands several
    frames off. The source must give the container's times and the exact frame on read(i)."""
    path = video_dir / "noface_then_face.mov"
    images, times = _sequential(path)
    src = VideoFileSource(path)
    got = list(src)
    assert len(got) == len(images) == src.n_frames
    ts = np.array([f.timestamp_s for f in got])
    assert np.allclose(ts, times, atol=1e-6)
    assert np.all(np.diff(ts) > 0)
    assert abs(ts[1] - 1 / src.fps) > 0.01  # not index / nominal fps
    for i in (150, 96, 95, 97, 60, 3, 120):  # jumps back and forth, then a short step
        frame = src.read(i)
        assert frame.index == i and frame.timestamp_s == pytest.approx(times[i], abs=1e-6)
        assert np.array_equal(frame.image, images[i]), f"read({i}) returned another frame"
    with pytest.raises(SourceError, match="out of range"):
        src.read(len(images))
    src.close()


def test_fresh_source_random_read_before_iteration(video_dir: Path) -> None:
    path = video_dir / "face_then_noface.mov"
    images, times = _sequential(path)
    with VideoFileSource(path) as src:
        for i in (140, 72, 71):
            assert np.array_equal(src.read(i).image, images[i])
            assert src.read(i).timestamp_s == pytest.approx(times[i], abs=1e-6)


class _NoTimestamps:
    """A VideoCapture whose container reports no timestamps (POS_MSEC always 0)."""

    def __init__(self, cap: cv2.VideoCapture) -> None:
        self._cap = cap

    def get(self, prop: int) -> float:
        return 0.0 if prop == cv2.CAP_PROP_POS_MSEC else self._cap.get(prop)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._cap, name)


def test_container_without_timestamps_falls_back_to_index_over_fps(
        video_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = VideoFileSource._open_capture
    monkeypatch.setattr(VideoFileSource, "_open_capture",
                        lambda self: _NoTimestamps(real_open(self)))
    with VideoFileSource(video_dir / "single_face.mp4") as src:
        times = [f.timestamp_s for f in src]
        assert not src.timestamps_from_container
        assert any("timestamps" in note for note in src.notes)
    assert np.allclose(times, np.arange(72) / 30.0)


def _bad_files(tmp: Path, video_dir: Path) -> dict[str, Path]:
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "notes.mp4").write_text("this is a text file, not a video\n")
    (tmp / "noise.mov").write_bytes(np.random.default_rng(0).integers(0, 256, 40000,
                                                                      np.uint8).tobytes())
    head = (video_dir / "single_face.mp4").read_bytes()[:20000]
    (tmp / "truncated.mp4").write_bytes(head)
    (tmp / "no_images").mkdir()
    (tmp / "no_images" / "readme.txt").write_text("x")
    return {"missing": tmp / "does_not_exist.mp4", "empty": tmp / "empty.mp4",
            "text": tmp / "notes.mp4", "corrupt": tmp / "noise.mov",
            "truncated": tmp / "truncated.mp4", "folder without images": tmp / "no_images"}


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "corrupt", "truncated",
                                  "folder without images"])
def test_bad_inputs_raise_source_error_naming_the_file(kind: str, tmp_path: Path,
                                                       video_dir: Path) -> None:
    path = _bad_files(tmp_path, video_dir)[kind]
    with pytest.raises(SourceError) as info:
        open_source(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
