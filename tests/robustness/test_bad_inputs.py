"""Inputs that are partly bad: a corrupt image in a folder is skipped and counted, a
truncated video says where it ended, a ``--model`` that does not exist is one line (exit 2),
and ``models verify`` checks the shipped recognition model against its .sha256."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from robust_cli import ROOT, error_line, mestudio

from mestudio.cli import main


def _demo_frames(n: int, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    from mestudio.capture import open_source

    with open_source(f"demo:duration={n / 30:.3f},seed=4") as src:
        return [cv2.resize(f.image, size) for f, _ in zip(src, range(n), strict=False)]


def _analyze(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["analyze", *argv, "--no-progress", "--no-recognition"])
    return code, out.getvalue()


def test_a_corrupt_image_is_skipped_counted_and_marked(tmp_path: Path) -> None:
    folder = tmp_path / "seq"
    folder.mkdir()
    for i, img in enumerate(_demo_frames(24)):
        cv2.imwrite(str(folder / f"img{i:03d}.png"), img)
    good = (folder / "img007.png").read_bytes()
    (folder / "img007.png").write_bytes(good[:200])         # truncated download
    (folder / "img015.png").write_bytes(b"not an image")
    code, stdout = _analyze(str(folder), "--out", str(tmp_path / "out"))
    assert code == 0
    assert "2 unreadable image(s) skipped (frame 7, 15" in stdout
    with (tmp_path / "out" / "frames.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(24))  # every frame has its row
    bad = [r for r in rows if r["status"] == "unreadable"]
    assert [int(r["frame"]) for r in bad] == [7, 15]
    assert all(r["face_found"] == "" for r in bad)
    assert {r["status"] for r in rows} == {"ok", "unreadable"}
    assert sum(r["face_found"] == "1" for r in rows) >= 20
    doc = json.loads((tmp_path / "out" / "events.json").read_text())
    assert doc["unreadable_frames"] == [7, 15] and doc["complete"] is True


def test_a_truncated_video_says_where_it_ended(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 30, (320, 240))
    for img in _demo_frames(60):
        writer.write(img)
    writer.release()
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])                # the copy stopped half-way
    code, stdout = _analyze(str(video), "--out", str(tmp_path / "out"))
    assert code == 0
    n = json.loads((tmp_path / "out" / "events.json").read_text())["n_frames"]
    assert 10 < n < 50
    assert f"video ended at frame {n} of 60 announced" in stdout


def test_a_model_the_user_named_must_exist(tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nope.onnx"
    assert main(["analyze", "demo:duration=1", "--out", str(tmp_path / "o"), "--model",
                 str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and "does not exist" in err[0]
    assert not (tmp_path / "o").exists()


def test_models_verify_checks_the_shipped_recognition_model(tmp_path: Path) -> None:
    shipped = ROOT / "models" / "m3enet_synthetic.onnx"
    if not shipped.is_file():
        pytest.skip("the shipped recognition model is not in models/")
    ok = mestudio("models", "verify")
    assert "m3enet_synthetic.onnx: sha256 OK" in ok.stdout, ok.stdout + ok.stderr
    # A damaged copy found first (MESTUDIO_MODELS_DIR) fails the check.
    models = tmp_path / "models"
    models.mkdir()
    data = bytearray(shipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (models / shipped.name).write_bytes(bytes(data))
    shutil.copy(shipped.with_name(shipped.name + ".sha256"), models)
    from robust_cli import cli_env

    bad = mestudio("models", "verify", env=cli_env(MESTUDIO_MODELS_DIR=str(models)))
    assert bad.returncode == 1
    assert "m3enet_synthetic.onnx: sha256 MISMATCH" in bad.stdout
    assert "Traceback" not in bad.stderr


def test_error_line_helper_rejects_a_traceback() -> None:
    """The helper the other tests rely on fails on a traceback (so they can fail)."""
    import subprocess

    proc = subprocess.CompletedProcess([], 2, "", "Traceback (most recent call last):\n")
    with pytest.raises(AssertionError):
        error_line(proc, "analyze")
