"""truth.json round trip, written media, and the ``mestudio synth`` command."""

from __future__ import annotations

import io
import json
import sys

import cv2
import numpy as np
import pytest

from mestudio.cli import main
from mestudio.errors import SourceError
from mestudio.synth import TRUTH_FORMAT, read_truth, synthesize_clip, write_clip

SMALL = (160, 120)


@pytest.mark.parametrize("fps", [30.0, 100.0])
def test_truth_round_trip_and_valid_frame_indices(tmp_path, fps):
    clip = synthesize_clip(fps=fps, duration_s=6.0, seed=2, size=SMALL, n_micro=2, n_blinks=1,
                           n_macro=0)
    truth = clip.truth()
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    events, meta = read_truth(tmp_path)
    assert events == clip.events
    assert meta["format"] == TRUTH_FORMAT and meta["fps"] == fps
    assert meta["n_frames"] == clip.n_frames == round(6.0 * fps)
    for d in truth["events"]:
        assert set(d) >= {"onset", "apex", "offset", "onset_s", "apex_s", "offset_s", "kind",
                          "label", "aus", "amplitude"}
        assert 0 <= d["onset"] < d["apex"] < d["offset"] < meta["n_frames"]
        assert d["apex_s"] == pytest.approx(d["apex"] / fps, abs=1e-6)
    # The spotting evaluation reads the same file.
    events_io = pytest.importorskip("mestudio.events_io")
    if hasattr(events_io, "read_truth_json"):
        dicts, _ = events_io.read_truth_json(tmp_path / "truth.json")
        assert [(d["onset"], d["offset"], d["kind"]) for d in dicts] == \
            [(e.onset, e.offset, e.kind) for e in events]


def test_write_frames_is_lossless(tmp_path):
    clip = synthesize_clip(fps=30.0, duration_s=0.5, seed=1, size=SMALL, n_micro=0)
    media = write_clip(clip, tmp_path, video=False)
    assert media == tmp_path / "frames"
    files = sorted(media.glob("*.png"))
    assert len(files) == clip.n_frames
    assert np.array_equal(cv2.imread(str(files[7])), clip.frame(7))
    _, meta = read_truth(tmp_path / "truth.json")
    assert meta["media"] == "frames"


def test_read_truth_rejects_other_files(tmp_path):
    (tmp_path / "truth.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SourceError, match="not a mestudio truth file"):
        read_truth(tmp_path)
    with pytest.raises(SourceError, match="not found"):
        read_truth(tmp_path / "missing.json")


def test_cli_writes_a_playable_video_and_truth(tmp_path, capsys):
    out = tmp_path / "clip"
    rc = main(["-q", "synth", "--out", str(out), "--duration", "2.5", "--fps", "25",
               "--size", "160x120", "--micro", "1", "--blinks", "0", "--seed", "4"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "62 frames" in printed and "1 micro" in printed
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert cap.isOpened()
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (120, 160, 3)
        n += 1
    cap.release()
    events, meta = read_truth(out)
    assert n == meta["n_frames"] == 62 and meta["media"] == "clip.mp4"
    assert meta["fps"] == 25.0 and [e.kind for e in events] == ["micro"]


def test_cli_missing_face_file_exits_2_with_a_message(tmp_path, capsys):
    rc = main(["synth", "--out", str(tmp_path / "x"), "--face", str(tmp_path / "nope.jpg")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "nope.jpg" in err and "does not exist" in err
    assert not (tmp_path / "x").exists()


def test_cli_face_photo_without_a_face_exits_2(tmp_path, capsys):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 128, np.uint8))
    rc = main(["synth", "--out", str(tmp_path / "x"), "--face", str(blank), "--duration", "1"])
    assert rc == 2
    assert "no face found" in capsys.readouterr().err


def test_video_writer_failure_falls_back_to_png_frames(tmp_path, monkeypatch):
    class BrokenWriter:
        def __init__(self, *args, **kwargs):
            pass

        def isOpened(self):  # noqa: N802 - OpenCV's name
            return False

        def release(self):
            pass

    BrokenWriter.fourcc = staticmethod(lambda *a: 0)  # type: ignore[attr-defined]
    monkeypatch.setattr(cv2, "VideoWriter", BrokenWriter)
    clip = synthesize_clip(fps=30.0, duration_s=0.3, seed=1, size=SMALL, n_micro=0)
    media = write_clip(clip, tmp_path, video=True)
    assert media.name == "frames" and len(list(media.glob("*.png"))) == clip.n_frames
    assert not (tmp_path / "clip.mp4").exists()
    assert read_truth(tmp_path)[1]["media"] == "frames"


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal (tqdm shows its bar only on one)."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("tty", "flag", "bar"), [(False, [], False), (True, [], True),
                                                   (True, ["--no-progress"], False)])
def test_cli_progress_bar_only_on_a_terminal(tmp_path, monkeypatch, tty, flag, bar):
    """Like ``analyze``: the bar goes to stderr when it is a terminal, never into a log or a
    pipe, and ``--no-progress`` hides it on a terminal too."""
    err = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    rc = main(["-q", "synth", "--out", str(tmp_path / "c"), "--duration", "0.4", "--fps", "10",
               "--size", "64x48", "--micro", "0", "--blinks", "0", "--no-distractors",
               "--frames", *flag])
    assert rc == 0
    assert ("synth:" in err.getvalue()) == bar, err.getvalue()
