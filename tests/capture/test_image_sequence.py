"""Image-sequence folders: frames ordered by the number in the file name."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mestudio.capture import open_source
from mestudio.capture.config import CaptureConfig
from mestudio.capture.imageseq import ImageSequenceSource, frame_sort_key
from mestudio.errors import SourceError


@pytest.mark.parametrize("names", [
    ["img1.jpg", "img2.jpg", "img10.jpg", "img11.jpg", "img100.jpg"],        # CASME
    ["reg_img9.jpg", "reg_img46.jpg", "reg_img120.jpg"],                    # CASME II
    ["006_05562.jpg", "006_05563.jpg", "006_05600.jpg", "006_10001.jpg"],   # SAMM
    ["image036237.bmp", "image036238.bmp", "image036300.bmp"],              # SMIC
])
def test_sort_key_follows_the_frame_number(names: list[str]) -> None:
    shuffled = list(reversed(names))
    assert sorted(shuffled, key=frame_sort_key) == names


def _write(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        img = np.full((12, 16, 3), 10 * k, np.uint8)  # brightness encodes the true order
        assert cv2.imwrite(str(folder / name), img)


def test_folder_source_orders_frames_and_uses_given_fps(tmp_path: Path) -> None:
    names = ["img1.png", "img2.png", "img3.png", "img10.png", "img11.png"]
    _write(tmp_path / "clip", names)
    (tmp_path / "clip" / "notes.txt").write_text("not an image")
    src = open_source(tmp_path / "clip", CaptureConfig(sequence_fps=200.0))
    assert isinstance(src, ImageSequenceSource)
    frames = list(src)
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 10, 20, 30, 40]
    assert [f.timestamp_s for f in frames] == pytest.approx([0, 0.005, 0.01, 0.015, 0.02])
    assert src.size == (16, 12) and src.n_frames == 5 and not src.notes
    assert int(src.read(3).image[0, 0, 0]) == 30


def test_folder_without_fps_assumes_30_and_says_so(tmp_path: Path) -> None:
    _write(tmp_path / "c", ["a1.png", "a2.png"])
    src = open_source(tmp_path / "c")
    assert src.fps == 30.0 and any("30 fps" in n for n in src.notes)
    with pytest.raises(SourceError, match="out of range"):
        src.read(2)


def test_unreadable_image_in_sequence_is_reported(tmp_path: Path) -> None:
    _write(tmp_path / "c", ["f1.png", "f2.png", "f4.png"])
    (tmp_path / "c" / "f3.png").write_bytes(b"garbage")
    src = open_source(tmp_path / "c")
    # Iterating skips the corrupt image (a run goes on) and records its frame number ...
    assert [f.index for f in src] == [0, 1, 3]
    assert src.skipped == [2]
    # ... reading it by number still says which file is bad.
    with pytest.raises(SourceError, match="f3.png"):
        src.read(2)
