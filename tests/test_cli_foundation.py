"""The foundation commands, run in-process: analyze, doctor, models, bench tracking."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mestudio.cli import main


def test_analyze_writes_frames_csv_and_one_line_summary(video_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    code = main(["analyze", str(video_dir / "single_face.mp4"), "--out", str(out),
                 "--max-frames", "30", "--no-progress"])
    assert code == 0
    rows = list(csv.DictReader((out / "frames.csv").open()))
    assert len(rows) == 30 and all(r["face_found"] == "1" for r in rows)
    assert {"frame", "timestamp", "n_faces", "confidence", "box_w", "x_nose", "y_nose"} <= \
        set(rows[0])
    assert np.allclose([float(r["timestamp"]) for r in rows], np.arange(30) / 30, atol=1e-5)
    stdout = capsys.readouterr().out.strip().splitlines()
    assert len(stdout) == 1 and "30 frames" in stdout[0] and "face in 100.0%" in stdout[0]
    assert "frames/s" in stdout[0]


@pytest.mark.parametrize("spec", ["missing.mp4", "empty.mp4", "text.mp4", "corrupt.mp4",
                                  "camera:9"])
def test_analyze_bad_input_exits_2_with_one_line(spec: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "corrupt.mp4").write_bytes(bytes(range(256)) * 200)
    target = spec if spec.startswith("camera:") else str(tmp_path / spec)
    code = main(["analyze", target, "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("mestudio analyze: error:")
    assert "Traceback" not in err[0]
    assert not (tmp_path / "o" / "frames.csv").exists()


def test_models_list_and_offline_fetch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "face_detection_yunet_2023mar.onnx" in out and "lbfmodel.yaml" in out
    assert "MIT" in out and "MISSING" in out  # the 68-point model is not in the test data

    def offline(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code = main(["models", "fetch", "lbfmodel.yaml", "--dest", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "offline" in err[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    assert main(["models", "fetch", "no_such_model"]) == 2


def test_doctor_reports_models_and_degraded_modes(capsys: pytest.CaptureFixture) -> None:
    assert main(["doctor", "--no-cameras"]) == 0
    out = capsys.readouterr().out
    for heading in ("Versions", "ONNX Runtime", "torch", "Model files", "Degraded modes"):
        assert heading in out
    assert "CPUExecutionProvider" in out and "YuNet face detector + 5 LBF landmarks" in out


def test_doctor_says_the_68_point_model_is_optional(capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from mestudio import modelfiles

    real = modelfiles.find_model
    monkeypatch.setattr(modelfiles, "find_model",
                        lambda name, *a, **k: None if name == "lbfmodel.yaml"
                        else real(name, *a, **k))
    assert main(["doctor", "--no-cameras"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "lbfmodel.yaml" in ln and "search" not in ln)
    assert "optional" in line and "lbf_5pt.yaml is used" in line and "missing" not in line
    degraded = out.split("Degraded modes", 1)[1]
    assert "full YuNet + LBF" not in degraded  # never "none" after a degraded line
    body = [ln.strip() for ln in degraded.splitlines() if ln.strip()]
    assert body[0].startswith("in use:")
    assert body[1:] == ["none"] or "none" not in body[1:]  # degraded lines, or "none"



def test_doctor_says_how_to_train_a_real_model_when_the_shipped_one_is_synthetic(
        capsys: pytest.CaptureFixture) -> None:
    from mestudio import modelfiles

    if not (modelfiles.REPO_MODELS_DIR / "m3enet_synthetic.onnx").is_file():
        pytest.skip("the shipped synthetic model is not in this checkout")
    assert main(["doctor", "--no-cameras"]) == 0
    out = capsys.readouterr().out
    assert "m3enet_synthetic.onnx: SYNTHETIC DEMO MODEL (default)" in out
    assert "mestudio models fetch ststnet-megc2019" in out
    line = next(ln for ln in out.splitlines() if "mestudio train" in ln)
    assert "mestudio data prepare --dataset" in line and " && mestudio export " in line


def test_bench_tracking_prints_stages_and_ratio(video_dir: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "tracking", "--passes", "1",
                 "--video", str(video_dir / "single_face.mp4")]) == 0
    out = capsys.readouterr().out
    for stage in ("decode", "detect", "landmarks", "align", "frames/s", "target 100"):
        assert stage in out


def test_analyze_demo_source(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("mestudio.capture.demo")
    code = main(["analyze", "demo", "--out", str(tmp_path), "--max-frames", "5",
                 "--no-progress"])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "frames.csv").open()))
    assert len(rows) == 5 and all(r["face_found"] == "1" for r in rows)
    assert "demo: 5 frames" in capsys.readouterr().out


def test_the_program_exits_with_its_code_after_writing_everything(tmp_path):
    """`python -m mestudio` ends without the interpreter's teardown (fast_exit), yet the exit
    code, the printed summary and every output file are all there."""

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "mestudio", "analyze",
                           "demo:duration=3,seed=1", "--out", str(out), "--no-recognition"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout
    doc = json.loads((out / "events.json").read_text())
    assert doc["n_frames"] == 90
    assert (out / "frames.csv").read_text().count("\n") == 91
    bad = subprocess.run([sys.executable, "-m", "mestudio", "analyze",
                          str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o2")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
